"""Scenario (c) of the benchmark: the floor. A thread pool makes the minimal HTTP sequence per org.

Per org: token, list apps, list consumers, stage (POST), verify the new pair (token request), deliver
it (--delivery: the same target kinds as the role, written the plainest way: no read-back), promote
(PATCH rotate): the same job as the role's rotation, with nothing around it.

    python benchmarks/floor.py --inventory orgs.json --forks 25 [--delivery KIND --delivery-config F]

--delivery-config is a JSON file (benchmarks/run.py writes it): vault_file {dir, password_file}; file {dir};
hashi_vault {url, token, mount, prefix}; aws_secretsmanager {url, region, access_key, secret_key, prefix};
tasks_file and none need none (a tasks file's one debug task is a print: the floor prints nothing).
"""

import argparse
import concurrent.futures
import json
import os
import sys
import threading

import requests

API = "/services/data/v65.0"
KINDS = ("none", "vault_file", "file", "hashi_vault", "aws_secretsmanager", "tasks_file")


def _token(session, url, client_id, client_secret):
    resp = session.post(url + "/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret})
    resp.raise_for_status()
    return resp.json()["access_token"]


def _staged_item(body):
    if "stagedCredentials" in body:
        return body["stagedCredentials"][0]
    return body


def _write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Deliver:
    """The new pair to its target, the plainest way each kind allows."""

    def __init__(self, kind, config):
        self.kind = kind
        self.config = config or {}
        self.local = threading.local()
        if kind == "vault_file":
            from ansible.parsing.vault import VaultLib, VaultSecret
            with open(self.config["password_file"], "rb") as f:
                self.secret = VaultSecret(f.read().strip())
            self.vault = VaultLib([("default", self.secret)])
        elif kind == "aws_secretsmanager":
            import boto3
            self.client = boto3.session.Session(
                aws_access_key_id=self.config["access_key"], aws_secret_access_key=self.config["secret_key"],
                region_name=self.config["region"]).client("secretsmanager", endpoint_url=self.config["url"])

    def __call__(self, cred):
        name = "%s-%s-%s" % (cred["org"], cred["app_name"], cred["consumer_name"])
        path = "%s/%s/%s/%s" % (self.config.get("prefix"), cred["org"], cred["app_name"], cred["consumer_name"])
        if self.kind == "vault_file":
            import yaml
            text = yaml.safe_dump(cred, default_flow_style=False, sort_keys=False).encode("utf-8")
            _write_file(os.path.join(self.config["dir"], name + ".vault.yml"),
                        self.vault.encrypt(text, self.secret, "default") + b"\n")
        elif self.kind == "file":
            text = "".join("SALESFORCE_%s=%s\n" % (k.upper(), v) for k, v in cred.items())
            _write_file(os.path.join(self.config["dir"], name + ".env"), text.encode("utf-8"))
        elif self.kind == "hashi_vault":
            session = getattr(self.local, "session", None)
            if session is None:
                session = self.local.session = requests.Session()
                session.trust_env = False
            resp = session.post("%s/v1/%s/data/%s" % (self.config["url"], self.config.get("mount") or "secret", path),
                                json={"data": cred}, headers={"X-Vault-Token": self.config["token"]})
            resp.raise_for_status()
        elif self.kind == "aws_secretsmanager":
            self.client.create_secret(Name=path, SecretString=json.dumps(cred))


def rotate_org(org, deliver):
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
        key, secret = item.get("key") or item.get("consumerKey"), item.get("secret") or item.get("consumerSecret")
        del session.headers["Authorization"]
        _token(session, url, key, secret)
        if deliver is not None:
            deliver({"instance_url": url, "org": org["name"], "app_name": org["eca_app_name"], "app_id": app_id,
                     "consumer_name": org["eca_consumer_name"], "consumer_id": consumer_id, "key": key, "secret": secret})
        session.headers["Authorization"] = "Bearer " + token
        promoted = session.patch(base + "/" + item["id"], json={"command": "rotate"})
        promoted.raise_for_status()
    return org["name"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="JSON list of orgs (benchmarks/run.py writes it)")
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--delivery", choices=KINDS, default="none")
    parser.add_argument("--delivery-config", help="JSON file with the delivery's settings")
    args = parser.parse_args(argv)
    with open(args.inventory) as f:
        orgs = json.load(f)
    config = {}
    if args.delivery_config:
        with open(args.delivery_config) as f:
            config = json.load(f)
    deliver = Deliver(args.delivery, config) if args.delivery not in ("none", "tasks_file") else None
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.forks) as pool:
        futures = {pool.submit(rotate_org, org, deliver): org["name"] for org in orgs}
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
