# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""EcaClient: the Salesforce External Client App OAuth credential API over one org's connections (_http.Http)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible.module_utils.six.moves.urllib.parse import urlsplit, quote

from ansible_collections.sfdc.eca.plugins.module_utils._errors import (
    EcaAmbiguousWrite,
    EcaApiError,
    EcaAuthError,
    EcaFeatureDisabledError,
    EcaInputError,
    EcaLimitExceededError,
    EcaNotFoundError,
    EcaRateLimitedError,
    EcaTransportError,
)
from ansible_collections.sfdc.eca.plugins.module_utils._retry import RetryPolicy, parse_retry_after

from ansible_collections.sfdc.eca.plugins.module_utils._http import (
    DEFAULT_MAX_BYTES,
    HAS_REQUESTS,
    Http,
    ProxyUnusable,
    ResponseTooLarge,
    UnreadableEncoding,
)

if HAS_REQUESTS:
    from urllib3 import exceptions as http_errors

API_VERSION_RE = re.compile(r'^[0-9]{2}\.[0-9]$')
# The staged credential endpoints exist since 65.0; usage (59.0) and credentials (60.0) are older.
MIN_API_VERSION = 65.0
SETTING_NAME = ("'Allow access to External Client App consumer secrets via REST API' "
                "(Setup > External Client App Settings; metadata ExternalClientAppSettings.enableClientSecretInRestApiAccess)")
STAGED_STATE_ORDER = ('Active', 'Rotated', 'Expired')
MAX_PAGES = 1000
HTML_TITLE_RE = re.compile(r'<title[^>]*>([^<]{0,120})', re.I)
TAG_RE = re.compile(r'<[^>]*>?')
_CHECKSUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345'
ID_CHARS_RE = re.compile(r'^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$')
_SHOWN_MAX = 120


def id15(value):
    """The case-sensitive 15-character form of a Salesforce id (None when it is not one).

    An 18-character id's last three characters encode which of the first 15 are upper case, so an 18-character
    id that lost its case (lower-cased by a spreadsheet or a case-insensitive system) still names one record."""
    if not isinstance(value, str) or not ID_CHARS_RE.match(value.strip()):
        return None
    value = value.strip()
    head = value[:15]
    if len(value) == 15:
        return head
    bits = []
    for char in value[15:].upper():
        index = _CHECKSUM.find(char)
        if index < 0:
            return None
        bits.extend(bool(index >> i & 1) for i in range(5))
    return ''.join(c.upper() if upper else c.lower() for c, upper in zip(head, bits))


def to18(value):
    """The 18-character form of a 15- or 18-character id (the value itself when it is not an id)."""
    head = id15(value)
    if head is None:
        return value
    suffix = ''
    for chunk in range(3):
        bits = 0
        for i, char in enumerate(head[chunk * 5:chunk * 5 + 5]):
            if 'A' <= char <= 'Z':
                bits |= 1 << i
        suffix += _CHECKSUM[bits]
    return head + suffix


def same_id(a, b):
    """Whether two Salesforce ids (15 or 18 characters) name the same record: equal 15-character forms."""
    first, second = id15(a), id15(b)
    return first is not None and first == second


def _display_url(parts):
    """A URL for messages: scheme, host, port and path only (never userinfo, query or fragment)."""
    host = parts.hostname or ''
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = '%s:%s' % (host, port) if port else host
    return '%s://%s%s' % (parts.scheme, netloc, parts.path) if parts.scheme else (netloc + parts.path) or '(empty)'


def without_userinfo(value):
    """A URL without its user information (user:password@), which may hold a password."""
    text = str(value)
    if '@' in text:
        start = text.find('://') + 3 if '://' in text.split('@', 1)[0] else 0
        text = text[:start] + '(user information removed)@' + text[text.rindex('@') + 1:]
    return text


def shown(value):
    """An input value as messages may show it: without user information (user:password@) and not too long."""
    text = without_userinfo(value)
    if len(text) > _SHOWN_MAX:
        text = text[:_SHOWN_MAX] + '...'
    return text


