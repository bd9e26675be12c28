"""Per-task cost of an sfdc.eca task, in-process (default) vs as a module (SFDC_ECA_IN_PROCESS=false).

    .venv/bin/python benchmarks/overhead.py --hosts 20 --tasks 5 --forks 10

One simulator with H orgs; a playbook with H hosts (local connection) x T tasks of
sfdc.eca.eca_usage_info (each: token + one usage call) runs once per path, and once with
ansible.builtin.debug as the floor of Ansible's own per-task cost. Prints wall and CPU per
task and writes benchmarks/results/overhead.{csv,md}.
"""

import argparse
import csv
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402  (benchmarks/run.py: simulator process, ansible env)

PLAY = """- name: Per-task overhead
  hosts: orgs
  gather_facts: false
  tasks:
%s
"""

ECA_TASK = """    - name: usage {i}
      sfdc.eca.eca_usage_info:
        instance_url: "{{{{ eca_instance_url }}}}"
        client_id: "{{{{ eca_client_id }}}}"
        client_secret: "{{{{ eca_client_secret }}}}"
        ca_path: "{{{{ eca_ca_path }}}}"
"""

DEBUG_TASK = """    - name: debug {i}
      ansible.builtin.debug:
        msg: "{{{{ eca_instance_url }}}}"
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    outdir = os.path.abspath(args.out)
    work = os.path.join(outdir, "work-overhead")
    os.makedirs(os.path.join(outdir, "logs"), exist_ok=True)
    os.makedirs(work, exist_ok=True)
    rows = []
    ntasks = args.hosts * args.tasks
    with bench.SimProcess(args.hosts, work, os.path.join(outdir, "logs", "overhead-simulator.log")) as sim:
        inv = os.path.join(work, "inventory.json")
        bench.write_uri_inventory(bench.org_vars(sim), inv)
        plays = {
            "ansible.builtin.debug (floor)": (DEBUG_TASK, {}),
            "sfdc.eca in-process (default)": (ECA_TASK, {}),
            "sfdc.eca as module (SFDC_ECA_IN_PROCESS=false)": (ECA_TASK, {"SFDC_ECA_IN_PROCESS": "false"}),
        }
        for label, (task, extra_env) in plays.items():
            play = os.path.join(work, "play.yml")
            with open(play, "w") as f:
                f.write(PLAY % "".join(task.format(i=i) for i in range(args.tasks)))
            env = bench.ansible_env(work)
            env.pop("SFDC_ECA_IN_PROCESS", None)
            env.update(extra_env)
            cost_file = os.path.join(work, "cost.json")
            log = os.path.join(outdir, "logs", "overhead-%d.log" % len(rows))
            cmd = [os.path.join(os.path.dirname(bench.PY), "ansible-playbook"), "-i", inv, "-f", str(args.forks), play]
            subprocess.run([bench.PY, os.path.join(HERE, "measure.py"), "--json-out", cost_file, "--log", log, "--"] + cmd,
                           env=env, cwd=work, check=False)
            with open(cost_file) as f:
                cost = json.load(f)
            if cost["rc"] != 0:
                raise SystemExit("%s: ansible-playbook failed (rc %d); see %s" % (label, cost["rc"], log))
            rows.append({"path": label, "hosts": args.hosts, "tasks_per_host": args.tasks, "forks": args.forks,
                         "wall_s": cost["wall_s"], "cpu_s": cost["cpu_s"],
                         "wall_ms_per_task": round(1000.0 * cost["wall_s"] / ntasks, 1),
                         "cpu_ms_per_task": round(1000.0 * cost["cpu_s"] / ntasks, 1)})
    os.unlink(inv)
    with open(os.path.join(outdir, "overhead.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| path | wall s | CPU s | wall ms/task | CPU ms/task |", "|---|---|---|---|---|"]
    lines += ["| %s | %.2f | %.2f | %.1f | %.1f |" % (
        r["path"], r["wall_s"], r["cpu_s"], r["wall_ms_per_task"], r["cpu_ms_per_task"]) for r in rows]
    text = "%d hosts x %d tasks, forks=%d, %s CPU(s)\n\n%s\n" % (args.hosts, args.tasks, args.forks, os.cpu_count(),
                                                                 "\n".join(lines))
    with open(os.path.join(outdir, "overhead.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
