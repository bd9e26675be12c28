# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Common connection options of every module and the client built from them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible.module_utils.errors import AnsibleFallbackNotFound
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.sfdc.eca.plugins.module_utils._auth import select_auth
from ansible_collections.sfdc.eca.plugins.module_utils._client import (
    EcaClient,
    check_instance_url,
    check_token_url,
    shown,
)
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaInputError
from ansible_collections.sfdc.eca.plugins.module_utils._retry import RetryPolicy

ENV_PREFIX = 'SALESFORCE_'
DEFAULT_MAX_RESPONSE_MB = 8.0

# Credentials of a task; a pair under test (verify_pair) uses only the ones the task gives.
AUTH_OPTIONS = ('access_token', 'client_id', 'client_secret', 'username', 'private_key', 'private_key_file',
                'private_key_passphrase', 'refresh_token')
# What decides where a secret goes and whether the server must prove who it is: from the environment only for the org
# the environment names (org_connection). The other options (ca_path, which only adds a CA the operator trusts,
# api_version, audience, timeouts, retries, size cap) apply to every task.
ORG_OPTIONS = ('instance_url', 'token_url', 'validate_certs', 'allow_http') + AUTH_OPTIONS
BOOL_DEFAULTS = {'validate_certs': True, 'allow_http': False}
# Salesforce's own login hosts: any org's JWT or refresh token may go there.
LOGIN_HOSTS = ('login.salesforce.com', 'test.salesforce.com')


class FromEnvironment(str):
    """A value a task got from a SALESFORCE_* variable, not from its own options (see org_connection)."""

    __slots__ = ()


def env_value(name, environ=None):
    """SALESFORCE_<NAME>, or None when unset or empty (AWX injects an empty string for an empty field)."""
    value = (os.environ if environ is None else environ).get(ENV_PREFIX + name.upper())
    return value if value else None


def _first_set(names):
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


def _env_fallback(*names):
    """env_fallback, except that an empty variable counts as unset (AWX injects empty fields)."""
    return _first_set(names)


def _env_str_fallback(*names):
    """_env_fallback for a str option: the value is marked FromEnvironment (the str check keeps it)."""
    return FromEnvironment(_first_set(names))


def _env_path_fallback(*names):
    """_env_fallback for a path option: expanded here, so that the path check returns it as it is, marked."""
    return FromEnvironment(os.path.expanduser(os.path.expandvars(_first_set(names))))


FALLBACKS = {'str': _env_str_fallback, 'path': _env_path_fallback}


def connection_argument_spec():
    """The options every module takes; each falls back to SALESFORCE_<OPTION> in the environment (org_connection
    decides which of those an org may use)."""
    spec = {
        'instance_url': {'type': 'str', 'required': True},
        'access_token': {'type': 'str', 'no_log': True},
        'client_id': {'type': 'str'},
        'client_secret': {'type': 'str', 'no_log': True},
        'username': {'type': 'str'},
        'private_key': {'type': 'str', 'no_log': True},
        'private_key_file': {'type': 'path', 'no_log': False},
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
        'max_response_mb': {'type': 'float', 'default': DEFAULT_MAX_RESPONSE_MB},
        'allow_http': {'type': 'bool', 'default': False},
    }
    for name, option in spec.items():
        option['fallback'] = (FALLBACKS.get(option['type'], _env_fallback), [ENV_PREFIX + name.upper()])
    return spec


def same_site(first, second):
    """Whether two URLs name the same scheme, host and port (host case and a trailing slash do not matter)."""
    from ansible.module_utils.six.moves.urllib.parse import urlsplit
    try:
        sites = []
        for url in (first, second):
            parts = urlsplit(str(url).strip())
            port = parts.port or {'https': 443, 'http': 80}.get(parts.scheme.lower())
            sites.append((parts.scheme.lower(), (parts.hostname or '').lower(), port))
        return bool(sites[0][1]) and sites[0] == sites[1]
    except ValueError:
        return False


def org_connection(connection, environ=None, pair_under_test=False):
    """An org's effective connection: its own options, plus the SALESFORCE_* values only when they belong to it.

    The environment (one AWX credential, for example) belongs to an org that has no instance_url of its own, or whose
    instance_url is SALESFORCE_INSTANCE_URL; it never fills in another org's options, so no org's secret is sent to
    the host of the environment's org (SALESFORCE_TOKEN_URL), and no org's certificate check is turned off by it.

    ``connection`` is an org's own options (an inventory's sfdc_eca_connection) or a task's validated parameters
    (where values taken from the environment are FromEnvironment). With ``pair_under_test`` the credentials are only
    the client_id, client_secret, username and private key the caller gives: no access or refresh token, nothing from
    the environment. Returns a new dict with every option of ORG_OPTIONS set (None when unset); values taken from the
    environment are FromEnvironment.
    """
    environ = os.environ if environ is None else environ
    out = dict(connection or {})
    own_url = out.get('instance_url')
    if isinstance(own_url, FromEnvironment):
        own_url = None
    env_url = env_value('instance_url', environ)
    applies = not own_url or (env_url is not None and same_site(own_url, env_url))
    for name in ORG_OPTIONS:
        value = out.get(name)
        if name in BOOL_DEFAULTS:
            out[name] = _org_bool(name, value, applies, environ)
            continue
        if pair_under_test and name in AUTH_OPTIONS:
            usable = name not in ('access_token', 'refresh_token') and not isinstance(value, FromEnvironment)
            out[name] = value if usable and value else None
            continue
        if value is not None and not isinstance(value, FromEnvironment):
            continue
        env = env_value(name, environ) if applies else None
        if env is not None and name == 'private_key_file':
            env = os.path.expanduser(os.path.expandvars(env))
        out[name] = FromEnvironment(env) if env is not None else None
    return out


