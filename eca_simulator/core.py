"""The Simulator: many orgs, one process, one port per org, plus a loopback control port."""

import base64
import copy
import errno
import json
import pickle
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse

from . import api, ids, profile as profilemod, seed as seedmod, server, tlsgen
from .clock import SimClock, iso
from .control import ControlApi
from .model import ACTIVE, ROTATED, RefreshToken, Token
from .server import HttpServer, Response

# Every behaviour the API documentation leaves open; the first value is the default. docs/simulator.md.
VARIANTS = {
    "post_over_rotated": ("reject", "replace"),
    "empty_staged": ("empty_list", "not_found"),
    "post_body": ("wrapper", "flat"),
    "staged_url_spelling": ("Url", "URL"),
    "staged_id_on_rotate": ("keep", "new"),
    "refresh_token_rotation": ("off", "on"),
    "error_body": ("array", "object", "html"),
    "disabled_scope": ("credentials", "secrets"),
    "secret_access_off": ("forbidden", "no_secret"),
    "rotate_answer": ("rotated", "promoted", "no_content"),
    "usage_lists": ("all", "used"),
    "paging": ("null_next", "empty_next", "ignore_page"),
    "id_length": ("18", "15"),
    "state_case": ("title", "upper", "lower"),
    "expired_staged": ("stays", "disappears"),
    "consumer_names": ("own", "app"),
    "max_api_version": ("67.0", "66.0", "65.0", "68.0"),
    "rate_limit": ("off", "on"),
}
DEFAULT_VARIANTS = {k: v[0] for k, v in VARIANTS.items()}

FAULT_KINDS = ("latency", "invalid_session", "limit_exceeded", "unavailable", "too_many_requests", "server_error",
               "malformed_json", "reset", "feature_disabled", "crash_after_write", "gzip_bomb", "deep_json")
ENDPOINTS = ("usage", "credentials", "consumer", "staged", "staged_item", "token")
REST_ENDPOINTS = ENDPOINTS[:-1]
WRITE_METHODS = ("POST", "PATCH", "DELETE")
CONTROL = "_control"
LOGIN = "_login"
AUTO_ADDRESSES_ABOVE = 1000  # addressing="auto": more orgs than this get one loopback address each


def validate_variant(name, value):
    if name not in VARIANTS:
        raise ValueError("unknown variant %r; known: %s" % (name, ", ".join(VARIANTS)))
    if name == "refresh_token_rotation" and isinstance(value, bool):
        value = "on" if value else "off"
    if name == "id_length" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if name == "max_api_version" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = "%.1f" % value
    if value not in VARIANTS[name]:
        raise ValueError("variant %s=%r is not allowed; use one of: %s" % (name, value, ", ".join(VARIANTS[name])))
    return value


