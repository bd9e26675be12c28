"""The hostile-input table: bad options and bad API answers, each expecting a clear error and no write.

Shared by test_hostile_input.py (in-process operations layer and the modules run by ansible-playbook).
A row is static once the `HostileWorld` is up: seeded org states and corrupting proxies, no per-row set-up,
so that the whole table can also run as one playbook.
"""

import datetime
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from safety_helpers import LoopServer, Reply, make_tls, pem_fragments, proxy_to

from eca_simulator import Simulator

API = "/services/data/v65.0"

SEED = {
    "orgs": [
        {"name": "org01", "apps": [
            {"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]},
            {"developer_name": "Multi_App", "consumers": [{"name": "East"}, {"name": "West"}]},
            {"developer_name": "Twin_App", "consumers": [{"name": "Same"}, {"name": "Same"}]},
            {"developer_name": "Rotated_App", "consumers": [{"name": "R", "staged": {"state": "Rotated"}}]},
            {"developer_name": "Expired_App", "consumers": [{"name": "X", "staged": {"state": "Expired"}}]},
        ]},
        # Every call refused: the daily API limit is spent.
        {"name": "spent", "api_limit": 100, "api_usage": 100, "apps": [
            {"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]},
        # 'Allow access to ECA consumer secrets via REST API' is off.
        {"name": "locked", "rest_secret_access": False, "apps": [
            {"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]},
    ]
}


# -- key material, generated at test time --------------------------------------------------------------

def _pem(key, fmt=serialization.PrivateFormat.PKCS8, enc=None):
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc or serialization.NoEncryption()).decode()


def make_keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(rsa_key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(rsa_key, hashes.SHA256()))
    passphrase = "correct horse battery staple 42"
    keys = {
        "rsa": _pem(rsa_key),
        "ec": _pem(ec_key),
        "ed25519": _pem(ed_key),
        "encrypted": _pem(rsa_key, enc=serialization.BestAvailableEncryption(passphrase.encode())),
        "encrypted_legacy": _pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.BestAvailableEncryption(passphrase.encode())),
        "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "public": rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "passphrase": passphrase,
    }
    rsa_lines = keys["rsa"].splitlines()
    keys["truncated"] = "\n".join(rsa_lines[:6] + rsa_lines[-1:]) + "\n"
    keys["garbage"] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbCwganVzdCBnYXJiYWdlIQ==\n-----END PRIVATE KEY-----\n"
    return keys


# -- the world the table runs against ------------------------------------------------------------------

class HostileWorld:
    """The simulator plus corrupting proxies (one per kind of bad answer) on loopback, all TLS."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.sim = Simulator(SEED)
        self.sim.start()
        self.keys = make_keys()
        self.servers = []
        self.tls = make_tls(self.tmp / "proxy-tls")
        self.proxy_ca = self.tls[0]
        self.admin = self.sim.orgs["org01"].admin
        (self.tmp / "keys").mkdir(exist_ok=True)
        self.key_files = {}
        for name in ("rsa", "ec", "encrypted", "certificate"):
            p = self.tmp / "keys" / ("%s.pem" % name)
            p.write_text(self.keys[name])
            p.chmod(0o600)
            self.key_files[name] = str(p)
        unreadable = self.tmp / "keys" / "unreadable.pem"
        unreadable.write_text(self.keys["rsa"])
        unreadable.chmod(0o000)
        self.key_files["unreadable"] = str(unreadable)
        self.proxies = {name: self._proxy(mutate) for name, mutate in MUTATIONS.items()}
        self.proxies["echo_token_secret"] = self._serve(_echo_token_secret)
        self.proxies["echo_rest_token"] = self._proxy(_echo_rest_token)

    def _serve(self, handler):
        s = LoopServer(handler, tls=self.tls)
        self.servers.append(s)
        return s.url

    def _proxy(self, mutate):
        return self._serve(proxy_to(self.sim, "org01", mutate))

    def stop(self):
        for s in self.servers:
            s.stop()
        self.sim.stop()
        Path(self.key_files["unreadable"]).chmod(0o600)

    def url(self, org="org01"):
        return self.sim.orgs[org].instance_url

    def base_params(self, org="org01"):
        admin = self.sim.orgs[org].admin
        return {"instance_url": self.url(org), "ca_path": self.sim.ca_path, "client_id": admin["client_id"],
                "client_secret": admin["client_secret"], "max_retries": 1, "retry_backoff": 0.01, "retry_max_delay": 0.05,
                "timeout": 10}

    def via(self, proxy):
        return {"instance_url": self.proxies[proxy], "ca_path": self.proxy_ca}

    def key_secrets(self):
        out = set()
        for name in ("rsa", "ec", "ed25519", "encrypted", "encrypted_legacy", "truncated"):
            out |= pem_fragments(self.keys[name])
        out.add(self.keys["passphrase"])
        return out

    def secrets(self):
        return self.sim.secrets() | self.key_secrets()


# -- corrupting proxies --------------------------------------------------------------------------------

def _is(req, endpoint):
    path = req["path"].split("?", 1)[0]
    if endpoint == "usage":
        return path.endswith("/apps/oauth/usage")
    if endpoint == "token":
        return path.endswith("/oauth2/token")
    parts = path.split("/apps/oauth/credentials/")
    if len(parts) != 2:
        return False
    depth = parts[1].strip("/").split("/")
    return {"credentials": 1, "consumer": 2, "staged": 3, "staged_item": 4}[endpoint] == len(depth) and (
        endpoint not in ("staged", "staged_item") or depth[2] == "staged")


def _body(reply):
    return json.loads(reply.body.decode())


def _on(endpoint, method, change):
    def mutate(req, reply):
        if req["method"] == method and _is(req, endpoint) and reply.status < 300:
            return change(req, reply)
        return reply
    return mutate


def _json(reply, body, status=None):
    return Reply(status or reply.status, json.dumps(body).encode(), {"Content-Type": "application/json"})


ENDLESS_CAP = 150


def _endless(req, reply):
    """Distinct page URLs that serve the same ten apps over and over; the chain ends only after ENDLESS_CAP pages
    (so that the test stays quick), which no client that notices the repetition should ever reach."""
    page = int((req["path"].split("page=", 1) + ["0"])[1].split("&")[0] or 0)
    return _json(reply, {"apps": [{"identifier": "0xI00000000000%dAAA" % (page % 10), "developerName": "Other_%d" % (page % 10)}],
                         "nextPageUrl": API + "/apps/oauth/usage?page=%d" % (page + 1) if page < ENDLESS_CAP else None})


def _huge(req, reply):
    apps = [{"identifier": "0xI0000000%05dAAA" % i, "developerName": "Noise_%06d" % i, "label": "x" * 40}
            for i in range(60000)]
    return _json(reply, {"apps": apps, "nextPageUrl": None})


def _set_staged(change):
    def f(req, reply):
        body = _body(reply)
        for item in body.get("stagedCredentials") or []:
            change(item)
        return _json(reply, body)
    return f


def _staged_present(req, reply):
    body = _body(reply)
    if not body.get("stagedCredentials"):
        body["stagedCredentials"] = [{"id": "0Xs000000000001AAA", "key": "3MVGfake", "state": "Pending",
                                      "createdDate": "2026-01-01T00:00:00.000+0000"}]
    for item in body["stagedCredentials"]:
        item["state"] = "Pending"
    return _json(reply, body)


def _without(field, key):
    def f(req, reply):
        body = _body(reply)
        for item in body.get(key) or []:
            item.pop(field, None)
        return _json(reply, body)
    return f


MUTATIONS = {
    "usage_html": _on("usage", "GET", lambda q, r: Reply(200, b"<html><body>Maintenance</body></html>", {"Content-Type": "text/html"})),
    "usage_truncated": _on("usage", "GET", lambda q, r: Reply(200, r.body[: len(r.body) // 2], {"Content-Type": "application/json"})),
    "usage_list": _on("usage", "GET", lambda q, r: _json(r, [_body(r)])),
    "usage_string": _on("usage", "GET", lambda q, r: _json(r, "apps")),
    "usage_apps_not_list": _on("usage", "GET", lambda q, r: _json(r, {"apps": {"Billing_Sync": True}, "nextPageUrl": None})),
    "usage_huge": _on("usage", "GET", _huge),
    "usage_self_loop": _on("usage", "GET", lambda q, r: _json(
        r, {"apps": [{"identifier": "0xI000000000001AAA", "developerName": "Other"}], "nextPageUrl": q["path"]})),
    "usage_endless": _on("usage", "GET", _endless),
    "usage_no_identifier": _on("usage", "GET", _without("identifier", "apps")),
    "consumers_no_id": _on("credentials", "GET", _without("id", "consumers")),
    "consumers_not_dicts": _on("credentials", "GET", lambda q, r: _json(r, {"consumers": ["Billing", 7], "nextPageUrl": None})),
    "consumers_empty": _on("credentials", "GET", lambda q, r: _json(r, {"consumers": [], "nextPageUrl": None})),
    "consumers_truncated": _on("credentials", "GET", lambda q, r: Reply(200, r.body[:-7], {"Content-Type": "application/json"})),
    "staged_unknown_state": _on("staged", "GET", _staged_present),
    "staged_html": _on("staged", "GET", lambda q, r: Reply(200, b"<!DOCTYPE html><title>Login</title>", {"Content-Type": "text/html"})),
    "usage_redirect": _on("usage", "GET", lambda q, r: Reply(302, b"", {"Location": "https://127.0.0.1:9/login"})),
    "token_html": _on("token", "POST", lambda q, r: Reply(200, b"<html>Login</html>", {"Content-Type": "text/html"})),
    "token_no_access_token": _on("token", "POST", lambda q, r: _json(r, {"token_type": "Bearer", "instance_url": "x"})),
    "token_truncated": _on("token", "POST", lambda q, r: Reply(200, r.body[: len(r.body) // 3], {"Content-Type": "application/json"})),
}


def _echo_token_secret(req):
    """A hostile token endpoint that reflects the posted form (secret included) in its error text."""
    return Reply(400, json.dumps({"error": "invalid_client",
                                  "error_description": "rejected: " + req["body"].decode()}).encode())


def _echo_rest_token(req, reply):
    """A REST error whose message reflects the Authorization header (the access token)."""
    if _is(req, "usage"):
        return Reply(400, json.dumps([{"errorCode": "MALFORMED_QUERY",
                                       "message": "bad header " + req["headers"].get("Authorization", "")}]).encode(),
                     {"Content-Type": "application/json"})
    return reply


# -- the table -------------------------------------------------------------------------------------------

class Row:
    def __init__(self, rid, params, expect, fragments, op="present", finding=None, forbid=()):
        self.id = rid
        self.params = params            # world -> dict of module options (on top of world.base_params())
        self.expect = expect            # name of the EcaError subclass expected (or a parent of it)
        self.fragments = fragments      # world -> list of strings the message must contain
        self.op = op
        self.finding = finding          # "F<n>: ..." when the row shows a known bug (xfail strict)
        self.forbid = forbid            # world -> strings that must not appear (besides the secrets)

    def __repr__(self):
        return self.id


def _frag(*items):
    return lambda w: list(items)


OPS = {
    "present": ("eca_staged_credential", {"app_name": "Billing_Sync", "state": "present"}),
    "rotated": ("eca_staged_credential", {"app_name": "Billing_Sync", "state": "rotated"}),
    "absent": ("eca_staged_credential", {"app_name": "Billing_Sync", "state": "absent"}),
    "info": ("eca_credential_info", {"app_name": "Billing_Sync"}),
    "usage": ("eca_usage_info", {}),
    "token": ("eca_token", {}),
}


def _port(w):
    return w.url().rsplit(":", 1)[1]


def _jwt(key_name, **extra):
    def params(w):
        p = {"client_id": w.admin["client_id"], "username": w.admin["username"], "client_secret": None,
             "private_key": w.keys[key_name]}
        p.update({k: (v(w) if callable(v) else v) for k, v in extra.items()})
        return p
    return params


def _jwt_file(file_name, **extra):
    def params(w):
        p = {"client_id": w.admin["client_id"], "username": w.admin["username"], "client_secret": None,
             "private_key_file": w.key_files.get(file_name, file_name)}
        p.update(extra)
        return p
    return params


ROWS = [
    # instance_url
    Row("url_no_scheme", lambda w: {"instance_url": "127.0.0.1:%s" % _port(w)}, "EcaInputError",
        lambda w: ["instance_url", "127.0.0.1:%s" % _port(w), "https"]),
    Row("url_hostname_only", lambda w: {"instance_url": "mycompany.my.salesforce.com"}, "EcaInputError",
        _frag("instance_url", "mycompany.my.salesforce.com")),
    Row("url_relative", lambda w: {"instance_url": "/services/data/v65.0"}, "EcaInputError", _frag("instance_url", "/services/data/v65.0")),
    Row("url_empty", lambda w: {"instance_url": "   "}, "EcaInputError", _frag("instance_url")),
    Row("url_http", lambda w: {"instance_url": w.url().replace("https://", "http://")}, "EcaInputError",
        lambda w: ["instance_url", w.url().replace("https://", "http://"), "allow_http"]),
    Row("url_ftp", lambda w: {"instance_url": "ftp://127.0.0.1:%s" % _port(w)}, "EcaInputError",
        lambda w: ["instance_url", "ftp://127.0.0.1:%s" % _port(w)]),
    Row("url_javascript", lambda w: {"instance_url": "javascript:alert(1)"}, "EcaInputError", _frag("instance_url", "javascript", "alert(1)")),
    Row("url_no_host", lambda w: {"instance_url": "https://"}, "EcaInputError", _frag("instance_url", "host")),
    Row("url_with_path", lambda w: {"instance_url": w.url() + "/services/data/v65.0"}, "EcaInputError",
        _frag("instance_url", "/services/data/v65.0")),
    Row("url_with_query", lambda w: {"instance_url": w.url() + "/?org=prod"}, "EcaInputError", _frag("instance_url", "query")),
    Row("url_with_fragment", lambda w: {"instance_url": w.url() + "#top"}, "EcaInputError", _frag("instance_url", "fragment")),
    Row("url_bad_port", lambda w: {"instance_url": "https://127.0.0.1:99999"}, "EcaInputError", _frag("instance_url", "99999", "port")),
    Row("url_port_not_number", lambda w: {"instance_url": "https://127.0.0.1:https"}, "EcaInputError", _frag("instance_url", "port")),
    Row("url_crlf_injection", lambda w: {"instance_url": w.url() + "\r\nX-Injected: 1"}, "EcaInputError", _frag("instance_url")),
    Row("url_userinfo_https", lambda w: {"instance_url": w.url().replace("https://", "https://admin:%s@" % w.admin["client_secret"])},
        "EcaInputError", _frag("instance_url", "user information")),
    Row("url_userinfo_http", lambda w: {"instance_url": w.url().replace("https://", "http://admin:%s@" % w.admin["client_secret"])},
        "EcaInputError", _frag("instance_url")),
    Row("url_userinfo_bad_port", lambda w: {"instance_url": "https://admin:%s@127.0.0.1:99999" % w.admin["client_secret"]},
        "EcaInputError", _frag("instance_url")),
    Row("url_secret_in_query_http", lambda w: {"instance_url": w.url().replace("https://", "http://") + "/?access_token=%s" % w.admin["client_secret"]},
        "EcaInputError", _frag("instance_url")),
    Row("url_closed_port", lambda w: {"instance_url": "https://127.0.0.1:9", "max_retries": 0}, "EcaTransportError",
        _frag("127.0.0.1:9")),
    # token_url
    Row("token_url_http", lambda w: {"token_url": w.url().replace("https://", "http://") + "/services/oauth2/token"}, "EcaInputError",
        _frag("token_url", "http")),
    Row("token_url_relative", lambda w: {"token_url": "/services/oauth2/token"}, "EcaInputError", _frag("token_url", "/services/oauth2/token")),
    Row("token_url_wrong_path", lambda w: {"token_url": w.url() + "/services/oauth2/tokens"}, "EcaAuthError",
        _frag("/services/oauth2/tokens", "404")),
    Row("token_url_closed_port", lambda w: {"token_url": "https://127.0.0.1:9/services/oauth2/token", "max_retries": 0},
        "EcaTransportError", _frag("127.0.0.1:9")),
    Row("token_url_userinfo_http", lambda w: {"token_url": "http://u:%s@127.0.0.1:9/services/oauth2/token" % w.admin["client_secret"]},
        "EcaInputError", _frag("token_url")),
    # credentials
    Row("wrong_client_secret", lambda w: {"client_secret": "WrongSecret_" + "q" * 40}, "EcaAuthError", _frag("invalid_client", "client_credentials")),
    Row("unknown_client_id", lambda w: {"client_id": "3MVGnotAKeyAtAll"}, "EcaAuthError", _frag("client_credentials")),
    Row("no_credentials", lambda w: {"client_id": None, "client_secret": None}, "EcaInputError", _frag("client_id", "access_token")),
    Row("client_id_without_secret", lambda w: {"client_secret": None}, "EcaInputError", _frag("client_secret")),
    Row("expired_access_token", lambda w: {"access_token": "00Dxx0000001gPL!AQ4AQFakeTokenThatIsNotValid0123456789"}, "EcaApiError",
        _frag("401", "access_token")),
    Row("refresh_token_unknown", lambda w: {"refresh_token": "5Aep861NotARealRefreshToken0123456789abcdef"}, "EcaAuthError",
        _frag("refresh_token")),
    # private keys (JWT bearer)
    Row("key_garbage", _jwt("garbage"), "EcaInputError", _frag("private_key", "could not be parsed")),
    Row("key_not_pem", lambda w: dict(_jwt("rsa")(w), private_key="just some text, no key"), "EcaInputError",
        _frag("private_key", "not a PEM private key")),
    Row("key_truncated", _jwt("truncated"), "EcaInputError", _frag("private_key", "could not be parsed")),
    Row("key_ec", _jwt("ec"), "EcaInputError", _frag("private_key", "RSA")),
    Row("key_ed25519", _jwt("ed25519"), "EcaInputError", _frag("private_key", "RSA")),
    Row("key_certificate", _jwt("certificate"), "EcaInputError", _frag("private_key", "PRIVATE KEY")),
    Row("key_public", _jwt("public"), "EcaInputError", _frag("private_key", "PRIVATE KEY")),
    Row("key_encrypted_no_passphrase", _jwt("encrypted"), "EcaInputError", _frag("private_key", "encrypted", "private_key_passphrase")),
    Row("key_encrypted_wrong_passphrase", _jwt("encrypted", private_key_passphrase="not the passphrase"), "EcaInputError",
        _frag("private_key", "passphrase is wrong")),
    Row("key_legacy_encrypted_no_passphrase", _jwt("encrypted_legacy"), "EcaInputError",
        _frag("private_key", "encrypted", "private_key_passphrase")),
    Row("key_legacy_encrypted_wrong_passphrase", _jwt("encrypted_legacy", private_key_passphrase="nope nope"), "EcaInputError",
        _frag("private_key", "passphrase is wrong")),
    Row("key_jwt_without_username", lambda w: dict(_jwt("rsa")(w), username=None), "EcaInputError", _frag("username")),
    Row("key_unregistered_rsa", _jwt("rsa"), "EcaAuthError", _frag("jwt_bearer")),
    Row("key_file_missing", _jwt_file("/nonexistent/dir/key.pem"), "EcaInputError", _frag("private_key_file", "/nonexistent/dir/key.pem")),
    Row("key_file_directory", lambda w: _jwt_file(str(w.tmp / "keys"))(w), "EcaInputError", lambda w: ["private_key_file", str(w.tmp / "keys")]),
    Row("key_file_ec", _jwt_file("ec"), "EcaInputError", lambda w: [w.key_files["ec"], "RSA"]),
    Row("key_file_certificate", _jwt_file("certificate"), "EcaInputError", lambda w: [w.key_files["certificate"]]),
    Row("key_file_encrypted_no_passphrase", _jwt_file("encrypted"), "EcaInputError", lambda w: [w.key_files["encrypted"], "passphrase"]),
    # api_version and other options
    Row("api_version_word", lambda w: {"api_version": "latest"}, "EcaInputError", _frag("api_version", "latest", "65.0")),
    Row("api_version_traversal", lambda w: {"api_version": "65.0/../../x"}, "EcaInputError", _frag("api_version", "65.0/../../x")),
    Row("api_version_int", lambda w: {"api_version": "65"}, "EcaInputError", _frag("api_version", "65")),
    Row("api_version_too_old", lambda w: {"api_version": "50.0"}, "EcaInputError", _frag("50.0", "65.0")),
    Row("timeout_zero", lambda w: {"timeout": 0.0}, "EcaInputError", _frag("timeout"), op="usage"),
    Row("timeout_negative", lambda w: {"timeout": -5.0}, "EcaInputError", _frag("timeout", "-5")),
    Row("max_retries_negative", lambda w: {"max_retries": -1}, "EcaInputError", _frag("max_retries", "-1")),
    Row("ca_path_missing", lambda w: {"ca_path": "/nonexistent/ca.pem"}, "EcaInputError", _frag("ca_path", "/nonexistent/ca.pem")),
    Row("ca_path_untrusted", lambda w: {"ca_path": w.proxy_ca}, "EcaTransportError", _frag("TLS", "ca_path")),
    # app and consumer names and ids
    Row("app_unknown", lambda w: {"app_name": "No_Such_App"}, "EcaInputError", _frag("No_Such_App", "Billing_Sync")),
    Row("app_wrong_case", lambda w: {"app_name": "billing_sync"}, "EcaInputError", _frag("billing_sync", "did you mean", "Billing_Sync")),
    Row("app_name_path_traversal", lambda w: {"app_name": "../../x"}, "EcaInputError", _frag("app_name", "../../x")),
    Row("app_name_label_not_devname", lambda w: {"app_name": "Billing Sync"}, "EcaInputError", _frag("Billing Sync")),
    Row("app_id_short", lambda w: {"app_name": None, "app_id": "0xI123"}, "EcaInputError", _frag("app_id", "0xI123")),
    Row("app_id_wrong_prefix", lambda w: {"app_name": None, "app_id": "001000000000001AAA"}, "EcaInputError", _frag("app_id", "001000000000001AAA")),
    Row("app_id_injection", lambda w: {"app_name": None, "app_id": "0xI00000000001/../../x"}, "EcaInputError", _frag("app_id")),
    Row("app_id_unknown", lambda w: {"app_name": None, "app_id": "0xI000000000999AAA"}, "EcaNotFoundError", _frag("0xI000000000999AAA")),
    Row("consumer_unknown", lambda w: {"app_name": "Multi_App", "consumer_name": "North"}, "EcaInputError", _frag("North", "East", "West")),
    Row("consumer_ambiguous_name", lambda w: {"app_name": "Twin_App", "consumer_name": "Same"}, "EcaInputError", _frag("Same", "consumer_id")),
    Row("consumer_missing_choice", lambda w: {"app_name": "Multi_App"}, "EcaInputError", _frag("consumer_name", "East", "West")),
    Row("consumer_id_short", lambda w: {"consumer_id": "888abc"}, "EcaInputError", _frag("consumer_id", "888abc")),
    Row("consumer_id_injection", lambda w: {"consumer_id": "888000000000001/../x"}, "EcaInputError", _frag("consumer_id")),
    Row("consumer_id_unknown", lambda w: {"consumer_id": "888000000000999AAA"}, "EcaInputError", _frag("888000000000999AAA", "Billing")),
    Row("app_without_consumers", lambda w: w.via("consumers_empty"), "EcaStateError", _frag("Billing_Sync", "no OAuth consumer")),
    # unexpected states
    Row("rotate_nothing_staged", lambda w: {}, "EcaStateError", _frag("Nothing is staged", "state: present"), op="rotated"),
    Row("rotate_expired", lambda w: {"app_name": "Expired_App"}, "EcaStateError", _frag("expired", "state: present"), op="rotated"),
    Row("stage_over_rotated", lambda w: {"app_name": "Rotated_App"}, "EcaStateError", _frag("Rotated", "replace_rotated")),
    Row("staged_unknown_state", lambda w: w.via("staged_unknown_state"), "EcaStateError", _frag("Pending")),
    Row("staged_unknown_state_rotate", lambda w: w.via("staged_unknown_state"), "EcaStateError", _frag("Pending"), op="rotated"),
    # org conditions
    Row("limit_spent", lambda w: w.base_params("spent"), "EcaLimitExceededError", _frag("daily API request limit")),
    Row("rest_secret_access_off", lambda w: w.base_params("locked"), "EcaFeatureDisabledError",
        _frag("enableClientSecretInRestApiAccess")),
    # bad answers
    Row("usage_html", lambda w: w.via("usage_html"), "EcaApiError", _frag("/apps/oauth/usage", "not valid JSON")),
    Row("usage_truncated", lambda w: w.via("usage_truncated"), "EcaApiError", _frag("/apps/oauth/usage", "not valid JSON")),
    Row("usage_body_is_list", lambda w: w.via("usage_list"), "EcaApiError", _frag("/apps/oauth/usage")),
    Row("usage_body_is_string", lambda w: w.via("usage_string"), "EcaApiError", _frag("/apps/oauth/usage")),
    Row("usage_apps_not_list", lambda w: w.via("usage_apps_not_list"), "EcaApiError", _frag("/apps/oauth/usage")),
    Row("usage_huge", lambda w: w.via("usage_huge"), "EcaInputError", _frag("Billing_Sync", "more")),
    # paging ends where pages repeat (issue 14: an endpoint may ignore page), so the app is simply not there
    Row("usage_page_self_loop", lambda w: w.via("usage_self_loop"), "EcaInputError", _frag("Billing_Sync", "Other")),
    Row("usage_pages_endless", lambda w: dict(w.via("usage_endless"), app_name="Billing_Sync"), "EcaInputError",
        _frag("Billing_Sync", "Other_9")),
    Row("usage_no_identifier", lambda w: w.via("usage_no_identifier"), "EcaApiError", _frag("identifier")),
    Row("consumers_no_id", lambda w: w.via("consumers_no_id"), "EcaApiError", _frag("id")),
    Row("consumers_not_dicts", lambda w: w.via("consumers_not_dicts"), "EcaApiError", _frag("consumers")),
    Row("consumers_truncated", lambda w: w.via("consumers_truncated"), "EcaApiError", _frag("not valid JSON")),
    Row("staged_html", lambda w: w.via("staged_html"), "EcaApiError", _frag("/staged", "not valid JSON")),
    Row("usage_redirect", lambda w: w.via("usage_redirect"), "EcaApiError", _frag("302")),
    Row("token_html", lambda w: w.via("token_html"), "EcaAuthError", _frag("client_credentials")),
    Row("token_no_access_token", lambda w: w.via("token_no_access_token"), "EcaAuthError", _frag("access_token")),
    Row("token_truncated", lambda w: w.via("token_truncated"), "EcaAuthError", _frag("client_credentials")),
    Row("token_error_echoes_secret", lambda w: w.via("echo_token_secret"), "EcaAuthError", _frag("invalid_client")),
    Row("rest_error_echoes_token", lambda w: w.via("echo_rest_token"), "EcaApiError", _frag("MALFORMED_QUERY")),
]
