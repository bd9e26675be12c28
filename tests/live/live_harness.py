"""The live-integration harness: a simulated fleet, one integration per consumer, faults, kills, checks.

- `LiveFleet`: N orgs in the simulator (one inventory host each, every 4th org with a second app of three
  consumers); `revoke_previous: true`. Orgs are dealt into fault families by index (`ORG_FAMILIES`, i mod 5),
  so that in a combined run every broken promise points at the fault that broke it, and, orthogonally, into
  target kinds (`ORG_KINDS`, i mod 3): an ansible-vault file, OpenBao (KV v2) or moto's Secrets Manager.
- `LiveStores`: the two real secret stores (tests/stores/servers.py): the tool's and the integrations' OpenBao
  tokens (policies limited to the run's prefix), the AWS credentials of the runs, the first pair of each
  store target, reads for the checks and for the integrations.
- `Integrations`: one simulated integration per consumer; a small pool of threads cycles through them: read
  the target (the vault file; a KV read or GetSecretValue, kept for a few seconds), authenticate with
  client_credentials over HTTPS, classify the answer.
- `VerifyBursts`: the fault predicate (`Simulator.add_fault(match=...)`) that answers 503 to the rotation's
  verification token requests (a request carrying a key that is staged `Active`).
- `Scenario`: the run loop (faulty runs, random SIGKILLs, reruns until the fleet converges) and the checks.

Only the public interface of the collection is used: `ansible-playbook playbooks/rotate.yml` with an
inventory, vault_file / hashi_vault / aws_secretsmanager delivery and a `verify_tasks_file` hook.
"""

import itertools
import json
import os
import random
import re
import resource
import statistics
import stat
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import requests
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "safety"))

from safety_helpers import MIN_SECRET_LEN, ROOT, SafetyRun, crash, find_secrets, mask, searchable  # noqa: E402
from fleet import ansible_playbook, decrypt_vault_file, e2e  # noqa: E402

from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_history import LOCK_FILE as HISTORY_LOCK  # noqa: E402

ADMIN = "admin@live.test"
VAULT_PASSWORD = "live integrations vault password 3"
INTEGRATION_AGENT = "sfdc-live-integration/1"

# fault families: selectable alone (pytest -k) or all together
FAMILIES = ("hook", "verify_503", "lost_patch", "lost_delete", "sigkill")
# how orgs are dealt (org i, 1-based, gets ORG_FAMILIES[i % 5]); SIGKILL hits the whole run
ORG_FAMILIES = ("hook", "verify_503", "lost_patch", "lost_delete", "clean")
# where each org's consumers are delivered (org i gets ORG_KINDS[i % 3]: 3 and 5 are coprime, so every family meets
# every kind); a kind left out of Settings.kinds falls back to vault_file
ORG_KINDS = ("vault_file", "hashi_vault", "aws_secretsmanager")
STORE_KINDS = ORG_KINDS[1:]
REFUSALS = ("invalid_client", "invalid_grant")

HOOK = """
- name: The integration's smoke test with the new pair (fails once for the chosen consumers)
  vars:
    live_hook_id: "{{ sfdc_eca_credential.org }}/{{ sfdc_eca_credential.app_name }}/{{ sfdc_eca_credential.consumer_name }}"
    live_hook_marker: "{{ live_hook_dir }}/{{ live_hook_id | replace('/', '-') }}"
  block:
    - name: Has the smoke test of this consumer failed before
      ansible.builtin.stat:
        path: "{{ live_hook_marker }}"
      register: live_hook_seen
      when: live_hook_id in live_hook_failing

    - name: Remember that it fails once, then fail
      when: live_hook_id in live_hook_failing and not live_hook_seen.stat.exists
      block:
        - name: Remember the failure
          ansible.builtin.copy:
            content: ""
            dest: "{{ live_hook_marker }}"
            mode: "0600"

        - name: Fail the smoke test
          ansible.builtin.fail:
            msg: "the integration's smoke test failed"

    - name: The smoke test passed
      ansible.builtin.assert:
        that: sfdc_eca_credential.key | length > 10
"""


# -- settings ------------------------------------------------------------------------------------

class Settings:
    """Sizes and knobs; pytest options (tests/live/conftest.py) or SFDC_LIVE_* variables."""

    def __init__(self, orgs=100, seed=None, kills=2, auth_rate=None, auth_threads=4, max_reruns=4, forks=10,
                 log_dir=None, kinds=ORG_KINDS, store_max_age=None):
        self.orgs = int(orgs)
        kinds = kinds.split(",") if isinstance(kinds, str) else list(kinds)
        wrong = [k for k in kinds if k not in ORG_KINDS]
        if wrong or not kinds:
            raise ValueError("live target kinds %s: choose among %s" % (kinds, ", ".join(ORG_KINDS)))
        self.kinds = tuple(k for k in ORG_KINDS if k in kinds)
        self.seed = int(seed) if seed not in (None, "") else random.SystemRandom().randrange(1, 2 ** 31)
        self.kills = int(kills)
        # authentications per second of all integrations together; default: each every 2 s, 50 to 150 per
        # second (about 3 ms of CPU each, client and simulator)
        self.auth_rate = float(auth_rate) if auth_rate not in (None, "") else None
        self.auth_threads = int(auth_threads)
        self.max_reruns = int(max_reruns)
        self.forks = int(forks)
        self.log_dir = Path(log_dir) if log_dir else ROOT / ".tmp" / "test-logs" / "live"
        # how long a store integration uses what it read before it reads the store again (it always reads again
        # after a refusal); default: about every third authentication, at least 5 s
        self.store_max_age = float(store_max_age) if store_max_age not in (None, "") else None


def live_seed(n):
    orgs = []
    for i in range(1, n + 1):
        apps = [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]
        if i % 4 == 1:
            apps.append({"developer_name": "Data_Loader",
                         "consumers": [{"name": "Primary"}, {"name": "Secondary"}, {"name": "Tertiary"}]})
        orgs.append({"name": org_name(i), "admin": {"username": ADMIN}, "apps": apps})
    return {"orgs": orgs}


def org_name(i):
    return "live%03d" % i


def org_family(org):
    return ORG_FAMILIES[int(org[4:]) % len(ORG_FAMILIES)]


def org_kind(org, kinds=ORG_KINDS):
    kind = ORG_KINDS[int(org[4:]) % len(ORG_KINDS)]
    return kind if kind in kinds else "vault_file"


def suffix(key):
    return "..." + (key or "")[-4:]


# -- vault targets ---------------------------------------------------------------------------------

