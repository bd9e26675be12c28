"""Secret leaks: the modules and both playbooks run at -vvvv with ANSIBLE_LOG_PATH, --diff and --check, with a
failure injected at every endpoint (every fault kind, in its own org); then every byte the runs wrote is
searched for every secret the simulator issued or accepted (client secrets, staged secrets, access and
refresh tokens) and the private key material in use.

Collected: stdout and stderr of every command, the log file, the report directory (report.json/.md/.html,
history.json), retry files, and every file left in the run's own HOME, TMPDIR, ANSIBLE_LOCAL_TEMP and
ANSIBLE_REMOTE_TEMP. Allowed: only the delivery targets the user configured — the vault file (and there only
encrypted: it starts with $ANSIBLE_VAULT and decrypts to the secret) and the file the test's own delivery
tasks file writes. Files holding secrets must be mode 0600.
"""

import json
import os
from pathlib import Path

import pytest

from safety_helpers import SafetyRun, file_mode, find_secrets, pem_fragments, record_figure
from fleet import ADMIN, VAULT_PASSWORD, ansible_playbook, decrypt_vault_file, e2e

from safety_helpers import ROOT

FAULT_KINDS = ("invalid_session", "limit_exceeded", "unavailable", "server_error", "malformed_json", "reset",
               "feature_disabled", "crash_after_write")
ENDPOINTS = ("usage", "credentials", "consumer", "staged", "staged_item", "token")


def fault_seed():
    orgs = [{"name": "clean", "admin": {"username": ADMIN}, "apps": [
        {"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]},
        {"developer_name": "Jwt_App", "consumers": [{"name": "Jwt", "jwt_cert": "generate"}]}]}]
    for kind in FAULT_KINDS:
        orgs.append({"name": "f_" + kind, "admin": {"username": ADMIN},
                     "variants": {"post_body": "flat"} if kind in ("reset", "server_error") else {},
                     "apps": [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]},
                              {"developer_name": "Revoke_App", "consumers": [{"name": "Old", "staged": {"state": "Rotated", "age_days": 3}}]}]})
    return {"orgs": orgs}


def arm(sim, times=1):
    """In org f_<kind>: the first `times` requests to each endpoint (each method) meet that fault."""
    sim.clear_faults()
    for kind in FAULT_KINDS:
        for endpoint in ENDPOINTS:
            if kind in ("crash_after_write",):
                for method in ("POST", "PATCH", "DELETE"):
                    sim.add_fault("f_" + kind, kind, method=method, endpoint=endpoint, times=times)
            else:
                sim.add_fault("f_" + kind, kind, method="*", endpoint=endpoint, times=times)


@pytest.fixture
def world(sim_factory, tmp_path):
    sim = sim_factory(fault_seed())
    inputs = tmp_path / "inputs"          # the user's own files: inventory, tasks files, key files
    targets = tmp_path / "targets"        # the configured delivery targets
    inputs.mkdir()
    targets.mkdir()
    (targets / "vaults").mkdir()
    (targets / "delivered").mkdir()
    password = inputs / "vault-password"
    password.write_text(VAULT_PASSWORD + "\n")
    password.chmod(0o600)
    (inputs / "deliver.yml").write_text("""
- name: Store the credential where the integration reads it
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential | to_json }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}__{{ sfdc_eca_credential.app_name }}__{{ sfdc_eca_credential.consumer_name }}.json"
    mode: "0600"
""")
    jwt_key = inputs / "jwt.key"
    jwt_key.write_text(sim.org("clean").app("Jwt_App").consumer("Jwt").private_key_pem)
    jwt_key.chmod(0o600)
    hosts = {}
    for org in sim.orgs:
        rotations = [{"app_name": "Billing_Sync", "deliver": {"tasks_file": str(inputs / "deliver.yml")}},
                     {"app_name": "Revoke_App" if org != "clean" else "Jwt_App",
                      "replace_rotated": True, "revoke_previous": True,
                      "deliver": {"vault_file": str(targets / "vaults" / "{org}-{app_name}-{consumer_name}.yml"),
                                  "vault_password_file": str(password)}}]
        if org == "clean":
            rotations[1].update(verify="jwt", verify_jwt={"username": ADMIN, "private_key_file": str(jwt_key)})
        hosts[org] = e2e.org_host(sim, org, rotations, retry_backoff=0.01)
        hosts[org]["sfdc_eca_connection"]["max_retries"] = 1
    inventory = e2e.write_inventory(inputs / "inventory.yml", hosts, {"delivery_dir": str(targets / "delivered")})
    return {"sim": sim, "inputs": inputs, "targets": targets, "inventory": inventory, "jwt_key": jwt_key,
            "password": password}


