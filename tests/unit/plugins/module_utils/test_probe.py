"""The probe (module_utils._probe) against the simulator in every switch setting: it reports each one right, leaves the
org whole, and its profile holds no secret, id, name or URL of the org."""

import json

import pytest

from ansible_collections.sfdc.eca.plugins.module_utils import _probe
from ansible_collections.sfdc.eca.plugins.module_utils._common import build_client
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaInputError
from ansible_collections.sfdc.eca.plugins.module_utils._probe import run_probe

from eca_simulator import VARIANTS, Simulator

SEED = {"orgs": [{"name": "lab", "apps": [
    {"developer_name": "Probe_App", "label": "Probe App", "consumers": [{"name": "Probe"}]},
    {"developer_name": "Unused_App", "label": "Unused App", "used": False, "consumers": [{"name": "Nobody"}]},
    {"developer_name": "Busy_App", "consumers": [{"name": "Busy", "staged": {"state": "Active"}}]},
]}]}

DEFAULTS = {
    "post_over_rotated": "reject", "empty_staged": "empty_list", "post_body": "wrapper", "staged_url_spelling": "Url",
    "staged_id_on_rotate": "keep", "refresh_token_rotation": "unknown", "error_body": "array",
    "disabled_scope": "unknown", "secret_access_off": "unknown", "rotate_answer": "rotated", "usage_lists": "unknown",
    "paging": "null_next", "id_length": "18", "state_case": "title", "expired_staged": "unknown",
    "consumer_names": "own", "max_api_version": "67.0", "rate_limit": "unknown",
}
# what a probe that cannot write (secrets withheld) still finds out
READS = {"paging": "null_next", "id_length": "18", "max_api_version": "67.0", "staged_url_spelling": "Url",
         "consumer_names": "own", "empty_staged": "empty_list", "error_body": "array", "state_case": "title"}

CASES = [
    ("defaults", {}, {}),
    ("post_over_rotated", {"post_over_rotated": "replace"}, {}),
    ("empty_staged", {"empty_staged": "not_found"}, {}),
    ("post_body", {"post_body": "flat"}, {}),
    ("staged_url_spelling", {"staged_url_spelling": "URL"}, {}),
    ("staged_id_on_rotate", {"staged_id_on_rotate": "new"}, {}),
    ("error_body object", {"error_body": "object"}, {}),
    ("error_body html", {"error_body": "html"}, {}),
    ("rotate_answer promoted", {"rotate_answer": "promoted"}, {}),
    ("rotate_answer no_content", {"rotate_answer": "no_content"}, {}),
    ("paging empty_next", {"paging": "empty_next"}, {}),
    ("paging ignore_page", {"paging": "ignore_page"}, {}),
    ("id_length", {"id_length": "15"}, {}),
    ("state_case upper", {"state_case": "upper"}, {}),
    ("state_case lower", {"state_case": "lower"}, {}),
    ("consumer_names", {"consumer_names": "app"}, {}),
    ("max_api_version 66", {"max_api_version": "66.0"}, {}),
    ("max_api_version 68", {"max_api_version": "68.0"}, {}),
    ("rate_limit", {"rate_limit": "on"}, {}),
    ("expired_staged (never observable)", {"expired_staged": "disappears"}, {"expired_staged": "unknown"}),
]


@pytest.fixture
def lab(sim_factory):
    return sim_factory(SEED)


def client(sim, **params):
    o = sim.orgs["lab"]
    base = {"instance_url": o.instance_url, "ca_path": sim.ca_path, "client_id": o.admin["client_id"],
            "client_secret": o.admin["client_secret"], "retry_backoff": 0.001, "max_retries": 4}
    base.update(params)
    return build_client(base)


def probe(sim, writes=True, connection=None, **params):
    params.setdefault("app_name", "Probe_App")
    params["writes"] = writes
    return run_probe(client(sim, **(connection or {})), params)


def assert_secret_free(sim, result):
    text = json.dumps(result["profile"])
    assert [s for s in sim.secrets() if len(s) >= 8 and s in text] == []
    org = sim.orgs["lab"]
    for app in sim.org("lab").apps:
        for consumer in app.consumers:
            for value in (app.id, app.id[:15], consumer.id, consumer.id[:15], consumer.main["key"], consumer.name):
                assert value not in text, value
    assert org.instance_url not in text and "127.0.0.1" not in text


@pytest.mark.parametrize("name,switches,expected", CASES, ids=[c[0] for c in CASES])
def test_the_probe_reports_each_switch(lab, name, switches, expected):
    lab.set_variants(**switches)
    cons = lab.org("lab").app("Probe_App").consumer()
    old = cons.main
    result = probe(lab)
    want = dict(DEFAULTS)
    want.update(switches)
    want.update(expected)
    assert result["profile"]["variants"] == want
    assert result["changed"] is True
    # the lifecycle left the app whole: a new main pair that works, the old one revoked, the slot empty
    assert cons.main["key"] != old["key"] and cons.staged is None
    assert lab.authenticates("lab", cons.main["key"], cons.main["secret"])
    assert not lab.authenticates("lab", old["key"], old["secret"])
    assert_secret_free(lab, result)


