# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_rotation: the rotation of many orgs (or one) in one task on the controller.

The engine is plugins/plugin_utils/_rotation_*.py; this action resolves each org's options, applies the
canary gate and hands the orgs to the engine. Three calls make a rotation:

- the first (``orgs``) runs every org up to its promotion, or, for an org with tasks files, up to them:
  those orgs are listed in ``tasks_file_orgs`` and their tasks files in ``handoff`` (no_log data);
- after the role ran those tasks files, a second call with ``handoff`` (the first call's result) finishes them;
- ``failed_task`` records an unexpected failure of the role's tasks (its rescue).
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.sfdc.eca.plugins.plugin_utils._fleet_action import FleetAction
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import _environment, task_environment
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_fleet import (
    OPEN,
    Claims,
    VariablesCheck,
    finish_fleet,
    refused_org,
    run_fleet,
    unexpected,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_options import org_spec, task_spec
from ansible_collections.sfdc.eca.plugins.plugin_utils._slices import done_by_canary, fleet_gate

FAILED_STEPS_VAR = '_sfdc_eca_failed_steps'


def mark_steps(handoff, batch):
    """Names each org's steps BATCH.NUMBER (``after`` too). The role sets that name as SFDC_ECA_STEP in the
    environment of a step's tasks, so its rescue names the step of a failed task from ``ansible_failed_task``. The
    same on every org of the batch: Ansible makes one include of a step number for all of them. Unlike any other
    batch's: a failure left from another batch is not taken for one of these steps."""
    for org_handoff in handoff.values():
        steps = org_handoff.get('steps') or []
        names = dict((step['id'], '%s.%d' % (batch, number)) for number, step in enumerate(steps))
        for step in steps:
            step['id'] = names[step['id']]
            step['after'] = names.get(step['after']) if step.get('after') else None
    return handoff


class ActionModule(FleetAction):
    ORG_SPEC = staticmethod(org_spec)
    RESULT_VAR = 'sfdc_eca_rotation'

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=task_spec())
        previous = params.get('handoff')
        if previous is not None and not isinstance(previous.get('orgs'), dict):
            raise AnsibleActionFail('handoff must be the registered result of the first sfdc.eca.eca_rotation task')
        if params.get('failed_task') is not None:
            result.update(self._unexpected(params, task_vars, previous or {}))
        elif previous is not None:
            result.update(self._finish(params, task_vars, previous))
        else:
            result.update(self._rotate(params, task_vars))
        if params.get('orgs') is None and len(result.get('orgs') or {}) == 1:
            # one org (this host's): its result also at the top, as a module for one org would return it
            for key, value in next(iter(result['orgs'].values())).items():
                if key not in ('changed', 'api_calls'):
                    result.setdefault(key, value)
        if result.get('handoff'):
            result['_ansible_no_log'] = True
        return result

    # -- options of each org -------------------------------------------------------------------------

    def _options(self, orgs, params, task_vars):
        """orgs: {org: host}. -> ({org: options}, {org: refused result}); a refused org is named in a warning."""
        check, validator = VariablesCheck(), ArgumentSpecValidator(org_spec())
        options, refused = {}, {}
        for org, host in orgs.items():
            problem, org_options = self.org_options(params, self.org_variables(host, task_vars), check, validator)
            if problem:
                refused[org] = refused_org(org, org_options, problem)
                self._display.warning('%s: %s' % (org, problem))
            else:
                options[org] = org_options
        return options, refused

    def _show(self, outcomes, check_mode):
        for org, outcome in outcomes.items():
            for line in outcome.get('plan') or []:
                # the plan is what --check is for: show it without -v
                (self._display.display if check_mode else self._display.v)('%s: %s' % (org, line))
            for warning in outcome.pop('warnings', None) or []:
                self._display.warning('%s: %s' % (org, warning))

    # -- the first call ------------------------------------------------------------------------------

    def _claims(self, options, check_mode):
        """Targets claimed in this run: across the batches of the play (marker files), except in check mode."""
        if check_mode or not options:
            return Claims()
        state_dir = next(iter(options.values())).get('state_dir') or '.'
        play = self._task.get_play()
        run = getattr(play, '_uuid', None) or str(os.getppid())
        return Claims(os.path.join(state_dir, '.claims', run))

    def _rotate(self, params, task_vars):
        check_mode = bool(self._task.check_mode)
        orgs = self._orgs(params, task_vars)
        options, outcomes = self._options(orgs, params, task_vars)
        gate = dict(OPEN)
        if params['canary_gate']:
            first = next(iter(options.values()), {})
            gate = self.gate(task_vars, first.get('max_fail_percentage', 100))
        for outcome in outcomes.values():
            # an org refused for its options still fails the canary batch it is in
            outcome['canary'] = bool(gate.get('canary'))
        if options:
            # a job of a fleet run after its canary (AWX slices): plugin_utils/_slices.py
            fleet = fleet_gate(next(iter(options.values())).get('state_dir') or '.', params.get('canary_run'))
            for org in [o for o in options if o in fleet.done or fleet.problem]:
                outcomes[org] = (done_by_canary(fleet.run) if org in fleet.done
                                 else refused_org(org, options[org], fleet.problem, gate))
                del options[org]
            if fleet.refuse:
                gate = {'run': False, 'canary': False, 'reason': fleet.refuse}
        jobs = [(org, options[org]) for org in orgs if org in options]
        with _environment(task_environment(self)):
            outcomes.update(run_fleet(jobs, gate, check_mode=check_mode, workers=self._workers(params, len(jobs)),
                                      claims=self._claims(options, check_mode)))
        handoff = dict((org, outcomes[org].pop('handoff')) for org in orgs if 'handoff' in outcomes.get(org, {}))
        self._show(outcomes, check_mode)
        out = {
            'changed': any(o.get('changed') for o in outcomes.values()),
            'orgs': dict((org, outcomes[org]) for org in orgs if org in outcomes),
            'tasks_file_orgs': list(handoff),
            'api_calls': sum(int(o.get('api_calls') or 0) for o in outcomes.values()),
        }
        if handoff:
            out['handoff'] = mark_steps(handoff, self._task._uuid)
        return out

    # -- after the tasks files -----------------------------------------------------------------------

    def _finish(self, params, task_vars, previous):
        handoff = previous.get('handoff') or {}
        named = self._orgs(params, task_vars) if params.get('orgs') is not None or params.get('org') else {}
        orgs = dict((org, named.get(org, org)) for org in handoff if not named or org in named)
        options, refused = self._options(orgs, params, task_vars)
        # an org whose host is still in the play's batch ran its tasks files: a step's failure is rescued and named in
        # its failed steps; a host that stopped otherwise (failed, unreachable, ended) has left the batch
        batch = set(task_vars.get('ansible_play_batch') or ())
        jobs = []
        for org, host in orgs.items():
            if org not in options:
                continue
            variables = self.org_variables(host, task_vars)
            value = self.templated(variables)
            failed = value(FAILED_STEPS_VAR) if FAILED_STEPS_VAR in variables else {}
            ran = host in batch
            jobs.append((org, options[org], dict(handoff[org], canary=previous['orgs'].get(org, {}).get('canary')),
                         failed if isinstance(failed, dict) else {}, ran))
        with _environment(task_environment(self)):
            outcomes = finish_fleet(jobs, workers=self._workers(params, len(jobs)))
        outcomes.update(refused)
        for org, outcome in outcomes.items():
            outcome['canary'] = bool(previous['orgs'].get(org, {}).get('canary'))
        self._show(outcomes, False)
        merged = dict(previous['orgs'])
        merged.update(outcomes)
        return {
            'changed': bool(previous.get('changed')) or any(o.get('changed') for o in outcomes.values()),
            'orgs': merged,
            'tasks_file_orgs': [],
            'api_calls': sum(int(o.get('api_calls') or 0) for o in merged.values()),
        }

    # -- the role's rescue ---------------------------------------------------------------------------

    def _unexpected(self, params, task_vars, previous):
        handoff = previous.get('handoff') or {}
        outcomes = {}
        for org, host in self._orgs(params, task_vars).items():
            earlier = (previous.get('orgs') or {}).get(org) or {}
            gate = {'canary': earlier.get('canary')}
            if earlier and org not in handoff and earlier.get('records'):
                outcomes[org] = earlier
                continue
            problem, org_options = self.org_options({}, self.org_variables(host, task_vars), None,
                                                    ArgumentSpecValidator(org_spec()))
            outcomes[org] = unexpected(org, org_options, handoff.get(org), params['failed_task'], gate)
        return {'changed': False, 'orgs': outcomes, 'tasks_file_orgs': [], 'api_calls': 0}
