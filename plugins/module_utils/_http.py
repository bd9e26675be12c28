# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP transport of EcaClient: urllib3's connection pools, used directly.

requests is the dependency: it brings urllib3 and says which CA bundle and which proxies apply, as it
always has. Its per-request layers (merging session settings, cookies, hooks, its response object) are
left out: none is needed here, and together they cost more CPU than a request to a nearby server, which
adds up over a fleet of orgs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import codecs
import importlib.util
import json
import os
import re
import ssl
import threading
import traceback
import zlib

from ansible.module_utils.six.moves.urllib.parse import urlencode
from ansible.module_utils.six.moves.urllib.request import getproxies

try:
    import urllib3
    import urllib3.util.ssl_
    from urllib3 import exceptions as errors
    # requests itself is imported only when its CA bundle or proxy rules are needed (~20 ms per process)
    HAS_REQUESTS = importlib.util.find_spec('requests') is not None
    REQUESTS_IMPORT_ERROR = None if HAS_REQUESTS else 'ImportError: No module named requests'
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

CHARSET_RE = re.compile(r'charset=["\']?([\w.:-]+)', re.I)
HEADERS = {'User-Agent': 'sfdc.eca', 'Accept-Encoding': 'gzip, deflate'}
# An answer is read up to this size once decoded (max_response_mb): a small gzip body can decode to gigabytes.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024


class ResponseTooLarge(Exception):
    """The answer is larger than the cap once decoded; the rest of it was not read."""

    def __init__(self, status, limit, encoding=None):
        super(ResponseTooLarge, self).__init__(
            'the answer (HTTP %s%s) is larger than %s once decoded' % (status, ', %s' % encoding if encoding else '',
                                                                       size_text(limit)))
        self.status = status
        self.limit = limit


class UnreadableEncoding(Exception):
    """The answer uses a Content-Encoding this client did not ask for."""


def size_text(size):
    if size >= 1024 * 1024:
        return '%g MB' % round(size / 1048576.0, 2)
    return '%d bytes' % size


class Response:
    """What the client reads of an answer: status, headers (case-insensitive) and the whole body."""

    __slots__ = ('status_code', 'headers', 'content')

    def __init__(self, status_code, headers, content):
        self.status_code = status_code
        self.headers = headers
        self.content = content or b''

    @property
    def text(self):
        match = CHARSET_RE.search(self.headers.get('Content-Type') or '')
        try:
            return self.content.decode(match.group(1) if match else 'utf-8', 'replace')
        except LookupError:
            return self.content.decode('utf-8', 'replace')

    def json(self):
        """The body as JSON; ValueError when it is not (json also detects UTF-16 and UTF-32)."""
        content = self.content
        if content.startswith(codecs.BOM_UTF8):
            content = content[len(codecs.BOM_UTF8):]
        return json.loads(content)


class Http:
    """The connections of one org's calls: a urllib3 pool manager per CA setting and proxy, safe to share
    between threads. No cookie or header is kept between requests: each carries only its own.

    ``environment`` caches what the environment gives: the proxies (HTTPS_PROXY, ALL_PROXY, NO_PROXY, or the
    system's), the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) per (host, verify), and a TLS context per
    CA bundle. Reading the environment scans os.environ and loading a CA bundle parses every certificate:
    both cost more than a request to a nearby server. A fleet of orgs may share one cache.
    """

    def __init__(self, environment=None):
        self.environment = {} if environment is None else environment
        self._managers = {}
        self._lock = threading.Lock()

    def settings(self, url, host, verify):
        """-> {'proxy': URL or None, 'verify': True, False or a CA bundle path}, as requests would use them."""
        key = (host, verify)
        if key not in self.environment:
            ca = verify
            if verify is True:
                ca = os.environ.get('REQUESTS_CA_BUNDLE') or os.environ.get('CURL_CA_BUNDLE') or True
            if 'proxies' not in self.environment:
                self.environment['proxies'] = getproxies()
            proxy = None
            if self.environment['proxies']:
                import requests.utils
                # NO_PROXY and the scheme decide, per host, as requests does
                proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
            self.environment[key] = {'proxy': proxy, 'verify': ca}
        return self.environment[key]

    def _tls(self, verify):
        key = ('tls', verify)
        if key not in self.environment:
            self.environment[key] = _tls_context(verify)
        return self.environment[key]

    def _manager(self, proxy, verify, secure):
        key = (proxy, verify, secure)
        with self._lock:
            manager = self._managers.get(key)
            if manager is None:
                # plain http (allow_http, test servers only) needs no TLS context, so no CA bundle either
                manager = self._managers[key] = _pool_manager(proxy, verify, self._tls(verify) if secure else None)
            return manager

    def request(self, method, url, host, verify, timeout, headers=None, params=None, data=None, json_body=None,
                max_bytes=None):
        """Send one request (no retry, no redirect followed) and read the whole answer, at most ``max_bytes`` once
        decoded (ResponseTooLarge beyond). Raises urllib3's errors (urllib3.exceptions); the caller maps them."""
        settings = self.settings(url, host, verify)
        all_headers = dict(HEADERS)
        all_headers.update(headers or {})
        body = None
        if params:
            url += ('&' if '?' in url else '?') + urlencode(params, doseq=True)
        if data is not None:
            body = urlencode(data, doseq=True)
            all_headers['Content-Type'] = 'application/x-www-form-urlencoded'
        elif json_body is not None:
            body = json.dumps(json_body, allow_nan=False).encode('utf-8')
            all_headers['Content-Type'] = 'application/json'
        manager = self._manager(settings['proxy'], settings['verify'], url.lower().startswith('https:'))
        resp = manager.request(method, url, body=body, headers=all_headers, redirect=False, retries=False,
                               timeout=urllib3.Timeout(connect=timeout, read=timeout), preload_content=False,
                               decode_content=False)
        try:
            content = read_capped(resp, DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)
        except BaseException:
            resp.close()   # the rest of the answer is not read: this connection is not reused
            raise
        resp.release_conn()
        return Response(resp.status, resp.headers, content)

    def close(self):
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()


