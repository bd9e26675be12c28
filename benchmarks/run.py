"""Benchmark: fleet rotation with sfdc.eca against what users would do instead.

    .venv/bin/python benchmarks/run.py                                    # N = 50, 200, 500, vault_file
    .venv/bin/python benchmarks/run.py --orgs 200 --delivery vault_file,file,hashi_vault,aws_secretsmanager,tasks_file
    .venv/bin/python benchmarks/run.py --orgs 500,2000,10000 --scenarios a,c --repeat 1
    .venv/bin/python benchmarks/run.py --orgs 3 --forks 3                 # smoke run

For each N, each delivery kind and each scenario a fresh simulator (``python -m eca_simulator serve
--orgs N``, its own process, not measured) and, on the same forks:

  a  the role's fleet rotation: ansible-playbook playbooks/rotate.yml, delivering to the kind's target
  b  benchmarks/baseline_uri.yml: the help article's calls with ansible.builtin.uri, plus one write per
     org to the same target (benchmarks/baseline_deliver/<kind>.yml: a copy, or a uri write)
  c  benchmarks/floor.py: a thread pool making the minimal HTTP sequence and the same write (the floor)

Delivery kinds: vault_file, file (an env file), hashi_vault (OpenBao, started here: ``bao server -dev``),
aws_secretsmanager (moto's server, started here), tasks_file (a tasks file with one debug task). The
store servers are started once (tests/stores/servers.py) and their CPU is measured per run.

Each run is measured by benchmarks/measure.py (wall, children's CPU, peak memory, open files). API calls
per org come from the simulator's request log. Afterwards every org must have been rotated (main key
changed, staged slot Rotated) and, for the kinds that store something, its target must hold the new key
(every org's target exists; up to 20 are read back); the benchmark fails loudly otherwise.
Writes benchmarks/results/results.{csv,md,png} (and per-run logs) and prints the table.
"""

import argparse
import concurrent.futures
import csv
import datetime
import hashlib
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

SCENARIOS = {
    "a": "role (sfdc.eca.rotation)",
    "b": "baseline ansible.builtin.uri",
    "c": "floor (Python thread pool)",
}
KINDS = ("vault_file", "file", "hashi_vault", "aws_secretsmanager", "tasks_file")
STORE_KINDS = ("hashi_vault", "aws_secretsmanager")
APP, CONSUMER = "Billing_Sync", "Billing"  # the simulator's generated orgs: one app, one consumer
TARGETS = {"a_over_b_speedup_at_200": 10.0, "a_over_c_max": 4.0, "a_over_c_max_at_10000": 2.5,
           "peak_mb_at_500": 500.0, "peak_mb_at_10000": 1024.0, "per_org_growth_max": 1.2, "report_s_max": 10.0}
REPORT_TASK = "Write the JSON, Markdown and HTML reports and update the rotation history"
READ_BACK_SAMPLE = 20
VAULT_PASSWORD = "benchmark-vault-password"


class BenchError(Exception):
    pass


# -- simulator ---------------------------------------------------------------------------------

