# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_fleet_report: write the fleet report and the rotation history on the controller."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation import write_fleet_report


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    SPEC = {
        'rows': {'type': 'list', 'elements': 'dict', 'required': True},
        'kind': {'type': 'str', 'default': 'rotation', 'choices': ['rotation', 'audit']},
        'report_dir': {'type': 'path', 'required': True},
        'state_dir': {'type': 'path'},
        'planned': {'type': 'bool', 'default': False},
    }

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=self.SPEC)
        if self._task.check_mode:
            # a report is not a change to any org: with --check it is written only when the task says
            # check_mode: false (as the role's report does)
            result.update(changed=False, skipped=True, msg='check mode: no report written')
            return result
        report, written = write_fleet_report(params['rows'], params['kind'], params['report_dir'],
                                             params['state_dir'] or params['report_dir'], params['planned'])
        failed = []
        for row in report.get('rows') or []:
            if row.get('outcome') == 'failed' and row.get('org') not in failed:
                failed.append(row.get('org'))
        result.update(changed=True, report=report, files=written, failed_orgs=failed)
        return result
