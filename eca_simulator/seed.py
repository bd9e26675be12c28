"""Seeds: which orgs, users, apps, consumers and staged credentials the simulator starts with."""

import copy
import json
import os

import yaml

from . import ids
from .model import ACTIVE, DAY, EXPIRED, FLOWS, ROTATED, ROTATED_GRACE, STAGED_TTL, App, Consumer, OrgData, Staged, User

SEEDS_DIR = os.path.join(os.path.dirname(__file__), "seeds")

TOP_KEYS = {"orgs", "defaults", "variants"}
ORG_KEYS = {"name", "api_limit", "api_usage", "rest_secret_access", "token_lifetime", "variants", "admin", "users",
            "apps", "org_id"}
ADMIN_KEYS = {"username", "client_id", "client_secret", "app", "listed", "jwt"}
USER_KEYS = {"username", "name", "eca_developer", "view_client_secret", "active"}
APP_KEYS = {"developer_name", "label", "id", "consumers", "used"}
CONSUMER_KEYS = {"name", "id", "key", "secret", "run_as", "flows", "jwt", "jwt_cert", "staged"}
STAGED_KEYS = {"state", "age_days", "age_hours", "key", "secret", "created_by"}

DEFAULT_TEMPLATE = {"apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync",
                              "consumers": [{"name": "Billing"}]}]}


class SeedError(ValueError):
    pass


def load_seed(seed):
    """A seed dict from a dict, a YAML/JSON file path, or a bundled seed name ("demo")."""
    if seed is None:
        return generate(1)
    if isinstance(seed, dict):
        return copy.deepcopy(seed)
    path = os.fspath(seed)
    if not os.path.exists(path) and os.path.exists(os.path.join(SEEDS_DIR, path + ".yml")):
        path = os.path.join(SEEDS_DIR, path + ".yml")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SeedError("cannot read seed file %s: %s" % (path, exc.strerror)) from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SeedError("seed file %s is not valid %s: %s" % (path, "JSON" if path.endswith(".json") else "YAML",
                                                              exc)) from None
    if not isinstance(data, dict):
        raise SeedError("seed file %s must hold a mapping with an 'orgs' key" % path)
    return data


def generate(n, template=None, name="org{i:03d}"):
    """A seed with `n` orgs built from `template` (an org mapping; default: one app with one consumer).

    `name` is a format string with `i` (1-based); the template may also hold a `name` pattern."""
    if not isinstance(n, int) or n < 1:
        raise SeedError("generate() needs a positive number of orgs, got %r" % (n,))
    tmpl = copy.deepcopy(template) if template is not None else copy.deepcopy(DEFAULT_TEMPLATE)
    pattern = tmpl.pop("name", name)
    orgs = []
    for i in range(1, n + 1):
        org = copy.deepcopy(tmpl)
        org["name"] = pattern.format(i=i)
        orgs.append(org)
    return {"orgs": orgs}


def _check_keys(where, value, allowed):
    if not isinstance(value, dict):
        raise SeedError("%s must be a mapping, got %s" % (where, type(value).__name__))
    unknown = set(value) - allowed
    if unknown:
        raise SeedError("%s has unknown key(s) %s; allowed: %s" % (where, ", ".join(sorted(unknown)),
                                                                   ", ".join(sorted(allowed))))


def org_entries(seed):
    """Normalized list of org mappings (defaults merged in)."""
    _check_keys("seed", seed, TOP_KEYS)
    orgs = seed.get("orgs")
    if isinstance(orgs, dict):
        orgs = [dict(v or {}, name=k) for k, v in orgs.items()]
    if not isinstance(orgs, list) or not orgs:
        raise SeedError("seed needs a non-empty 'orgs' list (or mapping of name -> org)")
    defaults = seed.get("defaults") or {}
    _check_keys("seed defaults", defaults, ORG_KEYS - {"name", "org_id"})
    out, seen = [], set()
    for i, org in enumerate(orgs):
        _check_keys("orgs[%d]" % i, org, ORG_KEYS)
        merged = copy.deepcopy(defaults)
        merged.update(copy.deepcopy(org))
        name = merged.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise SeedError("orgs[%d] needs a 'name' (a string without '/'), got %r" % (i, name))
        if name in seen:
            raise SeedError("org name %r appears twice in the seed" % name)
        seen.add(name)
        out.append(merged)
    return out


