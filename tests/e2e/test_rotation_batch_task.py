"""playbooks/rotate.yml rotates a batch's orgs in one task (the role's `fleet` entry point, issue 5).

Checked against the simulator: the canary still holds back the rest, a bad variable fails only its org,
orgs with tasks files get their own tasks in the same batch, and the result equals the per-org tasks'
(`-e sfdc_eca_task_per_org=true`, the `main` entry point) row for row and call for call.
"""

import json
import re

import pytest

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
    assert "Run each consumer's delivery tasks file, then its verification hook" in proc.stdout
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


THREE = {"orgs": [
    {"name": "org%02d" % i, "apps": [{"developer_name": "Data_Loader", "consumers": [
        {"name": "Primary"}, {"name": "Secondary"}, {"name": "Tertiary"}]}]} for i in (1, 2)]}

COUNTED_DELIVERY = """
- name: Count the runs of this step (SFDC_ECA_STEP in the environment names it)
  ansible.builtin.shell: >-
    printf '%s\\n' "$SFDC_ECA_STEP" >> {{ delivery_dir }}/{{ sfdc_eca_credential.org }}-{{ sfdc_eca_credential.consumer_name }}.deliveries
  changed_when: true

- name: The secret store refuses the write
  ansible.builtin.fail:
    msg: the secret store refused the write
  when: sfdc_eca_credential.org ~ '/' ~ sfdc_eca_credential.consumer_name in fail_deliver

- name: Store
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential.key }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}-{{ sfdc_eca_credential.consumer_name }}.key"
    mode: "0600"
"""

COUNTED_HOOK = """
- name: Count the runs of this hook
  ansible.builtin.shell: >-
    printf '%s\\n' "$SFDC_ECA_STEP" >> {{ delivery_dir }}/{{ sfdc_eca_credential.org }}-{{ sfdc_eca_credential.consumer_name }}.hooks
  changed_when: true

- name: The integration's smoke test
  ansible.builtin.assert:
    that: sfdc_eca_credential.org ~ '/' ~ sfdc_eca_credential.consumer_name not in fail_hook
    fail_msg: the integration could not log in
"""


@pytest.mark.parametrize("per_org", ["false", "true"])
def test_a_failed_step_fails_its_consumer_only_and_every_later_step_runs_once(
        sim_factory, tmp_path, ansible, e2e, per_org):
    """org01's three consumers deliver and verify through tasks files: Primary's delivery fails (its hook does not
    run), Secondary's hook fails after its delivery; both keep their delivered pair unpromoted, Tertiary (whose steps
    come after both failures) rotates. org02, in the same batch, rotates all three. Every step ran at most once."""
    sim = sim_factory(THREE)
    (tmp_path / "deliver.yml").write_text(COUNTED_DELIVERY)
    (tmp_path / "hook.yml").write_text(COUNTED_HOOK)
    delivered = tmp_path / "delivered"
    delivered.mkdir()
    entry = {"app_name": "Data_Loader", "deliver": {"tasks_file": str(tmp_path / "deliver.yml")},
             "verify_tasks_file": str(tmp_path / "hook.yml")}
    hosts = dict((org, e2e.org_host(sim, org, [entry])) for org in sorted(sim.orgs))
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts, {"delivery_dir": str(delivered)})
    consumers = dict(((org, name), sim.org(org).app("Data_Loader").consumer(name))
                     for org in sim.orgs for name in ("Primary", "Secondary", "Tertiary"))
    before = dict((k, dict(c.main)) for k, c in consumers.items())
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={
        "sfdc_eca_task_per_org": per_org, "sfdc_eca_canary_size": 2, "fail_deliver": ["org01/Primary"],
        "fail_hook": ["org01/Secondary"]})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)

    def runs(org, name, kind):
        path = delivered / ("%s-%s.%s" % (org, name, kind))
        return path.read_text().split() if path.exists() else []

    failed = {("org01", "Primary"): "deliver", ("org01", "Secondary"): "hook"}
    for (org, name), consumer in consumers.items():
        row = rows[(org, "Data_Loader", name)]
        assert len(runs(org, name, "deliveries")) == 1, (org, name, runs(org, name, "deliveries"))
        if (org, name) in failed:
            assert (row["outcome"], row["phase"]) == ("failed", failed[(org, name)]), row
            assert consumer.main == before[(org, name)]
            assert consumer.staged and consumer.staged["state"] == "Active", "the delivered pair was deleted"
        else:
            assert row["outcome"] == "rotated", row
            assert (delivered / ("%s-%s.key" % (org, name))).read_text() == consumer.main["key"]
    assert "The secret store refuses the write" in rows[("org01", "Data_Loader", "Primary")]["error"]
    assert 'task "The integration\'s smoke test"' in rows[("org01", "Data_Loader", "Secondary")]["error"]
    assert (delivered / "org01-Secondary.key").read_text() == consumers[("org01", "Secondary")].staged["key"]
    assert runs("org01", "Primary", "hooks") == [], "a hook ran after its consumer's delivery failed"
    assert [len(runs(org, name, "hooks")) for org, name in consumers if (org, name) != ("org01", "Primary")] == [1] * 5
    # the step names in the environment: the same step number has the same name on every org of the batch
    steps = dict(((org, name), runs(org, name, "deliveries")[0]) for org, name in consumers)
    assert all(re.fullmatch(r"\S+\.[024]", step) for step in steps.values()), steps
    assert steps[("org01", "Tertiary")] == steps[("org02", "Tertiary")]
    assert e2e.leaks(proc.output + json.dumps(proc.report), sim) == []


