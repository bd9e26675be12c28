"""Every [unknown] behaviour of the API doc is a switch, settable globally and per org."""

import pytest

from eca_simulator import VARIANTS, Simulator
from eca_simulator import testing as st


def _staged(rest, app="Billing_Sync"):
    return rest.consumer_path(app) + "/staged"


def _rotate_once(rest):
    s1 = rest.post(_staged(rest)).json()["stagedCredentials"][0]
    return s1, rest.patch(s1["url"], json={"command": "rotate"}).json()


def test_defaults(sim):
    assert sim.variants() == {"post_over_rotated": "reject", "empty_staged": "empty_list", "post_body": "wrapper",
                              "staged_url_spelling": "Url", "staged_id_on_rotate": "keep",
                              "refresh_token_rotation": "off", "error_body": "array",
                              "disabled_scope": "credentials", "secret_access_off": "forbidden",
                              "rotate_answer": "rotated", "usage_lists": "all", "paging": "null_next",
                              "id_length": "18", "state_case": "title", "expired_staged": "stays",
                              "consumer_names": "own", "max_api_version": "67.0", "rate_limit": "off"}
    assert set(VARIANTS) == set(sim.variants())


def test_post_over_rotated(sim):
    sim.set_variants("org02", post_over_rotated="replace")
    # org01: reject (global default)
    rest = st.RestClient(sim, "org01")
    m0 = sim.org("org01").app("Billing_Sync").consumer().main
    _rotate_once(rest)
    r = rest.post(_staged(rest))
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_OPERATION"
    assert "Rotated" in r.json()[0]["message"]
    assert sim.authenticates("org01", m0["key"], m0["secret"])
    # org02: replace drops the Rotated one (its old main stops working) and stages a new Active one.
    rest2 = st.RestClient(sim, "org02")
    cons2 = sim.org("org02").app("Billing_Sync").consumer()
    m0 = cons2.main
    _rotate_once(rest2)
    r = rest2.post(_staged(rest2))
    assert r.status_code == 201 and r.json()["stagedCredentials"][0]["state"] == "Active"
    assert not sim.authenticates("org02", m0["key"], m0["secret"])
    assert cons2.staged["state"] == "Active"
    # Active/Expired still block under "replace".
    r = rest2.post(_staged(rest2))
    assert r.status_code == 400


def test_empty_staged(sim):
    sim.set_variants(empty_staged="not_found")
    sim.set_variants("org02", empty_staged="empty_list")
    rest = st.RestClient(sim, "org01")
    r = rest.get(_staged(rest))
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    rest.post(_staged(rest))
    assert rest.get(_staged(rest)).status_code == 200
    rest2 = st.RestClient(sim, "org02")
    assert rest2.get(_staged(rest2)).json()["stagedCredentials"] == []


def test_post_body_flat(sim):
    sim.set_variants("org01", post_body="flat")
    rest = st.RestClient(sim, "org01")
    r = rest.post(_staged(rest))
    assert r.status_code == 201
    body = r.json()
    assert "stagedCredentials" not in body
    assert set(body) == {"id", "consumerKey", "consumerSecret", "state", "createdBy", "createdDate",
                         "expirationDate", "url", "stagedCredentialsUrl"}
    cons = sim.org("org01").app("Billing_Sync").consumer()
    assert (body["consumerKey"], body["consumerSecret"]) == (cons.staged["key"], cons.staged["secret"])
    # GET keeps the documented wrapper; org02 POST keeps the wrapper.
    assert rest.get(_staged(rest)).json()["stagedCredentials"][0]["key"] == body["consumerKey"]
    rest2 = st.RestClient(sim, "org02")
    assert "stagedCredentials" in rest2.post(_staged(rest2)).json()


