"""playbooks/rotate.yml delivering to real secret stores started on 127.0.0.1: OpenBao (HashiCorp Vault's API, KV v2)
and moto's AWS Secrets Manager. A store that refuses the write, a wrong mount or a server that is down fails that
consumer before its promotion; its org keeps its pair; the other orgs go on; no store secret reaches any output."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ansible_collections.sfdc.eca.tests.stores.fixtures import (  # noqa: E402,F401  pylint: disable=unused-import
    _moto_session, _openbao_session, moto, openbao, unique)
from ansible_collections.sfdc.eca.tests.stores.servers import closed_port  # noqa: E402

ORGS = ["org%02d" % i for i in range(1, 7)]
SEED = {"orgs": [{"name": name, "apps": [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]}
                 for name in ORGS]}


def _main(sim, org):
    return dict(sim.org(org).app("Billing_Sync").consumer("Billing").main)


def test_native_store_deliveries(sim_factory, tmp_path, ansible, e2e, openbao, moto, unique):
    sim = sim_factory(SEED)
    writer = openbao.token([openbao.policy("%s-w" % unique, 'path "secret/data/%s/*" {capabilities = ["create", "update", "read"]}\n'
                                           'path "secret/metadata/%s/*" {capabilities = ["read"]}' % (unique, unique))])
    reader = openbao.token([openbao.policy("%s-r" % unique, 'path "secret/data/%s/*" {capabilities = ["read"]}' % unique)])
    role_id, secret_id = openbao.approle("%s-role" % unique, ["%s-w" % unique])
    path = unique + "/{org}/{app_name}/{consumer_name}"
    deliveries = {
        "org01": {"hashi_vault": {"url": openbao.url, "path": path, "token": writer}},
        "org02": {"hashi_vault": {"url": openbao.url, "path": path, "token": reader}},          # may not write
        "org03": {"aws_secretsmanager": {"secret_id": path, "endpoint_url": moto.url}},
        "org04": {"hashi_vault": {"url": openbao.url, "path": path, "token": writer, "mount": "no-such-mount"}},
        "org05": {"aws_secretsmanager": {"secret_id": path, "endpoint_url": "http://127.0.0.1:%d" % closed_port(),
                                         "timeout": 2}},                                          # server down
        "org06": {"hashi_vault": {"url": openbao.url, "path": path, "auth": "approle", "role_id": role_id,
                                  "secret_id": secret_id}},
    }
    hosts = dict((org, e2e.org_host(sim, org, [{"app_name": "Billing_Sync", "deliver": deliveries[org]}])) for org in ORGS)
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    ansible.env.update(AWS_ACCESS_KEY_ID=moto.access_key, AWS_SECRET_ACCESS_KEY=moto.secret_key, AWS_REGION=moto.region)
    before = dict((org, _main(sim, org)) for org in ORGS)
    proc = ansible.playbook("rotate.yml", inventory, "-v", extra_vars={"sfdc_eca_canary_size": 0})
    assert proc.report is not None, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)

    for org in ("org01", "org06"):
        row, main = rows[(org, "Billing_Sync", "Billing")], _main(sim, org)
        assert row["outcome"] == "rotated", row
        stored = openbao.kv_get("%s/%s/Billing_Sync/Billing" % (unique, org))["data"]
        assert (stored["key"], stored["secret"]) == (main["key"], main["secret"]), org
        assert stored["org"] == org and stored["consumer_id"] and row["delivered_to"].startswith("hashi_vault")
    row, main = rows[("org03", "Billing_Sync", "Billing")], _main(sim, "org03")
    assert row["outcome"] == "rotated", row
    stored = json.loads(moto.secret("%s/org03/Billing_Sync/Billing" % unique)["SecretString"])
    assert (stored["key"], stored["secret"]) == (main["key"], main["secret"])

    refused = rows[("org02", "Billing_Sync", "Billing")]
    assert (refused["outcome"], refused["phase"]) == ("failed", "deliver") and "permission" in refused["error"].lower(), refused
    assert refused["rolled_back"] is True, "a write the store refused never reached it: the pair is deleted"
    assert _main(sim, "org02") == before["org02"] and sim.org("org02").app("Billing_Sync").consumer("Billing").staged is None
    assert openbao.kv_get("%s/org02/Billing_Sync/Billing" % unique) is None

    mount = rows[("org04", "Billing_Sync", None)]  # refused before its consumers were read
    assert (mount["outcome"], mount["phase"]) == ("failed", "plan") and "no-such-mount" in mount["error"], mount
    assert sim.write_count("org04") == 0

    down = rows[("org05", "Billing_Sync", "Billing")]
    assert (down["outcome"], down["phase"]) == ("failed", "deliver"), down
    assert not down["rolled_back"], "a store that did not answer may have stored the pair: it is kept"
    assert _main(sim, "org05") == before["org05"]
    assert sim.org("org05").app("Billing_Sync").consumer("Billing").staged["state"] == "Active"

    text = proc.output + json.dumps(proc.report)
    for value in (writer, reader, secret_id, moto.secret_key, openbao.root_token):
        assert value not in text
    assert e2e.leaks(text, sim) == []


def _fresh_state(ansible, tmp_path, n):
    """A new AWX job: its project folder, and so its state dir and report dir, start empty."""
    ansible.report_dir = tmp_path / ("job-%d" % n)
    return {"sfdc_eca_report_dir": str(ansible.report_dir)}


def test_the_history_in_a_secret_store_outlives_the_job(sim_factory, tmp_path, ansible, e2e, openbao, moto, unique):
    """sfdc_eca_history_store: each job starts with an empty state dir, as AWX jobs do; the next job still skips the
    consumers the previous one rotated (min_age_days), and recognises a promotion a killed job never recorded."""
    sim = sim_factory({"orgs": [dict(SEED["orgs"][0], name="org01"), dict(SEED["orgs"][1], name="org02")]})
    token = openbao.token([openbao.policy("%s-h" % unique, 'path "secret/data/%s/*" {capabilities = ["create", "update", '
                                          '"read"]}' % unique)])
    stores = {"org01": {"hashi_vault": {"url": openbao.url, "token": token, "path": unique + "/history/{org}"}},
              "org02": {"aws_secretsmanager": {"secret_id": unique + "/history/{org}", "endpoint_url": moto.url}}}
    deliver = {"vault_file": str(tmp_path / "out" / "{org}.vault.yml"), "vault_password_file": str(tmp_path / "pw")}
    (tmp_path / "pw").write_text("history-test-pw\n")
    hosts = dict((org, e2e.org_host(sim, org, [{"app_name": "Billing_Sync", "deliver": deliver}],
                                    sfdc_eca_history_store=stores[org])) for org in ("org01", "org02"))
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    ansible.env.update(AWS_ACCESS_KEY_ID=moto.access_key, AWS_SECRET_ACCESS_KEY=moto.secret_key, AWS_REGION=moto.region)

    first = ansible.playbook("rotate.yml", inventory, extra_vars=dict(_fresh_state(ansible, tmp_path, 1), sfdc_eca_canary_size=0))
    assert first.returncode == 0, e2e.tail(first)
    assert {r["outcome"] for r in first.report["rows"]} == {"rotated"}
    kept = openbao.kv_get("%s/history/org01" % unique)["data"]
    assert kept["consumers"]["org01/Billing_Sync/Billing"]["rotations"] == 1
    assert json.loads(moto.secret("%s/history/org02" % unique)["SecretString"])["consumers"]
    mains = dict((org, _main(sim, org)) for org in ("org01", "org02"))

    sim.reset_log()
    second = ansible.playbook("rotate.yml", inventory, extra_vars=dict(_fresh_state(ansible, tmp_path, 2), sfdc_eca_canary_size=0))
    assert second.returncode == 0, e2e.tail(second)
    assert {(r["org"], r["plan"], r["outcome"]) for r in second.report["rows"]} == {
        ("org01", "skip", "skipped"), ("org02", "skip", "skipped")}, second.report["rows"]
    assert all(sim.write_count(org) == 0 and _main(sim, org) == mains[org] for org in mains)
    text = first.output + second.output + json.dumps(first.report) + json.dumps(second.report)
    assert token not in text and moto.secret_key not in text


def test_a_promotion_a_killed_job_never_recorded_is_found_by_the_next_job(sim_factory, tmp_path, ansible, e2e, openbao,
                                                                          unique):
    """I3 across AWX jobs: the job dies after its PATCH went out; the next job, with an empty state dir, finds the
    intent in the store and records the promotion instead of promoting again."""
    import os
    import subprocess
    from test_rotation_invariants import ROOT, _kill_after_the_patch_left, _patches
    sim = sim_factory({"orgs": [dict(SEED["orgs"][0], name="org01")]})
    token = openbao.token([openbao.policy("%s-h" % unique, 'path "secret/data/%s/*" {capabilities = ["create", "update", '
                                          '"read"]}' % unique)])
    store = {"hashi_vault": {"url": openbao.url, "token": token, "path": unique + "/history/{org}"}}
    (tmp_path / "pw").write_text("history-test-pw\n")
    deliver = {"vault_file": str(tmp_path / "out" / "{org}.vault.yml"), "vault_password_file": str(tmp_path / "pw")}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {"org01": e2e.org_host(
        sim, "org01", [{"app_name": "Billing_Sync", "deliver": deliver}], sfdc_eca_history_store=store)})
    sim.add_fault("org01", "latency", method="PATCH", endpoint="staged_item", times=1, seconds=3)
    variables = dict(_fresh_state(ansible, tmp_path, 1), sfdc_eca_verify_delay=0, sfdc_eca_replace_rotated=True)
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                             os.path.join(ROOT, "playbooks", "rotate.yml"), "-e", json.dumps(variables)],
                            env=ansible.env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, stdin=subprocess.DEVNULL)
    _kill_after_the_patch_left(proc, ansible.report_dir / "history.d" / "org01.json", sim)
    promoted = _main(sim, "org01")
    assert len(_patches(sim)) == 1 and "promoting_fp" in openbao.kv_get("%s/history/org01" % unique)["data"]["consumers"][
        "org01/Billing_Sync/Billing"]

    rerun = ansible.playbook("rotate.yml", inventory, extra_vars=dict(_fresh_state(ansible, tmp_path, 2),
                                                                      sfdc_eca_replace_rotated=True))
    assert rerun.returncode == 0, e2e.tail(rerun)
    [row] = rerun.report["rows"]
    assert (row["plan"], row["outcome"]) == ("finish", "rotated"), row
    assert len(_patches(sim)) == 1 and _main(sim, "org01") == promoted