class SimProcess:
    """`python -m eca_simulator serve --orgs N --state-file F` in its own process group."""

    def __init__(self, n, workdir, log_path, addressing="auto"):
        self.n = n
        self.addressing = addressing
        self.state_file = os.path.join(workdir, "sim-state.json")
        self.log_path = log_path
        self.proc = None
        self.state = None

    def __enter__(self):
        if os.path.exists(self.state_file):
            os.unlink(self.state_file)
        self._log = open(self.log_path, "wb")
        # stdout lists the orgs' admin credentials (the state file has them too): not kept.
        self.proc = subprocess.Popen(
            [PY, "-m", "eca_simulator", "serve", "--orgs", str(self.n), "--addressing", self.addressing,
             "--state-file", self.state_file],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("the simulator exited (rc %s) before writing its state file; see %s"
                                 % (self.proc.returncode, self.log_path))
            try:
                with open(self.state_file) as f:
                    self.state = json.load(f)
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        else:
            self.__exit__(None, None, None)
            raise BenchError("the simulator wrote no state file within 300 s; see %s" % self.log_path)
        self._ctx = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else None
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    @property
    def ca_path(self):
        return self.state.get("ca_path")

    @property
    def control_url(self):
        control = self.state.get("control_url") or self.state.get("control")
        return control.get("url") if isinstance(control, dict) else control

    def cpu_seconds(self):
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
        except (OSError, IndexError, ValueError):
            return 0.0

    def orgs(self):
        orgs = self.state["orgs"]
        if isinstance(orgs, list):
            orgs = {o.get("name"): o for o in orgs}
        out = {}
        for name, org in sorted(orgs.items()):
            admin = org.get("admin") or org
            out[name] = {"instance_url": org.get("instance_url") or org.get("url"),
                         "client_id": admin["client_id"], "client_secret": admin["client_secret"],
                         "username": admin.get("username")}
        return out

    def control(self, path):
        with urllib.request.urlopen(self.control_url + path, context=self._ctx, timeout=60) as resp:
            return json.load(resp)

    def consumer_state(self, org):
        """-> (main key, staged state or None) of the benchmark's consumer in one org."""
        data = self.control("/_sim/orgs/%s" % org)
        for app in data.get("apps", []):
            if app.get("developer_name") != APP:
                continue
            for cons in app.get("consumers", []):
                if cons.get("name") == CONSUMER:
                    main = cons.get("main") or {}
                    staged = cons.get("staged") or {}
                    return main.get("key") or cons.get("key"), staged.get("state")
        raise BenchError("org %s has no consumer %s/%s in the simulator" % (org, APP, CONSUMER))

    def consumer_states(self, names):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            return dict(zip(names, pool.map(self.consumer_state, names)))

    def api_calls(self):
        """{org: requests in the log} for every org (one read of the whole log)."""
        out = {}
        for entry in self.control("/_sim/requests").get("requests", []):
            out[entry.get("org")] = out.get(entry.get("org"), 0) + 1
        return out


# -- secret-store servers ----------------------------------------------------------------------

class Stores:
    """OpenBao and moto for the store kinds among ``kinds``, started once, on 127.0.0.1."""

    def __init__(self, kinds, workdir):
        self.kinds = [k for k in kinds if k in STORE_KINDS]
        self.workdir = workdir
        self.bao = self.moto = None

    def __enter__(self):
        if not self.kinds:
            return self
        sys.path.insert(0, ROOT)
        from tests.stores.servers import Moto, OpenBao
        if "hashi_vault" in self.kinds:
            self.bao = OpenBao(os.path.join(self.workdir, "openbao"), tls=False).start()
        if "aws_secretsmanager" in self.kinds:
            self.moto = Moto(os.path.join(self.workdir, "moto")).start()
        return self

    def __exit__(self, *exc):
        for server in (self.bao, self.moto):
            if server is not None:
                server.stop()

    def server(self, kind):
        return self.bao if kind == "hashi_vault" else self.moto if kind == "aws_secretsmanager" else None

    def settings(self, kind, prefix):
        """The store's address and credentials for one run; ``prefix`` keeps runs apart."""
        if kind == "hashi_vault":
            return {"url": self.bao.url, "token": self.bao.root_token, "mount": "secret", "prefix": prefix}
        if kind == "aws_secretsmanager":
            return {"url": self.moto.url, "region": self.moto.region, "access_key": self.moto.access_key,
                    "secret_key": self.moto.secret_key, "prefix": prefix}
        return {}

    def before_run(self, kind):
        if kind == "aws_secretsmanager":
            self.moto.reset()  # moto keeps every secret in memory: each run starts empty

    def cpu(self, kind):
        server = self.server(kind)
        return (server.cpu_seconds() or 0.0) if server is not None else 0.0

    def held_key(self, kind, settings, org):
        path = "%s/%s/%s/%s" % (settings["prefix"], org, APP, CONSUMER)
        if kind == "hashi_vault":
            data = self.bao.kv_get(path, mount=settings["mount"])
            return ((data or {}).get("data") or {}).get("key")
        secret = self.moto.secret(path)
        return json.loads(secret["SecretString"]).get("key") if secret else None


# -- inventories and settings ------------------------------------------------------------------

def org_vars(sim):
    out = []
    for name, org in sim.orgs().items():
        out.append({"name": name, "eca_instance_url": org["instance_url"], "eca_client_id": org["client_id"],
                    "eca_client_secret": org["client_secret"], "eca_ca_path": sim.ca_path,
                    "eca_app_name": APP, "eca_consumer_name": CONSUMER})
    return out


def file_name(kind, org):
    return "%s-%s-%s.%s" % (org, APP, CONSUMER, "vault.yml" if kind == "vault_file" else "env")


def role_deliver(kind, run_dir, password_file, store):
    """The rotation entry's ``deliver`` for the role."""
    delivered = os.path.join(run_dir, "delivered")
    if kind == "vault_file":
        return {"vault_file": os.path.join(delivered, "{org}-{app_name}-{consumer_name}.vault.yml"),
                "vault_password_file": password_file}
    if kind == "file":
        return {"file": {"path": os.path.join(delivered, "{org}-{app_name}-{consumer_name}.env"), "format": "env"}}
    if kind == "hashi_vault":
        return {"hashi_vault": {"url": store["url"], "token": store["token"], "mount": store["mount"],
                                "path": store["prefix"] + "/{org}/{app_name}/{consumer_name}"}}
    if kind == "aws_secretsmanager":
        return {"aws_secretsmanager": {"endpoint_url": store["url"], "region": store["region"],
                                       "access_key": store["access_key"], "secret_key": store["secret_key"],
                                       "secret_id": store["prefix"] + "/{org}/{app_name}/{consumer_name}"}}
    return {"tasks_file": os.path.join(HERE, "deliver_debug.yml")}


def write_uri_inventory(orgs, path):
    """Inventory for the uri baseline: one host per org, the org's admin ECA as host vars."""
    hosts = {o["name"]: {k: v for k, v in o.items() if k != "name"} for o in orgs}
    inventory = {"orgs": {"hosts": hosts, "vars": {"ansible_connection": "local", "ansible_python_interpreter": PY}}}
    _write_private(path, json.dumps(inventory))


def write_role_inventory(orgs, path, run_dir, deliver):
    """Inventory for the role: one host per org with its sfdc_eca_connection; the rotation entry (one app, one
    consumer, the {org} placeholder in its target) is a group variable, as a fleet's inventory would have it."""
    hosts = {}
    for o in orgs:
        hosts[o["name"]] = {
            "sfdc_eca_connection": {"instance_url": o["eca_instance_url"], "client_id": o["eca_client_id"],
                                    "client_secret": o["eca_client_secret"], "ca_path": o["eca_ca_path"]},
        }
    inventory = {"all": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": PY,
        "sfdc_eca_rotations": [{"app_name": APP, "consumer_name": CONSUMER, "deliver": deliver}],
        "sfdc_eca_report_dir": os.path.join(run_dir, "report"), "sfdc_eca_verify_delay": 1}}}
    _write_private(path, json.dumps(inventory))