class Target:
    """One consumer and where its integration reads its pair: a vault file (`path`) or a store's secret
    (`store_id`: the KV path under the mount, or the Secrets Manager secret name)."""

    def __init__(self, org, app, app_id, consumer, consumer_id, instance_url, kind="vault_file", path=None,
                 store_id=None):
        self.org, self.app, self.app_id = org, app, app_id
        self.consumer, self.consumer_id = consumer, consumer_id
        self.kind = kind
        self.path = Path(path) if path is not None else None
        self.store_id = store_id
        self.instance_url = instance_url
        self.family = org_family(org)
        self.name = "%s %s/%s" % (org, app, consumer)
        self.tag = "%s/%s" % (self.family, kind)    # "[family/kind]" in every problem line

    def credential(self, key, secret):
        return {"instance_url": self.instance_url, "org": self.org, "app_name": self.app, "app_id": self.app_id,
                "consumer_name": self.consumer, "consumer_id": self.consumer_id, "key": key, "secret": secret}


def _vault():
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret
    return VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(VAULT_PASSWORD.encode()))])


def write_vault_file(path, data):
    """What an earlier deployment left: the consumer's pair, encrypted, 0600 (written atomically)."""
    text = _vault().encrypt(yaml.safe_dump(data, sort_keys=False))
    tmp = Path(str(path) + ".harness")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text)
    os.replace(tmp, path)


# -- secret-store targets --------------------------------------------------------------------------

class LiveStores:
    """The run's real secret stores (tests/stores/servers.py, started by the test) and who may do what there.

    OpenBao: KV v2 at `secret/`, every target under `<prefix>/`; the tool's token (in the inventory) may create,
    update and read there and nowhere else; the integrations' token may only read there. moto: Secrets Manager
    (reset for each test); its fixture keys reach the runs only as AWS_* variables of ansible-playbook's
    environment. Both tokens and the keys are in `secrets()`, searched for by the leak scan."""

    def __init__(self, openbao=None, moto=None, prefix="live"):
        self.openbao, self.moto, self.prefix = openbao, moto, prefix
        self.local = threading.local()
        self.lock = threading.Lock()
        self.reads = {k: 0 for k in STORE_KINDS}     # the integrations' reads
        self.read_errors = {k: 0 for k in STORE_KINDS}
        self._admin_aws = None
        self.tool_token = self.reader_token = None
        if openbao is not None:
            place = 'path "secret/data/%s/*"' % prefix
            deliver = openbao.policy(prefix + "-deliver", place + ' {\n  capabilities = ["create", "update", "read"]\n}\n')
            read = openbao.policy(prefix + "-read", place + ' {\n  capabilities = ["read"]\n}\n')
            self.tool_token = openbao.token([deliver], ttl="24h")
            self.reader_token = openbao.token([read], ttl="24h")

    @property
    def kinds(self):
        return tuple(k for k, server in zip(STORE_KINDS, (self.openbao, self.moto)) if server is not None)

    def store_id(self, org, app, consumer):
        return "%s/%s/%s/%s" % (self.prefix, org, app, consumer)

    def deliver(self, kind):
        """The inventory's `deliver` of an entry delivered to this store."""
        template = self.prefix + "/{org}/{app_name}/{consumer_name}"
        if kind == "hashi_vault":
            return {"hashi_vault": {"url": self.openbao.url, "mount": "secret", "path": template,
                                    "token": self.tool_token}}
        return {"aws_secretsmanager": {"secret_id": template, "endpoint_url": self.moto.url}}

    def env(self):
        """ansible-playbook's environment: moto's keys for boto3's chain; no instance metadata (not loopback)."""
        if self.moto is None:
            return {}
        return {"AWS_ACCESS_KEY_ID": self.moto.access_key, "AWS_SECRET_ACCESS_KEY": self.moto.secret_key,
                "AWS_REGION": self.moto.region, "AWS_EC2_METADATA_DISABLED": "true"}

    def secrets(self):
        out = set()
        for server in (self.openbao, self.moto):
            if server is not None:
                out |= set(server.issued)
        return out

    # -- the harness's own access (root token, fixture keys): the first pair and the checks ---------------

    def _aws(self):
        if self._admin_aws is None:
            self._admin_aws = self._aws_client()
        return self._admin_aws

    def _aws_client(self):
        import boto3
        import botocore.config
        session = boto3.session.Session(aws_access_key_id=self.moto.access_key,
                                        aws_secret_access_key=self.moto.secret_key, region_name=self.moto.region)
        return session.client("secretsmanager", endpoint_url=self.moto.url, config=botocore.config.Config(
            connect_timeout=5, read_timeout=20, retries={"max_attempts": 3}, proxies={}))

    def put(self, t, data):
        """What an earlier deployment left: the consumer's pair in its secret (a new version if it exists)."""
        if t.kind == "hashi_vault":
            self.openbao.kv_put(t.store_id, data)
            return
        client = self._aws()
        try:
            client.create_secret(Name=t.store_id, SecretString=json.dumps(data))
        except client.exceptions.ResourceExistsException:
            client.put_secret_value(SecretId=t.store_id, SecretString=json.dumps(data))

    def get(self, t):
        """The data the target holds now, or None."""
        if t.kind == "hashi_vault":
            answer = self.openbao.kv_get(t.store_id)
            return answer["data"] if answer else None
        client = self._aws()
        try:
            return json.loads(client.get_secret_value(SecretId=t.store_id)["SecretString"])
        except client.exceptions.ResourceNotFoundException:
            return None

    def listing(self, kind):
        """Every secret the store holds under the prefix (moto: every secret; it is reset for each test)."""
        if kind == "hashi_vault":
            out, todo = [], [self.prefix + "/"]
            while todo:
                folder = todo.pop()
                answer = self.openbao.api("GET", "secret/metadata/%s?list=true" % folder) or {}
                for k in answer.get("data", {}).get("keys", []):
                    (todo if k.endswith("/") else out).append(folder + k)
            return sorted(out)
        names = []
        for page in self._aws().get_paginator("list_secrets").paginate():
            names += [x["Name"] for x in page["SecretList"]]
        return sorted(names)

    def versions(self, t):
        """Versions the target holds (the harness wrote the first)."""
        if t.kind == "hashi_vault":
            meta = self.openbao.kv_metadata(t.store_id)
            return meta["current_version"] if meta else 0
        answer = self._aws().list_secret_version_ids(SecretId=t.store_id, IncludeDeprecated=True)
        return len(answer["Versions"])

    # -- the integrations' reads: their own token / client per thread, over HTTP --------------------------

    def read(self, t):
        """What the integration reads: one KV v2 read with the read-only token, or one GetSecretValue."""
        with self.lock:
            self.reads[t.kind] += 1
        try:
            if t.kind == "hashi_vault":
                http = getattr(self.local, "vault", None)
                if http is None:
                    http = self.local.vault = requests.Session()
                    http.trust_env = False
                    http.headers["X-Vault-Token"] = self.reader_token
                r = http.get("%s/v1/secret/data/%s" % (self.openbao.url, t.store_id), timeout=20)
                r.raise_for_status()
                return r.json()["data"]["data"]
            client = getattr(self.local, "aws", None)
            if client is None:
                client = self.local.aws = self._aws_client()
            return json.loads(client.get_secret_value(SecretId=t.store_id)["SecretString"])
        except Exception:
            with self.lock:
                self.read_errors[t.kind] += 1
            raise


# -- the fleet -------------------------------------------------------------------------------------

