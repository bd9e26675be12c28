"""The batch task's first phase alone at fleet scale: each org's options from its variables.

    .venv/bin/python benchmarks/options_scale.py --orgs 2000 [--repeat 3] [--profile FILE]

Before it calls any org, sfdc.eca.eca_rotation resolves every org of the batch: the variables a task on the
org's host would see (Ansible's variable manager), the role's options templated and checked. This runs that
phase (ActionModule._options of eca_rotation, through a probe action subclassing it) for N orgs of an inventory
shaped like the benchmark's (a connection per host, the rotation entry and report directory as group variables,
the role's defaults), in one ansible-playbook run, and prints its CPU and wall time per org. --profile writes a
cProfile of the phase.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run import ansible_env  # noqa: E402  (the benchmark's helpers)

PROBE = '''
import cProfile
import json
import os
import time

from ansible_collections.sfdc.eca.plugins.action.eca_rotation import ActionModule as Rotation
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_options import task_spec


class ActionModule(Rotation):
    def run(self, tmp=None, task_vars=None):
        result = super(Rotation, self).run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=task_spec())
        orgs = self._orgs(params, task_vars)
        times = []
        for attempt in range(int(os.environ.get('PROBE_REPEAT', '1'))):
            profile = cProfile.Profile() if os.environ.get('PROBE_PROFILE') and attempt == 0 else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            options, refused = self._options(orgs, params, task_vars)
            if profile:
                profile.disable()
                profile.dump_stats(os.environ['PROBE_PROFILE'])
            times.append((time.process_time() - cpu, time.perf_counter() - wall))
        with open(os.environ['PROBE_OUT'], 'w') as f:
            json.dump({'resolved': len(options), 'refused': len(refused), 'times': times,
                       'problems': [r['records'][0].get('error') for r in list(refused.values())[:3]]}, f)
        result.update(changed=False)
        return result
'''

PLAYBOOK = '''
- hosts: all
  gather_facts: false
  tasks:
    - name: Resolve every org's options
      options_probe:
        orgs: "{{ ansible_play_batch }}"
      run_once: true
      register: probe
'''


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", help="cProfile output of the first repeat")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="options-scale-")
    os.makedirs(os.path.join(work, "action_plugins"))
    with open(os.path.join(work, "action_plugins", "options_probe.py"), "w") as f:
        f.write(PROBE)
    names = ["org%05d" % i for i in range(1, args.orgs + 1)]
    hosts = dict((org, {"sfdc_eca_connection": {
        "instance_url": "https://127.1.%d.%d:8443" % (i // 254, i % 254 + 1), "client_id": "3MVG9%020d" % i,
        "client_secret": "secret%030d" % i, "ca_path": "/etc/ssl/certs/ca-certificates.crt"}}) for i, org in enumerate(names))
    deliver = {"vault_file": os.path.join(work, "delivered", "{org}-{app_name}-{consumer_name}.vault.yml"),
               "vault_password_file": os.path.join(work, "vault-password")}
    # the role's defaults, as group variables (the same values and templates a task of the role sees)
    with open(os.path.join(ROOT, "roles", "rotation", "defaults", "main.yml")) as f:
        group = yaml.safe_load(f)
    group.update({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                  "sfdc_eca_rotations": [{"app_name": "Billing_Sync", "consumer_name": "Billing", "deliver": deliver}],
                  "sfdc_eca_report_dir": os.path.join(work, "report")})
    with open(os.path.join(work, "inventory.json"), "w") as f:
        json.dump({"all": {"hosts": hosts, "vars": group}}, f)
    with open(os.path.join(work, "play.yml"), "w") as f:
        f.write(PLAYBOOK)
    out = os.path.join(work, "probe.json")
    env = ansible_env(work)
    env.update(ANSIBLE_ACTION_PLUGINS=os.path.join(work, "action_plugins"), PROBE_REPEAT=str(args.repeat),
               PROBE_OUT=out)
    if args.profile:
        env["PROBE_PROFILE"] = os.path.abspath(args.profile)
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
                           os.path.join(work, "inventory.json"), os.path.join(work, "play.yml")],
                          env=env, cwd=work, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not os.path.exists(out):
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 1
    with open(out) as f:
        probe = json.load(f)
    print("%d orgs, %d resolved, %d refused" % (args.orgs, probe["resolved"], probe["refused"]))
    for cpu, wall in probe["times"]:
        print("  %.2f s CPU (%.2f ms/org), %.2f s wall" % (cpu, 1000.0 * cpu / args.orgs, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
