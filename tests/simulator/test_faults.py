"""Deterministic faults: per org, endpoint and method; `times=N` then normal again."""

import socket
import time

import pytest
import requests

from eca_simulator import testing as st


@pytest.fixture
def rest(sim):
    return st.RestClient(sim, "org01")


def _usage(rest):
    return rest.get("/apps/oauth/usage")


def test_times_then_normal_and_scoping(sim, rest):
    sim.add_fault("org01", "server_error", endpoint="usage", times=2)
    r = _usage(rest)
    assert r.status_code == 500 and r.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert "Sforce-Limit-Info" in r.headers
    assert _usage(rest).status_code == 500
    assert _usage(rest).status_code == 200
    assert sim.faults() == []
    # Other org, other endpoint, other method: untouched.
    sim.add_fault("org02", "server_error")
    sim.add_fault("org01", "server_error", endpoint="staged", method="POST")
    assert _usage(rest).status_code == 200
    staged = rest.consumer_path("Billing_Sync") + "/staged"
    assert rest.get(staged).status_code == 200
    assert rest.post(staged).status_code == 500
    assert sim.org("org01").app("Billing_Sync").consumer().staged is None  # nothing written
    assert rest.post(staged).status_code == 201
    assert st.RestClient(sim, "org02").get("/apps/oauth/usage").status_code == 500
    log = [(e["endpoint"], e["status"], e["fault"]) for e in sim.requests("org01")]
    assert ("staged", 500, "server_error") in log and ("staged", 201, None) in log


def test_times_none_until_cleared_and_wildcard_org(sim, rest):
    sim.add_fault("*", "limit_exceeded", times=None)
    for dummy in range(3):
        r = _usage(rest)
        assert r.status_code == 403
        assert r.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert st.RestClient(sim, "org02").get("/apps/oauth/usage").status_code == 403
    assert sim.faults()[0]["hits"] == 4
    sim.clear_faults()
    assert _usage(rest).status_code == 200


def test_star_endpoint_spares_token_and_all_includes_it(sim, sim_http):
    sim.add_fault("org01", "unavailable", times=None)
    assert st.token(sim, "org01")  # "*" is REST only
    sim.clear_faults()
    sim.add_fault("org01", "unavailable", endpoint="all")
    with pytest.raises(requests.HTTPError):
        st.token(sim, "org01", http=sim_http)
    sim.add_fault("org01", "invalid_session", endpoint="token")
    with pytest.raises(requests.HTTPError):
        st.token(sim, "org01", http=sim_http)


def test_invalid_session(sim, rest):
    sim.add_fault("org01", "invalid_session")
    r = _usage(rest)
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert _usage(rest).status_code == 200  # the token itself is still good


def test_unavailable_with_and_without_retry_after(sim, rest):
    sim.add_fault("org01", "unavailable")
    sim.add_fault("org01", "unavailable", retry_after=7)
    r = _usage(rest)
    assert r.status_code == 503 and "Retry-After" not in r.headers
    assert r.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    r = _usage(rest)
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    assert _usage(rest).status_code == 200


def test_too_many_requests_and_gateway_errors(sim, rest):
    sim.add_fault("org01", "too_many_requests", retry_after=2)
    sim.add_fault("org01", "too_many_requests")
    sim.add_fault("org01", "server_error", status=502)
    sim.add_fault("org01", "server_error", status=504)
    r = _usage(rest)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2" and isinstance(r.json(), list)
    r = _usage(rest)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert [_usage(rest).status_code for dummy in range(3)] == [502, 504, 200]


def test_feature_disabled_fault(sim, rest):
    sim.add_fault("org01", "feature_disabled", endpoint="staged")
    r = rest.get(rest.consumer_path("Billing_Sync") + "/staged")
    assert r.status_code == 403 and "not enabled" in r.json()[0]["message"]
    assert r.json()[0]["errorCode"] == "FUNCTIONALITY_NOT_ENABLED"


def test_latency(sim, rest):
    sim.add_fault("org01", "latency", seconds=0.3, endpoint="usage")
    t0 = time.monotonic()
    assert _usage(rest).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    _usage(rest)
    assert [e["fault"] for e in sim.requests("org01")[-2:]] == ["latency", None]  # used up after one request
    # Latency combines with another fault on the same request.
    sim.add_fault("org01", "latency", seconds=0.2)
    sim.add_fault("org01", "server_error")
    t0 = time.monotonic()
    assert _usage(rest).status_code == 500
    assert time.monotonic() - t0 >= 0.2


