# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_fleet_report: write the fleet report and the rotation history on the controller.

It collects each org's rows from the result its rotation (or audit) task registered, and returns what the
role's report tasks show: the totals for set_stats, the console summary and the failed orgs. With ``run_id`` the
report is one job's part of a fleet run (a slice, or the fleet's canary with ``canary``), written under
``report_dir/slices/RUN/JOB/``; ``merge`` builds the run's fleet report from those parts (plugin_utils/_slices.py).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sfdc.eca.plugins.plugin_utils import _report, _slices


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
        'run_id': {'type': 'str'},
        'job_id': {'type': 'str'},
        'canary': {'type': 'bool', 'default': False},
        'merge': {'type': 'bool', 'default': False},
        'slices': {'type': 'int'},
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
        run = (params['run_id'] or '').strip()
        state_dir = params['state_dir'] or params['report_dir']
        try:
            if params['merge']:
                return self._merge(result, params, task_vars, run, state_dir)
            if params['canary'] and not run:
                raise AnsibleActionFail('canary: a fleet canary needs run_id, the id the later jobs name in '
                                        'sfdc_eca_canary_run (the canary playbook sets it)')
            job = _slices.check_id(params['job_id'], 'job id') if params['job_id'] else _slices.new_job_id()
            target = _slices.job_dir(params['report_dir'], run, job) if run else params['report_dir']
        except _slices.SliceError as exc:
            raise AnsibleActionFail(str(exc))
        hosts, rows = self._rows(params, task_vars)
        report, written = _report.write(rows, params['kind'], target, state_dir, params['planned'])
        extra = []
        if run:
            written.append(_slices.write_manifest(target, run, job, params['kind'], params['planned'], hosts, report,
                                                  'canary' if params['canary'] else 'slice'))
            result.update(run_id=run, job_id=job, job_report_dir=target)
        if params['canary'] and not params['planned']:
            written += _slices.write_canary(state_dir, run, job, report, target)
            outcome, bad = _slices.canary_outcome(report)
            result['canary'] = {'run': run, 'outcome': outcome, 'failed_orgs': bad}
            extra.append('fleet canary of run %s: %s%s' % (
                run, outcome.upper(), ' (%s)' % ', '.join(bad[:5]) if bad else
                ' - the later jobs follow it with sfdc_eca_canary_run=%s (an AWX workflow passes it on)' % run))
        return self._done(result, params, report, written, extra)

    def _rows(self, params, task_vars):
        rows = params['rows']
        hosts = params['hosts'] if params['hosts'] is not None else task_vars.get('ansible_play_hosts_all') or []
        if rows is None:
            name = params['results_var'] or ('sfdc_eca_rotation' if params['kind'] == 'rotation' else 'sfdc_eca_audit')
            read = _report.registered_reader(self._task.get_variable_manager(), task_vars.get('hostvars') or {}, name)
            # A batch task registers one result, holding every org of its batch, on each of them. An org's final
            # result is taken from the first such result that has it, except for an org still waiting for its tasks
            # files there (its own variable has the end).
            final = {}

            def registered(host):
                if host in final:
                    return {'orgs': {host: final[host]}}
                value = read(host)
                if isinstance(value, dict) and isinstance(value.get('orgs'), dict):
                    waiting = set(value.get('tasks_file_orgs') or [])
                    for org, result in value['orgs'].items():
                        if org not in waiting:
                            final.setdefault(org, result)
                return value
            rows = _report.collect_rows(hosts, registered)
        else:
            hosts = sorted(set(str(r.get('org')) for r in rows if isinstance(r, dict)))
        return hosts, rows

    def _merge(self, result, params, task_vars, run, state_dir):
        if not run:
            raise AnsibleActionFail('merge: give run_id, the run whose jobs to merge (sfdc_eca_run_id: in an AWX workflow '
                                    'its id, which the canary passes on; for a sliced job launched alone, the id of the '
                                    'workflow job AWX made for its slices)')
        expected = params['hosts'] if params['hosts'] is not None else task_vars.get('ansible_play_hosts_all') or []
        try:
            report, written, info = _slices.write_merged(params['report_dir'], state_dir, run, params['kind'],
                                                         expected, params['slices'])
        except _slices.SliceError as exc:
            raise AnsibleActionFail(str(exc))
        result.update(merged=info, complete=info['complete'], run_id=run)
        return self._done(result, params, report, written, [], head=_slices.describe(info))

    def _done(self, result, params, report, written, extra, head=()):
        html = [path for path in written if path.endswith('.html')]
        failed = _report.failed_orgs(report)
        result.update(changed=True, report=report, files=written, stats=_report.stats(report),
                      summary=list(head) + _report.console(report, params['max_rows'], html) + extra,
                      failed_orgs=[{'org': org, 'consumers': names} for org, names in failed.items()],
                      report_html=html[0] if html else os.path.join(params['report_dir'], 'report.html'))
        return result