def check_url(value, option, allow_http=False):
    """Validate an absolute base URL (scheme + host); return (base without trailing slash, path)."""
    if not value or not isinstance(value, str):
        raise EcaInputError('%s is required: the https URL of the org, e.g. https://mycompany.my.salesforce.com.' % option)
    if any(c in value for c in '\r\n\t '):
        raise EcaInputError('%s must not contain spaces or line breaks.' % option)
    try:
        parts = urlsplit(value.strip())
        hostname = parts.hostname
    except ValueError as exc:
        # urlsplit refuses an unclosed IPv6 bracket and similar
        raise EcaInputError("%s '%s' is not a valid URL (%s), e.g. https://mycompany.my.salesforce.com."
                            % (option, shown(value), exc))
    if parts.username or parts.password or '@' in parts.netloc or (not parts.netloc and '@' in value):
        raise EcaInputError("%s '%s' must not carry user information (user:password@); give credentials in their own "
                            'options.' % (option, shown(value)))
    if parts.query or parts.fragment:
        raise EcaInputError("%s '%s' must not have a query or fragment: give only scheme and host."
                            % (option, _display_url(parts)))
    allowed = ('https', 'http') if allow_http else ('https',)
    if parts.scheme not in allowed:
        if parts.scheme == 'http':
            raise EcaInputError("%s '%s' uses http: use https (or set allow_http: true, only for local test servers)."
                                % (option, shown(value)))
        raise EcaInputError("%s '%s' is not an absolute https URL, e.g. https://mycompany.my.salesforce.com."
                            % (option, shown(value)))
    if not hostname:
        raise EcaInputError("%s '%s' has no host name, e.g. https://mycompany.my.salesforce.com." % (option, shown(value)))
    try:
        parts.port
    except ValueError:
        raise EcaInputError("%s '%s' has an invalid port: use a number from 1 to 65535." % (option, shown(value)))
    return '%s://%s' % (parts.scheme, parts.netloc), parts.path


def check_instance_url(value, allow_http=False):
    base, path = check_url(value, 'instance_url', allow_http)
    if path not in ('', '/'):
        raise EcaInputError("instance_url '%s' must not have a path ('%s'): give only scheme and host, e.g. %s."
                            % (shown(value), shown(path), base))
    return base


def check_token_url(value, allow_http=False):
    base, path = check_url(value, 'token_url', allow_http)
    return base + path


def check_api_version(value):
    value = str(value).strip()
    if value.lower().startswith('v'):
        value = value[1:]
    if not API_VERSION_RE.match(value):
        raise EcaInputError("api_version '%s' is not of the form NN.N (for example 65.0)." % shown(value))
    if float(value) < MIN_API_VERSION:
        raise EcaInputError("api_version '%s' is too old: the staged credential endpoints exist since %.1f, so use %.1f "
                            'or later (the default is 65.0).' % (value, MIN_API_VERSION, MIN_API_VERSION))
    return value


def canonical_state(state):
    """Active, Rotated or Expired whatever the letter case of the answer; anything else as it is."""
    if isinstance(state, str):
        for known in STAGED_STATE_ORDER:
            if state.strip().lower() == known.lower():
                return known
    return state


def normalize_staged(item):
    """A staged credential as snake_case (documented and flat variants)."""
    if not isinstance(item, dict):
        return None
    result = {
        'id': item.get('id'),
        'key': item.get('key') or item.get('consumerKey'),
        'state': canonical_state(item.get('state')),
        'created_by': item.get('createdBy'),
        'created_date': item.get('createdDate'),
        'expiration_date': item.get('expirationDate'),
    }
    secret = item.get('secret') or item.get('consumerSecret')
    if secret:
        result['secret'] = secret
    return result