def seed_history(state_dir, orgs, days_ago=30):
    """A rotation history as an earlier run leaves it: history.json and history.d/ORG.json for every org, each
    consumer rotated ``days_ago`` days ago to a key that is not the current one (so it is rotated again)."""
    when = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = {}
    os.makedirs(os.path.join(state_dir, "history.d"), exist_ok=True)
    for o in orgs:
        key = "%s/%s/%s" % (o["name"], APP, CONSUMER)
        entry = {"org": o["name"], "app_name": APP, "consumer_name": CONSUMER, "instance_url": o["eca_instance_url"],
                 "last_run": when, "last_outcome": "rotated", "rotations": 1, "last_rotated": when, "key": "...PREV",
                 "key_fp": hashlib.sha256(("previous-" + o["name"]).encode()).hexdigest()[:32]}
        entries[key] = entry
        with open(os.path.join(state_dir, "history.d", o["name"] + ".json"), "w") as f:
            json.dump({"version": 1, "updated": when, "consumers": {key: entry}}, f, indent=2)
    with open(os.path.join(state_dir, "history.json"), "w") as f:
        json.dump({"version": 1, "updated": when, "consumers": dict(sorted(entries.items()))}, f, indent=2)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# -- scenarios ---------------------------------------------------------------------------------

def ansible_env(workdir):
    env = dict(os.environ)
    colls = os.path.join(workdir, "colls")
    link = os.path.join(colls, "ansible_collections", "sfdc", "eca")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    bindir = os.path.dirname(PY)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": colls,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": os.path.join(workdir, "ansible-tmp"),
        "PATH": bindir + os.pathsep + env.get("PATH", ""),
    })
    for name in list(env):
        if name.startswith(("VAULT_", "AWS_")):
            del env[name]  # the stores' settings come from the benchmark only
    return env


def scenario_command(scenario, orgs, workdir, run_dir, forks, kind, store, task_per_org=False):
    password_file = os.path.join(workdir, "vault-password")
    _write_private(password_file, VAULT_PASSWORD + "\n")
    os.makedirs(os.path.join(run_dir, "delivered"), exist_ok=True)
    playbook = os.path.join(os.path.dirname(PY), "ansible-playbook")
    if scenario == "a":
        inv = os.path.join(run_dir, "inventory-role.json")
        write_role_inventory(orgs, inv, run_dir, role_deliver(kind, run_dir, password_file, store))
        return [playbook, "-i", inv, "-f", str(forks), os.path.join(ROOT, "playbooks", "rotate.yml")] + (
            ["-e", "sfdc_eca_task_per_org=true"] if task_per_org else [])
    if scenario == "b":
        inv = os.path.join(run_dir, "inventory-uri.json")
        write_uri_inventory(orgs, inv)
        extra = {"bench_delivery": kind, "bench_deliver_dir": os.path.join(run_dir, "delivered"),
                 "bench_vault_password": VAULT_PASSWORD}
        if kind == "hashi_vault":
            extra.update(bench_vault_url=store["url"], bench_vault_token=store["token"],
                         bench_vault_mount=store["mount"], bench_prefix=store["prefix"])
        elif kind == "aws_secretsmanager":
            extra.update(bench_aws_url=store["url"], bench_aws_region=store["region"],
                         bench_aws_access_key=store["access_key"], bench_prefix=store["prefix"])
        extra_file = os.path.join(run_dir, "extra-vars.json")
        _write_private(extra_file, json.dumps(extra))
        return [playbook, "-i", inv, "-f", str(forks), "-e", "@" + extra_file, os.path.join(HERE, "baseline_uri.yml")]
    if scenario == "c":
        inv = os.path.join(run_dir, "orgs.json")
        _write_private(inv, json.dumps(orgs))
        config = dict(store, dir=os.path.join(run_dir, "delivered"), password_file=password_file)
        config_file = os.path.join(run_dir, "delivery.json")
        _write_private(config_file, json.dumps(config))
        return [PY, os.path.join(HERE, "floor.py"), "--inventory", inv, "--forks", str(forks), "--delivery", kind,
                "--delivery-config", config_file]
    raise BenchError("unknown scenario %r" % scenario)


