"""Benchmark: fleet rotation with sfdc.eca against what users would do instead.

    .venv/bin/python benchmarks/run.py                      # N = 50, 200, 500
    .venv/bin/python benchmarks/run.py --orgs 3 --forks 3   # smoke run

For each N and each scenario a fresh simulator (``python -m eca_simulator serve --orgs N``, its own
process, not measured) and, on the same forks:

  a  the role's fleet rotation: ansible-playbook playbooks/rotate.yml
  b  benchmarks/baseline_uri.yml: the help article's calls with ansible.builtin.uri
  c  benchmarks/floor.py: a thread pool making the minimal HTTP sequence (the floor)

Each run is measured by benchmarks/measure.py (wall, children's CPU, peak memory). API calls per
org come from the simulator's request log. Afterwards every org must have been rotated (main key
changed, staged slot Rotated); the benchmark fails loudly when one was not.
Writes benchmarks/results/results.{csv,md,png} (and per-run logs) and prints the table.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

SCENARIOS = {
    "a": "role (sfdc.eca.rotation)",
    "b": "baseline ansible.builtin.uri",
    "c": "floor (Python thread pool)",
}
APP, CONSUMER = "Billing_Sync", "Billing"  # the simulator's generated orgs: one app, one consumer
TARGETS = {"a_over_b_speedup_at_200": 10.0, "a_over_c_max": 4.0, "peak_mb_at_500": 500.0}


class BenchError(Exception):
    pass


# -- simulator ---------------------------------------------------------------------------------

class SimProcess:
    """`python -m eca_simulator serve --orgs N --state-file F` in its own process group."""

    def __init__(self, n, workdir, log_path):
        self.n = n
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
            [PY, "-m", "eca_simulator", "serve", "--orgs", str(self.n), "--state-file", self.state_file],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
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
            raise BenchError("the simulator wrote no state file within 120 s; see %s" % self.log_path)
        self._ctx = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else None
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
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
        with urllib.request.urlopen(self.control_url + path, context=self._ctx, timeout=30) as resp:
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

    def api_calls(self, org):
        data = self.control("/_sim/requests?org=%s" % org)
        requests_ = data.get("requests", data) if isinstance(data, dict) else data
        return len(requests_)


# -- inventories -------------------------------------------------------------------------------

def org_vars(sim):
    out = []
    for name, org in sim.orgs().items():
        out.append({"name": name, "eca_instance_url": org["instance_url"], "eca_client_id": org["client_id"],
                    "eca_client_secret": org["client_secret"], "eca_ca_path": sim.ca_path,
                    "eca_app_name": APP, "eca_consumer_name": CONSUMER})
    return out


def write_uri_inventory(orgs, path):
    """Inventory for the uri baseline: one host per org, the org's admin ECA as host vars."""
    hosts = {o["name"]: {k: v for k, v in o.items() if k != "name"} for o in orgs}
    inventory = {"orgs": {"hosts": hosts, "vars": {"ansible_connection": "local", "ansible_python_interpreter": PY}}}
    _write_private(path, json.dumps(inventory))


def write_role_inventory(orgs, path, workdir, delivery):
    """Inventory for the role: one host per org with sfdc_eca_connection and one rotation entry."""
    if delivery == "vault_file":
        pw = os.path.join(workdir, "vault-password")
        _write_private(pw, "benchmark-vault-password\n")
        deliver = {"vault_file": os.path.join(workdir, "delivered", "{org}-{app_name}-{consumer_name}.vault.yml"),
                   "vault_password_file": pw}
        os.makedirs(os.path.join(workdir, "delivered"), exist_ok=True)
    else:
        deliver = {"tasks_file": os.path.join(HERE, "deliver_noop.yml")}
    hosts = {}
    for o in orgs:
        hosts[o["name"]] = {
            "sfdc_eca_connection": {"instance_url": o["eca_instance_url"], "client_id": o["eca_client_id"],
                                    "client_secret": o["eca_client_secret"], "ca_path": o["eca_ca_path"]},
            "sfdc_eca_rotations": [{"app_name": o["eca_app_name"], "consumer_name": o["eca_consumer_name"],
                                    "deliver": deliver}],
        }
    inventory = {"all": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": PY,
        "sfdc_eca_report_dir": os.path.join(workdir, "report"), "sfdc_eca_verify_delay": 1}}}
    _write_private(path, json.dumps(inventory))


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
    return env


