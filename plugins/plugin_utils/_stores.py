# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret stores a rotation delivers new pairs to: HashiCorp Vault / OpenBao (KV version 2, through
``hvac``) and AWS Secrets Manager (through ``boto3``). Controller side, plain Python.

Interface::

    HASHI_VAULT_OPTIONS, AWS_SECRETSMANAGER_OPTIONS   # argument-spec dicts of deliver.<kind>'s sub-options
    OPTIONS[kind]                                    # the same, by kind
    ENV_FALLBACKS[kind][option] -> (VAR, ...)        # environment variables read when an option is unset
    STORE_KINDS = ('hashi_vault', 'aws_secretsmanager')
    load_library(kind)                               # import hvac / boto3 now, or StoreConfigError

    store = open_store(kind, options, environ, cache)
        # options: validated against the kind's spec (defaults filled); environ: the task's environment
        # (env fallbacks); cache: one dict shared by every org of a run, from any thread: clients,
        # sessions, logins and plan checks are reused per (server, auth identity).
    store.kind, store.path_template     # the configured path / secret_id template ({org}, {app_name}, ...)
    store.check()                       # plan: raises StoreConfigError; may log in, never writes
    target = store.target(path)         # path: the template filled in; StoreConfigError when unusable
    target.kind, target.label           # label: secret-free, for reports
    target.identity                     # hashable; equal identity == same place
    target.write(data)                  # data: {instance_url, org, app_name, app_id, consumer_name,
                                        #        consumer_id, key, secret}: stored as it is (KV data /
                                        #        SecretString JSON)
    target.read_back() -> str | None    # the `key` the target holds now, None when absent

Errors: ``StoreError`` (``.reason`` classifies it, ``.transient`` says whether trying later may help,
``.label`` names the target, ``to_result()`` gives secret-free fields); ``StoreConfigError`` for what is
found before any write (missing library, missing URL or credentials, wrong mount, refused login, ...).
Messages name the store, URL and path, never a token, secret or response body. Connection errors,
timeouts, 5xx and throttling are retried a few times with backoff (``RETRY``); nothing is retried
forever. Options and failures for users: docs/delivery.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import typing as t
import uuid
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.sfdc.eca.plugins.module_utils._retry import RetryPolicy

STORE_KINDS = ('hashi_vault', 'aws_secretsmanager')

DEFAULT_PATH = 'salesforce/{org}/{app_name}/{consumer_name}'

HASHI_VAULT_OPTIONS = {
    'url': {'type': 'str'},
    'mount': {'type': 'str', 'default': 'secret'},
    'path': {'type': 'str', 'default': DEFAULT_PATH},
    'auth': {'type': 'str', 'default': 'token', 'choices': ['token', 'approle']},
    'token': {'type': 'str', 'no_log': True},
    'role_id': {'type': 'str'},
    'secret_id': {'type': 'str', 'no_log': True},
    'auth_mount': {'type': 'str', 'default': 'approle'},
    'namespace': {'type': 'str'},
    'ca_path': {'type': 'path'},
    'validate_certs': {'type': 'bool', 'default': True},
    'timeout': {'type': 'int', 'default': 30},
}

AWS_SECRETSMANAGER_OPTIONS = {
    'secret_id': {'type': 'str', 'default': DEFAULT_PATH},
    'region': {'type': 'str'},
    'endpoint_url': {'type': 'str'},
    'kms_key_id': {'type': 'str', 'no_log': False},
    'profile': {'type': 'str'},
    'access_key': {'type': 'str', 'no_log': False},
    'secret_key': {'type': 'str', 'no_log': True},
    'session_token': {'type': 'str', 'no_log': True},
    'ca_path': {'type': 'path'},
    'validate_certs': {'type': 'bool', 'default': True},
    'timeout': {'type': 'int', 'default': 30},
}

OPTIONS = {'hashi_vault': HASHI_VAULT_OPTIONS, 'aws_secretsmanager': AWS_SECRETSMANAGER_OPTIONS}

# Read from the task's environment when the option is unset (None or ""), first name first.
ENV_FALLBACKS = {
    'hashi_vault': {
        'url': ('VAULT_ADDR',),
        'token': ('VAULT_TOKEN',),
        'role_id': ('VAULT_ROLE_ID',),
        'secret_id': ('VAULT_SECRET_ID',),
        'namespace': ('VAULT_NAMESPACE',),
        'ca_path': ('VAULT_CACERT',),
    },
    'aws_secretsmanager': {
        'region': ('AWS_REGION', 'AWS_DEFAULT_REGION'),
        'endpoint_url': ('AWS_ENDPOINT_URL_SECRETS_MANAGER', 'AWS_ENDPOINT_URL'),
        'profile': ('AWS_PROFILE', 'AWS_DEFAULT_PROFILE'),
        'access_key': ('AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY'),
        'secret_key': ('AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_KEY'),
        'session_token': ('AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN'),
        'ca_path': ('AWS_CA_BUNDLE',),
    },
}

LIBRARIES = {'hashi_vault': 'hvac', 'aws_secretsmanager': 'boto3'}

# Retries of one store call after the first attempt (connection errors, timeouts, 5xx, throttling).
# Extra keys (sleep, random) go to RetryPolicy too; tests set them.
RETRY: dict = {'max_retries': 3, 'backoff': 0.5, 'max_delay': 5.0}

_CACHE_LOCK = ('sfdc.eca.stores', 'lock')
_MASK = '********'


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------