def check_delivered(kind, orgs, run_dir, stores, store, main_keys):
    """-> (orgs whose target holds something, problems): every file exists; up to READ_BACK_SAMPLE targets (and
    every store target) are read back and must hold the org's main key after the run."""
    if kind == "tasks_file":
        return None, []
    problems, held = [], 0
    sample = set(random.Random(len(orgs)).sample(orgs, min(READ_BACK_SAMPLE, len(orgs))))
    vault = None
    for org in orgs:
        if kind in STORE_KINDS:
            if org not in sample and len(orgs) > 1000:
                continue
            key = stores.held_key(kind, store, org)
        else:
            path = os.path.join(run_dir, "delivered", file_name(kind, org))
            if not os.path.exists(path):
                problems.append("%s: no %s" % (org, os.path.basename(path)))
                continue
            held += 1
            if org not in sample:
                continue
            with open(path, "rb") as f:
                content = f.read()
            if kind == "vault_file":
                if vault is None:
                    from ansible.parsing.vault import VaultLib, VaultSecret
                    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
                content = vault.decrypt(content)
                key = (yaml.safe_load(content) or {}).get("key")
            else:
                key = next((line.split("=", 1)[1].strip('"') for line in content.decode().splitlines()
                            if line.startswith("SALESFORCE_KEY=")), None)
        if kind in STORE_KINDS and key:
            held += 1
        if key != main_keys[org]:
            problems.append("%s: the target holds %s, not the main key" % (org, "nothing" if not key else "another key"))
    return held, problems


