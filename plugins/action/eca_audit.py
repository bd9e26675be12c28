# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_audit: the read-only audit of many orgs (or one) in one task on the controller."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.sfdc.eca.plugins.plugin_utils._audit import audit_org
from ansible_collections.sfdc.eca.plugins.plugin_utils._fleet_action import FleetAction
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import _environment, task_environment
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_fleet import VariablesCheck, pool, refused_org
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_options import audit_spec, audit_task_spec, variables_spec


class ActionModule(FleetAction):
    ORG_SPEC = staticmethod(audit_spec)
    RESULT_VAR = 'sfdc_eca_audit'

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=audit_task_spec())
        orgs = self._orgs(params, task_vars)
        check = VariablesCheck(variables_spec(audit_spec()))
        validator = ArgumentSpecValidator(audit_spec())
        outcomes, jobs = {}, []
        environment = {}  # proxies and CA bundles read once for every org of the task
        for org, host in orgs.items():
            problem, options = self.org_options(params, self.org_variables(host, task_vars), check, validator)
            if problem:
                outcomes[org] = refused_org(org, options, problem)
                self._display.warning('%s: %s' % (org, problem))
            else:
                jobs.append((org, (lambda o=org, p=options: audit_org(o, p, environment)), options))
        with _environment(task_environment(self)):
            outcomes.update(pool(jobs, self._workers(params, len(jobs)), {}))
        result.update(changed=False, orgs=dict((org, outcomes[org]) for org in orgs if org in outcomes),
                      api_calls=sum(int(o.get('api_calls') or 0) for o in outcomes.values()))
        return result