class LiveFleet:
    def __init__(self, sim, base, settings, families, rng, stores=None):
        self.sim = sim
        self.stores = stores
        self.kinds = tuple(k for k in settings.kinds if k == "vault_file" or (stores and k in stores.kinds))
        self.settings = settings
        self.families = set(families)
        self.rng = rng
        self.base = Path(base)
        self.config = self.base / "config"          # inputs: inventory (admin secrets), hook, vault password
        self.config.mkdir(parents=True)
        self.sandbox = SafetyRun(self.base / "run")  # everything the runs may write
        self.vault_dir = self.sandbox.base / "vaults"
        self.report_dir = self.sandbox.base / "report"
        self.vault_dir.mkdir()
        self.password_file = self.config / "vault-password"
        self.password_file.write_text(VAULT_PASSWORD + "\n")
        self.password_file.chmod(0o600)
        self.hook_file = self.config / "verify_hook.yml"
        self.hook_file.write_text(HOOK)
        self.hook_dir = self.base / "hook-state"    # which consumers' hook has failed once
        self.hook_dir.mkdir()
        self.orgs = list(sim.orgs)
        self._read_cache = {}
        self.targets = []
        hosts = {}
        for org in self.orgs:
            entries = []
            o = sim.org(org)
            kind = org_kind(org, self.kinds)
            for app in o.apps:
                if app.developer_name == o.admin_app.developer_name:
                    continue
                if kind == "vault_file":
                    deliver = {"vault_file": str(self.vault_dir / "{org}-{app_name}-{consumer_name}.yml"),
                               "vault_password_file": str(self.password_file)}
                else:
                    deliver = stores.deliver(kind)
                entry = {"app_name": app.developer_name, "deliver": deliver}
                if org_family(org) == "hook" and "hook" in self.families:
                    entry["verify_tasks_file"] = str(self.hook_file)
                entries.append(entry)
                for c in app.consumers:
                    if kind == "vault_file":
                        where = {"path": self.vault_dir / ("%s-%s-%s.yml" % (org, app.developer_name, c.name))}
                    else:
                        where = {"store_id": stores.store_id(org, app.developer_name, c.name)}
                    self.targets.append(Target(org, app.developer_name, app.id, c.name, c.id, o.instance_url, kind,
                                               **where))
            # both settings of replace_rotated (it decides what a rerun does with a Rotated pair it finds)
            extra = {"sfdc_eca_replace_rotated": True} if int(org[4:]) % 2 == 0 else {}
            hosts[org] = e2e.org_host(sim, org, entries, retry_backoff=0.01, **extra)
        self.inventory = e2e.write_inventory(self.config / "inventory.yml", hosts, {"sfdc_eca_revoke_previous": True})
        self.original = {t.name: self.sim.org(t.org).app(t.app).consumer(t.consumer).main for t in self.targets}
        for t in self.targets:
            pair = self.original[t.name]
            if t.kind == "vault_file":
                write_vault_file(t.path, t.credential(pair["key"], pair["secret"]))
            else:
                stores.put(t, t.credential(pair["key"], pair["secret"]))
        self.config_files = sorted(p.name for p in self.config.iterdir())
        # the hook's failing consumers: about half of the consumers of the hook orgs
        self.hook_failing = sorted("%s/%s/%s" % (t.org, t.app, t.consumer) for t in self.targets
                                   if t.family == "hook" and "hook" in self.families and rng.random() < 0.5)

    def by_org(self):
        out = {}
        for t in self.targets:
            out.setdefault(t.org, []).append(t)
        return out

    def consumer(self, t):
        return self.sim.org(t.org).app(t.app).consumer(t.consumer)

    def extra_vars(self):
        return json.dumps({
            "sfdc_eca_report_dir": str(self.report_dir), "sfdc_eca_verify_delay": 0, "sfdc_eca_verify_retries": 2,
            "sfdc_eca_canary_size": len(self.orgs),
            "live_hook_failing": self.hook_failing, "live_hook_dir": str(self.hook_dir)})

    def command(self):
        return [ansible_playbook(), "-i", self.inventory, str(ROOT / "playbooks" / "rotate.yml"),
                "-f", str(self.settings.forks), "-e", self.extra_vars()]

    def env(self):
        """Variables of ansible-playbook's environment beyond the sandbox's: the AWS credentials."""
        return self.stores.env() if self.stores else {}

    def by_kind(self):
        """{kind: {"orgs": n, "consumers": n}} of this fleet."""
        out = {k: {"orgs": 0, "consumers": 0} for k in self.kinds}
        for org, targets in self.by_org().items():
            out[targets[0].kind]["orgs"] += 1
            out[targets[0].kind]["consumers"] += len(targets)
        return out

    # -- state checks ------------------------------------------------------------------------------

    def read_data(self, t):
        """(data the target holds, None) or (None, why); a file not changed since the last read is not decrypted
        again; a store is read with the harness's own credentials."""
        try:
            if t.kind != "vault_file":
                data = self.stores.get(t)
                return (data, None) if isinstance(data, dict) else (None, "no secret" if data is None else "not a dict")
            st = os.stat(t.path)
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._read_cache.get(t.name, (None,))[0] == sig:
                return self._read_cache[t.name][1], None
            data = decrypt_vault_file(t.path, VAULT_PASSWORD)
        except Exception as exc:  # pylint: disable=broad-except
            return None, type(exc).__name__
        if not isinstance(data, dict):
            return None, "not a dict"
        self._read_cache[t.name] = (sig, data)
        return data, None

    def read_target(self, t):
        """((key, secret), None) or (None, why)."""
        data, error = self.read_data(t)
        return (None, error) if data is None else ((data.get("key"), data.get("secret")), None)

    def stray_secrets(self):
        """Secrets in the stores that are no consumer's target (a wrong path, a write outside the targets)."""
        out = []
        for kind in (self.stores.kinds if self.stores else ()):
            expected = {t.store_id for t in self.targets if t.kind == kind}
            out += ["%s: %s [fleet/%s]" % (kind, name, kind) for name in self.stores.listing(kind) if name not in expected]
        return out

    @staticmethod
    def promotions(log):
        """{consumer id (15 characters): PATCH rotate requests that took effect} (answered 200, or performed
        before the connection was reset)."""
        out = {}
        for e in log:
            if e["method"] == "PATCH" and (e["status"] == 200 or e.get("fault") == "crash_after_write"):
                parts = e["path"].split("/")
                if "staged" in parts:
                    cid = parts[parts.index("staged") - 1][:15]
                    out[cid] = out.get(cid, 0) + 1
        return out

    def consumer_state(self, t):
        c = self.consumer(t)
        data, error = self.read_data(t)
        held = None if data is None else (data.get("key"), data.get("secret"))
        return {"main": c.main, "staged": c.staged, "held": held, "data": data, "read_error": error}

    def last_rows(self):
        """{target name: the last report's outcome, phase and error} (the report of the last run that wrote one)."""
        path = self.report_dir / "report.json"
        if not path.exists():
            return {}
        out = {}
        for r in json.loads(path.read_text()).get("rows", []):
            text = "; last report: %s" % r.get("outcome")
            if r.get("outcome") == "failed":
                text += " at %s: %s" % (r.get("phase"), r.get("error"))
            out["%s %s/%s" % (r.get("org"), r.get("app_name"), r.get("consumer_name"))] = text
        return out

    def not_converged(self):
        """{target name: why} for every consumer not (yet) in its final state."""
        out = {}
        for t in self.targets:
            s = self.consumer_state(t)
            why = []
            if s["main"]["key"] == self.original[t.name]["key"]:
                why.append("main key unchanged")
            if s["staged"] is not None:
                why.append("staged slot holds a %s pair %s" % (s["staged"]["state"], suffix(s["staged"]["key"])))
            if s["held"] is None:
                why.append("target unreadable (%s)" % s["read_error"])
            elif s["held"] != (s["main"]["key"], s["main"]["secret"]):
                why.append("target holds %s, main is %s" % (suffix(s["held"][0]), suffix(s["main"]["key"])))
            else:
                expected = t.credential(s["main"]["key"], s["main"]["secret"])
                wrong = sorted(k for k in set(expected) | set(s["data"]) if s["data"].get(k) != expected.get(k))
                if wrong:
                    why.append("target's %s differ from the consumer's" % ", ".join(wrong))
            if why:
                out[t.name] = "; ".join(why)
        return out


