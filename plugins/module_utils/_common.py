# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Common connection options of every module and the client built from them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.sfdc.eca.plugins.module_utils._auth import select_auth
from ansible_collections.sfdc.eca.plugins.module_utils._client import (
    EcaClient,
    check_instance_url,
    check_token_url,
)
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaInputError
from ansible_collections.sfdc.eca.plugins.module_utils._retry import RetryPolicy

ENV_PREFIX = 'SALESFORCE_'


def _env(name):
    return (env_fallback, [ENV_PREFIX + name.upper()])


def connection_argument_spec():
    """The options every module takes; each falls back to SALESFORCE_<OPTION> in the environment."""
    spec = {
        'instance_url': {'type': 'str', 'required': True},
        'access_token': {'type': 'str', 'no_log': True},
        'client_id': {'type': 'str'},
        'client_secret': {'type': 'str', 'no_log': True},
        'username': {'type': 'str'},
        'private_key': {'type': 'str', 'no_log': True},
        'private_key_file': {'type': 'path'},
        'private_key_passphrase': {'type': 'str', 'no_log': True},
        'refresh_token': {'type': 'str', 'no_log': True},
        'token_url': {'type': 'str', 'no_log': False},
        'audience': {'type': 'str', 'default': 'https://login.salesforce.com'},
        'api_version': {'type': 'str', 'default': '65.0'},
        'validate_certs': {'type': 'bool', 'default': True},
        'ca_path': {'type': 'path'},
        'timeout': {'type': 'float', 'default': 30.0},
        'max_retries': {'type': 'int', 'default': 4},
        'retry_backoff': {'type': 'float', 'default': 0.5},
        'retry_max_delay': {'type': 'float', 'default': 30.0},
        'allow_http': {'type': 'bool', 'default': False},
    }
    for name, option in spec.items():
        option['fallback'] = _env(name)
    spec['private_key_file']['no_log'] = False
    return spec


def connection_mutually_exclusive():
    return [['private_key', 'private_key_file']]


def retry_policy(params, sleep=None, random=None):
    for name in ('max_retries', 'retry_backoff', 'retry_max_delay'):
        if params.get(name) is not None and params[name] < 0:
            raise EcaInputError('%s must be 0 or more, got %s.' % (name, params[name]))
    return RetryPolicy(max_retries=params.get('max_retries', 4), backoff=params.get('retry_backoff', 0.5),
                       max_delay=params.get('retry_max_delay', 30.0), sleep=sleep, random=random)


def build_auth(params):
    """The auth strategy chosen by precedence, validated."""
    allow_http = bool(params.get('allow_http'))
    instance_url = check_instance_url(params.get('instance_url'), allow_http)
    if params.get('token_url'):
        token_url = check_token_url(params['token_url'], allow_http)
    else:
        token_url = instance_url + '/services/oauth2/token'
    auth = select_auth(params, token_url)
    auth.validate()
    return auth


def build_client(params, http=None, sleep=None, random=None):
    """An EcaClient from validated module params. Raises EcaInputError on a bad value; sends nothing.

    http: an _http.Http to share with other clients of the same org (its connections), or None for a new one."""
    auth = build_auth(params)
    return EcaClient(
        params.get('instance_url'), auth,
        api_version=params.get('api_version') or '65.0',
        validate_certs=params.get('validate_certs', True),
        ca_path=params.get('ca_path'),
        timeout=30 if params.get('timeout') is None else params['timeout'],
        retry=retry_policy(params, sleep=sleep, random=random),
        allow_http=bool(params.get('allow_http')),
        http=http,
    )


def execute(module, run):
    """Run an operation for a module: build the client, call ``run``, turn EcaError into one fail_json."""
    from ansible.module_utils.basic import missing_required_lib
    from ansible_collections.sfdc.eca.plugins.module_utils._http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
    from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaError

    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)
    client = None
    try:
        client = build_client(module.params)
        result = run(client, module.params, check_mode=module.check_mode, diff=module._diff)
    except EcaError as exc:
        fields = exc.to_result()
        if client is not None:
            fields['api_calls'] = client.api_calls
        module.fail_json(msg=str(exc), **fields)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)
