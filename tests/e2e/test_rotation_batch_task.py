"""playbooks/rotate.yml rotates a batch's orgs in one task (the role's `fleet` entry point, issue 5).

Checked against the simulator: the canary still holds back the rest, a bad variable fails only its org,
orgs with tasks files get their own tasks in the same batch, and the result equals the per-org tasks'
(`-e sfdc_eca_task_per_org=true`, the `main` entry point) row for row and call for call.
"""

import json
import re

FLEET = {"orgs": [
    {"name": "org%02d" % i, "apps": [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]}
    for i in range(1, 7)]}

DELIVER = """
- name: Store
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential.key }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}.key"
    mode: "0600"
"""


def _inventory(sim, tmp_path, e2e, hosts_extra=None, tasks_file_orgs=()):
    (tmp_path / "vault-pw").write_text("e2e-vault-pw\n")
    (tmp_path / "deliver.yml").write_text(DELIVER)
    (tmp_path / "delivered").mkdir(exist_ok=True)
    vault = {"vault_file": str(tmp_path / "vaults" / "{org}-{app_name}-{consumer_name}.vault.yml"),
             "vault_password_file": str(tmp_path / "vault-pw")}
    hosts = {}
    for name in sorted(sim.orgs):
        deliver = {"tasks_file": str(tmp_path / "deliver.yml")} if name in tasks_file_orgs else vault
        hosts[name] = e2e.org_host(sim, name, [{"app_name": "Billing_Sync", "deliver": deliver}],
                                   **(hosts_extra or {}).get(name, {}))
    return e2e.write_inventory(tmp_path / "inventory.yml", hosts, {"delivery_dir": str(tmp_path / "delivered")})


def _mains(sim):
    return {org: dict(sim.org(org).app("Billing_Sync").consumer("Billing").main) for org in sim.orgs}


def _recap(proc):
    return dict(re.findall(r"^(org\d+)\s+: (ok=.*)$", proc.stdout, re.M))


