# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_rotation: the rotation of one org in one task, or of many orgs (``orgs``) in one task.

See plugin_utils/_rotation.py. Like set_fact, it never uses the host's connection: an org is not a
machine, and the delivery files and the history live on the controller.
"""

from __future__ import annotations

from ansible import context
from ansible.errors import AnsibleActionFail, AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.sfdc.eca.plugins.filter import rotation as book
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import _environment, task_environment
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation import (
    FLEET_OPTIONS,
    NOT_IN_FLEET,
    VariablesCheck,
    first_error,
    invalid_org,
    plain,
    rotation_argument_spec,
    run_fleet,
    run_org,
    template_free,
    uses_tasks_files,
)


class _BadVariable(Exception):
    """An org's variable that cannot be templated (the org fails, the others go on)."""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        fleet = 'orgs' in self._task.args
        _validation, params = self.validate_argument_spec(argument_spec=rotation_argument_spec(fleet=fleet))
        check_mode = bool(self._task.check_mode)
        if fleet:
            result.update(self._run_fleet(params, task_vars, check_mode))
            return result
        org = params.get('org') or task_vars.get('inventory_hostname')
        if not org:
            raise AnsibleActionFail('sfdc.eca.eca_rotation needs org (the inventory host name by default).')
        gate = {'run': True, 'canary': False, 'reason': ''}
        if params['canary_gate'] and not params.get('handoff'):
            gate = self._gate(task_vars, params['max_fail_percentage'])
        with _environment(task_environment(self)):
            outcome = run_org(params, org, gate, check_mode=check_mode)
        self._show_plan(org, outcome, check_mode)
        result.update(outcome)
        if 'handoff' in outcome:
            result['_ansible_no_log'] = True
        return result

    def _gate(self, task_vars, max_fail_percentage):
        return book.canary_gate(task_vars.get('ansible_play_hosts_all'), task_vars.get('hostvars'),
                                task_vars.get('ansible_play_batch'), max_fail_percentage)

    def _show_plan(self, org, outcome, check_mode):
        for line in outcome.get('plan') or []:
            # the plan is what --check is for: show it without -v
            (self._display.display if check_mode else self._display.v)('%s: %s' % (org, line))

    # -- many orgs in one task -------------------------------------------------------------------

    def _run_fleet(self, params, task_vars, check_mode):
        """Each org's options: this task's, updated with the variables ``org_options`` names, as the org's
        host sees them (role defaults, inventory, play and extra vars, each in its precedence)."""
        orgs = list(dict.fromkeys(str(org) for org in params['orgs']))  # an org given twice is rotated once
        common = dict((k, v) for k, v in params.items() if k not in FLEET_OPTIONS)
        spec = rotation_argument_spec()
        per_org = set(spec) - set(NOT_IN_FLEET) - {'canary_gate'}
        unknown = sorted(set(params['org_options']) - per_org)
        names = params['org_options'].values()
        if not all(isinstance(name, str) and name for name in names):
            raise AnsibleActionFail('org_options: each value must be the name of a variable, got %s' % ', '.join(
                repr(name) for name in names if not (isinstance(name, str) and name)))
        if unknown:
            raise AnsibleActionFail('org_options: %s %s not an option each org of sfdc.eca.eca_rotation may set; valid: %s'
                                    % (', '.join(unknown), 'is' if len(unknown) == 1 else 'are', ', '.join(sorted(per_org))))
        validators = (VariablesCheck(params['org_variables_spec']), ArgumentSpecValidator(spec), params['org_options'])
        jobs, outcomes, tasks_file_orgs = [], {}, []
        # every org's options first: resolving them in this thread while the pool runs would starve it
        for org in orgs:
            problem, org_params = self._org_params(self._org_variables(org, task_vars), common, validators)
            if problem:
                outcomes[org] = invalid_org(org, org_params, problem)
                self._display.warning('%s: %s' % (org, problem))
            elif uses_tasks_files(org_params):
                tasks_file_orgs.append(org)
            else:
                jobs.append((org, org_params))
        gate = {'run': True, 'canary': False, 'reason': ''}
        if params['canary_gate']:
            # one gate for the batch; max_fail_percentage is the first valid org's (a play-wide setting)
            gate = self._gate(task_vars, jobs[0][1]['max_fail_percentage'] if jobs else params['max_fail_percentage'])
        for outcome in outcomes.values():
            # an org refused for its options still fails the canary batch it is in
            outcome['canary'] = bool(gate.get('canary'))
        workers = params.get('workers') or context.CLIARGS.get('forks') or 5
        with _environment(task_environment(self)):
            outcomes.update(run_fleet(jobs, gate, check_mode=check_mode, workers=min(workers, len(orgs) or 1)))
        for org in orgs:
            if org in outcomes:
                self._show_plan(org, outcomes[org], check_mode)
                if outcomes[org].pop('handoff', None) is not None:
                    # cannot happen (uses_tasks_files sends such orgs to their hosts); never keep a secret here
                    outcomes[org] = invalid_org(org, {}, 'the rotation of this org waits for tasks files, which the '
                                                'batch task cannot run: rerun it with sfdc_eca_task_per_org=true')
        return {
            'changed': any(o.get('changed') for o in outcomes.values()),
            'orgs': dict((org, outcomes[org]) for org in orgs if org in outcomes),
            'tasks_file_orgs': tasks_file_orgs,
            'api_calls': sum(int(o.get('api_calls') or 0) for o in outcomes.values()),
        }

    def _org_variables(self, org, task_vars):
        """The variables a task of this play would see on the org's host."""
        manager = self._task.get_variable_manager()
        inventory = getattr(manager, '_inventory', None)
        host = inventory.get_host(org) if inventory is not None else None
        if host is None:
            raise AnsibleActionFail("orgs: '%s' is not a host of the inventory: give inventory host names "
                                    "(such as ansible_play_batch)" % org)
        return manager.get_vars(play=self._task.get_play(), host=host, task=self._task,
                                _hosts=task_vars.get('ansible_play_hosts'),
                                _hosts_all=task_vars.get('ansible_play_hosts_all'))

    def _org_params(self, variables, common, validators):
        """-> (problem or None, the org's options); ``problem`` names the org's bad variable or option."""
        templar = self._templar.copy_with_new_env(available_variables=variables)
        rendered = {}

        def value(name):
            # each variable is templated once per org: Jinja compiles a template string on every use
            if name not in rendered:
                try:
                    raw = variables[name]
                    rendered[name] = plain(raw if template_free(raw) else templar.template(raw))
                except AnsibleUndefinedVariable as exc:
                    raise _BadVariable('variable %s: %s' % (name, exc.message))
                except AnsibleError as exc:
                    # other template errors (a filter's) may quote the value, which may be a secret
                    raise _BadVariable('variable %s cannot be templated (%s)' % (name, type(exc).__name__))
            return rendered[name]

        try:
            return self._org_options(value, variables, common, validators)
        except _BadVariable as exc:
            return str(exc), dict(common)

    @staticmethod
    def _org_options(value, variables, common, validators):
        variables_check, options_spec, org_options = validators
        merged = dict(common)
        for option, name in org_options.items():
            if name in variables:
                merged[option] = value(name)
        problem = variables_check.problem(value, variables)
        if problem:
            # the org's rows still name its apps and consumers
            return 'invalid variable: %s' % problem, merged
        validated = options_spec.validate(merged)
        if validated.error_messages:
            return 'invalid option: %s' % first_error(validated), merged
        return None, validated.validated_parameters