def run_one(scenario, n, forks, outdir, workdir, kind, stores, addressing="auto", task_per_org=False,
            with_history=False, profile=None):
    tag = "%s-%s-n%d" % (scenario, kind, n)
    sim_log = os.path.join(outdir, "logs", tag + "-simulator.log")
    run_log = os.path.join(outdir, "logs", tag + ".log")
    run_dir = os.path.join(workdir, "run-" + tag)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    store = stores.settings(kind, "bench/%s-%s" % (tag, os.urandom(3).hex()))
    stores.before_run(kind)
    with SimProcess(n, workdir, sim_log, addressing) as sim:
        orgs = org_vars(sim)
        names = [o["name"] for o in orgs]
        if len(names) != n:
            raise BenchError("asked the simulator for %d orgs, it has %d" % (n, len(names)))
        before = dict((org, state[0]) for org, state in sim.consumer_states(names).items())
        calls_before = sim.api_calls()
        if with_history and scenario == "a":
            seed_history(os.path.join(run_dir, "report"), orgs)
        cmd = scenario_command(scenario, orgs, workdir, run_dir, forks, kind, store, task_per_org)
        cost_file = os.path.join(run_dir, "cost.json")
        env = ansible_env(workdir)
        times_file = os.path.join(outdir, "role-tasks-%s-n%d.json" % (kind, n))
        if scenario == "a":
            env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                       ANSIBLE_CALLBACKS_ENABLED="bench_task_times", BENCH_TASK_TIMES=times_file)
        if profile == "memory" and scenario == "a":
            # tracemalloc from the interpreter's start (slows the run); the largest snapshot by source line
            env.update(PYTHONTRACEMALLOC="1", BENCH_MEMORY=os.path.join(outdir, "memory-%s.json" % tag),
                       ANSIBLE_CALLBACKS_ENABLED=env["ANSIBLE_CALLBACKS_ENABLED"] + ",bench_memory")
        elif profile and scenario == "a":
            # py-spy samples the controller and its workers (collapsed stacks: benchmarks/profile_summary.py)
            cmd = [os.path.join(os.path.dirname(PY), "py-spy"), "record", "--subprocesses", "--nonblocking", "-r", "100",
                   "-f", "raw", "-o", os.path.join(outdir, "profile-%s-%s.txt" % (tag, profile))] + (
                       ["--gil"] if profile == "gil" else ["--idle"] if profile == "idle" else []) + ["--"] + cmd
        load = os.getloadavg()
        sim_cpu, store_cpu = sim.cpu_seconds(), stores.cpu(kind)
        subprocess.run([PY, os.path.join(HERE, "measure.py"), "--json-out", cost_file, "--log", run_log, "--"] + cmd,
                       env=env, cwd=run_dir, check=False)
        sim_cpu, store_cpu = sim.cpu_seconds() - sim_cpu, stores.cpu(kind) - store_cpu
        with open(cost_file) as f:
            cost = json.load(f)
        calls_after = sim.api_calls()
        calls = sum(calls_after.get(org, 0) - calls_before.get(org, 0) for org in names)
        first_org_calls = sim.control("/_sim/counts?org=%s" % names[0])["counts"]
        not_rotated, main_keys = [], {}
        for org, (main_key, staged_state) in sim.consumer_states(names).items():
            main_keys[org] = main_key
            if main_key == before[org] or staged_state != "Rotated":
                not_rotated.append("%s (main key %s, staged %s)" % (
                    org, "unchanged" if main_key == before[org] else "changed", staged_state))
        delivered, problems = check_delivered(kind, names, run_dir, stores, store, main_keys)
        written = dict((name, os.stat(os.path.join(run_dir, "report", name)).st_mtime)
                       for name in ("report.html", "history.json") if os.path.exists(os.path.join(run_dir, "report", name)))
    shutil.rmtree(run_dir, ignore_errors=True)  # inventories hold simulator and store credentials
    row = dict(scenario=scenario, label=SCENARIOS[scenario], delivery=kind, orgs=n, forks=forks, **cost)
    row["load_1m"] = round(load[0], 1)
    row["sim_cpu_s"] = round(sim_cpu, 1)
    row["store_cpu_s"] = round(store_cpu, 1) if kind in STORE_KINDS else ""
    row["api_calls_per_org"] = round(calls / float(n), 2)
    row["api_calls_first_org"] = " ".join("%s=%d" % kv for kv in sorted(first_org_calls.items()))
    row["rotated"] = n - len(not_rotated)
    row["delivered"] = "" if delivered is None else delivered
    row["log"] = os.path.relpath(run_log, outdir)
    row["host_tasks_per_org"] = ""
    row["report_s"] = row["report_write_s"] = row["history_write_s"] = ""
    if scenario == "a" and os.path.exists(times_file):
        with open(times_file) as f:
            tasks = json.load(f)
        executed = sum(t["ok"] + t["changed"] + t["skipped"] + t["failed"] for t in tasks)
        row["host_tasks_per_org"] = round(executed / float(n), 2)
        row["report_s"] = round(sum(t["wall_s"] for t in tasks if t["task"].endswith(REPORT_TASK)), 2)
        # the report task writes report.{json,md,html}, then merges history.json: split by the files' times
        start = next((t.get("last_start_epoch") for t in tasks if t["task"].endswith(REPORT_TASK)), None)
        if start and "report.html" in written:
            row["report_write_s"] = round(written["report.html"] - start, 2)
            if "history.json" in written:
                row["history_write_s"] = round(written["history.json"] - written["report.html"], 2)
    return row, not_rotated + problems


# -- reporting ---------------------------------------------------------------------------------

COLUMNS = ["scenario", "label", "delivery", "orgs", "forks", "rc", "wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s",
           "max_rss_mb", "peak_tree_pss_mb", "peak_procs", "peak_fds", "wall_runs_s", "load_1m", "sim_cpu_s",
           "store_cpu_s", "api_calls_per_org", "host_tasks_per_org", "report_s", "report_write_s",
           "history_write_s", "rotated", "delivered",
           "wall_per_org_ms", "cpu_per_org_ms", "a_over_b", "a_over_c", "a_over_b_cpu", "a_over_c_cpu",
           "api_calls_first_org"]


def _key(r, scenario=None):
    return (scenario or r["scenario"], r["delivery"], r["orgs"])


def add_ratios(rows):
    by = dict((_key(r), r) for r in rows)
    for r in rows:
        r["wall_per_org_ms"] = round(1000.0 * r["wall_s"] / r["orgs"], 1)
        r["cpu_per_org_ms"] = round(1000.0 * r["cpu_s"] / r["orgs"], 1)
        for k in ("a_over_b", "a_over_c", "a_over_b_cpu", "a_over_c_cpu"):
            r[k] = ""
        if r["scenario"] == "a":
            b, c = by.get(_key(r, "b")), by.get(_key(r, "c"))
            if b:
                r["a_over_b"] = round(r["wall_s"] / b["wall_s"], 3)
                r["a_over_b_cpu"] = round(r["cpu_s"] / b["cpu_s"], 3) if b["cpu_s"] else ""
            if c:
                r["a_over_c"] = round(r["wall_s"] / c["wall_s"], 3)
                r["a_over_c_cpu"] = round(r["cpu_s"] / c["cpu_s"], 3) if c["cpu_s"] else ""


