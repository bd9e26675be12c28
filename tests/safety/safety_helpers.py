"""Helpers and fixtures of the safety suites (crash, fault, secret-leak, hostile input).

- `SafetyRun`: one sandboxed ansible run: its own HOME, TMPDIR, ANSIBLE_LOCAL_TEMP/REMOTE_TEMP, log file and
  retry-file dir, so that every byte it writes can be collected and searched afterwards.
- `LoopServer`: a tiny loopback HTTP(S) server with a handler function; `proxy_to(sim, org, mutate)` forwards to
  the simulator and lets a test corrupt answers (truncated, huge, looping pages, missing fields ...).
- `make_tls(dir, ips)`: a throwaway CA and a server certificate for the given loopback addresses.
- `scan(paths_or_bytes, secrets)`: which secrets appear where.
"""

import datetime
import http.server
import ipaddress
import json
import os
import signal
import socketserver
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent


def collections_path():
    if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        return os.environ["ANSIBLE_COLLECTIONS_PATH"]
    if ROOT.parents[1].name == "ansible_collections":
        return str(ROOT.parents[2])
    raise RuntimeError("set ANSIBLE_COLLECTIONS_PATH so ansible finds sfdc.eca")


COLLS = collections_path()
for _p in (COLLS.split(os.pathsep)[0], str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else name


# -- secrets ---------------------------------------------------------------------------------------

MIN_SECRET_LEN = 8


def pem_fragments(pem):
    """A private key PEM and its base64 body lines: any one of them appearing is a leak."""
    if not pem:
        return set()
    if isinstance(pem, bytes):
        pem = pem.decode()
    lines = [ln.strip() for ln in pem.splitlines() if ln.strip() and not ln.startswith("-----")]
    return {pem.strip()} | {ln for ln in lines if len(ln) >= 32}


def searchable(secrets):
    return {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}


def mask(secret):
    return "%s...(%d chars)" % (secret[:4], len(secret))


def find_secrets(blob, secrets):
    """Secrets (masked) found in a str/bytes blob, also in JSON-escaped or literal-\\n forms."""
    if isinstance(blob, bytes):
        blob = blob.decode("utf-8", "replace")
    variants = (blob, blob.replace("\\n", "\n"), blob.replace("\\\\n", "\n"))
    return sorted({mask(s) for s in searchable(secrets) if any(s in v for v in variants)})


class Scan:
    """Every file under some roots plus extra blobs, searched for secrets."""

    def __init__(self):
        self.bytes_scanned = 0
        self.files_scanned = 0
        self.hits = []

    def blob(self, label, data, secrets, allowed=()):
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        self.bytes_scanned += len(data)
        found = find_secrets(data, set(secrets) - set(allowed))
        self.hits += [(label, f) for f in found]
        return found

    def tree(self, root, secrets, skip=()):
        root = Path(root)
        if not root.exists():
            return
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path not in skip:
                self.files_scanned += 1
                self.blob(str(path), path.read_bytes(), secrets)


# -- sandboxed ansible runs --------------------------------------------------------------------------

class SafetyRun:
    """A sandbox for ansible commands: everything they may write lands under `base`."""

    def __init__(self, base):
        self.base = Path(base)
        self.home = self.base / "home"
        self.tmp = self.base / "tmp"
        self.local_tmp = self.base / "local_tmp"
        self.remote_tmp = self.base / "remote_tmp"
        self.retry_dir = self.base / "retry"
        self.work = self.base / "work"
        self.log = self.base / "ansible.log"
        for d in (self.home, self.tmp, self.local_tmp, self.remote_tmp, self.retry_dir, self.work):
            d.mkdir(parents=True, exist_ok=True)
        self.outputs = []   # (label, bytes) of stdout/stderr of every command

    def env(self, extra=None):
        env = {
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(self.home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": str(self.tmp),
            "PYTHONPATH": os.pathsep.join([COLLS.split(os.pathsep)[0], str(ROOT)]),
            "ANSIBLE_COLLECTIONS_PATH": COLLS,
            "ANSIBLE_LOCAL_TEMP": str(self.local_tmp),
            "ANSIBLE_REMOTE_TEMP": str(self.remote_tmp),
            "ANSIBLE_LOG_PATH": str(self.log),
            "ANSIBLE_RETRY_FILES_ENABLED": "true",
            "ANSIBLE_RETRY_FILES_SAVE_PATH": str(self.retry_dir),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        }
        env.update(extra or {})
        return env

    def run(self, args, extra_env=None, timeout=300, label=None, cwd=None):
        # A session of its own: a crash hook may SIGKILL the whole process group of the run.
        proc = subprocess.run(args, cwd=str(cwd or self.work), env=self.env(extra_env), capture_output=True,
                              timeout=timeout, start_new_session=True, stdin=subprocess.DEVNULL, check=False)
        label = label or " ".join(str(a) for a in args[:3])
        self.outputs.append((label + " stdout", proc.stdout))
        self.outputs.append((label + " stderr", proc.stderr))
        return proc

    def popen(self, args, extra_env=None, cwd=None):
        out = open(self.base / ("popen-%d.out" % len(self.outputs)), "wb")
        proc = subprocess.Popen(args, cwd=str(cwd or self.work), env=self.env(extra_env), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.outputs.append(("popen output file", None))
        return proc

    def playbook(self, playbook, inventory, *args, extra_env=None, timeout=300):
        cmd = [tool("ansible-playbook"), "-i", str(inventory), str(playbook)] + [str(a) for a in args]
        return self.run(cmd, extra_env=extra_env, timeout=timeout, label="ansible-playbook %s" % Path(playbook).name)

    def scan(self, secrets, allowed_files=()):
        """Search every byte this sandbox holds (files and captured outputs) for secrets."""
        s = Scan()
        for label, data in self.outputs:
            if data is not None:
                s.blob(label, data, secrets)
        s.tree(self.base, secrets, skip=set(Path(p) for p in allowed_files))
        return s


@pytest.fixture
def sandbox(tmp_path):
    return SafetyRun(tmp_path / "sandbox")


def process_tree(pid):
    """pid and its descendants, parents first. ansible-core's workers call setsid(): the process group of
    ansible-playbook does not hold them, so a kill of that group leaves the worker running the rotation."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


def crash(proc):
    """SIGKILL ansible-playbook and every process it started, as one crash: each is stopped first (none sees
    another die and reacts, none forks unseen), then all are killed."""
    stopped = []
    while True:
        new = [p for p in process_tree(proc.pid) if p not in stopped]
        if not new:
            break
        for p in new:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped += new
    for p in stopped:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return stopped


def kill_tree(proc):
    """SIGKILL ansible-playbook and every process it started (``crash``), and reap it."""
    crash(proc)
    proc.wait(timeout=30)


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- TLS and loopback servers ------------------------------------------------------------------------

def make_tls(directory, ips=("127.0.0.1",)):
    """(ca_path, cert_path, key_path) of a throwaway CA and a server certificate for `ips`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("safety CA")).issuer_name(name("safety CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(ips[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(i)) for i in ips]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


class Reply:
    def __init__(self, status=200, body=b"", headers=None, reset=False):
        self.status = status
        self.body = body if isinstance(body, bytes) else (json.dumps(body).encode() if not isinstance(body, str) else body.encode())
        self.headers = dict(headers or {})
        self.reset = reset
        if body and "Content-Type" not in self.headers:
            self.headers["Content-Type"] = "application/json;charset=UTF-8"


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LoopServer:
    """A loopback HTTP(S) server calling `handler(request) -> Reply`; `requests` records what arrived."""

    def __init__(self, handler, host="127.0.0.1", tls=None):
        self.handler = handler
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body}
                outer.requests.append(req)
                try:
                    reply = outer.handler(req)
                except Exception as exc:  # a broken test handler must show up, not hang the client
                    reply = Reply(599, ("handler error: %r" % exc).encode())
                if reply.reset:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _do

        self.server = _Server((host, 0), H)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[1], tls[2])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.host = host
        self.port = self.server.server_address[1]
        self.url = "%s://%s:%d" % (self.scheme, host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loop_servers():
    started = []

    def make(handler, host="127.0.0.1", tls=None):
        s = LoopServer(handler, host, tls)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def proxy_to(sim, org, mutate=None):
    """A handler forwarding to the simulator's org; `mutate(req, reply) -> Reply` may corrupt the answer."""
    base = sim.orgs[org].instance_url
    http = requests.Session()
    http.trust_env = False
    http.verify = sim.ca_path

    def handler(req):
        headers = {k: v for k, v in req["headers"].items() if k.lower() not in ("host", "content-length", "connection")}
        try:
            r = http.request(req["method"], base + req["path"], headers=headers, data=req["body"] or None,
                             timeout=30, allow_redirects=False)
            reply = Reply(r.status_code, r.content,
                          {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "sforce-limit-info")})
        except requests.ConnectionError:
            reply = Reply(reset=True)
        return mutate(req, reply) if mutate else reply

    return handler


def record_figure(name, **values):
    """Append a figure for docs/safety.md to the file named by SFDC_SAFETY_FIGURES (JSON lines), if set."""
    path = os.environ.get("SFDC_SAFETY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(dict(values, figure=name)) + "\n")


def wait_for(predicate, timeout=60, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False
