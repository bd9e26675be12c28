"""The control HTTP API and `python -m eca_simulator serve` as a background process."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from eca_simulator import testing as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def ctl(sim):
    s = requests.Session()
    s.trust_env = False

    def call(method, path, **kw):
        r = s.request(method, sim.control_url + path, timeout=10, **kw)
        return r.status_code, r.json()
    yield call
    s.close()


def test_control_state_orgs_and_secrets(sim, ctl):
    code, state = ctl("GET", "/_sim/state")
    assert code == 200
    assert state["ca_path"] == sim.ca_path and state["control_url"] == sim.control_url
    assert state["orgs"]["org01"]["instance_url"] == sim.orgs["org01"].instance_url
    assert state["orgs"]["org01"]["admin"] == sim.orgs["org01"].admin
    code, org = ctl("GET", "/_sim/orgs/org01")
    assert code == 200
    assert {k: v for k, v in org.items() if k != "now"} == {k: v for k, v in sim.org_state("org01").items() if k != "now"}
    billing = [a for a in org["apps"] if a["developer_name"] == "Billing_Sync"][0]["consumers"][0]
    assert billing["main"] == sim.org("org01").app("Billing_Sync").consumer().main and billing["staged"] is None
    assert ctl("GET", "/_sim/orgs")[1]["orgs"] == {n: o.instance_url for n, o in sim.orgs.items()}
    assert ctl("GET", "/_sim/orgs/nope")[0] == 404
    code, body = ctl("GET", "/_sim/secrets")
    assert billing["main"]["secret"] in body["secrets"]
    assert set(body["secrets"]) == sim.secrets()


def test_control_clock_variants_faults_requests(sim, ctl):
    rest = st.RestClient(sim, "org01")
    staged = rest.consumer_path("Billing_Sync") + "/staged"
    assert rest.post(staged).status_code == 201
    code, clock = ctl("POST", "/_sim/clock", json={"days": 31})
    assert code == 200 and clock["offset_seconds"] >= 31 * 86400 - 1
    assert sim.org("org01").app("Billing_Sync").consumer().staged["state"] == "Expired"
    assert ctl("POST", "/_sim/clock", json={"advance": {"hours": 1}})[0] == 200
    code, clock = ctl("POST", "/_sim/clock", json={"freeze": True})
    assert clock["frozen"] is True
    time.sleep(0.05)
    assert ctl("GET", "/_sim/clock")[1]["time"] == clock["time"]
    assert ctl("POST", "/_sim/clock", json={"freeze": False})[1]["frozen"] is False
    assert ctl("POST", "/_sim/clock", json={})[0] == 400
    assert ctl("POST", "/_sim/clock", json={"days": -1})[0] == 400

    code, v = ctl("POST", "/_sim/variants", json={"org": "org02", "empty_staged": "not_found"})
    assert code == 200 and v["empty_staged"] == "not_found"
    assert sim.variants("org02")["empty_staged"] == "not_found" and sim.variants()["empty_staged"] == "empty_list"
    assert ctl("GET", "/_sim/variants?org=org02")[1]["empty_staged"] == "not_found"
    code, err = ctl("POST", "/_sim/variants", json={"post_body": "weird"})
    assert code == 400 and "post_body" in err["error"]

    code, f = ctl("POST", "/_sim/faults", json={"org": "org02", "kind": "unavailable", "endpoint": "usage",
                                                "times": 2, "retry_after": 3})
    assert code == 201 and f["times"] == 2
    rest2 = st.RestClient(sim, "org02")
    r = rest2.get("/apps/oauth/usage")
    assert r.status_code == 503 and r.headers["Retry-After"] == "3"
    assert len(ctl("GET", "/_sim/faults")[1]["faults"]) == 1
    assert ctl("DELETE", "/_sim/faults")[1] == {"faults": []}
    assert rest2.get("/apps/oauth/usage").status_code == 200
    assert ctl("POST", "/_sim/faults", json={"org": "org02", "kind": "nope"})[0] == 400

    code, reqs = ctl("GET", "/_sim/requests?org=org02")
    assert [(e["method"], e["endpoint"], e["status"]) for e in reqs["requests"]] == [
        ("POST", "token", 200), ("GET", "usage", 503), ("GET", "usage", 200)]
    code, counts = ctl("GET", "/_sim/counts?org=org01")
    assert counts == {"counts": {"POST token": 1, "POST staged": 1}, "write_count": 1}
    assert ctl("DELETE", "/_sim/requests")[0] == 200 and sim.requests() == []


def test_control_org_operations_and_reset(sim, ctl, sim_http):
    o = sim.org("org01")
    admin_before = o.admin
    code, s = ctl("POST", "/_sim/orgs/org01/staged", json={"app": "Billing_Sync", "state": "Rotated", "age_days": 3})
    assert code == 201 and s["state"] == "Rotated"
    assert ctl("POST", "/_sim/orgs/org01/settings", json={"rest_secret_access": False})[1]["rest_secret_access"] is False
    code, body = ctl("POST", "/_sim/orgs/org01/access_tokens", json={})
    tok = body["access_token"]
    r = sim_http.get(o.instance_url + "/services/data/v65.0/apps/oauth/usage", headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 200
    cons = o.app("Billing_Sync").consumer()
    code, body = ctl("POST", "/_sim/orgs/org01/refresh_tokens", json={"client_id": cons.main["key"]})
    r = sim_http.post(o.instance_url + "/services/oauth2/token",
                      data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                            "client_id": cons.main["key"]})
    assert r.status_code == 200
    pair = {"org": "org01", "key": cons.main["key"], "secret": cons.main["secret"]}
    assert ctl("POST", "/_sim/authenticates", json=pair)[1] == {"authenticates": True}
    assert ctl("DELETE", "/_sim/orgs/org01/tokens")[0] == 200
    r = sim_http.get(o.instance_url + "/services/data/v65.0/apps/oauth/usage", headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 401
    sim.add_fault("org01", "reset", times=None)
    sim.clock.advance(days=2)
    code, dummy = ctl("POST", "/_sim/reset")
    assert code == 200
    assert cons.staged is None and o.admin == admin_before and sim.faults() == [] and sim.requests() == []
    assert abs(sim.clock.offset) < 1
    assert sim.org_state("org01")["settings"]["rest_secret_access"] is True
    assert st.RestClient(sim, "org01").get("/apps/oauth/usage").status_code == 200
    assert ctl("GET", "/_sim/nothing")[0] == 404
    assert ctl("POST", "/_sim/reset", data="not json")[0] == 400
    assert ctl("POST", "/_sim/faults", json=[1, 2]) == (400, {"error": "the request body must be a JSON object"})
    assert ctl("POST", "/_sim/authenticates", json={"org": "org01"}) == (
        400, {"error": "the request body needs key, secret"})
    assert ctl("POST", "/_sim/orgs/org01/settings", json={"colour": 1})[0] == 400


def _wait_for(path, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("serve exited early (rc %s)" % proc.returncode)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        time.sleep(0.05)
    raise AssertionError("no state file within %s s" % timeout)


def test_cli_serve_state_file_then_sigterm(tmp_path):
    state_file = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "eca_simulator", "serve", "--seed", "demo",
                             "--state-file", str(state_file), "--variant", "post_body=flat",
                             "--variant", "hooli:empty_staged=not_found"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        state = _wait_for(state_file, proc)
        assert oct(os.stat(state_file).st_mode & 0o777) == "0o600"
        assert set(state["orgs"]) == {"acme", "globex", "initech", "umbrella", "hooli", "stark"}
        assert state["pid"] == proc.pid and os.path.exists(state["ca_path"])
        assert "BEGIN PRIVATE KEY" in state["orgs"]["stark"]["jwt"][0]["private_key"]
        s = requests.Session()
        s.trust_env = False
        s.verify = state["ca_path"]
        org = state["orgs"]["umbrella"]
        r = s.post(org["instance_url"] + "/services/oauth2/token",
                   data={"grant_type": "client_credentials", "client_id": org["admin"]["client_id"],
                         "client_secret": org["admin"]["client_secret"]})
        assert r.status_code == 200
        ctl = state["control_url"]
        umbrella = s.get(ctl + "/_sim/orgs/umbrella").json()
        assert [c["staged"]["state"] for a in umbrella["apps"] for c in a["consumers"] if c["staged"]] == ["Rotated"]
        assert s.get(ctl + "/_sim/variants").json()["post_body"] == "flat"
        assert s.get(ctl + "/_sim/variants?org=hooli").json()["empty_staged"] == "not_found"
        proc.send_signal(signal.SIGTERM)
        out, dummy = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert not state_file.exists()
        for name, org in state["orgs"].items():
            assert "%s %s client_id=%s" % (name, org["instance_url"], org["admin"]["client_id"]) in out
        assert "control URL: " + ctl in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _free_port_range(n):
    """A base port below the ephemeral range with n free ports after it (checked by binding them)."""
    import random
    import socket
    for dummy in range(50):
        base = random.randrange(12000, 30000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free range of %d ports" % n)


def test_cli_500_orgs_http_port_base(tmp_path):
    state_file = tmp_path / "state.json"
    base = _free_port_range(500)
    log = open(tmp_path / "out.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "eca_simulator", "serve", "--orgs", "500", "--http",
                             "--port-base", str(base), "--state-file", str(state_file)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        state = _wait_for(state_file, proc)
        assert state["ca_path"] is None
        assert state["orgs"]["org001"]["instance_url"] == "http://127.0.0.1:%d" % base
        assert state["orgs"]["org500"]["instance_url"] == "http://127.0.0.1:%d" % (base + 499)
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        assert proc.returncode == 0
        log.seek(0)
        out = log.read()
        assert out.count("client_id=") == 500
        took = float(out.split(" up in ")[1].split(" s")[0])
        assert took < 20.0  # wall time as the CLI reports it; the strict CPU bound is in test_scale.py
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("args, message", [
    (["--orgs", "0"], "--orgs must be at least 1"),
    (["--seed", "/nonexistent.yml"], "cannot read seed file /nonexistent.yml"),
    (["--orgs", "2", "--variant", "post_body=round"], "bad --variant 'post_body=round'"),
])
def test_cli_bad_input(args, message):
    r = subprocess.run([sys.executable, "-m", "eca_simulator", "serve", *args], cwd=ROOT, capture_output=True, check=False,
                       text=True, timeout=90)
    assert r.returncode != 0 and message in r.stderr
