"""playbooks/rotate.yml against a simulated fleet of 24 orgs in mixed situations (issue 4).

One test runs the whole story, because each step builds on the org state the previous one left:
check mode (writes nothing), the rotation, a second run (changes nothing where the first one
finished), with per-org assertions on the simulator's final state, the delivered credentials
(tasks file and ansible-vault file), the report rows, the history file, and no secret anywhere in
the output or the files the run wrote.
"""

import json
import stat

import pytest

ADMIN_USER = "admin@fleet.test"
OLD = {}  # filled per test: (org, app, consumer) -> {"key", "secret"} before the run

# org -> (apps, seed extras). Apps: {developer_name: [consumer names]}
PLAIN = {"Billing_Sync": ["Billing"]}


def _org(name, apps, **extra):
    entry = {"name": name, "admin": {"username": ADMIN_USER},
             "apps": [{"developer_name": app, "label": app.replace("_", " "),
                       "consumers": [c if isinstance(c, dict) else {"name": c} for c in consumers]}
                      for app, consumers in apps.items()]}
    entry.update(extra)
    return entry


SEED = {"orgs": [
    _org("org01", PLAIN),                                                  # canary, tasks_file
    _org("org02", PLAIN),                                                  # vault file
    _org("org03", {"Billing_Sync": ["Billing"], "Data_Sync": ["Sync"], "Reporting": ["Reports"]}),
    _org("org04", {"Data_Loader": ["Primary", "Secondary", "Tertiary"]}),  # multi-consumer app
    _org("org05", {"Billing_Sync": [{"name": "Billing", "staged": {"state": "Rotated", "age_days": 5}}]}),
    _org("org06", {"Billing_Sync": [{"name": "Billing", "staged": {"state": "Rotated", "age_days": 5}}]}),
    _org("org07", {"Billing_Sync": [{"name": "Billing", "staged": {"state": "Expired", "age_days": 40}}]}),
    _org("org08", {"Billing_Sync": [{"name": "Billing", "staged": {"state": "Active", "age_days": 2}}]}),
    _org("org09", PLAIN),                                                  # 401 mid-run
    _org("org10", PLAIN),                                                  # 503 storm
    _org("org11", PLAIN),                                                  # delivery fails
    _org("org12", {"Billing_Sync": [{"name": "Billing", "flows": ["jwt_bearer", "refresh_token"]}]}),  # verify refused
    _org("org13", PLAIN),                                                  # verification hook fails
    _org("org14", PLAIN),                                                  # API limit spent
    _org("org15", PLAIN),                                                  # revoke previous
    _org("org16", {"Billing_Sync": [{"name": "Billing", "jwt_cert": "generate"}]}),  # verify with JWT
    _org("org17", PLAIN),                                                  # verify none
    _org("org18", PLAIN),                                                  # app name wrong
    _org("org19", {"Data_Loader": ["Primary", "Secondary"]}),              # one consumer of two
    _org("org20", PLAIN),                                                  # access_token auth
    _org("org21", PLAIN),                                                  # authentication refused
    _org("org22", PLAIN),                                                  # promote fails, next run resumes
    _org("org23", PLAIN, rest_secret_access=False),                        # secrets via REST not enabled
    _org("org24", {"Billing_Sync": ["Billing"], "Partner_Api": ["Partner"]},
         variants={"post_body": "flat", "empty_staged": "not_found", "staged_url_spelling": "URL"}),
]}

DELIVER_TASKS = """
- name: Fail the delivery of org11 (a broken secret store)
  ansible.builtin.fail:
    msg: "the secret store refused the write"
  when: sfdc_eca_credential.org == 'org11'

- name: Store the credential where the integration reads it
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential | to_json }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}__{{ sfdc_eca_credential.app_name }}__{{ sfdc_eca_credential.consumer_name }}.json"
    mode: "0600"
"""

VERIFY_HOOK = """
- name: The integration's own smoke test
  ansible.builtin.assert:
    that:
      - sfdc_eca_credential.key | length > 10
      - sfdc_eca_credential.org != 'org13'
    fail_msg: "the integration could not log in with the new pair"
"""

ROTATED = {"org01", "org02", "org03", "org04", "org06", "org07", "org08", "org09", "org10", "org15", "org16",
           "org17", "org19", "org20", "org24"}
