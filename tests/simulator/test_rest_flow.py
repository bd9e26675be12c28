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
