"""The live suite's own instruments, against the simulator (and the real store servers) without ansible
(seconds): the fault predicate, that an integration counts a refused pair as a failure only while its target
(a vault file, an OpenBao secret, a Secrets Manager secret) still holds that pair, and the store checks."""

import random

import pytest
import requests
import yaml

from eca_simulator import testing as st
from live_harness import (INTEGRATION_AGENT, ORG_KINDS, Integrations, LiveFleet, LiveStores, SecretFinder, Settings,
                          VerifyBursts, live_seed, org_kind, write_vault_file)
from safety_helpers import find_secrets, mask


@pytest.fixture
def fleet(sim_factory, tmp_path):
    sim = sim_factory(live_seed(2))
    return LiveFleet(sim, tmp_path / "live", Settings(orgs=2, seed=1), families=(), rng=random.Random(1))


@pytest.fixture
def store_fleet(sim_factory, tmp_path, openbao, moto, unique):
    """live001: OpenBao (4 consumers), live002: moto, live003: vault files."""
    sim = sim_factory(live_seed(3))
    stores = LiveStores(openbao, moto, prefix="live-" + unique)
    return LiveFleet(sim, tmp_path / "live", Settings(orgs=3, seed=1), families=(), rng=random.Random(1), stores=stores)


def hold(fleet, t, key, secret):
    """Make the target hold this pair (what a delivery does)."""
    if t.kind == "vault_file":
        write_vault_file(t.path, t.credential(key, secret))
    else:
        fleet.stores.put(t, t.credential(key, secret))


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


@pytest.mark.parametrize("kind", ORG_KINDS)
def test_integration_failure_needs_a_refusal_of_the_pair_the_target_still_holds(store_fleet, kind):
    fleet = store_fleet
    sim = fleet.sim
    # a store integration that reads its store before every authentication (the suite's default keeps a read
    # for a few seconds: test_store_integrations_read_again_when_refused)
    its = Integrations(fleet, rate=10, threads=1, clock=lambda: {"run": 0, "at": 0}, store_max_age=1e-9)
    http = its._session()
    first = next(it for it in its.items if it.target.kind == kind)
    t = first.target
    for it in its.items:
        its.authenticate(it, http)
    assert its.totals()["auth_ok"] == len(its.items) and its.failures() == []

    # 503s are transient: retried
    sim.add_fault(t.org, "unavailable", endpoint="token", times=2)
    its.authenticate(first, http)
    assert (first.transient, first.ok, first.failures) == (2, 2, [])

    # a delivered pair deleted behind the integration's back: a failure, every time it is tried
    staged = fleet.consumer(t).set_staged("Active")
    hold(fleet, t, staged["key"], staged["secret"])
    its.authenticate(first, http)
    assert first.ok == 3
    rest = st.RestClient(sim, t.org)
    assert rest.delete(rest.consumer_path(t.app, t.consumer) + "/staged/" + staged["id"]).status_code == 204
    its.authenticate(first, http)
    its.authenticate(first, http)
    assert [f["error"] for f in first.failures] == ["invalid_client", "invalid_client"]
    assert first.failures[0]["key"] == "..." + staged["key"][-4:] and first.failures[0]["slot"] is None
    assert staged["secret"] not in repr(first.failures)

    # the target rewritten while the refused request was on its way: a stale read, not a failure; the
    # integration switches to what the target holds now
    main = fleet.consumer(t).main

    def rewrite(req):
        hold(fleet, t, main["key"], main["secret"])
        return False
    sim.add_fault(t.org, "latency", method="POST", endpoint="token", times=1, seconds=0, match=rewrite)
    its.authenticate(first, http)
    assert (first.stale, len(first.failures), first.ok) == (1, 2, 4)
    sim.clear_faults()
    its.authenticate(first, http)
    assert first.ok == 5
    totals = its.totals()
    assert totals["integrations_failing"] == 1
    assert totals["by_kind"][kind]["auth_failures"] == 2 and totals["by_kind"][kind]["stale_reads"] == 1
    if kind != "vault_file":
        # every authentication read the store; each refusal read it again
        assert fleet.stores.reads[kind] >= first.attempts + 3 and fleet.stores.read_errors[kind] == 0


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