# -- the rotation's verification under 503 bursts -------------------------------------------------

class VerifyBursts:
    """Match predicate of an `unavailable` fault on the token endpoint: the first n token requests of the tool
    carrying a key that is staged `Active` in that org get 503, per run and key (n drawn from the seeded RNG:
    short bursts the client's retries absorb, medium ones a verification retry absorbs, long ones that outlast
    every retry). While a key's burst lasts, the integrations presenting that key get 503 as well."""

    LENGTHS = ((3, 0.4), (8, 0.3), (10 ** 6, 0.3))

    def __init__(self, sim, orgs, seed):
        self.sim = sim
        self.orgs = set(orgs)
        self.seed = seed
        self.run = 0
        self.active = False
        self.left = {}
        self.drawn = []          # (run, org, key suffix, length)
        self.hits = {"tool": 0, "integration": 0}
        self.__name__ = "verify_bursts"

    def start(self, run, active):
        self.run, self.active = run, active

    def _length(self, org, consumer_id):
        # drawn per seed, consumer and run: the same whatever order the orgs' requests arrive in
        x = random.Random("%s/%s/%s/%s" % (self.seed, org, consumer_id, self.run)).random()
        for n, p in self.LENGTHS:
            if x < p:
                return n
            x -= p
        return self.LENGTHS[-1][0]

    def __call__(self, req):
        org = req.listener.tag
        if not self.active or org not in self.orgs:
            return False
        params = urllib.parse.parse_qs((req.body or b"").decode("utf-8", "replace"))
        key = (params.get("client_id") or [""])[-1]
        if not key or params.get("grant_type", [""])[-1] != "client_credentials":
            return False
        staged = None
        for app in self.sim.org(org).apps:
            for c in app.consumers:
                s = c.staged
                if s and s["state"] == "Active" and s["key"] == key:
                    staged = c.id
        if staged is None:
            return False
        slot = (self.run, key)
        tool = req.headers.get("user-agent") != INTEGRATION_AGENT
        if slot not in self.left:
            if not tool:
                return False
            n = self._length(org, staged)
            self.left[slot] = n
            self.drawn.append((self.run, org, suffix(key), n))
        if self.left[slot] <= 0:
            return False
        if tool:
            self.left[slot] -= 1
        self.hits["tool" if tool else "integration"] += 1
        return True


# -- the integrations ------------------------------------------------------------------------------

class Integration:
    def __init__(self, target, stores=None, max_age=5.0):
        self.target = target
        self.stores = stores
        self.max_age = max_age      # a store's answer is used this long (a file is read when it changed)
        self.cache = (None, None)   # (stat signature or read time, pair)
        self.attempts = 0           # token requests sent
        self.ok = 0                 # authenticated
        self.stale = 0              # refused, but the target changed meanwhile
        self.transient = 0          # 5xx / 429 / connection error (retried)
        self.unreadable = 0         # target could not be read
        self.failures = []          # refused while the target still holds the pair

    def read(self, force=False):
        t = self.target
        if t.kind != "vault_file":
            if not force and self.cache[0] is not None and time.monotonic() - self.cache[0] < self.max_age:
                return self.cache[1]
            try:
                data = self.stores.read(t)
                pair = (data["key"], data["secret"])
            except Exception:  # pylint: disable=broad-except
                return None
            self.cache = (time.monotonic(), pair)
            return pair
        try:
            st = os.stat(t.path)
        except OSError:
            return None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if not force and self.cache[0] == sig:
            return self.cache[1]
        try:
            data = yaml.safe_load(_vault().decrypt(t.path.read_bytes()))
            pair = (data["key"], data["secret"])
        except Exception:  # pylint: disable=broad-except
            return None
        self.cache = (sig, pair)
        return pair


