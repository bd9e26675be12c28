"""playbooks/rotate.yml rotates a small fleet under each behaviour the API documentation leaves open (issue 14).

One run per simulator switch value (docs/simulator.md), spread over the xdist workers: three orgs, vault_file
delivery. In every run the rotatable orgs rotate (the delivered pair is the new main pair and works; the old one is
Rotated, or revoked where asked), the org whose REST access to secrets is off fails with the setting named and is
left as it was, no secret is printed or written, and no secret reaches another org's host.
"""

import pytest

import api_fleet

SEED = {"orgs": [
    # refresh-token authentication (refresh_token_rotation), a two-consumer app never used (usage_lists) given by id
    api_fleet.org("va", {"Billing_Sync": ["Billing"], "Data_Loader": ["Primary", "Secondary"]}),
    # an Expired pair to replace (DELETE, POST), and the old pair revoked after promoting (PATCH, DELETE)
    api_fleet.org("vb", {"Billing_Sync": [{"name": "Billing", "staged": {"state": "Expired", "age_days": 40}}]}),
    # "Allow access to External Client App consumer secrets via REST API" off
    api_fleet.org("vc", rest_secret_access=False),
]}
SEED["orgs"][0]["apps"][1]["used"] = False

SWITCHES = [
    ("defaults", None),
    ("post_over_rotated", "replace"),
    ("empty_staged", "not_found"),
    ("post_body", "flat"),
    ("staged_url_spelling", "URL"),
    ("staged_id_on_rotate", "new"),
    ("refresh_token_rotation", "on"),
    ("error_body", "object"),
    ("error_body", "html"),
    ("disabled_scope", "secrets"),
    ("secret_access_off", "no_secret"),
    ("rotate_answer", "promoted"),
    ("rotate_answer", "no_content"),
    ("usage_lists", "used"),
    ("paging", "empty_next"),
    ("paging", "ignore_page"),
    ("id_length", "15"),
    ("state_case", "upper"),
    ("state_case", "lower"),
    ("expired_staged", "disappears"),
    ("consumer_names", "app"),
    ("max_api_version", "65.0"),
    ("rate_limit", "on"),
]


@pytest.mark.parametrize("switch,value", SWITCHES, ids=["%s=%s" % s if s[1] else s[0] for s in SWITCHES])
def test_fleet_rotation_under_each_switch(sim_factory, tmp_path, ansible, e2e, switch, value):
    sim = sim_factory(SEED)
    if value is not None:
        sim.set_variants(**{switch: value})
    fleet = api_fleet.Fleet(sim, tmp_path, ansible)
    va_admin = sim.orgs["va"].admin
    data_loader = sim.org("va").app("Data_Loader").id
    fleet.add(e2e, "va", [fleet.entry("Billing_Sync"), fleet.entry("Data_Loader", app_id=data_loader)],
              auth={"client_id": va_admin["client_id"], "refresh_token": sim.issue_refresh_token("va")})
    fleet.add(e2e, "vb", [fleet.entry("Billing_Sync", revoke_previous=True)])
    fleet.add(e2e, "vc", [fleet.entry("Billing_Sync")])
    before = api_fleet.state(sim)

    proc = fleet.run(e2e, extra_vars={"sfdc_eca_canary_size": 3})   # one batch: one fleet task
    assert proc.report is not None, e2e.tail(proc)
    after = api_fleet.state(sim)
    report = proc.report
    api_fleet.assert_whole(fleet, before, after)
    if switch == "consumer_names":
        # Both consumers of Data_Loader are named "Data Loader": their vault files ({consumer_name}) would be one
        # file, so they cannot be delivered apart. They must fail and be left whole; Billing_Sync rotates.
        shared = [k for k in before if k[:2] == ("va", "Data_Loader")]
        assert all(after[k] == before[k] for k in shared)
        assert all(r["outcome"] == "failed" for r in api_fleet.rows_of(report, "va") if r["app_name"] == "Data_Loader")
        billing = {k: v for k, v in before.items() if k[:2] == ("va", "Billing_Sync")}
        api_fleet.assert_rotated(fleet, {"rows": [r for r in report["rows"] if r["app_name"] == "Billing_Sync"]},
                                 billing, after, "va")
    else:
        api_fleet.assert_rotated(fleet, report, before, after, "va")
    api_fleet.assert_rotated(fleet, report, before, after, "vb", revoked=True)
    # an HTML page says nothing of the setting: the org fails on the 403 all the same
    api_fleet.assert_untouched(report, before, after, "vc",
                               text="HTML page (403" if value == "html" else "consumer secrets via REST API")
    assert proc.returncode == 2, e2e.tail(proc)   # vc failed, after the report was written
    assert sim.misdirected() == []
    assert e2e.leaks(fleet.texts(proc), sim) == []
    if switch == "rate_limit":
        assert 429 in [e["status"] for e in sim.requests("va")]
