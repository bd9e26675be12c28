"""Playbooks run the way AWX runs a job, through ansible-runner, against the simulator.

``AwxJob`` mirrors what AWX's ``RunJob`` (awx/main/tasks/jobs.py) hands ansible-runner:

* a private data dir (0700) with ``project/`` (the synced project), ``inventory/hosts`` (an executable
  script printing the inventory JSON, as ``build_inventory`` writes it, sliced like
  ``Inventory.get_script_data(slice_number, slice_count)`` for job slicing), ``env/extravars``
  (launch and survey variables, 0400), ``env/cmdline`` (``-l`` limit, ``--ask-vault-pass``);
* credentials injected with ``inject_credential`` (test_awx_injectors.py): env vars passed as
  ``envvars``, files in ``env/`` (0600);
* a Vault credential answered through ``passwords`` (``Vault password:`` prompt, pexpect), as AWX does;
* per-org secrets for the multi-org pattern come from an SCM inventory source: AWX imports it with
  ``ansible-inventory --list --export``, which keeps vaulted values encrypted (``__ansible_vault``);
  the job decrypts them with its Vault credential.

Differences, on purpose: no execution environment container (paths stay host paths; the collection
comes from ANSIBLE_COLLECTIONS_PATH instead of the EE's /usr/share/ansible/collections), and the
``stdout`` artifact is kept (AWX sets ``suppress_output_file``) so that it is scanned for leaks too.

What "no secret in the artifacts" means here, faithfully to AWX: every file the job leaves behind —
``artifacts/<id>/job_events/*.json``, ``stdout``, ``stderr``, ``status``, ``rc``, fact cache, anything the
playbook wrote, the inventory script — holds none of the simulator's secrets (``sim.secrets()``) nor
the vault password. Two places hold injected credentials by design, in AWX as well: ``env/`` (the
injected key/CA files, ``envvars``, ``passwords``; AWX keeps them private to the job and deletes the
private data dir) and ``artifacts/<id>/command`` (ansible-runner records the job's environment; AWX
stores only ``build_safe_env`` of it). For those the tests check that they hold nothing but the
injected inputs, with the right modes, and that AWX's redaction leaves no secret in what it stores.
"""
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import ansible_runner
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_awx_injectors import build_safe_env, inject_credential, load_credential_type, secret_fields, validate_credential_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
VAULT_PROMPT = r"Vault password:\s*?$"
BIN = Path(sys.executable).parent


def _exe(name):
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name)