def test_every_switch_of_the_simulator_is_in_the_profile():
    assert _probe.SWITCHES == tuple(VARIANTS)


def test_refresh_token_rotation_both_ways(lab):
    admin = lab.orgs["lab"].admin
    for rotation in ("off", "on"):
        lab.set_variants(refresh_token_rotation=rotation)
        result = probe(lab, connection={"client_secret": None, "refresh_token": lab.issue_refresh_token("lab"),
                                        "client_id": admin["client_id"]})
        assert result["profile"]["variants"]["refresh_token_rotation"] == rotation
        assert ("refresh_token" in result) is (rotation == "on")
        assert_secret_free(lab, result)


def test_an_app_missing_from_usage_is_probed_by_id(lab):
    lab.set_variants(usage_lists="used")
    app = lab.org("lab").app("Unused_App")
    result = probe(lab, app_name=None, app_id=app.id)
    assert result["profile"]["variants"]["usage_lists"] == "used"
    assert "appeared in the usage listing once it had been used" in " ".join(result["profile"]["notes"])
    with pytest.raises(EcaInputError, match="only apps with OAuth usage data"):
        probe(lab, app_name="Never_There")


@pytest.mark.parametrize("scope,form", [("credentials", "forbidden"), ("secrets", "forbidden"), ("secrets", "no_secret")])
def test_secrets_off_in_each_form(lab, scope, form):
    lab.configure_org("lab", rest_secret_access=False)
    lab.set_variants(disabled_scope=scope, secret_access_off=form)
    cons = lab.org("lab").app("Probe_App").consumer()
    old = cons.main
    result = probe(lab)
    variants = result["profile"]["variants"]
    assert variants["secret_access_off"] == form
    assert variants["disabled_scope"] == (scope if form == "forbidden" else "unknown")
    assert "consumer secrets" in " ".join(result["profile"]["notes"])
    # nothing changed in the org: a pair staged without its secret was deleted again
    assert cons.main == old and cons.staged is None
    for key, value in READS.items():
        if key in ("empty_staged", "error_body", "staged_url_spelling", "consumer_names") and scope == "credentials":
            continue   # the consumers could not be listed
        if key == "state_case" or (key == "empty_staged" and form == "forbidden"):
            continue   # no staged credential seen; the slot refused
        assert variants[key] == value, key
    assert_secret_free(lab, result)


def test_read_only_reads_and_fetches_no_secret(lab):
    result = probe(lab, writes=False)
    variants = result["profile"]["variants"]
    for key in ("post_over_rotated", "post_body", "staged_id_on_rotate", "rotate_answer"):
        assert variants[key] == "unknown"
    for key, value in READS.items():
        if key != "state_case":
            assert variants[key] == value, key
    assert result["changed"] is False and lab.write_count("lab") == 0
    assert not [e for e in lab.requests("lab") if "secret" in e["query"]]
    assert_secret_free(lab, result)


def test_check_mode_is_read_only(lab):
    result = run_probe(client(lab), {"app_name": "Probe_App", "writes": True}, check_mode=True)
    assert result["changed"] is False and lab.write_count("lab") == 0


def test_a_busy_slot_is_left_alone(lab):
    cons = lab.org("lab").app("Busy_App").consumer()
    before = (cons.main, cons.staged)
    result = probe(lab, app_name="Busy_App")
    assert (cons.main, cons.staged) == before and lab.write_count("lab") == 0
    assert "holds a Active credential" in " ".join(result["profile"]["notes"])
    assert result["profile"]["variants"]["state_case"] == "title"


def test_a_failure_after_staging_discards_the_staged_pair(lab):
    lab.add_fault("lab", "reset", method="PATCH", endpoint="staged_item", times=None)
    cons = lab.org("lab").app("Probe_App").consumer()
    old = cons.main
    with pytest.raises(Exception):
        probe(lab, connection={"max_retries": 0})
    assert cons.main == old and cons.staged is None


@pytest.mark.parametrize("switches", [{}, {"rotate_answer": "no_content", "empty_staged": "not_found", "id_length": "15",
                                           "paging": "ignore_page", "error_body": "html", "state_case": "lower"}])
def test_a_profile_makes_the_simulator_behave_like_the_probed_org(lab, switches):
    lab.set_variants(**switches)
    profile = probe(lab)["profile"]
    twin = Simulator(SEED, profile=profile)
    observed = {k: v for k, v in profile["variants"].items() if v != "unknown"}
    assert {k: twin.variants()[k] for k in observed} == observed
    assert all(twin.variants()[k] == v for k, v in switches.items())