def scenario_command(scenario, sim, workdir, forks, delivery="vault_file", task_per_org=False):
    orgs = org_vars(sim)
    if scenario == "a":
        inv = os.path.join(workdir, "inventory-role.json")
        write_role_inventory(orgs, inv, workdir, delivery)
        return [os.path.join(os.path.dirname(PY), "ansible-playbook"), "-i", inv, "-f", str(forks),
                os.path.join(ROOT, "playbooks", "rotate.yml")] + (["-e", "sfdc_eca_task_per_org=true"] if task_per_org else [])
    if scenario == "b":
        inv = os.path.join(workdir, "inventory-uri.json")
        write_uri_inventory(orgs, inv)
        return [os.path.join(os.path.dirname(PY), "ansible-playbook"), "-i", inv, "-f", str(forks),
                os.path.join(HERE, "baseline_uri.yml")]
    if scenario == "c":
        inv = os.path.join(workdir, "orgs.json")
        _write_private(inv, json.dumps(orgs))
        return [PY, os.path.join(HERE, "floor.py"), "--inventory", inv, "--forks", str(forks)]
    raise BenchError("unknown scenario %r" % scenario)


def run_one(scenario, n, forks, outdir, workdir, delivery="vault_file", task_per_org=False):
    tag = "%s-n%d" % (scenario, n)
    sim_log = os.path.join(outdir, "logs", tag + "-simulator.log")
    run_log = os.path.join(outdir, "logs", tag + ".log")
    with SimProcess(n, workdir, sim_log) as sim:
        names = list(sim.orgs())
        if len(names) != n:
            raise BenchError("asked the simulator for %d orgs, it has %d" % (n, len(names)))
        before = {org: sim.consumer_state(org)[0] for org in names}
        baseline_calls = {org: sim.api_calls(org) for org in names}
        cmd = scenario_command(scenario, sim, workdir, forks, delivery, task_per_org)
        cost_file = os.path.join(workdir, tag + "-cost.json")
        env = ansible_env(workdir)
        times_file = os.path.join(outdir, "role-tasks-n%d.json" % n)
        if scenario == "a":
            env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                       ANSIBLE_CALLBACKS_ENABLED="bench_task_times", BENCH_TASK_TIMES=times_file)
        subprocess.run([PY, os.path.join(HERE, "measure.py"), "--json-out", cost_file, "--log", run_log, "--"] + cmd,
                       env=env, cwd=workdir, check=False)
        with open(cost_file) as f:
            cost = json.load(f)
        calls = sum(sim.api_calls(org) - baseline_calls[org] for org in names)
        first_org_calls = sim.control("/_sim/counts?org=%s" % names[0])["counts"]
        not_rotated = []
        for org in names:
            main_key, staged_state = sim.consumer_state(org)
            if main_key == before[org] or staged_state != "Rotated":
                not_rotated.append("%s (main key %s, staged %s)" % (
                    org, "unchanged" if main_key == before[org] else "changed", staged_state))
    row = dict(scenario=scenario, label=SCENARIOS[scenario], orgs=n, forks=forks, **cost)
    row["api_calls_per_org"] = round(calls / float(n), 2)
    row["api_calls_first_org"] = " ".join("%s=%d" % kv for kv in sorted(first_org_calls.items()))
    row["rotated"] = n - len(not_rotated)
    row["log"] = os.path.relpath(run_log, outdir)
    row["host_tasks_per_org"] = ""
    if scenario == "a" and os.path.exists(times_file):
        with open(times_file) as f:
            tasks = json.load(f)
        executed = sum(t["ok"] + t["changed"] + t["skipped"] + t["failed"] for t in tasks)
        row["host_tasks_per_org"] = round(executed / float(n), 1)
    return row, not_rotated


# -- reporting ---------------------------------------------------------------------------------

COLUMNS = ["scenario", "label", "orgs", "forks", "rc", "wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "max_rss_mb",
           "peak_tree_pss_mb", "peak_procs", "wall_runs_s", "api_calls_per_org", "host_tasks_per_org", "rotated", "wall_per_org_ms", "a_over_b",
           "a_over_c", "a_over_b_cpu", "a_over_c_cpu", "api_calls_first_org"]


def add_ratios(rows):
    by = {(r["scenario"], r["orgs"]): r for r in rows}
    for r in rows:
        r["wall_per_org_ms"] = round(1000.0 * r["wall_s"] / r["orgs"], 1)
        a = by.get(("a", r["orgs"]))
        if r["scenario"] == "a":
            b, c = by.get(("b", r["orgs"])), by.get(("c", r["orgs"]))
            r["a_over_b"] = round(a["wall_s"] / b["wall_s"], 3) if b else ""
            r["a_over_c"] = round(a["wall_s"] / c["wall_s"], 3) if c else ""
            r["a_over_b_cpu"] = round(a["cpu_s"] / b["cpu_s"], 3) if b and b["cpu_s"] else ""
            r["a_over_c_cpu"] = round(a["cpu_s"] / c["cpu_s"], 3) if c and c["cpu_s"] else ""
        else:
            for k in ("a_over_b", "a_over_c", "a_over_b_cpu", "a_over_c_cpu"):
                r.setdefault(k, "")