class AwxJob:
    """One AWX job: build the private data dir like RunJob does, then hand it to ansible-runner."""

    def __init__(self, base, job_id, playbook, project_files, inventory, extra_vars=None, credentials=(),
                 vault_password=None, limit=None, job_slice=(1, 1), verbosity=0, task_env=None, credential_types=None,
                 job_type="run"):
        self.job_id = job_id
        self.pdd = Path(tempfile.mkdtemp(prefix="awx_%d_" % job_id, dir=str(base)))
        os.chmod(self.pdd, stat.S_IRWXU)
        for sub in ("project", "inventory", "env"):
            (self.pdd / sub).mkdir()
        for rel, text in project_files.items():
            dest = self.pdd / "project" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
        self.playbook = playbook
        self.vault_password = vault_password
        self.injected = {}     # what the credentials put in the environment
        self.env = self._base_env()
        # Settings > Jobs > "Extra Environment Variables" (AWX_TASK_ENV)
        self.env.update(task_env or {})
        self.safe_env = build_safe_env(self.env)
        args = []
        self.secret_inputs = set()   # values of the credentials' secret fields
        for i, inputs in enumerate(credentials):
            ctype = (credential_types or {}).get(i) or load_credential_type()
            validate_credential_inputs(ctype, inputs)
            self.secret_inputs |= {inputs[f] for f in secret_fields(ctype) if inputs.get(f)}
            injected, safe = {}, {}
            inject_credential(ctype, inputs, injected, safe, self.pdd)
            self.injected.update(injected)
            self.env.update(injected)
            self.safe_env.update(safe)
        self.credential_inputs = list(credentials)
        self.inventory_path = self._write_inventory(inventory, *job_slice)
        extra_vars = dict(self._awx_vars(), **(extra_vars or {}))
        # The role's reports go where the job template says (a mounted volume in AWX); by default here
        # into the job's project dir, so that the leak scan reads them.
        extra_vars.setdefault("sfdc_eca_report_dir", str(self.pdd / "project" / "sfdc_eca_report"))
        self.report_dir = Path(extra_vars["sfdc_eca_report_dir"])
        self._write_extra_vars(extra_vars)
        if job_type == "check":    # RunJob.build_args
            args.append("--check")
        if limit:
            args += ["-l", limit]
        if verbosity:
            args.append("-" + "v" * verbosity)
        if vault_password:
            args.append("--ask-vault-pass")
        self._write_cmdline(args)
        self.runner = None

    def _base_env(self):
        env = {}
        # What the test session needs to find python, the collection and the simulator package.
        for name in ("HOME", "LANG", "LC_ALL", "PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH", "TMPDIR"):
            if name in os.environ:
                env[name] = os.environ[name]
        env["PATH"] = os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")])
        if "ANSIBLE_COLLECTIONS_PATH" not in env:
            assert ROOT.parents[1].name == "ansible_collections", "set ANSIBLE_COLLECTIONS_PATH so ansible finds sfdc.eca"
            env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT.parents[2])
        # RunJob.build_env
        env.update({
            "ANSIBLE_FORCE_COLOR": "False",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
            "AWX_PRIVATE_DATA_DIR": str(self.pdd),
            "JOB_ID": str(self.job_id),
            "INVENTORY_ID": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "MAX_EVENT_RES": "700000",
            "AWX_HOST": "https://awx.example.invalid",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.pdd / "cp"),
        })
        return env

    def _awx_vars(self):
        # RunJob.build_extra_vars_file: the awx_*/tower_* launch variables.
        return {"awx_job_id": self.job_id, "tower_job_id": self.job_id, "awx_job_launch_type": "manual",
                "awx_job_template_name": "sfdc.eca rotate", "awx_user_name": "admin", "awx_inventory_name": "Salesforce orgs"}

    def _write_inventory(self, data, slice_number, slice_count):
        data = json.loads(json.dumps(data))
        if slice_count > 1:
            # Inventory.get_sliced_hosts: hosts ordered by name, every slice_count-th from slice_number - 1.
            hosts = sorted(data["_meta"]["hostvars"])
            keep = set(hosts[slice_number - 1::slice_count])
            data["_meta"]["hostvars"] = {h: v for h, v in data["_meta"]["hostvars"].items() if h in keep}
            for name, group in data.items():
                if name != "_meta" and isinstance(group, dict) and "hosts" in group:
                    group["hosts"] = [h for h in group["hosts"] if h in keep]
        path = self.pdd / "inventory" / "hosts"
        with open(path, "w") as f:
            os.chmod(path, stat.S_IRUSR | stat.S_IXUSR | stat.S_IWUSR)
            f.write("#! %s\n# -*- coding: utf-8 -*-\nprint(%r)\n" % (sys.executable, json.dumps(data)))
        return str(path)

    def _write_extra_vars(self, data):
        path = self.pdd / "env" / "extravars"
        path.write_text(yaml.safe_dump(data))
        os.chmod(path, stat.S_IRUSR)

    def _write_cmdline(self, args):
        path = self.pdd / "env" / "cmdline"
        path.write_text(ansible_runner.utils.args2cmdline(*args))
        os.chmod(path, stat.S_IRUSR)

    def run(self):
        params = {
            "ident": self.job_id,
            "private_data_dir": str(self.pdd),
            "playbook": self.playbook,
            "inventory": self.inventory_path,
            "envvars": self.env,
            "settings": {"job_timeout": 600, "suppress_ansible_output": True, "suppress_output_file": False},
            "quiet": True,
        }
        if self.vault_password:
            params["passwords"] = {VAULT_PROMPT: self.vault_password}
        self.runner = ansible_runner.run(**params)
        return self.runner

    # -- what the job left behind ------------------------------------------------------------
    @property
    def artifact_dir(self):
        return self.pdd / "artifacts" / str(self.job_id)

    @property
    def stdout(self):
        return (self.artifact_dir / "stdout").read_text()

    def events(self, name=None):
        found = []
        for path in sorted((self.artifact_dir / "job_events").glob("*.json")):
            event = json.loads(path.read_text())
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def stats(self):
        """The job's set_stats data (AWX's job artifacts, handed to the next workflow node)."""
        ends = self.events("playbook_on_stats")
        assert ends, "no playbook_on_stats event"
        return ends[-1]["event_data"].get("artifact_data") or {}

    def private_files(self):
        """Files that hold injected credentials by design (see module docstring)."""
        return {p for p in (self.pdd / "env").rglob("*") if p.is_file()} | {self.artifact_dir / "command"}

    def leaked(self, secrets):
        """(path, secret) for every secret found outside the private files; artifacts dir included."""
        secrets = {s for s in secrets if s and len(s) >= 8}
        private = self.private_files()
        hits = []
        files = set(self.pdd.rglob("*")) | (set(self.report_dir.rglob("*")) if self.report_dir.is_dir() else set())
        for path in files:
            if not path.is_file() or path in private:
                continue
            text = path.read_bytes().decode("utf-8", "replace")
            where = str(path.relative_to(self.pdd)) if self.pdd in path.parents else str(path)
            hits += [(where, _mask(s)) for s in secrets if s in text]
        for event in self.runner.events:
            text = json.dumps(event)
            hits += [("runner.events[%s]" % event.get("counter"), _mask(s)) for s in secrets if s in text]
        return hits

    def check_private_files(self, secrets):
        """env/ and artifacts/<id>/command hold only what was injected; AWX's stored env holds no secret."""
        secrets = {s for s in secrets if s and len(s) >= 8}
        allowed = {v for v in self.injected.values() if v}
        for inputs in self.credential_inputs:
            allowed |= {v for v in inputs.values() if isinstance(v, str) and v}
        if self.vault_password:
            allowed.add(self.vault_password)
        problems = []
        for path in sorted((self.pdd / "env").rglob("*")):
            if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                problems.append("%s is mode %o" % (path.relative_to(self.pdd), stat.S_IMODE(path.stat().st_mode)))
        for path in self.private_files():
            if path.is_file():
                text = path.read_text()
                for s in secrets:
                    if s in text and not any(s in a for a in allowed):
                        problems.append("%s holds a secret that was not injected: %s" % (path.relative_to(self.pdd), _mask(s)))
        command = json.loads((self.artifact_dir / "command").read_text())
        stored = json.dumps(build_safe_env(command["env"]))
        problems += ["AWX would store %s in the job's env" % _mask(s) for s in secrets | self.secret_inputs if len(s) >= 8 and s in stored]
        return problems


