"""The switches of the rows the API documentation leaves open (issue 14), each value against a real HTTPS client."""

import gzip
import json

import pytest
import requests
import yaml

from eca_simulator import Simulator
from eca_simulator import testing as st
from eca_simulator.profile import ProfileError

SEED = {"orgs": [
    {"name": "org01", "apps": [
        {"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]},
        {"developer_name": "Data_Loader", "label": "Data Loader", "consumers": [{"name": "Primary"}, {"name": "Secondary"}]},
        {"developer_name": "Never_Used", "label": "Never Used", "used": False, "consumers": [{"name": "Nobody"}]},
    ]},
    {"name": "org02", "apps": [
        {"developer_name": "Billing_Sync", "label": "Billing Sync", "consumers": [{"name": "Billing"}]}]},
]}

pytestmark = pytest.mark.sim(seed=SEED)


def staged_path(rest, app="Billing_Sync", consumer=None):
    return rest.consumer_path(app, consumer) + "/staged"


def stage(rest, app="Billing_Sync"):
    return rest.post(staged_path(rest, app)).json()["stagedCredentials"][0]


def test_rotate_answer_three_shapes(sim):
    rest = st.RestClient(sim, "org01")
    cons = sim.org("org01").app("Billing_Sync").consumer()
    for answer in ("rotated", "promoted", "no_content"):
        sim.set_variants("org01", rotate_answer=answer)
        old = cons.main
        s1 = stage(rest)
        r = rest.patch(s1["url"], json={"command": "rotate"})
        assert cons.main["key"] == s1["key"] and cons.staged["state"] == "Rotated" and cons.staged["key"] == old["key"]
        if answer == "rotated":
            assert r.status_code == 200 and r.json()["state"] == "Rotated" and r.json()["key"] == old["key"]
            assert r.json()["secret"] == old["secret"]
        elif answer == "promoted":
            body = r.json()
            assert r.status_code == 200 and body["state"] == "Active" and body["key"] == s1["key"]
            assert "secret" not in body and body["id"] == s1["id"]
        else:
            assert r.status_code == 204 and r.content == b""
        assert rest.delete(rest.get(staged_path(rest)).json()["stagedCredentials"][0]["url"]).status_code == 204


def test_usage_lists_only_used_apps(sim):
    rest = st.RestClient(sim, "org01")

    def names():
        return [a["developerName"] for a in rest.get("/apps/oauth/usage").json()["apps"]]
    assert "Never_Used" in names()
    sim.set_variants("org01", usage_lists="used")
    assert "Never_Used" not in names() and "Billing_Sync" in names() and "Sim_Admin" in names()
    # its consumer authenticates once: the app now has OAuth usage data
    nobody = sim.org("org01").app("Never_Used").consumer().main
    st.token(sim, "org01", nobody["key"], nobody["secret"])
    assert "Never_Used" in names()
    # the credential endpoints still answer for it by id
    assert sim.org_state("org01")["apps"][3]["used"] is True


def test_paging_empty_next_and_ignore_page(sim):
    rest = st.RestClient(sim, "org01")
    pages = []
    url = "/apps/oauth/usage?pageSize=2"
    sim.set_variants("org01", paging="empty_next")
    while url:
        body = rest.get(url).json()
        pages.append(len(body["apps"]))
        url = body["nextPageUrl"]
    assert pages == [2, 2, 0]   # 4 apps: the last full page still points at an empty one
    app = sim.org("org01").app("Data_Loader")
    first = rest.get("/apps/oauth/credentials/%s?pageSize=1" % app.id).json()
    assert [c["name"] for c in first["consumers"]] == ["Primary"] and first["nextPageUrl"].endswith("page=1&pageSize=1")
    sim.set_variants("org01", paging="ignore_page")
    again = rest.get(first["nextPageUrl"]).json()
    assert again["consumers"] == first["consumers"] and again["nextPageUrl"].endswith("page=2&pageSize=1")
    assert rest.get(again["nextPageUrl"]).json()["consumers"] == first["consumers"]


def test_id_length_15(sim):
    sim.set_variants("org01", id_length="15")
    rest = st.RestClient(sim, "org01")
    app = sim.org("org01").app("Billing_Sync")
    listed = [a for a in rest.get("/apps/oauth/usage").json()["apps"] if a["developerName"] == "Billing_Sync"][0]
    assert listed["identifier"] == app.id[:15]
    consumer = rest.get("/apps/oauth/credentials/" + listed["identifier"]).json()["consumers"][0]
    assert consumer["id"] == app.consumer().id[:15] and consumer["url"].endswith("/" + consumer["id"])
    assert rest.get(consumer["url"]).json()["id"] == consumer["id"]
    item = rest.post(consumer["stagedCredentialsUrl"]).json()["stagedCredentials"][0]
    assert len(item["id"]) == 15 and item["url"].endswith("/" + item["id"])
    # 18-character ids in paths still work
    assert rest.get(rest.consumer_path("Billing_Sync") + "/staged/" + app.consumer().staged["id"]).status_code == 200


@pytest.mark.parametrize("case,want", [("title", "Active"), ("upper", "ACTIVE"), ("lower", "active")])
def test_state_case(sim, case, want):
    sim.set_variants(state_case=case)
    rest = st.RestClient(sim, "org02")
    assert stage(rest)["state"] == want
    assert rest.get(staged_path(rest)).json()["stagedCredentials"][0]["state"] == want
    assert sim.org("org02").app("Billing_Sync").consumer().staged["state"] == "Active"


def test_expired_staged_stays_or_disappears(sim):
    sim.set_variants("org02", expired_staged="disappears")
    for org in ("org01", "org02"):
        stage(st.RestClient(sim, org))
    sim.clock.advance(days=31)
    rest1, rest2 = st.RestClient(sim, "org01"), st.RestClient(sim, "org02")
    assert rest1.get(staged_path(rest1)).json()["stagedCredentials"][0]["state"] == "Expired"
    assert rest2.get(staged_path(rest2)).json()["stagedCredentials"] == []
    assert sim.org("org02").app("Billing_Sync").consumer().staged is None
    assert rest2.post(staged_path(rest2)).status_code == 201    # nothing left in the slot to block a POST
    assert rest1.post(staged_path(rest1)).status_code == 400


def test_consumer_names_shared_by_the_app(sim):
    sim.set_variants("org01", consumer_names="app")
    rest = st.RestClient(sim, "org01")
    app = sim.org("org01").app("Data_Loader")
    consumers = rest.get("/apps/oauth/credentials/" + app.id).json()["consumers"]
    assert [c["name"] for c in consumers] == ["Data Loader", "Data Loader"]
    assert len({c["id"] for c in consumers}) == 2


def test_api_versions_up_to_67_and_the_switch(sim):
    rest = st.RestClient(sim, "org01")
    staged = staged_path(rest)
    assert rest.get("/services/data/v67.0" + staged).status_code == 200
    assert rest.get("/services/data/v68.0" + staged).status_code == 404
    sim.set_variants("org01", max_api_version="68.0")
    assert rest.get("/services/data/v68.0" + staged).status_code == 200
    sim.set_variants("org01", max_api_version=65)
    assert rest.get("/services/data/v66.0" + staged).status_code == 404
    assert rest.get("/services/data/v65.0" + staged).status_code == 200


def test_rate_limit_answers_429_with_the_daily_limit_code(sim):
    sim.set_variants("org01", rate_limit="on")
    rest = st.RestClient(sim, "org01")
    answers = [rest.get("/apps/oauth/usage") for dummy in range(6)]
    assert [r.status_code for r in answers] == [200, 200, 429, 200, 200, 429]
    assert answers[2].json() == [{"message": "Too many requests, please retry later.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert st.RestClient(sim, "org02").get("/apps/oauth/usage").status_code == 200


def test_secret_access_off_answered_without_secrets(sim):
    sim.configure_org("org01", rest_secret_access=False)
    rest = st.RestClient(sim, "org01")
    path = rest.consumer_path("Billing_Sync")
    assert rest.get(path + "?part=secret").status_code == 403
    sim.set_variants("org01", secret_access_off="no_secret")
    r = rest.get(path + "?part=keyandsecret")
    assert r.status_code == 200 and set(r.json()) == {"id", "key"}
    assert set(rest.get(path + "?part=secret").json()) == {"id"}
    posted = rest.post(path + "/staged")
    assert posted.status_code == 201 and "secret" not in posted.json()["stagedCredentials"][0]
    assert "secret" not in rest.get(path + "/staged").json()["stagedCredentials"][0]
    sim.set_variants("org01", post_body="flat")
    rest.delete(rest.get(path + "/staged").json()["stagedCredentials"][0]["url"])
    flat = rest.post(path + "/staged").json()
    assert "consumerKey" in flat and "consumerSecret" not in flat and "secret" not in flat
    # the org's own view still knows the secret
    assert sim.org("org01").app("Billing_Sync").consumer().staged["secret"]


def test_error_body_html(sim):
    sim.set_variants("org01", error_body="html")
    rest = st.RestClient(sim, "org01")
    r = rest.get("/apps/oauth/credentials/0xI000000000000")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/html")
    assert r.text.startswith("<!DOCTYPE html>") and "<title>404 Not Found</title>" in r.text
    sim.add_fault("org01", "unavailable")
    r = rest.get("/apps/oauth/usage")
    assert r.status_code == 503 and "Service Unavailable" in r.text
    assert rest.get("/apps/oauth/usage").status_code == 200


def test_gzip_bomb_and_deep_json_faults(sim, sim_http):
    rest = st.RestClient(sim, "org01")
    sim.add_fault("org01", "gzip_bomb", endpoint="usage", size_mb=3)
    r = rest.http.get(rest.url("/apps/oauth/usage"), headers={"Authorization": "Bearer " + rest.access_token},
                      stream=True, timeout=10)
    raw = r.raw.read(decode_content=False)
    assert r.headers["Content-Encoding"] == "gzip" and len(raw) < 100000
    decoded = gzip.decompress(raw)
    assert len(decoded) > 3 * 2 ** 20 and json.loads(decoded)["padding"].startswith("aaa")
    sim.add_fault("org01", "deep_json", endpoint="usage", depth=5000)
    body = rest.get("/apps/oauth/usage").content
    assert body == b"[" * 5000 + b"]" * 5000
    with pytest.raises(ValueError, match="fault deep_json takes no option"):
        sim.add_fault("org01", "deep_json", size_mb=1)


def test_misdirected_secrets_are_named_by_owner(sim, sim_http):
    o1, o2 = sim.orgs["org01"], sim.orgs["org02"]
    st.token(sim, "org01")
    assert sim.misdirected() == []
    # org02's admin secret sent to org01's token endpoint
    r = sim_http.post(o1.instance_url + "/services/oauth2/token",
                      data={"grant_type": "client_credentials", "client_id": o2.admin["client_id"],
                            "client_secret": o2.admin["client_secret"]}, timeout=10)
    assert r.status_code == 400
    # org02's access token sent to org01's REST API
    sim_http.get(o1.instance_url + "/services/data/v65.0/apps/oauth/usage",
                 headers={"Authorization": "Bearer " + st.token(sim, "org02")}, timeout=10)
    # the login host may receive any org's
    sim_http.post(sim.login_url + "/services/oauth2/token",
                  data={"grant_type": "refresh_token", "client_id": o2.admin["client_id"],
                        "refresh_token": sim.issue_refresh_token("org02")}, timeout=10)
    wrong = sim.misdirected()
    assert [(w["listener"], w["owners"], w["method"]) for w in wrong] == [("org01", ["org02"], "POST"),
                                                                          ("org01", ["org02"], "GET")]
    logged = json.dumps(sim.requests())
    assert o2.admin["client_secret"] not in logged


def test_profile_in_process_file_cli_and_control(sim, tmp_path):
    profile = {"sfdc_eca_profile": 1, "variants": {"rotate_answer": "no_content", "empty_staged": "not_found",
                                                   "expired_staged": "unknown", "id_length": 15}}
    assert sim.load_profile(profile, "org02") == {"rotate_answer": "no_content", "empty_staged": "not_found",
                                                  "id_length": "15"}
    assert sim.variants("org02")["rotate_answer"] == "no_content" and sim.variants("org01")["rotate_answer"] == "rotated"
    path = tmp_path / "profile.yml"
    path.write_text(yaml.safe_dump(profile))
    other = Simulator(SEED, profile=str(path), variants={"empty_staged": "empty_list"})
    assert other.variants()["rotate_answer"] == "no_content" and other.variants()["empty_staged"] == "empty_list"
    with pytest.raises(ProfileError, match="unknown variant 'nope'"):
        sim.load_profile({"variants": {"nope": "x"}})
    with pytest.raises(ProfileError, match="format 2"):
        sim.load_profile({"sfdc_eca_profile": 2, "variants": {}})
    s = requests.Session()
    s.trust_env = False
    r = s.post(sim.control_url + "/_sim/profile", json={"org": "org01", "profile": {"variants": {"paging": "empty_next"}}},
               timeout=10)
    assert r.status_code == 200 and r.json()["applied"] == {"paging": "empty_next"}
    assert sim.variants("org01")["paging"] == "empty_next"
    assert s.post(sim.control_url + "/_sim/profile", json={}, timeout=10).status_code == 400
    assert s.get(sim.control_url + "/_sim/misdirected", timeout=10).json() == {"misdirected": []}


def test_cli_profile_and_variants(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    profile = tmp_path / "profile.yml"
    profile.write_text(yaml.safe_dump({"sfdc_eca_profile": 1, "variants": {"rotate_answer": "promoted",
                                                                           "paging": "empty_next"}}))
    state_file = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "eca_simulator", "serve", "--orgs", "1", "--http",
                             "--profile", str(profile), "--variant", "paging=ignore_page", "--state-file", str(state_file)],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        assert state["variants"]["rotate_answer"] == "promoted" and state["variants"]["paging"] == "ignore_page"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    profile.write_text(yaml.safe_dump({"variants": {"rotate_answer": "sideways"}}))
    bad = subprocess.run([sys.executable, "-m", "eca_simulator", "serve", "--orgs", "1", "--http", "--profile", str(profile)],
                         cwd=root, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "rotate_answer='sideways' is not allowed" in bad.stderr
