"""The Salesforce-facing HTTP endpoints: Connect REST `apps/oauth/...` and `/services/oauth2/token`."""

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse
import zlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import ids
from .clock import iso
from .model import ACTIVE, EXPIRED, ROTATED, STAGED_TTL, ROTATED_GRACE, RefreshToken, Staged, Token
from .server import Response

JSON = ("Content-Type", "application/json;charset=UTF-8")
MIN_VERSION = {"usage": 59, "credentials": 60, "consumer": 60, "staged": 65, "staged_item": 65}
MAX_VERSION = 67   # the newest version of the reference; the org's max_api_version switch may lower or raise it
MAX_PAGE_SIZE = 200
AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_REST = re.compile(r"^/services/data/v(\d+)\.(\d+)(/.*)?$")
_ROUTES = [
    ("usage", re.compile(r"^/apps/oauth/usage/?$")),
    ("credentials", re.compile(r"^/apps/oauth/credentials/([^/]+)/?$")),
    ("consumer", re.compile(r"^/apps/oauth/credentials/([^/]+)/([^/]+)/?$")),
    ("staged", re.compile(r"^/apps/oauth/credentials/([^/]+)/([^/]+)/staged/?$")),
    ("staged_item", re.compile(r"^/apps/oauth/credentials/([^/]+)/([^/]+)/staged/([^/]+)/?$")),
]
ALLOWED = {"usage": "GET", "credentials": "GET", "consumer": "GET", "staged": "GET,POST",
           "staged_item": "GET,PATCH,DELETE"}

NOT_FOUND_MSG = "The requested resource does not exist"
NOT_ENABLED_MSG = ("Access to External Client App consumer secrets via REST API is not enabled for this org. "
                   "Turn on 'Allow access to External Client App consumer secrets via REST API' in "
                   "External Client App Settings.")


def classify(path):
    """(endpoint name, version tuple or None, route groups) for a request path."""
    if path.rstrip("/") == "/services/oauth2/token":
        return "token", None, ()
    m = _REST.match(path)
    if not m:
        return "other", None, ()
    version = (int(m.group(1)), int(m.group(2)))
    rest = m.group(3) or "/"
    for name, rx in _ROUTES:
        mm = rx.match(rest)
        if mm:
            return name, version, tuple(urllib.parse.unquote(g) for g in mm.groups())
    return "rest_other", version, ()


def jresp(status, payload, headers=()):
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(), [JSON, *headers])


def rest_error(status, code, message, headers=()):
    return jresp(status, [{"message": message, "errorCode": code}], headers)


def oauth_error(error, description, status=400):
    return jresp(status, {"error": error, "error_description": description}, [("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")])


# -- faults ---------------------------------------------------------------------
def fault_response(kind, kw, endpoint):
    """The response a status-type fault produces (None for kinds handled elsewhere)."""
    if kind == "invalid_session":
        if endpoint == "token":
            return oauth_error("invalid_grant", "expired access/refresh token")
        return rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid",
                          [("WWW-Authenticate", 'Token realm="Salesforce", error="invalid_token"')])
    if kind == "limit_exceeded":
        return rest_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    if kind == "unavailable":
        hdrs = []
        if kw.get("retry_after") is not None:
            hdrs.append(("Retry-After", str(kw["retry_after"])))
        return rest_error(503, "SERVER_UNAVAILABLE", "Server unavailable: too many requests, please retry later.", hdrs)
    if kind == "too_many_requests":
        hdrs = []
        if kw.get("retry_after") is not None:
            hdrs.append(("Retry-After", str(kw["retry_after"])))
        return rest_error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests, please retry later.", hdrs)
    if kind == "server_error":
        return rest_error(kw.get("status", 500), "UNKNOWN_EXCEPTION",
                          "An unexpected error occurred. Please include this ErrorId if you contact support: "
                          "1234567890-12345 (-1234567890)")
    if kind == "feature_disabled":
        return rest_error(403, "FUNCTIONALITY_NOT_ENABLED", NOT_ENABLED_MSG)
    if kind == "gzip_bomb":
        return Response(200, gzip_bomb(kw.get("size_mb", 50)), [JSON, ("Content-Encoding", "gzip")])
    if kind == "deep_json":
        depth = kw.get("depth", 100000)
        return Response(200, b"[" * depth + b"]" * depth, [JSON])
    return None


