"""The rotation's invariants I1-I6 (docs/architecture.md), each through playbooks/rotate.yml against the simulator.

They drive only the playbook, the inventory and the simulator, so that each can be run against any version of
the engine: each failed on the engine before the plain-Python rewrite (commit ce90158) and passes now.
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "safety"))
from safety_helpers import crash  # noqa: E402
PLAIN = {"orgs": [{"name": "org%02d" % i, "admin": {"username": "admin@inv.test"},
                   "apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]}]}
                  for i in (1, 2)]}


def _consumer(sim, org="org01"):
    return sim.org(org).app("Billing_Sync").consumer("Billing")


def _password(tmp_path, text="inv-vault-pw\n"):
    path = tmp_path / "vault-pw"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def _vault(tmp_path, template="{org}-{app_name}-{consumer_name}.vault.yml"):
    return {"vault_file": str(tmp_path / "out" / template), "vault_password_file": _password(tmp_path)}


def _view(ansible, path, password_file):
    return ansible.vault_view(str(path), password_file)


def _patches(sim, org="org01"):
    return [e for e in sim.requests(org) if e["method"] == "PATCH" and e["status"] == 200]


def test_I1_a_delivered_pair_is_never_deleted_when_a_later_step_fails(sim_factory, tmp_path, ansible, e2e):
    """The verification hook fails after the vault file received the new pair: the pair stays Active and unpromoted
    (the integration reading the file keeps working), and the next run resumes and promotes that same pair."""
    sim = sim_factory({"orgs": PLAIN["orgs"][:1]})
    hook = tmp_path / "hook.yml"
    hook.write_text("- name: The integration's smoke test\n  ansible.builtin.assert:\n    that: hook_passes | default(false)\n")
    deliver = _vault(tmp_path)
    hosts = {"org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver,
                                                   "verify_tasks_file": str(hook)}])}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    consumer = _consumer(sim)
    old = dict(consumer.main)
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 2, e2e.tail(proc)
    [row] = proc.report["rows"]
    assert row["outcome"] == "failed" and not row["rolled_back"], row
    delivered = _view(ansible, tmp_path / "out" / "org01-Billing_Sync-Billing.vault.yml", deliver["vault_password_file"])
    assert consumer.staged is not None and consumer.staged["state"] == "Active", "the delivered pair was deleted"
    assert delivered["key"] == consumer.staged["key"] and sim.authenticates("org01", delivered["key"], delivered["secret"])
    assert consumer.main == old
    assert "next run resumes" in row["error"], row

    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"hook_passes": True})
    assert proc.returncode == 0, e2e.tail(proc)
    [row] = proc.report["rows"]
    assert (row["plan"], row["outcome"]) == ("resume", "rotated"), row
    assert consumer.main["key"] == delivered["key"] and consumer.main["secret"] == delivered["secret"]


def test_I2_a_token_endpoint_that_does_not_answer_never_deletes_a_pair(sim_factory, tmp_path, ansible, e2e):
    """503s through every retry while verifying: neither a newly staged pair nor a resumed one is deleted."""
    seed = {"orgs": [PLAIN["orgs"][0], {"name": "org02", "admin": {"username": "admin@inv.test"}, "apps": [
        {"developer_name": "Billing_Sync", "consumers": [{"name": "Billing", "staged": {"state": "Active", "age_days": 1}}]}]}]}
    sim = sim_factory(seed)
    deliver = _vault(tmp_path)
    # a given access token: the org's own authentication does not use the token endpoint
    hosts = dict((name, e2e.org_host(sim, name, [{"app_name": "Billing_Sync", "deliver": deliver}], auth="access_token",
                                     retry_backoff=0.01)) for name in ("org01", "org02"))
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    waiting = dict(_consumer(sim, "org02").staged)
    for org in ("org01", "org02"):
        sim.add_fault(org, "unavailable", method="POST", endpoint="token", times=None, retry_after=0)
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 0})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    for org in ("org01", "org02"):
        row = rows[(org, "Billing_Sync", "Billing")]
        assert row["outcome"] == "failed" and row["phase"] == "verify" and not row["rolled_back"], row
        assert not [e for e in sim.requests(org) if e["method"] == "DELETE"], (org, sim.counts(org))
        assert _consumer(sim, org).staged["state"] == "Active", org
    assert _consumer(sim, "org02").staged["key"] == waiting["key"]


def _kill_after_the_patch_left(proc, intent_file, sim, deadline=120):
    """SIGKILL ansible-playbook once its PATCH is on the wire (the simulator holds the answer back)."""
    end = time.time() + deadline
    while time.time() < end:
        if intent_file.exists() and "promoting_fp" in intent_file.read_text():
            break
        if proc.poll() is not None:
            raise AssertionError("the run ended before it promoted:\n" + proc.stdout.read())
        time.sleep(0.05)
    time.sleep(0.8)
    crash(proc)  # ansible's workers call setsid(): the whole tree, not the process group
    proc.wait()
    while time.time() < end and not _patches(sim):
        time.sleep(0.05)


def test_I3_a_lost_patch_reply_and_a_crash_lead_to_exactly_one_promotion(sim_factory, tmp_path, ansible, e2e):
    """The PATCH went through, its reply never came back, the run died. The rerun recognises the promotion
    (main key == the intent's key): it never rotates again, even with replace_rotated, and finishes the revoke."""
    sim = sim_factory({"orgs": PLAIN["orgs"][:1]})
    deliver = _vault(tmp_path)
    hosts = {"org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver}])}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    consumer = _consumer(sim)
    old = dict(consumer.main)
    sim.add_fault("org01", "latency", method="PATCH", endpoint="staged_item", times=1, seconds=3)
    variables = {"sfdc_eca_report_dir": str(ansible.report_dir), "sfdc_eca_verify_delay": 0, "sfdc_eca_verify_retries": 1,
                 "sfdc_eca_replace_rotated": True}
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
           os.path.join(ROOT, "playbooks", "rotate.yml"), "-e", json.dumps(variables)]
    proc = subprocess.Popen(cmd, env=ansible.env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, stdin=subprocess.DEVNULL)
    _kill_after_the_patch_left(proc, ansible.report_dir / "history.d" / "org01.json", sim)
    assert len(_patches(sim)) == 1
    assert "key_fp" not in (ansible.report_dir / "history.d" / "org01.json").read_text(), "killed too late"
    promoted = dict(consumer.main)
    assert promoted["key"] != old["key"] and consumer.staged["state"] == "Rotated"

    # the rerun, told to replace a Rotated pair: it must see that this Rotated pair is its own promotion
    rerun = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_replace_rotated": True})
    assert rerun.returncode == 0, e2e.tail(rerun)
    [row] = rerun.report["rows"]
    assert row["outcome"] == "rotated", row
    assert len(_patches(sim)) == 1, "promoted twice"
    assert consumer.main == promoted
    delivered = _view(ansible, tmp_path / "out" / "org01-Billing_Sync-Billing.vault.yml", deliver["vault_password_file"])
    assert (delivered["key"], delivered["secret"]) == (promoted["key"], promoted["secret"])
    history = json.loads((ansible.report_dir / "history.json").read_text())["consumers"]["org01/Billing_Sync/Billing"]
    assert history["rotations"] == 1, history

    # asked to revoke the previous pair now: only the revoke runs
    again = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_revoke_previous": True})
    [row] = again.report["rows"]
    assert (row["plan"], row["outcome"], row["revoked"]) == ("revoke", "rotated", True), row
    assert len(_patches(sim)) == 1 and consumer.staged is None and consumer.main == promoted
    assert not sim.authenticates("org01", old["key"], old["secret"])


def test_I4_names_from_the_org_never_leave_the_delivery_directory(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory({"orgs": [{"name": "org01", "apps": [{"developer_name": "Billing_Sync", "consumers": [
        {"name": "../escaped"}, {"name": "Billing"}]}]}]})
    deliver = {"vault_file": str(tmp_path / "out" / "{consumer_name}.vault.yml"), "vault_password_file": _password(tmp_path)}
    hosts = {"org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver}])}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    proc = ansible.playbook("rotate.yml", inventory)
    rows = e2e.rows_by(proc.report)
    bad = rows[("org01", "Billing_Sync", "../escaped")]
    assert bad["outcome"] == "failed" and bad["phase"] == "plan" and "'../escaped'" in bad["error"], bad
    assert not (tmp_path / "escaped.vault.yml").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Billing.vault.yml"]
    escaped = sim.org("org01").app("Billing_Sync").consumer("../escaped")
    assert escaped.staged is None, "nothing was staged for the refused consumer"
    assert rows[("org01", "Billing_Sync", "Billing")]["outcome"] == "rotated"


def test_I4_two_orgs_resolving_to_one_file_both_fail_before_any_write(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(PLAIN)
    deliver = _vault(tmp_path, template="{app_name}.vault.yml")  # no {org}: both orgs would write one file
    hosts = dict((name, e2e.org_host(sim, name, [{"app_name": "Billing_Sync", "deliver": deliver}])) for name in sim.orgs)
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    before = dict((org, dict(_consumer(sim, org).main)) for org in sim.orgs)
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 0})
    assert proc.returncode == 2, e2e.tail(proc)
    for org in sim.orgs:
        [row] = [r for r in proc.report["rows"] if r["org"] == org]
        assert row["outcome"] == "failed" and row["phase"] == "plan" and "{org}" in row["error"], row
        assert sim.write_count(org) == 0 and _consumer(sim, org).main == before[org], org
    assert not (tmp_path / "out").exists()


def test_I5_an_empty_vault_password_is_refused_before_any_write(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory({"orgs": PLAIN["orgs"][:1]})
    deliver = {"vault_file": str(tmp_path / "out" / "{org}.vault.yml"), "vault_password_file": _password(tmp_path, "\n")}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {
        "org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver}])})
    proc = ansible.playbook("rotate.yml", inventory)
    [row] = proc.report["rows"]
    assert row["outcome"] == "failed" and row["phase"] == "plan" and "vault password" in row["error"], row
    assert sim.write_count("org01") == 0 and not (tmp_path / "out").exists()


def test_I5_an_executable_password_file_is_run_as_ansible_vault_runs_it(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory({"orgs": PLAIN["orgs"][:1]})
    script = tmp_path / "vault-pass.sh"
    script.write_text("#!/bin/sh\necho password-from-the-script\n")
    script.chmod(0o700)
    deliver = {"vault_file": str(tmp_path / "out" / "{org}.vault.yml"), "vault_password_file": str(script)}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {
        "org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver}])})
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 0, e2e.tail(proc)
    delivered = _view(ansible, tmp_path / "out" / "org01.vault.yml", str(script))
    assert delivered["key"] == _consumer(sim).main["key"]


TRACER = '''
import json, os, stat, time
_log_path = os.environ["SFDC_TRACE_FILE"]
_open, _fsync, _replace = os.open, os.fsync, os.replace


def _log(**event):
    with open(_log_path, "a") as handle:
        handle.write(json.dumps(event) + "\\n")


def _traced_open(path, flags, mode=0o777, *args, **kwargs):
    fd = _open(path, flags, mode, *args, **kwargs)
    if str(path).endswith(".tmp"):
        _log(event="open", path=str(path), flags=flags, mode=mode)
    return fd


def _traced_fsync(fd):
    result = _fsync(fd)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        _log(event="fsync_dir", path=os.readlink("/proc/self/fd/%d" % fd))
    return result


def _traced_replace(src, dst, *args, **kwargs):
    result = _replace(src, dst, *args, **kwargs)
    _log(event="replace", src=str(src), dst=str(dst))
    return result


os.open, os.fsync, os.replace = _traced_open, _traced_fsync, _traced_replace
'''


def test_I5_the_vault_file_is_durable_before_the_promotion(sim_factory, tmp_path, ansible, e2e):
    """Traced in the ansible-playbook processes: the temporary file is created with O_EXCL|O_NOFOLLOW and mode 0600
    under an unpredictable name, renamed over the target, and the directory is synced, all before the history's
    intent record (the last write before the PATCH)."""
    sim = sim_factory({"orgs": PLAIN["orgs"][:1]})
    deliver = _vault(tmp_path)
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {
        "org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver}])})
    tracer = tmp_path / "tracer"
    tracer.mkdir()
    (tracer / "sitecustomize.py").write_text(TRACER)
    trace = tmp_path / "trace.jsonl"
    ansible.env.update(PYTHONPATH=str(tracer), SFDC_TRACE_FILE=str(trace))
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 0, e2e.tail(proc)
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    target = str(tmp_path / "out" / "org01-Billing_Sync-Billing.vault.yml")
    [replaced] = [i for i, e in enumerate(events) if e["event"] == "replace" and e["dst"] == target]
    [opened] = [e for e in events if e["event"] == "open" and e["path"] == events[replaced]["src"]]
    assert opened["flags"] & os.O_EXCL and opened["flags"] & os.O_NOFOLLOW and opened["mode"] == 0o600, opened
    assert os.path.dirname(opened["path"]) == os.path.dirname(target)
    assert str(os.getpid()) not in os.path.basename(opened["path"]) and len(os.path.basename(opened["path"])) >= \
        len(os.path.basename(target)) + 18, "an unpredictable temporary name"
    synced = [i for i, e in enumerate(events) if e["event"] == "fsync_dir" and e["path"] == os.path.dirname(target)]
    intent = [i for i, e in enumerate(events) if e["event"] == "replace" and e["dst"].endswith("history.d/org01.json")]
    assert synced and intent and replaced < synced[0] < intent[0], events
    assert _consumer(sim).main["key"] == _view(ansible, target, deliver["vault_password_file"])["key"]


HOOK_REPLACES_THE_PAIR = """
- name: Another tool deletes the staged pair and stages its own
  sfdc.eca.eca_staged_credential:
    instance_url: "{{ admin.instance_url }}"
    client_id: "{{ admin.client_id }}"
    client_secret: "{{ admin.client_secret }}"
    ca_path: "{{ admin.ca_path }}"
    app_id: "{{ sfdc_eca_credential.app_id }}"
    consumer_id: "{{ sfdc_eca_credential.consumer_id }}"
    state: "{{ item }}"
  loop: [absent, present]
"""


def test_I6_the_promotion_acts_only_on_the_verified_and_delivered_pair(sim_factory, tmp_path, ansible, e2e):
    """Between the delivery and the PATCH another tool replaced the staged pair: the PATCH by id finds nothing, and the
    fallback must not promote the pair now in the slot (no integration holds it)."""
    sim = sim_factory({"orgs": PLAIN["orgs"][:1]})
    hook = tmp_path / "hook.yml"
    hook.write_text(HOOK_REPLACES_THE_PAIR)
    deliver = _vault(tmp_path)
    o = sim.orgs["org01"]
    host = e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver, "verify_tasks_file": str(hook)}],
                        admin={"instance_url": o.instance_url, "client_id": o.admin["client_id"],
                               "client_secret": o.admin["client_secret"], "ca_path": sim.ca_path})
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {"org01": host})
    consumer = _consumer(sim)
    old = dict(consumer.main)
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_delivery_no_log": False})
    delivered = _view(ansible, tmp_path / "out" / "org01-Billing_Sync-Billing.vault.yml", deliver["vault_password_file"])
    assert consumer.staged["key"] != delivered["key"], "the hook replaced the staged pair"
    assert consumer.main == old, "promoted a pair that no integration holds"
    [row] = proc.report["rows"]
    assert row["outcome"] == "failed" and row["phase"] == "promote" and "not the pair" in row["error"], row
