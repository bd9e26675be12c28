"""Helpers for tests that talk to the simulator over real HTTPS."""

import requests

API = "/services/data/v65.0"

# Small default seed of the `sim` pytest fixture.
DEFAULT_TEST_SEED = {
    "orgs": [
        {"name": "org01", "apps": [
            {"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]},
            {"developer_name": "Data_Loader", "label": "Data Loader",
             "consumers": [{"name": "Primary"}, {"name": "Secondary"}]},
        ]},
        {"name": "org02", "apps": [
            {"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]},
        ]},
    ]
}


def session(sim):
    """A requests.Session that trusts the simulator's CA.

    trust_env=False matters: REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment would otherwise
    override session.verify, and proxy variables must never route loopback traffic."""
    s = requests.Session()
    s.trust_env = False
    s.verify = sim.ca_path if sim.ca_path else True
    return s


def token(sim, org, client_id=None, client_secret=None, http=None):
    """Access token via client_credentials (default: the org's admin ECA)."""
    o = sim.orgs[org]
    if client_id is None:
        client_id, client_secret = o.admin["client_id"], o.admin["client_secret"]
    http = http or session(sim)
    r = http.post(o.instance_url + "/services/oauth2/token",
                  data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
                  timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


class RestClient:
    """A bare REST client for tests: absolute or relative paths, admin token by default."""

    def __init__(self, sim, org, access_token=None, api=API):
        self.sim = sim
        self.org = org
        self.base = sim.orgs[org].instance_url
        self.api = api
        self.http = session(sim)
        self.access_token = access_token or token(sim, org, http=self.http)

    def url(self, path):
        if path.startswith("http"):
            return path
        if path.startswith("/services/"):
            return self.base + path
        return self.base + self.api + path

    def request(self, method, path, **kw):
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", "Bearer " + self.access_token)
        kw.setdefault("timeout", 10)
        return self.http.request(method, self.url(path), headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def app_id(self, developer_name):
        return self.sim.orgs[self.org].app(developer_name).id

    def consumer_path(self, app, consumer=None):
        a = self.sim.orgs[self.org].app(app)
        return "/apps/oauth/credentials/%s/%s" % (a.id, a.consumer(consumer).id)
