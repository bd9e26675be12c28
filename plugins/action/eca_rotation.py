# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sfdc.eca.eca_rotation: the rotation of one org in one task, on the controller.

See plugin_utils/_rotation.py. Like set_fact, it never uses the host's connection: an org is not a
machine, and the delivery files and the history live on the controller.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sfdc.eca.plugins.filter import rotation as book
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import _environment, task_environment
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation import rotation_argument_spec, run_org


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, params = self.validate_argument_spec(argument_spec=rotation_argument_spec())
        org = params.get('org') or task_vars.get('inventory_hostname')
        if not org:
            raise AnsibleActionFail('sfdc.eca.eca_rotation needs org (the inventory host name by default).')
        gate = {'run': True, 'canary': False, 'reason': ''}
        if params['canary_gate'] and not params.get('handoff'):
            gate = book.canary_gate(task_vars.get('ansible_play_hosts_all'), task_vars.get('hostvars'),
                                    task_vars.get('ansible_play_batch'), params['max_fail_percentage'])
        check_mode = bool(self._task.check_mode)
        with _environment(task_environment(self)):
            outcome = run_org(params, org, gate, check_mode=check_mode)
        for line in outcome['plan']:
            # the plan is what --check is for: show it without -v
            (self._display.display if check_mode else self._display.v)('%s: %s' % (org, line))
        result.update(outcome)
        if 'handoff' in outcome:
            result['_ansible_no_log'] = True
        return result