def _mask(secret):
    return "%s...(%d chars)" % (secret[:4], len(secret))


def vaulted_inventory(tmp_path, hosts, vault_password):
    """An SCM inventory source with per-org vault-encrypted vars, imported the way AWX imports it.

    ``hosts``: {hostname: {var: value}}; every value under ``secret_keys`` of a nested dict is
    encrypted with ``ansible-vault encrypt_string``. Returns the JSON that AWX's inventory update
    stores (``ansible-inventory --list --export``) and the source dir.
    """
    src = tmp_path / "scm_inventory"
    (src / "host_vars").mkdir(parents=True)
    (src / "hosts.yml").write_text(yaml.safe_dump({"salesforce_orgs": {"hosts": {h: None for h in hosts}, "vars": ORG_GROUP_VARS}}))
    pw_file = tmp_path / "vault-pass.txt"
    pw_file.write_text(vault_password)
    for host, variables in hosts.items():
        (src / "host_vars" / ("%s.yml" % host)).write_text(_yaml_with_vault(variables, pw_file))
    os.chmod(pw_file, 0o600)
    proc = _run([_exe("ansible-inventory"), "-i", str(src / "hosts.yml"), "--list", "--export"])
    pw_file.unlink()
    return json.loads(proc.stdout)


SECRET_KEYS = ("client_secret", "access_token", "refresh_token", "private_key", "private_key_passphrase")


def _yaml_with_vault(variables, pw_file):
    from ansible.parsing.vault import VaultLib, VaultSecret
    vault = VaultLib([("default", VaultSecret(pw_file.read_bytes().strip()))])
    lines = []

    def emit(key, value, indent):
        pad = " " * indent
        if isinstance(value, dict):
            lines.append("%s%s:" % (pad, key))
            for k, v in value.items():
                emit(k, v, indent + 2)
        elif key in SECRET_KEYS:
            # Same output as `ansible-vault encrypt_string --name KEY`, without a process per value.
            cipher = vault.encrypt(value).decode()
            lines.append("%s%s: !vault |" % (pad, key))
            lines.extend("%s    %s" % (pad, ln) for ln in cipher.splitlines())
        else:
            lines.append("%s%s: %s" % (pad, key, json.dumps(value)))

    for k, v in variables.items():
        emit(k, v, 0)
    return "\n".join(lines) + "\n"


def _run(cmd, stdin=None):
    import subprocess
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, "%s: %s" % (cmd[0], proc.stderr[-2000:])
    return proc


def admin_inputs(sim, org, with_ca=True):
    """The org's admin ECA as a "Salesforce org (OAuth)" credential (client credentials)."""
    o = sim.orgs[org]
    inputs = {"instance_url": o.instance_url, "client_id": o.admin["client_id"], "client_secret": o.admin["client_secret"]}
    if with_ca and sim.ca_path:
        inputs["ca_bundle"] = Path(sim.ca_path).read_text()
    return inputs


# What docs/awx.md tells users to put on the orgs' group: orgs are API endpoints, not SSH hosts.
ORG_GROUP_VARS = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def single_org_inventory(org):
    return {"all": {"children": ["salesforce_orgs"]}, "salesforce_orgs": {"hosts": [org], "vars": dict(ORG_GROUP_VARS)},
            "_meta": {"hostvars": {org: {}}}}


CHECK_PROJECT = {"check_connection.yml": "- ansible.builtin.import_playbook: sfdc.eca.awx_check_connection\n"}


# ---------------------------------------------------------------------------------------------
# The credential type and the AWX job plumbing, with the read-only check playbook.
# ---------------------------------------------------------------------------------------------

