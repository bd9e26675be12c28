"""A resumed Active pair (left by an interrupted run) that fails again is kept for the next run: it may already
be where an integration reads it (docs/rotation.md, "What is deleted")."""

SEED = {"orgs": [{"name": name, "apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync",
                                          "consumers": [{"name": "Billing", "staged": {"state": "Active", "age_days": 1}}]}]}
                 for name in ("org01", "org02")]}

DELIVER = """
- name: The secret store of org02 is down
  ansible.builtin.fail:
    msg: down
  when: sfdc_eca_credential.org == 'org02'
"""

HOOK = """
- name: The integration of org01 cannot log in
  ansible.builtin.fail:
    msg: LOGIN-REFUSED-42
  when: sfdc_eca_credential.org == 'org01' and not (hook_passes | default(false) | bool)
"""


def test_resumed_pair_on_failure(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(SEED)
    (tmp_path / "deliver.yml").write_text(DELIVER)
    (tmp_path / "hook.yml").write_text(HOOK)
    rotations = [{"app_name": "Billing_Sync", "deliver": {"tasks_file": str(tmp_path / "deliver.yml")},
                  "verify_tasks_file": str(tmp_path / "hook.yml")}]
    hosts = {name: e2e.org_host(sim, name, rotations) for name in ("org01", "org02")}
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)
    before = {o: sim.org(o).app("Billing_Sync").consumer("Billing") for o in sim.orgs}
    staged = {o: dict(c.staged) for o, c in before.items()}
    main = {o: dict(c.main) for o, c in before.items()}

    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 0})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)

    # the hook failed after the delivery: the delivered pair is kept, unpromoted
    r1 = rows[("org01", "Billing_Sync", "Billing")]
    assert r1["plan"] == "resume" and r1["outcome"] == "failed" and r1["phase"] == "hook", r1
    # the report names the failed task; the task's own output stays hidden (no_log)
    assert not r1["rolled_back"] and "org01 cannot log in" in r1["error"] and "LOGIN-REFUSED-42" not in r1["error"], r1
    c1 = sim.org("org01").app("Billing_Sync").consumer("Billing")
    assert c1.main == main["org01"] and c1.staged["key"] == staged["org01"]["key"] and c1.staged["state"] == "Active"

    r2 = rows[("org02", "Billing_Sync", "Billing")]
    assert r2["plan"] == "resume" and r2["outcome"] == "failed" and r2["phase"] == "deliver", r2
    assert not r2["rolled_back"], r2
    c2 = sim.org("org02").app("Billing_Sync").consumer("Billing")
    assert c2.main == main["org02"] and c2.staged["key"] == staged["org02"]["key"] and c2.staged["state"] == "Active"
    assert e2e.leaks(proc.output, sim) == []

    # once the integration logs in, the next run promotes that same pair
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 0, "hook_passes": True})
    rows = e2e.rows_by(proc.report)
    r1 = rows[("org01", "Billing_Sync", "Billing")]
    assert r1["plan"] == "resume" and r1["outcome"] == "rotated", r1
    assert sim.org("org01").app("Billing_Sync").consumer("Billing").main["key"] == staged["org01"]["key"]