def check_targets(rows):
    """-> list of (target, value, ok) lines."""
    out = []
    by = dict((_key(r), r) for r in rows)
    a_rows = sorted((r for r in rows if r["scenario"] == "a"), key=lambda r: (KINDS.index(r["delivery"]), r["orgs"]))
    for r in a_rows:
        b = by.get(_key(r, "b"))
        if r["orgs"] == 200 and b:
            speedup = b["wall_s"] / r["wall_s"]
            out.append(("%s: (a) >= 10x faster than (b) at N=200" % r["delivery"],
                        "%.1fx (CPU %.1fx)" % (speedup, b["cpu_s"] / r["cpu_s"]),
                        speedup >= TARGETS["a_over_b_speedup_at_200"]))
    for r in a_rows:
        if r.get("a_over_c") == "":
            continue
        limit = TARGETS["a_over_c_max_at_10000"] if r["orgs"] >= 10000 else TARGETS["a_over_c_max"]
        out.append(("%s: (a) within %gx of (c) at N=%d" % (r["delivery"], limit, r["orgs"]),
                    "%.2fx (CPU %.2fx)" % (r["a_over_c"], r["a_over_c_cpu"] or 0), r["a_over_c"] <= limit))
    for kind in KINDS:
        mine = [r for r in a_rows if r["delivery"] == kind]
        base = next((r for r in mine if r["orgs"] == 500), None)
        top = mine[-1] if mine else None
        if base and top and top["orgs"] > 500:
            growth = top["wall_per_org_ms"] / base["wall_per_org_ms"]
            cpu_growth = top["cpu_per_org_ms"] / base["cpu_per_org_ms"]
            out.append(("%s: (a) per-org cost at N=%d within 1.2x of N=500" % (kind, top["orgs"]),
                        "%.1f vs %.1f ms/org: %.2fx (CPU %.2fx)" % (top["wall_per_org_ms"], base["wall_per_org_ms"],
                                                                    growth, cpu_growth),
                        growth <= TARGETS["per_org_growth_max"]))
    for r in a_rows:
        peak = max(r["max_rss_mb"], r["peak_tree_pss_mb"])
        if r["orgs"] >= 10000:
            out.append(("%s: (a) peak controller memory < 1 GB at N=%d" % (r["delivery"], r["orgs"]),
                        "%.0f MB" % peak, peak < TARGETS["peak_mb_at_10000"]))
        elif r["orgs"] >= 500:
            out.append(("%s: (a) peak controller memory < 500 MB at N=%d" % (r["delivery"], r["orgs"]),
                        "%.0f MB" % peak, peak < TARGETS["peak_mb_at_500"]))
        if r["orgs"] >= 2000 and r.get("report_s") != "":
            out.append(("%s: (a) report and history written in < 10 s at N=%d" % (r["delivery"], r["orgs"]),
                        "%.1f s" % r["report_s"], r["report_s"] < TARGETS["report_s_max"]))
    return out


def write_outputs(rows, targets, outdir, meta):
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md = markdown(rows, targets, meta)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    plot(rows, os.path.join(outdir, "results.png"))
    return md