def secrets_of(world):
    return world["sim"].secrets() | pem_fragments(world["jwt_key"].read_text()) | {VAULT_PASSWORD}


def check_targets(world, secrets):
    """Delivery targets: vault files encrypted, 0600, decrypting to a secret; plain targets 0600."""
    found_secret_files = 0
    for path in sorted((world["targets"] / "vaults").glob("*")):
        data = decrypt_vault_file(path, VAULT_PASSWORD)        # asserts $ANSIBLE_VAULT and 0600
        assert data["secret"] in secrets, "%s decrypts to something that is not a simulator secret" % path.name
        assert find_secrets(path.read_bytes(), secrets) == [], "%s holds a secret in clear" % path
        found_secret_files += 1
    for path in sorted((world["targets"] / "delivered").glob("*")):
        assert file_mode(path) == 0o600, path
        found_secret_files += 1
    return found_secret_files


def test_rotate_and_audit_playbooks_leak_nothing(world, tmp_path):
    sim = world["sim"]
    runner = SafetyRun(tmp_path / "run")
    report_dir = runner.base / "report"
    extra = json.dumps({"sfdc_eca_report_dir": str(report_dir), "sfdc_eca_verify_delay": 0, "sfdc_eca_verify_retries": 1,
                        "sfdc_eca_canary_size": len(sim.orgs), "sfdc_eca_min_age_days": 0})
    rotate = str(ROOT / "playbooks" / "rotate.yml")
    audit = str(ROOT / "playbooks" / "audit.yml")
    procs = []
    for args in (["--check", "--diff"], ["--diff"], ["--diff"]):
        arm(sim)
        procs.append(runner.run([ansible_playbook(), "-i", world["inventory"], rotate, "-e", extra, "-vvvv", "-f", "10"] + args,
                                timeout=900, label="rotate %s" % " ".join(args)))
        assert b"PLAY RECAP" in procs[-1].stdout, procs[-1].stdout[-2000:] + procs[-1].stderr[-2000:]
    arm(sim)
    procs.append(runner.run([ansible_playbook(), "-i", world["inventory"], audit, "-e", extra, "-vvvv"],
                            timeout=600, label="audit"))
    assert (report_dir / "report.json").exists() and (report_dir / "audit.json").exists(), procs[-1].stdout[-3000:]
    # the runs did something worth scanning: rotations happened despite the faults, every fault fired
    assert sum(1 for e in sim.requests() if e["method"] == "PATCH" and e["status"] == 200) >= 3
    fired = {e["fault"] for e in sim.requests() if e.get("fault")}
    assert fired >= set(FAULT_KINDS), "faults that never fired: %s" % (set(FAULT_KINDS) - fired)
    secrets = secrets_of(world)
    delivered = check_targets(world, secrets)
    assert delivered >= 2
    scan = runner.scan(secrets)
    record_figure("leaks-playbooks", secrets=len(secrets), bytes=scan.bytes_scanned, files=scan.files_scanned,
                  found=len(scan.hits), requests=len(sim.requests()))
    print("\nplaybooks: %d secrets searched in %d bytes (%d files + outputs): %d found"
          % (len(secrets), scan.bytes_scanned, scan.files_scanned, len(scan.hits)))
    assert scan.hits == []
    assert os.path.getsize(runner.log) > 100000   # -vvvv really logged
    assert file_mode(report_dir / "history.json") == 0o600