ROLLED_BACK = {"org12": "verify"}
# failed after a delivery started: the pair may be where an integration reads it, so it is kept (unpromoted)
KEPT = {"org11": "deliver", "org13": "hook"}
UNTOUCHED_FAILED = {"org14": ("plan", "daily API request limit"), "org18": ("plan", "No_Such_App"),
                    "org21": ("authenticate", "authentication"), "org23": ("plan", "not enabled")}


@pytest.fixture
def fleet(sim_factory, tmp_path, e2e):
    sim = sim_factory(SEED)
    deliveries = tmp_path / "delivered"
    deliveries.mkdir()
    vaults = tmp_path / "vaults"
    vaults.mkdir()
    password = tmp_path / "vault-password"
    password.write_text("correct horse battery staple\n")
    password.chmod(0o600)
    (tmp_path / "deliver.yml").write_text(DELIVER_TASKS)
    (tmp_path / "verify_hook.yml").write_text(VERIFY_HOOK)
    jwt_key = tmp_path / "org16.key"
    jwt_key.write_text(sim.org("org16").app("Billing_Sync").consumer("Billing").private_key_pem)
    jwt_key.chmod(0o600)

    tasks = {"tasks_file": str(tmp_path / "deliver.yml")}

    def vault(name):
        return {"vault_file": str(vaults / name), "vault_password_file": str(password)}

    rotations = {name: [{"app_name": "Billing_Sync", "deliver": tasks}] for name in sim.orgs}
    rotations["org02"] = [{"app_name": "Billing_Sync", "deliver": vault("{org}-{app_name}.yml")}]
    rotations["org03"] = [{"app_name": "Billing_Sync", "deliver": tasks},
                          {"app_name": "Data_Sync", "deliver": vault("{org}-{app_name}-{consumer_name}.yml")},
                          {"app_name": "Reporting", "consumer_name": "Reports", "deliver": tasks}]
    rotations["org04"] = [{"app_name": "Data_Loader", "deliver": vault("{org}-{consumer_name}.yml")}]
    rotations["org06"] = [{"app_name": "Billing_Sync", "replace_rotated": True, "deliver": tasks}]
    rotations["org13"] = [{"app_name": "Billing_Sync", "verify_tasks_file": str(tmp_path / "verify_hook.yml"),
                           "deliver": tasks}]
    rotations["org15"] = [{"app_name": "Billing_Sync", "revoke_previous": True, "deliver": tasks}]
    rotations["org16"] = [{"app_name": "Billing_Sync", "verify": "jwt",
                           "verify_jwt": {"username": ADMIN_USER, "private_key_file": str(jwt_key)}, "deliver": tasks}]
    rotations["org17"] = [{"app_name": "Billing_Sync", "verify": "none", "deliver": tasks}]
    rotations["org18"] = [{"app_name": "No_Such_App", "deliver": tasks}]
    rotations["org19"] = [{"app_name": "Data_Loader", "consumer_name": "Secondary", "deliver": tasks}]
    rotations["org24"] = [{"app_name": "Billing_Sync", "deliver": tasks},
                          {"app_name": "Partner_Api", "deliver": vault("{org}-partner.yml")}]
    hosts = {}
    for name in sim.orgs:
        auth = "client_credentials"
        if name == "org20":
            auth = "access_token"
        elif name == "org21":
            auth = {"client_id": sim.orgs[name].admin["client_id"], "client_secret": "not-the-secret"}
        hosts[name] = e2e.org_host(sim, name, rotations[name], auth=auth)
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", hosts, {"delivery_dir": str(deliveries)})
    return {"sim": sim, "inventory": inventory, "deliveries": deliveries, "vaults": vaults, "password": str(password)}


def _state(sim):
    out = {}
    for org in sim.orgs:
        for app in sim.org(org).apps:
            if app.developer_name == "Sim_Admin":
                continue
            for consumer in app.consumers:
                out[(org, app.developer_name, consumer.name)] = {"main": dict(consumer.main),
                                                                 "staged": consumer.staged and dict(consumer.staged)}
    return out


def _faults(sim):
    sim.add_fault("org09", "invalid_session", method="POST", endpoint="staged", times=1)
    sim.add_fault("org10", "unavailable", method="GET", endpoint="*", times=4, retry_after=0)
    sim.add_fault("org10", "unavailable", method="POST", endpoint="staged", times=1, retry_after=0)
    sim.add_fault("org22", "server_error", method="PATCH", endpoint="staged_item", times=None)
    sim.configure_org("org14", api_limit=1000, api_usage=1000)


