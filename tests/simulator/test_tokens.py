"""POST /services/oauth2/token: client_credentials, JWT bearer and refresh_token, accepting and refusing."""

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from eca_simulator import testing as st

JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for dummy in range(2)]


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(key, claims, alg="RS256"):
    head = _b64(json.dumps({"alg": alg}).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256())
    return head + "." + _b64(sig)


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def post_token(sim, http, org, **data):
    return http.post(sim.orgs[org].instance_url + "/services/oauth2/token", data=data, timeout=10)


def cc(sim, http, org, key, secret):
    return post_token(sim, http, org, grant_type="client_credentials", client_id=key, client_secret=secret)


def assert_refused(r, error, description=None):
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error
    if description:
        assert body["error_description"] == description


def test_client_credentials_response_shape(sim, sim_http):
    org = sim.orgs["org01"]
    r = cc(sim, sim_http, "org01", org.admin["client_id"], org.admin["client_secret"])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"}
    assert body["token_type"] == "Bearer" and body["instance_url"] == org.instance_url
    assert body["access_token"].startswith(org.org_id[:15] + "!")
    assert body["id"].startswith(org.instance_url + "/id/" + org.org_id + "/005")
    assert abs(int(body["issued_at"]) / 1000 - sim.clock.time()) < 60
    assert body["access_token"] in sim.secrets()
    # HTTP Basic client authentication works too.
    r = sim_http.post(org.instance_url + "/services/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(org.admin["client_id"], org.admin["client_secret"]))
    assert r.status_code == 200


def test_client_credentials_every_kind_of_pair(sim, sim_http):
    rest = st.RestClient(sim, "org01")
    cons = sim.org("org01").app("Billing_Sync").consumer()
    m0 = cons.main
    assert cc(sim, sim_http, "org01", m0["key"], m0["secret"]).status_code == 200
    s1 = rest.post(rest.consumer_path("Billing_Sync") + "/staged").json()["stagedCredentials"][0]
    assert cc(sim, sim_http, "org01", s1["key"], s1["secret"]).status_code == 200        # Active staged
    assert cc(sim, sim_http, "org01", m0["key"], m0["secret"]).status_code == 200        # main
    assert_refused(cc(sim, sim_http, "org01", s1["key"], m0["secret"]), "invalid_client")  # mixed pair
    rest.patch(s1["url"], json={"command": "rotate"})
    assert cc(sim, sim_http, "org01", m0["key"], m0["secret"]).status_code == 200        # Rotated in grace
    assert cc(sim, sim_http, "org01", s1["key"], s1["secret"]).status_code == 200        # new main
    rest.delete(s1["url"])
    assert_refused(cc(sim, sim_http, "org01", m0["key"], m0["secret"]),                 # revoked
                   "invalid_client", "invalid client credentials")
    # An Expired staged pair does not authenticate.
    s2 = rest.post(rest.consumer_path("Billing_Sync") + "/staged").json()["stagedCredentials"][0]
    sim.clock.advance(days=31)
    assert_refused(cc(sim, sim_http, "org01", s2["key"], s2["secret"]), "invalid_client")
    assert cc(sim, sim_http, "org01", s1["key"], s1["secret"]).status_code == 200
    # Wrong secret, unknown key, key of another org, missing values.
    assert_refused(cc(sim, sim_http, "org01", s1["key"], "0" * 64), "invalid_client")
    assert_refused(cc(sim, sim_http, "org01", "3MVG9unknown", s1["secret"]), "invalid_client")
    other = sim.orgs["org02"].admin
    assert_refused(cc(sim, sim_http, "org01", other["client_id"], other["client_secret"]), "invalid_client")
    assert_refused(post_token(sim, sim_http, "org01", grant_type="client_credentials"), "invalid_client")
    assert "0" * 64 in sim.secrets()  # secrets presented to the endpoint are tracked for leak scans


def test_unsupported_grant_and_method(sim, sim_http):
    assert_refused(post_token(sim, sim_http, "org01", grant_type="password", username="x", password="y"),
                   "unsupported_grant_type", "grant type not supported")
    assert_refused(post_token(sim, sim_http, "org01"), "unsupported_grant_type")
    r = sim_http.get(sim.orgs["org01"].instance_url + "/services/oauth2/token")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


SEED_FLOWS = {"orgs": [{"name": "f", "users": [{"username": "int@f.example.com"},
                                               {"username": "off@f.example.com", "active": False}],
                        "apps": [{"developer_name": "NoCC", "consumers": [{"name": "N", "flows": ["jwt_bearer"]}]},
                                 {"developer_name": "Int", "consumers": [{"name": "I", "run_as": "int@f.example.com"}]},
                                 {"developer_name": "Off", "consumers": [{"name": "O", "run_as": "off@f.example.com"}]}]}]}


@pytest.mark.sim(seed=SEED_FLOWS)
def test_client_credentials_flow_and_run_as_user(sim, sim_http):
    o = sim.org("f")
    n = o.app("NoCC").consumer().main
    assert_refused(cc(sim, sim_http, "f", n["key"], n["secret"]), "invalid_grant", "no client credentials user enabled")
    assert not sim.authenticates("f", n["key"], n["secret"])
    off = o.app("Off").consumer().main
    assert_refused(cc(sim, sim_http, "f", off["key"], off["secret"]), "invalid_grant")
    i = o.app("Int").consumer().main
    body = cc(sim, sim_http, "f", i["key"], i["secret"]).json()
    user_id = [u["id"] for u in o.state()["users"] if u["username"] == "int@f.example.com"][0]
    assert body["id"].endswith("/" + user_id)


def test_access_tokens_expire_on_the_sim_clock(sim, sim_http):
    tok = st.token(sim, "org01")
    url = sim.orgs["org01"].instance_url + "/services/data/v65.0/apps/oauth/usage"
    h = {"Authorization": "Bearer " + tok}
    sim.clock.advance(hours=1, minutes=59)
    assert sim_http.get(url, headers=h).status_code == 200
    sim.clock.advance(minutes=1, seconds=1)
    r = sim_http.get(url, headers=h)
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    sim.configure_org("org01", token_lifetime=60)
    h = {"Authorization": "Bearer " + st.token(sim, "org01")}
    assert sim_http.get(url, headers=h).status_code == 200
    sim.clock.advance(seconds=61)
    assert sim_http.get(url, headers=h).status_code == 401


def test_revoking_a_pair_does_not_kill_its_tokens(sim, sim_http):
    rest = st.RestClient(sim, "org01")
    cons = sim.org("org01").app("Billing_Sync").consumer()
    m0 = cons.main
    s1 = rest.post(rest.consumer_path("Billing_Sync") + "/staged").json()["stagedCredentials"][0]
    tok = cc(sim, sim_http, "org01", s1["key"], s1["secret"]).json()["access_token"]
    rest.delete(s1["url"])
    r = sim_http.get(sim.orgs["org01"].instance_url + "/services/data/v65.0/apps/oauth/usage",
                     headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 200
    assert cons.main == m0


class TestJwtBearer:
    @pytest.fixture
    def setup(self, sim, rsa_keys):
        cons = sim.org("org01").app("Billing_Sync").consumer()
        cons.register_certificate(pub_pem(rsa_keys[0]))
        claims = {"iss": cons.main["key"], "sub": sim.orgs["org01"].admin["username"],
                  "aud": "https://login.salesforce.com", "exp": int(time.time()) + 120}
        return cons, claims

    def jwt(self, sim, http, assertion):
        return post_token(sim, http, "org01", grant_type=JWT, assertion=assertion)

    def test_good_assertion(self, sim, sim_http, rsa_keys, setup):
        cons, claims = setup
        r = self.jwt(sim, sim_http, make_jwt(rsa_keys[0], claims))
        assert r.status_code == 200, r.text
        assert "refresh_token" not in r.json() and r.json()["token_type"] == "Bearer"
        for aud in ("https://test.salesforce.com", sim.orgs["org01"].instance_url, ["x", "https://login.salesforce.com/"]):
            assert self.jwt(sim, sim_http, make_jwt(rsa_keys[0], dict(claims, aud=aud))).status_code == 200

    def test_certificate_pem_is_accepted(self, sim, sim_http, rsa_keys):
        import datetime
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        key = rsa_keys[1]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()))
        cons = sim.org("org01").app("Data_Loader").consumer("Primary")
        sim.register_certificate("org01", "Data_Loader", "Primary", cert.public_bytes(serialization.Encoding.PEM))
        claims = {"iss": cons.main["key"], "sub": sim.orgs["org01"].admin["username"],
                  "aud": "https://login.salesforce.com", "exp": int(time.time()) + 60}
        assert self.jwt(sim, sim_http, make_jwt(key, claims)).status_code == 200

    def test_refusals(self, sim, sim_http, rsa_keys, setup):
        cons, claims = setup
        bad = [
            (make_jwt(rsa_keys[1], claims), "invalid_grant", "signature"),                 # wrong key
            (make_jwt(rsa_keys[0], dict(claims, iss="3MVG9nobody")), "invalid_client", None),
            (make_jwt(rsa_keys[0], dict(claims, sub="nobody@x.example.com")), "invalid_grant",
             "user hasn't approved this consumer"),
            (make_jwt(rsa_keys[0], dict(claims, aud="https://evil.example.com")), "invalid_grant", "audience is invalid"),
            (make_jwt(rsa_keys[0], dict(claims, exp=int(time.time()) - 5)), "invalid_grant",
             "expired authorization code"),
            (make_jwt(rsa_keys[0], dict(claims, exp=int(time.time()) + 3600)), "invalid_grant", None),
            (make_jwt(rsa_keys[0], {k: v for k, v in claims.items() if k != "exp"}), "invalid_grant", None),
            (make_jwt(rsa_keys[0], claims, alg="HS256"), "invalid_grant", None),
            ("not.a.jwt", "invalid_grant", "invalid assertion"),
            ("", "invalid_grant", None),
        ]
        for assertion, error, desc in bad:
            r = self.jwt(sim, sim_http, assertion)
            assert r.status_code == 400, (assertion[:20], r.text)
            assert r.json()["error"] == error, r.json()
            if desc:
                assert desc in r.json()["error_description"]
        # Tampered claims under a valid signature.
        head, dummy, sig = make_jwt(rsa_keys[0], claims).split(".")
        forged = head + "." + _b64(json.dumps(dict(claims, sub="x")).encode()) + "." + sig
        assert self.jwt(sim, sim_http, forged).json()["error"] == "invalid_grant"

    def test_consumer_without_certificate_or_non_rsa(self, sim, sim_http, rsa_keys):
        cons = sim.org("org01").app("Data_Loader").consumer("Secondary")
        claims = {"iss": cons.main["key"], "sub": sim.orgs["org01"].admin["username"],
                  "aud": "https://login.salesforce.com", "exp": int(time.time()) + 60}
        assert self.jwt(sim, sim_http, make_jwt(rsa_keys[0], claims)).json()["error"] == "invalid_grant"
        ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        cons.register_certificate(ec_pub)
        assert self.jwt(sim, sim_http, make_jwt(rsa_keys[0], claims)).json()["error"] == "invalid_grant"
        with pytest.raises(ValueError):
            cons.register_certificate("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")

    def test_rotation_changes_iss(self, sim, sim_http, rsa_keys, setup):
        cons, claims = setup
        rest = st.RestClient(sim, "org01")
        s1 = rest.post(rest.consumer_path("Billing_Sync") + "/staged").json()["stagedCredentials"][0]
        rest.patch(s1["url"], json={"command": "rotate"})
        new = dict(claims, iss=s1["key"])
        assert self.jwt(sim, sim_http, make_jwt(rsa_keys[0], new)).status_code == 200
        assert self.jwt(sim, sim_http, make_jwt(rsa_keys[0], claims)).status_code == 200  # old key in grace
        rest.delete(s1["url"])
        assert self.jwt(sim, sim_http, make_jwt(rsa_keys[0], claims)).json()["error"] == "invalid_client"