MODULE_PLAY = """
- hosts: all
  gather_facts: false
  module_defaults:
    group/sfdc.eca.eca: "{{ sfdc_eca_connection }}"
  tasks:
    - name: token
      sfdc.eca.eca_token:
      register: tok
      no_log: true
      ignore_errors: true
    - name: verify the admin pair
      sfdc.eca.eca_token:
        verify_only: true
      ignore_errors: true
    - name: usage
      sfdc.eca.eca_usage_info:
      ignore_errors: true
    - name: credential info
      sfdc.eca.eca_credential_info:
        app_name: Billing_Sync
      ignore_errors: true
    - name: stage, secret asked for but no_log
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: present
        return_secret: true
      no_log: true
      ignore_errors: true
    - name: stage again (diff; stages when the first one failed; the result then carries the new secret and is censored, F6)
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: present
      ignore_errors: true
    - name: promote with the token of the first task
      sfdc.eca.eca_staged_credential:
        access_token: "{{ tok.access_token | default('none') }}"
        app_name: Billing_Sync
        state: rotated
      ignore_errors: true
    - name: revoke the previous pair
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: absent
      ignore_errors: true
    - name: a Rotated slot, replaced (returns the new secret, censored without no_log, F6)
      sfdc.eca.eca_staged_credential:
        app_name: Revoke_App
        state: present
        replace_rotated: true
      ignore_errors: true
    - name: a Rotated slot, check mode with diff
      sfdc.eca.eca_staged_credential:
        app_name: Revoke_App
        state: present
        replace_rotated: true
      check_mode: true
      diff: true
      ignore_errors: true
    - name: bad private key (the key is in the message?)
      sfdc.eca.eca_token:
        private_key: "{{ lookup('file', jwt_key) | replace('A', 'B') }}"
        username: x@y
      ignore_errors: true
"""


@pytest.mark.parametrize("in_process", [True, False], ids=["action_plugins", "modules"])
def test_modules_leak_nothing(world, tmp_path, in_process):
    sim = world["sim"]
    runner = SafetyRun(tmp_path / "run")
    play = world["inputs"] / "modules.yml"
    play.write_text(MODULE_PLAY)
    limit = [] if in_process else ["--limit", "clean,f_invalid_session,f_malformed_json,f_crash_after_write,f_reset"]
    for args in (["--check", "--diff"], ["--diff"]):
        arm(sim)
        proc = runner.run([ansible_playbook(), "-i", world["inventory"], str(play), "-vvvv", "-f", "10",
                           "-e", json.dumps({"jwt_key": str(world["jwt_key"])})] + limit + args,
                          extra_env={"SFDC_ECA_IN_PROCESS": str(in_process).lower()}, timeout=900, label="modules %s" % args)
        assert b"PLAY RECAP" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sum(1 for e in sim.requests() if e["method"] == "PATCH" and e["status"] == 200) >= 1
    secrets = secrets_of(world)
    scan = runner.scan(secrets)
    record_figure("leaks-modules-%s" % ("in_process" if in_process else "module"), secrets=len(secrets),
                  bytes=scan.bytes_scanned, files=scan.files_scanned, found=len(scan.hits), requests=len(sim.requests()))
    print("\nmodules (in_process=%s): %d secrets searched in %d bytes (%d files + outputs): %d found"
          % (in_process, len(secrets), scan.bytes_scanned, scan.files_scanned, len(scan.hits)))
    assert scan.hits == []