def test_credential_from_env_client_credentials(sim, tmp_path):
    job = AwxJob(tmp_path, 11, "check_connection.yml", CHECK_PROJECT, single_org_inventory("org01"),
                 credentials=[admin_inputs(sim, "org01")])
    r = job.run()
    assert r.status == "successful", job.stdout[-3000:]
    assert "org01: signed in with client_credentials" in job.stdout
    assert "Billing_Sync" in job.stdout
    assert job.stats()["sfdc_eca_connection_checked"]["org01"]
    assert sim.counts("org01").get("POST token", 0) >= 1
    assert not job.leaked(sim.secrets())
    assert not job.check_private_files(sim.secrets())


@pytest.mark.sim(seed={"orgs": [{"name": "org01", "admin": {"jwt": "generate"},
                                 "apps": [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]}]})
def test_credential_from_env_jwt_key_file(sim, tmp_path):
    state = sim.state()["orgs"]["org01"]["admin"]
    inputs = {"instance_url": sim.orgs["org01"].instance_url, "client_id": state["client_id"],
              "username": state["username"], "private_key": state["private_key"],
              "ca_bundle": Path(sim.ca_path).read_text()}
    job = AwxJob(tmp_path, 12, "check_connection.yml", CHECK_PROJECT, single_org_inventory("org01"), credentials=[inputs])
    key_file = Path(job.injected["SALESFORCE_PRIVATE_KEY_FILE"])
    assert key_file.parent == job.pdd / "env" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    r = job.run()
    assert r.status == "successful", job.stdout[-3000:]
    assert "org01: signed in with jwt_bearer" in job.stdout
    secrets = sim.secrets() | {state["private_key"]}
    assert not job.leaked(secrets)
    assert not job.check_private_files(secrets)


def test_bad_credential_fails_without_leaking(sim, tmp_path):
    inputs = admin_inputs(sim, "org01")
    inputs["client_secret"] = "wrong-" + inputs["client_secret"]
    job = AwxJob(tmp_path, 13, "check_connection.yml", CHECK_PROJECT, single_org_inventory("org01"), credentials=[inputs])
    r = job.run()
    assert r.status == "failed"
    failed = job.events("runner_on_failed")
    assert failed, job.stdout[-3000:]
    res = json.dumps(failed[0]["event_data"]["res"])
    assert "invalid_client" in res or "authentication failure" in res, res
    assert not job.leaked(sim.secrets() | {inputs["client_secret"]})


def test_multi_org_vaulted_inventory_vars(sim, tmp_path):
    vault_password = "awx-vault-pw-" + os.urandom(6).hex()
    hosts = {}
    for org in ("org01", "org02"):
        o = sim.orgs[org]
        hosts[org] = {"sfdc_eca_connection": {"instance_url": o.instance_url, "client_id": o.admin["client_id"],
                                              "client_secret": o.admin["client_secret"], "ca_path": sim.ca_path}}
    data = vaulted_inventory(tmp_path, hosts, vault_password)
    assert "__ansible_vault" in json.dumps(data)
    job = AwxJob(tmp_path, 14, "check_connection.yml", CHECK_PROJECT, data, vault_password=vault_password)
    assert not any(sim.orgs[o].admin["client_secret"] in (job.pdd / "inventory" / "hosts").read_text() for o in hosts)
    r = job.run()
    assert r.status == "successful", job.stdout[-3000:]
    for org in hosts:
        assert "%s: signed in with client_credentials" % org in job.stdout
        assert sim.counts(org).get("POST token", 0) >= 1
    assert set(job.stats()["sfdc_eca_connection_checked"]) == set(hosts)
    assert not job.leaked(sim.secrets() | {vault_password})
    assert not job.check_private_files(sim.secrets() | {vault_password})


def test_job_slicing_splits_orgs(sim, tmp_path):
    vault_password = "awx-vault-pw-" + os.urandom(6).hex()
    hosts = {org: {"sfdc_eca_connection": {"instance_url": sim.orgs[org].instance_url, "client_id": sim.orgs[org].admin["client_id"],
                                           "client_secret": sim.orgs[org].admin["client_secret"], "ca_path": sim.ca_path}}
             for org in ("org01", "org02")}
    data = vaulted_inventory(tmp_path, hosts, vault_password)
    seen = {}
    for n in (1, 2):
        job = AwxJob(tmp_path, 20 + n, "check_connection.yml", CHECK_PROJECT, data, vault_password=vault_password, job_slice=(n, 2))
        r = job.run()
        assert r.status == "successful", job.stdout[-3000:]
        seen[n] = set(job.stats()["sfdc_eca_connection_checked"])
    assert seen == {1: {"org01"}, 2: {"org02"}}


