"""The help article's sequence over HTTPS: usage -> credentials -> staged GET -> POST -> PATCH rotate -> DELETE."""

import re

import pytest
import requests

from eca_simulator import testing as st


def test_help_article_sequence(sim):
    c = st.RestClient(sim, "org01")
    consumer = sim.orgs["org01"].app("Billing_Sync").consumer("Billing")
    m0 = consumer.main

    r = c.get("/apps/oauth/usage")
    assert r.status_code == 200
    assert re.fullmatch(r"api-usage=\d+/15000", r.headers["Sforce-Limit-Info"])
    body = r.json()
    assert set(body) == {"apps", "currentPageUrl", "nextPageUrl"}
    assert body["nextPageUrl"] is None
    by_name = {a["developerName"]: a for a in body["apps"]}
    assert set(by_name) == {"Sim_Admin", "Billing_Sync", "Data_Loader"}
    app = by_name["Billing_Sync"]
    assert set(app) == {"identifier", "developerName", "label"}
    assert app["label"] == "Billing Sync"
    assert app["identifier"].startswith("0xI") and len(app["identifier"]) == 18

    r = c.get("/apps/oauth/credentials/" + app["identifier"])
    assert r.status_code == 200
    cons = r.json()["consumers"]
    assert len(cons) == 1
    item = cons[0]
    assert set(item) == {"id", "key", "name", "url", "stagedCredentialsUrl"}
    assert item["id"].startswith("888") and item["key"] == m0["key"] and item["key"].startswith("3MVG9")
    assert item["url"] == "/services/data/v65.0/apps/oauth/credentials/%s/%s" % (app["identifier"], item["id"])
    assert item["stagedCredentialsUrl"] == item["url"] + "/staged"

    r = c.get(item["url"] + "?part=keyandsecret")
    assert r.status_code == 200 and r.json() == {"id": item["id"], "key": m0["key"], "secret": m0["secret"]}

    r = c.get(item["stagedCredentialsUrl"])
    assert r.status_code == 200
    assert r.json() == {"stagedCredentials": [], "url": item["stagedCredentialsUrl"]}

    r = c.post(item["stagedCredentialsUrl"], json={})
    assert r.status_code == 201
    staged = r.json()["stagedCredentials"][0]
    assert r.json()["url"] == item["stagedCredentialsUrl"]
    assert set(staged) == {"id", "key", "secret", "state", "createdBy", "createdDate", "expirationDate", "url",
                           "stagedCredentialsUrl"}
    assert staged["state"] == "Active" and staged["key"] != m0["key"]
    assert staged["url"] == item["stagedCredentialsUrl"] + "/" + staged["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", staged["createdDate"])
    assert sim.authenticates("org01", m0["key"], m0["secret"])
    assert sim.authenticates("org01", staged["key"], staged["secret"])

    r = c.get(item["stagedCredentialsUrl"])
    assert r.json()["stagedCredentials"][0] == staged  # the secret can be read again by GET

    r = c.patch(staged["url"], json={"command": "rotate"})
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["state"] == "Rotated" and rotated["key"] == m0["key"] and rotated["id"] == staged["id"]
    assert consumer.main == {"key": staged["key"], "secret": staged["secret"]}
    assert sim.authenticates("org01", m0["key"], m0["secret"])  # grace period

    r = c.delete(rotated["url"])
    assert r.status_code == 204 and r.content == b""
    assert not sim.authenticates("org01", m0["key"], m0["secret"])
    assert sim.authenticates("org01", staged["key"], staged["secret"])
    assert c.get(item["stagedCredentialsUrl"]).json()["stagedCredentials"] == []
    r = c.delete(rotated["url"])
    assert r.status_code == 404
    assert r.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]

    assert sim.counts("org01") == {"POST token": 1, "GET usage": 1, "GET credentials": 1, "GET consumer": 1,
                                   "GET staged": 3, "POST staged": 1, "PATCH staged_item": 1,
                                   "DELETE staged_item": 2}
    assert sim.write_count("org01") == 4
    assert sim.write_count("org02") == 0


def test_https_verifies_against_generated_ca(sim):
    url = sim.orgs["org01"].instance_url
    assert url.startswith("https://127.0.0.1:") and url.count("/") == 2
    s = requests.Session()
    s.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        s.get(url + "/services/data/v65.0/apps/oauth/usage", verify=True, timeout=5)
    r = s.get(url.replace("127.0.0.1", "localhost") + "/services/data/v65.0/apps/oauth/usage",
              verify=sim.ca_path, timeout=5)
    assert r.status_code == 401
    assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@pytest.mark.sim(tls=False)