class Integrations:
    """A pool of threads cycling through every consumer's integration at about `rate` authentications/s."""

    def __init__(self, fleet, rate, threads, clock, store_max_age=None):
        self.fleet = fleet
        self.rate = rate
        # a store integration reads its store about every third authentication, at least 5 s apart
        self.store_max_age = store_max_age or max(5.0, 3 * len(fleet.targets) / rate)
        self.items = [Integration(t, fleet.stores, self.store_max_age) for t in fleet.targets]
        self.threads = threads
        self.clock = clock       # () -> (run number, seconds into the run) for failure records
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.sent = {}           # org -> token requests answered (for the tool's own call count)
        # orgs dealt to the threads, balancing their integrations
        load = [0] * threads
        self.thread_of = {}
        for org, targets in fleet.by_org().items():
            i = load.index(min(load))
            self.thread_of[org] = i
            load[i] += len(targets)
        self.workers = []
        self.started = self.stopped = None

    def start(self):
        self.started = time.time()
        for i in range(self.threads):
            th = threading.Thread(target=self._work, args=(i,), name="integration-%d" % i, daemon=True)
            th.start()
            self.workers.append(th)

    def stop(self):
        self.stop_event.set()
        for th in self.workers:
            th.join(30)
        self.stopped = time.time()
        self.during = [it.ok for it in self.items]   # authentications while the fleet was being rotated

    def final_pass(self):
        """After the last run: every integration authenticates once more."""
        http = self._session(hosts=len(self.fleet.orgs))
        for it in self.items:
            self.authenticate(it, http)
        http.close()

    def _session(self, hosts=10):
        """HTTPS with the simulator's CA; one kept-alive connection per org (a real integration keeps its own)."""
        http = requests.Session()
        http.trust_env = False
        http.verify = self.fleet.sim.ca_path
        http.headers["User-Agent"] = INTEGRATION_AGENT
        adapter = requests.adapters.HTTPAdapter(pool_connections=hosts, pool_maxsize=1)
        http.mount("https://", adapter)
        return http

    def _work(self, index):
        # each org's integrations are served by one thread: one kept-alive connection per org
        mine = [it for it in self.items if self.thread_of[it.target.org] == index]
        if not mine:
            return
        http = self._session(hosts=len({it.target.org for it in mine}) + 1)
        interval = self.threads / self.rate
        order = itertools.cycle(mine)
        while not self.stop_event.is_set():
            began = time.monotonic()
            it = next(order)
            try:
                self.authenticate(it, http)
            except Exception as exc:  # pylint: disable=broad-except
                with self.lock:
                    it.failures.append({"what": "harness error %s" % type(exc).__name__, "run": self.clock()})
            self.stop_event.wait(max(0.0, interval - (time.monotonic() - began)))
        http.close()

    def _count(self, org):
        with self.lock:
            self.sent[org] = self.sent.get(org, 0) + 1

    def authenticate(self, it, http, tries=5):
        t = it.target
        for attempt in range(tries):
            pair = it.read()
            if pair is None:
                it.unreadable += 1
                return
            it.attempts += 1
            try:
                r = http.post(t.instance_url + "/services/oauth2/token", timeout=20,
                              data={"grant_type": "client_credentials", "client_id": pair[0], "client_secret": pair[1]})
            except requests.RequestException:
                it.transient += 1
                time.sleep(0.2)
                continue
            self._count(t.org)
            if r.status_code == 200:
                it.ok += 1
                return
            if r.status_code >= 500 or r.status_code == 429:
                it.transient += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            try:
                error = r.json().get("error")
            except ValueError:
                error = None
            again = it.read(force=True)
            if error in REFUSALS and again == pair:
                it.failures.append({"integration": t.name, "tag": t.tag, "key": suffix(pair[0]),
                                    "error": error, "run": self.clock(), "slot": self._slot(t)})
            elif error in REFUSALS and again is not None:
                # the target holds another pair now: the integration switches to it
                it.stale += 1
                continue
            elif error in REFUSALS:
                it.unreadable += 1
            else:
                it.failures.append({"integration": t.name, "tag": t.tag, "key": suffix(pair[0]),
                                    "error": "HTTP %d %s" % (r.status_code, error), "run": self.clock()})
            return

    def _slot(self, t):
        s = self.fleet.consumer(t).staged
        return None if s is None else "%s %s" % (s["state"], suffix(s["key"]))

    def totals(self):
        auths = getattr(self, "during", None) or [it.ok for it in self.items]
        return {
            "integrations": len(self.items),
            "auth_rate_target": self.rate,
            "auth_attempts": sum(it.attempts for it in self.items),
            "auth_ok": sum(auths),
            "auth_failures": sum(len(it.failures) for it in self.items),
            "integrations_failing": sum(1 for it in self.items if it.failures),
            "stale_reads": sum(it.stale for it in self.items),
            "transient_answers": sum(it.transient for it in self.items),
            "unreadable_reads": sum(it.unreadable for it in self.items),
            "auths_per_integration_min": min(auths) if auths else 0,
            "auths_per_integration_median": statistics.median(auths) if auths else 0,
            "store_max_age_seconds": round(self.store_max_age, 1),
            "by_kind": self.totals_by_kind(auths),
        }

    def totals_by_kind(self, auths):
        out = {}
        stores = self.fleet.stores
        for kind in self.fleet.kinds:
            mine = [(it, n) for it, n in zip(self.items, auths) if it.target.kind == kind]
            during = [n for dummy, n in mine]
            out[kind] = {
                "integrations": len(mine),
                "auth_attempts": sum(it.attempts for it, dummy in mine),
                "auth_failures": sum(len(it.failures) for it, dummy in mine),
                "integrations_failing": sum(1 for it, dummy in mine if it.failures),
                "stale_reads": sum(it.stale for it, dummy in mine),
                "unreadable_reads": sum(it.unreadable for it, dummy in mine),
                "auths_per_integration_min": min(during) if during else 0,
                "auths_per_integration_median": statistics.median(during) if during else 0,
                "store_reads": stores.reads[kind] if kind in STORE_KINDS and stores else None,
                "store_read_errors": stores.read_errors[kind] if kind in STORE_KINDS and stores else None,
            }
        return out

    def failures(self):
        return [f for it in self.items for f in it.failures]


class SecretFinder:
    """`find_secrets` of the safety suite for a very large set of secrets: a secret can only occur inside a run
    of the characters secrets are made of, so only the windows of those runs are looked up."""

    def __init__(self, secrets):
        secrets = searchable(secrets)
        self.multiline = {x for x in secrets if "\n" in x}
        self.plain = secrets - self.multiline
        self.by_length = {}
        for x in self.plain:
            self.by_length.setdefault(len(x), set()).add(x)
        alphabet = "".join(sorted(set("".join(self.plain))))
        self.runs = re.compile("[%s]{%d,}" % (re.escape(alphabet), min(self.by_length or [MIN_SECRET_LEN])))

    def find(self, blob):
        if isinstance(blob, bytes):
            blob = blob.decode("utf-8", "replace")
        found = set()
        if self.plain:
            for m in self.runs.finditer(blob):
                run = m.group()
                for length, group in self.by_length.items():
                    for i in range(len(run) - length + 1):
                        if run[i:i + length] in group:
                            found.add(mask(run[i:i + length]))
        if self.multiline:
            found.update(find_secrets(blob, self.multiline))
        return sorted(found)


# -- the scenario ----------------------------------------------------------------------------------

class Killer:
    """SIGKILL of the current run: ansible-playbook and all its processes (`crash`).

    As the predicate of a `latency` fault of 0 s that never applies (`observe`) it sees every REST write the
    fleet sends: a run marked for a random kill is killed a random delay after its k-th write (k and the
    delay drawn from the seeded RNG). `lost_reply(family)` returns the predicate of a `crash_after_write`
    fault: it always applies, and the first time it fires for a family the run is killed on the spot, so the
    write is performed, its reply lost and the process gone before it can look (a lost reply, then a crash)."""

    def __init__(self, rng):
        self.rng = rng
        self.proc = None
        self.target = None      # k of the current run, or None
        self.writes = 0
        self.reason = self.kind = None
        self.crashed = set()    # families whose lost reply was followed by a crash
        self.timer = None
        self.seen = 0           # REST requests handled
        self.killed = 0         # processes of the last crash
        self.lock = threading.Lock()
        self.__name__ = "write_observer"

    def arm(self, proc, target):
        self.proc, self.target, self.writes, self.reason, self.kind, self.timer = proc, target, 0, None, None, None
        self.killed = 0

    def kill(self, reason, kind="random"):
        with self.lock:
            if self.reason is None and self.proc is not None:
                self.reason, self.kind = reason, kind
                self.killed = len(crash(self.proc))

    def wait(self, proc):
        """The run's exit status, once a crash in progress has reached every process."""
        rc = proc.wait()
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
        return rc

    def settle(self, quiet=0.5, timeout=30):
        """Wait until the simulator has handled what a finished (or killed) run sent: requests read before a
        kill are still answered, and must not count for the next run."""
        end = time.time() + timeout
        last = -1
        while time.time() < end and last != self.seen:
            last = self.seen
            time.sleep(quiet)

    def __call__(self, req):
        self.seen += 1
        if req.method in ("POST", "PATCH", "DELETE") and req.path.startswith("/services/data/"):
            self.writes += 1
            if self.target is not None and self.writes == self.target:
                delay = round(self.rng.uniform(0, 0.02), 3)
                self.timer = threading.Timer(delay, self.kill, ("%.3f s after write %d (%s %s)"
                                                                % (delay, self.target, req.method, req.listener.tag),))
                self.timer.start()
        return False

    def lost_reply(self, family):
        def predicate(req):
            if family not in self.crashed and self.proc is not None and self.proc.poll() is None:
                self.crashed.add(family)
                self.kill("lost %s reply of %s, then crash" % (req.method, req.listener.tag), "lost_reply")
            return True
        predicate.__name__ = "lost_reply_" + family
        return predicate