def test_leak_scan_catches_a_printed_secret(sim, tmp_path):
    """Control: the scan must find a secret that a careless playbook prints."""
    project = {"careless.yml": (
        "- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"{{ lookup('ansible.builtin.env', 'SALESFORCE_CLIENT_SECRET') }}\"\n")}
    job = AwxJob(tmp_path, 15, "careless.yml", project, single_org_inventory("org01"), credentials=[admin_inputs(sim, "org01")])
    assert job.run().status == "successful"
    secret = sim.orgs["org01"].admin["client_secret"]
    places = {hit[0] for hit in job.leaked({secret})}
    assert "artifacts/15/stdout" in places
    assert any(p.startswith("artifacts/15/job_events/") for p in places)
    assert any(p.startswith("runner.events") for p in places)
    # and the private files' check must see a secret that was not injected, or a readable key file
    assert not job.check_private_files(sim.secrets())
    other = sim.orgs["org02"].admin["client_secret"]
    (job.pdd / "env" / "stray").write_text(other)
    os.chmod(job.pdd / "env" / "stray", 0o600)
    assert any("not injected" in p for p in job.check_private_files(sim.secrets()))
    os.chmod(job.pdd / "env" / "stray", 0o644)
    assert any("mode 644" in p for p in job.check_private_files(sim.secrets()))


# ---------------------------------------------------------------------------------------------
# playbooks/rotate.yml (through the AWX project wrapper awx/project/rotate.yml) with the survey.
# ---------------------------------------------------------------------------------------------

AWX_PROJECT = {p.name: p.read_text() for p in (ROOT / "awx" / "project").glob("*.yml")}


def survey_extra_vars(answers):
    """Survey answers -> extra vars, as AWX passes them: each answer in its question's type (a
    multiplechoice answer is the chosen *string*), the default for an unanswered question, and
    nothing for an unanswered optional text question without a default."""
    spec = json.loads((ROOT / "awx" / "survey_rotate.json").read_text())["spec"]
    out = {}
    for q in spec:
        if q["variable"] in answers:
            value = answers[q["variable"]]
        elif q.get("default") not in (None, ""):
            value = q["default"]
        else:
            continue
        if q["type"] == "integer":
            value = int(value)
        elif q["type"] == "multiplechoice":
            assert value in q["choices"].split("\n"), (q["variable"], value)
        out[q["variable"]] = value
    return out


def delivery(tmp_path):
    """Where the new pairs go: ansible-vault files on a volume the EE mounts (outside the job's dir)."""
    volume = tmp_path / "mounted_volume"
    volume.mkdir(exist_ok=True)
    password = "deliver-pw-" + os.urandom(6).hex()
    pw_file = volume / "deliver-vault-pass"
    pw_file.write_text(password)
    os.chmod(pw_file, 0o600)
    return {"vault_file": str(volume / "{org}-{app_name}-{consumer_name}.yml"), "vault_password_file": str(pw_file)}, password


def read_delivered(path, password, tmp_path):
    pw_file = tmp_path / "read-pass"
    pw_file.write_text(password)
    proc = _run([_exe("ansible-vault"), "view", "--vault-password-file", str(pw_file), str(path)])
    pw_file.unlink()
    return yaml.safe_load(proc.stdout)


def _pairs(sim, org, app, consumer):
    c = sim.org(org).app(app).consumer(consumer)
    return dict(c.main), (dict(c.staged) if c.staged else None)


def test_rotate_single_org_credential_from_env(sim, tmp_path):
    """One org, its admin ECA as the job's "Salesforce org (OAuth)" credential, survey answers as AWX sends them."""
    deliver, deliver_pw = delivery(tmp_path)
    inventory = single_org_inventory("org01")
    inventory["_meta"]["hostvars"]["org01"] = {"sfdc_eca_rotations": [{"app_name": "Billing_Sync", "deliver": deliver}]}
    before = _pairs(sim, "org01", "Billing_Sync", "Billing")[0]
    untouched = _pairs(sim, "org01", "Data_Loader", "Primary")
    extra = survey_extra_vars({"sfdc_eca_revoke_previous": "false"})
    assert extra["sfdc_eca_revoke_previous"] == "false" and extra["sfdc_eca_canary_size"] == 1
    job = AwxJob(tmp_path, 31, "rotate.yml", AWX_PROJECT, inventory, extra_vars=extra,
                 credentials=[admin_inputs(sim, "org01")])
    r = job.run()
    assert r.status == "successful", job.stdout[-4000:]

    after, staged = _pairs(sim, "org01", "Billing_Sync", "Billing")
    assert after["key"] != before["key"] and after["secret"] != before["secret"]
    # "false" from the survey means keep the previous pair for its grace period.
    assert staged is not None and staged["state"] == "Rotated" and staged["key"] == before["key"], (
        "the survey answer sfdc_eca_revoke_previous='false' (a string, as AWX sends it) revoked the previous pair: "
        "the role must read its boolean options with | bool; slot now: %r" % (staged and staged.get("state")))
    assert sim.authenticates("org01", after["key"], after["secret"])
    assert sim.authenticates("org01", before["key"], before["secret"])
    assert _pairs(sim, "org01", "Data_Loader", "Primary") == untouched
    delivered = read_delivered(Path(deliver["vault_file"].format(org="org01", app_name="Billing_Sync", consumer_name="Billing")),
                               deliver_pw, tmp_path)
    assert after["key"] in json.dumps(delivered) and after["secret"] in json.dumps(delivered)

    totals = job.stats()["sfdc_eca_totals"]
    assert totals["rotated"] == 1 and totals["failed"] == 0, totals
    assert (job.report_dir / "report.json").is_file()
    secrets = sim.secrets() | {deliver_pw}
    assert not job.leaked(secrets)
    assert not job.check_private_files(secrets)