def test_plain_http_when_asked(sim):
    assert sim.ca_path is None
    assert sim.orgs["org01"].instance_url.startswith("http://127.0.0.1:")
    c = st.RestClient(sim, "org01")
    assert c.get("/apps/oauth/usage").status_code == 200


BIG_SEED = {"orgs": [{"name": "big", "apps": [{"developer_name": "App_%03d" % i, "consumers": [{"name": "C"}]}
                                              for i in range(120)]}]}


@pytest.mark.sim(seed=BIG_SEED)
def test_usage_paging_follows_next_page_url(sim):
    c = st.RestClient(sim, "big")
    seen, url, pages = [], "/apps/oauth/usage?pageSize=7", 0
    while url:
        r = c.get(url)
        assert r.status_code == 200
        body = r.json()
        assert len(body["apps"]) <= 7
        assert body["currentPageUrl"].startswith("/services/data/v65.0/apps/oauth/usage?page=%d&" % pages)
        seen += [a["identifier"] for a in body["apps"]]
        url, pages = body["nextPageUrl"], pages + 1
        assert url is None or url.startswith("/services/data/v65.0/")
    assert pages == 18  # 121 apps (120 + the admin ECA) / 7 per page
    assert seen == [a.id for a in sim.orgs["big"].apps]
    # Default page size is 100; past the end gives an empty list.
    r = c.get("/apps/oauth/usage")
    assert len(r.json()["apps"]) == 100 and r.json()["nextPageUrl"].endswith("page=1&pageSize=100")
    r = c.get("/apps/oauth/usage?page=5")
    assert r.json()["apps"] == [] and r.json()["nextPageUrl"] is None
    for bad in ("pageSize=0", "pageSize=abc", "page=-1", "pageSize=201"):
        r = c.get("/apps/oauth/usage?" + bad)
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_PARAMETER_VALUE"


def test_ids_15_and_18_characters_and_not_found(sim):
    c = st.RestClient(sim, "org01")
    app = sim.orgs["org01"].app("Data_Loader")
    cons = app.consumer("Secondary")
    for app_id, cons_id in ((app.id, cons.id), (app.id[:15], cons.id[:15]), (app.id[:15], cons.id)):
        r = c.get("/apps/oauth/credentials/%s/%s" % (app_id, cons_id))
        assert r.status_code == 200 and r.json() == {"id": cons.id, "key": cons.main["key"]}
    body = c.get("/apps/oauth/credentials/" + app.id[:15]).json()
    assert [x["name"] for x in body["consumers"]] == ["Primary", "Secondary"]
    assert body["nextPageUrl"] is None
    wrong_checksum = app.id[:15] + ("AAA" if app.id[15:] != "AAA" else "BBB")
    for path in ("/apps/oauth/credentials/" + wrong_checksum,
                 "/apps/oauth/credentials/0xI000000000000",
                 "/apps/oauth/credentials/%s/888000000000000" % app.id,
                 "/apps/oauth/credentials/%s/%s/staged/0sC000000000000" % (app.id, cons.id),
                 "/apps/oauth/nothing"):
        r = c.get(path)
        assert r.status_code == 404, path
        assert r.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    # An app of another org is not visible.
    other = sim.orgs["org02"].app("Billing_Sync")
    assert c.get("/apps/oauth/credentials/" + other.id).status_code == 404


def test_part_parameter(sim):
    c = st.RestClient(sim, "org01")
    cons = sim.orgs["org01"].app("Billing_Sync").consumer()
    path = c.consumer_path("Billing_Sync")
    assert c.get(path).json() == {"id": cons.id, "key": cons.main["key"]}
    assert c.get(path + "?part=key").json() == {"id": cons.id, "key": cons.main["key"]}
    assert c.get(path + "?part=secret").json() == {"id": cons.id, "secret": cons.main["secret"]}
    assert c.get(path + "?part=keyandsecret").json() == {"id": cons.id, **cons.main}
    r = c.get(path + "?part=everything")
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_PARAMETER_VALUE"
    assert "part" in r.json()[0]["message"]