def test_store_integrations_read_again_when_refused(store_fleet):
    fleet = store_fleet
    its = Integrations(fleet, rate=10, threads=1, clock=lambda: {"run": 0, "at": 0}, store_max_age=3600)
    http = its._session()
    for kind in ("hashi_vault", "aws_secretsmanager"):
        it = next(i for i in its.items if i.target.kind == kind)
        t = it.target
        before = fleet.stores.reads[kind]
        its.authenticate(it, http)
        its.authenticate(it, http)
        assert it.ok == 2 and fleet.stores.reads[kind] == before + 1   # the second used what the first read
        # the tool rotates: the store holds the new pair, the old one is revoked; the integration's cached pair
        # is refused, it reads the store again (a stale read, not a failure) and authenticates with the new pair
        c = fleet.consumer(t)
        staged = c.set_staged("Active")
        hold(fleet, t, staged["key"], staged["secret"])
        rest = st.RestClient(fleet.sim, t.org)
        assert rest.patch(rest.consumer_path(t.app, t.consumer) + "/staged/" + staged["id"],
                          json={"command": "rotate"}).status_code == 200
        assert rest.delete(rest.consumer_path(t.app, t.consumer) + "/staged/" + c.staged["id"]).status_code == 204
        its.authenticate(it, http)
        assert (it.ok, it.stale, it.failures) == (3, 1, []) and fleet.stores.reads[kind] == before + 2


def test_store_fleet_targets_stores_and_checks(store_fleet, openbao, moto):
    fleet = store_fleet
    stores = fleet.stores
    assert [org_kind(o) for o in fleet.orgs] == ["hashi_vault", "aws_secretsmanager", "vault_file"]
    assert {k: v["consumers"] for k, v in fleet.by_kind().items()} == {
        "vault_file": 1, "hashi_vault": 4, "aws_secretsmanager": 1}
    with open(fleet.inventory, encoding="utf-8") as f:
        hosts = yaml.safe_load(f)["all"]["hosts"]
    vault = hosts["live001"]["sfdc_eca_rotations"][0]["deliver"]["hashi_vault"]
    assert vault["token"] == stores.tool_token and vault["url"] == openbao.url
    aws = hosts["live002"]["sfdc_eca_rotations"][0]["deliver"]["aws_secretsmanager"]
    assert aws["endpoint_url"] == moto.url and not {"access_key", "secret_key"} & set(aws)
    assert fleet.env()["AWS_SECRET_ACCESS_KEY"] == moto.secret_key
    assert {stores.tool_token, stores.reader_token, moto.secret_key} <= stores.secrets()
    finder = SecretFinder(fleet.sim.secrets() | stores.secrets())
    blob = "token=%s\nAWS_SECRET_ACCESS_KEY=%s" % (stores.tool_token, moto.secret_key)
    assert finder.find(blob) == sorted([mask(stores.tool_token), mask(moto.secret_key)])

    # the first pair of each store target was written before the run: nothing has converged yet
    missing = fleet.not_converged()
    assert sorted(missing) == sorted(t.name for t in fleet.targets)
    assert set(missing.values()) == {"main key unchanged"}
    for t in fleet.targets:
        main = fleet.consumer(t).main
        assert fleet.read_data(t)[0] == t.credential(main["key"], main["secret"])

    # the tool's token writes only under the run's prefix, the integrations' token only reads
    t = next(x for x in fleet.targets if x.kind == "hashi_vault")
    for token, path in ((stores.tool_token, "elsewhere/x"), (stores.reader_token, t.store_id)):
        r = requests.post("%s/v1/secret/data/%s" % (openbao.url, path), headers={"X-Vault-Token": token},
                          json={"data": {"key": "x"}}, timeout=10)
        assert r.status_code == 403, (path, r.status_code)
    assert requests.post("%s/v1/secret/data/%s" % (openbao.url, t.store_id), headers={"X-Vault-Token": stores.tool_token},
                         json={"data": fleet.read_data(t)[0]}, timeout=10).status_code == 200

    # a store target holding the main pair with another consumer's data has not converged
    t = fleet.targets[0]
    c = fleet.consumer(t)
    stores.put(t, dict(t.credential(c.main["key"], c.main["secret"]), org="live009"))
    assert fleet.not_converged()[t.name] == "main key unchanged; target's org differ from the consumer's"

    # a secret in a store that is no consumer's target is reported
    assert fleet.stray_secrets() == []
    openbao.kv_put(stores.prefix + "/live001/Billing_Sync/Billing.tmp", {"key": "x"})
    moto.client().create_secret(Name="elsewhere/live002", SecretString="{}")
    assert fleet.stray_secrets() == [
        "hashi_vault: %s/live001/Billing_Sync/Billing.tmp [fleet/hashi_vault]" % stores.prefix,
        "aws_secretsmanager: elsewhere/live002 [fleet/aws_secretsmanager]"]