class StoreError(Exception):
    """A secret-store operation failed. ``str()`` is a clear, secret-free message.

    ``reason``: config, missing_library, auth, permission, mount, not_found, invalid, unreachable,
    timeout, tls, throttled, server.
    """

    TRANSIENT = frozenset(('unreachable', 'timeout', 'throttled', 'server'))

    def __init__(self, message: str, reason: str = 'error', store: str | None = None, label: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.store = store
        self.label = label
        self.detail = ''

    @property
    def transient(self) -> bool:
        return self.reason in self.TRANSIENT

    def to_result(self) -> dict:
        result = {'error_type': type(self).__name__, 'reason': self.reason, 'msg': self.message}
        if self.store:
            result['store'] = self.store
        if self.label:
            result['target'] = self.label
        return result


class StoreConfigError(StoreError):
    """Found before any write: the store cannot work as configured (or cannot be reached at plan)."""

    def __init__(self, message: str, reason: str = 'config', store: str | None = None, label: str | None = None):
        super().__init__(message, reason=reason, store=store, label=label)


def _as_config_error(exc: StoreError) -> StoreConfigError:
    if isinstance(exc, StoreConfigError):
        return exc
    return StoreConfigError(exc.message, reason=exc.reason, store=exc.store, label=exc.label)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------

def _check_once(conn, key: str, probe: t.Callable[[], None]) -> None:
    """Runs ``probe`` once per shared connection and ``key`` for every org of the task; the other orgs get its
    outcome (a failure as the configuration error it is)."""
    with conn.lock:
        outcome = conn.checked.get(key)
    if outcome is None:
        try:
            probe()
            outcome = True
        except StoreError as exc:
            outcome = _as_config_error(exc)
        with conn.lock:
            conn.checked[key] = outcome
    if outcome is not True:
        raise outcome


def load_library(kind: str):
    """Import the kind's client library (``hvac`` or ``boto3``) or raise StoreConfigError."""
    name = LIBRARIES.get(kind)
    if name is None:
        raise StoreConfigError('unknown secret store %r; known: %s' % (kind, ', '.join(STORE_KINDS)), store=kind)
    try:
        if name == 'hvac':
            import hvac  # pylint: disable=import-outside-toplevel
            import requests  # pylint: disable=import-outside-toplevel
            return hvac, requests
        import boto3  # pylint: disable=import-outside-toplevel
        import botocore.config  # pylint: disable=import-outside-toplevel
        import botocore.exceptions  # pylint: disable=import-outside-toplevel
        import botocore.session  # pylint: disable=import-outside-toplevel
        _quiet_library_loggers()
        return boto3, botocore
    except ImportError:
        raise StoreConfigError(
            'deliver.%s needs the Python library %s on the controller (in the execution environment for '
            'AWX): pip install %s' % (kind, name, name), reason='missing_library', store=kind) from None


def _quiet_library_loggers():
    # botocore's DEBUG records carry request parameters and answers, the secret among them: whatever
    # level the root logger gets later, these stay at INFO or above.
    for name in ('botocore', 'boto3'):
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def _text(value) -> str | None:
    if value is None:
        return None
    value = str(value)
    return value if value.strip() else None


def _resolve(kind: str, options: t.Mapping, environ: t.Mapping[str, str]) -> dict:
    """Options with the spec's defaults and the environment fallbacks applied; "" counts as unset."""
    spec = OPTIONS[kind]
    unknown = sorted(set(options or {}) - set(spec))
    if unknown:
        raise StoreConfigError('deliver.%s has unknown option(s) %s; known: %s'
                               % (kind, ', '.join(unknown), ', '.join(sorted(spec))), store=kind)
    resolved = {}
    for name, opt in spec.items():
        value = (options or {}).get(name)
        if isinstance(value, str) and not value.strip():
            value = None
        resolved[name] = value
        resolved['_from_env_' + name] = False
        if value is None:
            for var in ENV_FALLBACKS[kind].get(name, ()):
                env_value = _text((environ or {}).get(var))
                if env_value is not None:
                    resolved[name] = env_value.strip()
                    resolved['_from_env_' + name] = var
                    break
        if resolved[name] is None and 'default' in opt:
            resolved[name] = opt['default']
    return resolved


def _check_url(kind: str, option: str, value: str, source) -> str:
    """An http(s) URL without credentials, query or fragment; returned without the trailing slash."""
    where = source if source else 'deliver.%s.%s' % (kind, option)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ('http', 'https') or not parts.hostname:
        raise StoreConfigError('%s %r is not a URL: expected https://host[:port]' % (where, value), store=kind)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise StoreConfigError('%s must be a plain https://host[:port][/path] URL (no user, query or fragment)'
                               % where, store=kind)
    host = parts.hostname.lower()
    if ':' in host:
        host = '[%s]' % host
    if (parts.scheme, port) in (('https', 443), ('http', 80)):
        port = None
    netloc = host if port is None else '%s:%d' % (host, port)
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip('/'), '', ''))


def _check_verify(kind: str, resolved: dict):
    """What to give the library as ``verify``: False, a CA bundle path, or True."""
    if not resolved['validate_certs']:
        return False
    ca_path = resolved.get('ca_path')
    if ca_path:
        ca_path = os.path.expanduser(str(ca_path))
        if not os.path.isfile(ca_path):
            source = resolved.get('_from_env_ca_path') or 'deliver.%s.ca_path' % kind
            raise StoreConfigError('%s %r is not a file: give the PEM file of the CA that signed the server '
                                   'certificate' % (source, ca_path), store=kind)
        return ca_path
    return True