class Scenario:
    """Faulty runs, then reruns until the fleet converges; every check over the whole run.

    Phase 1: every fault armed; with sigkill, runs are killed at a random moment until `kills` random kills
    landed, then one runs to its end (at most kills+4 runs). Phase 2 (at most 2 more runs): while a lost-reply fault has not fired yet.
    Verification bursts last one run longer than phase 1. Then every fault is cleared and the fleet is rerun
    until it converges (max_reruns)."""

    def __init__(self, sim, base, settings, families, stores=None):
        self.sim = sim
        self.settings = settings
        self.families = tuple(f for f in FAMILIES if f in families)
        self.name = "+".join(self.families) if len(self.families) < len(FAMILIES) else "all"
        self.rng = random.Random(settings.seed)          # kill moments
        self.fleet = LiveFleet(sim, base, settings, self.families, random.Random(settings.seed), stores)
        self.runs = []
        self.run_no = 0
        self.run_started = None
        self.bursts = None
        self.converged_after = None
        self.bursts_until = float("inf")
        self.wall = None
        self.scanned = None
        self.cpu = {}
        self.versions = {}
        self.tree_before = _project_files()
        self.killer = Killer(self.rng)
        sim.add_fault("*", "latency", method="*", endpoint="*", times=None, seconds=0, match=self.killer)
        if "verify_503" in self.families:
            self.bursts = VerifyBursts(sim, [o for o in self.fleet.orgs if org_family(o) == "verify_503"],
                                       settings.seed)
            sim.add_fault("*", "unavailable", method="POST", endpoint="token", times=None, match=self.bursts)
        rate = settings.auth_rate or min(150.0, max(50.0, len(self.fleet.targets) / 2.0))
        self.integrations = Integrations(self.fleet, rate, settings.auth_threads, self.clock, settings.store_max_age)

    def clock(self):
        return {"run": self.run_no, "at": round(time.time() - self.run_started, 2) if self.run_started else None}

    @property
    def kills(self):
        return self.settings.kills if "sigkill" in self.families else 0

    def arm(self):
        for org in self.fleet.orgs:
            family = org_family(org)
            if family not in self.families:
                continue
            if family == "lost_patch":
                self.sim.add_fault(org, "crash_after_write", method="PATCH", endpoint="staged_item", times=1,
                                   match=self.killer.lost_reply(family))
            elif family == "lost_delete":
                self.sim.add_fault(org, "crash_after_write", method="DELETE", endpoint="staged_item", times=1,
                                   match=self.killer.lost_reply(family))
            elif family == "verify_503" and int(org[4:]) % 2:
                # a promotion refused (503, every retry): the delivered pair waits Active for the next run,
                # which verifies it again under the bursts
                self.sim.add_fault(org, "unavailable", method="PATCH", endpoint="staged_item", times=None)

    def unfired(self, kind=None):
        return [f for f in self.sim.faults() if not str(f.get("match", "")).startswith(("verify_bursts", "write_observer"))
                and (kind is None or f["kind"] == kind)]

    def disarm(self, kind=None):
        for f in self.unfired(kind):
            self.sim.clear_faults(f["org"])

    def run(self, kill=False):
        self.run_no += 1
        if self.bursts:
            self.bursts.start(self.run_no, self.run_no <= self.bursts_until)
        remaining = len(self.fleet.not_converged()) or 1
        target = self.rng.randint(1, 3 * remaining) if kill else None
        proc = self.fleet.sandbox.popen(self.fleet.command(), extra_env=self.fleet.env())
        self.run_started = started = time.time()
        self.killer.arm(proc, target)
        rc = self.killer.wait(proc)
        seconds = round(time.time() - started, 2)
        writes = sum(1 for e in self.sim.requests() if e["method"] in ("POST", "PATCH", "DELETE")
                     and e["path"].startswith("/services/data/") and started <= e["time"])
        record = {"run": self.run_no, "killed": self.killer.reason, "kill_kind": self.killer.kind,
                  "processes_killed": self.killer.killed,
                  "kill_target_write": target, "rc": rc,
                  "seconds": seconds, "writes": writes,
                  "output": "popen-%d.out" % (len(self.fleet.sandbox.outputs) - 1)}
        self.killer.arm(None, None)
        self.killer.settle()
        self.runs.append(record)
        return record

    def _cpu(self):
        servers = self.fleet.stores and {k: s for k, s in zip(STORE_KINDS, (self.fleet.stores.openbao,
                                                                            self.fleet.stores.moto)) if s} or {}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return dict({"harness, simulator and integrations": time.process_time(),
                     "ansible-playbook runs": children.ru_utime + children.ru_stime},
                    **{"%s server" % k: s.cpu_seconds() or 0.0 for k, s in servers.items()})

    def play(self):
        started = time.time()
        cpu = self._cpu()
        self.integrations.start()
        try:
            self.arm()
            while self.run_no < self.kills + 4:
                random_kills = sum(1 for r in self.runs if r["kill_kind"] == "random")
                if self.runs and ((random_kills >= self.kills and not self.runs[-1]["killed"])
                                  or (not self.unfired() and not self.fleet.not_converged())):
                    break
                self.run(kill=random_kills < self.kills)
            # the run after the refused promotions verifies the delivered pairs again: still under the bursts
            self.disarm("unavailable")
            self.bursts_until = self.run_no + 1
            phase_two = self.run_no + 2
            while self.unfired() and self.run_no < phase_two:
                self.run()
            self.disarm()
            last = self.run_no + self.settings.max_reruns
            while self.fleet.not_converged() and self.run_no < last:
                self.run()
            if not self.fleet.not_converged():
                self.converged_after = self.run_no
            time.sleep(0.5)
        finally:
            self.integrations.stop()
        self.integrations.final_pass()
        self.wall = round(time.time() - started, 1)
        self.cpu = {k: round(v - cpu[k], 1) for k, v in self._cpu().items()}
        return self

    # -- checks ------------------------------------------------------------------------------------

    def checks(self):
        began = time.time()
        fleet = self.fleet
        promoted = fleet.promotions(self.sim.requests())
        problems = {}
        problems["integration auth failures (refused while the target held the pair)"] = self.failure_lines()
        rows = fleet.last_rows()
        tags = {t.name: t.tag for t in fleet.targets}
        problems["consumers not converged (new main key, staged slot empty, target holds the main pair)"] = [
            "%s [%s]: %s%s" % (name, tags[name], why, rows.get(name, ""))
            for name, why in sorted(fleet.not_converged().items())]
        once = []
        for t in fleet.targets:
            n = promoted.get(t.consumer_id[:15], 0)
            if n != 1:
                once.append("%s [%s]: promoted %d times" % (t.name, t.tag, n))
        problems["exactly one promotion per consumer"] = once
        problems["secrets in outputs, logs, reports, history"] = self.leaks()
        outside, left = self.stray_files()
        problems["files written outside the configured directories"] = outside
        problems["configured directories hold only the targets (0600) and reports (no temporary file left)"] = left
        problems["secret stores hold only the targets (under the run's prefix)"] = fleet.stray_secrets()
        self.versions = self.store_versions()
        self.checks_seconds = round(time.time() - began, 1)
        return problems

    def store_versions(self):
        """{kind: versions the runs wrote to its targets (total, max per target)}."""
        out = {}
        for kind in (self.fleet.stores.kinds if self.fleet.stores else ()):
            written = [self.fleet.stores.versions(t) - 1 for t in self.fleet.targets if t.kind == kind]
            out[kind] = {"total": sum(written), "max_per_target": max(written or [0])}
        return out

    def failure_lines(self):
        """One line per integration and refused key: how often, first and last time, the staged slot then."""
        groups = {}
        for f in self.integrations.failures():
            if "integration" not in f:
                groups[str(f)] = [f]
                continue
            groups.setdefault((f["integration"], f["tag"], f["key"], f["error"]), []).append(f)
        out = []
        for k, fs in groups.items():
            if isinstance(k, str):
                out.append(k)
                continue
            first, last = fs[0], fs[-1]
            out.append("%s [%s] %s %s x%d: first in run %s at %ss (staged slot: %s), last in run %s at %ss" % (
                k[0], k[1], k[2], k[3], len(fs), first["run"]["run"], first["run"]["at"], first.get("slot"),
                last["run"]["run"], last["run"]["at"]))
        return out

    def leaks(self):
        """Every secret the simulator issued or was shown (the integrations' access tokens too: hundreds of
        thousands at 500 orgs) searched in every file and output of the runs."""
        finder = SecretFinder(self.sim.secrets() | (self.fleet.stores.secrets() if self.fleet.stores else set()))
        sandbox = self.fleet.sandbox
        hits, files, size = [], 0, 0
        blobs = [(label, data) for label, data in sandbox.outputs if data is not None]
        for path in sorted(sandbox.base.rglob("*")):
            if path.is_file() and not path.is_symlink():
                files += 1
                blobs.append((str(path.relative_to(sandbox.base)), path.read_bytes()))
        for label, data in blobs:
            size += len(data)
            hits += ["%s: %s" % (label, found) for found in finder.find(data)]
        self.scanned = {"files": files, "bytes": size, "secrets": len(finder.plain) + len(finder.multiline)}
        return hits

    def stray_files(self):
        """(files outside the configured directories, unexpected files left inside them)."""
        fleet = self.fleet
        out, left = [], []
        files = [t for t in fleet.targets if t.kind == "vault_file"]
        expected = {t.path.name for t in files}
        for p in fleet.vault_dir.iterdir():
            if p.name not in expected:
                left.append("vault dir: %s" % p.name)
        for t in files:
            if t.path.exists() and stat.S_IMODE(t.path.stat().st_mode) != 0o600:
                left.append("%s: mode %o" % (t.path.name, stat.S_IMODE(t.path.stat().st_mode)))
        # the report dir is the tool's: only temporary files left behind count there (the history's
        # lock file is kept on purpose: removing a flock file races with the next run locking it)
        for p in (fleet.report_dir.rglob("*") if fleet.report_dir.exists() else ()):
            if p.is_file() and p.name != HISTORY_LOCK and (p.name.endswith(".tmp") or p.name.startswith(".")):
                left.append("report dir: %s" % p.relative_to(fleet.report_dir))
        work = list(fleet.sandbox.work.rglob("*"))
        out += ["working directory: %s" % p.relative_to(fleet.sandbox.work) for p in work]
        if sorted(p.name for p in fleet.config.iterdir()) != fleet.config_files:
            out.append("config dir changed: %s" % sorted(p.name for p in fleet.config.iterdir()))
        top = {p.name for p in fleet.base.iterdir()} - {"config", "run", "hook-state"}
        out += ["test dir: %s" % n for n in sorted(top)]
        added = sorted(_project_files() - self.tree_before)
        out += ["checkout: %s" % p for p in added]
        return out, left

    # -- figures -----------------------------------------------------------------------------------

    def api_calls(self):
        """Calls of the tool per consumer: REST requests, and token requests minus the integrations'."""
        log = self.sim.requests()
        by_org = self.fleet.by_org()
        rest, token = {}, {}
        for e in log:
            if e["org"] not in by_org:
                continue
            if e["endpoint"] == "token":
                token[e["org"]] = token.get(e["org"], 0) + 1
            elif e["path"].startswith("/services/data/"):
                rest[e["org"]] = rest.get(e["org"], 0) + 1
        per = {}
        for org, targets in by_org.items():
            tool_tokens = token.get(org, 0) - self.integrations.sent.get(org, 0)
            per[org] = (rest.get(org, 0) + tool_tokens) / len(targets)
        values = sorted(per.values())
        worst = max(per, key=per.get)
        clean = [v for o, v in per.items() if org_family(o) == "clean"] or values
        return {"api_calls_per_consumer_mean": round(statistics.mean(values), 2),
                "api_calls_per_consumer_median": round(statistics.median(values), 2),
                "api_calls_per_consumer_max": round(values[-1], 2), "api_calls_max_org": worst,
                "api_calls_per_consumer_clean_orgs_mean": round(statistics.mean(clean), 2),
                "rest_calls": sum(rest.values()),
                "tool_token_calls": sum(token.values()) - sum(self.integrations.sent.values())}

    def summary(self, problems):
        it = self.integrations.totals()
        not_conv = self.fleet.not_converged()
        by_kind = self.fleet.by_kind()
        for kind, figures in it.pop("by_kind").items():
            by_kind[kind].update(figures, store_versions_written=self.versions.get(kind))
        mix = {f: {k: 0 for k in self.fleet.kinds} for f in ORG_FAMILIES}
        for t in self.fleet.targets:
            mix[t.family][t.kind] += 1
        return dict({
            "scenario": self.name, "families": list(self.families), "orgs": len(self.fleet.orgs),
            "consumers": len(self.fleet.targets), "seed": self.settings.seed, "kills": self.kills,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": _commit(),
        }, **it, **{
            "consumers_converged": len(self.fleet.targets) - len(not_conv),
            "runs": self.run_no, "reruns": self.run_no - 1,
            "converged_after_run": self.converged_after,
            "wall_seconds": self.wall,
            "checks_seconds": getattr(self, "checks_seconds", None),
            "run_seconds": [r["seconds"] for r in self.runs],
            "run_log": self.runs,
            "hook_failing_consumers": len(self.fleet.hook_failing),
            "hook_failures_fired": len(list(self.fleet.hook_dir.iterdir())),
            "verify_bursts": None if not self.bursts else {
                "drawn": len(self.bursts.drawn), "long": sum(1 for d in self.bursts.drawn if d[3] > 100),
                "hits_tool": self.bursts.hits["tool"], "hits_integrations": self.bursts.hits["integration"]},
            "faults_left_unfired": self.unfired(),
            "scanned": self.scanned,
            "problems": {k: len(v) for k, v in problems.items()},
            "problems_by_family": _by_family(problems),
            "problems_by_kind": _by_kind(problems),
            "by_kind": by_kind,
            "consumers_by_family_and_kind": mix,
            "cpu_seconds": self.cpu,
            "problem_details": {k: v[:200] for k, v in problems.items() if v},
        }, **self.api_calls())


