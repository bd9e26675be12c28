"""The connection layer under hostile conditions (issue 14): environment fallbacks of one org never reach another
org, a pair under test ignores every auth fallback, decoded answers are capped, bad input never gives a traceback
or echoes a password, and a refresh token the org rotates is handed back.

Operations run in-process through the same argument spec and validation as the modules (``run_operation``), and the
fleet cases run ``playbooks/rotate.yml`` (vault_file delivery). The simulator records which org's secrets every
request carried (``sim.misdirected()``): no secret may reach a host other than its org's own or the login host.
"""

import importlib.util
import os

import pytest

from safety_helpers import COLLS, ROOT

from ansible_collections.sfdc.eca.plugins.module_utils._operations import (
    run_staged_credential,
    run_token,
    run_usage_info,
)
from ansible_collections.sfdc.eca.plugins.module_utils._specs import staged_credential_spec, token_spec, usage_info_spec
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import run_operation


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


e2e = _load("e2e_conftest_for_hostile", ROOT / "tests" / "e2e" / "conftest.py")
api_fleet = _load("api_fleet_for_hostile", ROOT / "tests" / "e2e" / "api_fleet.py")

SEED = {"orgs": [
    api_fleet.org("orga"),
    api_fleet.org("orgb"),
    {"name": "jwtorg", "admin": {"username": api_fleet.ADMIN, "jwt": "generate"},
     "apps": [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]},
]}
PASSWORD = "Sup3rS3cretPw"

OPS = {"token": (token_spec, run_token), "usage": (usage_info_spec, run_usage_info),
       "staged": (staged_credential_spec, run_staged_credential)}


@pytest.fixture
def sim(sim_factory):
    return sim_factory(SEED)


@pytest.fixture
def env(monkeypatch):
    """Set SALESFORCE_* variables for the test (every other one removed)."""
    for name in list(os.environ):
        if name.startswith("SALESFORCE_"):
            monkeypatch.delenv(name)

    def setenv(**values):
        for name, value in values.items():
            monkeypatch.setenv("SALESFORCE_" + name.upper(), value)
    return setenv


def op(name, args):
    spec, runner = OPS[name]
    return run_operation("sfdc.eca.eca_" + name, spec, runner, dict(args))


def conn(sim, org, **extra):
    o = sim.orgs[org]
    out = {"instance_url": o.instance_url, "ca_path": sim.ca_path, "client_id": o.admin["client_id"],
           "client_secret": o.admin["client_secret"], "retry_backoff": 0.01, "max_retries": 1}
    out.update(extra)
    return out


def token_url(sim, org):
    return sim.orgs[org].instance_url + "/services/oauth2/token"


def no_traceback(result):
    text = repr(result)
    return "Traceback" not in text and "MODULE FAILURE" not in text and "exception" not in result


# -- environment fallbacks never cross orgs -------------------------------------------------------------------------

def test_the_environment_of_one_org_is_not_used_for_another(sim, env):
    a = sim.orgs["orga"]
    env(instance_url=a.instance_url, token_url=token_url(sim, "orga"), client_id=a.admin["client_id"],
        client_secret=a.admin["client_secret"], ca_path=sim.ca_path)
    # org B with its own URL and credentials: its secret goes to its own host
    result = op("usage", conn(sim, "orgb"))
    assert result.get("failed") is not True, result
    assert sim.counts("orgb")["POST token"] == 1 and "POST token" not in sim.counts("orga")
    # org B with its own URL and no credentials: A's are not used, and the message says why
    result = op("usage", {"instance_url": sim.orgs["orgb"].instance_url})
    assert result["failed"] and "SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET are set but not used" in result["msg"]
    assert sim.misdirected() == []
    # the environment's own org: no instance_url of its own, or the same one written differently
    assert op("usage", {}).get("failed") is not True
    assert op("usage", {"instance_url": a.instance_url.upper() + "/"}).get("failed") is not True
    assert sim.counts("orga")["POST token"] == 2
    assert sim.misdirected() == []


def test_a_token_url_from_the_environment_on_another_host_is_refused(sim, env):
    a = sim.orgs["orga"]
    env(instance_url=a.instance_url, token_url=token_url(sim, "orgb"), client_id=a.admin["client_id"],
        client_secret=a.admin["client_secret"], ca_path=sim.ca_path)
    result = op("usage", {})
    assert result["failed"] and "SALESFORCE_TOKEN_URL" in result["msg"] and "Set token_url in the task" in result["msg"]
    assert sim.requests() == []
    # the org's own connection may name it
    result = op("usage", conn(sim, "orga", token_url=token_url(sim, "orga")))
    assert result.get("failed") is not True, result