def _check_timeout(kind: str, value) -> int:
    try:
        timeout = int(value)
    except (TypeError, ValueError):
        timeout = 0
    if timeout <= 0:
        raise StoreConfigError('deliver.%s.timeout %r must be a positive number of seconds' % (kind, value),
                               store=kind)
    return timeout


_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def _check_path(kind: str, what: str, path) -> str:
    if not isinstance(path, str) or not path.strip():
        raise StoreConfigError('deliver.%s.%s: the resolved path %r is empty' % (kind, what, path), store=kind)
    if _CONTROL.search(path):
        raise StoreConfigError('deliver.%s.%s: the resolved path %r contains a control character'
                               % (kind, what, path), store=kind)
    segments = path.split('/')
    if path.startswith('/') or path.endswith('/') or any(s in ('', '.', '..') for s in segments):
        raise StoreConfigError('deliver.%s.%s: the resolved path %r must be segments separated by single "/", '
                               'without a leading or trailing "/", "." or ".."' % (kind, what, path), store=kind)
    return path


def _digest(value) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(str(value).encode('utf-8')).hexdigest()[:16]


def _shared(cache: dict, key: tuple, factory):
    """cache[key], made once by factory() even when threads ask at the same time."""
    lock = cache.get(_CACHE_LOCK)
    if lock is None:
        lock = cache.setdefault(_CACHE_LOCK, threading.Lock())
    with lock:
        entry = cache.get(key)
        if entry is None:
            entry = factory()
            cache[key] = entry
    return entry


class _Scrub:
    """Removes known secrets from server-provided text before it goes into a message."""

    def __init__(self, secrets=()):
        self.secrets = set(s for s in secrets if s)

    def __call__(self, text, extra=(), limit=300) -> str:
        text = '' if text is None else str(text)
        for secret in sorted(self.secrets | set(s for s in extra if s), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, _MASK)
        text = ' '.join(text.split())
        return text if len(text) <= limit else text[:limit] + '...'


def _retry_policy() -> RetryPolicy:
    return RetryPolicy(**RETRY)


def _check_data(data) -> dict:
    if not isinstance(data, t.Mapping):
        raise TypeError('data must be a mapping')
    for name in ('key', 'secret'):
        if not isinstance(data.get(name), str) or not data.get(name):
            raise TypeError('data[%r] must be a non-empty string' % name)
    return {str(k): v for k, v in data.items()}


# ----------------------------------------------------------------------------------------------
# Public entry point and base classes
# ----------------------------------------------------------------------------------------------

def open_store(kind: str, options: t.Mapping, environ: t.Mapping[str, str], cache: dict) -> Store:
    """A Store of ``kind`` configured by ``options`` (see the module docstring)."""
    if kind == 'hashi_vault':
        return VaultStore(options, environ, cache)
    if kind == 'aws_secretsmanager':
        return AwsSecretsManagerStore(options, environ, cache)
    raise StoreConfigError('unknown secret store %r; known: %s' % (kind, ', '.join(STORE_KINDS)), store=kind)


class Store:
    kind = ''
    path_template = ''

    def check(self) -> None:
        raise NotImplementedError

    def target(self, path: str) -> Target:
        raise NotImplementedError


class Target:
    kind = ''
    label = ''
    identity: tuple = ()

    def write(self, data: dict) -> None:
        """Store a credential (``key`` and ``secret`` required)."""
        payload = _check_data(data)
        self.write_data(payload, payload['secret'])

    def read_back(self) -> str | None:
        data = self.read_data()
        key = data.get('key') if isinstance(data, dict) else None
        return key if isinstance(key, str) else None

    def write_data(self, data: dict, secret: str | None = None) -> None:
        """Store ``data`` (any JSON mapping); ``secret``: a value of it to keep out of messages."""
        raise NotImplementedError

    def read_data(self) -> dict | None:
        """The mapping the target holds now, or None when absent."""
        raise NotImplementedError

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.label)


# ----------------------------------------------------------------------------------------------
# HashiCorp Vault / OpenBao, KV version 2
# ----------------------------------------------------------------------------------------------

