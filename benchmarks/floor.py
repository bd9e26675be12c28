"""Scenario (c) of the benchmark: the floor. A thread pool makes the minimal HTTP sequence per org.

Per org: token, list apps, list consumers, stage (POST), verify the new pair (token request),
promote (PATCH rotate): the same job as the role's rotation, with nothing around it.

    python benchmarks/floor.py --inventory orgs.json --forks 25
"""

import argparse
import concurrent.futures
import json
import sys

import requests

API = "/services/data/v65.0"


def _token(session, url, client_id, client_secret):
    resp = session.post(url + "/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret})
    resp.raise_for_status()
    return resp.json()["access_token"]


def _staged_item(body):
    if "stagedCredentials" in body:
        return body["stagedCredentials"][0]
    return body


def rotate_org(org):
    url = org["eca_instance_url"]
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify; no proxy for loopback
        session.verify = org.get("eca_ca_path") or True
        token = _token(session, url, org["eca_client_id"], org["eca_client_secret"])
        session.headers["Authorization"] = "Bearer " + token
        apps = session.get(url + API + "/apps/oauth/usage")
        apps.raise_for_status()
        app_id = next(a["identifier"] for a in apps.json()["apps"] if a["developerName"] == org["eca_app_name"])
        consumers = session.get(url + API + "/apps/oauth/credentials/" + app_id)
        consumers.raise_for_status()
        consumer_id = next(c["id"] for c in consumers.json()["consumers"] if c["name"] == org["eca_consumer_name"])
        base = url + API + "/apps/oauth/credentials/%s/%s/staged" % (app_id, consumer_id)
        staged = session.post(base, json={})
        staged.raise_for_status()
        item = _staged_item(staged.json())
        del session.headers["Authorization"]
        _token(session, url, item.get("key") or item.get("consumerKey"), item.get("secret") or item.get("consumerSecret"))
        session.headers["Authorization"] = "Bearer " + token
        promoted = session.patch(base + "/" + item["id"], json={"command": "rotate"})
        promoted.raise_for_status()
    return org["name"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="JSON list of orgs (benchmarks/run.py writes it)")
    parser.add_argument("--forks", type=int, default=25)
    args = parser.parse_args(argv)
    with open(args.inventory) as f:
        orgs = json.load(f)
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.forks) as pool:
        futures = {pool.submit(rotate_org, org): org["name"] for org in orgs}
        for future in concurrent.futures.as_completed(futures):
            try:
                future.result()
            except Exception as exc:  # report every org, not only the first failure
                failed += 1
                print("%s: %s: %s" % (futures[future], type(exc).__name__, exc), file=sys.stderr)
    print("rotated %d of %d orgs" % (len(orgs) - failed, len(orgs)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