def test_canary_failure_holds_back_the_batch(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(FLEET)
    o = sim.orgs["org01"]
    inventory = _inventory(sim, tmp_path, e2e, hosts_extra={"org01": {"sfdc_eca_connection": {
        "instance_url": o.instance_url, "ca_path": sim.ca_path, "client_id": o.admin["client_id"],
        "client_secret": "not-the-admin-secret"}}})
    before = _mains(sim)
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    assert rows[("org01", "Billing_Sync", None)]["outcome"] == "failed", rows
    for org in sorted(sim.orgs)[1:]:
        row = rows[(org, "Billing_Sync", None)]
        assert row["outcome"] == "not_run" and "canary" in row["error"], row
        assert sim.requests(org) == [], (org, sim.counts(org))
    assert _mains(sim) == before
    assert "failed=1" in _recap(proc)["org01"]
    assert "not-the-admin-secret" not in proc.output


def test_a_bad_variable_fails_only_its_org_and_tasks_file_orgs_get_their_tasks(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(FLEET)
    inventory = _inventory(sim, tmp_path, e2e, hosts_extra={"org03": {"sfdc_eca_verify": "bogus"},
                                                            "org05": {"sfdc_eca_min_age_days": "{{ 'S3cretValue' | from_json }}"},
                                                            "org06": {"sfdc_eca_min_age_days": "{{ no_such_var }}"}},
                           tasks_file_orgs=("org04",))
    before = _mains(sim)
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    after = _mains(sim)

    bad = rows[("org03", "Billing_Sync", None)]
    assert bad["outcome"] == "failed" and bad["phase"] == "options", bad
    assert "sfdc_eca_verify" in bad["error"] and "bogus" in bad["error"], bad
    assert sim.requests("org03") == [] and after["org03"] == before["org03"]
    assert "failed=1" in _recap(proc)["org03"]

    untemplatable = [row for row in proc.report["rows"] if row["org"] == "org06"]
    assert [row["outcome"] for row in untemplatable] == ["failed"], untemplatable
    assert "sfdc_eca_min_age_days" in untemplatable[0]["error"] and "no_such_var" in untemplatable[0]["error"]
    assert sim.requests("org06") == []
    # a filter's error may quote the value: only its type is kept
    [filtered] = [row for row in proc.report["rows"] if row["org"] == "org05"]
    assert filtered["outcome"] == "failed" and "sfdc_eca_min_age_days cannot be templated" in filtered["error"]
    assert "S3cretValue" not in json.dumps(proc.report) and "S3cretValue" not in proc.stdout.replace(
        "'S3cretValue' | from_json", "")

    for org in ("org01", "org02", "org04"):
        assert rows[(org, "Billing_Sync", "Billing")]["outcome"] == "rotated", rows
        assert after[org]["key"] != before[org]["key"]
    # the tasks-file org ran its own tasks in the second batch, the others were delivered by the batch task
    assert (tmp_path / "delivered" / "org04.key").read_text() == after["org04"]["key"]
    assert "Run the user's tasks files (each consumer's delivery, then its verification hook)" in proc.stdout
    for org in ("org02",):
        delivered = ansible.vault_view(str(tmp_path / "vaults" / ("%s-Billing_Sync-Billing.vault.yml" % org)),
                                       str(tmp_path / "vault-pw"))
        assert (delivered["key"], delivered["secret"]) == (after[org]["key"], after[org]["secret"])
    assert e2e.leaks(proc.output + json.dumps(proc.report), sim) == []


def _comparable(report):
    keep = ("org", "app_name", "consumer_name", "plan", "plan_reason", "outcome", "phase", "state", "rolled_back",
            "revoked", "old_pair_refused", "error")
    return sorted(tuple((k, row.get(k)) for k in keep) for row in report["rows"])


def test_the_batch_task_and_the_per_org_tasks_give_the_same_result(sim_factory, tmp_path, ansible, e2e):
    runs = {}
    # the strings an AWX survey sends
    for mode, per_org in (("batch", "false"), ("per_org", "true")):
        sim = sim_factory(FLEET)
        workdir = tmp_path / mode
        workdir.mkdir()
        inventory = _inventory(sim, workdir, e2e, hosts_extra={"org05": {"sfdc_eca_revoke_previous": True}},
                               tasks_file_orgs=("org02",))
        sim.reset_log()
        proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_task_per_org": per_org})
        assert proc.returncode == 0, e2e.tail(proc)
        runs[mode] = (proc, _comparable(proc.report), dict((org, sim.counts(org)) for org in sim.orgs))
    batch, per_org = runs["batch"], runs["per_org"]
    assert batch[1] == per_org[1]
    assert batch[2] == per_org[2], "the same API calls per org and endpoint"
    assert {dict(row)["outcome"] for row in batch[1]} == {"rotated"}
    # the per-org tasks run the rotation task on every org; the batch task on the first org of each batch
    assert per_org[0].stdout.count("TASK [sfdc.eca.rotation : Rotate this org's consumers") == 2
    assert len(re.findall(r"^changed: \[org0[3-6]\]", per_org[0].stdout, re.M)) == 4
    assert len(re.findall(r"^changed: \[org0[3-6]\]", batch[0].stdout, re.M)) == 0


def test_a_canary_org_refused_for_its_variables_holds_back_the_rest(sim_factory, tmp_path, ansible, e2e):
    """Canary batch [org01 org02]: org02's options are refused, org01 rotates; no later org is touched."""
    sim = sim_factory(FLEET)
    inventory = _inventory(sim, tmp_path, e2e, hosts_extra={"org02": {"sfdc_eca_verify": "bogus"}})
    before = _mains(sim)
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 2})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    assert rows[("org01", "Billing_Sync", "Billing")]["outcome"] == "rotated"
    assert rows[("org02", "Billing_Sync", None)]["outcome"] == "failed"
    for org in ("org03", "org04", "org05", "org06"):
        row = rows[(org, "Billing_Sync", None)]
        assert row["outcome"] == "not_run" and "org02" in row["error"], row
        assert sim.requests(org) == [] and _mains(sim)[org] == before[org]


ENDS_HOST = """
- name: Store
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential.key }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}.key"
    mode: "0600"

- name: This org's host stops here
  ansible.builtin.meta: end_host
  when: sfdc_eca_credential.org == 'org02'
"""


def test_an_org_whose_host_left_the_play_keeps_its_delivered_pair_unpromoted(sim_factory, tmp_path, ansible, e2e):
    """A host that leaves the play during its tasks files (here `meta: end_host` after the delivery) did not finish
    them: its consumer fails, the delivered pair stays staged and Active for the next run; the others rotate."""
    sim = sim_factory(FLEET)
    inventory = _inventory(sim, tmp_path, e2e, tasks_file_orgs=("org02", "org03"))
    (tmp_path / "deliver.yml").write_text(ENDS_HOST)
    before = _mains(sim)
    proc = ansible.playbook("rotate.yml", inventory)
    rows = e2e.rows_by(proc.report)
    after = _mains(sim)
    left = rows[("org02", "Billing_Sync", "Billing")]
    assert left["outcome"] == "failed", left
    assert after["org02"] == before["org02"]
    staged = sim.org("org02").app("Billing_Sync").consumer("Billing").staged
    assert staged and staged["state"] == "Active"
    assert (tmp_path / "delivered" / "org02.key").read_text() == staged["key"]
    for org in ("org01", "org03", "org04"):
        assert rows[(org, "Billing_Sync", "Billing")]["outcome"] == "rotated", rows
        assert after[org]["key"] != before[org]["key"]
    assert (tmp_path / "delivered" / "org03.key").read_text() == after["org03"]["key"]
    assert e2e.leaks(proc.output + json.dumps(proc.report), sim) == []