class _VaultConnection:
    """One hvac client per (URL, namespace, TLS settings, auth identity), shared by threads."""

    def __init__(self, cfg: dict, hvac, requests):
        self.cfg = cfg
        self.hvac = hvac
        self.requests = requests
        self.lock = threading.Lock()
        self.checked: dict = {}
        self.token_expires: float | None = None
        self.logged_in = False
        session = requests.Session()
        pool = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=64, max_retries=0)
        session.mount('https://', pool)
        session.mount('http://', pool)
        session.verify = cfg['verify']
        # token='' keeps hvac from reading VAULT_TOKEN or ~/.vault-token of the controller.
        self.client = hvac.Client(url=cfg['url'], token=cfg['token'] or '', verify=cfg['verify'],
                                  timeout=cfg['timeout'], session=session, namespace=cfg['namespace'])

    def ensure_login(self, scrub: _Scrub, label: str, refused_token: str | None = None):
        """Log in with the AppRole when not yet logged in, when the token nears its end, or when
        ``refused_token`` is still the client's token (another thread may have logged in already)."""
        if self.cfg['auth'] != 'approle':
            return
        with self.lock:
            fresh = self.logged_in and (self.token_expires is None or time.time() < self.token_expires)
            if fresh and (refused_token is None or refused_token != self.client.token):
                return
            cfg = self.cfg
            where = '%s/auth/%s/login' % (cfg['url'], cfg['auth_mount'])
            try:
                answer = self.call(lambda c: c.auth.approle.login(role_id=cfg['role_id'], secret_id=cfg['secret_id'],
                                                                  mount_point=cfg['auth_mount'], use_token=True),
                                   scrub, label, login=True, what='AppRole login')
            except StoreError as exc:
                if exc.reason in ('permission', 'invalid', 'not_found'):
                    raise StoreError('hashi_vault %s: AppRole login refused%s: check role_id, secret_id and '
                                     'auth_mount %r' % (where, exc.detail, cfg['auth_mount']),
                                     reason='auth', store='hashi_vault', label=label) from None
                raise
            auth = (answer or {}).get('auth') or {}
            lease = auth.get('lease_duration') or 0
            # Log in again before the token runs out (a run may outlast a short token TTL).
            self.token_expires = time.time() + lease * 0.8 if lease else None
            self.logged_in = True

    def call(self, fn, scrub: _Scrub, label: str, login: bool = False, what: str = 'request'):
        """fn(client) with retries of transient failures; hvac/requests errors become StoreErrors."""
        hvac, requests = self.hvac, self.requests
        exc_mod = hvac.exceptions
        policy = _retry_policy()
        attempt = 0
        relogged = login or self.cfg['auth'] != 'approle'
        while True:
            token = None
            try:
                if not login:
                    self.ensure_login(scrub, label)
                token = self.client.token
                return fn(self.client)
            except exc_mod.Forbidden as exc:
                if not relogged:
                    # The AppRole token may have expired or been revoked: one new login, then the verdict.
                    relogged = True
                    self.ensure_login(scrub, label, refused_token=token)
                    continue
                raise self._error('permission', exc, scrub, label, what) from None
            except (exc_mod.RateLimitExceeded, exc_mod.InternalServerError, exc_mod.BadGateway,
                    exc_mod.VaultDown, exc_mod.VaultNotInitialized) as exc:
                reason = 'throttled' if isinstance(exc, exc_mod.RateLimitExceeded) else 'server'
                if attempt < policy.max_retries:
                    policy.wait(attempt)
                    attempt += 1
                    continue
                raise self._error(reason, exc, scrub, label, what, attempts=attempt + 1) from None
            except exc_mod.VaultError as exc:
                reason = {exc_mod.InvalidPath: 'not_found', exc_mod.Unauthorized: 'permission',
                          exc_mod.InvalidRequest: 'invalid'}.get(type(exc), 'server')
                raise self._error(reason, exc, scrub, label, what) from None
            except requests.exceptions.SSLError as exc:
                raise self._error('tls', exc, scrub, label, what) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                reason = 'timeout' if isinstance(exc, requests.exceptions.Timeout) else 'unreachable'
                if attempt < policy.max_retries:
                    policy.wait(attempt)
                    attempt += 1
                    continue
                raise self._error(reason, exc, scrub, label, what, attempts=attempt + 1) from None
            except requests.exceptions.RequestException as exc:
                raise self._error('unreachable', exc, scrub, label, what) from None

    def _error(self, reason, exc, scrub, label, what, attempts=1) -> StoreError:
        url = self.cfg['url']
        tries = ' after %d attempts' % attempts if attempts > 1 else ''
        server_says = ''
        errors = getattr(exc, 'errors', None)
        if errors:
            server_says = ': Vault says: %s' % scrub('; '.join(str(e) for e in errors))
        elif isinstance(getattr(exc, 'text', None), str) and exc.text.strip():
            server_says = ': the server says: %s' % scrub(exc.text, limit=200)
        if reason == 'permission':
            message = 'permission denied%s' % server_says
        elif reason == 'throttled':
            message = 'throttled by the server (HTTP 429)%s%s' % (tries, server_says)
        elif reason == 'server':
            status = getattr(getattr(exc, 'response', None), 'status_code', None) or _vault_status(exc)
            message = 'server error%s%s%s' % (' (HTTP %s)' % status if status else '', tries, server_says)
        elif reason == 'tls':
            message = ('TLS handshake failed (%s): give ca_path (or VAULT_CACERT) the CA that signed the '
                       "server's certificate" % _cause_name(exc))
        elif reason in ('unreachable', 'timeout'):
            message = ('server unreachable%s (%s)' % (tries, _cause_name(exc)) if reason == 'unreachable'
                       else 'no answer within %d s%s' % (self.cfg['timeout'], tries))
        else:
            message = '%s%s' % ({'not_found': 'not found', 'invalid': 'request refused'}.get(reason, reason),
                                server_says)
        error = StoreError('%s: %s failed: %s' % (label or 'hashi_vault %s' % url, what, message),
                           reason=reason, store='hashi_vault', label=label)
        error.detail = server_says
        return error


def _vault_status(exc) -> int | None:
    names = {'InternalServerError': 500, 'BadGateway': 502, 'VaultDown': 503, 'VaultNotInitialized': 501}
    return names.get(type(exc).__name__)