@pytest.mark.sim(seed={"orgs": [{"name": "j", "admin": {"jwt": "generate"}}]})
def test_generated_jwt_keypair_for_demo(sim, sim_http):
    admin = sim.org("j").admin_app.consumer()
    pem = admin.private_key_pem
    assert pem.startswith("-----BEGIN PRIVATE KEY-----") and pem in sim.secrets()
    key = serialization.load_pem_private_key(pem.encode(), None)
    claims = {"iss": admin.main["key"], "sub": sim.orgs["j"].admin["username"],
              "aud": "https://login.salesforce.com", "exp": int(time.time()) + 60}
    assert post_token(sim, sim_http, "j", grant_type=JWT, assertion=make_jwt(key, claims)).status_code == 200


class TestRefreshToken:
    def test_refresh_accepts_and_refuses(self, sim, sim_http):
        org = sim.orgs["org01"]
        cons = sim.org("org01").app("Billing_Sync").consumer()
        rt = sim.issue_refresh_token("org01", cons.main["key"])
        assert rt in sim.secrets()
        ok = dict(grant_type="refresh_token", refresh_token=rt, client_id=cons.main["key"])
        r = post_token(sim, sim_http, "org01", **ok)
        assert r.status_code == 200 and "refresh_token" not in r.json()
        assert post_token(sim, sim_http, "org01", **ok, client_secret=cons.main["secret"]).status_code == 200
        assert_refused(post_token(sim, sim_http, "org01", **ok, client_secret="F" * 64), "invalid_client")
        assert_refused(post_token(sim, sim_http, "org01", **{**ok, "refresh_token": "5Aep861nope"}), "invalid_grant",
                       "expired access/refresh token")
        assert_refused(post_token(sim, sim_http, "org01", **{**ok, "client_id": org.admin["client_id"]}),
                       "invalid_client")
        assert_refused(post_token(sim, sim_http, "org01", **{**ok, "client_id": ""}), "invalid_client")
        # Still works with the new key after a rotation; the old key only during grace.
        rest = st.RestClient(sim, "org01")
        s1 = rest.post(rest.consumer_path("Billing_Sync") + "/staged").json()["stagedCredentials"][0]
        rest.patch(s1["url"], json={"command": "rotate"})
        assert post_token(sim, sim_http, "org01", **{**ok, "client_id": s1["key"]}).status_code == 200
        assert post_token(sim, sim_http, "org01", **ok).status_code == 200
        rest.delete(s1["url"])
        assert_refused(post_token(sim, sim_http, "org01", **ok), "invalid_client")
        sim.revoke_tokens("org01")
        assert_refused(post_token(sim, sim_http, "org01", **{**ok, "client_id": s1["key"]}), "invalid_grant")

    @pytest.mark.sim(variants={"refresh_token_rotation": "on"})
    def test_refresh_token_rotation(self, sim, sim_http):
        cons = sim.org("org01").app("Billing_Sync").consumer()
        rt = sim.issue_refresh_token("org01", cons.main["key"])
        body = post_token(sim, sim_http, "org01", grant_type="refresh_token", refresh_token=rt,
                          client_id=cons.main["key"]).json()
        assert body["refresh_token"] != rt and body["refresh_token"] in sim.secrets()
        assert_refused(post_token(sim, sim_http, "org01", grant_type="refresh_token", refresh_token=rt,
                                  client_id=cons.main["key"]), "invalid_grant")
        assert post_token(sim, sim_http, "org01", grant_type="refresh_token", refresh_token=body["refresh_token"],
                          client_id=cons.main["key"]).status_code == 200