def staged_from_body(body):
    """The one staged item of a GET/POST/PATCH body: wrapper {"stagedCredentials": [...]}, flat item, or list."""
    if isinstance(body, dict) and 'stagedCredentials' in body:
        items = body.get('stagedCredentials') or []
        if not isinstance(items, list):
            raise EcaApiError("The staged credentials answer has a 'stagedCredentials' that is a %s, not a list: the API "
                              'answered in an unexpected shape.' % type(items).__name__)
    elif isinstance(body, list):
        items = body
    elif isinstance(body, dict) and (body.get('id') or body.get('key') or body.get('consumerKey')):
        items = [body]
    else:
        items = []
    normalized = [normalize_staged(i) for i in items if isinstance(i, dict)]
    if not normalized:
        return None
    # The slot holds one credential; if an answer ever lists several, the live one matters most.
    normalized.sort(key=lambda s: STAGED_STATE_ORDER.index(s['state']) if s['state'] in STAGED_STATE_ORDER else 9)
    return normalized[0]


def normalize_consumer(item):
    if not isinstance(item, dict) or not item.get('id'):
        raise EcaApiError("The consumers answer has an entry without an 'id' (%s): the API answered in an unexpected shape."
                          % type(item).__name__)
    return {
        'id': item.get('id'),
        'key': item.get('key'),
        'name': item.get('name'),
        'url': item.get('url'),
        'staged_credentials_url': item.get('stagedCredentialsUrl') or item.get('stagedCredentialsURL'),
    }


class _Transient(Exception):
    """A transport failure; ``sent`` says whether the request may have reached the server."""

    def __init__(self, message, sent):
        super(_Transient, self).__init__(message)
        self.sent = sent


class _Unreadable(Exception):
    """An answer came but cannot be read (too large once decoded, or an encoding not asked for)."""

    def __init__(self, message, host):
        super(_Unreadable, self).__init__(message)
        self.host = host