def _cause_name(exc) -> str:
    """A short, secret-free name of a connection failure's root cause."""
    seen = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur)
        for marker, name in (('Connection refused', 'connection refused'), ('timed out', 'timed out'),
                             ('Name or service not known', 'unknown host'), ('CERTIFICATE_VERIFY_FAILED',
                                                                             'certificate verify failed'),
                             ('certificate verify failed', 'certificate verify failed'),
                             ('Connection reset', 'connection reset'), ('RemoteDisconnected', 'connection closed'),
                             ('WRONG_VERSION_NUMBER', 'not a TLS server'), ('No route to host', 'no route to host'),
                             ('Network is unreachable', 'network unreachable')):
            if marker in text:
                return name
        nxt = getattr(cur, 'reason', None) or cur.__cause__ or cur.__context__
        if not isinstance(nxt, BaseException):
            nxt = (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        cur = nxt
    return type(exc).__name__


class VaultStore(Store):
    kind = 'hashi_vault'

    def __init__(self, options, environ, cache):
        cfg = _resolve(self.kind, options, environ)
        self.path_template = cfg['path']
        if not cfg['url']:
            raise StoreConfigError('deliver.hashi_vault.url is not set (nor VAULT_ADDR): give the Vault / OpenBao '
                                   'address, e.g. https://vault.example.com:8200', store=self.kind)
        cfg['url'] = _check_url(self.kind, 'url', cfg['url'], cfg['_from_env_url'])
        mount = (cfg['mount'] or '').strip('/')
        if not mount or _CONTROL.search(mount) or any(s in ('', '.', '..') for s in mount.split('/')):
            raise StoreConfigError('deliver.hashi_vault.mount %r is not a mount path (e.g. secret)' % cfg['mount'],
                                   store=self.kind)
        cfg['mount'] = mount
        cfg['namespace'] = (cfg['namespace'] or '').strip('/') or None
        cfg['auth_mount'] = (cfg['auth_mount'] or 'approle').strip('/')
        cfg['verify'] = _check_verify(self.kind, cfg)
        cfg['timeout'] = _check_timeout(self.kind, cfg['timeout'])
        if cfg['auth'] == 'token':
            if not cfg['token']:
                hint = ''
                if _text((environ or {}).get('VAULT_ROLE_ID')) and _text((environ or {}).get('VAULT_SECRET_ID')):
                    hint = '; the environment has VAULT_ROLE_ID and VAULT_SECRET_ID: set auth: approle to use them'
                raise StoreConfigError('deliver.hashi_vault.token is not set (nor VAULT_TOKEN) for auth: token%s'
                                       % hint, store=self.kind)
            auth_id = ('token', _digest(cfg['token']))
        elif cfg['auth'] == 'approle':
            missing = [n for n in ('role_id', 'secret_id') if not cfg[n]]
            if missing:
                raise StoreConfigError('deliver.hashi_vault: auth approle needs %s (options, or VAULT_ROLE_ID / '
                                       'VAULT_SECRET_ID)' % ' and '.join(missing), store=self.kind)
            auth_id = ('approle', cfg['auth_mount'], cfg['role_id'], _digest(cfg['secret_id']))
        else:
            raise StoreConfigError('deliver.hashi_vault.auth %r is not one of token, approle' % cfg['auth'],
                                   store=self.kind)
        hvac, requests = load_library(self.kind)
        self.cfg = cfg
        self.scrub = _Scrub((cfg['token'], cfg['secret_id']))
        key = ('sfdc.eca.stores', self.kind, cfg['url'], cfg['namespace'], str(cfg['verify']), cfg['timeout'],
               auth_id)
        self.conn = _shared(cache, key, lambda: _VaultConnection(cfg, hvac, requests))
        self.where = cfg['url'] + (' namespace %s' % cfg['namespace'] if cfg['namespace'] else '')

    def check(self) -> None:
        """Logs in (AppRole) and asks which engine is mounted at ``mount``; writes nothing."""
        _check_once(self.conn, self.cfg['mount'], self._check_mount)

    def _check_mount(self):
        mount, label = self.cfg['mount'], 'hashi_vault %s mount %s/' % (self.where, self.cfg['mount'])
        try:
            answer = self.conn.call(lambda c: c.adapter.get('/v1/sys/internal/ui/mounts/%s' % mount),
                                    self.scrub, label, what='reading the mount')
        except StoreError as exc:
            if exc.reason != 'permission':
                raise
            try:
                self.conn.call(lambda c: c.auth.token.lookup_self(), self.scrub, label, what='looking up the token')
            except StoreError as exc2:
                if exc2.reason == 'permission':
                    raise StoreConfigError('%s: Vault refused the token (invalid, expired or revoked)' % label,
                                           reason='auth', store=self.kind, label=label) from None
            raise StoreConfigError('%s: the token may do nothing under %s/ (no such mount, or no policy of the '
                                   'token grants access there): check mount and the token\'s policies'
                                   % (label, mount), reason='permission', store=self.kind, label=label) from None
        data = (answer or {}).get('data') or {}
        engine = data.get('type')
        version = str((data.get('options') or {}).get('version') or '1')
        if engine != 'kv' or version != '2':
            found = '%s engine' % engine if engine != 'kv' else 'KV version %s engine' % version
            raise StoreConfigError('%s is a %s; deliver.hashi_vault needs a KV version 2 mount (mount option)'
                                   % (label, found), reason='mount', store=self.kind, label=label)

    def target(self, path: str) -> VaultTarget:
        return VaultTarget(self, _check_path(self.kind, 'path', path))


class VaultTarget(Target):
    kind = 'hashi_vault'

    def __init__(self, store: VaultStore, path: str):
        self.store = store
        self.path = path
        cfg = store.cfg
        ns = '[namespace %s] ' % cfg['namespace'] if cfg['namespace'] else ''
        self.label = 'hashi_vault %s %s%s/data/%s' % (cfg['url'], ns, cfg['mount'], path)
        self.identity = ('hashi_vault', cfg['url'], cfg['namespace'] or '', cfg['mount'], path)

    def _call(self, fn, what, extra_secrets=()):
        scrub = _Scrub(self.store.scrub.secrets | set(s for s in extra_secrets if s))
        try:
            return self.store.conn.call(fn, scrub, self.label, what=what)
        except StoreError as exc:
            raise self._explain(exc) from None

    def _explain(self, exc: StoreError) -> StoreError:
        cfg = self.store.cfg
        if exc.reason == 'permission':
            exc.message += (' (the token\'s policy needs create, update and read on %s/data/%s)'
                            % (cfg['mount'], self.path))
        elif exc.reason == 'not_found' and 'no handler for route' in exc.message:
            exc.reason = 'mount'
            exc.message = ('%s: no secrets engine is mounted at %s/ on %s: check the mount option (a KV '
                           'version 2 mount)' % (self.label, cfg['mount'], self.store.where))
        exc.args = (exc.message,)
        return exc

    def write_data(self, data: dict, secret: str | None = None) -> None:
        payload = {str(k): v for k, v in data.items()}
        mount, path = self.store.cfg['mount'], self.path

        def write(client, cas=None):
            return client.secrets.kv.v2.create_or_update_secret(path=path, secret=payload, mount_point=mount, cas=cas)

        try:
            self._call(write, 'writing', (secret,))
        except StoreError as exc:
            if exc.reason != 'invalid' or 'check-and-set' not in exc.message:
                raise
            # The mount (or secret) requires check-and-set: write on top of the current version.
            meta = self._metadata()
            version = int((meta or {}).get('current_version') or 0)
            self._call(lambda c: write(c, cas=version), 'writing (check-and-set)', (secret,))

    def _metadata(self):
        mount, path = self.store.cfg['mount'], self.path
        try:
            answer = self._call(lambda c: c.secrets.kv.v2.read_secret_metadata(path=path, mount_point=mount),
                                'reading the metadata')
        except StoreError as exc:
            if exc.reason == 'not_found':
                return None
            raise
        return (answer or {}).get('data')

    def read_data(self) -> dict | None:
        mount, path = self.store.cfg['mount'], self.path
        try:
            answer = self._call(lambda c: c.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=False), 'reading back')
        except StoreError as exc:
            if exc.reason == 'not_found':
                return None
            raise
        data = ((answer or {}).get('data') or {}).get('data')
        return data if isinstance(data, dict) else None


