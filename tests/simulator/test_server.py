"""The HTTP layer: keep-alive, idle connections, malformed requests, chunked bodies."""

import socket
import ssl
import time

from eca_simulator import testing as st


def _tls(sim, org="org01"):
    raw = socket.create_connection(("127.0.0.1", sim.orgs[org].port), timeout=5)
    return ssl.create_default_context(cafile=sim.ca_path).wrap_socket(raw, server_hostname="127.0.0.1")


_LEFTOVER = {}


def _read_response(s):
    """One HTTP response from socket s; bytes past it are kept for the next call on the same socket."""
    data = _LEFTOVER.pop(id(s), b"")
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, dummy, body = data.partition(b"\r\n\r\n")
    length = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
    n = length[0] if length else 0
    while len(body) < n:
        body += s.recv(4096)
    if body[n:]:
        _LEFTOVER[id(s)] = body[n:]
    return head + b"\r\n\r\n" + body[:n]


def test_idle_keepalive_connections_do_not_pin_workers(sim_factory, monkeypatch):
    # With a long read timeout, a design that parks idle connections on workers would stall > 60 s here.
    monkeypatch.setattr("eca_simulator.server.IO_TIMEOUT", 60.0)
    sim = sim_factory(workers=8)
    idle = [_tls(sim) for dummy in range(40)]  # five times the worker pool, all idle after the handshake
    try:
        for s in idle[:10]:  # some have served a request and are parked as keep-alive
            s.sendall(b"GET /services/data/v65.0/apps/oauth/usage HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(s).startswith(b"HTTP/1.1 401 ")
        t0 = time.monotonic()
        assert st.RestClient(sim, "org01").get("/apps/oauth/usage").status_code == 200
        assert time.monotonic() - t0 < 20  # generous for slow CI hosts; a pinned pool would take > 60 s
        # A parked connection still answers its next request.
        idle[0].sendall(b"GET /services/data/v65.0/apps/oauth/usage HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(idle[0]).startswith(b"HTTP/1.1 401 ")
    finally:
        for s in idle:
            s.close()


def test_keepalive_reuses_one_connection_and_close_is_honoured(sim):
    with _tls(sim) as s:
        for dummy in range(3):
            s.sendall(b"GET /services/data/v65.0/apps/oauth/usage HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = _read_response(s)
            assert resp.startswith(b"HTTP/1.1 401 ") and b"Connection: keep-alive" in resp
            assert b"Sforce-Limit-Info: api-usage=0/15000" in resp
        s.sendall(b"GET /services/data/v65.0/apps/oauth/usage HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"Connection: close" in _read_response(s)
        assert s.recv(10) == b""


def test_pipelined_and_chunked_requests(sim_factory):
    sim = sim_factory(tls=False)
    admin = sim.orgs["org01"].admin
    form = ("grant_type=client_credentials&client_id=%s&client_secret=%s"
            % (admin["client_id"], admin["client_secret"])).encode()
    with socket.create_connection(("127.0.0.1", sim.orgs["org01"].port), timeout=5) as s:
        chunked = (b"POST /services/oauth2/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
                   + b"%x\r\n" % 10 + form[:10] + b"\r\n" + b"%x\r\n" % (len(form) - 10) + form[10:]
                   + b"\r\n0\r\n\r\n")
        two = chunked + b"GET /services/data/v65.0/apps/oauth/usage HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(two)
        first = _read_response(s)
        assert first.startswith(b"HTTP/1.1 200 ") and b'"access_token"' in first
        assert _read_response(s).startswith(b"HTTP/1.1 401 ")


def test_malformed_request_gets_400_and_server_keeps_serving(sim_factory):
    sim = sim_factory(tls=False)
    with socket.create_connection(("127.0.0.1", sim.orgs["org01"].port), timeout=5) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", sim.orgs["org01"].port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nbad header line\r\n\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 400 ")
    # A client that connects and goes away, and one that speaks plain HTTP to... nothing: no harm.
    socket.create_connection(("127.0.0.1", sim.orgs["org01"].port), timeout=5).close()
    assert st.RestClient(sim, "org01").get("/apps/oauth/usage").status_code == 200


def test_plain_http_to_tls_port_is_dropped(sim):
    with socket.create_connection(("127.0.0.1", sim.orgs["org01"].port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 ")
    assert st.RestClient(sim, "org01").get("/apps/oauth/usage").status_code == 200


def test_port_in_use_is_a_clear_error_and_nothing_is_left_behind():
    import os

    import pytest

    from eca_simulator import Simulator
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        sim = Simulator({"orgs": [{"name": "a"}, {"name": "b"}]}, port_base=port)
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1:%d" % port):
            sim.start()
    assert sim.ca_path and not os.path.exists(os.path.dirname(sim.ca_path))  # temp dir with the CA removed
    sim.stop()  # idempotent