def test_validate_certs_off_in_the_environment_is_not_another_orgs(sim, env):
    env(instance_url=sim.orgs["orga"].instance_url, validate_certs="false")
    # org B's connection does not trust the simulator's CA: with the environment's validate_certs: false it would
    # have connected
    result = op("usage", dict(conn(sim, "orgb"), ca_path=None))
    assert result["failed"] and "TLS verification" in result["msg"]
    assert sim.requests("orgb") == []


# -- a pair under test ignores every authentication fallback ---------------------------------------------------------

@pytest.mark.parametrize("key_file", [None, ""])
def test_a_pair_under_test_ignores_every_auth_fallback(sim, env, key_file):
    cons = sim.org("orga").app("Billing_Sync").consumer()
    staged = cons.set_staged("Active")
    admin_key = sim.org("jwtorg").admin_app.consumer().private_key_pem
    values = dict(instance_url=sim.orgs["orga"].instance_url, ca_path=sim.ca_path, private_key=admin_key,
                  username=api_fleet.ADMIN, access_token="00Dnot.a.token", refresh_token="5Aepnot.a.token")
    if key_file is not None:
        values["private_key_file"] = key_file   # AWX injects an empty variable for an empty field
    env(**values)
    args = {"client_id": staged["key"], "client_secret": staged["secret"], "verify_pair": True}
    result = op("token", args)
    assert result.get("failed") is not True, result
    assert result["auth_flow"] == "client_credentials" and "access_token" not in result
    # given in the task, an access or refresh token is no part of a pair either
    result = op("token", dict(args, access_token="00Dtask.token", private_key_file=""))
    assert result.get("failed") is not True and result["auth_flow"] == "client_credentials", result
    assert sim.misdirected() == []


def test_an_empty_private_key_file_variable_does_not_exclude_a_private_key(sim, env):
    o = sim.orgs["jwtorg"]
    env(private_key_file="", client_secret="")
    args = {"instance_url": o.instance_url, "ca_path": sim.ca_path, "client_id": o.admin["client_id"],
            "username": api_fleet.ADMIN, "private_key": sim.org("jwtorg").admin_app.consumer().private_key_pem}
    result = op("token", args)
    assert result.get("failed") is not True, result
    assert result["auth_flow"] == "jwt_bearer"


# -- response size -------------------------------------------------------------------------------------------------

def test_a_gzip_bomb_is_not_decoded_past_the_cap(sim, env):
    sim.add_fault("orga", "gzip_bomb", endpoint="usage", size_mb=40)
    result = op("usage", conn(sim, "orga"))
    assert result["failed"] and no_traceback(result)
    assert "larger than 8 MB once decoded" in result["msg"] and "max_response_mb" in result["msg"]
    assert result["error_type"] == "EcaTransportError"
    # the option raises the cap: the 40 MB answer (valid JSON, without apps) is then read
    sim.add_fault("orga", "gzip_bomb", endpoint="usage", size_mb=40)
    result = op("usage", conn(sim, "orga", max_response_mb=64))
    assert result.get("failed") is not True and result["apps"] == [], result


def test_a_write_answered_too_large_is_decided_by_reading_the_slot(sim, env):
    sim.add_fault("orga", "gzip_bomb", method="POST", endpoint="staged", size_mb=20)
    result = op("staged", conn(sim, "orga", app_name="Billing_Sync"))
    truth = sim.org("orga").app("Billing_Sync").consumer().staged
    assert result.get("failed") is not True, result
    assert result["action"] == "staged" and result["staged_credential"]["secret"] == truth["secret"]
    # the answer was a fault (nothing staged): the slot read after it showed that, and the POST was sent again
    assert [e["endpoint"] for e in sim.requests("orga") if e["endpoint"] != "token"][-3:] == ["staged"] * 3
    assert sim.counts("orga")["POST staged"] == 2


# -- bad input never gives a traceback, and a password is never echoed ------------------------------------------------