def markdown(rows, targets, meta):
    head = ["scenario", "delivery", "N", "wall s", "runs (s)", "ms/org", "CPU s", "CPU ms/org", "peak RSS MB",
            "peak tree PSS MB", "open files", "load", "sim CPU s", "store CPU s", "API calls/org", "host tasks/org",
            "report task s (report + history.json)", "rotated", "delivered", "a/b wall (CPU)", "a/c wall (CPU)"]
    lines = ["# sfdc.eca benchmark", "",
             "`%s` — %s, commit %s, forks=%s, %s CPU(s), Python %s, ansible-core %s; load average at the start: %s." % (
                 meta["command"], meta["date"], meta["commit"], meta["forks"], meta["cpus"], meta["python"],
                 meta["ansible"], meta.get("load", "?")), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = dict((k, i) for i, k in enumerate(KINDS))
    for r in sorted(rows, key=lambda r: (r["orgs"], order[r["delivery"]], r["scenario"])):
        lines.append("| %s %s | %s | %d | %.1f | %s | %.1f | %.1f | %.1f | %.0f | %.0f | %s | %s | %s | %s | %.1f | %s | "
                     "%s | %d/%d | %s | %s | %s |" % (
                         r["scenario"], r["label"], r["delivery"], r["orgs"], r["wall_s"], r.get("wall_runs_s", ""),
                         r["wall_per_org_ms"], r["cpu_s"], r["cpu_per_org_ms"], r["max_rss_mb"], r["peak_tree_pss_mb"],
                         r.get("peak_fds", ""), r.get("load_1m", ""), r.get("sim_cpu_s", ""), r.get("store_cpu_s", ""),
                         r["api_calls_per_org"], r.get("host_tasks_per_org", ""), _report_cell(r), r["rotated"],
                         r["orgs"], r.get("delivered", ""), _ratio(r, "a_over_b"), _ratio(r, "a_over_c")))
    lines += ["", "API calls of the first org, by endpoint (largest N):", ""]
    top = max(x["orgs"] for x in rows)
    for r in sorted(rows, key=lambda r: (order[r["delivery"]], r["scenario"])):
        if r["orgs"] == top:
            lines.append("- (%s, %s) %s" % (r["scenario"], r["delivery"], r.get("api_calls_first_org", "")))
    for n, kind, tasks in meta.get("role_tasks") or []:
        total = sum(t.get("cpu_s", 0) for t in tasks) or 1.0
        lines += ["", "Role (a), %s, N=%d: the 15 costliest tasks by CPU (controller + workers, summed over batches; "
                  "host runs = ok+changed+skipped+failed):" % (kind, n), "",
                  "| task | CPU s | share | wall s | host runs (skipped) |", "|---|---|---|---|---|"]
        for t in sorted(tasks, key=lambda t: -t.get("cpu_s", 0))[:15]:
            runs = t["ok"] + t["changed"] + t["skipped"] + t["failed"]
            lines.append("| %s | %.1f | %.0f%% | %.1f | %d (%d) |" % (
                t["task"].replace("|", "/"), t.get("cpu_s", 0), 100.0 * t.get("cpu_s", 0) / total, t["wall_s"],
                runs, t["skipped"]))
    if targets:
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (name, value, "yes" if ok else "**no**") for name, value, ok in targets]
    return "\n".join(lines) + "\n"


def _report_cell(r):
    if r.get("report_write_s", "") == "":
        return r.get("report_s", "")
    return "%s (%s + %s)" % (r["report_s"], r["report_write_s"], r.get("history_write_s", "") or "-")