@pytest.mark.parametrize("in_process", [True, False], ids=["action_plugins", "modules"])
def test_staging_without_return_secret_prints_no_secret(world, tmp_path, in_process):
    """Finding F6 (fixed): the user did not ask for the secret and did not set no_log. The run that stages
    returns the new secret in the registered result only; every display of the result is censored."""
    runner = SafetyRun(tmp_path / "run")
    play = world["inputs"] / "stage.yml"
    play.write_text("""
- hosts: clean
  gather_facts: false
  tasks:
    - sfdc.eca.eca_staged_credential: "{{ sfdc_eca_connection | combine({'app_name': 'Billing_Sync', 'state': 'present'}) }}"
      register: staged
    - name: the registered result still holds the new pair
      ansible.builtin.assert:
        that:
          - staged is changed
          - staged.staged_credential.secret | length > 20
          - staged.staged_credential.key | length > 20
        quiet: true
""")
    env = {} if in_process else {"SFDC_ECA_IN_PROCESS": "false"}
    proc = runner.run([ansible_playbook(), "-i", world["inventory"], str(play), "-vvvv", "--diff"], timeout=300,
                      label="stage -vvvv", extra_env=env)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert b"changed: [clean]" in proc.stdout, proc.stdout[-2000:]
    assert world["sim"].org("clean").app("Billing_Sync").consumer("Billing").staged["state"] == "Active"
    assert runner.scan(secrets_of(world)).hits == []


def _awx_helpers():
    import importlib.util
    try:
        import ansible_runner  # noqa: F401
    except ImportError:  # pragma: no cover
        pytest.skip("ansible-runner is not installed")
    spec = importlib.util.spec_from_file_location("awx_runner_helpers", str(ROOT / "tests" / "e2e" / "test_awx_runner.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_awx_job_leaks_nothing(sim_factory, tmp_path):
    """playbooks/rotate.yml as an AWX job (tests/e2e AwxJob: private data dir, ansible-runner, job events) at
    verbosity 4, vaulted inventory, a fault at every endpoint: nothing in the job's files, artifacts or events."""
    awx = _awx_helpers()
    sim = sim_factory(fault_seed())
    deliver, deliver_pw = awx.delivery(tmp_path)
    vault_password = "awx-vault-pw-" + os.urandom(6).hex()
    orgs = ["clean"] + ["f_" + k for k in FAULT_KINDS]
    hosts = {}
    for org in orgs:
        o = sim.orgs[org]
        hosts[org] = {"sfdc_eca_connection": {"instance_url": o.instance_url, "client_id": o.admin["client_id"],
                                              "client_secret": o.admin["client_secret"], "ca_path": sim.ca_path,
                                              "retry_backoff": 0.01, "max_retries": 1},
                      "sfdc_eca_rotations": [{"app_name": "Billing_Sync", "deliver": deliver}]}
    data = awx.vaulted_inventory(tmp_path, hosts, vault_password)
    extra = awx.survey_extra_vars({"sfdc_eca_revoke_previous": "false"})
    extra.update(sfdc_eca_canary_size=len(orgs), sfdc_eca_verify_delay=0, sfdc_eca_verify_retries=1)
    arm(sim)
    job = awx.AwxJob(tmp_path, 71, "rotate.yml", awx.AWX_PROJECT, data, extra_vars=extra, vault_password=vault_password,
                     verbosity=4)
    job.run()
    assert "PLAY RECAP" in job.stdout, job.stdout[-3000:]
    assert sum(1 for e in sim.requests() if e["method"] == "PATCH" and e["status"] == 200) >= 2
    secrets = sim.secrets() | {vault_password, deliver_pw}
    hits = job.leaked(secrets)
    scanned = sum(p.stat().st_size for p in job.pdd.rglob("*") if p.is_file())
    record_figure("leaks-awx", secrets=len(secrets), bytes=scanned, found=len(hits))
    assert hits == []
    assert not job.check_private_files(secrets)
    for path in Path(deliver["vault_file"]).parent.glob("*-Billing_Sync-*.yml"):
        assert decrypt_vault_file(path, deliver_pw)["secret"] in secrets