def test_rotate_job_type_check_writes_nothing(sim, tmp_path):
    """Job type "check" on the rotate template: the plan, no write to the org, no delivery."""
    deliver, deliver_pw = delivery(tmp_path)
    inventory = single_org_inventory("org01")
    inventory["_meta"]["hostvars"]["org01"] = {"sfdc_eca_rotations": [{"app_name": "Billing_Sync", "deliver": deliver}]}
    before = _pairs(sim, "org01", "Billing_Sync", "Billing")
    job = AwxJob(tmp_path, 33, "rotate.yml", AWX_PROJECT, inventory, extra_vars=survey_extra_vars({}),
                 credentials=[admin_inputs(sim, "org01")], job_type="check")
    r = job.run()
    assert r.status == "successful", job.stdout[-4000:]
    assert sim.write_count("org01") == 0
    assert _pairs(sim, "org01", "Billing_Sync", "Billing") == before
    assert not list(Path(deliver["vault_file"]).parent.glob("*.yml"))
    assert job.stats()["sfdc_eca_totals"]["planned"] == 1, job.stats()
    assert not job.leaked(sim.secrets() | {deliver_pw})


def test_rotate_multi_org_vaulted_inventory_and_survey(sim, tmp_path):
    """Several orgs, per-org secrets in vault-encrypted inventory vars (SCM inventory source), the
    job's Vault credential to decrypt them, survey: only Billing_Sync, revoke the previous pair."""
    deliver, deliver_pw = delivery(tmp_path)
    vault_password = "awx-vault-pw-" + os.urandom(6).hex()
    hosts, before = {}, {}
    for org in ("org01", "org02"):
        o = sim.orgs[org]
        hosts[org] = {
            "sfdc_eca_connection": {"instance_url": o.instance_url, "client_id": o.admin["client_id"],
                                    "client_secret": o.admin["client_secret"], "ca_path": sim.ca_path},
            "sfdc_eca_rotations": [{"app_name": "Billing_Sync", "deliver": deliver}],
        }
        before[org] = _pairs(sim, org, "Billing_Sync", "Billing")[0]
    hosts["org01"]["sfdc_eca_rotations"].append({"app_name": "Data_Loader", "consumer_name": "Primary", "deliver": deliver})
    untouched = _pairs(sim, "org01", "Data_Loader", "Primary")
    data = vaulted_inventory(tmp_path, hosts, vault_password)
    extra = survey_extra_vars({"sfdc_eca_apps": "Billing_Sync", "sfdc_eca_revoke_previous": "true"})
    job = AwxJob(tmp_path, 32, "rotate.yml", AWX_PROJECT, data, extra_vars=extra, vault_password=vault_password)
    r = job.run()
    assert r.status == "successful", job.stdout[-4000:]
    for org in hosts:
        after, staged = _pairs(sim, org, "Billing_Sync", "Billing")
        assert after["key"] != before[org]["key"], org
        assert sim.authenticates(org, after["key"], after["secret"]), org
        # "true": the previous pair is revoked at once.
        assert staged is None, (org, staged)
        assert not sim.authenticates(org, before[org]["key"], before[org]["secret"]), org
    # The survey left Data_Loader out.
    assert _pairs(sim, "org01", "Data_Loader", "Primary") == untouched
    secrets = sim.secrets() | {deliver_pw, vault_password}
    assert not job.leaked(secrets)
    assert not job.check_private_files(secrets)