def _ratio(r, key):
    if r.get(key) in ("", None):
        return ""
    cpu = r.get(key + "_cpu")
    return "%.3f (%.3f)" % (r[key], cpu) if cpu not in ("", None) else "%.3f" % r[key]


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in KINDS:
        for scenario, label in SCENARIOS.items():
            pts = sorted((r["orgs"], r["wall_s"]) for r in rows if r["scenario"] == scenario and r["delivery"] == kind)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        label="(%s) %s, %s" % (scenario, label, kind))
    ax.set_xlabel("orgs (N)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Fleet credential rotation: wall time vs number of orgs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def docs_marks(name):
    return "<!-- benchmark-results:%s -->" % name, "<!-- /benchmark-results:%s -->" % name


def update_docs(md, name, path=os.path.join(ROOT, "docs", "performance.md")):
    """Replace the text between this run's markers in docs/performance.md with its table."""
    begin, end = docs_marks(name)
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        raise BenchError("%s has no %s ... %s markers" % (path, begin, end))
    body = md.split("\n", 2)[2]  # drop the "# sfdc.eca benchmark" title
    head, rest = text.split(begin, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + body + end + rest.split(end, 1)[1])


def _git_commit():
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("+uncommitted changes" if dirty else "")
    except OSError:
        return "unknown"


# -- main --------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--orgs", default="50,200,500", help="comma-separated fleet sizes (default 50,200,500)")
    parser.add_argument("--forks", type=int, default=25, help="ansible forks = floor threads (default 25)")
    parser.add_argument("--scenarios", default="a,b,c", help="subset of a,b,c (default all)")
    parser.add_argument("--delivery", default="vault_file",
                        help="comma-separated delivery kinds, each measured in a, b and c: %s (default vault_file)"
                             % ",".join(KINDS))
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="output directory")
    parser.add_argument("--baseline-max-orgs", type=int, default=0,
                        help="skip scenario b above this N (it costs ~2 s CPU per org); default: no limit")
    parser.add_argument("--addressing", choices=["auto", "ports", "addresses"], default="auto",
                        help="the simulator's addressing (docs/simulator.md, big fleets; auto: an address per org "
                             "above 1,000 orgs)")
    parser.add_argument("--with-history", action="store_true",
                        help="(a) starts with a rotation history of every org (history.json and history.d/), as a "
                             "scheduled run finds it; each consumer was rotated 30 days ago to another key")
    parser.add_argument("--profile", choices=["cpu", "gil", "idle", "memory"],
                        help="run (a) under py-spy (pip install py-spy): samples of every process of the run, on CPU "
                             "(cpu), holding the GIL (gil) or all (idle), as collapsed stacks in OUT/profile-*.txt; "
                             "memory: the controller's Python allocations by source line under tracemalloc, at the "
                             "largest seen at a task start, in OUT/memory-*.json; the figures of such a run include "
                             "the profiler's cost")
    parser.add_argument("--task-per-org", action="store_true",
                        help="run (a) with -e sfdc_eca_task_per_org=true: the role's tasks on each org's host instead of "
                             "one task per batch")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of scenarios a and c per N and delivery, taking turns, each on a fresh simulator; "
                             "the median wall time counts (default 3; b runs once: it is minutes long)")
    parser.add_argument("--update-docs", metavar="NAME",
                        help="also replace the figures between <!-- benchmark-results:NAME --> and "
                             "<!-- /benchmark-results:NAME --> in docs/performance.md")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.orgs.split(",") if x.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    kinds = [k.strip() for k in args.delivery.split(",") if k.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--scenarios takes a,b,c, --orgs positive numbers and --repeat a number >= 1")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error("--delivery takes a comma-separated list of %s; got %s" % (", ".join(KINDS), ", ".join(unknown) or
                                                                                "nothing"))
    outdir = os.path.abspath(args.out)
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    workdir = os.path.join(outdir, "work")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)

    import ansible
    meta = {"command": " ".join(["python benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:])),
            "commit": _git_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "forks": args.forks,
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "ansible": ansible.__version__,
            "load": " ".join("%.1f" % x for x in os.getloadavg())}

    rows, failures = [], []
    try:
        with Stores(kinds, workdir) as stores:
            for n in sizes:
                for kind in kinds:
                    # b once, then a and c taking turns (a c a c a c): both see the same machine, whatever else runs
                    plan = []
                    if "b" in scenarios:
                        if args.baseline_max_orgs and n > args.baseline_max_orgs:
                            print("== N=%d %s scenario b skipped (--baseline-max-orgs %d)" % (n, kind, args.baseline_max_orgs))
                        else:
                            plan.append("b")
                    plan += [s for _run in range(args.repeat) for s in scenarios if s != "b"]
                    runs = {}
                    for scenario in plan:
                        load = " ".join("%.1f" % x for x in os.getloadavg())
                        print("== N=%d %s scenario %s: %s (load %s)" % (n, kind, scenario, SCENARIOS[scenario], load),
                              flush=True)
                        row, problems = run_one(scenario, n, args.forks, outdir, workdir, kind, stores, args.addressing,
                                                args.task_per_org, args.with_history, args.profile)
                        print("   wall %.1f s, CPU %.1f s, peak RSS %.0f MB, tree PSS %.0f MB, %s open files, %.1f API "
                              "calls/org, %s host tasks/org, report %s s, rotated %d/%d, rc %d"
                              % (row["wall_s"], row["cpu_s"], row["max_rss_mb"], row["peak_tree_pss_mb"],
                                 row.get("peak_fds"), row["api_calls_per_org"], row["host_tasks_per_org"] or "-",
                                 row["report_s"] or "-", row["rotated"], n, row["rc"]), flush=True)
                        if row["rc"] != 0 or problems:
                            failures.append("N=%d %s scenario %s: rc %d, %d problem(s): %s; log: %s" % (
                                n, kind, scenario, row["rc"], len(problems), ", ".join(problems[:5]) +
                                (" ..." if len(problems) > 5 else ""), os.path.join(outdir, row["log"])))
                        runs.setdefault(scenario, []).append(row)
                    for scenario in scenarios:
                        if scenario not in runs:
                            continue
                        # the run with the median wall time (each run on a fresh simulator); every run is listed
                        done = sorted(runs[scenario], key=lambda r: r["wall_s"])
                        row = done[len(done) // 2]
                        row["wall_runs_s"] = " ".join("%.1f" % r["wall_s"] for r in runs[scenario])
                        rows.append(row)
                    add_ratios(rows)
                    write_outputs(rows, check_targets(rows), outdir, meta)  # what is done survives an interruption
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # inventories hold simulator and store credentials
    add_ratios(rows)
    targets = check_targets(rows)
    role_tasks = []
    for kind in kinds:
        a_sizes = sorted(r["orgs"] for r in rows if r["scenario"] == "a" and r["delivery"] == kind)
        path = os.path.join(outdir, "role-tasks-%s-n%d.json" % (kind, a_sizes[-1])) if a_sizes else ""
        if a_sizes and os.path.exists(path) and (kind == "tasks_file" or kind == kinds[0]):
            with open(path) as f:
                role_tasks.append((a_sizes[-1], kind, json.load(f)))
    meta["role_tasks"] = role_tasks
    md = write_outputs(rows, targets, outdir, meta)
    if args.update_docs:
        update_docs(md, args.update_docs)
    print()
    print(md)
    print("written: %s/results.{csv,md,png}" % outdir)
    if failures:
        print("\nFAILED: not every run rotated and delivered every org:", file=sys.stderr)
        for line in failures:
            print("  " + line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