@pytest.mark.parametrize("url,expected", [
    ("https://[::1", "is not a valid URL"),
    ("https://[::1]:99999", "invalid port"),
    ("admin:%s@127.0.0.1:443" % PASSWORD, "must not carry user information"),
    ("https://admin:%s@127.0.0.1" % PASSWORD, "must not carry user information"),
    ("http://admin:%s@127.0.0.1" % PASSWORD, "must not carry user information"),
    ("admin:%s@" % PASSWORD, "must not carry user information"),
    ("ftp://admin:%s@[::1" % PASSWORD, "is not a valid URL"),
])
@pytest.mark.parametrize("option", ["instance_url", "token_url"])
def test_bad_urls_fail_cleanly_without_echoing_a_password(sim, env, url, expected, option):
    args = conn(sim, "orga", **{option: url})
    result = op("usage", args)
    assert result["failed"] and no_traceback(result), result
    assert expected in result["msg"] and option in result["msg"]
    # (the task's own arguments are echoed under invocation, as Ansible does for every option that is not no_log)
    assert PASSWORD not in repr({k: v for k, v in result.items() if k != "invocation"})
    assert sim.requests() == []


def test_bad_urls_from_the_environment_fail_cleanly(sim, env):
    env(instance_url="admin:%s@127.0.0.1:443" % PASSWORD, client_id="x", client_secret="y")
    result = op("usage", {})
    assert result["failed"] and no_traceback(result)
    assert PASSWORD not in repr({k: v for k, v in result.items() if k != "invocation"})
    env(instance_url="https://[::1")
    result = op("usage", {})
    assert result["failed"] and no_traceback(result) and "is not a valid URL" in result["msg"]


@pytest.mark.parametrize("endpoint", ["usage", "token"])
def test_deeply_nested_json_is_not_a_traceback(sim, env, endpoint):
    sim.add_fault("orga", "deep_json", endpoint=endpoint, times=None, depth=200000)
    result = op("usage", conn(sim, "orga"))
    assert result["failed"] and no_traceback(result), result
    assert "RecursionError" not in repr(result)
    assert "not valid JSON" in result["msg"] or "no access_token" in result["msg"]


# -- refresh-token rotation ------------------------------------------------------------------------------------------

def test_a_rotated_refresh_token_is_returned(sim, env):
    sim.set_variants("orga", refresh_token_rotation="on")
    admin = sim.orgs["orga"].admin
    first = sim.issue_refresh_token("orga")
    args = {"instance_url": sim.orgs["orga"].instance_url, "ca_path": sim.ca_path, "client_id": admin["client_id"],
            "refresh_token": first}
    result = op("token", args)
    second = result["refresh_token"]
    assert second and second != first and second in sim.secrets()
    # the one given is dead now; the one returned works, in any module
    assert op("token", args)["failed"]
    result = op("usage", dict(args, refresh_token=second))
    assert result.get("failed") is not True and result["refresh_token"] not in (first, second)
    # without rotation nothing is returned
    sim.set_variants("orga", refresh_token_rotation="off")
    assert "refresh_token" not in op("token", dict(args, refresh_token=result["refresh_token"]))


# -- the same through playbooks/rotate.yml ---------------------------------------------------------------------------

FLEET_SEED = {"orgs": [
    api_fleet.org("fa"), api_fleet.org("fb"), api_fleet.org("bomb"), api_fleet.org("deep"),
    api_fleet.org("ipv6"), api_fleet.org("userinfo"),
]}


@pytest.fixture
def fleet(sim_factory, tmp_path):
    sim = sim_factory(FLEET_SEED)
    runner = e2e.Ansible(tmp_path, COLLS.split(os.pathsep)[0])
    return api_fleet.Fleet(sim, tmp_path, runner)