def test_workflow_audit_then_rotate_with_artifacts(sim, tmp_path):
    """The workflow's nodes: audit publishes set_stats; AWX passes those artifacts to the next job as
    extra vars (after the approval node); rotate runs with them and publishes its own."""
    volume = tmp_path / "mounted_volume"
    volume.mkdir()
    deliver_pw = "deliver-pw-" + os.urandom(6).hex()
    (volume / "deliver-vault-pass").write_text(deliver_pw)
    project = dict(AWX_PROJECT)
    # A delivery tasks file kept in the project, referenced from the inventory through sfdc_eca_project_dir.
    project["deliver/to_volume.yml"] = (
        "- name: Write the pair, vault-encrypted, to the mounted volume\n"
        "  ansible.builtin.copy:\n"
        "    content: \"{{ sfdc_eca_credential | to_nice_yaml | ansible.builtin.vault(lookup('ansible.builtin.file', "
        "sfdc_eca_volume ~ '/deliver-vault-pass')) }}\"\n"
        "    dest: \"{{ sfdc_eca_volume }}/{{ sfdc_eca_credential.org }}-{{ sfdc_eca_credential.consumer_name }}.yml\"\n"
        "    mode: \"0600\"\n"
        "    decrypt: false\n"
        "  delegate_to: localhost\n")
    inventory = single_org_inventory("org01")
    inventory["_meta"]["hostvars"]["org01"] = {
        "sfdc_eca_volume": str(volume),
        "sfdc_eca_rotations": [{"app_name": "Billing_Sync", "deliver": {"tasks_file": "{{ sfdc_eca_project_dir }}/deliver/to_volume.yml"}}]}
    creds = [admin_inputs(sim, "org01")]
    # Both job templates write their reports to the same mounted volume (extra vars of the templates).
    answers = dict(survey_extra_vars({}), sfdc_eca_report_dir=str(tmp_path / "reports_volume"))
    before = _pairs(sim, "org01", "Billing_Sync", "Billing")[0]

    audit = AwxJob(tmp_path, 41, "audit.yml", project, inventory, extra_vars=answers, credentials=creds)
    assert audit.run().status == "successful", audit.stdout[-4000:]
    assert sim.write_count("org01") == 0
    audit_stats = audit.stats()
    assert audit_stats["sfdc_eca_totals"]["orgs"] == 1 and audit_stats["sfdc_eca_totals"]["failed"] == 0, audit_stats
    assert _pairs(sim, "org01", "Billing_Sync", "Billing")[0] == before

    # (approval node: a person approves) -> rotate gets the ancestors' artifacts as extra vars, under the
    # workflow's own extra vars and survey answers (WorkflowJobNode.get_job_kwargs: "Workflow Job
    # extra_vars higher precedence than ancestor artifacts").
    rotate = AwxJob(tmp_path, 42, "rotate.yml", project, inventory, extra_vars=dict(audit_stats, **answers), credentials=creds)
    assert rotate.run().status == "successful", rotate.stdout[-4000:]
    after = _pairs(sim, "org01", "Billing_Sync", "Billing")[0]
    assert after["key"] != before["key"]
    delivered = read_delivered(volume / "org01-Billing.yml", deliver_pw, tmp_path)
    assert (delivered["key"], delivered["secret"]) == (after["key"], after["secret"])
    totals = rotate.stats()["sfdc_eca_totals"]
    assert totals["rotated"] == 1 and totals["failed"] == 0, totals
    assert {p.name for p in (tmp_path / "reports_volume").iterdir()} >= {"audit.json", "report.json"}
    secrets = sim.secrets() | {deliver_pw}
    for job in (audit, rotate):
        assert not job.leaked(secrets)
        assert not job.check_private_files(secrets)


# ---------------------------------------------------------------------------------------------
# Pattern B of docs/awx.md: per-org credentials read from HashiCorp Vault by a lookup in the
# inventory variables. Needs community.hashi_vault and hvac (not test dependencies of this
# collection): runs where both are found (SFDC_AWX_COLLECTIONS_PATH, see test_awx_register.py).
# ---------------------------------------------------------------------------------------------

def _hashi_vault_path():
    import importlib.util
    if importlib.util.find_spec("hvac") is None:
        return None
    for path in [os.environ.get("SFDC_AWX_COLLECTIONS_PATH", "")] + os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if path and (Path(path) / "ansible_collections/community/hashi_vault/plugins/lookup/vault_kv2_get.py").is_file():
            return path
    return None


class FakeVault:
    """Just enough of Vault's HTTP API for a KV v2 read with a token (GET /v1/<mount>/data/<path>)."""

    def __init__(self, token, secrets):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.reads = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                fake.reads.append(path)
                if self.headers.get("X-Vault-Token") != token:
                    return self._send(403, {"errors": ["permission denied"]})
                prefix = "/v1/secret/data/"
                if path.startswith(prefix) and path[len(prefix):] in secrets:
                    data = {"data": secrets[path[len(prefix):]], "metadata": {"version": 1, "destroyed": False}}
                    return self._send(200, {"data": data, "lease_duration": 0, "renewable": False})
                return self._send(404, {"errors": []})

            def _send(self, code, body):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _doc_block(marker):
    """The YAML code block of docs/awx.md that starts with the comment line `marker`."""
    text = (ROOT / "docs" / "awx.md").read_text()
    start = text.index(marker)
    return text[start:text.index("```", start)]


