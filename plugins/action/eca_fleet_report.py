# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_fleet_report: write the fleet report and the rotation history on the controller.

It collects each org's rows from the result its rotation (or audit) task registered, and returns what the
role's report tasks show: the totals for set_stats, the console summary and the failed orgs.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.sfdc.eca.plugins.plugin_utils import _report


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    SPEC = {
        'rows': {'type': 'list', 'elements': 'dict'},
        'hosts': {'type': 'list', 'elements': 'str'},
        'results_var': {'type': 'str'},
        'kind': {'type': 'str', 'default': 'rotation', 'choices': ['rotation', 'audit']},
        'report_dir': {'type': 'path', 'required': True},
        'state_dir': {'type': 'path'},
        'planned': {'type': 'bool', 'default': False},
        'max_rows': {'type': 'int', 'default': 20},
    }

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=self.SPEC)
        if self._task.check_mode:
            # a report is not a change to any org: with --check it is written only when the task says
            # check_mode: false (as the role's report does)
            result.update(changed=False, skipped=True, msg='check mode: no report written')
            return result
        rows = params['rows']
        if rows is None:
            name = params['results_var'] or ('sfdc_eca_rotation' if params['kind'] == 'rotation' else 'sfdc_eca_audit')
            registered = _report.registered_reader(self._task.get_variable_manager(), task_vars.get('hostvars') or {},
                                                   name)
            hosts = params['hosts'] if params['hosts'] is not None else task_vars.get('ansible_play_hosts_all') or []
            rows = _report.collect_rows(hosts, registered)
        report, written = _report.write(rows, params['kind'], params['report_dir'],
                                        params['state_dir'] or params['report_dir'], params['planned'])
        html = [path for path in written if path.endswith('.html')]
        failed = _report.failed_orgs(report)
        result.update(changed=True, report=report, files=written, stats=_report.stats(report),
                      summary=_report.console(report, params['max_rows'], html),
                      failed_orgs=[{'org': org, 'consumers': names} for org, names in failed.items()],
                      report_html=html[0] if html else os.path.join(params['report_dir'], 'report.html'))
        return result