def test_fleet_environment_bomb_and_bad_input(fleet):
    """One run: the environment names org fa (SALESFORCE_TOKEN_URL at fa's host, fa's admin pair); fb rotates with
    its own connection and none of its secrets reaches fa; a gzip bomb, deeply nested JSON, and two bad URLs each
    fail their own org only, cleanly."""
    sim = fleet.sim
    fa = sim.orgs["fa"]
    for name in ("fa", "fb", "bomb", "deep"):
        fleet.add(e2e, name, [fleet.entry("Billing_Sync")])
    fleet.hosts["fa"]["sfdc_eca_connection"] = {"ca_path": sim.ca_path, "retry_backoff": 0.01, "retry_max_delay": 1}
    bad = {"ipv6": "https://[::1", "userinfo": "admin:%s@127.0.0.1:%d" % (PASSWORD, sim.orgs["userinfo"].port)}
    for name, url in bad.items():
        fleet.add(e2e, name, [fleet.entry("Billing_Sync")])
        fleet.hosts[name]["sfdc_eca_connection"]["instance_url"] = url
    sim.add_fault("bomb", "gzip_bomb", endpoint="usage", times=None, size_mb=40)
    sim.add_fault("deep", "deep_json", endpoint="credentials", times=None, depth=200000)
    before = api_fleet.state(sim)
    env = {"SALESFORCE_INSTANCE_URL": fa.instance_url, "SALESFORCE_TOKEN_URL": token_url(sim, "fa"),
           "SALESFORCE_CLIENT_ID": fa.admin["client_id"], "SALESFORCE_CLIENT_SECRET": fa.admin["client_secret"]}
    proc = fleet.run(e2e, env=env, extra_vars={"sfdc_eca_canary_size": 6})
    assert proc.report is not None, e2e.tail(proc)
    after = api_fleet.state(sim)
    api_fleet.assert_whole(fleet, before, after)
    api_fleet.assert_rotated(fleet, proc.report, before, after, "fa")
    api_fleet.assert_rotated(fleet, proc.report, before, after, "fb")
    assert sim.misdirected() == []
    api_fleet.assert_untouched(proc.report, before, after, "bomb", text="max_response_mb")
    api_fleet.assert_untouched(proc.report, before, after, "deep", text="not valid JSON")
    api_fleet.assert_untouched(proc.report, before, after, "ipv6", text="not a valid URL")
    api_fleet.assert_untouched(proc.report, before, after, "userinfo", text="must not carry user information")
    text = fleet.texts(proc)
    assert PASSWORD not in text
    assert "Traceback" not in text and "RecursionError" not in text
    assert e2e.leaks(text, sim) == []


def test_fleet_pair_under_test_with_awx_style_environment(fleet):
    """AWX injects one org's connection as SALESFORCE_* (here a JWT admin with its key inline and an empty
    SALESFORCE_PRIVATE_KEY_FILE): the org without a connection of its own rotates with it, its new pair is verified
    with client credentials, and the other org (own connection) rotates too."""
    sim = fleet.sim
    fa, fb = sim.orgs["fa"], sim.orgs["fb"]
    private_pem, public_pem = _key_pair()
    sim.register_certificate("fa", "Sim_Admin", "Sim_Admin", public_pem)
    sim._remember(private_pem, "fa")   # scanned for like every secret the simulator knows
    fleet.add(e2e, "fa", [fleet.entry("Billing_Sync")],
              connection={"ca_path": sim.ca_path, "retry_backoff": 0.01, "retry_max_delay": 1})
    fleet.add(e2e, "fb", [fleet.entry("Billing_Sync")])
    before = {k: v for k, v in api_fleet.state(sim).items() if k[0] in ("fa", "fb")}
    env = {"SALESFORCE_INSTANCE_URL": fa.instance_url, "SALESFORCE_CLIENT_ID": fa.admin["client_id"],
           "SALESFORCE_USERNAME": api_fleet.ADMIN, "SALESFORCE_PRIVATE_KEY": private_pem,
           "SALESFORCE_PRIVATE_KEY_FILE": "", "SALESFORCE_CLIENT_SECRET": "", "SALESFORCE_ACCESS_TOKEN": "",
           "SALESFORCE_REFRESH_TOKEN": "", "SALESFORCE_TOKEN_URL": "", "SALESFORCE_AUDIENCE": ""}
    proc = fleet.run(e2e, env=env, extra_vars={"sfdc_eca_canary_size": 2})
    assert proc.report is not None, e2e.tail(proc)
    after = {k: v for k, v in api_fleet.state(sim).items() if k[0] in ("fa", "fb")}
    api_fleet.assert_rotated(fleet, proc.report, before, after, "fa")
    api_fleet.assert_rotated(fleet, proc.report, before, after, "fb")
    assert proc.returncode == 0, e2e.tail(proc)
    assert sim.misdirected() == []
    assert fb.admin["client_id"] not in repr(sim.requests("fa"))
    assert e2e.leaks(fleet.texts(proc), sim) == []


def _key_pair():
    """An RSA key pair as PEM (private, public) for fa's admin ECA (JWT bearer)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public