def build_org(entry, now, validate_variant):
    """OrgData from one normalized org mapping. `now` is sim time (epoch seconds)."""
    name = entry["name"]
    org = OrgData(name)
    if entry.get("org_id"):
        org.org_id = ids.to18(entry["org_id"])
    org.api_limit = int(entry.get("api_limit", 15000))
    org.api_usage = int(entry.get("api_usage", 0))
    org.rest_secret_access = bool(entry.get("rest_secret_access", True))
    org.token_lifetime = float(entry.get("token_lifetime", 7200))
    for k, v in (entry.get("variants") or {}).items():
        org.variants[k] = validate_variant(k, v)
    domain = name.lower().replace("_", "-") + ".example.com"
    admin = entry.get("admin") or {}
    _check_keys("org %s admin" % name, admin, ADMIN_KEYS)
    admin_user = User(admin.get("username", "admin@" + domain), name="Sim Admin")
    org.users[admin_user.username] = admin_user
    org.admin_user = admin_user
    for j, u in enumerate(entry.get("users") or []):
        _check_keys("org %s users[%d]" % (name, j), u, USER_KEYS)
        if "username" not in u:
            raise SeedError("org %s users[%d] needs a 'username'" % (name, j))
        user = User(u["username"], u.get("name"), bool(u.get("eca_developer", True)),
                    bool(u.get("view_client_secret", True)), bool(u.get("active", True)))
        org.users[user.username] = user
    admin_app = App(org, admin.get("app", "Sim_Admin"), listed=bool(admin.get("listed", True)))
    admin_cons = Consumer(admin_app, admin.get("app", "Sim_Admin"), admin.get("client_id"), admin.get("client_secret"),
                          run_as=admin_user.username)
    admin_app.consumers.append(admin_cons)
    org.admin_consumer = admin_cons
    _jwt(admin_cons, admin.get("jwt"), "org %s admin" % name)
    org.apps.append(admin_app)
    for j, a in enumerate(entry.get("apps") or []):
        where = "org %s apps[%d]" % (name, j)
        _check_keys(where, a, APP_KEYS)
        if not a.get("developer_name"):
            raise SeedError("%s needs a 'developer_name'" % where)
        if any(x.developer_name == a["developer_name"] for x in org.apps):
            raise SeedError("%s: developer_name %r is used twice" % (where, a["developer_name"]))
        app = App(org, a["developer_name"], a.get("label"), _seed_id(a.get("id"), ids.APP, where),
                  used=bool(a.get("used", True)))
        for k, c in enumerate(a.get("consumers") or [{"name": a["developer_name"]}]):
            cwhere = "%s consumers[%d]" % (where, k)
            _check_keys(cwhere, c, CONSUMER_KEYS)
            if not c.get("name"):
                raise SeedError("%s needs a 'name'" % cwhere)
            flows = c.get("flows", list(FLOWS))
            bad = [f for f in flows if f not in FLOWS]
            if bad:
                raise SeedError("%s: unknown flow(s) %s; allowed: %s" % (cwhere, bad, ", ".join(FLOWS)))
            run_as = c.get("run_as", admin_user.username)
            if run_as not in org.users:
                raise SeedError("%s: run_as %r is not a user of org %s" % (cwhere, run_as, name))
            cons = Consumer(app, c["name"], c.get("key"), c.get("secret"), run_as, flows,
                            _seed_id(c.get("id"), ids.CONSUMER, cwhere))
            _jwt(cons, c.get("jwt_cert") or c.get("jwt"), cwhere)
            if c.get("staged"):
                cons.staged = _staged(c["staged"], now, admin_user.username, cwhere)
            app.consumers.append(cons)
        org.apps.append(app)
    return org


def _seed_id(value, prefix, where):
    if value is None:
        return None
    if ids.id15(value) is None or not value.startswith(prefix):
        raise SeedError("%s: id %r must be a 15/18-character id starting with %s" % (where, value, prefix))
    return ids.to18(value)


def _jwt(cons, value, where):
    if not value:
        return
    if value == "generate":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cons.private_key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode()
        cons.cert_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    elif isinstance(value, str) and "-----BEGIN" in value:
        cons.cert_pem = value
    else:
        raise SeedError("%s: jwt_cert must be 'generate' or a PEM certificate/public key" % where)


def _staged(spec, now, created_by, where):
    _check_keys(where + " staged", spec, STAGED_KEYS)
    state = spec.get("state", ACTIVE)
    if state not in (ACTIVE, ROTATED, EXPIRED):
        raise SeedError("%s staged: state %r must be Active, Rotated or Expired" % (where, state))
    default_age = {ACTIVE: 0.0, ROTATED: 5.0, EXPIRED: 35.0}[state]
    age = float(spec.get("age_days", default_age)) * DAY + float(spec.get("age_hours", 0)) * 3600
    created = now - age
    if state == ACTIVE and age >= STAGED_TTL:
        raise SeedError("%s staged: an Active credential must be younger than 30 days (use state Expired)" % where)
    if state == EXPIRED and age < STAGED_TTL:
        raise SeedError("%s staged: an Expired credential must be at least 30 days old (age_days >= 30)" % where)
    if state == ROTATED and age >= ROTATED_GRACE:
        raise SeedError("%s staged: a Rotated credential must be younger than 30 days (its grace period)" % where)
    ttl = ROTATED_GRACE if state == ROTATED else STAGED_TTL
    return Staged(spec.get("key") or ids.new_consumer_key(), spec.get("secret") or ids.new_consumer_secret(),
                  ACTIVE if state == EXPIRED else state, spec.get("created_by", created_by), created, created + ttl)
