"""The simulator at fleet scale: start time, memory and loopback throughput of `serve --orgs N`.

    .venv/bin/python benchmarks/sim_scale.py --orgs 500,2000,10000 [--threads 32] [--load]

For each N: starts ``python -m eca_simulator serve --orgs N --state-file F`` in its own process,
measures the time (wall and the server's CPU) until the state file is written (every org listens) and
the server's RSS then (VmRSS and VmHWM from /proc). With --load, a client thread pool then makes, for every org, one
token request (client_credentials with the org's admin ECA) and one GET of the usage endpoint on a
new TLS connection, and reports requests per second, the CPU seconds the server and the client spent
on it, and the server's RSS afterwards.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one_org(org, ca_path, local):
    session = getattr(local, "session", None)
    if session is None:
        session = local.session = requests.Session()
        session.trust_env = False
        session.verify = ca_path or True
    url = org["instance_url"]
    admin = org.get("admin") or org
    resp = session.post(url + "/services/oauth2/token", timeout=60, data={
        "grant_type": "client_credentials", "client_id": admin["client_id"],
        "client_secret": admin["client_secret"]})
    resp.raise_for_status()
    token = resp.json()["access_token"]
    resp = session.get(url + "/services/data/v65.0/apps/oauth/usage", timeout=60,
                       headers={"Authorization": "Bearer " + token})
    resp.raise_for_status()
    return 2


def measure(n, threads, load, extra):
    work = tempfile.mkdtemp(prefix="sim-scale-")
    state_file = os.path.join(work, "state.json")
    log = open(os.path.join(work, "sim.log"), "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "eca_simulator", "serve", "--orgs", str(n),
                             "--state-file", state_file] + extra,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    out = {"orgs": n}
    try:
        while True:
            if proc.poll() is not None:
                log.close()
                with open(log.name) as f:
                    raise SystemExit("simulator exited rc %s:\n%s" % (proc.returncode, f.read()[-3000:]))
            try:
                with open(state_file) as f:
                    state = json.load(f)
                break
            except (OSError, ValueError):
                time.sleep(0.02)
        out["start_s"] = round(time.monotonic() - t0, 2)
        out["start_cpu_s"] = round(_cpu_s(proc.pid), 2)  # wall time drifts on a shared machine; CPU less so
        out["rss_mb"] = round(_status_kb(proc.pid, "VmRSS") / 1024, 1)
        out["fds"] = len(os.listdir("/proc/%d/fd" % proc.pid))
        if load:
            orgs = list(state["orgs"].values())
            local = threading.local()
            t1, s1, c1 = time.monotonic(), _cpu_s(proc.pid), time.process_time()
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                total = sum(pool.map(lambda o: _one_org(o, state.get("ca_path"), local), orgs))
            took = time.monotonic() - t1
            out["server_cpu_s"] = round(_cpu_s(proc.pid) - s1, 2)
            out["client_cpu_s"] = round(time.process_time() - c1, 2)
            out["load_s"] = round(took, 2)
            out["req_per_s"] = round(total / took)
            out["server_cpu_ms_per_req"] = round(1000 * out["server_cpu_s"] / total, 2)
            out["client_cpu_ms_per_req"] = round(1000 * out["client_cpu_s"] / total, 2)
            out["rss_after_mb"] = round(_status_kb(proc.pid, "VmRSS") / 1024, 1)
            out["hwm_mb"] = round(_status_kb(proc.pid, "VmHWM") / 1024, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orgs", default="500,2000,10000")
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--load", action="store_true")
    p.add_argument("extra", nargs="*", help="extra arguments for serve (after --)")
    args = p.parse_args(argv)
    for n in (int(x) for x in args.orgs.split(",")):
        print(json.dumps(measure(n, args.threads, args.load, args.extra)), flush=True)


if __name__ == "__main__":
    main()