def _org_bool(name, value, applies, environ):
    """validate_certs / allow_http: the argument spec has made a bool of them, so a value equal to the environment's
    is taken as the environment's; when the environment does not apply, the safe default stands instead."""
    env = env_value(name, environ)
    try:
        env = None if env is None else boolean(env, strict=False)
    except TypeError:
        env = None
    if value is None:
        return env if applies and env is not None else BOOL_DEFAULTS[name]
    if not applies and env is not None and bool(value) == env and env != BOOL_DEFAULTS[name]:
        return BOOL_DEFAULTS[name]
    return bool(value)


def environment_unused(connection, environ=None):
    """Names of SALESFORCE_* credential variables that are set but not this org's (for a message)."""
    environ = os.environ if environ is None else environ
    own_url = connection.get('instance_url')
    if not own_url or isinstance(own_url, FromEnvironment):
        return []
    env_url = env_value('instance_url', environ)
    if env_url is not None and same_site(own_url, env_url):
        return []
    return [ENV_PREFIX + n.upper() for n in AUTH_OPTIONS if env_value(n, environ) is not None]


def connection_mutually_exclusive():
    # private_key and private_key_file exclude each other by value (JwtBearerAuth.validate): an empty one, as an
    # AWX credential injects for an empty field, does not count
    return []


def retry_policy(params, sleep=None, random=None):
    for name in ('max_retries', 'retry_backoff', 'retry_max_delay'):
        if params.get(name) is not None and params[name] < 0:
            raise EcaInputError('%s must be 0 or more, got %s.' % (name, params[name]))
    return RetryPolicy(max_retries=params.get('max_retries', 4), backoff=params.get('retry_backoff', 0.5),
                       max_delay=params.get('retry_max_delay', 30.0), sleep=sleep, random=random)


def _site(url):
    from ansible.module_utils.six.moves.urllib.parse import urlsplit
    parts = urlsplit(url)
    return parts.hostname or '', parts.netloc


def build_auth(params):
    """The auth strategy chosen by precedence, validated. ``params`` is an org connection (org_connection)."""
    allow_http = bool(params.get('allow_http'))
    instance_url = check_instance_url(params.get('instance_url'), allow_http)
    if params.get('token_url'):
        token_url = check_token_url(params['token_url'], allow_http)
        host, netloc = _site(token_url)
        if (isinstance(params['token_url'], FromEnvironment) and netloc != _site(instance_url)[1]
                and host.lower() not in LOGIN_HOSTS):
            # a secret goes to the org's own host or a Salesforce login host, unless the org itself names another
            raise EcaInputError(
                "SALESFORCE_TOKEN_URL '%s' is neither on the org's host (%s) nor on a Salesforce login host (%s): "
                "credentials are sent to another host only when the org's own connection names it. Set token_url in "
                'the task or the org\'s connection to use it.' % (shown(token_url), instance_url, ', '.join(LOGIN_HOSTS)))
    else:
        token_url = instance_url + '/services/oauth2/token'
    auth = select_auth(params, token_url)
    auth.validate()
    return auth


def max_response_bytes(params):
    value = params.get('max_response_mb')
    if value is None:
        value = DEFAULT_MAX_RESPONSE_MB
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise EcaInputError("max_response_mb '%s' is not a number of megabytes." % shown(value))
    if value < 0.01:
        raise EcaInputError('max_response_mb must be at least 0.01 (10 KB), got %s.' % value)
    return int(value * 1024 * 1024)


def build_client(params, http=None, sleep=None, random=None):
    """An EcaClient from validated module params. Raises EcaInputError on a bad value; sends nothing.

    The org's connection is its own options plus the environment's when they belong to it (org_connection);
    ``verify_pair`` (eca_token) authenticates with the pair the task gives and nothing else.
    http: an _http.Http to share with other clients of the same org (its connections), or None for a new one."""
    connection = org_connection(params, pair_under_test=bool(params.get('verify_pair')))
    try:
        auth = build_auth(connection)
    except EcaInputError as exc:
        unused = environment_unused(params)
        if unused and not any(connection.get(name) for name in AUTH_OPTIONS):
            raise EcaInputError(
                '%s %s %s set but not used: the SALESFORCE_* variables apply only to an org without an instance_url of '
                'its own, or whose instance_url is SALESFORCE_INSTANCE_URL, and %s is not.'
                % (exc, ', '.join(unused), 'is' if len(unused) == 1 else 'are', shown(params.get('instance_url'))))
        raise
    return EcaClient(
        connection['instance_url'], auth,
        api_version=params.get('api_version') or '65.0',
        validate_certs=connection['validate_certs'],
        ca_path=connection['ca_path'],
        timeout=30 if params.get('timeout') is None else params['timeout'],
        retry=retry_policy(params, sleep=sleep, random=random),
        allow_http=bool(connection['allow_http']),
        http=http,
        max_response_bytes=max_response_bytes(params),
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
