"""Transport safety: TLS verified by default, redirects never carry the token or a secret to another host,
http:// refused unless allow_http is set. In-process (operations layer) and through the modules."""

import json

import pytest

from ansible_collections.sfdc.eca.plugins.module_utils._common import build_client
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaApiError, EcaAuthError, EcaInputError, EcaTransportError
from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_staged_credential, run_usage_info

from safety_helpers import Reply, find_secrets, make_tls, proxy_to

OTHER_HOST = "127.0.0.2"   # loopback, but a different host than 127.0.0.1


def params(sim, org="org01", **over):
    admin = sim.orgs[org].admin
    p = {"instance_url": sim.orgs[org].instance_url, "ca_path": sim.ca_path, "client_id": admin["client_id"],
         "client_secret": admin["client_secret"], "max_retries": 0, "timeout": 10, "app_name": "Billing_Sync",
         "state": "present", "validate_certs": True}
    p.update(over)
    return p


def no_secret(sim, exc):
    return find_secrets(str(exc) + json.dumps(exc.to_result(), default=str), sim.secrets()) == []


# -- TLS ------------------------------------------------------------------------------------------

def test_tls_verified_by_default(sim):
    """No ca_path: the simulator's private CA is not trusted, the handshake fails before any request."""
    p = params(sim, ca_path=None)
    with pytest.raises(EcaTransportError) as err:
        run_staged_credential(build_client(p), p)
    msg = str(err.value)
    assert "TLS verification of 127.0.0.1:%d failed" % sim.orgs["org01"].port in msg
    assert "ca_path" in msg and "certificate verify failed" in msg.lower()
    assert no_secret(sim, err.value)
    assert sim.requests() == [], "a request reached the server over an unverified connection"


def test_tls_wrong_ca_refused(sim, tmp_path):
    other_ca = make_tls(tmp_path / "other")[0]
    p = params(sim, ca_path=other_ca)
    with pytest.raises(EcaTransportError, match="TLS verification"):
        run_usage_info(build_client(p), p)
    assert sim.requests() == []


def test_tls_certificate_for_another_host_refused(sim, tmp_path, loop_servers):
    """A certificate signed by the trusted CA but issued for 127.0.0.2 is refused on 127.0.0.1 (hostname check)."""
    ca, cert, key = make_tls(tmp_path / "wrong-name", ips=(OTHER_HOST,))
    server = loop_servers(proxy_to(sim, "org01"), tls=(ca, cert, key))
    p = params(sim, instance_url=server.url, ca_path=ca)
    with pytest.raises(EcaTransportError, match="TLS verification"):
        run_usage_info(build_client(p), p)
    assert server.requests == [] and sim.requests() == []


def test_validate_certs_false_is_the_only_opt_out(sim):
    p = params(sim, ca_path=None, validate_certs=False)
    result = run_usage_info(build_client(p), p)
    assert [a["developer_name"] for a in result["apps"]]


def test_tls_failure_through_the_module(sim, sandbox):
    """The module (no in-process shortcut) fails with the same clear TLS message when ca_path is unset."""
    p = params(sim, ca_path=None)
    args = json.dumps({k: v for k, v in p.items() if v is not None and k not in ("state", "app_name")})
    proc = sandbox.run(["ansible", "localhost", "-c", "local", "-m", "sfdc.eca.eca_usage_info", "-a", args, "-vvv"],
                       extra_env={"SFDC_ECA_IN_PROCESS": "false"}, timeout=120)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode != 0
    assert "TLS verification of 127.0.0.1" in out and "ca_path" in out
    assert sim.requests() == []
    assert sandbox.scan(sim.secrets()).hits == []


# -- redirects -------------------------------------------------------------------------------------

@pytest.fixture
def two_hosts(sim, tmp_path, loop_servers):
    """(front, other): `front` on 127.0.0.1 proxies to the simulator; `other` on 127.0.0.2 records what reaches it.
    One CA and one certificate valid for both addresses, so a followed redirect would succeed at the TLS level."""
    try:
        tls = make_tls(tmp_path / "two", ips=("127.0.0.1", OTHER_HOST))
        other = loop_servers(lambda req: Reply(200, {"apps": [], "access_token": "x"}), host=OTHER_HOST, tls=tls)
    except OSError as exc:  # pragma: no cover - only on hosts without 127.0.0.0/8 on lo
        pytest.skip("cannot listen on %s: %s" % (OTHER_HOST, exc))
    state = {"mutate": None}

    def mutate(req, reply):
        # Read at request time: tests set state["mutate"] after the servers start.
        return state["mutate"](req, reply) if state["mutate"] else reply

    front = loop_servers(proxy_to(sim, "org01", mutate), tls=tls)
    return front, other, tls[0], state