def check_targets(rows):
    """-> list of (target, value, ok) lines."""
    out = []
    by = {(r["scenario"], r["orgs"]): r for r in rows}
    if ("a", 200) in by and ("b", 200) in by:
        speedup = by[("b", 200)]["wall_s"] / by[("a", 200)]["wall_s"]
        out.append(("(a) >= 10x faster than (b) at N=200", "%.1fx" % speedup, speedup >= TARGETS["a_over_b_speedup_at_200"]))
    for r in rows:
        if r["scenario"] == "a" and r.get("a_over_c") != "":
            out.append(("(a) within 4x of (c) at N=%d" % r["orgs"], "%.2fx" % r["a_over_c"],
                        r["a_over_c"] <= TARGETS["a_over_c_max"]))
    a_rows = sorted((r for r in rows if r["scenario"] == "a"), key=lambda r: r["orgs"])
    if len(a_rows) >= 2:
        lo, hi = a_rows[0], a_rows[-1]
        growth = (hi["wall_s"] / lo["wall_s"]) / (float(hi["orgs"]) / lo["orgs"])
        cpu_growth = (hi["cpu_s"] / lo["cpu_s"]) / (float(hi["orgs"]) / lo["orgs"])
        out.append(("(a) wall time grows linearly N=%d->%d (time ratio / N ratio <= 1.25)" % (lo["orgs"], hi["orgs"]),
                    "%.2f (CPU: %.2f)" % (growth, cpu_growth), growth <= 1.25))
    for r in a_rows:
        if r["orgs"] >= 500:
            peak = max(r["max_rss_mb"], r["peak_tree_pss_mb"])
            out.append(("(a) peak controller memory < 500 MB at N=%d" % r["orgs"], "%.0f MB" % peak,
                        peak < TARGETS["peak_mb_at_500"]))
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
    head = ["scenario", "N", "wall s", "runs (s)", "ms/org", "CPU s", "peak RSS MB", "peak tree PSS MB", "API calls/org",
            "host tasks/org", "rotated", "a/b wall (CPU)", "a/c wall (CPU)"]
    lines = ["# sfdc.eca benchmark", "",
             "`%s` — %s, commit %s, forks=%s, role delivery=%s, %s CPU(s), Python %s, ansible-core %s." % (
                 meta["command"], meta["date"], meta["commit"], meta["forks"], meta["delivery"], meta["cpus"],
                 meta["python"], meta["ansible"]), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["orgs"], r["scenario"])):
        lines.append("| %s %s | %d | %.1f | %s | %.1f | %.1f | %.0f | %.0f | %.1f | %s | %d/%d | %s | %s |" % (
            r["scenario"], r["label"], r["orgs"], r["wall_s"], r.get("wall_runs_s", ""), r["wall_per_org_ms"], r["cpu_s"], r["max_rss_mb"],
            r["peak_tree_pss_mb"], r["api_calls_per_org"], r.get("host_tasks_per_org", ""), r["rotated"], r["orgs"],
            _ratio(r, "a_over_b"), _ratio(r, "a_over_c")))
    lines += ["", "API calls of the first org, by endpoint:", ""]
    for r in sorted(rows, key=lambda r: (r["orgs"], r["scenario"])):
        if r["orgs"] == max(x["orgs"] for x in rows):
            lines.append("- (%s) %s" % (r["scenario"], r.get("api_calls_first_org", "")))
    breakdown = meta.get("role_tasks")
    if breakdown:
        n, tasks = breakdown
        total = sum(t.get("cpu_s", 0) for t in tasks) or 1.0
        lines += ["", "Role (a) at N=%d: the 15 costliest tasks by CPU (controller + workers, summed over batches; "
                  "host runs = ok+changed+skipped+failed):" % n, "",
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
    for scenario, label in SCENARIOS.items():
        pts = sorted((r["orgs"], r["wall_s"]) for r in rows if r["scenario"] == scenario)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="(%s) %s" % (scenario, label))
    ax.set_xlabel("orgs (N)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Fleet credential rotation: wall time vs number of orgs")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DOCS_MARK = "<!-- benchmark-results -->"