def _decoder(encoding):
    """A zlib decoder for the Content-Encoding (None: the body is as it is)."""
    name = (encoding or '').strip().lower()
    if name in ('', 'identity'):
        return None
    if name in ('gzip', 'x-gzip'):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == 'deflate':
        return zlib.decompressobj(32 + zlib.MAX_WBITS)   # zlib or gzip framing, detected
    raise UnreadableEncoding("the answer uses Content-Encoding '%s', which was not asked for" % name[:40])


def read_capped(resp, limit):
    """The whole body of a urllib3 response opened with preload_content=False, decoded here so that no more
    than ``limit`` bytes are ever produced."""
    encoding = resp.headers.get('Content-Encoding')
    decoder = _decoder(encoding)
    length = resp.headers.get('Content-Length')
    if decoder is None and length and length.isdigit() and int(length) > limit:
        raise ResponseTooLarge(resp.status, limit)
    out = bytearray()
    while True:
        raw = resp.read(CHUNK, decode_content=False)
        if not raw:
            break
        if decoder is None:
            out += raw
        else:
            try:
                out += decoder.decompress(raw, limit + 1 - len(out))
            except zlib.error:
                raise UnreadableEncoding('the answer is not valid %s data' % encoding)
            if decoder.unconsumed_tail:
                raise ResponseTooLarge(resp.status, limit, encoding)
        if len(out) > limit:
            raise ResponseTooLarge(resp.status, limit, encoding)
    if decoder is not None:
        out += decoder.flush()
        if len(out) > limit:
            raise ResponseTooLarge(resp.status, limit, encoding)
    return bytes(out)


def _tls_context(verify):
    """A TLS context trusting the CA bundle ``verify`` names (True: the one requests uses, certifi's) or nothing
    (False); urllib3 checks the host name against the certificate."""
    if verify is False:
        return urllib3.util.ssl_.create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    context = urllib3.util.ssl_.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if verify is True:
        import requests.certs
        verify = requests.certs.where()
    try:
        # a directory of hashed certificates works too (REQUESTS_CA_BUNDLE may name one)
        context.load_verify_locations(**{'capath' if os.path.isdir(verify) else 'cafile': verify})
    except (OSError, ValueError) as exc:
        raise errors.SSLError('cannot load the CA bundle %s (%s)' % (verify, getattr(exc, 'strerror', None) or type(exc).__name__))
    return context


class ProxyUnusable(Exception):
    """The environment names a proxy this client cannot use; the message names its scheme only."""


def _pool_manager(proxy, verify, context):
    tls = {}
    if context is not None:
        tls = {'cert_reqs': 'CERT_NONE' if verify is False else 'CERT_REQUIRED', 'ssl_context': context}
    if not proxy:
        return urllib3.PoolManager(maxsize=10, **tls)
    import requests.utils
    if '://' not in proxy:
        proxy = 'http://' + proxy
    username, password = requests.utils.get_auth_from_url(proxy)
    if proxy.lower().startswith('socks'):
        if importlib.util.find_spec('socks') is None:
            raise ProxyUnusable('a %s proxy needs the Python package PySocks' % proxy.split(':', 1)[0])
        from urllib3.contrib.socks import SOCKSProxyManager
        return SOCKSProxyManager(proxy, username=username or None, password=password or None, maxsize=10, **tls)
    proxy_headers = urllib3.make_headers(proxy_basic_auth='%s:%s' % (username, password)) if username else None
    if context is not None:
        # an https:// proxy's own certificate is checked against the same CA bundle, as requests does
        tls['proxy_ssl_context'] = context
    return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, maxsize=10, **tls)