class EcaClient:
    """One org, one token, one set of connections. Counts every HTTP request in ``api_calls``."""

    def __init__(self, instance_url, auth, api_version='65.0', validate_certs=True, ca_path=None,
                 timeout=30, retry=None, allow_http=False, http=None, max_response_bytes=DEFAULT_MAX_BYTES):
        if not HAS_REQUESTS:
            raise EcaInputError('The Python library requests is required on the host that runs the module.')
        self.instance_url = check_instance_url(instance_url, allow_http)
        self.api_version = check_api_version(api_version)
        self.base_path = '/services/data/v%s' % self.api_version
        self.auth = auth
        self.allow_http = allow_http
        if ca_path:
            if not os.path.isfile(os.path.expanduser(ca_path)):
                raise EcaInputError("ca_path '%s' does not exist or is not a file: give a PEM CA bundle." % ca_path)
            self.verify = os.path.expanduser(ca_path)
        else:
            self.verify = bool(validate_certs)
        try:
            self.timeout = float(timeout)
        except (TypeError, ValueError):
            raise EcaInputError("timeout '%s' is not a number of seconds." % timeout)
        if self.timeout <= 0:
            raise EcaInputError("timeout must be more than 0 seconds, got %s." % timeout)
        self.retry = retry or RetryPolicy()
        try:
            self.max_response_bytes = int(max_response_bytes)
        except (TypeError, ValueError):
            raise EcaInputError("max_response_mb '%s' is not a number." % max_response_bytes)
        if self.max_response_bytes < 1024:
            raise EcaInputError('max_response_mb must allow at least 1 KB, got %s bytes.' % max_response_bytes)
        # shared by the operations of one org (one TLS connection) when the caller passes it
        self.http = http or Http()
        # (app, consumer) pairs known to exist in this run: a 404 on their staged slot means "nothing staged"
        self.known_consumers = set()
        self.throttled = 0   # answers 429 seen
        self.api_calls = 0
        self.api_usage = None
        self.token_info = None

    # -- transport -------------------------------------------------------------------------------

    def _host(self, url):
        parts = urlsplit(url)
        return parts.netloc

    def _send(self, method, url, **kwargs):
        self.api_calls += 1
        host = self._host(url)
        try:
            return self.http.request(method, url, host, self.verify, self.timeout, max_bytes=self.max_response_bytes,
                                     **kwargs)
        except ResponseTooLarge as exc:
            raise _Unreadable('%s %s: %s, so it was not read (a compressed body can expand to gigabytes); if the org '
                              'really answers that much, raise max_response_mb' % (method, urlsplit(url).path, exc), host)
        except UnreadableEncoding as exc:
            raise _Unreadable('%s %s: %s' % (method, urlsplit(url).path, exc), host)
        except http_errors.SSLError as exc:
            raise EcaTransportError(
                'TLS verification of %s failed (%s). Set ca_path to the PEM bundle of the CA that signed the '
                "server's certificate; validate_certs: false disables the check (test servers only)."
                % (host, _tls_reason(exc)), host=host)
        except (ProxyUnusable, http_errors.ProxySchemeUnknown) as exc:
            raise EcaTransportError('The proxy of the environment (HTTPS_PROXY) cannot be used: %s.'
                                    % (exc if isinstance(exc, ProxyUnusable) else type(exc).__name__), host=host)
        except http_errors.ProxyError as exc:
            raise _proxy_failure(exc, host)
        except http_errors.NewConnectionError:
            raise _Transient('cannot connect to %s (connection refused or host unreachable)' % host, sent=False)
        except http_errors.ConnectTimeoutError:
            raise _Transient('connecting to %s timed out after %ss' % (host, self.timeout), sent=False)
        except http_errors.ReadTimeoutError:
            raise _Transient('%s did not answer within %ss' % (host, self.timeout), sent=True)
        except http_errors.ProtocolError:
            raise _Transient('the connection to %s was reset or closed before an answer' % host, sent=True)
        except (http_errors.HTTPError, ValueError) as exc:
            raise EcaTransportError('request to %s failed: %s' % (host, type(exc).__name__), host=host)

    def _secrets(self, extra=()):
        values = set(v for v in extra if v)
        if self.token_info and self.token_info.get('access_token'):
            values.add(self.token_info['access_token'])
        for name in ('access_token', 'client_secret', 'refresh_token', 'private_key_passphrase'):
            value = getattr(self.auth, name, None)
            if value:
                values.add(value)
        return values

    def _redact(self, text, extra=()):
        """Server text may echo what we sent (a token, a secret): mask those before it reaches a message."""
        if not text:
            return text
        text = str(text)
        for value in sorted(self._secrets(extra), key=len, reverse=True):
            if len(value) >= 4:
                text = text.replace(value, '********')
        return text

    def token_request(self, url, form, auth_flow):
        """POST a form to the OAuth token endpoint (retried on 5xx/connection errors); return its JSON."""
        host = self._host(url)
        path = urlsplit(url).path
        retry_number = 0
        while True:
            try:
                resp = self._send('POST', url, data=form, headers={'Accept': 'application/json'})
            except _Unreadable as exc:
                raise EcaTransportError('Token request failed: %s.' % exc, host=exc.host)
            except _Transient as exc:
                if retry_number < self.retry.max_retries:
                    self.retry.wait(retry_number)
                    retry_number += 1
                    continue
                raise EcaTransportError('Token request failed: %s.' % exc, host=host)
            if self.retry.retryable_status(resp.status_code) and retry_number < self.retry.max_retries:
                self.retry.wait(retry_number, parse_retry_after(resp.headers.get('Retry-After')))
                retry_number += 1
                continue
            body = _json_or_none(resp)
            if resp.status_code == 200 and isinstance(body, dict) and body.get('access_token'):
                return body
            error = description = None
            sent = [form.get(k) for k in ('client_secret', 'assertion', 'refresh_token')]
            if isinstance(body, dict):
                error = self._redact(body.get('error'), sent)
                description = self._redact(body.get('error_description'), sent)
            if resp.status_code == 200:
                error = error or 'invalid_response'
                description = description or 'the answer carried no access_token'
            raise EcaAuthError(
                'Authentication (%s) at %s%s was refused: HTTP %s %s: %s.'
                % (auth_flow, host, path, resp.status_code, error or 'error', description or 'no description'),
                error=error, description=description, status=resp.status_code, auth_flow=auth_flow)

    def authenticate(self):
        """Get this client's token (once); returns the token endpoint's answer."""
        self.auth.validate()
        self.token_info = self.auth.authenticate(self)
        return self.token_info

    def request_token(self, flow):
        """Authenticate with another strategy (for example to verify a new key/secret) without using its token here."""
        flow.validate()
        return flow.authenticate(self)

    @property
    def token(self):
        if self.token_info is None:
            self.authenticate()
        return self.token_info['access_token']

    @property
    def user_id(self):
        """The authenticated user's id, from the token answer's identity URL (None when unknown)."""
        identity = (self.token_info or {}).get('id') or ''
        tail = identity.rstrip('/').rsplit('/', 1)[-1]
        return tail if tail.startswith('005') else None

    def exchange(self, method, path, params=None, json_body=None):
        """One API call as the org answers it, whatever the status (the probe records answers, errors included).
        Transient failures are retried as for every call (a write only when it certainly did not arrive); a 401
        renews the token once. Raises only for transport failures."""
        url = self._url(path)
        write = self.retry.is_write(method)
        renewed = False
        retry_number = 0
        while True:
            kwargs = {'headers': {'Authorization': 'Bearer %s' % self.token, 'Accept': 'application/json'}}
            if params:
                kwargs['params'] = params
            if json_body is not None:
                kwargs['json_body'] = json_body
            try:
                resp = self._send(method, url, **kwargs)
            except _Unreadable as exc:
                raise EcaTransportError('%s.' % exc, host=exc.host)
            except _Transient as exc:
                if (not write or not exc.sent) and retry_number < self.retry.max_retries:
                    self.retry.wait(retry_number)
                    retry_number += 1
                    continue
                raise EcaTransportError('%s %s failed: %s.' % (method, urlsplit(url).path, exc), host=self._host(url))
            status = resp.status_code
            if status == 429:
                self.throttled += 1
            if status == 401 and not renewed and self.auth.can_renew:
                renewed = True
                self.authenticate()
                continue
            if (self.retry.retryable_status(status) and (not write or status == 429)
                    and retry_number < self.retry.max_retries):
                self.retry.wait(retry_number, parse_retry_after(resp.headers.get('Retry-After')))
                retry_number += 1
                continue
            return resp

    def check_token(self):
        """Prove the token works with the cheapest call: one usage page of one app."""
        self._request('GET', '/apps/oauth/usage', params={'pageSize': 1})

    def _url(self, path):
        if path.startswith('http://') or path.startswith('https://'):
            # Paging URLs are followed on our own host only: the token never leaves the org's URL.
            parts = urlsplit(path)
            path = parts.path + ('?' + parts.query if parts.query else '')
        if path.startswith('/services/'):
            return self.instance_url + path
        return self.instance_url + self.base_path + path

    def _request(self, method, path, params=None, json_body=None):
        url = self._url(path)
        shown_path = urlsplit(url).path
        write = self.retry.is_write(method)
        renewed = False
        retry_number = 0
        while True:
            headers = {'Authorization': 'Bearer %s' % self.token, 'Accept': 'application/json'}
            kwargs = {'headers': headers}
            if params:
                kwargs['params'] = params
            if json_body is not None:
                kwargs['json_body'] = json_body
            try:
                resp = self._send(method, url, **kwargs)
            except _Unreadable as exc:
                if write:
                    raise EcaAmbiguousWrite('%s; the write may or may not have happened.' % exc, method=method,
                                            path=shown_path, cause=str(exc))
                raise EcaTransportError('%s.' % exc, host=exc.host)
            except _Transient as exc:
                if (not write or not exc.sent) and retry_number < self.retry.max_retries:
                    self.retry.wait(retry_number)
                    retry_number += 1
                    continue
                if write and exc.sent:
                    raise EcaAmbiguousWrite('%s %s: %s; the write may or may not have happened.' % (method, shown_path, exc),
                                            method=method, path=shown_path, cause=str(exc))
                raise EcaTransportError('%s %s failed: %s (after %d attempts).' % (method, shown_path, exc, retry_number + 1),
                                        host=self._host(url))
            usage = resp.headers.get('Sforce-Limit-Info')
            if usage:
                self.api_usage = usage.replace('api-usage=', '')
            status = resp.status_code
            if status == 429:
                self.throttled += 1
            if status == 401 and not renewed and self.auth.can_renew:
                renewed = True
                self.authenticate()
                continue
            if self.retry.retryable_status(status):
                retry_after = parse_retry_after(resp.headers.get('Retry-After'))
                # A write answered 5xx may have been applied; 429 means it was refused unprocessed.
                if (not write or status == 429) and retry_number < self.retry.max_retries:
                    self.retry.wait(retry_number, retry_after)
                    retry_number += 1
                    continue
                if write and status != 429:
                    error = self._api_error(method, shown_path, resp)
                    ambiguous = EcaAmbiguousWrite('%s; the write may or may not have happened.' % error,
                                                  method=method, path=shown_path, cause=str(error))
                    ambiguous.retry_after = retry_after
                    raise ambiguous
                raise self._api_error(method, shown_path, resp, attempts=retry_number + 1)
            if status >= 300:
                raise self._api_error(method, shown_path, resp)
            if status == 204 or not resp.content:
                return None
            body = _json_or_none(resp)
            if body is None:
                if not write and retry_number < self.retry.max_retries:
                    self.retry.wait(retry_number)
                    retry_number += 1
                    continue
                message = '%s %s answered HTTP %s with a body that is not valid JSON' % (method, shown_path, status)
                if write:
                    raise EcaAmbiguousWrite(message + '; the write may or may not have happened.', method=method,
                                            path=shown_path, cause=message)
                raise EcaApiError(message + '.', status=status, method=method, path=shown_path)
            return body

    def _api_error(self, method, path, resp, attempts=1):
        status = resp.status_code
        body = _json_or_none(resp)
        item = {}
        if isinstance(body, list) and body and isinstance(body[0], dict):
            item = body[0]
        elif isinstance(body, dict):
            item = body
        code = self._redact(item.get('errorCode') or item.get('error'))
        api_message = self._redact(item.get('message') or item.get('error_description'))
        if api_message is None and body is None:
            api_message = self._redact(_page_text(resp)) or None
        if code is not None and not isinstance(code, str):
            code = str(code)
        if api_message is not None and not isinstance(api_message, str):
            api_message = str(api_message)
        where = '%s %s' % (method, path)
        detail = 'HTTP %s%s%s' % (status, ' ' + code if code else '', ': ' + api_message if api_message else '')
        fields = dict(status=status, error_code=code, api_message=api_message, method=method, path=path)
        if status == 429:
            if attempts > 1:
                detail += ' (after %d attempts)' % attempts
            return EcaRateLimitedError(
                '%s was rate limited: %s. The org, or a gateway in front of it, limits how fast requests may come; this '
                'is not the daily API limit. Retry later, or rotate fewer orgs at once.' % (where, detail), **fields)
        if status == 403 and code == 'REQUEST_LIMIT_EXCEEDED':
            return EcaLimitExceededError(
                "The org's daily API request limit is spent (%s answered %s). Retrying will not help: "
                'wait until the 24-hour usage falls below the limit, or ask Salesforce to raise it.' % (where, detail), **fields)
        if api_message and 'not enabled' in api_message.lower():
            return EcaFeatureDisabledError(
                '%s failed: %s. Turn on %s in the org, and give the calling user the permissions '
                "'External Client App Developer' and 'View Client Secret'." % (where, detail, SETTING_NAME), **fields)
        if status == 404:
            return EcaNotFoundError('%s failed: %s.' % (where, detail), **fields)
        if status == 401:
            hint = ('the given access_token is invalid or expired: get a fresh one (sfdc.eca.eca_token) or use a renewable flow'
                    if not self.auth.can_renew else 'the token was refused even after renewing it once')
            return EcaApiError('%s failed: %s; %s.' % (where, detail, hint), **fields)
        if status == 403:
            return EcaApiError(
                "%s failed: %s. The calling user needs the permissions 'External Client App Developer' and "
                "'View Client Secret'." % (where, detail), **fields)
        if attempts > 1:
            detail += ' (after %d attempts)' % attempts
        return EcaApiError('%s failed: %s.' % (where, detail), **fields)

    def _paged(self, path, key):
        """Items of every page. Paging ends at a null nextPageUrl, at an empty page, at a nextPageUrl already read, or
        at a page that brings nothing new (an endpoint that ignores ``page`` answers its first page again); none of
        these is an error. A page of the wrong shape is."""
        items = []
        seen_urls = set()
        seen_items = set()
        url = path
        shown = urlsplit(self._url(path)).path
        while url and url not in seen_urls:
            if len(seen_urls) >= MAX_PAGES:
                raise EcaApiError('GET %s: more than %d pages; paging stopped.' % (shown, MAX_PAGES), method='GET', path=shown)
            seen_urls.add(url)
            body = self._request('GET', url)
            if not isinstance(body, dict) or not isinstance(body.get(key) or [], list):
                raise EcaApiError("GET %s answered in an unexpected shape: expected an object with a '%s' list."
                                  % (shown, key), method='GET', path=shown)
            fresh = 0
            for item in body.get(key) or []:
                try:
                    marker = repr(sorted(item.items())) if isinstance(item, dict) else repr(item)
                except (TypeError, RecursionError):
                    marker = id(item)
                if marker not in seen_items:
                    seen_items.add(marker)
                    items.append(item)
                    fresh += 1
            if not fresh:
                break
            url = body.get('nextPageUrl')
            if url is not None and not isinstance(url, str):
                raise EcaApiError("GET %s answered a nextPageUrl that is a %s, not a URL: paging stopped."
                                  % (shown, type(url).__name__), method='GET', path=shown)
        return items

    # -- API -------------------------------------------------------------------------------------

    def list_apps(self):
        apps = []
        for app in self._paged('/apps/oauth/usage', 'apps'):
            if not isinstance(app, dict) or not app.get('identifier'):
                raise EcaApiError("GET %s/apps/oauth/usage has an app without an 'identifier': the API answered in an "
                                  'unexpected shape.' % self.base_path, method='GET', path=self.base_path + '/apps/oauth/usage')
            apps.append({'identifier': app['identifier'], 'developer_name': app.get('developerName'), 'label': app.get('label')})
        return apps

    def _consumer_path(self, app_id, consumer_id):
        return '/apps/oauth/credentials/%s/%s' % (quote(app_id, safe=''), quote(consumer_id, safe=''))

    def list_consumers(self, app_id):
        path = '/apps/oauth/credentials/%s' % quote(app_id, safe='')
        consumers = [normalize_consumer(c) for c in self._paged(path, 'consumers')]
        for consumer in consumers:
            self.known_consumers.add((id15(app_id), id15(consumer['id'])))
        return consumers

    def get_main(self, app_id, consumer_id, part='key'):
        body = self._request('GET', self._consumer_path(app_id, consumer_id), params={'part': part}) or {}
        if not isinstance(body, dict):
            raise EcaApiError('GET %s answered in an unexpected shape: expected an object with the consumer\'s key.'
                              % self._consumer_path(app_id, consumer_id), method='GET')
        self.known_consumers.add((id15(app_id), id15(consumer_id)))
        result = {'id': body.get('id') or consumer_id, 'key': body.get('key')}
        if body.get('secret'):
            result['secret'] = body['secret']
        return result

    def get_staged(self, app_id, consumer_id):
        """The consumer's staged credential, or None. A 404 means "nothing staged" only for a consumer known to exist
        (listed, or read, in this run); otherwise the consumer is read to tell an empty slot from a wrong id."""
        try:
            body = self._request('GET', self._consumer_path(app_id, consumer_id) + '/staged')
        except EcaNotFoundError:
            self.confirm_consumer(app_id, consumer_id)
            return None
        return staged_from_body(body)

    def confirm_consumer(self, app_id, consumer_id):
        """Raise EcaNotFoundError naming the app or the consumer unless this consumer exists."""
        if (id15(app_id), id15(consumer_id)) in self.known_consumers:
            return
        try:
            self.get_main(app_id, consumer_id)
            return
        except EcaNotFoundError as exc:
            missing = exc
        try:
            consumers = self.list_consumers(app_id)
        except EcaNotFoundError:
            raise _checked(EcaNotFoundError(
                "No External Client App with id '%s' in %s (%s %s answered 404): check app_id, or give app_name "
                '(sfdc.eca.eca_usage_info lists the apps and their ids).' % (shown(app_id), self.instance_url,
                                                                             missing.method, missing.path),
                status=404, error_code=missing.error_code, method=missing.method, path=missing.path))
        listing = ', '.join("'%s' (%s)" % (c.get('name'), c.get('id')) if c.get('name') else str(c.get('id'))
                            for c in consumers[:20]) or '(none)'
        raise _checked(EcaNotFoundError(
            "App %s has no consumer with id '%s' (%s %s answered 404). Its consumers: %s."
            % (app_id, shown(consumer_id), missing.method, missing.path, listing),
            status=404, error_code=missing.error_code, method=missing.method, path=missing.path))

    def stage(self, app_id, consumer_id):
        # An empty POST body made the connection hang for one client; {} is accepted.
        body = self._request('POST', self._consumer_path(app_id, consumer_id) + '/staged', json_body={})
        return staged_from_body(body)

    def rotate(self, app_id, consumer_id, staged_id):
        path = '%s/staged/%s' % (self._consumer_path(app_id, consumer_id), quote(staged_id, safe=''))
        return staged_from_body(self._request('PATCH', path, json_body={'command': 'rotate'}))

    def delete_staged(self, app_id, consumer_id, staged_id):
        path = '%s/staged/%s' % (self._consumer_path(app_id, consumer_id), quote(staged_id, safe=''))
        try:
            self._request('DELETE', path)
        except EcaNotFoundError:
            return False
        return True