def update_docs(md, path=os.path.join(ROOT, "docs", "performance.md")):
    """Replace everything after the marker in docs/performance.md with this run's table."""
    with open(path) as f:
        text = f.read()
    if DOCS_MARK not in text:
        raise BenchError("%s has no %s marker" % (path, DOCS_MARK))
    body = md.split("\n", 2)[2]  # drop the "# sfdc.eca benchmark" title
    with open(path, "w") as f:
        f.write(text.split(DOCS_MARK)[0] + DOCS_MARK + "\n" + body)


def _git_commit():
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


# -- main --------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--orgs", default="50,200,500", help="comma-separated fleet sizes (default 50,200,500)")
    parser.add_argument("--forks", type=int, default=25, help="ansible forks = floor threads (default 25)")
    parser.add_argument("--scenarios", default="a,b,c", help="subset of a,b,c (default all)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="output directory")
    parser.add_argument("--baseline-max-orgs", type=int, default=0,
                        help="skip scenario b above this N (it costs ~2 s CPU per org); default: no limit")
    parser.add_argument("--task-per-org", action="store_true",
                        help="run (a) with -e sfdc_eca_task_per_org=true: the role's tasks on each org's host instead of "
                             "one task per batch")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of scenarios a and c per N, taking turns, each on a fresh simulator; the median wall "
                             "time counts (default 3; b runs once: it is minutes long and far from its target)")
    parser.add_argument("--update-docs", action="store_true",
                        help="also replace the figures in docs/performance.md (after <!-- benchmark-results -->)")
    parser.add_argument("--delivery", choices=["tasks_file", "vault_file"], default="vault_file",
                        help="how the role delivers new pairs: ansible-vault files on the controller (default: the "
                             "role's own delivery, more work than (b) and (c), which deliver nowhere) or a no-op "
                             "tasks file (the path of a delivery through the user's tasks)")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.orgs.split(",") if x.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad or not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--scenarios takes a,b,c, --orgs positive numbers and --repeat a number >= 1")
    outdir = os.path.abspath(args.out)
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    workdir = os.path.join(outdir, "work")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)

    import ansible
    meta = {"command": " ".join(["python benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:])),
            "delivery": args.delivery + (", task per org" if args.task_per_org else ""), "commit": _git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "forks": args.forks,
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "ansible": ansible.__version__}

    rows, failures = [], []
    for n in sizes:
        # b once, then a and c taking turns (a c a c a c): both see the same machine, whatever else runs
        plan = []
        if "b" in scenarios:
            if args.baseline_max_orgs and n > args.baseline_max_orgs:
                print("== N=%d scenario b skipped (--baseline-max-orgs %d)" % (n, args.baseline_max_orgs))
            else:
                plan.append("b")
        plan += [s for _run in range(args.repeat) for s in scenarios if s != "b"]
        runs = {}
        for scenario in plan:
            print("== N=%d scenario %s: %s" % (n, scenario, SCENARIOS[scenario]), flush=True)
            row, not_rotated = run_one(scenario, n, args.forks, outdir, workdir, args.delivery, args.task_per_org)
            print("   wall %.1f s, CPU %.1f s, peak RSS %.0f MB, tree PSS %.0f MB, %.1f API calls/org, rotated %d/%d, rc %d"
                  % (row["wall_s"], row["cpu_s"], row["max_rss_mb"], row["peak_tree_pss_mb"],
                     row["api_calls_per_org"], row["rotated"], n, row["rc"]), flush=True)
            if row["rc"] != 0 or not_rotated:
                failures.append("N=%d scenario %s: rc %d, %d org(s) not rotated: %s; log: %s" % (
                    n, scenario, row["rc"], len(not_rotated), ", ".join(not_rotated[:5]) +
                    (" ..." if len(not_rotated) > 5 else ""), os.path.join(outdir, row["log"])))
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
        write_outputs(rows, check_targets(rows), outdir, meta)  # the sizes done so far survive an interrupted run
    add_ratios(rows)
    targets = check_targets(rows)
    a_sizes = sorted(r["orgs"] for r in rows if r["scenario"] == "a")
    if a_sizes and os.path.exists(os.path.join(outdir, "role-tasks-n%d.json" % a_sizes[-1])):
        with open(os.path.join(outdir, "role-tasks-n%d.json" % a_sizes[-1])) as f:
            meta["role_tasks"] = (a_sizes[-1], json.load(f))
    md = write_outputs(rows, targets, outdir, meta)
    shutil.rmtree(workdir, ignore_errors=True)  # inventories hold simulator credentials
    if args.update_docs:
        update_docs(md)
    print()
    print(md)
    print("written: %s/results.{csv,md,png}" % outdir)
    if failures:
        print("\nFAILED: not every run rotated every org:", file=sys.stderr)
        for line in failures:
            print("  " + line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