def test_a_tasks_file_that_cannot_be_loaded_fails_its_org_without_a_promotion(sim_factory, tmp_path, ansible, e2e):
    """org01's Primary delivers through a file that is not a list of tasks: Ansible fails the include, not a task of
    it, and counts the host as failed (it leaves the batch). Every consumer of org01 fails with its pair kept, its
    later consumers' deliveries may have run. Nothing of org01 is promoted; org02 rotates."""
    sim = sim_factory(THREE)
    (tmp_path / "deliver.yml").write_text(COUNTED_DELIVERY)
    (tmp_path / "broken.yml").write_text("name: not a list of tasks\n")
    delivered = tmp_path / "delivered"
    delivered.mkdir()
    good = {"tasks_file": str(tmp_path / "deliver.yml")}
    hosts = {
        "org01": e2e.org_host(sim, "org01", [
            {"app_name": "Data_Loader", "consumer_name": "Primary", "deliver": {"tasks_file": str(tmp_path / "broken.yml")}},
            {"app_name": "Data_Loader", "consumer_name": "Secondary", "deliver": good},
            {"app_name": "Data_Loader", "consumer_name": "Tertiary", "deliver": good}]),
        "org02": e2e.org_host(sim, "org02", [{"app_name": "Data_Loader", "deliver": good}]),
    }
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts, {"delivery_dir": str(delivered)})
    consumers = dict(((org, name), sim.org(org).app("Data_Loader").consumer(name))
                     for org in sim.orgs for name in ("Primary", "Secondary", "Tertiary"))
    before = dict((k, dict(c.main)) for k, c in consumers.items())
    proc = ansible.playbook("rotate.yml", inventory, extra_vars={"sfdc_eca_canary_size": 2, "fail_deliver": []})
    assert proc.returncode == 2, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    for (org, name), consumer in consumers.items():
        row = rows[(org, "Data_Loader", name)]
        if org == "org01":
            assert (row["outcome"], row["phase"]) == ("failed", "deliver"), row
            assert "is kept and the next run resumes it" in row["error"], row
            assert consumer.main == before[(org, name)]
            assert consumer.staged and consumer.staged["state"] == "Active", "a pair that may be delivered was deleted"
        else:
            assert row["outcome"] == "rotated", row
            assert (delivered / ("org02-%s.key" % name)).read_text() == consumer.main["key"]
    assert e2e.leaks(proc.output + json.dumps(proc.report), sim) == []