_BOMBS = {}


def gzip_bomb(size_mb):
    """A small gzip body that decodes to `size_mb` MB of valid JSON (a padding string)."""
    if size_mb not in _BOMBS:
        z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        chunk = b"a" * (1 << 20)
        parts = [z.compress(b'{"padding":"')]
        parts.extend(z.compress(chunk) for dummy in range(int(size_mb)))
        parts.append(z.compress(b'"}'))
        parts.append(z.flush())
        _BOMBS[size_mb] = b"".join(parts)
    return _BOMBS[size_mb]


def rate_limited():
    """429 as some gateways answer it, with the errorCode of the daily limit (which it is not)."""
    return rest_error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests, please retry later.")


def html_error(status):
    """The page a proxy or a maintenance window puts where the API's JSON error would be."""
    title = {503: "Service Unavailable", 502: "Bad Gateway", 504: "Gateway Timeout", 404: "Not Found",
             401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}.get(status, "Error")
    page = ("<!DOCTYPE html>\n<html><head><title>%d %s</title></head><body><h1>%s</h1>"
            "<p>The server could not complete your request. Please try again later.</p></body></html>\n"
            % (status, title, title))
    return page.encode()


def corrupt(resp):
    """malformed_json: cut the JSON body short (an empty 204 becomes a 200 with a fragment)."""
    body = resp.body or b'{"stagedCredentials":[{"id":'
    cut = max(1, len(body) // 2)
    return Response(200 if resp.status == 204 else resp.status, body[:cut],
                    [h for h in resp.headers if h[0].lower() != "content-length"])


# -- REST -----------------------------------------------------------------------
class RestApi:
    def __init__(self, sim):
        self.sim = sim

    def handle(self, org, req, endpoint, version, groups):
        """Answer one /services/data request for `org` (an OrgData); caller holds the sim lock."""
        sim = self.sim
        now = sim.clock.time()
        newest = int(float(sim.variant(org, "max_api_version")))
        if endpoint == "rest_other" or version[1] != 0 or not MIN_VERSION.get(endpoint, 0) <= version[0] <= newest:
            return rest_error(404, "NOT_FOUND", NOT_FOUND_MSG)
        # Authentication.
        auth = req.headers.get("authorization", "")
        scheme, dummy, token = auth.partition(" ")
        tok = org.tokens.get(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
        if tok is not None and now >= tok.expires:
            org.tokens.pop(token.strip(), None)
            tok = None
        if tok is None or not tok.user.active:
            return rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid",
                              [("WWW-Authenticate", 'Token realm="Salesforce", error="invalid_token"')])
        # Daily API limit (rolling by sim-clock day).
        day = int(now // 86400)
        if org.api_day != day:
            if org.api_day is not None:
                org.api_usage = 0
            org.api_day = day
        if org.api_usage >= org.api_limit:
            return rest_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        org.api_usage += 1
        if req.method not in ALLOWED[endpoint].split(","):
            return rest_error(405, "METHOD_NOT_ALLOWED", "HTTP Method '%s' not allowed. Allowed are %s"
                              % (req.method, ALLOWED[endpoint]))
        if not tok.user.eca_developer:
            return rest_error(403, "INSUFFICIENT_ACCESS",
                              "You don't have the External Client App Developer permission.")
        base = "/services/data/v%d.%d" % version
        if endpoint == "usage":
            return self._usage(org, req, base)
        needs_secret = endpoint in ("staged", "staged_item") or (
            endpoint == "consumer" and _query(req).get("part", "key").lower() != "key")
        # With the org setting off, the API refuses (403), or answers without the secrets (secret_access_off).
        if not org.rest_secret_access and sim.variant(org, "secret_access_off") == "forbidden" and (
                needs_secret or sim.variant(org, "disabled_scope") == "credentials"):
            return rest_error(403, "FUNCTIONALITY_NOT_ENABLED", NOT_ENABLED_MSG)
        app = org.find_app(groups[0])
        if app is None:
            return rest_error(404, "NOT_FOUND", NOT_FOUND_MSG)
        if endpoint == "credentials":
            return self._credentials(org, app, req, base)
        cons = _find_consumer(app, groups[1])
        if cons is None:
            return rest_error(404, "NOT_FOUND", NOT_FOUND_MSG)
        if needs_secret and not tok.user.view_client_secret:
            return rest_error(403, "INSUFFICIENT_ACCESS", "You don't have the View Client Secret permission.")
        if endpoint == "consumer":
            return self._consumer(org, cons, req)
        if endpoint == "staged":
            if req.method == "GET":
                return self._staged_get(org, app, cons, base, now)
            return self._staged_post(org, app, cons, base, now, tok.user)
        return self._staged_item(org, app, cons, base, now, tok.user, req, groups[2])

    # -- how this org spells its answers --
    def _id(self, org, value):
        return value[:15] if self.sim.variant(org, "id_length") == "15" else value

    def _state(self, org, state):
        case = self.sim.variant(org, "state_case")
        return state.upper() if case == "upper" else state.lower() if case == "lower" else state

    def slot(self, org, cons, now):
        """The consumer's staged credential as this org shows it (an Expired one may have left the slot)."""
        st = cons.slot(now)
        if st is not None and st.state == EXPIRED and self.sim.variant(org, "expired_staged") == "disappears":
            cons.staged = None
            return None
        return st

    def _next_page(self, org, url, page, size, total, endpoint):
        """nextPageUrl of one page: null on the last page, or (paging switch) a URL on every page with items."""
        paging = self.sim.variant(org, "paging")
        if paging == "ignore_page" and endpoint == "credentials":
            return url + "?page=%d&pageSize=%d" % (page + 1, size)
        if paging != "null_next":
            return url + "?page=%d&pageSize=%d" % (page + 1, size) if page * size < total else None
        return url + "?page=%d&pageSize=%d" % (page + 1, size) if (page + 1) * size < total else None

    # -- endpoint bodies --
    def _usage(self, org, req, base):
        q = _query(req)
        page, size, err = _paging(q)
        if err:
            return err
        every = self.sim.variant(org, "usage_lists") == "all"
        apps = [a for a in org.apps if a.listed and (every or a.used)]
        chunk = apps[page * size:(page + 1) * size]
        url = base + "/apps/oauth/usage"
        return jresp(200, {"apps": [{"identifier": self._id(org, a.id), "developerName": a.developer_name,
                                     "label": a.label} for a in chunk],
                           "currentPageUrl": url + "?page=%d&pageSize=%d" % (page, size),
                           "nextPageUrl": self._next_page(org, url, page, size, len(apps), "usage")})

    def _credentials(self, org, app, req, base):
        page, size, err = _paging(_query(req))
        if err:
            return err
        asked = page
        if self.sim.variant(org, "paging") == "ignore_page":
            page = 0
        spelling = self.sim.variant(org, "staged_url_spelling")
        shared_name = self.sim.variant(org, "consumer_names") == "app"
        url = base + "/apps/oauth/credentials/" + self._id(org, app.id)
        chunk = app.consumers[page * size:(page + 1) * size]
        consumers = []
        for c in chunk:
            curl = url + "/" + self._id(org, c.id)
            consumers.append({"id": self._id(org, c.id), "key": c.main_key, "name": app.label if shared_name else c.name,
                              "url": curl, "stagedCredentials" + spelling: curl + "/staged"})
        return jresp(200, {"consumers": consumers, "currentPageUrl": url + "?page=%d&pageSize=%d" % (asked, size),
                           "nextPageUrl": self._next_page(org, url, asked, size, len(app.consumers), "credentials")})

    def _consumer(self, org, cons, req):
        part = _query(req).get("part", "key")
        body = {"id": self._id(org, cons.id)}
        p = part.lower()
        if p not in ("key", "secret", "keyandsecret"):
            return rest_error(400, "INVALID_PARAMETER_VALUE",
                              "Invalid value for parameter 'part': '%s'. Use key, secret or keyandsecret." % part)
        if p in ("key", "keyandsecret"):
            body["key"] = cons.main_key
        if p in ("secret", "keyandsecret") and org.rest_secret_access:
            body["secret"] = cons.main_secret
        return jresp(200, body)

    def _item(self, org, app, cons, st, base, state=None):
        spelling = self.sim.variant(org, "staged_url_spelling")
        surl = "%s/apps/oauth/credentials/%s/%s/staged" % (base, self._id(org, app.id), self._id(org, cons.id))
        item = {"id": self._id(org, st.id), "key": st.key, "secret": st.secret,
                "state": self._state(org, state or st.state), "createdBy": st.created_by,
                "createdDate": iso(st.created), "expirationDate": iso(st.expires),
                "url": surl + "/" + self._id(org, st.id), "stagedCredentials" + spelling: surl}
        if not org.rest_secret_access:
            del item["secret"]   # reached only when the org answers without secrets (secret_access_off)
        return item

    def _staged_get(self, org, app, cons, base, now):
        st = self.slot(org, cons, now)
        surl = "%s/apps/oauth/credentials/%s/%s/staged" % (base, self._id(org, app.id), self._id(org, cons.id))
        if st is None and self.sim.variant(org, "empty_staged") == "not_found":
            return rest_error(404, "NOT_FOUND", NOT_FOUND_MSG)
        items = [] if st is None else [self._item(org, app, cons, st, base)]
        return jresp(200, {"stagedCredentials": items, "url": surl})

    def _staged_post(self, org, app, cons, base, now, user):
        st = self.slot(org, cons, now)
        if st is not None:
            if st.state == ROTATED and self.sim.variant(org, "post_over_rotated") == "replace":
                cons.staged = None   # the Rotated old main is dropped, so it stops authenticating
            else:
                return rest_error(400, "INVALID_OPERATION",
                                  "A staged credential (state %s) already exists for this consumer. Rotate or delete "
                                  "the staged credential before you stage new credentials." % st.state)
        new = Staged(ids.new_consumer_key(), ids.new_consumer_secret(), ACTIVE, user.username, now, now + STAGED_TTL)
        self.sim._remember(new.secret, org.name)
        cons.staged = new
        item = self._item(org, app, cons, new, base)
        if self.sim.variant(org, "post_body") == "flat":
            item["consumerKey"] = item.pop("key")
            if "secret" in item:
                item["consumerSecret"] = item.pop("secret")
            return jresp(201, item)
        return jresp(201, {"stagedCredentials": [item], "url": item["url"].rsplit("/", 1)[0]})

    def _staged_item(self, org, app, cons, base, now, user, req, staged_id):
        st = self.slot(org, cons, now)
        if st is None or ids.id15(staged_id) != st.id[:15]:
            return rest_error(404, "NOT_FOUND", NOT_FOUND_MSG)
        if req.method == "GET":
            return jresp(200, self._item(org, app, cons, st, base))
        if req.method == "DELETE":
            cons.staged = None   # Rotated: old main revoked now; Active/Expired: discarded
            return Response(204, b"")
        # PATCH
        try:
            body = json.loads(req.body.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError):
            return rest_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON.")
        command = body.get("command") if isinstance(body, dict) else None
        if command != "rotate":
            return rest_error(400, "INVALID_PARAMETER_VALUE",
                              "Invalid value for 'command': %r. The only supported command is 'rotate'."
                              % (command,))
        if st.state != ACTIVE:
            return rest_error(400, "INVALID_OPERATION",
                              "Only an Active staged credential can be rotated; this one is %s." % st.state)
        old_key, old_secret = cons.main_key, cons.main_secret
        cons.main_key, cons.main_secret = st.key, st.secret
        keep = self.sim.variant(org, "staged_id_on_rotate") == "keep"
        cons.staged = Staged(old_key, old_secret, ROTATED, user.username, now, now + ROTATED_GRACE,
                             id_=st.id if keep else None)
        answer = self.sim.variant(org, "rotate_answer")
        if answer == "no_content":
            return Response(204, b"")
        if answer == "promoted":
            # the pair now in use, as an Active item, without its secret
            item = self._item(org, app, cons, st, base, state=ACTIVE)
            item.pop("secret", None)
            return jresp(200, item)
        return jresp(200, self._item(org, app, cons, cons.staged, base))


def _find_consumer(app, consumer_id):
    key = ids.id15(consumer_id)
    for c in app.consumers:
        if c.id[:15] == key:
            return c
    return None


def _query(req):
    return {k: v[-1] for k, v in urllib.parse.parse_qs(req.query, keep_blank_values=True).items()}


def _paging(q):
    try:
        page = int(q.get("page", "0"))
        if page < 0:
            raise ValueError
    except ValueError:
        return 0, 0, rest_error(400, "INVALID_PARAMETER_VALUE",
                                "Invalid value for parameter 'page': '%s'. Use an integer >= 0." % q.get("page"))
    try:
        size = int(q.get("pageSize", "100"))
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError
    except ValueError:
        return 0, 0, rest_error(400, "INVALID_PARAMETER_VALUE",
                                "Invalid value for parameter 'pageSize': '%s'. Use an integer from 1 to %d."
                                % (q.get("pageSize"), MAX_PAGE_SIZE))
    return page, size, None


# -- OAuth token endpoint ---------------------------------------------------------
def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load_public_key(pem):
    data = pem.encode() if isinstance(pem, str) else pem
    if b"CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


class TokenEndpoint:
    def __init__(self, sim):
        self.sim = sim

    def _params(self, req):
        """(params, error response or None) of a token request."""
        if req.method != "POST":
            return None, oauth_error("invalid_request", "must use HTTP POST", status=400)
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(req.query).items()}
        ctype = req.headers.get("content-type", "")
        if req.body:
            if "application/x-www-form-urlencoded" not in ctype and ctype:
                return None, oauth_error("invalid_request",
                                         "unsupported content type: use application/x-www-form-urlencoded")
            params.update({k: v[-1] for k, v in urllib.parse.parse_qs(req.body.decode("utf-8", "replace")).items()})
        for name in ("client_secret", "assertion", "refresh_token"):
            if params.get(name):
                self.sim._remember(params[name])
        basic = req.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                cid, dummy, csec = base64.b64decode(basic[6:].strip()).decode().partition(":")
                params.setdefault("client_id", urllib.parse.unquote(cid))
                params.setdefault("client_secret", urllib.parse.unquote(csec))
                self.sim._remember(params["client_secret"])
            except (ValueError, UnicodeDecodeError):
                return None, oauth_error("invalid_client", "invalid client credentials", status=400)
        return params, None

    def handle(self, org, req, instance_url):
        params, err = self._params(req)
        if err:
            return err
        grant = params.get("grant_type")
        now = self.sim.clock.time()
        if grant == "client_credentials":
            return self._client_credentials(org, params, now, instance_url)
        if grant == JWT_GRANT:
            return self._jwt(org, params, now, instance_url)
        if grant == "refresh_token":
            return self._refresh(org, params, now, instance_url)
        return oauth_error("unsupported_grant_type", "grant type not supported")

    def handle_login(self, orgs, req, urls):
        """The login host (login.salesforce.com): finds the org from the JWT iss or the refresh token.

        Returns (response, org name or None)."""
        params, err = self._params(req)
        if err:
            return err, None
        grant = params.get("grant_type")
        now = self.sim.clock.time()
        if grant == "client_credentials":
            return oauth_error("invalid_grant", "request not supported on this domain"), None
        if grant == JWT_GRANT:
            try:
                claims = json.loads(_b64url_decode(params.get("assertion", "").split(".")[1]))
                iss = claims.get("iss") if isinstance(claims, dict) else None
            except (ValueError, IndexError, UnicodeDecodeError):
                return oauth_error("invalid_grant", "invalid assertion"), None
            for name, org in orgs.items():
                if isinstance(iss, str) and org.consumer_by_key(iss, now) is not None:
                    return self._jwt(org, params, now, urls[name]), name
            return oauth_error("invalid_client", "invalid client credentials"), None
        if grant == "refresh_token":
            rt = params.get("refresh_token", "")
            for name, org in orgs.items():
                if rt in org.refresh_tokens:
                    return self._refresh(org, params, now, urls[name]), name
            return oauth_error("invalid_grant", "expired access/refresh token"), None
        return oauth_error("unsupported_grant_type", "grant type not supported"), None

    def _issue(self, org, cons, user, now, instance_url, flow, secret, refresh=None):
        token = ids.new_access_token(org.org_id)
        self.sim._remember(token, org.name)
        cons.app.used = True   # the app now has OAuth usage data
        org.tokens[token] = Token(cons, user, now, now + org.token_lifetime, flow)
        issued = str(int(now * 1000))
        ident = "%s/id/%s/%s" % (instance_url, org.org_id, user.id)
        sig = base64.b64encode(hmac.new(secret.encode(), (ident + issued).encode(), hashlib.sha256).digest()).decode()
        body = {"access_token": token, "signature": sig, "scope": "api", "instance_url": instance_url,
                "id": ident, "token_type": "Bearer", "issued_at": issued}
        if refresh:
            body["refresh_token"] = refresh
        return jresp(200, body, [("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")])

    def _client_credentials(self, org, params, now, instance_url):
        cid, secret = params.get("client_id", ""), params.get("client_secret", "")
        if not cid or not secret:
            return oauth_error("invalid_client", "invalid client credentials")
        cons = org.consumer_by_key(cid, now)
        if cons is None or not hmac.compare_digest(cons.secret_for_key(cid, now).encode(), secret.encode()):
            return oauth_error("invalid_client", "invalid client credentials")
        if "client_credentials" not in cons.flows:
            return oauth_error("invalid_grant", "no client credentials user enabled")
        user = org.users.get(cons.run_as)
        if user is None or not user.active:
            return oauth_error("invalid_grant", "no client credentials user enabled")
        return self._issue(org, cons, user, now, instance_url, "client_credentials", secret)

    def _jwt(self, org, params, now, instance_url):
        assertion = params.get("assertion", "")
        parts = assertion.split(".")
        try:
            if len(parts) != 3:
                raise ValueError
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return oauth_error("invalid_grant", "invalid assertion")
        if header.get("alg") != "RS256":
            return oauth_error("invalid_grant", "invalid assertion: algorithm must be RS256")
        iss = claims.get("iss")
        cons = org.consumer_by_key(iss, now) if isinstance(iss, str) else None
        if cons is None:
            return oauth_error("invalid_client", "invalid client credentials")
        if "jwt_bearer" not in cons.flows or not cons.cert_pem:
            return oauth_error("invalid_grant", "invalid assertion: no certificate registered for this client")
        try:
            pub = load_public_key(cons.cert_pem)
            if not isinstance(pub, rsa.RSAPublicKey):
                raise InvalidSignature
            pub.verify(signature, (parts[0] + "." + parts[1]).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return oauth_error("invalid_grant", "invalid assertion: signature verification failed")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        allowed = set(AUDIENCES) | {instance_url}
        if not any(isinstance(a, str) and a.rstrip("/") in allowed for a in auds):
            return oauth_error("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        # exp is checked against the wall clock: the client builds it from its own clock, not the sim's.
        wall = time.time()
        if not isinstance(exp, (int, float)) or exp <= wall:
            return oauth_error("invalid_grant", "expired authorization code")
        if exp > wall + 300:
            return oauth_error("invalid_grant", "invalid assertion: exp must be within 3 minutes")
        user = org.users.get(claims.get("sub"))
        if user is None or not user.active:
            return oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._issue(org, cons, user, now, instance_url, "jwt_bearer", cons.main_secret)

    def _refresh(self, org, params, now, instance_url):
        rt = params.get("refresh_token", "")
        rec = org.refresh_tokens.get(rt)
        cid = params.get("client_id", "")
        if not cid:
            return oauth_error("invalid_client", "invalid client credentials")
        if rec is None:
            return oauth_error("invalid_grant", "expired access/refresh token")
        cons = rec.consumer
        csecret = cons.secret_for_key(cid, now)
        if csecret is None:
            return oauth_error("invalid_client", "invalid client credentials")
        given = params.get("client_secret")
        if given is not None and not hmac.compare_digest(given.encode(), csecret.encode()):
            return oauth_error("invalid_client", "invalid client credentials")
        if "refresh_token" not in cons.flows or not rec.user.active:
            return oauth_error("invalid_grant", "expired access/refresh token")
        new_rt = None
        if self.sim.variant(org, "refresh_token_rotation") == "on":
            del org.refresh_tokens[rt]
            new_rt = ids.new_refresh_token()
            self.sim._remember(new_rt, org.name)
            org.refresh_tokens[new_rt] = RefreshToken(cons, rec.user, now)
        return self._issue(org, cons, rec.user, now, instance_url, "refresh_token", csecret, refresh=new_rt)
