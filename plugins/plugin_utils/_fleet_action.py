# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the actions that work on many orgs in one task (one inventory host per org).

Each org's options are the task's arguments, and for every option the task leaves unset the org's variable
``sfdc_eca_<option>`` as a task on that org's host would see it (role defaults, inventory, group and host
vars, play, role and extra vars, in their precedence), else the option's default. Like set_fact, these
actions never use the host's connection: an org is not a machine.
"""

from __future__ import annotations

import typing as t

from ansible import context
from ansible.errors import AnsibleActionFail, AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

from ansible_collections.sfdc.eca.plugins.plugin_utils._report import org_result, registered_reader
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_fleet import (
    TemplateMemo,
    VariablesCheck,
    canary_gate,
    plain,
    template_free,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_options import variable


class BadVariable(Exception):
    """An org's variable that cannot be templated or is invalid (the org fails, the others go on)."""


class FleetAction(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    # set by subclasses
    ORG_SPEC: t.Callable[[], dict[str, dict[str, t.Any]]]
    RESULT_VAR = ''

    def _orgs(self, params: t.Mapping[str, t.Any], task_vars: t.Mapping[str, t.Any]) -> dict[str, str]:
        """{org name: the inventory host whose variables it takes}: ``orgs`` are host names; ``org`` names the one org
        of this task's host (default: the host's name)."""
        if params.get('orgs') is not None:
            if params.get('org'):
                raise AnsibleActionFail('org names the one org of this task\'s host: give either org or orgs, not both')
            return dict((str(org), str(org)) for org in params['orgs'] if org)  # an org given twice runs once
        host = str(task_vars.get('inventory_hostname') or '')
        return {str(params.get('org') or host): host}

    def _workers(self, params: t.Mapping[str, t.Any], count: int) -> int:
        return max(1, min(params.get('workers') or context.CLIARGS.get('forks') or 5, count or 1))

    def org_variables(self, org: str, task_vars: t.Mapping[str, t.Any]) -> t.Mapping[str, t.Any]:
        """The variables a task of this play would see on the org's host."""
        manager = self._task.get_variable_manager()
        inventory = getattr(manager, '_inventory', None)
        host = inventory.get_host(org) if inventory is not None else None
        if host is None:
            raise AnsibleActionFail("orgs: '%s' is not a host of the inventory: give inventory host names "
                                    '(such as ansible_play_batch)' % org)
        return manager.get_vars(play=self._task.get_play(), host=host, task=self._task,
                                _hosts=task_vars.get('ansible_play_hosts'),
                                _hosts_all=task_vars.get('ansible_play_hosts_all'))

    def templated(self, variables: t.Mapping[str, t.Any]) -> t.Callable[[str], t.Any]:
        """value(name): one variable of an org, templated once, as plain data."""
        templar = self._templar.copy_with_new_env(available_variables=variables)
        rendered: dict[str, t.Any] = {}
        memo = self.__dict__.get('_template_memo')
        if memo is None:
            memo = self.__dict__['_template_memo'] = TemplateMemo()

        def template(raw: t.Any) -> t.Any:
            key = memo.key(raw, variables)
            done = memo.get(key)
            if done is memo:
                done = plain(templar.template(raw))
                memo.put(key, done)
            return done

        def value(name: str) -> t.Any:
            if name not in rendered:
                try:
                    raw = variables[name]
                    rendered[name] = plain(raw) if template_free(raw) else template(raw)
                except AnsibleUndefinedVariable as exc:
                    raise BadVariable('variable %s: %s' % (name, exc.message))
                except AnsibleError as exc:
                    # other template errors (a filter's) may quote the value, which may be a secret
                    raise BadVariable('variable %s cannot be templated (%s)' % (name, type(exc).__name__))
            return rendered[name]
        return value

    def org_options(self, params: t.Mapping[str, t.Any], variables: t.Mapping[str, t.Any],
                    check: VariablesCheck | None, validator: ArgumentSpecValidator) -> tuple[str | None, dict[str, t.Any]]:
        """-> (problem or None, the org's options with defaults). ``problem`` names the bad variable or option."""
        names = self.__dict__.get('_option_names')
        if names is None:
            # the spec's names only: ORG_SPEC() is a deep copy, which would cost more than the rest of an org's options
            names = self.__dict__['_option_names'] = list(self.ORG_SPEC())
        merged: dict[str, t.Any] = {}
        try:
            value = self.templated(variables)
            own = set()
            for option in names:
                if params.get(option) is not None:
                    merged[option] = plain(params[option])
                elif variable(option) in variables:
                    merged[option] = value(variable(option))
                    own.add(variable(option))
            if check is not None:
                problem = check.problem(value, own)
                if problem:
                    return 'invalid variable: %s' % problem, merged
        except BadVariable as exc:
            return str(exc), merged
        validated = validator.validate(merged)
        if validated.error_messages:
            return 'invalid option: %s' % remove_values(validated.error_messages[0], validated._no_log_values), merged
        return None, validated.validated_parameters

    def gate(self, task_vars: t.Mapping[str, t.Any], max_fail_percentage: t.Any) -> dict[str, t.Any]:
        registered = registered_reader(self._task.get_variable_manager(), task_vars.get('hostvars'), self.RESULT_VAR)

        def results(host: str) -> dict[str, t.Any]:
            return org_result(registered(host), host)
        return canary_gate(task_vars.get('ansible_play_hosts_all'), results, task_vars.get('ansible_play_batch'),
                           max_fail_percentage)
