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
    """Just enough of /api/v2/ for awx.awx modules: list by query, get, create, update of a few resources.

    Secret credential inputs come back as "$encrypted$", as AWX returns them."""

    RESOURCES = ("credential_types", "credentials", "organizations")

    def __init__(self, secret_inputs=()):
        self.store = {name: {} for name in self.RESOURCES}
        self.store["organizations"][1] = {"id": 1, "type": "organization", "name": "Default", "related": {}, "summary_fields": {}}
        self.writes = []
        self.secret_inputs = set(secret_inputs)
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

            def _route(self):
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]   # api, v2, resource[, id]
                resource = parts[2] if len(parts) > 2 else None
                item = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
                return resource, item, parse_qs(url.query)

            def do_GET(self):
                resource, item, query = self._route()
                if resource not in fake.store:
                    return self._send(200, {"version": "24.6.1"})
                if item is not None:
                    return self._send(200, fake.shown(resource, fake.store[resource][item]))
                found = [fake.shown(resource, obj) for obj in fake.store[resource].values()
                         if all(str(obj.get(k)) == v[0] for k, v in query.items() if k not in ("page_size", "page"))]
                return self._send(200, {"count": len(found), "next": None, "previous": None, "results": found})

            def do_POST(self):
                resource, _item, _query = self._route()
                body = self._body()
                fake.writes.append(("POST", resource, body))
                new_id = max(fake.store[resource], default=0) + 1
                body.update(id=new_id, type=resource[:-1], url="/api/v2/%s/%d/" % (resource, new_id), related={}, summary_fields={})
                fake.store[resource][new_id] = body
                self._send(201, fake.shown(resource, body))

            def do_PATCH(self):
                resource, item, _query = self._route()
                body = self._body()
                fake.writes.append(("PATCH", resource, body))
                fake.store[resource][item].update(body)
                self._send(200, fake.shown(resource, fake.store[resource][item]))

            do_PUT = do_PATCH

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def shown(self, resource, obj):
        if resource != "credentials":
            return obj
        obj = json.loads(json.dumps(obj))
        for name in self.secret_inputs & set(obj.get("inputs", {})):
            obj["inputs"][name] = "$encrypted$"
        return obj

    @property
    def types(self):
        return self.store["credential_types"]

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
        assert [w[:2] for w in awx.writes] == [("POST", "credential_types")]
        sent = awx.writes[0][2]
        for key in ("name", "description", "kind", "inputs", "injectors"):
            assert sent[key] == want[key], key
        assert sent["injectors"]["env"]["SALESFORCE_CLIENT_SECRET"] == "{{ client_secret }}"

        second = _playbook(env_extra=env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "changed=0" in second.stdout
        assert len(awx.writes) == 1


@needs_awx
def test_bad_definition_file_fails_clearly(tmp_path):
    bad = tmp_path / "not_a_type.yml"
    bad.write_text("name: x\n")
    proc = _playbook("-e", "sfdc_eca_credential_type_file=%s" % bad,
                     env_extra={"CONTROLLER_HOST": "http://127.0.0.1:9", "CONTROLLER_OAUTH_TOKEN": "x"})
    assert proc.returncode != 0
    assert "is not a credential type definition" in proc.stdout
