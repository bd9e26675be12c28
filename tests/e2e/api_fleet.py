"""A small fleet rotated through playbooks/rotate.yml with vault_file delivery, and the checks of its outcome.

Shared by tests/e2e/test_api_variants_fleet.py and tests/safety/test_connection_hostile.py (loaded by path: the
conftest modules of the suites share a name). ``Fleet(sim, tmp_path, ansible)``: ``ansible`` is the e2e runner
(tests/e2e/conftest.py ``Ansible``).
"""

import json
import stat

import yaml

ADMIN = "admin@api-fleet.test"
VAULT_PASSWORD = "api fleet vault password 14"
PATTERN = "{org}-{app_name}-{consumer_name}.yml"


def org(name, apps=None, **extra):
    """A seed entry: apps {developer_name: [consumer name or consumer mapping]} (default Billing_Sync/Billing)."""
    apps = apps or {"Billing_Sync": ["Billing"]}
    entry = {"name": name, "admin": {"username": ADMIN},
             "apps": [{"developer_name": app, "label": app.replace("_", " "),
                       "consumers": [c if isinstance(c, dict) else {"name": c} for c in consumers]}
                      for app, consumers in apps.items()]}
    entry.update(extra)
    return entry


def state(sim):
    """{(org, app, consumer id): {"name", "main", "staged"}} of every consumer but the admin apps'."""
    out = {}
    for name in sim.orgs:
        for app in sim.org(name).apps:
            if app.developer_name == "Sim_Admin":
                continue
            for consumer in app.consumers:
                out[(name, app.developer_name, consumer.id)] = {
                    "name": consumer.name, "main": dict(consumer.main),
                    "staged": consumer.staged and dict(consumer.staged)}
    return out


class Fleet:
    def __init__(self, sim, base, ansible):
        self.sim = sim
        self.base = base
        self.ansible = ansible
        self.vaults = base / "vaults"
        self.vaults.mkdir(parents=True, exist_ok=True)
        self.password = base / "vault-password"
        self.password.write_text(VAULT_PASSWORD + "\n")
        self.password.chmod(0o600)
        self.hosts = {}

    def vault(self, pattern=PATTERN):
        return {"vault_file": str(self.vaults / pattern), "vault_password_file": str(self.password)}

    def entry(self, app, **options):
        entry = {"app_name": app, "deliver": self.vault()}
        entry.update(options)
        return entry

    def add(self, e2e, name, rotations, auth="client_credentials", connection=None, **hostvars):
        host = e2e.org_host(self.sim, name, rotations, auth=auth, retry_backoff=0.01, **hostvars)
        if connection is not None:
            host["sfdc_eca_connection"] = connection
        self.hosts[name] = host
        return host

    def run(self, e2e, *args, env=None, extra_vars=None, timeout=600):
        inventory = e2e.write_inventory(self.base / "inventory.yml", self.hosts)
        if env:
            self.ansible.env.update(env)
        return self.ansible.playbook("rotate.yml", inventory, *args, extra_vars=extra_vars, timeout=timeout)

    def delivered(self, org_name, app, consumer_name):
        """The credentials a vault file holds for this consumer: a list (two consumers may share a name)."""
        found = []
        for path in sorted(self.vaults.iterdir()):
            if not path.name.startswith(org_name + "-"):
                continue
            assert path.read_text().startswith("$ANSIBLE_VAULT;"), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            data = self.ansible.vault_view(str(path), str(self.password))
            if data["app_name"] == app and data["consumer_name"] == consumer_name:
                found.append(data)
        return found

    def texts(self, proc):
        """Everything the run printed or wrote (report files, history, vault files)."""
        texts = [proc.output]
        for folder in (self.ansible.report_dir, self.vaults):
            if folder.exists():
                texts.extend(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
        return "\n".join(texts)


def rows_of(report, org_name):
    return [r for r in report["rows"] if r["org"] == org_name]


def assert_rotated(fleet, report, before, after, org_name, revoked=False):
    """Every consumer of the org rotated: its new main pair is the one delivered and works; the old one is Rotated
    (or revoked), and the report says so."""
    sim = fleet.sim
    rows = rows_of(report, org_name)
    keys = [k for k in before if k[0] == org_name]
    assert rows and len(rows) == len(keys), (org_name, rows)
    for key in keys:
        old, now = before[key], after[key]
        where = "%s: %s\n%s" % (key, json.dumps(rows, indent=1), now)
        assert now["main"]["key"] != old["main"]["key"], where
        row = [r for r in rows if r.get("new_key") == "..." + now["main"]["key"][-4:]]
        assert len(row) == 1 and row[0]["outcome"] == "rotated", where
        got = [d for d in fleet.delivered(org_name, key[1], row[0]["consumer_name"]) if d["key"] == now["main"]["key"]]
        assert got and got[0]["secret"] == now["main"]["secret"], where
        assert got[0]["instance_url"] == sim.orgs[org_name].instance_url, where
        assert sim.authenticates(org_name, now["main"]["key"], now["main"]["secret"]), where
        if revoked:
            assert now["staged"] is None, where
            assert not sim.authenticates(org_name, old["main"]["key"], old["main"]["secret"]), where
        else:
            assert now["staged"]["state"] == "Rotated" and now["staged"]["key"] == old["main"]["key"], where
            assert sim.authenticates(org_name, old["main"]["key"], old["main"]["secret"]), where


def assert_whole(fleet, before, after):
    """No consumer is left half-done: each one either has a new main pair that a vault file delivered and that
    works (the old pair Rotated or revoked), or is exactly as it was."""
    delivered = {}
    for path in fleet.vaults.iterdir():
        data = fleet.ansible.vault_view(str(path), str(fleet.password))
        delivered.setdefault((data["org"], data["key"]), data)
    for key, old in before.items():
        now = after[key]
        if now == old:
            continue
        where = "%s changed but is not rotated whole: %s -> %s" % (key, old, now)
        got = delivered.get((key[0], now["main"]["key"]))
        assert got is not None and got["secret"] == now["main"]["secret"], where
        assert fleet.sim.authenticates(key[0], now["main"]["key"], now["main"]["secret"]), where
        assert now["staged"] is None or (now["staged"]["state"] == "Rotated" and now["staged"]["key"] == old["main"]["key"]), where


def assert_untouched(report, before, after, org_name, phase=None, text=None):
    rows = rows_of(report, org_name)
    assert rows and all(r["outcome"] == "failed" for r in rows), rows
    if phase:
        assert all(r["phase"] == phase for r in rows), rows
    if text:
        assert any(text.lower() in (r.get("error") or "").lower() for r in rows), rows
    for key in before:
        if key[0] == org_name:
            assert after[key] == before[key], (key, before[key], after[key])


def dump(value):
    return yaml.safe_dump(value, sort_keys=False)
