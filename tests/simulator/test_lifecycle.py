"""The staged-slot state machine and its expiries, driven through the REST API and the sim clock."""

import pytest

from eca_simulator import testing as st


@pytest.fixture
def rest(sim):
    return st.RestClient(sim, "org01")


def _stage(rest, app="Billing_Sync", consumer=None):
    r = rest.post(rest.consumer_path(app, consumer) + "/staged", json={})
    assert r.status_code == 201, r.text
    return r.json()["stagedCredentials"][0]


def _slot(rest, app="Billing_Sync", consumer=None):
    r = rest.get(rest.consumer_path(app, consumer) + "/staged")
    assert r.status_code == 200
    items = r.json()["stagedCredentials"]
    assert len(items) <= 1
    return items[0] if items else None


def test_active_expires_after_30_days_and_stays_until_deleted(sim, rest):
    cons = sim.org("org01").app("Billing_Sync").consumer("Billing")
    s1 = _stage(rest)
    sim.clock.advance(days=29, hours=23)
    assert sim.authenticates("org01", s1["key"], s1["secret"])
    assert cons.staged["state"] == "Active"
    sim.clock.advance(hours=1, seconds=1)
    assert cons.staged["state"] == "Expired"
    assert not sim.authenticates("org01", s1["key"], s1["secret"])
    assert sim.authenticates("org01", cons.main["key"], cons.main["secret"])
    rest = st.RestClient(sim, "org01")  # the old token expired on the way
    item = _slot(rest)
    assert item["state"] == "Expired" and item["id"] == s1["id"] and item["expirationDate"] == s1["expirationDate"]
    sim.clock.advance(days=300)
    rest = st.RestClient(sim, "org01")
    assert _slot(rest)["state"] == "Expired"
    # An Expired credential can be neither rotated nor stacked on; deleting it frees the slot.
    r = rest.patch(item["url"], json={"command": "rotate"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_OPERATION"
    r = rest.post(rest.consumer_path("Billing_Sync") + "/staged")
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_OPERATION"
    assert "Expired" in r.json()[0]["message"]
    assert rest.delete(item["url"]).status_code == 204
    assert _slot(rest) is None
    assert _stage(rest)["state"] == "Active"


def test_post_over_active_is_rejected_and_changes_nothing(sim, rest):
    cons = sim.org("org01").app("Billing_Sync").consumer()
    s1 = _stage(rest)
    r = rest.post(rest.consumer_path("Billing_Sync") + "/staged")
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "INVALID_OPERATION" and "Active" in r.json()[0]["message"]
    assert cons.staged["key"] == s1["key"]


def test_rotate_then_grace_period_ends(sim, rest):
    cons = sim.org("org01").app("Billing_Sync").consumer()
    m0 = cons.main
    s1 = _stage(rest)
    r = rest.patch(s1["url"], json={"command": "rotate"})
    assert r.status_code == 200 and r.json()["state"] == "Rotated"
    assert cons.main == {"key": s1["key"], "secret": s1["secret"]}
    assert cons.staged["state"] == "Rotated" and cons.staged["key"] == m0["key"]
    # The consumer's main key changed: credentials listing and ?part show the new pair.
    assert rest.get(rest.consumer_path("Billing_Sync") + "?part=keyandsecret").json()["secret"] == s1["secret"]
    # Rotating again is refused.
    r = rest.patch(s1["url"], json={"command": "rotate"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_OPERATION"
    sim.clock.advance(days=29)
    assert sim.authenticates("org01", m0["key"], m0["secret"])
    assert cons.staged["state"] == "Rotated"
    sim.clock.advance(days=1, seconds=1)
    assert not sim.authenticates("org01", m0["key"], m0["secret"])
    assert sim.authenticates("org01", s1["key"], s1["secret"])
    assert cons.staged is None
    rest = st.RestClient(sim, "org01")
    assert _slot(rest) is None
    assert rest.get(s1["url"]).status_code == 404


def test_delete_active_discards_staged(sim, rest):
    cons = sim.org("org01").app("Billing_Sync").consumer()
    m0 = cons.main
    s1 = _stage(rest)
    assert rest.get(s1["url"]).json() == s1
    assert rest.delete(s1["url"]).status_code == 204
    assert cons.main == m0 and cons.staged is None
    assert not sim.authenticates("org01", s1["key"], s1["secret"])
    assert sim.authenticates("org01", m0["key"], m0["secret"])
    assert rest.delete(s1["url"]).status_code == 404


def test_delete_rotated_revokes_old_main_at_once(sim, rest):
    cons = sim.org("org01").app("Billing_Sync").consumer()
    m0 = cons.main
    s1 = _stage(rest)
    rotated = rest.patch(s1["url"], json={"command": "rotate"}).json()
    assert sim.authenticates("org01", m0["key"], m0["secret"])
    assert rest.delete(rotated["url"]).status_code == 204
    assert not sim.authenticates("org01", m0["key"], m0["secret"])
    assert cons.staged is None and cons.main["key"] == s1["key"]


def test_consumers_have_independent_slots(sim, rest):
    app = sim.org("org01").app("Data_Loader")
    _stage(rest, "Data_Loader", "Secondary")
    assert app.consumer("Primary").staged is None
    assert app.consumer("Secondary").staged["state"] == "Active"


def test_patch_body_validation(sim, rest):
    s1 = _stage(rest)
    r = rest.patch(s1["url"], data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    r = rest.patch(s1["url"], json={"command": "promote"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_PARAMETER_VALUE"
    assert rest.patch(s1["url"]).status_code == 400
    assert sim.org("org01").app("Billing_Sync").consumer().staged["state"] == "Active"
    r = rest.patch(s1["url"][:-18] + s1["id"][:15], json={"command": "rotate"})  # 15-char staged id
    assert r.status_code == 200


DEMO_LIKE = {"orgs": [{"name": "o", "apps": [
    {"developer_name": "Rot", "consumers": [{"name": "R", "staged": {"state": "Rotated", "age_days": 10}}]},
    {"developer_name": "Exp", "consumers": [{"name": "E", "staged": {"state": "Expired", "age_days": 40}}]},
    {"developer_name": "Act", "consumers": [{"name": "A", "staged": {"state": "Active", "age_hours": 1}}]},
]}]}


@pytest.mark.sim(seed=DEMO_LIKE)
def test_seeded_slots_age_on_the_clock(sim):
    o = sim.org("o")
    rot, exp, act = (o.app(n).consumer() for n in ("Rot", "Exp", "Act"))
    assert (rot.staged["state"], exp.staged["state"], act.staged["state"]) == ("Rotated", "Expired", "Active")
    assert sim.authenticates("o", rot.staged["key"], rot.staged["secret"])
    assert not sim.authenticates("o", exp.staged["key"], exp.staged["secret"])
    assert sim.authenticates("o", act.staged["key"], act.staged["secret"])
    rot_pair = rot.staged
    sim.clock.advance(days=20, seconds=1)
    assert rot.staged is None and not sim.authenticates("o", rot_pair["key"], rot_pair["secret"])
    assert act.staged["state"] == "Active"
    sim.clock.advance(days=10)
    assert act.staged["state"] == "Expired" and exp.staged["state"] == "Expired"


def test_set_staged_helper(sim):
    cons = sim.org("org02").app("Billing_Sync").consumer()
    assert cons.set_staged("Expired")["state"] == "Expired"
    assert cons.set_staged("Rotated", age_days=29)["state"] == "Rotated"
    with pytest.raises(ValueError, match="younger than 30 days"):
        cons.set_staged("Active", age_days=31)