def test_malformed_json(sim, rest):
    sim.add_fault("org01", "malformed_json", endpoint="usage")
    r = _usage(rest)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        r.json()
    # On a write the write happens, the reply is garbage; a 204 becomes a garbled 200.
    staged = rest.consumer_path("Billing_Sync") + "/staged"
    sim.add_fault("org01", "malformed_json", method="POST")
    r = rest.post(staged)
    assert r.status_code == 201
    with pytest.raises(ValueError):
        r.json()
    item = rest.get(staged).json()["stagedCredentials"][0]
    sim.add_fault("org01", "malformed_json", method="DELETE")
    r = rest.delete(item["url"])
    assert r.status_code == 200 and r.content
    assert sim.org("org01").app("Billing_Sync").consumer().staged is None


def test_reset_before_answer_changes_nothing(sim, rest):
    staged = rest.consumer_path("Billing_Sync") + "/staged"
    sim.add_fault("org01", "reset", method="POST", endpoint="staged")
    with pytest.raises(requests.ConnectionError):
        rest.post(staged)
    assert sim.org("org01").app("Billing_Sync").consumer().staged is None
    entry = sim.requests("org01")[-1]
    assert (entry["method"], entry["endpoint"], entry["status"], entry["fault"]) == ("POST", "staged", 0, "reset")
    assert rest.post(staged).status_code == 201  # the connection pool recovers
    assert sim.write_count("org01") == 2


def test_crash_after_write(sim, rest):
    cons = sim.org("org01").app("Billing_Sync").consumer()
    staged = rest.consumer_path("Billing_Sync") + "/staged"
    sim.add_fault("org01", "crash_after_write", method="POST")
    with pytest.raises(requests.ConnectionError):
        rest.post(staged)
    assert cons.staged["state"] == "Active"  # the write happened
    s1 = cons.staged
    sim.add_fault("org01", "crash_after_write", endpoint="staged_item", method="PATCH")
    with pytest.raises(requests.ConnectionError):
        rest.patch(staged + "/" + s1["id"], json={"command": "rotate"})
    assert cons.main["key"] == s1["key"] and cons.staged["state"] == "Rotated"


@pytest.mark.parametrize("tls", [True, False])
def test_reset_is_an_abrupt_drop(sim_factory, tls):
    """No answer and no clean close: plain TCP sees ECONNRESET, TLS an EOF without close_notify."""
    import ssl
    sim = sim_factory(tls=tls)
    sim.add_fault("org01", "reset", endpoint="usage")
    raw = socket.create_connection(("127.0.0.1", sim.orgs["org01"].port), timeout=5)
    s = raw
    if tls:
        ctx = ssl.create_default_context(cafile=sim.ca_path)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
    with s:
        s.sendall(b"GET /services/data/v65.0/apps/oauth/usage HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError if not tls else (ConnectionResetError, ssl.SSLEOFError)):
            s.recv(1024)


def test_fault_validation(sim):
    with pytest.raises(ValueError, match="unknown fault kind 'boom'"):
        sim.add_fault("org01", "boom")
    with pytest.raises(ValueError, match="unknown endpoint"):
        sim.add_fault("org01", "reset", endpoint="stagedd")
    with pytest.raises(ValueError, match="seconds"):
        sim.add_fault("org01", "latency")
    with pytest.raises(ValueError, match="retry_after"):
        sim.add_fault("org01", "server_error", retry_after=3)
    with pytest.raises(ValueError, match="500, 502 or 504"):
        sim.add_fault("org01", "server_error", status=503)
    with pytest.raises(ValueError, match="times"):
        sim.add_fault("org01", "reset", times=0)
    with pytest.raises(KeyError):
        sim.add_fault("org99", "reset")
    with pytest.raises(ValueError, match="method"):
        sim.add_fault("org01", "reset", method="PUT")


def test_counts_and_reset_log(sim, rest):
    _usage(rest)
    rest.post(rest.consumer_path("Billing_Sync") + "/staged")
    assert sim.counts("org01") == {"POST token": 1, "GET usage": 1, "POST staged": 1}
    assert sim.write_count("org01") == 1 and sim.write_count() == 1
    e = sim.requests("org01")[1]
    assert set(e) == {"org", "listener", "method", "endpoint", "path", "query", "status", "fault", "time",
                      "secret_owners"}
    assert (e["org"], e["method"], e["endpoint"], e["path"], e["status"]) == (
        "org01", "GET", "usage", "/services/data/v65.0/apps/oauth/usage", 200)
    sim.reset_log()
    assert sim.requests() == [] and sim.counts() == {}