# ----------------------------------------------------------------------------------------------
# AWS Secrets Manager
# ----------------------------------------------------------------------------------------------

_AWS_NAME = re.compile(r'^[A-Za-z0-9/_+=.@-]{1,512}$')
_AWS_ARN = re.compile(r'^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$')
_AWS_PERMISSION = frozenset(('AccessDeniedException', 'AccessDenied', 'UnrecognizedClientException',
                             'InvalidClientTokenId', 'InvalidSignatureException', 'SignatureDoesNotMatch',
                             'ExpiredTokenException', 'ExpiredToken', 'IncompleteSignature',
                             'MissingAuthenticationToken', 'UnauthorizedOperation'))
_AWS_THROTTLE = frozenset(('ThrottlingException', 'Throttling', 'TooManyRequestsException',
                           'RequestLimitExceeded', 'SlowDown', 'RequestThrottled'))
_AWS_SERVER = frozenset(('InternalServiceError', 'InternalFailure', 'ServiceUnavailable', 'InternalError'))


class _AwsConnection:
    """One boto3 client per (endpoint, region, TLS settings, credentials), shared by threads."""

    def __init__(self, cfg: dict, credentials: dict, boto3, botocore):
        self.cfg = cfg
        self.botocore = botocore
        self.lock = threading.Lock()
        self.checked: dict = {}
        try:
            core = botocore.session.Session()
            # The task's environment names the shared files, as the process environment would.
            for variable, name in (('config_file', 'config_file'), ('credentials_file', 'credentials_file')):
                if cfg.get(name):
                    core.set_config_variable(variable, cfg[name])
            session = boto3.session.Session(region_name=cfg['region'], botocore_session=core, **credentials)
        except botocore.exceptions.ProfileNotFound:
            raise StoreConfigError('deliver.aws_secretsmanager: AWS profile %r not found in the shared config '
                                   'files' % credentials.get('profile_name'), store='aws_secretsmanager') from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreConfigError('deliver.aws_secretsmanager: cannot set up the AWS session (%s)'
                                   % type(exc).__name__, store='aws_secretsmanager') from None
        self.session = session
        self.region = cfg['region'] or session.region_name
        config = botocore.config.Config(
            connect_timeout=cfg['timeout'], read_timeout=cfg['timeout'], max_pool_connections=64,
            retries={'total_max_attempts': 1}, user_agent_extra='sfdc.eca')
        self.client = None
        if self.region:
            try:
                self.client = session.client('secretsmanager', region_name=self.region,
                                             endpoint_url=cfg['endpoint_url'], verify=cfg['verify'], config=config)
            except botocore.exceptions.BotoCoreError as exc:
                raise StoreConfigError('deliver.aws_secretsmanager: cannot make a Secrets Manager client for region '
                                       '%r (%s)' % (self.region, type(exc).__name__), store='aws_secretsmanager') from None

    def call(self, fn, scrub: _Scrub, label: str, what: str, tolerate=()):
        """fn(client) with retries of transient failures; botocore errors become StoreErrors.

        Error codes in ``tolerate`` come back as the ClientError instead of being raised.
        """
        bc = self.botocore.exceptions
        policy = _retry_policy()
        attempt = 0
        while True:
            try:
                return fn(self.client)
            except bc.ClientError as exc:
                code, status, message = _aws_error(exc)
                if code in tolerate:
                    return exc
                if code in _AWS_THROTTLE or status == 429:
                    reason = 'throttled'
                elif code in _AWS_SERVER or (status or 0) >= 500:
                    reason = 'server'
                elif code in _AWS_PERMISSION or status == 403:
                    reason = 'permission'
                elif code == 'ResourceNotFoundException':
                    reason = 'not_found'
                else:
                    reason = 'invalid'
                if reason in ('throttled', 'server') and attempt < policy.max_retries:
                    policy.wait(attempt)
                    attempt += 1
                    continue
                tries = ' after %d attempts' % (attempt + 1) if attempt else ''
                name = 'HTTP %s' % code if code.isdigit() else code or 'HTTP %s' % status
                detail = '%s%s%s' % (name, tries, ': %s' % scrub(message) if message else '')
                raise StoreError('%s: %s failed: %s' % (label, what, _aws_hint(reason, detail)),
                                 reason=reason, store='aws_secretsmanager', label=label) from None
            except bc.NoCredentialsError:
                raise StoreError('%s: %s failed: no AWS credentials found (%s)' % (label, what, _AWS_CREDS_HINT),
                                 reason='config', store='aws_secretsmanager', label=label) from None
            except bc.SSLError as exc:
                raise StoreError('%s: %s failed: TLS handshake failed (%s): give ca_path (or AWS_CA_BUNDLE) the CA '
                                 'that signed the endpoint\'s certificate' % (label, what, _cause_name(exc)),
                                 reason='tls', store='aws_secretsmanager', label=label) from None
            except (bc.EndpointConnectionError, bc.ConnectionClosedError, bc.ReadTimeoutError,
                    bc.ConnectTimeoutError, bc.ConnectionError, bc.HTTPClientError) as exc:
                timeout = isinstance(exc, (bc.ReadTimeoutError, bc.ConnectTimeoutError))
                if attempt < policy.max_retries:
                    policy.wait(attempt)
                    attempt += 1
                    continue
                tries = ' after %d attempts' % (attempt + 1) if attempt else ''
                message = ('no answer within %d s%s' % (self.cfg['timeout'], tries) if timeout
                           else 'endpoint unreachable%s (%s)' % (tries, _cause_name(exc)))
                raise StoreError('%s: %s failed: %s' % (label, what, message), reason='timeout' if timeout
                                 else 'unreachable', store='aws_secretsmanager', label=label) from None
            except bc.ParamValidationError:
                # Its text quotes the parameters, the secret among them.
                raise StoreError('%s: %s failed: the request was refused by botocore\'s parameter check'
                                 % (label, what), reason='invalid', store='aws_secretsmanager', label=label) from None
            except bc.BotoCoreError as exc:
                raise StoreError('%s: %s failed: %s' % (label, what, type(exc).__name__),
                                 reason='server', store='aws_secretsmanager', label=label) from None


