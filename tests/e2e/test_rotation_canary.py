"""The canary batch of playbooks/rotate.yml: when it fails, no other org is touched (issue 4)."""

import json

FLEET = {"orgs": [
    {"name": "org%02d" % i, "apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]}]}
    for i in range(1, 7)]}

DELIVER = """
- name: A secret store that refuses one org
  ansible.builtin.fail:
    msg: refused
  when: sfdc_eca_credential.org == fail_org

- name: Store
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential.key }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}.key"
    mode: "0600"
"""


def _fleet(sim, tmp_path, e2e, fail_org="org01"):
    (tmp_path / "deliver.yml").write_text(DELIVER)
    (tmp_path / "delivered").mkdir()
    rotations = [{"app_name": "Billing_Sync", "deliver": {"tasks_file": str(tmp_path / "deliver.yml")}}]
    hosts = {name: e2e.org_host(sim, name, rotations) for name in sorted(sim.orgs)}
    group_vars = {"delivery_dir": str(tmp_path / "delivered"), "fail_org": fail_org}
    return e2e.write_inventory(tmp_path / "inventory.yml", hosts, group_vars)


def _mains(sim):
    return {org: dict(sim.org(org).app("Billing_Sync").consumer("Billing").main) for org in sim.orgs}


def test_failing_canary_leaves_the_rest_untouched(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(FLEET)
    inventory = _fleet(sim, tmp_path, e2e)
    before = _mains(sim)
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 1})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    canary = rows[("org01", "Billing_Sync", "Billing")]
    assert canary["outcome"] == "failed" and canary["phase"] == "deliver" and not canary["rolled_back"], canary
    # a failed tasks-file delivery may have reached part of its targets: the pair is kept, unpromoted, for the next run
    staged = sim.org("org01").app("Billing_Sync").consumer("Billing").staged
    assert staged["state"] == "Active" and "...%s" % staged["key"][-4:] in canary["error"], canary
    for org in sorted(sim.orgs)[1:]:
        row = rows[(org, "Billing_Sync", None)]
        assert row["outcome"] == "not_run" and "canary" in row["error"], row
        assert sim.requests(org) == [], (org, sim.counts(org))  # not even a token request
    assert _mains(sim) == before
    assert proc.report["totals"]["not_run"] == 5 and proc.report["totals"]["failed"] == 1
    assert "NOT_RUN org02" in proc.stdout
    assert not list((tmp_path / "delivered").iterdir())
    assert e2e.leaks(proc.output + json.dumps(proc.report), sim) == []


def test_passing_canary_then_the_rest_in_batches(sim_factory, tmp_path, ansible, e2e):
    """Batches [org01 org02] (canary) [org03 org04] [org05 org06]: org04 fails, the others rotate."""
    sim = sim_factory(FLEET)
    inventory = _fleet(sim, tmp_path, e2e, fail_org="org04")
    before = _mains(sim)
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 2, "sfdc_eca_batch_size": 2})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    after = _mains(sim)
    assert rows[("org04", "Billing_Sync", "Billing")]["outcome"] == "failed"
    assert after["org04"] == before["org04"]
    for org in ("org01", "org02", "org03", "org05", "org06"):
        assert rows[(org, "Billing_Sync", "Billing")]["outcome"] == "rotated", rows
        assert after[org]["key"] != before[org]["key"]
        assert (tmp_path / "delivered" / (org + ".key")).read_text() == after[org]["key"]


def test_max_fail_percentage_stops_later_batches(sim_factory, tmp_path, ansible, e2e):
    """1 of the 4 orgs run so far failed (25% > 20%): the last batch is not run."""
    sim = sim_factory(FLEET)
    inventory = _fleet(sim, tmp_path, e2e, fail_org="org03")
    before = _mains(sim)
    sim.reset_log()
    extra_vars = {"sfdc_eca_canary_size": 2, "sfdc_eca_batch_size": 2, "sfdc_eca_max_fail_percentage": 20}
    proc = ansible.playbook("rotate.yml", inventory, extra_vars=extra_vars)
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    assert [rows[("org%02d" % i, "Billing_Sync", "Billing")]["outcome"] for i in (1, 2, 3, 4)] == \
        ["rotated", "rotated", "failed", "rotated"]
    for org in ("org05", "org06"):
        row = rows[(org, "Billing_Sync", None)]
        assert row["outcome"] == "not_run" and "sfdc_eca_max_fail_percentage" in row["error"], row
        assert sim.requests(org) == []
        assert _mains(sim)[org] == before[org]


def test_no_secret_at_any_verbosity(sim_factory, tmp_path, ansible, e2e):
    """-vvvv output, the report and the history hold no secret: stage, vault and tasks-file delivery,
    a failing delivery with rollback, revoke with proof, and a verification hook."""
    sim = sim_factory({"orgs": FLEET["orgs"][:3]})
    (tmp_path / "deliver.yml").write_text(DELIVER)
    (tmp_path / "delivered").mkdir()
    (tmp_path / "hook.yml").write_text("- name: Smoke test\n  ansible.builtin.assert:\n    that: sfdc_eca_credential.secret | length > 8\n")
    password = tmp_path / "pw"
    password.write_text("pw-for-the-test\n")
    tasks = {"tasks_file": str(tmp_path / "deliver.yml")}
    hosts = {
        "org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync", "revoke_previous": True, "deliver": tasks,
                                              "verify_tasks_file": str(tmp_path / "hook.yml")}]),
        "org02": e2e.org_host(sim, "org02", [{"app_name": "Billing_Sync", "deliver": {
            "vault_file": str(tmp_path / "{org}.vault"), "vault_password_file": str(password)}}]),
        "org03": e2e.org_host(sim, "org03", [{"app_name": "Billing_Sync", "deliver": tasks}]),
    }
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts, {"delivery_dir": str(tmp_path / "delivered"),
                                                                        "fail_org": "org03"})
    proc = ansible.playbook("rotate.yml", inventory, "-vvvv")
    assert proc.report is not None, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    assert rows[("org01", "Billing_Sync", "Billing")]["outcome"] == "rotated"
    assert rows[("org01", "Billing_Sync", "Billing")]["old_pair_refused"] is True
    assert rows[("org02", "Billing_Sync", "Billing")]["outcome"] == "rotated"
    assert rows[("org03", "Billing_Sync", "Billing")]["outcome"] == "failed"
    new = sim.org("org02").app("Billing_Sync").consumer("Billing").main
    assert ansible.vault_view(str(tmp_path / "org02.vault"), str(password))["secret"] == new["secret"]
    text = proc.output + (ansible.report_dir / "history.json").read_text()
    for ext in ("md", "html"):
        text += (ansible.report_dir / ("report." + ext)).read_text()
    text += json.dumps(proc.report) + (tmp_path / "org02.vault").read_text()
    # -vvvv really was verbose (task paths show from -vv, connections from -vvv)
    assert "task path:" in proc.output and "ESTABLISH LOCAL CONNECTION" in proc.output
    assert e2e.leaks(text, sim) == []
