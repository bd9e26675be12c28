"""Helpers of the end-to-end tests: run ansible-playbook against an in-process simulator.

- `collections_path`: an ``ansible_collections/sfdc/eca`` layout pointing at this checkout.
- `ansible(tmp_path, ...)`: a runner whose ``.playbook(name, inventory, *args)`` runs
  ``ansible-playbook`` as a subprocess (the real CLI, real HTTPS to the simulator with its CA) and
  returns the CompletedProcess with ``.report`` (report.json of the run, or None).
- `org_host(sim, org, ...)`: the inventory host of a simulated org (connection + rotations).
- `leaks(text, sim)`: the simulator secrets found in a text.
Test modules get the plain helpers through the `e2e` fixture (two conftest.py files share a name).
"""

import json
import os
import subprocess
import sys
import types

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("collections")
    target = base / "ansible_collections" / "sfdc"
    target.mkdir(parents=True)
    (target / "eca").symlink_to(ROOT)
    return str(base)


def org_host(sim, org, rotations, auth="client_credentials", retry_backoff=0.05, **extra):
    """Inventory vars of one simulated org: one host, local connection, HTTPS with the simulator's CA."""
    o = sim.orgs[org]
    connection = {"instance_url": o.instance_url, "ca_path": sim.ca_path, "retry_backoff": retry_backoff,
                  "retry_max_delay": 1}
    if auth == "client_credentials":
        connection.update(client_id=o.admin["client_id"], client_secret=o.admin["client_secret"])
    elif auth == "access_token":
        connection["access_token"] = sim.issue_access_token(org)
    elif isinstance(auth, dict):
        connection.update(auth)
    host = {"sfdc_eca_connection": connection, "sfdc_eca_rotations": rotations}
    host.update(extra)
    return host


def write_inventory(path, hosts, group_vars=None):
    """hosts: {name: vars} in this order (the canary is the first)."""
    data = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "hosts": hosts}}
    data["all"]["vars"].update(group_vars or {})
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return str(path)


class Ansible:
    def __init__(self, tmp_path, collections_path, forks=20):
        self.tmp = tmp_path
        self.report_dir = tmp_path / "report"
        self.env = dict(os.environ)
        for name in list(self.env):
            if name.startswith(("SALESFORCE_", "ANSIBLE_")):
                del self.env[name]
        local_tmp = tmp_path / "ansible-tmp"
        local_tmp.mkdir(exist_ok=True)
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": collections_path,
            "ANSIBLE_FORKS": str(forks),
            "ANSIBLE_LOCAL_TEMP": str(local_tmp),
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
            "PATH": BIN + os.pathsep + self.env.get("PATH", ""),
        })
        self.env.pop("PYTHONPATH", None)

    def playbook(self, name, inventory, *args, extra_vars=None, timeout=600):
        variables = {"sfdc_eca_report_dir": str(self.report_dir), "sfdc_eca_verify_delay": 0, "sfdc_eca_verify_retries": 1}
        variables.update(extra_vars or {})
        cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(ROOT, "playbooks", name),
               "-e", json.dumps(variables)] + list(args)
        proc = subprocess.run(cmd, env=self.env, cwd=str(self.tmp), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
        base = "report" if name.startswith("rotate") else "audit"
        path = self.report_dir / (base + ".json")
        proc.report = json.loads(path.read_text()) if path.exists() else None
        proc.output = proc.stdout + proc.stderr
        self.runs = getattr(self, "runs", 0) + 1
        (self.tmp / ("run-%d.log" % self.runs)).write_text(" ".join(cmd) + "\n" + proc.output)
        if path.exists():
            path.rename(self.report_dir / ("%s-%d.json" % (base, len(list(self.report_dir.glob(base + "-*.json"))))))
        return proc

    def vault_view(self, path, password_file):
        proc = subprocess.run([os.path.join(BIN, "ansible-vault"), "view", "--vault-password-file", password_file, path],
                              env=self.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return yaml.safe_load(proc.stdout)


@pytest.fixture
def ansible(tmp_path, collections_path):
    return Ansible(tmp_path, collections_path)


def rows_by(report, org=None):
    """{(org, app, consumer): row}."""
    return {(r["org"], r.get("app_name"), r.get("consumer_name")): r for r in report["rows"] if org in (None, r["org"])}


def leaks(text, sim):
    return sorted(s for s in sim.secrets() if s and len(s) >= 8 and s in text)


def tail(proc, n=6000):
    return "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (proc.stdout[-n:], proc.stderr[-n:])


@pytest.fixture
def e2e():
    return types.SimpleNamespace(org_host=org_host, write_inventory=write_inventory, rows_by=rows_by, leaks=leaks, tail=tail)