_AWS_CREDS_HINT = ('set access_key and secret_key, or profile, or give the job AWS_ACCESS_KEY_ID / '
                   'AWS_SECRET_ACCESS_KEY, a shared credentials file or an instance / task role')


def _aws_error(exc):
    response = getattr(exc, 'response', None) or {}
    error = response.get('Error') or {}
    code = str(error.get('Code') or '')
    message = str(error.get('Message') or '')
    status = (response.get('ResponseMetadata') or {}).get('HTTPStatusCode')
    if message.lstrip().startswith('<'):
        # An XML error body (some endpoints): its Code and Message elements.
        inner_code = re.search(r'<Code>([^<]*)</Code>', message)
        inner_message = re.search(r'<Message>([^<]*)</Message>', message)
        code = inner_code.group(1) if inner_code else code
        message = inner_message.group(1) if inner_message else ''
    if code.isdigit() and not status:
        status = int(code)
    return code, status, message


def _aws_hint(reason, detail):
    if reason == 'permission':
        return ('permission denied (%s): the credentials need secretsmanager:CreateSecret, PutSecretValue '
                '(UpdateSecret with kms_key_id) and GetSecretValue on the secret, and kms:GenerateDataKey / '
                'kms:Decrypt on its KMS key' % detail)
    if reason == 'throttled':
        return 'throttled by AWS (%s)' % detail
    if reason == 'server':
        return 'server error (%s)' % detail
    if reason == 'not_found':
        return 'not found (%s)' % detail
    return 'request refused (%s)' % detail