def test_staged_url_spelling(sim):
    sim.set_variants(staged_url_spelling="URL")
    rest = st.RestClient(sim, "org01")
    app_id = sim.org("org01").app("Billing_Sync").id
    item = rest.get("/apps/oauth/credentials/" + app_id).json()["consumers"][0]
    assert "stagedCredentialsURL" in item and "stagedCredentialsUrl" not in item
    staged = rest.post(item["stagedCredentialsURL"]).json()["stagedCredentials"][0]
    assert "stagedCredentialsURL" in staged
    sim.set_variants(staged_url_spelling="Url")
    assert "stagedCredentialsUrl" in rest.get("/apps/oauth/credentials/" + app_id).json()["consumers"][0]


def test_staged_id_on_rotate(sim):
    sim.set_variants("org02", staged_id_on_rotate="new")
    s1, rotated = _rotate_once(st.RestClient(sim, "org01"))
    assert rotated["id"] == s1["id"]
    rest2 = st.RestClient(sim, "org02")
    s1, rotated = _rotate_once(rest2)
    assert rotated["id"] != s1["id"] and rotated["url"].endswith(rotated["id"])
    assert rest2.get(s1["url"]).status_code == 404
    assert rest2.get(rotated["url"]).json()["state"] == "Rotated"


def test_org_override_can_be_cleared_and_validation(sim):
    sim.set_variants("org01", post_body="flat")
    assert sim.variants("org01")["post_body"] == "flat"
    sim.set_variants("org01", post_body=None)
    assert sim.variants("org01")["post_body"] == "wrapper"
    with pytest.raises(ValueError, match="post_body='weird'.*wrapper, flat"):
        sim.set_variants(post_body="weird")
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        sim.set_variants("org01", nope="x")
    with pytest.raises(KeyError, match="no org 'nowhere'"):
        sim.set_variants("nowhere", post_body="flat")
    assert sim.set_variants(refresh_token_rotation=True)["refresh_token_rotation"] == "on"


def test_variants_from_constructor_and_seed():
    seed = {"variants": {"empty_staged": "not_found"},
            "orgs": [{"name": "a"}, {"name": "b", "variants": {"empty_staged": "empty_list", "post_body": "flat"}}]}
    sim = Simulator(seed, variants={"staged_id_on_rotate": "new"})
    assert sim.variants("a")["empty_staged"] == "not_found"
    assert sim.variants("b")["empty_staged"] == "empty_list" and sim.variants("b")["post_body"] == "flat"
    assert sim.variants()["staged_id_on_rotate"] == "new"


def test_error_body_shape(sim):
    sim.set_variants("org01", error_body="object")
    rest = st.RestClient(sim, "org01")
    r = rest.get("/apps/oauth/credentials/0xI000000000000")
    assert r.status_code == 404
    assert r.json() == {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    sim.add_fault("org01", "limit_exceeded")
    assert rest.get("/apps/oauth/usage").json()["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert rest.get("/apps/oauth/usage").status_code == 200
    rest2 = st.RestClient(sim, "org02")
    assert rest2.get("/apps/oauth/credentials/0xI000000000000").json()[0]["errorCode"] == "NOT_FOUND"


def test_disabled_scope(sim):
    """With the org setting off: every credential endpoint refuses, or only those that return secrets."""
    for org in ("org01", "org02"):
        sim.configure_org(org, rest_secret_access=False)
    sim.set_variants("org02", disabled_scope="secrets")
    for org, key_calls in (("org01", 403), ("org02", 200)):
        rest = st.RestClient(sim, org)
        app_id = sim.org(org).app("Billing_Sync").id
        assert rest.get("/apps/oauth/usage").status_code == 200
        assert rest.get("/apps/oauth/credentials/" + app_id).status_code == key_calls
        assert rest.get(rest.consumer_path("Billing_Sync")).status_code == key_calls
        for path in ("?part=secret", "?part=keyandsecret", "/staged"):
            r = rest.get(rest.consumer_path("Billing_Sync") + path)
            assert r.status_code == 403 and "not enabled" in r.json()[0]["message"], (org, path)
        assert rest.post(rest.consumer_path("Billing_Sync") + "/staged").status_code == 403