class Simulator:
    """Salesforce ECA credential API simulator. See docs/simulator.md."""

    def __init__(self, seed=None, tls=True, variants=None, port_base=None, control_port=0, workers=96,
                 addressing="auto", profile=None):
        self.tls = bool(tls)
        if addressing not in ("auto", "ports", "addresses"):
            raise ValueError("addressing must be auto, ports or addresses, got %r" % (addressing,))
        self._addressing = addressing
        self.addressing = None  # the mode start() chose
        self.clock = SimClock()
        self._lock = threading.RLock()
        self._log_lock = threading.Lock()
        self._port_base = port_base
        self._control_port = control_port
        self._workers = workers
        self._variants = dict(DEFAULT_VARIANTS)
        seed_dict = seedmod.load_seed(seed)
        for k, v in (seed_dict.get("variants") or {}).items():
            self._variants[k] = validate_variant(k, v)
        if profile is not None:
            self._variants.update(profilemod.variants(profile, validate_variant))
        for k, v in (variants or {}).items():
            self._variants[k] = validate_variant(k, v)
        self._initial_variants = dict(self._variants)
        self._secrets = set()
        self._owners = {}   # secret or token -> the org it belongs to (for sim.misdirected())
        self._data = {}
        now = self.clock.time()
        for entry in seedmod.org_entries(seed_dict):
            org = seedmod.build_org(entry, now, validate_variant)
            self._data[org.name] = org
            self._remember_org(org)
        self._snapshot = None
        self._faults = []
        self._fault_seq = 0
        self._log = []
        self._server = None
        self._tmpdir = None
        self.ca_path = None
        self.control_url = None
        self.login_url = None
        self._ports = {}
        self._urls = {}
        self.orgs = {name: Org(self, name) for name in self._data}
        self._rest = api.RestApi(self)
        self._token = api.TokenEndpoint(self)
        self._control = ControlApi(self)

    # -- life cycle -------------------------------------------------------------
    def start(self):
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._tmpdir = tempfile.mkdtemp(prefix="eca-sim-")
        try:
            server.ensure_fd_limit(len(self._data) + 2)
            ca = tlsgen.Authority(self._tmpdir) if self.tls else None
            ctx = self._tls_context(*ca.issue("server", ["127.0.0.1"], ["localhost"])) if ca else None
            self.ca_path = ca.ca_path if ca else None
            self.addressing = self._choose_addressing()
            # A port taken on one org's address by another program: try another shared port (unless fixed).
            tries = 1 if (self.addressing == "ports" or self._port_base) else 5
            for attempt in range(tries):
                self._server = HttpServer(self._handle, ctx, workers=self._workers)
                try:
                    self._listen_all(ca, ctx)
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or attempt == tries - 1:
                        raise
                    self._server.stop()
        except OSError:
            self.stop()
            raise
        with self._lock:
            # pickle is 3x faster than deepcopy on big fleets, with the same result
            self._snapshot = pickle.loads(pickle.dumps(self._data, pickle.HIGHEST_PROTOCOL))
        self._server.start()
        return self

    @staticmethod
    def _tls_context(cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        return ctx

    def _choose_addressing(self):
        mode = self._addressing
        if mode == "auto":
            mode = "addresses" if len(self._data) > AUTO_ADDRESSES_ABOVE and _can_bind(server.loopback_address(0)) \
                else "ports"
        return mode

    def _listen_all(self, ca, ctx):
        """ports: org i on 127.0.0.1:port_base+i (ephemeral by default). addresses: org i on its own loopback
        address (server.loopback_address(i)), all on the login listener's port P (127.0.0.1:P, or port_base),
        with one certificate per /24 of org addresses."""
        scheme = "https" if self.tls else "http"
        self._ports, self._urls = {}, {}
        login = None
        if self.addressing == "addresses":
            login = self._server.listen(self._port_base or 0, tag=LOGIN, tls=self.tls)
        block_ctx = {}
        for i, name in enumerate(self._data):
            if self.addressing == "addresses":
                host, port = server.loopback_address(i), login.port
                block = i // server.HOSTS_PER_BLOCK
                if ca and block not in block_ctx:
                    first = block * server.HOSTS_PER_BLOCK
                    ips = [server.loopback_address(j) for j in range(first, first + server.HOSTS_PER_BLOCK)
                           if j < server.MAX_ADDRESSES]
                    block_ctx[block] = self._tls_context(*ca.issue("block-%d" % block, ips))
                lst = self._server.listen(port, tag=name, tls=self.tls, host=host, ssl_context=block_ctx.get(block))
            else:
                host, port = "127.0.0.1", (self._port_base + i if self._port_base else 0)
                lst = self._server.listen(port, tag=name, tls=self.tls)
            self._ports[name] = lst.port
            self._urls[name] = "%s://%s:%d" % (scheme, host, lst.port)
        if login is None:  # after the orgs, so that it cannot take a port of port_base's range
            login = self._server.listen(0, tag=LOGIN, tls=self.tls)
        ctl = self._server.listen(self._control_port or 0, tag=CONTROL, tls=False)
        self.control_url = "http://127.0.0.1:%d" % ctl.port
        self.login_url = "%s://127.0.0.1:%d" % (scheme, login.port)

    def stop(self):
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset(self):
        """Back to the seeded state: same orgs, ports and credentials; no tokens, faults, log; clock at now."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = copy.deepcopy(self._data)
            self._data = copy.deepcopy(self._snapshot)
            self._variants = dict(self._initial_variants)
            self._faults = []
            self.clock.reset()
        self.reset_log()

    # -- accessors ----------------------------------------------------------------
    def org(self, name):
        try:
            return self.orgs[name]
        except KeyError:
            names = list(self.orgs)
            more = " ..." if len(names) > 10 else ""
            raise KeyError("no org %r in the simulator; orgs: %s%s" % (name, ", ".join(names[:10]), more)) from None

    def _org_data(self, name):
        self.org(name)
        return self._data[name]

    def variant(self, orgdata, name):
        return orgdata.variants.get(name, self._variants[name])

    def variants(self, org=None):
        with self._lock:
            if org is None:
                return dict(self._variants)
            data = self._org_data(org)
            return {k: self.variant(data, k) for k in VARIANTS}

    def set_variants(self, org=None, **kw):
        """Set behaviour switches globally (org=None) or for one org (value None clears an org override)."""
        with self._lock:
            checked = {}
            for k, v in kw.items():
                checked[k] = None if (v is None and org is not None) else validate_variant(k, v)
            if org is None:
                self._variants.update(checked)
            else:
                data = self._org_data(org)
                for k, v in checked.items():
                    if v is None:
                        data.variants.pop(k, None)
                    else:
                        data.variants[k] = v
        return self.variants(org)

    def load_profile(self, profile, org=None):
        """Behave like the org a probe profile describes (a dict, or a path to the probe's YAML), globally or for
        one org. Switches the profile could not observe are left as they are. Returns the switches set."""
        found = profilemod.variants(profile, validate_variant)
        self.set_variants(org, **found)
        return found

    def configure_org(self, org, rest_secret_access=None, api_limit=None, api_usage=None, token_lifetime=None):
        """Org settings: the 'consumer secrets via REST API' switch, daily API limit and usage, token lifetime (s)."""
        with self._lock:
            data = self._org_data(org)
            if rest_secret_access is not None:
                data.rest_secret_access = bool(rest_secret_access)
            if api_limit is not None:
                data.api_limit = int(api_limit)
            if api_usage is not None:
                data.api_usage = int(api_usage)
                data.api_day = int(self.clock.time() // 86400)
            if token_lifetime is not None:
                data.token_lifetime = float(token_lifetime)
            return self._settings(data)

    @staticmethod
    def _settings(data):
        return {"rest_secret_access": data.rest_secret_access, "api_limit": data.api_limit,
                "api_usage": data.api_usage, "token_lifetime": data.token_lifetime}

    # -- credentials helpers ------------------------------------------------------
    def authenticates(self, org, key, secret):
        """Would client_credentials with this key+secret succeed now?"""
        with self._lock:
            data = self._org_data(org)
            now = self.clock.time()
            cons = data.consumer_by_key(key, now)
            if cons is None or cons.secret_for_key(key, now) != secret or "client_credentials" not in cons.flows:
                return False
            user = data.users.get(cons.run_as)
            return bool(user and user.active)

    def _consumer_for(self, data, client_id):
        now = self.clock.time()
        cons = data.admin_consumer if client_id is None else data.consumer_by_key(client_id, now)
        if cons is None:
            raise ValueError("client_id %r is not a valid consumer key in org %s" % (client_id, data.name))
        return cons

    def _user_for(self, data, username, cons):
        user = data.users.get(username or cons.run_as)
        if user is None:
            raise ValueError("no user %r in org %s; users: %s" % (username, data.name, ", ".join(data.users)))
        return user

    def issue_refresh_token(self, org, client_id=None, username=None):
        """A refresh token for the consumer whose key is client_id (default: the admin ECA)."""
        with self._lock:
            data = self._org_data(org)
            cons = self._consumer_for(data, client_id)
            user = self._user_for(data, username, cons)
            rt = ids.new_refresh_token()
            data.refresh_tokens[rt] = RefreshToken(cons, user, self.clock.time())
            self._remember(rt, data.name)
            return rt

    def issue_access_token(self, org, client_id=None, username=None):
        """An access token as if some flow had run (default: admin ECA as the admin user)."""
        with self._lock:
            data = self._org_data(org)
            cons = self._consumer_for(data, client_id)
            user = self._user_for(data, username, cons)
            tok = ids.new_access_token(data.org_id)
            now = self.clock.time()
            data.tokens[tok] = Token(cons, user, now, now + data.token_lifetime, "issued")
            cons.app.used = True
            self._remember(tok, data.name)
            return tok

    def revoke_tokens(self, org, refresh=True):
        with self._lock:
            data = self._org_data(org)
            data.tokens.clear()
            if refresh:
                data.refresh_tokens.clear()

    def register_certificate(self, org, app, consumer, pem):
        """Register a PEM certificate or public key for JWT bearer on a consumer."""
        if isinstance(pem, bytes):
            pem = pem.decode()
        api.load_public_key(pem)  # fail now on garbage
        with self._lock:
            self.org(org).app(app).consumer(consumer)._data().cert_pem = pem

    # -- faults --------------------------------------------------------------------
    def add_fault(self, org, kind, method="*", endpoint="*", times=1, match=None, **kw):
        """Inject a fault on the next `times` matching requests (times=None: until cleared).

        endpoint "*" matches every REST endpoint (not "token"); "all" matches REST and token.
        match (in-process only): a callable(request) -> bool also asked of each request that matches org, method
        and endpoint (request.method, .path, .headers, .body, .listener.tag = the org; called under the
        simulator's lock)."""
        if match is not None and not callable(match):
            raise ValueError("match must be a callable(request) -> bool, got %r" % (match,))
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r; known: %s" % (kind, ", ".join(FAULT_KINDS)))
        if endpoint not in ENDPOINTS + ("*", "all"):
            raise ValueError("unknown endpoint %r; use one of: %s, *, all" % (endpoint, ", ".join(ENDPOINTS)))
        method = method.upper()
        if method not in ("*", "GET", "POST", "PATCH", "DELETE"):
            raise ValueError("method %r must be *, GET, POST, PATCH or DELETE" % method)
        if org not in ("*", None, LOGIN):
            self.org(org)
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer or None (always), got %r" % (times,))
        allowed = {"latency": {"seconds"}, "unavailable": {"retry_after"}, "too_many_requests": {"retry_after"},
                   "server_error": {"status"}, "gzip_bomb": {"size_mb"}, "deep_json": {"depth"}}.get(kind, set())
        extra = set(kw) - allowed
        if extra:
            raise ValueError("fault %s takes no option(s) %s%s" % (kind, ", ".join(sorted(extra)),
                                                                   "; allowed: " + ", ".join(allowed) if allowed else ""))
        if kind == "latency" and not isinstance(kw.get("seconds"), (int, float)):
            raise ValueError("fault latency needs seconds=<number>")
        if kind == "server_error" and kw.get("status", 500) not in (500, 502, 504):
            raise ValueError("fault server_error status=%r must be 500, 502 or 504" % (kw.get("status"),))
        with self._lock:
            self._fault_seq += 1
            fault = {"id": self._fault_seq, "org": org or "*", "kind": kind, "method": method, "endpoint": endpoint,
                     "times": times, "hits": 0, **kw}
            if match is not None:
                fault["match"] = match
            self._faults.append(fault)
            return _shown(fault)

    def faults(self):
        with self._lock:
            return [_shown(f) for f in self._faults]

    def clear_faults(self, org=None):
        with self._lock:
            self._faults = [f for f in self._faults if org is not None and f["org"] != org]

    def _take_faults(self, org, endpoint, method, req=None):
        """(latency fault or None, other fault or None); consumes one use of each."""
        lat = main = None
        with self._lock:
            for f in self._faults:
                if f["org"] not in ("*", org) or f["method"] not in ("*", method):
                    continue
                if f["endpoint"] == "*":
                    if endpoint not in REST_ENDPOINTS:
                        continue
                elif f["endpoint"] != "all" and f["endpoint"] != endpoint:
                    continue
                if f["kind"] == "latency":
                    if lat is None and ("match" not in f or f["match"](req)):
                        lat = f
                elif main is None and ("match" not in f or f["match"](req)):
                    main = f
            for f in (lat, main):
                if f is not None:
                    f["hits"] += 1
                    if f["times"] is not None:
                        f["times"] -= 1
                        if f["times"] <= 0:
                            self._faults.remove(f)
        return lat, main

    # -- request log -----------------------------------------------------------------
    def requests(self, org=None):
        with self._log_lock:
            return [dict(e) for e in self._log if org is None or e["org"] == org]

    def counts(self, org=None):
        out = {}
        for e in self.requests(org):
            k = "%s %s" % (e["method"], e["endpoint"])
            out[k] = out.get(k, 0) + 1
        return out

    def write_count(self, org=None):
        return sum(1 for e in self.requests(org)
                   if e["method"] in WRITE_METHODS and e["path"].startswith("/services/data/"))

    def reset_log(self):
        with self._log_lock:
            self._log = []

    # -- secrets ---------------------------------------------------------------------
    def _remember(self, value, org=None):
        if value:
            with self._log_lock:
                self._secrets.add(value)
                if org is not None:
                    self._owners[value] = org

    def _remember_org(self, org):
        for cons in org.all_consumers():
            self._remember(cons.main_secret, org.name)
            if cons.staged:
                self._remember(cons.staged.secret, org.name)
            if cons.private_key_pem:
                self._remember(cons.private_key_pem)
                body = [ln for ln in cons.private_key_pem.splitlines() if ln and not ln.startswith("-----")]
                for ln in body[1:3]:
                    self._remember(ln)

    def secrets(self):
        """Every client secret, token and private key issued, plus every secret presented to the token endpoint.

        Consumer keys are not secrets and are not included."""
        with self._log_lock:
            return set(self._secrets)

    def misdirected(self):
        """Requests that carried a secret of one org to another org's host: [{listener, owners, method, path}].

        Secrets are client secrets, refresh tokens, access tokens and JWT assertions (owned by the org of their
        consumer key). The login host (sim.login_url, like login.salesforce.com) may receive any org's."""
        return [{"listener": e["listener"], "owners": e["secret_owners"], "method": e["method"], "path": e["path"]}
                for e in self.requests()
                if e["listener"] != LOGIN and any(o != e["listener"] for o in e["secret_owners"])]

    def _secret_owners(self, req, endpoint):
        """The orgs whose secrets this request carries (values are looked up, never logged)."""
        values, keys = [], []
        scheme, dummy, credential = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "oauth"):
            values.append(credential.strip())
        elif scheme.lower() == "basic":
            try:
                values.append(urllib.parse.unquote(base64.b64decode(credential.strip()).decode().partition(":")[2]))
            except (ValueError, UnicodeDecodeError):
                pass
        if endpoint == "token":
            form = urllib.parse.parse_qs(req.query)
            form.update(urllib.parse.parse_qs(req.body.decode("utf-8", "replace")))
            values.extend(form.get("client_secret", []) + form.get("refresh_token", []))
            for assertion in form.get("assertion", []):
                try:
                    claims = json.loads(api._b64url_decode(assertion.split(".")[1]))
                    keys.append(claims.get("iss"))
                except (ValueError, IndexError, AttributeError, UnicodeDecodeError):
                    pass
        with self._log_lock:
            owners = {self._owners.get(v) for v in values}
        if keys:
            now = self.clock.time()
            with self._lock:
                for name, data in self._data.items():
                    if any(isinstance(k, str) and data.consumer_by_key(k, now) is not None for k in keys):
                        owners.add(name)
        owners.discard(None)
        return sorted(owners)

    # -- state views -------------------------------------------------------------------
    def state(self):
        """What a test harness needs: orgs with URLs and admin credentials, ca_path, control_url."""
        with self._lock:
            orgs = {}
            for name, data in self._data.items():
                orgs[name] = {"instance_url": self._urls.get(name), "org_id": data.org_id,
                              "admin": self.orgs[name].admin}
                if data.admin_consumer.private_key_pem:
                    orgs[name]["admin"]["private_key"] = data.admin_consumer.private_key_pem
            return {"orgs": orgs, "ca_path": self.ca_path, "control_url": self.control_url,
                    "login_url": self.login_url, "tls": self.tls,
                    "variants": dict(self._variants)}

    def org_state(self, org):
        """Full state of one org (secrets included) for assertions."""
        with self._lock:
            data = self._org_data(org)
            now = self.clock.time()
            apps = []
            for app in data.apps:
                cons = []
                for c in app.consumers:
                    st = self._rest.slot(data, c, now)
                    cons.append({"id": c.id, "name": c.name, "main": {"key": c.main_key, "secret": c.main_secret},
                                 "staged": _staged_dict(st), "flows": list(c.flows), "run_as": c.run_as,
                                 "jwt_certificate": bool(c.cert_pem),
                                 "private_key": c.private_key_pem})
                apps.append({"id": app.id, "developer_name": app.developer_name, "label": app.label,
                             "listed": app.listed, "used": app.used, "admin": app is data.admin_consumer.app,
                             "consumers": cons})
            return {"name": data.name, "org_id": data.org_id, "instance_url": self._urls.get(org),
                    "admin": self.orgs[org].admin, "settings": self._settings(data),
                    "variants": {k: self.variant(data, k) for k in VARIANTS},
                    "users": [{"id": u.id, "username": u.username, "eca_developer": u.eca_developer,
                               "view_client_secret": u.view_client_secret, "active": u.active}
                              for u in data.users.values()],
                    "apps": apps, "tokens": len(data.tokens), "refresh_tokens": len(data.refresh_tokens),
                    "now": iso(now)}

    # -- dispatch ------------------------------------------------------------------------
    def _handle(self, req):
        tag = req.listener.tag
        if tag == CONTROL:
            return self._control.handle(req)
        endpoint, version, groups = api.classify(req.path)
        if tag == LOGIN and endpoint != "token":
            endpoint = "other"
        listener = tag
        lat, fault = self._take_faults(tag, endpoint, req.method, req)
        if lat is not None:
            time.sleep(lat["seconds"])
        kind = fault["kind"] if fault else None
        if kind == "reset":
            resp = Response(reset=True)
        else:
            resp = api.fault_response(kind, fault, endpoint) if fault else None
            if resp is None and endpoint in REST_ENDPOINTS and tag != LOGIN and self._rate_limited(tag):
                resp = api.rate_limited()
            if resp is None and tag == LOGIN:
                resp, resolved = self._dispatch_login(req, endpoint)
                tag = resolved or LOGIN
            elif resp is None:
                resp = self._dispatch(tag, req, endpoint, version, groups)
            if kind == "crash_after_write":
                resp = Response(reset=True)
            elif kind == "malformed_json":
                resp = api.corrupt(resp)
        if (endpoint in REST_ENDPOINTS or endpoint == "rest_other") and tag != LOGIN:
            data = self._data[tag]
            shape = self.variant(data, "error_body")
            if resp.status >= 400 and resp.body[:1] == b"[" and shape == "object":
                resp.body = resp.body[1:-1]  # the single-object error shape some clients report
            elif resp.status >= 400 and resp.body[:1] == b"[" and shape == "html":
                resp.body = api.html_error(resp.status)   # a proxy's or a maintenance page
                resp.headers = [h for h in resp.headers if h[0].lower() != "content-type"]
                resp.headers.append(("Content-Type", "text/html; charset=UTF-8"))
            resp.headers.append(("Sforce-Limit-Info", "api-usage=%d/%d" % (data.api_usage, data.api_limit)))
        entry = {"org": tag, "listener": listener, "method": req.method, "endpoint": endpoint, "path": req.path,
                 "query": req.query if endpoint != "token" else "", "status": 0 if resp.reset else resp.status,
                 "fault": kind or (lat and "latency"), "time": self.clock.time(),
                 "secret_owners": self._secret_owners(req, endpoint)}
        with self._log_lock:
            self._log.append(entry)
        return resp

    def _rate_limited(self, org):
        """rate_limit=on: every third REST request of the org is answered 429."""
        with self._lock:
            data = self._data[org]
            if self.variant(data, "rate_limit") != "on":
                return False
            data.rest_requests += 1
            return data.rest_requests % 3 == 0

    def _dispatch_login(self, req, endpoint):
        if endpoint != "token":
            return api.rest_error(404, "NOT_FOUND", api.NOT_FOUND_MSG), None
        with self._lock:
            return self._token.handle_login(self._data, req, self._urls)

    def _dispatch(self, tag, req, endpoint, version, groups):
        with self._lock:
            data = self._data[tag]
            if endpoint == "token":
                return self._token.handle(data, req, self._urls[tag])
            if endpoint == "other":
                return api.rest_error(404, "NOT_FOUND", api.NOT_FOUND_MSG)
            return self._rest.handle(data, req, endpoint, version, groups)


def _can_bind(host):
    """Can this machine listen on loopback address `host`? (Linux routes all of 127/8; macOS only 127.0.0.1.)"""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def _shown(fault):
    """A fault as the control API shows it: a match predicate by its name."""
    out = dict(fault)
    if "match" in out:
        out["match"] = getattr(out["match"], "__name__", type(out["match"]).__name__)
    return out


def _staged_dict(st):
    if st is None:
        return None
    return {"id": st.id, "key": st.key, "secret": st.secret, "state": st.state, "created_by": st.created_by,
            "created_date": iso(st.created), "expiration_date": iso(st.expires)}


class Org:
    """Public view of one org; stays valid across `sim.reset()`."""

    def __init__(self, sim, name):
        self._sim = sim
        self.name = name

    def _data(self):
        return self._sim._data[self.name]

    @property
    def instance_url(self):
        return self._sim._urls.get(self.name)

    @property
    def port(self):
        return self._sim._ports.get(self.name)

    @property
    def org_id(self):
        return self._data().org_id

    @property
    def admin(self):
        """The org's admin ECA (client_credentials as an admin user): current client_id/secret and username."""
        with self._sim._lock:
            d = self._data()
            return {"client_id": d.admin_consumer.main_key, "client_secret": d.admin_consumer.main_secret,
                    "username": d.admin_user.username}

    @property
    def admin_app(self):
        return App(self._sim, self.name, self._data().admin_consumer.app.id)

    @property
    def api_usage(self):
        return self._data().api_usage

    @property
    def apps(self):
        return [App(self._sim, self.name, a.id) for a in self._data().apps]

    def app(self, name_or_id):
        with self._sim._lock:
            d = self._data()
            key = ids.id15(name_or_id)
            for a in d.apps:
                if a.developer_name == name_or_id or (key and a.id[:15] == key):
                    return App(self._sim, self.name, a.id)
            names = ", ".join(a.developer_name for a in d.apps)
            raise KeyError("no app %r in org %s; apps: %s" % (name_or_id, self.name, names))

    def state(self):
        return self._sim.org_state(self.name)

    def __repr__(self):
        return "<Org %s %s>" % (self.name, self.instance_url)


class App:
    def __init__(self, sim, org, app_id):
        self._sim = sim
        self._org = org
        self.id = app_id

    def _data(self):
        d = self._sim._data[self._org].find_app(self.id)
        if d is None:
            raise KeyError("app %s is gone from org %s" % (self.id, self._org))
        return d

    @property
    def developer_name(self):
        return self._data().developer_name

    @property
    def label(self):
        return self._data().label

    @property
    def consumers(self):
        return [Consumer(self._sim, self._org, self.id, c.id) for c in self._data().consumers]

    def consumer(self, name_or_id=None):
        """A consumer by name or id; with no argument, the only/first consumer."""
        with self._sim._lock:
            cs = self._data().consumers
            if name_or_id is None:
                return Consumer(self._sim, self._org, self.id, cs[0].id)
            key = ids.id15(name_or_id)
            for c in cs:
                if c.name == name_or_id or (key and c.id[:15] == key):
                    return Consumer(self._sim, self._org, self.id, c.id)
            names = ", ".join(c.name for c in cs)
            raise KeyError("no consumer %r in app %s; consumers: %s" % (name_or_id, self.developer_name, names))

    def __repr__(self):
        return "<App %s %s>" % (self.id, self.developer_name)


class Consumer:
    def __init__(self, sim, org, app_id, consumer_id):
        self._sim = sim
        self._org = org
        self._app = app_id
        self.id = consumer_id

    def _data(self):
        app = self._sim._data[self._org].find_app(self._app)
        for c in (app.consumers if app else ()):
            if c.id == self.id:
                return c
        raise KeyError("consumer %s is gone from org %s" % (self.id, self._org))

    @property
    def name(self):
        return self._data().name

    @property
    def main(self):
        with self._sim._lock:
            c = self._data()
            return {"key": c.main_key, "secret": c.main_secret}

    @property
    def staged(self):
        with self._sim._lock:
            return _staged_dict(self._sim._rest.slot(self._sim._data[self._org], self._data(), self._sim.clock.time()))

    @property
    def valid_keys(self):
        """Keys that authenticate now (main, Active staged, Rotated in grace)."""
        with self._sim._lock:
            return [k for dummy, k, dummy in self._data().valid_pairs(self._sim.clock.time())]

    @property
    def private_key_pem(self):
        return self._data().private_key_pem

    def register_certificate(self, pem):
        self._sim.register_certificate(self._org, self._app, self.id, pem)

    def set_staged(self, state=ACTIVE, age_days=None):
        """Put a staged credential in the slot directly (test set-up); returns it."""
        spec = {"state": state}
        if age_days is not None:
            spec["age_days"] = age_days
        with self._sim._lock:
            c = self._data()
            c.staged = seedmod._staged(spec, self._sim.clock.time(), self._sim._data[self._org].admin_user.username,
                                       "set_staged")
            self._sim._remember(c.staged.secret, self._org)
        return self.staged

    def __repr__(self):
        return "<Consumer %s %s>" % (self.id, self.name)


__all__ = ["Simulator", "VARIANTS", "FAULT_KINDS", "ENDPOINTS", "ROTATED", "ACTIVE"]