def _checked(error):
    """A not-found error that already names the missing app or consumer."""
    error.consumer_checked = True
    return error


def _json_or_none(resp):
    try:
        return resp.json()
    except (ValueError, RecursionError):
        # RecursionError: nested deeper than the parser goes, which no answer of this API is
        return None


def _page_text(resp):
    """What a non-JSON error body says: an HTML page's title (a proxy's or a maintenance page), or its first words."""
    text = (resp.text or '').strip()
    content_type = (resp.headers.get('Content-Type') or '').lower()
    if 'html' in content_type or text[:1] == '<':
        match = HTML_TITLE_RE.search(text)
        title = match.group(1) if match else TAG_RE.sub(' ', text)
        title = ' '.join(title.split())[:100]
        return ("the answer is an HTML page%s, not the API's JSON: a proxy or a maintenance page answered"
                % (' (%s)' % title if title else ''))
    return text[:200]


def _proxy_failure(exc, host):
    """A ProxyError before the tunnel stood (proxy unreachable, tunnel refused) sent nothing; urllib3 also
    reports a connection dropped after the request went through the tunnel as a ProxyError, and for a write
    that one is ambiguous."""
    original = getattr(exc, 'original_error', None)
    text = str(original or '')
    refused = re.search(r'Tunnel connection failed: [0-9]{3}[ A-Za-z-]*', text)
    if isinstance(original, (http_errors.NewConnectionError, http_errors.ConnectTimeoutError)) or refused:
        return _Transient('cannot reach %s through the proxy of the environment (HTTPS_PROXY%s)'
                          % (host, ': ' + refused.group(0).strip() if refused else ''), sent=False)
    return _Transient('the connection to %s through the proxy of the environment was reset or closed before an '
                      'answer' % host, sent=True)


def _tls_reason(exc):
    text = str(exc)
    match = re.search(r'cannot load the CA bundle [^()]*\([^()]*\)', text)
    if match:
        return match.group(0)
    match = re.search(r'certificate verify failed: ([^()\'"]+)', text)
    if match:
        return 'certificate verify failed: ' + match.group(1).strip().rstrip('.')
    for marker in ('hostname mismatch', 'self-signed', 'WRONG_VERSION_NUMBER', 'CERTIFICATE_VERIFY_FAILED'):
        if marker in text:
            return marker
    return 'certificate not trusted'