@pytest.mark.skipif(_hashi_vault_path() is None, reason="community.hashi_vault and hvac are not installed")
def test_multi_org_secret_store_lookup_as_documented(sim, tmp_path):
    group_vars = yaml.safe_load(_doc_block("# inventory/group_vars/salesforce_orgs.yml"))
    assert "vault_kv2_get" in group_vars["_sfdc_eca_secret"]
    token = "hvs." + os.urandom(12).hex()
    secrets = {}
    for org in ("org01", "org02"):
        secrets["salesforce/%s/automation" % org] = {"instance_url": sim.orgs[org].instance_url, "client_id": sim.orgs[org].admin["client_id"],
                                                     "client_secret": sim.orgs[org].admin["client_secret"]}
    inventory = {"all": {"children": ["salesforce_orgs"]},
                 "salesforce_orgs": {"hosts": ["org01", "org02"], "vars": dict(ORG_GROUP_VARS, **group_vars)},
                 "_meta": {"hostvars": {"org01": {}, "org02": {}}}}
    vtype = load_credential_type(ROOT / "awx" / "credential_type_hashi_vault_env.yml")
    with FakeVault(token, secrets) as vault:
        collections = os.pathsep.join([_hashi_vault_path(), os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")])
        job = AwxJob(tmp_path, 51, "check_connection.yml", CHECK_PROJECT, inventory,
                     credentials=[{"url": vault.url, "token": token}], credential_types={0: vtype},
                     task_env={"SALESFORCE_CA_PATH": sim.ca_path, "ANSIBLE_COLLECTIONS_PATH": collections})
        r = job.run()
        assert r.status == "successful", job.stdout[-4000:]
        assert set(vault.reads) == {"/v1/secret/data/" + k for k in secrets}
    for org in ("org01", "org02"):
        assert "%s: signed in with client_credentials" % org in job.stdout
    assert not job.leaked(sim.secrets() | {token})
    assert not job.check_private_files(sim.secrets() | {token})


# ---------------------------------------------------------------------------------------------
# Delivery into the AWX credential the integration's jobs use (awx/project/deliver/awx_credential.yml),
# against the stand-in AWX API of test_awx_register.py. Needs awx.awx (SFDC_AWX_COLLECTIONS_PATH).
# ---------------------------------------------------------------------------------------------

def _awx_collections():
    from test_awx_register import AWX_COLLECTIONS
    return AWX_COLLECTIONS


# AWX's managed credential type "Red Hat Ansible Automation Platform" (namespace controller), the
# part of its injectors that awx.awx reads.
CONTROLLER_TYPE = {
    "name": "Red Hat Ansible Automation Platform", "kind": "cloud",
    "inputs": {"fields": [{"id": "host", "label": "Host", "type": "string"},
                          {"id": "oauth_token", "label": "OAuth Token", "type": "string", "secret": True},
                          {"id": "verify_ssl", "label": "Verify SSL", "type": "boolean"}],
               "required": ["host"]},
    "injectors": {"env": {"CONTROLLER_HOST": "{{ host }}", "CONTROLLER_OAUTH_TOKEN": "{{ oauth_token }}",
                          "CONTROLLER_VERIFY_SSL": "{{ verify_ssl }}"}},
}


@pytest.mark.skipif(_awx_collections() is None, reason="awx.awx is not installed (see test_awx_register.py)")
def test_rotate_delivers_into_the_awx_credential(sim, tmp_path):
    from test_awx_register import FakeAwx

    ctype = load_credential_type()
    before = _pairs(sim, "org01", "Billing_Sync", "Billing")[0]
    awx_token = "awx-token-" + os.urandom(8).hex()
    project = dict(AWX_PROJECT)
    project["deliver/awx_credential.yml"] = (ROOT / "awx/project/deliver/awx_credential.yml").read_text()
    inventory = single_org_inventory("org01")
    inventory["_meta"]["hostvars"]["org01"] = {"sfdc_eca_rotations": [
        {"app_name": "Billing_Sync", "deliver": {"tasks_file": "{{ sfdc_eca_project_dir }}/deliver/awx_credential.yml"}}]}
    with FakeAwx(secret_inputs=secret_fields(ctype)) as awx:
        awx.store["credential_types"][7] = dict(ctype, id=7)
        awx.store["credentials"][3] = {"id": 3, "name": "org01 Billing_Sync Billing", "organization": 1, "credential_type": 7,
                                       "inputs": {"instance_url": sim.orgs["org01"].instance_url, "client_id": before["key"],
                                                  "client_secret": before["secret"]},
                                       "type": "credential", "url": "/api/v2/credentials/3/", "related": {}, "summary_fields": {}}
        collections = os.pathsep.join([_awx_collections(), os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")])
        job = AwxJob(tmp_path, 61, "rotate.yml", project, inventory,
                     extra_vars=survey_extra_vars({"sfdc_eca_revoke_previous": "true"}),
                     credentials=[admin_inputs(sim, "org01"), {"host": awx.url, "oauth_token": awx_token, "verify_ssl": False}],
                     credential_types={1: CONTROLLER_TYPE}, task_env={"ANSIBLE_COLLECTIONS_PATH": collections})
        r = job.run()
        assert r.status == "successful", job.stdout[-4000:]
        stored = awx.store["credentials"][3]["inputs"]
    after = _pairs(sim, "org01", "Billing_Sync", "Billing")[0]
    assert after["key"] != before["key"]
    assert stored["client_id"] == after["key"] and stored["client_secret"] == after["secret"]
    assert stored["instance_url"] == sim.orgs["org01"].instance_url
    secrets = sim.secrets() | {awx_token}
    assert not job.leaked(secrets)
    assert not job.check_private_files(secrets)