def _by_family(problems):
    """{family: {check: lines}} from the "[family/kind]" each line names (lines naming none: "fleet")."""
    return _by_tag(problems, 0, ORG_FAMILIES)


def _by_kind(problems):
    """{kind: {check: lines}} from the "[family/kind]" each line names (lines naming none: "fleet")."""
    return _by_tag(problems, 1, ORG_KINDS)


def _by_tag(problems, part, names):
    out = {}
    for check, lines in problems.items():
        for line in lines:
            tag = line.split("[", 1)[1].split("]", 1)[0] if "[" in line else ""
            parts = tag.split("/")
            name = parts[part] if len(parts) == 2 and parts[part] in names else "fleet"
            out.setdefault(name, {}).setdefault(check, 0)
            out[name][check] += 1
    return out


def _commit():
    try:
        import subprocess
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False).stdout.strip() or None
    except OSError:
        return None


def _project_files():
    skip = {".git", ".venv", ".tmp", "__pycache__", ".pytest_cache", ".hypothesis", "output"}
    out = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirnames[:] = [d for d in dirnames if d not in skip]
        for f in filenames:
            if not f.endswith(".pyc"):
                out.add(os.path.normpath(os.path.join(rel, f)))
    return out


SHORT = {"integration auth failures": "auth failures", "consumers not converged": "not converged",
         "exactly one promotion": "promoted != 1", "secrets in": "secrets", "files written outside": "files outside",
         "configured directories hold": "files left", "secret stores hold": "stray secrets"}