class TestLoginHost:
    """sim.login_url plays login.salesforce.com: JWT and refresh_token find their org; client_credentials is refused."""

    def test_jwt_and_refresh_resolve_the_org(self, sim, sim_http, rsa_keys):
        cons = sim.org("org02").app("Billing_Sync").consumer()
        cons.register_certificate(pub_pem(rsa_keys[0]))
        claims = {"iss": cons.main["key"], "sub": sim.orgs["org02"].admin["username"],
                  "aud": "https://login.salesforce.com", "exp": int(time.time()) + 60}
        url = sim.login_url + "/services/oauth2/token"
        assert url.startswith("https://127.0.0.1:") and sim.state()["login_url"] == sim.login_url
        r = sim_http.post(url, data={"grant_type": JWT, "assertion": make_jwt(rsa_keys[0], claims)})
        assert r.status_code == 200 and r.json()["instance_url"] == sim.orgs["org02"].instance_url
        tok = r.json()["access_token"]
        rest = st.RestClient(sim, "org02", access_token=tok)
        assert rest.get("/apps/oauth/usage").status_code == 200
        rt = sim.issue_refresh_token("org01")
        r = sim_http.post(url, data={"grant_type": "refresh_token", "refresh_token": rt,
                                     "client_id": sim.orgs["org01"].admin["client_id"]})
        assert r.status_code == 200 and r.json()["instance_url"] == sim.orgs["org01"].instance_url
        assert [e["org"] for e in sim.requests() if e["endpoint"] == "token"][-2:] == ["org02", "org01"]
        assert_refused(sim_http.post(url, data={"grant_type": JWT, "assertion": make_jwt(
            rsa_keys[0], dict(claims, iss="3MVG9x"))}), "invalid_client")
        assert_refused(sim_http.post(url, data={"grant_type": "refresh_token", "refresh_token": "x",
                                                "client_id": "y"}), "invalid_grant")

    def test_client_credentials_not_supported_on_login(self, sim, sim_http):
        admin = sim.orgs["org01"].admin
        r = sim_http.post(sim.login_url + "/services/oauth2/token",
                          data={"grant_type": "client_credentials", "client_id": admin["client_id"],
                                "client_secret": admin["client_secret"]})
        assert_refused(r, "invalid_grant", "request not supported on this domain")
        assert sim_http.get(sim.login_url + "/services/data/v65.0/apps/oauth/usage").status_code == 404
        sim.add_fault("_login", "unavailable", endpoint="token")
        r = sim_http.post(sim.login_url + "/services/oauth2/token", data={"grant_type": "client_credentials"})
        assert r.status_code == 503