def _redirect_on(path_part, method, other, code=302):
    def mutate(req, reply):
        if req["method"] == method and path_part in req["path"]:
            return Reply(code, b"", {"Location": "%s%s" % (other.url, req["path"])})
        return reply
    return mutate


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_of_rest_call_never_carries_the_token(sim, two_hosts, code):
    front, other, ca, state = two_hosts
    state["mutate"] = _redirect_on("/apps/oauth/usage", "GET", other, code)
    p = params(sim, instance_url=front.url, ca_path=ca)
    with pytest.raises(EcaApiError) as err:
        run_staged_credential(build_client(p), p)
    assert str(code) in str(err.value)
    assert other.requests == [], "the client followed the redirect to %s" % other.url
    assert no_secret(sim, err.value)
    assert sim.write_count() == 0


@pytest.mark.parametrize("code", [302, 307, 308])
def test_redirect_of_token_request_never_carries_the_secret(sim, two_hosts, code):
    front, other, ca, state = two_hosts
    state["mutate"] = _redirect_on("/services/oauth2/token", "POST", other, code)
    p = params(sim, instance_url=front.url, ca_path=ca)
    with pytest.raises(EcaAuthError) as err:
        run_staged_credential(build_client(p), p)
    assert str(code) in str(err.value)
    assert other.requests == []
    assert no_secret(sim, err.value)


def test_next_page_url_on_another_host_stays_on_the_org(sim, two_hosts):
    """An absolute nextPageUrl naming another host is followed on the org's own host only."""
    front, other, ca, state = two_hosts

    def mutate(req, reply):
        if req["path"].split("?")[0].endswith("/apps/oauth/usage") and "page=1" not in req["path"]:
            body = json.loads(reply.body)
            body["nextPageUrl"] = other.url + "/services/data/v65.0/apps/oauth/usage?page=1"
            return Reply(200, body)
        return reply
    state["mutate"] = mutate
    p = params(sim, instance_url=front.url, ca_path=ca)
    result = run_usage_info(build_client(p), p)
    assert result["apps"]
    assert other.requests == []
    pages = [r for r in front.requests if "/apps/oauth/usage" in r["path"]]
    assert len(pages) == 2 and all(r["headers"].get("Host", "").startswith("127.0.0.1") for r in pages)


def test_redirect_through_the_module_at_vvvv(sim, two_hosts, sandbox):
    front, other, ca, state = two_hosts
    state["mutate"] = _redirect_on("/apps/oauth/", "GET", other, 302)
    p = params(sim, instance_url=front.url, ca_path=ca)
    args = json.dumps({k: v for k, v in p.items() if v is not None})
    proc = sandbox.run(["ansible", "localhost", "-c", "local", "-m", "sfdc.eca.eca_staged_credential", "-a", args, "-vvvv"],
                       extra_env={"SFDC_ECA_IN_PROCESS": "false"}, timeout=120)
    assert proc.returncode != 0 and b"302" in proc.stdout
    assert other.requests == []
    assert sim.write_count() == 0
    assert sandbox.scan(sim.secrets()).hits == []


# -- http:// ---------------------------------------------------------------------------------------

@pytest.mark.sim(tls=False)
def test_http_refused_without_allow_http(sim):
    p = params(sim, ca_path=None)
    assert p["instance_url"].startswith("http://")
    with pytest.raises(EcaInputError) as err:
        build_client(p)
    assert p["instance_url"] in str(err.value) and "allow_http" in str(err.value)
    assert sim.requests() == []


@pytest.mark.sim(tls=False)
def test_http_token_url_refused_without_allow_http(sim):
    """An https instance_url does not let an http token_url through (the secret would travel in clear)."""
    p = params(sim, ca_path=None, instance_url="https://127.0.0.1:1", token_url=sim.orgs["org01"].instance_url + "/services/oauth2/token")
    with pytest.raises(EcaInputError, match="token_url .* uses http"):
        build_client(p)
    assert sim.requests() == []


@pytest.mark.sim(tls=False)
def test_http_allowed_only_when_asked(sim):
    p = params(sim, ca_path=None, allow_http=True)
    result = run_usage_info(build_client(p), p)
    assert result["apps"] and sim.requests()