def _short(check):
    return next((v for k, v in SHORT.items() if check.startswith(k)), check)


def _rows(s):
    killed = ["run %d: %s" % (r["run"], r["killed"]) for r in s["run_log"] if r["killed"]]
    return (
        ("orgs / consumers", "%d / %d" % (s["orgs"], s["consumers"])),
        ("seed", s["seed"]),
        ("auth attempts", s["auth_attempts"]),
        ("auths per integration during the runs (min / median)",
         "%d / %s" % (s["auths_per_integration_min"], s["auths_per_integration_median"])),
        ("auth failures (integrations)", "%d (%d)" % (s["auth_failures"], s["integrations_failing"])),
        ("stale reads", s["stale_reads"]),
        ("transient answers (5xx/429/reset)", s["transient_answers"]),
        ("consumers converged", "%d / %d" % (s["consumers_converged"], s["consumers"])),
        ("runs (reruns)", "%d (%d)" % (s["runs"], s["reruns"])),
        ("runs killed", "; ".join(killed) or 0),
        ("API calls per consumer (mean / max)",
         "%s / %s" % (s["api_calls_per_consumer_mean"], s["api_calls_per_consumer_max"])),
        ("run seconds", ", ".join("%s%s" % (r["seconds"], " (killed)" if r["killed"] else "") for r in s["run_log"])),
        ("wall time", "%ss" % s["wall_seconds"]),
        ("problems by family", _problems(s["problems_by_family"])),
    ) + _kind_rows(s)


def _problems(by):
    return "; ".join("%s: %s" % (name, ", ".join("%s %d" % (_short(c), n) for c, n in checks.items()))
                     for name, checks in sorted(by.items())) or "none"


def _kind_rows(s):
    """Rows per target kind (vault_file, hashi_vault, aws_secretsmanager)."""
    by = s["by_kind"]
    kinds = list(by)
    each = lambda fmt: ", ".join("%s %s" % (k, fmt(by[k])) for k in kinds)  # noqa: E731
    rows = (
        ("target kinds: orgs / consumers", each(lambda f: "%d / %d" % (f["orgs"], f["consumers"]))),
        ("consumers per family (%s)" % " / ".join(kinds),
         ", ".join("%s %s" % (fam, " / ".join(str(n.get(k, 0)) for k in kinds))
                   for fam, n in s["consumers_by_family_and_kind"].items())),
        ("auths per integration by kind (min / median)",
         each(lambda f: "%d / %s" % (f["auths_per_integration_min"], f["auths_per_integration_median"]))),
        ("auth failures / stale reads by kind", each(lambda f: "%d / %d" % (f["auth_failures"], f["stale_reads"]))),
    )
    stores = [k for k in kinds if by[k].get("store_reads") is not None]
    if stores:
        rows += (
            ("store reads by the integrations (errors)", "%s; each integration at most every %ss" % (
                ", ".join("%s %d (%d)" % (k, by[k]["store_reads"], by[k]["store_read_errors"]) for k in stores),
                s["store_max_age_seconds"])),
            ("store versions the runs wrote (max per target)", ", ".join(
                "%s %s (%s)" % (k, (by[k]["store_versions_written"] or {}).get("total"),
                                (by[k]["store_versions_written"] or {}).get("max_per_target")) for k in stores)),
        )
    rows += (
        ("CPU seconds during the runs", ", ".join("%s %s" % (k, v) for k, v in s["cpu_seconds"].items())),
        ("problems by target kind", _problems(s["problems_by_kind"])),
    )
    return rows


def table(summary, problems):
    rows = _rows(summary)
    width = max(len(k) for k, dummy in rows)
    lines = ["live integrations: %s (families: %s)" % (summary["scenario"], ", ".join(summary["families"]))]
    lines += ["  %-*s  %s" % (width, k, v) for k, v in rows]
    for name, items in problems.items():
        lines.append("  %-*s  %s" % (width, "check", ("FAILED (%d) " % len(items) if items else "ok ") + name))
    return "\n".join(lines)


def write_summary(settings, summary):
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    path = settings.log_dir / ("live-%s-%dorgs.json" % (summary["scenario"], summary["orgs"]))
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path