class AwsSecretsManagerStore(Store):
    kind = 'aws_secretsmanager'

    def __init__(self, options, environ, cache):
        cfg = _resolve(self.kind, options, environ)
        self.path_template = cfg['secret_id']
        if cfg['endpoint_url']:
            cfg['endpoint_url'] = _check_url(self.kind, 'endpoint_url', cfg['endpoint_url'],
                                             cfg['_from_env_endpoint_url'])
        cfg['verify'] = _check_verify(self.kind, cfg)
        cfg['timeout'] = _check_timeout(self.kind, cfg['timeout'])
        for name, variable in (('config_file', 'AWS_CONFIG_FILE'), ('credentials_file', 'AWS_SHARED_CREDENTIALS_FILE')):
            cfg[name] = _text((environ or {}).get(variable))
        credentials, cred_id = self._credentials(cfg, options or {})
        boto3, botocore = load_library(self.kind)
        self.cfg = cfg
        self.scrub = _Scrub((cfg['secret_key'], cfg['session_token']))
        key = ('sfdc.eca.stores', self.kind, cfg['endpoint_url'], cfg['region'], str(cfg['verify']), cfg['timeout'],
               cfg['config_file'], cfg['credentials_file'], cred_id)
        self.conn = _shared(cache, key, lambda: _AwsConnection(cfg, credentials, boto3, botocore))
        self.region = self.conn.region
        self.where = ' '.join(x for x in (cfg['endpoint_url'], self.region) if x)

    def _credentials(self, cfg, options):
        """boto3 Session keyword arguments, and a secret-free identity of them for the cache key.

        Keys or a profile given as options win over the environment's; without either, boto3's own
        chain (shared files, container and instance roles) finds them.
        """
        explicit_keys = any(_text(options.get(n)) for n in ('access_key', 'secret_key'))
        use_profile = cfg['profile'] and (_text(options.get('profile')) and not explicit_keys
                                          or not (cfg['access_key'] or cfg['secret_key']))
        if use_profile:
            return {'profile_name': cfg['profile']}, ('profile', cfg['profile'])
        if cfg['access_key'] or cfg['secret_key']:
            if not (cfg['access_key'] and cfg['secret_key']):
                missing = 'secret_key (or AWS_SECRET_ACCESS_KEY)' if cfg['access_key'] else \
                    'access_key (or AWS_ACCESS_KEY_ID)'
                raise StoreConfigError('deliver.aws_secretsmanager: %s is missing; access_key and secret_key go '
                                       'together' % missing, store=self.kind)
            creds = {'aws_access_key_id': cfg['access_key'], 'aws_secret_access_key': cfg['secret_key']}
            if cfg['session_token']:
                creds['aws_session_token'] = cfg['session_token']
            return creds, ('keys', cfg['access_key'], _digest(cfg['secret_key']), _digest(cfg['session_token']))
        return {}, ('chain',)

    def check(self) -> None:
        """Region and credentials can be found; no call to AWS (no permission needed for it)."""
        _check_once(self.conn, 'credentials', self._check)

    def _check(self):
        if not self.region:
            raise StoreConfigError('deliver.aws_secretsmanager.region is not set (nor AWS_REGION / AWS_DEFAULT_REGION '
                                   'or a region in the AWS profile)', store=self.kind)
        bc = self.conn.botocore.exceptions
        try:
            credentials = self.conn.session.get_credentials()
        except bc.BotoCoreError as exc:
            raise StoreConfigError('deliver.aws_secretsmanager: cannot load AWS credentials (%s)'
                                   % type(exc).__name__, reason='auth', store=self.kind) from None
        if credentials is None:
            raise StoreConfigError('deliver.aws_secretsmanager: no AWS credentials found: %s' % _AWS_CREDS_HINT,
                                   reason='auth', store=self.kind)

    def target(self, path: str) -> AwsSecretsManagerTarget:
        if not self.region:
            self._check()
        path = _check_path(self.kind, 'secret_id', path)
        if not (_AWS_NAME.match(path) or _AWS_ARN.match(path)):
            raise StoreConfigError('deliver.aws_secretsmanager.secret_id: %r is not a secret name AWS accepts '
                                   '(letters, digits and /_+=.@- only, at most 512 characters)' % path,
                                   store=self.kind)
        return AwsSecretsManagerTarget(self, path)


class AwsSecretsManagerTarget(Target):
    kind = 'aws_secretsmanager'

    def __init__(self, store: AwsSecretsManagerStore, secret_id: str):
        self.store = store
        self.secret_id = secret_id
        self.label = 'aws_secretsmanager %s %s' % (store.where, secret_id)
        self.identity = ('aws_secretsmanager', store.cfg['endpoint_url'] or '', store.region, secret_id)

    def _call(self, fn, what, secret=None, tolerate=()):
        scrub = _Scrub(self.store.scrub.secrets | ({secret} if secret else set()))
        return self.store.conn.call(fn, scrub, self.label, what, tolerate=tolerate)

    def write_data(self, data: dict, secret: str | None = None) -> None:
        payload = {str(k): v for k, v in data.items()}
        body = json.dumps(payload, sort_keys=True)
        kms = self.store.cfg['kms_key_id']
        # One idempotency token for every retry of this write: AWS makes at most one version of it.
        token = str(uuid.uuid4())
        sid = self.secret_id

        def update(client):
            if kms:
                return client.update_secret(SecretId=sid, SecretString=body, KmsKeyId=kms, ClientRequestToken=token)
            return client.put_secret_value(SecretId=sid, SecretString=body, ClientRequestToken=token)

        def create(client):
            names = (payload.get('org'), payload.get('app_name'), payload.get('consumer_name'))
            what = 'Salesforce consumer key and secret (%s %s %s)' % names if 'key' in payload else 'sfdc.eca data'
            kwargs = {'Name': sid, 'SecretString': body, 'ClientRequestToken': token,
                      'Description': '%s, written by sfdc.eca' % what}
            if kms:
                kwargs['KmsKeyId'] = kms
            return client.create_secret(**kwargs)

        answer = self._call(update, 'writing', secret, tolerate=('ResourceNotFoundException',))
        if not isinstance(answer, Exception):
            return
        if sid.startswith('arn:'):
            raise StoreError('%s: writing failed: no secret with this ARN (a secret given by ARN is not created)'
                             % self.label, reason='not_found', store=self.kind, label=self.label)
        answer = self._call(create, 'creating the secret', secret, tolerate=('ResourceExistsException',))
        if isinstance(answer, Exception):
            # Created meanwhile by someone else: a new version then.
            self._call(update, 'writing', secret)

    def read_data(self) -> dict | None:
        answer = self._call(lambda c: c.get_secret_value(SecretId=self.secret_id), 'reading back',
                            tolerate=('ResourceNotFoundException',))
        if isinstance(answer, Exception):
            return None
        try:
            data = json.loads(answer.get('SecretString') or '')
        except ValueError:
            return None
        return data if isinstance(data, dict) else None
