"""The org data model and the credential lifecycle (one staged slot per consumer)."""

from . import ids

DAY = 86400.0
STAGED_TTL = 30 * DAY      # an Active staged credential turns Expired after this
ROTATED_GRACE = 30 * DAY   # a Rotated (old main) credential keeps working this long, then leaves the slot

ACTIVE, ROTATED, EXPIRED = "Active", "Rotated", "Expired"
FLOWS = ("client_credentials", "jwt_bearer", "refresh_token")


class Staged:
    __slots__ = ("id", "key", "secret", "state", "created_by", "created", "expires")

    def __init__(self, key, secret, state, created_by, created, expires, id_=None):
        self.id = id_ or ids.new_id(ids.STAGED)
        self.key = key
        self.secret = secret
        self.state = state
        self.created_by = created_by
        self.created = created
        self.expires = expires


class User:
    def __init__(self, username, name=None, eca_developer=True, view_client_secret=True, active=True, id_=None):
        self.id = id_ or ids.new_id(ids.USER)
        self.username = username
        self.name = name or username.split("@")[0]
        self.eca_developer = eca_developer
        self.view_client_secret = view_client_secret
        self.active = active


class Consumer:
    def __init__(self, app, name, key=None, secret=None, run_as=None, flows=FLOWS, id_=None):
        self.app = app
        self.id = id_ or ids.new_id(ids.CONSUMER)
        self.name = name
        self.main_key = key or ids.new_consumer_key()
        self.main_secret = secret or ids.new_consumer_secret()
        self.staged = None
        self.run_as = run_as
        self.flows = tuple(flows)
        self.cert_pem = None          # PEM certificate or public key for JWT bearer
        self.private_key_pem = None   # only when the simulator generated the key pair (demo use)

    # Lifecycle, evaluated lazily against the sim clock.
    def slot(self, now):
        """The staged credential as it stands at `now` (None if empty); applies expiry and grace end."""
        st = self.staged
        if st is None:
            return None
        if st.state == ACTIVE and now >= st.expires:
            st.state = EXPIRED
        elif st.state == ROTATED and now >= st.expires:
            self.staged = None   # grace over: the old main leaves the slot and stops working
            return None
        return st

    def valid_pairs(self, now):
        """(kind, key, secret) of every pair that authenticates at `now`."""
        pairs = [("main", self.main_key, self.main_secret)]
        st = self.slot(now)
        if st is not None and st.state in (ACTIVE, ROTATED):
            pairs.append((st.state.lower(), st.key, st.secret))
        return pairs

    def secret_for_key(self, key, now):
        for dummy, k, s in self.valid_pairs(now):
            if k == key:
                return s
        return None


class App:
    def __init__(self, org, developer_name, label=None, id_=None, listed=True, used=True):
        self.org = org
        self.id = id_ or ids.new_id(ids.APP)
        self.developer_name = developer_name
        self.label = label or developer_name.replace("_", " ")
        self.consumers = []
        self.listed = listed
        self.used = used   # has OAuth usage data (a token was issued to one of its consumers)


class Token:
    __slots__ = ("consumer", "user", "issued", "expires", "flow")

    def __init__(self, consumer, user, issued, expires, flow):
        self.consumer = consumer
        self.user = user
        self.issued = issued
        self.expires = expires
        self.flow = flow


class RefreshToken:
    __slots__ = ("consumer", "user", "issued")

    def __init__(self, consumer, user, issued):
        self.consumer = consumer
        self.user = user
        self.issued = issued


class OrgData:
    """Everything that belongs to one org. Public access goes through `eca_simulator.Org`."""

    def __init__(self, name):
        self.name = name
        self.org_id = ids.new_id(ids.ORG)
        self.apps = []
        self.users = {}
        self.admin_consumer = None
        self.admin_user = None
        self.api_limit = 15000
        self.api_usage = 0
        self.api_day = None
        self.rest_secret_access = True
        self.token_lifetime = 7200.0
        self.variants = {}
        self.tokens = {}
        self.refresh_tokens = {}
        self.rest_requests = 0   # counts REST requests for the rate_limit switch

    def find_app(self, app_id):
        key = ids.id15(app_id)
        for app in self.apps:
            if app.id[:15] == key:
                return app
        return None

    def consumer_by_key(self, key, now):
        for app in self.apps:
            for c in app.consumers:
                if c.secret_for_key(key, now) is not None:
                    return c
        return None

    def all_consumers(self):
        for app in self.apps:
            yield from app.consumers