def _delivered(fleet, ansible, org, app, consumer):
    """The credential a delivery backend received for this consumer (None when nothing was delivered)."""
    plain = fleet["deliveries"] / ("%s__%s__%s.json" % (org, app, consumer))
    if plain.exists():
        assert stat.S_IMODE(plain.stat().st_mode) == 0o600
        return json.loads(plain.read_text())
    for path in fleet["vaults"].iterdir():
        if path.name.startswith(org + "-"):
            text = path.read_text()
            assert text.startswith("$ANSIBLE_VAULT;"), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            data = ansible.vault_view(str(path), fleet["password"])
            if data["app_name"] == app and data["consumer_name"] == consumer:
                return data
    return None


def _all_text(ansible, proc, fleet):
    texts = [proc.output]
    for folder in (ansible.report_dir, fleet["vaults"]):
        for path in folder.rglob("*"):  # reports, history.json, history.d/ORG.json, vault files
            if path.is_file():
                texts.append(path.read_text())
    return "\n".join(texts)


def test_fleet_rotation(fleet, ansible, e2e):
    sim = fleet["sim"]
    before = _state(sim)
    _faults(sim)

    # --- check mode: the plan, and not one write --------------------------------------------------
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", fleet["inventory"], "--check")
    assert proc.report is not None, e2e.tail(proc)
    assert proc.report["check_mode"] is True
    for org in sim.orgs:
        assert sim.write_count(org) == 0, (org, sim.counts(org))
    assert _state(sim) == before
    rows = e2e.rows_by(proc.report)
    assert rows[("org01", "Billing_Sync", "Billing")]["plan"] == "rotate"
    assert rows[("org01", "Billing_Sync", "Billing")]["outcome"] == "planned"
    assert rows[("org05", "Billing_Sync", "Billing")]["plan"] == "blocked"
    assert rows[("org06", "Billing_Sync", "Billing")]["plan"] == "rotate"
    assert rows[("org07", "Billing_Sync", "Billing")]["plan"] == "rotate"
    assert rows[("org08", "Billing_Sync", "Billing")]["plan"] == "resume"
    assert {rows[("org04", "Data_Loader", c)]["plan"] for c in ("Primary", "Secondary", "Tertiary")} == {"rotate"}
    assert rows[("org18", "No_Such_App", None)]["outcome"] == "failed"
    assert "Billing_Sync/Billing: rotate" in proc.stdout  # the plan is shown per org in check mode
    assert not list(fleet["deliveries"].iterdir()) and not list(fleet["vaults"].iterdir())
    assert not (ansible.report_dir / "history.json").exists()
    assert e2e.leaks(_all_text(ansible, proc, fleet), sim) == []
    # check mode consumed the 503s of org10 and the 401 of org09 only if it hit them: re-arm
    sim.clear_faults()
    _faults(sim)

    # --- the rotation -------------------------------------------------------------------------------
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", fleet["inventory"])
    assert proc.report is not None, e2e.tail(proc)
    assert proc.returncode == 2, e2e.tail(proc)  # failed orgs fail the run, after the report is written
    rows = e2e.rows_by(proc.report)
    after = _state(sim)
    expected_rows = {k for k in before if k[0] not in UNTOUCHED_FAILED and k[0] != "org19" and k[0] != "org03"}
    expected_rows |= {("org03", "Billing_Sync", "Billing"), ("org03", "Data_Sync", "Sync"),
                      ("org03", "Reporting", "Reports"), ("org19", "Data_Loader", "Secondary")}
    assert expected_rows <= set(rows), sorted(expected_rows - set(rows))
    assert ("org19", "Data_Loader", "Primary") not in rows

    for key in sorted(expected_rows):
        org, app, consumer = key
        row, old, now = rows[key], before[key], after[key]
        where = "%s %s/%s: %s\n%s" % (org, app, consumer, row, now)
        if org in ROTATED:
            assert row["outcome"] == "rotated", where
            assert now["main"]["key"] != old["main"]["key"], where
            assert row["old_key"] == "..." + old["main"]["key"][-4:], where
            assert row["new_key"] == "..." + now["main"]["key"][-4:], where
            got = _delivered(fleet, ansible, org, app, consumer)
            assert got is not None, where
            assert (got["key"], got["secret"]) == (now["main"]["key"], now["main"]["secret"]), where
            assert got["instance_url"] == sim.orgs[org].instance_url and got["consumer_id"] and got["app_id"]
            assert sim.authenticates(org, now["main"]["key"], now["main"]["secret"]), where
            if org == "org15":
                assert now["staged"] is None and row["state"] == "empty" and row["old_pair_refused"] is True, where
                assert not sim.authenticates(org, old["main"]["key"], old["main"]["secret"]), where
            else:
                assert now["staged"]["state"] == "Rotated" and now["staged"]["key"] == old["main"]["key"], where
                assert row["state"] == "Rotated" and row["expiry"], where
                assert sim.authenticates(org, old["main"]["key"], old["main"]["secret"]), where
            if org == "org08":
                assert row["plan"] == "resume"
                assert (now["main"]["key"], now["main"]["secret"]) == (old["staged"]["key"], old["staged"]["secret"])
            if org == "org06":
                assert not sim.authenticates(org, old["staged"]["key"], old["staged"]["secret"]), "replaced Rotated pair"
        elif org in ROLLED_BACK:
            assert row["outcome"] == "failed" and row["phase"] == ROLLED_BACK[org], where
            assert row["rolled_back"] is True, where
            assert now["main"] == old["main"] and now["staged"] is None, where
            # org12's consumer does not allow client credentials: ask which keys are valid
            assert sim.org(org).app(app).consumer(consumer).valid_keys == [old["main"]["key"]], where
            if org == "org11":
                assert _delivered(fleet, ansible, org, app, consumer) is None
        elif org in KEPT:
            assert row["outcome"] == "failed" and row["phase"] == KEPT[org], where
            assert not row["rolled_back"] and "next run resumes" in row["error"], where
            assert now["main"] == old["main"] and now["staged"]["state"] == "Active", where
            assert row["new_key"] == "..." + now["staged"]["key"][-4:], where
            assert sim.authenticates(org, old["main"]["key"], old["main"]["secret"]), where
            assert sim.authenticates(org, now["staged"]["key"], now["staged"]["secret"]), where
            got = _delivered(fleet, ansible, org, app, consumer)
            if org == "org11":
                assert got is None, where
            else:
                assert (got["key"], got["secret"]) == (now["staged"]["key"], now["staged"]["secret"]), where
        elif org == "org05":
            assert row["outcome"] == "blocked", where
            assert now == old, where
        elif org == "org22":
            assert row["outcome"] == "failed" and row["phase"] == "promote", where
            assert "next run resumes" in row["error"], where
            assert now["main"] == old["main"] and now["staged"]["state"] == "Active", where
            got = _delivered(fleet, ansible, org, app, consumer)
            assert got["key"] == now["staged"]["key"], where
            assert sim.authenticates(org, old["main"]["key"], old["main"]["secret"])
            assert sim.authenticates(org, got["key"], got["secret"])
    for org, (phase, text) in UNTOUCHED_FAILED.items():
        assert sim.write_count(org) == 0, (org, sim.counts(org))
        org_rows = [r for r in proc.report["rows"] if r["org"] == org]
        assert org_rows and all(r["outcome"] == "failed" and r["phase"] == phase for r in org_rows), org_rows
        assert any(text.lower() in (r["error"] or "").lower() for r in org_rows), org_rows
        assert all(after[k] == before[k] for k in before if k[0] == org)
    assert after[("org19", "Data_Loader", "Primary")] == before[("org19", "Data_Loader", "Primary")]
    assert sim.write_count("org05") == 0

    totals = proc.report["totals"]
    assert totals["orgs"] == 24
    assert totals["rotated"] == sum(1 for k in expected_rows if k[0] in ROTATED)
    assert totals["blocked"] == 1
    assert totals["failed"] == sum(1 for r in proc.report["rows"] if r["outcome"] == "failed")
    for ext in ("md", "html"):
        text = (ansible.report_dir / ("report." + ext)).read_text()
        assert "org22" in text and "promote" in text
    summary = proc.stdout[proc.stdout.index("sfdc.eca rotation:"):]
    assert "FAILED org11 Billing_Sync/Billing at deliver" in summary
    assert "BLOCKED org05" in summary
    history = json.loads((ansible.report_dir / "history.json").read_text())
    assert history["consumers"]["org01/Billing_Sync/Billing"]["last_outcome"] == "rotated"
    assert history["consumers"]["org01/Billing_Sync/Billing"]["rotations"] == 1
    own = json.loads((ansible.report_dir / "history.d" / "org01.json").read_text())  # written at promote
    assert own["consumers"]["org01/Billing_Sync/Billing"]["key"] == "..." + after[("org01", "Billing_Sync", "Billing")]["main"]["key"][-4:]
    assert not (ansible.report_dir / "history.d" / "org11.json").exists()  # nothing promoted there
    assert e2e.leaks(_all_text(ansible, proc, fleet), sim) == []
    first = _state(sim)
    delivered_22 = _delivered(fleet, ansible, "org22", "Billing_Sync", "Billing")

    # --- second run: nothing left to do where the first run finished ----------------------------------
    sim.clear_faults()
    sim.configure_org("org14", api_limit=1000, api_usage=1000)
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", fleet["inventory"])
    assert proc.report is not None, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    final = _state(sim)
    for key in sorted(expected_rows):
        org = key[0]
        row = rows[key]
        if org in ROTATED:
            assert row["outcome"] == "skipped", (key, row)
            assert final[key] == first[key], key
        elif org == "org05":
            assert row["outcome"] == "blocked"
    for org in ROTATED | {"org05"} | set(UNTOUCHED_FAILED):
        assert sim.write_count(org) == 0, (org, sim.counts(org))
    # the interrupted promote is resumed with the pair the first run delivered
    row = rows[("org22", "Billing_Sync", "Billing")]
    assert row["outcome"] == "rotated" and row["plan"] == "resume", row
    assert final[("org22", "Billing_Sync", "Billing")]["main"]["key"] == delivered_22["key"]
    assert final[("org22", "Billing_Sync", "Billing")]["main"]["secret"] == delivered_22["secret"]
    # persistent failures fail again and leave the org as it was (a kept pair is resumed, and kept again)
    for org in list(ROLLED_BACK) + list(KEPT):
        key = (org, "Billing_Sync", "Billing")
        assert rows[key]["outcome"] == "failed" and final[key] == first[key], (key, rows[key])
    assert e2e.leaks(_all_text(ansible, proc, fleet), sim) == []


