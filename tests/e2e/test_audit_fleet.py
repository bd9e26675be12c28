"""playbooks/audit.yml: a read-only fleet view in the report format (issue 4)."""

import json


def _org(name, consumers, apps=None):
    apps = apps or {"Billing_Sync": consumers}
    return {"name": name, "apps": [{"developer_name": a, "label": a, "consumers": c} for a, c in apps.items()]}


SEED = {"orgs": [
    _org("org01", [{"name": "Billing"}]),
    _org("org02", [{"name": "Billing", "staged": {"state": "Active", "age_days": 26}}]),   # expires in 4 days
    _org("org03", [{"name": "Billing", "staged": {"state": "Rotated", "age_days": 10}}]),  # grace ends in 20 days
    _org("org04", [{"name": "Billing", "staged": {"state": "Expired", "age_days": 45}}]),
    _org("org05", None, apps={"Billing_Sync": [{"name": "Billing"}],
                              "Data_Loader": [{"name": "Primary"}, {"name": "Secondary", "staged": {"state": "Active", "age_days": 1}}]}),
]}


def test_audit_reads_and_reports(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(SEED)
    (tmp_path / "deliver.yml").write_text("- ansible.builtin.debug:\n    msg: delivered\n")
    rotations = [{"app_name": "Billing_Sync", "deliver": {"tasks_file": str(tmp_path / "deliver.yml")}}]
    hosts = {name: e2e.org_host(sim, name, rotations) for name in sorted(sim.orgs)}
    hosts["org06"] = e2e.org_host(sim, "org01", rotations, auth={"client_id": "3MVGnope", "client_secret": "wrong-secret"})
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts)

    # org01 is rotated by this tool first: the audit then knows it from the history file
    proc = ansible.playbook("rotate.yml", inventory, "--limit", "org01")
    assert proc.returncode == 0, e2e.tail(proc)
    sim.reset_log()
    before = {o: sim.org_state(o)["apps"] for o in sim.orgs}

    proc = ansible.playbook("audit.yml", inventory, extra_vars={"sfdc_eca_expiry_warning_days": 7})
    assert proc.report is not None, e2e.tail(proc)
    for org in sim.orgs:
        assert sim.write_count(org) == 0, (org, sim.counts(org))
        assert sim.org_state(org)["apps"] == before[org]
    rows = e2e.rows_by(proc.report)
    assert proc.report["kind"] == "audit"

    r = rows[("org01", "Billing_Sync", "Billing")]
    assert r["state"] == "Rotated" and "previous_in_grace" in r["findings"] and r["last_rotated"], r
    assert "never_rotated_by_tool" not in r["findings"]
    main = sim.org("org01").app("Billing_Sync").consumer("Billing").main["key"]
    assert r["old_key"] == "..." + main[-4:]

    r = rows[("org02", "Billing_Sync", "Billing")]
    assert r["state"] == "Active" and "staged_expiring" in r["findings"] and r["outcome"] == "attention", r
    assert "never_rotated_by_tool" in r["findings"]
    staged = sim.org("org02").app("Billing_Sync").consumer("Billing").staged
    assert r["staged_key"] == "..." + staged["key"][-4:] and r["expiry"]

    r = rows[("org03", "Billing_Sync", "Billing")]
    assert r["state"] == "Rotated" and "previous_in_grace" in r["findings"] and r["expiry"], r

    r = rows[("org04", "Billing_Sync", "Billing")]
    assert r["state"] == "Expired" and "staged_expired" in r["findings"] and r["outcome"] == "attention", r

    # every app of the org, the admin app the simulator authenticates with included
    assert {k[1:] for k in rows if k[0] == "org05"} == {
        ("Billing_Sync", "Billing"), ("Data_Loader", "Primary"), ("Data_Loader", "Secondary"), ("Sim_Admin", "Sim_Admin")}
    r = rows[("org05", "Data_Loader", "Secondary")]
    assert r["state"] == "Active" and "staged_waiting" in r["findings"] and "staged_expiring" not in r["findings"], r

    r = [x for x in proc.report["rows"] if x["org"] == "org06"]
    assert len(r) == 1 and r[0]["outcome"] == "failed" and r[0]["phase"] == "authenticate", r

    # budget: <= 3 calls per app (token once per org)
    for org in ("org01", "org02", "org05"):
        apps = len(sim.org(org).apps)
        rest = [q for q in sim.requests(org) if q["endpoint"] != "token"]
        assert len(rest) <= 3 * apps, (org, sim.counts(org))

    for ext in ("md", "html"):  # audit.json is proc.report (the harness renames it after each run)
        assert (ansible.report_dir / ("audit." + ext)).exists()
    assert "staged_expiring" in (ansible.report_dir / "audit.md").read_text()
    assert "sfdc.eca audit:" in proc.stdout
    text = proc.output + json.dumps(proc.report) + (ansible.report_dir / "audit.html").read_text()
    assert e2e.leaks(text, sim) == []
