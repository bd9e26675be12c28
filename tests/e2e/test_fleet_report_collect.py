"""eca_fleet_report collects each org's rows from the variable its rotation registered, as hostvars gives it.

The report reads a registered value as stored (a batch task registers one result of every org on each host:
templating it per host costs N x N); these tests pin down that the rows are the ones hostvars would give in every
case: a registered result (of a batch task or of the org's own task), a set_fact, an inventory variable (templated),
an extra var (which outranks a registered value), a host with nothing recorded, and text from an org that looks
like a template.
"""

import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def row(org, outcome="rotated", error=None):
    return {"org": org, "app_name": "App", "consumer_name": "C", "outcome": outcome, "error": error}


def run_playbook(tmp_path, collections_path, playbook, inventory, extra=None):
    (tmp_path / "play.yml").write_text(playbook)
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("ANSIBLE_"):
            del env[name]
    env.update(ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1",
               PATH=BIN + os.pathsep + env.get("PATH", ""))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"),
           "-e", json.dumps(dict(report_dir=str(tmp_path / "report"), **(extra or {})))]
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def report_rows(path):
    with open(path) as f:
        return {r["org"]: r for r in json.load(f)["rows"]}


def inventory(extra_host_vars=None):
    h5 = {"other_rows": [row("h5", "skipped")], "inventory_result": {"records": "{{ other_rows }}"}}
    hosts = {"h1": {}, "h2": {}, "h3": {}, "h4": {}, "h5": h5}
    for host, variables in (extra_host_vars or {}).items():
        hosts[host].update(variables)
    return {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "hosts": hosts}}


COLLECT = """
- hosts: h1,h2
  gather_facts: false
  tasks:
    - name: One result of h1 and h2 on both hosts, as the role's run_once batch task registers it
      ansible.builtin.set_fact:
        sfdc_eca_rotation:
          orgs:
            h1: {records: [{org: h1, app_name: App, consumer_name: C, outcome: rotated, error: "{{ '{{' }} lookup('env', 'HOME') {{ '}}' }}"}]}
            h2: {records: [{org: h2, app_name: App, consumer_name: C, outcome: failed, error: boom}]}
      run_once: true

- hosts: all
  gather_facts: false
  tasks:
    - name: h4 registered its own result (one org, at the top)
      ansible.builtin.debug:
        msg: recorded
      register: h4_probe
      when: inventory_hostname == 'h4'

    - name: h4's result
      ansible.builtin.set_fact:
        sfdc_eca_rotation: {records: [{org: h4, app_name: App, consumer_name: C, outcome: blocked}]}
      when: inventory_hostname == 'h4'

    - name: The report of every host
      sfdc.eca.eca_fleet_report:
        report_dir: "{{ report_dir }}/one"
        state_dir: "{{ report_dir }}/state"
      run_once: true
      delegate_to: localhost

    - name: The report of a variable from the inventory (templated as hostvars templates it)
      sfdc.eca.eca_fleet_report:
        results_var: inventory_result
        hosts: [h5]
        report_dir: "{{ report_dir }}/two"
        state_dir: "{{ report_dir }}/state"
      run_once: true
      delegate_to: localhost

    - name: The report of a registered result named by results_var
      sfdc.eca.eca_fleet_report:
        results_var: h4_probe
        hosts: [h4]
        report_dir: "{{ report_dir }}/three"
        state_dir: "{{ report_dir }}/state"
      run_once: true
      delegate_to: localhost
"""


def test_report_rows_from_registered_set_fact_inventory_and_nothing(tmp_path, collections_path):
    run_playbook(tmp_path, collections_path, COLLECT, inventory())
    rows = report_rows(tmp_path / "report" / "one" / "report.json")
    assert sorted(rows) == ["h1", "h2", "h3", "h4", "h5"]
    assert rows["h1"]["outcome"] == "rotated"
    # text from an org is data, never templated
    assert rows["h1"]["error"] == "{{ lookup('env', 'HOME') }}"
    assert (rows["h2"]["outcome"], rows["h2"]["error"]) == ("failed", "boom")
    assert rows["h4"]["outcome"] == "blocked"
    for org in ("h3", "h5"):
        assert rows[org]["outcome"] == "failed" and "before it recorded anything" in rows[org]["error"]
    assert report_rows(tmp_path / "report" / "two" / "report.json")["h5"]["outcome"] == "skipped"
    # a registered result without records: the org recorded nothing
    three = report_rows(tmp_path / "report" / "three" / "report.json")
    assert three["h4"]["outcome"] == "failed" and "before it recorded anything" in three["h4"]["error"]


def test_report_rows_extra_var_outranks_registered(tmp_path, collections_path):
    extra = {"sfdc_eca_rotation": {"orgs": {org: {"records": [row(org, "skipped")]} for org in ("h1", "h2", "h3", "h4", "h5")}}}
    run_playbook(tmp_path, collections_path, COLLECT, inventory(), extra=extra)
    rows = report_rows(tmp_path / "report" / "one" / "report.json")
    assert {org: r["outcome"] for org, r in rows.items()} == dict.fromkeys(("h1", "h2", "h3", "h4", "h5"), "skipped")