def _one_org(sim_factory, tmp_path, e2e):
    sim = sim_factory({"orgs": [_org("org01", PLAIN)]})
    (tmp_path / "deliver.yml").write_text("- ansible.builtin.debug:\n    msg: delivered\n")
    hosts = {"org01": e2e.org_host(sim, "org01", [{"app_name": "Billing_Sync",
                                                   "deliver": {"tasks_file": str(tmp_path / "deliver.yml")}}],
                                   auth="access_token")}
    return sim, e2e.write_inventory(tmp_path / "inventory.yml", hosts)


def test_rotation_api_calls_rerun(sim_factory, tmp_path, ansible, e2e):
    """Issue 5 budget, token given: a rerun with nothing to do costs <= 3 calls."""
    sim, inventory = _one_org(sim_factory, tmp_path, e2e)
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 0 and proc.report["totals"]["rotated"] == 1, e2e.tail(proc)
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 0 and proc.report["totals"]["skipped"] == 1, e2e.tail(proc)
    assert len(sim.requests("org01")) <= 3, sim.counts("org01")
    assert sim.write_count("org01") == 0


def test_rotation_api_calls_one_consumer(sim_factory, tmp_path, ansible, e2e):
    """Issue 5 budget, token given: rotating one consumer costs <= 7 calls including the verification token.

    Each fact is read once: the apps, the consumers, the staged slot (the plan's read; staging does not read
    it again), then the writes and the verification token request."""
    sim, inventory = _one_org(sim_factory, tmp_path, e2e)
    sim.reset_log()
    proc = ansible.playbook("rotate.yml", inventory)
    assert proc.returncode == 0, e2e.tail(proc)
    assert proc.report["totals"]["rotated"] == 1
    assert sim.counts("org01") == {"GET usage": 1, "GET credentials": 1, "GET staged": 1, "POST staged": 1,
                                   "POST token": 1, "PATCH staged_item": 1}, sim.counts("org01")
