"""The report task alone at fleet scale: sfdc.eca.eca_fleet_report over N orgs' registered results.

    .venv/bin/python benchmarks/report_scale.py --orgs 2000 [--with-history]

A playbook of N hosts: one run_once set_fact registers a batch result of every org (one rotated consumer each,
the fields a real run records) on every host, as the role's batch task does; then the role's report task writes
report.{json,md,html} and history.json (with --with-history, from an earlier run's history of every org, as a
scheduled run finds it). Prints the wall and CPU time of the report task (from benchmarks/callback_plugins).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run import ansible_env, seed_history  # noqa: E402  (the benchmark's helpers)

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: The batch result of every org, registered on every host (as the batch task does)
      ansible.builtin.set_fact:
        sfdc_eca_rotation: "{{ lookup('ansible.builtin.file', batch_file) | from_json }}"
      run_once: true

- hosts: all
  gather_facts: false
  tasks:
    - name: Write the report (once, on the controller)
      ansible.builtin.import_role:
        name: sfdc.eca.rotation
        tasks_from: report
      run_once: true
"""


def rows(org, n):
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"org": org, "instance_url": "https://127.1.%d.%d:8443" % (n // 254, n % 254 + 1),
             "app_name": "Billing_Sync", "app_id": "0xA%015d" % n, "consumer_name": "Billing",
             "consumer_id": "888%015d" % n, "plan": "rotate", "plan_reason": "nothing staged: stage a new pair",
             "outcome": "rotated", "phase": "done", "old_key": "...AB%02d" % (n % 100), "new_key": "...CD%02d" % (n % 100),
             "slot_before": "empty", "state": "Rotated",
             "expiry": None, "grace_end": (now + datetime.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
             "staged_expiration": None, "staged_key": "...AB%02d" % (n % 100), "rolled_back": False, "revoked": False,
             "old_pair_refused": None, "delivered_to": "vault_file /srv/creds/%s-Billing_Sync-Billing.vault.yml" % org,
             "findings": None, "last_rotated": stamp, "error": None, "started": stamp, "finished": stamp,
             "duration": 0.4, "_new_key_fp": "%032x" % n, "rotated_at": stamp}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--with-history", action="store_true")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="report-scale-")
    names = ["org%05d" % i for i in range(1, args.orgs + 1)]
    batch = {"changed": True, "tasks_file_orgs": [], "api_calls": 7 * args.orgs,
             "orgs": dict((org, {"changed": True, "canary": False, "plan": [], "api_calls": 7, "warnings": [],
                                 "org_failed": False, "records": rows(org, i)}) for i, org in enumerate(names))}
    with open(os.path.join(work, "batch.json"), "w") as f:
        json.dump(batch, f)
    report_dir = os.path.join(work, "report")
    if args.with_history:
        seed_history(report_dir, [{"name": org, "eca_instance_url": "https://x"} for org in names])
    with open(os.path.join(work, "inventory.json"), "w") as f:
        json.dump({"all": {"hosts": dict.fromkeys(names, {}), "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "batch_file": os.path.join(work, "batch.json"), "sfdc_eca_report_dir": report_dir}}}, f)
    with open(os.path.join(work, "play.yml"), "w") as f:
        f.write(PLAYBOOK)
    times = os.path.join(work, "times.json")
    env = ansible_env(work)
    env.update(ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="bench_task_times", BENCH_TASK_TIMES=times)
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                           os.path.join(work, "inventory.json"), os.path.join(work, "play.yml")],
                          env=env, cwd=work, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 1
    with open(times) as f:
        for task in json.load(f):
            print("%8.2f s wall %8.2f s CPU  %s" % (task["wall_s"], task["cpu_s"], task["task"]))
    with open(os.path.join(report_dir, "report.json")) as f:
        assert len(json.load(f)["rows"]) == args.orgs
    return 0


if __name__ == "__main__":
    sys.exit(main())