def test_api_versions_and_methods(sim):
    c = st.RestClient(sim, "org01")
    staged = c.consumer_path("Billing_Sync") + "/staged"
    assert c.get("/services/data/v59.0/apps/oauth/usage").status_code == 200
    assert c.get("/services/data/v58.0/apps/oauth/usage").status_code == 404
    assert c.get("/services/data/v64.0" + staged).status_code == 404   # staged endpoints since v65.0
    r = c.get("/services/data/v66.0" + staged)
    assert r.status_code == 200 and r.json()["url"].startswith("/services/data/v66.0/")
    r = c.request("PUT", staged)
    assert r.status_code == 405
    assert r.json() == [{"message": "HTTP Method 'PUT' not allowed. Allowed are GET,POST",
                         "errorCode": "METHOD_NOT_ALLOWED"}]
    assert c.delete("/apps/oauth/usage").status_code == 405


def test_invalid_and_missing_token(sim, sim_http):
    url = sim.orgs["org01"].instance_url + "/services/data/v65.0/apps/oauth/usage"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = sim_http.get(url, headers=headers)
        assert r.status_code == 401
        assert r.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    # A token of another org is not valid here.
    tok = st.token(sim, "org02")
    assert sim_http.get(url, headers={"Authorization": "Bearer " + tok}).status_code == 401
    tok = st.token(sim, "org01")
    assert sim_http.get(url, headers={"Authorization": "Bearer " + tok}).status_code == 200


def test_api_usage_counter_and_daily_limit(sim):
    sim.configure_org("org01", api_limit=5, api_usage=2)
    c = st.RestClient(sim, "org01")
    infos = [c.get("/apps/oauth/usage").headers["Sforce-Limit-Info"] for dummy in range(3)]
    assert infos == ["api-usage=3/5", "api-usage=4/5", "api-usage=5/5"]
    r = c.get("/apps/oauth/usage")
    assert r.status_code == 403
    assert r.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert r.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    # The token endpoint is not a REST call and still works; other orgs have their own counter.
    assert st.token(sim, "org01")
    assert st.RestClient(sim, "org02").get("/apps/oauth/usage").headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    sim.clock.advance(days=1)
    r = c.get("/apps/oauth/usage")
    assert r.status_code == 401  # the 2-hour token expired too
    c = st.RestClient(sim, "org01")
    assert c.get("/apps/oauth/usage").headers["Sforce-Limit-Info"] == "api-usage=1/5"


SEED_PERMS = {"orgs": [{"name": "p", "users": [
    {"username": "nosecret@p.example.com", "view_client_secret": False},
    {"username": "nodev@p.example.com", "eca_developer": False},
    {"username": "gone@p.example.com", "active": False}],
    "apps": [{"developer_name": "A", "consumers": [{"name": "A"}]}]}]}


@pytest.mark.sim(seed=SEED_PERMS)
def test_user_permissions(sim):
    path = st.RestClient(sim, "p").consumer_path("A")

    def client(user):
        return st.RestClient(sim, "p", access_token=sim.issue_access_token("p", username=user))

    c = client("nosecret@p.example.com")
    assert c.get(path).status_code == 200
    r = c.get(path + "?part=secret")
    assert r.status_code == 403 and r.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    assert c.get(path + "/staged").status_code == 403
    r = client("nodev@p.example.com").get("/apps/oauth/usage")
    assert r.status_code == 403 and r.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    assert client("gone@p.example.com").get("/apps/oauth/usage").status_code == 401


def test_feature_disabled_per_org(sim):
    sim.configure_org("org01", rest_secret_access=False)
    c = st.RestClient(sim, "org01")
    assert c.get("/apps/oauth/usage").status_code == 200
    r = c.get(c.consumer_path("Billing_Sync") + "/staged")
    assert r.status_code == 403
    assert r.json()[0]["errorCode"] == "FUNCTIONALITY_NOT_ENABLED" and "not enabled" in r.json()[0]["message"]
    assert c.post(c.consumer_path("Billing_Sync") + "/staged").status_code == 403
    assert sim.org("org01").app("Billing_Sync").consumer().staged is None
    c2 = st.RestClient(sim, "org02")
    assert c2.get(c2.consumer_path("Billing_Sync") + "/staged").status_code == 200


def test_post_without_body_and_with_empty_json(sim):
    c = st.RestClient(sim, "org01")
    r = c.post(c.consumer_path("Data_Loader", "Primary") + "/staged")
    assert r.status_code == 201
    r = c.post(c.consumer_path("Data_Loader", "Secondary") + "/staged", data="{}",
               headers={"Content-Type": "application/json"})
    assert r.status_code == 201
    app = sim.org("org01").app("Data_Loader")
    assert app.consumer("Primary").staged["state"] == "Active"
    assert app.consumer("Secondary").staged["state"] == "Active"
    assert sim.org("org01").app("Billing_Sync").consumer().staged is None
