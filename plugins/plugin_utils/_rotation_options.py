# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one list of a rotation's options.

Each org's options come from its variables ``sfdc_eca_<option>`` (role defaults, inventory, play and
extra vars, in their precedence), or from the ``sfdc.eca.eca_rotation`` task's arguments, which win.
The role's ``meta/argument_specs.yml`` and the module's documentation describe the same options; a unit
test checks them against this spec.
"""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import AWS_SECRETSMANAGER_OPTIONS, HASHI_VAULT_OPTIONS

VARIABLE_PREFIX = 'sfdc_eca_'

VERIFY_METHODS = ('client_credentials', 'jwt', 'none')
FILE_FORMATS = ('env', 'json', 'yaml')

# deliver: exactly one kind per rotation entry (checked by the plan, with a message naming the entry)
DELIVER_OPTIONS: dict[str, dict[str, t.Any]] = {
    'tasks_file': {'type': 'path'},
    'vault_file': {'type': 'path'},
    'vault_password_file': {'type': 'path'},
    'vault_id': {'type': 'str'},
    'file': {'type': 'dict', 'options': {
        'path': {'type': 'path', 'required': True},
        'format': {'type': 'str', 'default': 'env', 'choices': list(FILE_FORMATS)},
        'prefix': {'type': 'str', 'default': 'SALESFORCE_'},
    }},
    'hashi_vault': {'type': 'dict', 'options': HASHI_VAULT_OPTIONS},
    'aws_secretsmanager': {'type': 'dict', 'options': AWS_SECRETSMANAGER_OPTIONS},
}

# Where the rotation history may be kept besides STATE_DIR (AWX jobs, whose files are thrown away): one document
# per org in a secret store, its path (or secret id) a template with {org}.
HISTORY_PATH = 'sfdc_eca/history/{org}'


def _defaulting(options: dict[str, dict[str, t.Any]], name: str, default: t.Any) -> dict[str, dict[str, t.Any]]:
    options = copy.deepcopy(options)
    options[name]['default'] = default
    return options


HISTORY_STORE_OPTIONS: dict[str, dict[str, t.Any]] = {
    'hashi_vault': {'type': 'dict', 'options': _defaulting(HASHI_VAULT_OPTIONS, 'path', HISTORY_PATH)},
    'aws_secretsmanager': {'type': 'dict', 'options': _defaulting(AWS_SECRETSMANAGER_OPTIONS, 'secret_id', HISTORY_PATH)},
}

VERIFY_JWT_OPTIONS: dict[str, dict[str, t.Any]] = {
    'username': {'type': 'str'},
    'private_key_file': {'type': 'path'},
    'private_key': {'type': 'str', 'no_log': True},
    'private_key_passphrase': {'type': 'str', 'no_log': True},
    'audience': {'type': 'str'},
}

ROTATION_ENTRY_OPTIONS: dict[str, dict[str, t.Any]] = {
    'app_name': {'type': 'str', 'required': True},
    'app_id': {'type': 'str'},
    'consumer_name': {'type': 'str'},
    'consumer_id': {'type': 'str'},
    'deliver': {'type': 'dict', 'required': True, 'options': DELIVER_OPTIONS},
    'verify': {'type': 'str', 'choices': list(VERIFY_METHODS)},
    'verify_jwt': {'type': 'dict', 'options': VERIFY_JWT_OPTIONS},
    'verify_tasks_file': {'type': 'path'},
    'replace_rotated': {'type': 'bool'},
    'revoke_previous': {'type': 'bool'},
}

# Each org's options. Their role variables are VARIABLE_PREFIX + name.
ORG_OPTIONS: dict[str, dict[str, t.Any]] = {
    'connection': {'type': 'dict', 'default': {}, 'no_log': True},
    'rotations': {'type': 'list', 'elements': 'dict', 'default': [], 'options': ROTATION_ENTRY_OPTIONS},
    'verify': {'type': 'str', 'default': 'client_credentials', 'choices': list(VERIFY_METHODS)},
    'verify_jwt': {'type': 'dict', 'default': {}, 'options': VERIFY_JWT_OPTIONS},
    'verify_tasks_file': {'type': 'path', 'default': ''},
    'verify_retries': {'type': 'int', 'default': 3},
    'verify_delay': {'type': 'float', 'default': 5},
    'replace_rotated': {'type': 'bool', 'default': False},
    'revoke_previous': {'type': 'bool', 'default': False},
    'min_age_days': {'type': 'float', 'default': 7},
    'vault_password_file': {'type': 'path', 'default': ''},
    'vault_id': {'type': 'str', 'default': ''},
    'state_dir': {'type': 'path', 'default': '.'},
    'history_store': {'type': 'dict', 'default': {}, 'options': HISTORY_STORE_OPTIONS},
    'max_fail_percentage': {'type': 'float', 'default': 100},
}

# Options of the task itself (not per org).
TASK_OPTIONS: dict[str, dict[str, t.Any]] = {
    'orgs': {'type': 'list', 'elements': 'str'},
    'org': {'type': 'str'},
    'workers': {'type': 'int'},
    'canary_gate': {'type': 'bool', 'default': True},
    'canary_run': {'type': 'str', 'default': ''},
    'handoff': {'type': 'dict', 'no_log': True},
    'failed_task': {'type': 'str'},
}


# The audit's options (sfdc.eca.eca_audit), also sfdc_eca_<option> variables.
AUDIT_OPTIONS: dict[str, dict[str, t.Any]] = {
    'connection': ORG_OPTIONS['connection'],
    'audit_apps': {'type': 'list', 'elements': 'str', 'default': []},
    'expiry_warning_days': {'type': 'float', 'default': 7},
    'state_dir': ORG_OPTIONS['state_dir'],
    'history_store': ORG_OPTIONS['history_store'],
}


def variable(option: str) -> str:
    return VARIABLE_PREFIX + option


def org_spec() -> dict[str, dict[str, t.Any]]:
    """An argument spec of one org's options (a fresh copy: validators change what they are given)."""
    return copy.deepcopy(ORG_OPTIONS)


def task_spec(nested: bool = False) -> dict[str, dict[str, t.Any]]:
    """The task's argument spec: its own options, and each org option without a default (unset = the org's variable).

    Without ``nested`` the org options' sub-options are left out: each org's options are checked whole, once merged
    with its variables, and checking them here too would turn every unset sub-option into an explicit None."""
    spec = copy.deepcopy(TASK_OPTIONS)
    for name, option in org_spec().items():
        option.pop('default', None)
        if not nested:
            option.pop('options', None)
        spec[name] = option
    return spec


def defaults() -> dict[str, t.Any]:
    return dict((name, copy.deepcopy(option.get('default'))) for name, option in ORG_OPTIONS.items())


def audit_spec() -> dict[str, dict[str, t.Any]]:
    return copy.deepcopy(AUDIT_OPTIONS)


def audit_task_spec() -> dict[str, dict[str, t.Any]]:
    spec = dict((name, copy.deepcopy(TASK_OPTIONS[name])) for name in ('orgs', 'org', 'workers'))
    for name, option in audit_spec().items():
        option.pop('default', None)
        spec[name] = option
    return spec


def variables_spec(spec: dict[str, dict[str, t.Any]] | None = None) -> dict[str, dict[str, t.Any]]:
    """Options as the role's variables (for checking an org's variables one by one)."""
    return dict((variable(name), option) for name, option in (spec or org_spec()).items())
