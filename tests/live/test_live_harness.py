"""The live suite's own instruments, against the simulator without ansible (seconds): the fault predicate, and
that an integration counts a refused pair as a failure only while its target still holds that pair."""

import random

import pytest
import requests

from eca_simulator import testing as st
from live_harness import (INTEGRATION_AGENT, Integrations, LiveFleet, SecretFinder, Settings, VerifyBursts, live_seed,
                          write_vault_file)
from safety_helpers import find_secrets, mask


@pytest.fixture
def fleet(sim_factory, tmp_path):
    sim = sim_factory(live_seed(2))
    return LiveFleet(sim, tmp_path / "live", Settings(orgs=2, seed=1), families=(), rng=random.Random(1))


def _token(sim, org, key, secret, agent="test"):
    http = st.session(sim)
    return http.post(sim.orgs[org].instance_url + "/services/oauth2/token", headers={"User-Agent": agent},
                     data={"grant_type": "client_credentials", "client_id": key, "client_secret": secret}, timeout=10)


def test_fault_match_predicate(sim_factory):
    sim = sim_factory(live_seed(2))
    asked = []

    def only_live002(req):
        asked.append(req.listener.tag)
        return req.listener.tag == "live002"

    sim.add_fault("*", "unavailable", method="POST", endpoint="token", times=1, match=only_live002)
    assert sim.faults()[0]["match"] == "only_live002"
    # the control API lists it (by name) as JSON
    assert requests.get(sim.control_url + "/_sim/faults", timeout=10).json()["faults"][0]["match"] == "only_live002"
    a1, a2 = sim.orgs["live001"].admin, sim.orgs["live002"].admin
    assert _token(sim, "live001", a1["client_id"], a1["client_secret"]).status_code == 200
    assert sim.faults()[0]["hits"] == 0   # asked, did not match: not used up
    assert _token(sim, "live002", a2["client_id"], a2["client_secret"]).status_code == 503
    assert _token(sim, "live002", a2["client_id"], a2["client_secret"]).status_code == 200
    assert asked == ["live001", "live002"] and sim.faults() == []
    with pytest.raises(ValueError, match="callable"):
        sim.add_fault("*", "unavailable", match="live002")


def test_verify_bursts_hit_the_tool_presenting_a_staged_key(fleet):
    sim = fleet.sim
    bursts = VerifyBursts(sim, ["live001"], 3)
    bursts.LENGTHS = ((2, 1.0),)
    sim.add_fault("*", "unavailable", method="POST", endpoint="token", times=None, match=bursts)
    bursts.start(1, True)
    staged = fleet.consumer(fleet.targets[0]).set_staged("Active")
    main = fleet.consumer(fleet.targets[0]).main
    assert _token(sim, "live001", main["key"], main["secret"]).status_code == 200   # not staged: no burst
    # an integration's request does not start a burst
    assert _token(sim, "live001", staged["key"], staged["secret"], INTEGRATION_AGENT).status_code == 200
    assert _token(sim, "live001", staged["key"], staged["secret"]).status_code == 503
    # during the burst, integrations presenting that key get 503 too, without using the burst up
    assert _token(sim, "live001", staged["key"], staged["secret"], INTEGRATION_AGENT).status_code == 503
    assert _token(sim, "live001", staged["key"], staged["secret"]).status_code == 503
    assert _token(sim, "live001", staged["key"], staged["secret"]).status_code == 200
    bursts.start(2, True)   # a new run: a new burst for the same key
    assert _token(sim, "live001", staged["key"], staged["secret"]).status_code == 503
    bursts.start(3, False)
    assert _token(sim, "live001", staged["key"], staged["secret"]).status_code == 200
    assert bursts.hits == {"tool": 3, "integration": 1}


def test_integration_failure_needs_a_refusal_of_the_pair_the_target_still_holds(fleet):
    sim = fleet.sim
    its = Integrations(fleet, rate=10, threads=1, clock=lambda: {"run": 0, "at": 0})
    http = its._session()
    first, t = its.items[0], fleet.targets[0]
    for it in its.items:
        its.authenticate(it, http)
    assert its.totals()["auth_ok"] == len(its.items) and its.failures() == []

    # 503s are transient: retried
    sim.add_fault(t.org, "unavailable", endpoint="token", times=2)
    its.authenticate(first, http)
    assert (first.transient, first.ok, first.failures) == (2, 2, [])

    # a delivered pair deleted behind the integration's back: a failure, every time it is tried
    staged = fleet.consumer(t).set_staged("Active")
    write_vault_file(t.path, t.credential(staged["key"], staged["secret"]))
    its.authenticate(first, http)
    assert first.ok == 3
    rest = st.RestClient(sim, t.org)
    assert rest.delete(rest.consumer_path(t.app, t.consumer) + "/staged/" + staged["id"]).status_code == 204
    its.authenticate(first, http)
    its.authenticate(first, http)
    assert [f["error"] for f in first.failures] == ["invalid_client", "invalid_client"]
    assert first.failures[0]["key"] == "..." + staged["key"][-4:] and first.failures[0]["slot"] is None
    assert staged["secret"] not in repr(first.failures)

    # the target rewritten while the refused request was on its way: a stale read, not a failure
    main = fleet.consumer(t).main

    def rewrite(req):
        write_vault_file(t.path, t.credential(main["key"], main["secret"]))
        return False
    sim.add_fault(t.org, "latency", method="POST", endpoint="token", times=1, seconds=0, match=rewrite)
    its.authenticate(first, http)
    assert (first.stale, len(first.failures)) == (1, 2)
    sim.clear_faults()
    its.authenticate(first, http)
    assert first.ok == 4
    assert its.totals()["integrations_failing"] == 1


def test_not_converged_names_every_consumer_before_a_rotation(fleet):
    missing = fleet.not_converged()
    assert sorted(missing) == sorted(t.name for t in fleet.targets)
    assert set(missing.values()) == {"main key unchanged"}


def test_secret_finder_agrees_with_the_safety_scan():
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!._"
    secrets = {"".join(rng.choice(alphabet) for dummy in range(n)) for n in (8, 40, 64, 64, 112)}
    secrets.add("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----")
    a, b, c = sorted(s for s in secrets if "\n" not in s)[:3]
    blobs = ["nothing here " * 50, "x%sx" % a, '{"k": "%s"}' % b, "line\\n" + c + "\\n", a[:-1] + " " + a[-1],
             "key: -----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----"]
    finder = SecretFinder(secrets | {"short"})
    for blob in blobs:
        assert finder.find(blob) == find_secrets(blob, secrets), blob
    assert finder.find(blobs[1].encode()) == [mask(a)]
    assert finder.find(blobs[4]) == []
