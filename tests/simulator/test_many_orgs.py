"""Big fleets: one loopback address per org, certificates that validate for each, the open-file limit."""

import json
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import pytest
import requests

from eca_simulator import Simulator, generate
from eca_simulator import testing as st
from eca_simulator.server import HOSTS_PER_BLOCK, loopback_address

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _host_port(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def _can_bind(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


needs_127_8 = pytest.mark.skipif(not _can_bind("127.1.0.1"), reason="this system cannot listen on 127.1.0.1")


def test_loopback_addresses_are_distinct_and_skip_network_and_broadcast():
    seen = [loopback_address(i) for i in range(3 * HOSTS_PER_BLOCK)]
    assert len(set(seen)) == len(seen)
    assert seen[0] == "127.1.0.1" and seen[HOSTS_PER_BLOCK - 1] == "127.1.0.254" and seen[HOSTS_PER_BLOCK] == "127.1.1.1"
    assert not [a for a in seen if a.endswith((".0", ".255"))]
    assert loopback_address(9999) == "127.1.39.94"
    with pytest.raises(ValueError, match="out of range"):
        loopback_address(-1)


def test_bad_addressing_is_a_clear_error():
    with pytest.raises(ValueError, match="addressing must be auto, ports or addresses, got 'hosts'"):
        Simulator(generate(1), addressing="hosts")


@needs_127_8
def test_addresses_mode_every_org_its_own_address_one_port_and_tls_validates(sim_factory):
    """Two certificate blocks (300 orgs): the org at each block's edges authenticates over verified TLS on its
    own address, and a certificate for one block is refused for an address of the other."""
    sim = sim_factory(generate(300), addressing="addresses")
    assert sim.addressing == "addresses"
    hosts = {name: _host_port(o.instance_url) for name, o in sim.orgs.items()}
    assert len({h for h, p in hosts.values()}) == 300
    assert {p for h, p in hosts.values()} == {sim.orgs["org001"].port}
    assert hosts["org001"][0] == "127.1.0.1" and hosts["org300"][0] == "127.1.1.46"
    assert _host_port(sim.login_url) == ("127.0.0.1", sim.orgs["org001"].port)
    for org in ("org001", "org254", "org255", "org300"):
        rest = st.RestClient(sim, org)
        r = rest.get("/apps/oauth/usage")
        assert r.status_code == 200, (org, r.text)
        assert "Billing_Sync" in [a["developerName"] for a in r.json()["apps"]]
    # the request reached the right org: the log attributes it by address
    assert {e["org"] for e in sim.requests()} == {"org001", "org254", "org255", "org300"}
    # a block's certificate names its own addresses only: connect to org255's address, ask for org001's
    ctx = ssl.create_default_context(cafile=sim.ca_path)
    with socket.create_connection(hosts["org255"], timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="127.1.0.1"):
            ctx.wrap_socket(raw, server_hostname="127.1.0.1")
    # and nothing answers for an org address past the fleet
    with pytest.raises(OSError):
        socket.create_connection((loopback_address(300), hosts["org001"][1]), timeout=2).close()


@needs_127_8
def test_addresses_mode_plain_http_and_reset_keep_urls(sim_factory):
    sim = sim_factory(generate(3), addressing="addresses", tls=False)
    urls = {n: o.instance_url for n, o in sim.orgs.items()}
    assert urls["org003"].startswith("http://127.1.0.3:")
    assert st.RestClient(sim, "org003").get("/apps/oauth/usage").status_code == 200
    sim.reset()
    assert {n: o.instance_url for n, o in sim.orgs.items()} == urls
    assert st.RestClient(sim, "org002").get("/apps/oauth/usage").status_code == 200


@needs_127_8
def test_auto_addressing_switches_above_1000_orgs(sim_factory):
    small = sim_factory(generate(1000))
    assert small.addressing == "ports"
    assert _host_port(small.orgs["org1000"].instance_url)[0] == "127.0.0.1"
    assert len({o.port for o in small.orgs.values()}) == 1000
    small.stop()
    big = sim_factory(generate(1001))
    assert big.addressing == "addresses"
    assert _host_port(big.orgs["org1001"].instance_url) == (loopback_address(1000), big.orgs["org001"].port)
    assert st.token(big, "org1001")


@needs_127_8
def test_10000_orgs_up_in_seconds_and_each_block_answers():
    """Construct + start 10,000 orgs. CPU-time bound (~2.5 s here), generous wall bound for a loaded CI box;
    one org per certificate block (40 blocks) authenticates over verified TLS."""
    c0, t0 = time.process_time(), time.perf_counter()
    sim = Simulator(generate(10000))
    sim.start()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    try:
        assert sim.addressing == "addresses"
        assert cpu < 8.0, "10,000 orgs cost %.2f s of CPU to come up" % cpu
        assert wall < 60.0, "10,000 orgs took %.2f s (wall) to come up" % wall
        http = st.session(sim)
        names = list(sim.orgs)
        for i in list(range(0, 10000, HOSTS_PER_BLOCK)) + [9999]:
            assert st.token(sim, names[i], http=http), names[i]
        print("10,000 orgs up in %.2f s wall, %.2f s CPU" % (wall, cpu))
    finally:
        sim.stop()


def _serve(tmp_path, args, limit):
    """serve ARGS in a child whose RLIMIT_NOFILE is `limit` (soft, hard); -> (proc, state file, log path)."""
    state_file = tmp_path / "state.json"
    log_path = tmp_path / "out.txt"
    log = open(log_path, "w")

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, limit)

    proc = subprocess.Popen([sys.executable, "-m", "eca_simulator", "serve", *args, "--state-file", str(state_file)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=lower)
    log.close()
    return proc, state_file, log_path


def _wait_state(proc, state_file, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("serve exited %s: %s" % (proc.returncode, log_path.read_text()[-2000:]))
        try:
            return json.loads(state_file.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("no state file within %d s" % timeout)


def _wait_text(log_path, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = log_path.read_text()
        if text in out:
            return out
        time.sleep(0.05)
    raise AssertionError("%r not in the output: %s" % (text, log_path.read_text()[-2000:]))


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cli_raises_a_low_soft_file_limit_itself(tmp_path):
    """1,500 orgs under the common default soft limit of 1024 open files (hard limit higher): serve raises its
    soft limit and every org listens."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1800:
        pytest.skip("the hard open-file limit (%d) is too low for this test" % hard)
    proc, state_file, log_path = _serve(tmp_path, ["--orgs", "1500", "--http", "--addressing", "ports"], (1024, hard))
    try:
        state = _wait_state(proc, state_file, log_path)
        assert state["addressing"] == "ports" and len(state["orgs"]) == 1500
        last = state["orgs"]["org1500"]
        r = requests.post(last["instance_url"] + "/services/oauth2/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": last["admin"]["client_id"],
            "client_secret": last["admin"]["client_secret"]})
        assert r.status_code == 200
    finally:
        _stop(proc)


def test_cli_hard_file_limit_too_low_is_a_clear_error(tmp_path):
    proc, state_file, log_path = _serve(tmp_path, ["--orgs", "1000", "--http"], (300, 300))
    assert proc.wait(60) == 1
    out = log_path.read_text()
    assert "error: [Errno 24] serving 1002 listening sockets needs at least 1258 open files, but this process " \
           "may open 300 (hard limit, RLIMIT_NOFILE)" in out, out
    assert "ulimit -Hn" in out and not state_file.exists()


def test_out_of_file_descriptors_closes_idle_connections_instead_of_spinning(tmp_path):
    """With every descriptor held by idle keep-alive connections, a new client still gets an answer."""
    proc, state_file, log_path = _serve(tmp_path, ["--orgs", "1", "--http"], (300, 300))
    idle = []
    try:
        state = _wait_state(proc, state_file, log_path)
        host, port = _host_port(state["orgs"]["org001"]["instance_url"])
        for dummy in range(320):  # more than the server may hold
            s = socket.create_connection((host, port), timeout=5)
            idle.append(s)
        time.sleep(0.5)
        r = requests.post(state["orgs"]["org001"]["instance_url"] + "/services/oauth2/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": state["orgs"]["org001"]["admin"]["client_id"],
            "client_secret": state["orgs"]["org001"]["admin"]["client_secret"]})
        assert r.status_code == 200
        _wait_text(log_path, "out of file descriptors (limit 300); closing idle connections")
    finally:
        for s in idle:
            s.close()
        _stop(proc)


@needs_127_8
def test_cli_addresses_with_port_base(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc, state_file, log_path = _serve(tmp_path, ["--orgs", "3", "--addressing", "addresses", "--port-base",
                                                   str(port)], resource.getrlimit(resource.RLIMIT_NOFILE))
    try:
        state = _wait_state(proc, state_file, log_path)
        assert state["addressing"] == "addresses"
        assert [o["instance_url"] for o in state["orgs"].values()] == [
            "https://127.1.0.%d:%d" % (i, port) for i in (1, 2, 3)]
        assert state["login_url"] == "https://127.0.0.1:%d" % port
        assert "one loopback address per org, https://127.1.0.1:%d .. https://127.1.0.3:%d" % (port, port) \
            in _wait_text(log_path, "control URL:")
    finally:
        _stop(proc)
