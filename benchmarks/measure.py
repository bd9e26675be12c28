"""Run one command and report its cost: wall time, CPU of the whole process tree, peak memory.

Runs as its own process per scenario so that RUSAGE_CHILDREN covers exactly that scenario.

    python benchmarks/measure.py --json-out cost.json -- ansible-playbook ...

Memory: ``max_rss_mb`` is the largest single process (ru_maxrss, normally the controller's
main process); ``peak_tree_pss_mb`` is the peak, sampled every 0.1 s, of the summed PSS of the
command and all its descendants (forked workers share pages, so PSS, not RSS, is what they cost
together). ``peak_fds`` is the largest number of open file descriptors of one process of the tree (the
batch task's worker holds its orgs' HTTPS connections).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time


def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: parse after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(root):
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid, interval=0.1):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.peak_procs = 0
        self.peak_fds = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            pids = _tree(self.pid)
            total = sum(_pss_kb(p) for p in pids)
            self.peak_kb = max(self.peak_kb, total)
            self.peak_procs = max(self.peak_procs, len(pids))
            for pid in pids:
                try:
                    self.peak_fds = max(self.peak_fds, len(os.listdir("/proc/%d/fd" % pid)))
                except OSError:
                    pass
            self.stop.wait(self.interval)


def measure(cmd, env=None, cwd=None, stdout=None, stderr=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    sampler = Sampler(proc.pid)
    sampler.start()
    rc = proc.wait()
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "rc": rc,
        "wall_s": round(wall, 3),
        "cpu_user_s": round(usage.ru_utime, 3),
        "cpu_sys_s": round(usage.ru_stime, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024.0, 1),
        "peak_tree_pss_mb": round(sampler.peak_kb / 1024.0, 1),
        "peak_procs": sampler.peak_procs,
        "peak_fds": sampler.peak_fds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", required=True)
    parser.add_argument("--log", help="file for the command's stdout+stderr (default: inherit)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given")
    if args.log:
        with open(args.log, "wb") as log:
            cost = measure(cmd, stdout=log, stderr=subprocess.STDOUT)
    else:
        cost = measure(cmd)
    with open(args.json_out, "w") as f:
        json.dump(cost, f)
    return cost["rc"]


if __name__ == "__main__":
    sys.exit(main())
