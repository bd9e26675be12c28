"""playbooks/awx_register_credential_type.yml against a stand-in AWX API on 127.0.0.1.

The playbook uses awx.awx, which is not a dependency of this collection (and not in the test venv).
The syntax check and the API round trip run where awx.awx is found: on ANSIBLE_COLLECTIONS_PATH,
in ~/.ansible/collections, or on SFDC_AWX_COLLECTIONS_PATH (e.g. the ansible_collections of the
`ansible` community package). Elsewhere they are skipped, saying so.

The stand-in answers the few endpoints awx.awx.credential_type uses (list by name, create, update)
and records what it was sent: the injector templates must reach AWX verbatim (Ansible must not
render `{{ private_key }}`), and a second run must change nothing.
"""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "awx_register_credential_type.yml"
CREDENTIAL_TYPE = ROOT / "awx" / "credential_type_salesforce_org.yml"


def _awx_collections_path():
    candidates = []
    for var in ("SFDC_AWX_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        candidates += [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    candidates += [os.path.expanduser("~/.ansible/collections"), "/usr/share/ansible/collections"]
    candidates += [p for p in sys.path if p.endswith("site-packages")]
    for path in candidates:
        base = Path(path)
        if base.name != "ansible_collections":
            base = base / "ansible_collections"
        if (base / "awx/awx/plugins/modules/credential_type.py").is_file():
            return str(base.parent)
    return None


AWX_COLLECTIONS = _awx_collections_path()
needs_awx = pytest.mark.skipif(AWX_COLLECTIONS is None, reason="awx.awx is not installed (see module docstring)")


class FakeAwx:
    """Just enough of /api/v2/ for awx.awx.credential_type."""

    def __init__(self):
        self.types = {}
        self.writes = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", "24.6.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _id(self):
                return int(urlparse(self.path).path.rstrip("/").rsplit("/", 1)[-1])

            def do_GET(self):
                url = urlparse(self.path)
                if url.path == "/api/v2/credential_types/":
                    name = parse_qs(url.query).get("name", [None])[0]
                    found = [t for t in fake.types.values() if name is None or t["name"] == name]
                    return self._send(200, {"count": len(found), "next": None, "previous": None, "results": found})
                if url.path.startswith("/api/v2/credential_types/"):
                    return self._send(200, fake.types[self._id()])
                return self._send(200, {"version": "24.6.1"})

            def do_POST(self):
                body = self._body()
                fake.writes.append(("POST", body))
                new_id = len(fake.types) + 1
                body.update(id=new_id, type="credential_type", url="/api/v2/credential_types/%d/" % new_id,
                            related={}, summary_fields={})
                fake.types[new_id] = body
                self._send(201, body)

            def do_PATCH(self):
                body = self._body()
                fake.writes.append(("PATCH", body))
                fake.types[self._id()].update(body)
                self._send(200, fake.types[self._id()])

            do_PUT = do_PATCH

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _playbook(*args, env_extra=None):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(
        p for p in (AWX_COLLECTIONS, os.environ.get("ANSIBLE_COLLECTIONS_PATH")) if p))
    for name in list(env):
        if name.startswith(("CONTROLLER_", "TOWER_", "AAP_")):
            del env[name]
    env.update(env_extra or {})
    exe = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run([str(exe), str(PLAYBOOK), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


@needs_awx
def test_syntax_check():
    proc = _playbook("--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_awx
def test_registers_the_type_verbatim_and_idempotently():
    want = yaml.safe_load(CREDENTIAL_TYPE.read_text())
    with FakeAwx() as awx:
        env = {"CONTROLLER_HOST": awx.url, "CONTROLLER_OAUTH_TOKEN": "not-a-real-token", "CONTROLLER_VERIFY_SSL": "false"}
        first = _playbook(env_extra=env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "changed=1" in first.stdout
        assert [w[0] for w in awx.writes] == ["POST"]
        sent = awx.writes[0][1]
        for key in ("name", "description", "kind", "inputs", "injectors"):
            assert sent[key] == want[key], key
        assert sent["injectors"]["env"]["SALESFORCE_CLIENT_SECRET"] == "{{ client_secret }}"

        second = _playbook(env_extra=env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "changed=0" in second.stdout
        assert [w[0] for w in awx.writes] == ["POST"]


@needs_awx
def test_bad_definition_file_fails_clearly(tmp_path):
    bad = tmp_path / "not_a_type.yml"
    bad.write_text("name: x\n")
    proc = _playbook("-e", "sfdc_eca_credential_type_file=%s" % bad,
                     env_extra={"CONTROLLER_HOST": "http://127.0.0.1:9", "CONTROLLER_OAUTH_TOKEN": "x"})
    assert proc.returncode != 0
    assert "is not a credential type definition" in proc.stdout
