"""The in-process action plugins and the modules give identical results (issue 5).

The same playbook runs twice against two simulators seeded identically: once by default
(in-process on the controller) and once with SFDC_ECA_IN_PROCESS=false (ordinary module
execution). Registered results and the simulator's request logs must match, after replacing
only values that are random per run (tokens, generated keys, ids and secrets, timestamps, the
simulator's ports and CA path) with placeholders numbered by first appearance, so that a value
that repeats in one run must repeat in the same places in the other.
The playbook covers module_defaults (group/sfdc.eca.eca), env fallbacks from the play's
`environment:`, check mode, diff, no_log masking, warnings, validation errors and EcaError failures.
"""

import copy
import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ADMIN_SECRET = "AdminSecret0123456789ABCDEF"
SEED = {
    "orgs": [
        {"name": "org01",
         "admin": {"client_id": "3MVGadminKeyOrg01", "client_secret": ADMIN_SECRET, "username": "admin@org01.test"},
         "apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync", "id": "0xI5g00000000AA",
                   "consumers": [{"name": "Billing", "id": "8885g00000000AA", "key": "3MVGbillingKey01",
                                  "secret": "BillingMainSecret01xyz"}]}]},
        {"name": "org02",
         "admin": {"client_id": "3MVGadminKeyOrg02", "client_secret": ADMIN_SECRET, "username": "admin@org02.test"},
         "apps": [{"developer_name": "Billing_Sync", "label": "Billing Sync", "id": "0xI5g00000000BB",
                   "consumers": [{"name": "Billing", "id": "8885g00000000BB", "key": "3MVGbillingKey02",
                                  "secret": "BillingMainSecret02xyz"}]}]},
    ]
}

PLAYBOOK = """
- name: Parity of in-process and module execution
  hosts: orgs
  gather_facts: false
  environment:
    # the environment's credentials serve the org it names (SALESFORCE_INSTANCE_URL)
    SALESFORCE_INSTANCE_URL: "{{ org_url }}"
    SALESFORCE_CLIENT_SECRET: "{{ admin_secret }}"
  module_defaults:
    group/sfdc.eca.eca:
      instance_url: "{{ org_url }}"
      client_id: "{{ admin_id }}"
      ca_path: "{{ sim_ca }}"
      max_retries: 0
  tasks:
    - name: Token
      sfdc.eca.eca_token:
      register: r_token

    - name: Verify a pair
      sfdc.eca.eca_token:
        verify_only: true
      register: r_verify

    - name: Usage with a name that does not exist (warning)
      sfdc.eca.eca_usage_info:
        name: [Billing_Sync, No_Such_App]
      register: r_usage

    - name: Credential info
      sfdc.eca.eca_credential_info:
        app_name: Billing_Sync
      register: r_info

    - name: Mutually exclusive options
      sfdc.eca.eca_credential_info:
        app_name: Billing_Sync
        app_id: 0xI5g00000000AA
      register: r_mutex
      ignore_errors: true

    - name: Unsupported option
      sfdc.eca.eca_usage_info:
        bogus: 1
      register: r_unsupported
      ignore_errors: true

    - name: Bad value from the environment only
      sfdc.eca.eca_usage_info:
      environment:
        SALESFORCE_TIMEOUT: soon
      register: r_badenv
      ignore_errors: true

    - name: Stage, check mode with diff
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        consumer_name: Billing
        state: present
      check_mode: true
      diff: true
      register: r_stage_check

    - name: Stage
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: present
      diff: true
      register: r_stage

    - name: Stage again (nothing to do)
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: present
      register: r_stage_again

    - name: Rotate, with the token from the first task (no_log parameter)
      sfdc.eca.eca_staged_credential:
        access_token: "{{ r_token.access_token }}"
        app_name: Billing_Sync
        state: rotated
      diff: true
      register: r_rotate

    - name: Rotate again (already Rotated)
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: rotated
      register: r_rotate_again

    - name: Unknown app (EcaError)
      sfdc.eca.eca_staged_credential:
        app_name: No_Such_App
        state: present
      register: r_unknown
      ignore_errors: true

    - name: Refused credentials (EcaAuthError)
      sfdc.eca.eca_token:
        client_secret: wrong-secret-value
      register: r_refused
      ignore_errors: true

    - name: Secrets on request, and a secret echoed back in a result
      sfdc.eca.eca_credential_info:
        app_name: Billing_Sync
        include_secrets: true
      register: r_secrets

    - name: Revoke the old credential, check mode
      sfdc.eca.eca_staged_credential:
        app_name: Billing_Sync
        state: absent
      check_mode: true
      register: r_absent_check

    - name: Keep every registered result
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        content: "{{ results | to_nice_json }}"
        mode: "0600"
      vars:
        results:
          token: "{{ r_token }}"
          verify: "{{ r_verify }}"
          usage: "{{ r_usage }}"
          info: "{{ r_info }}"
          mutex: "{{ r_mutex }}"
          unsupported: "{{ r_unsupported }}"
          badenv: "{{ r_badenv }}"
          stage_check: "{{ r_stage_check }}"
          stage: "{{ r_stage }}"
          stage_again: "{{ r_stage_again }}"
          rotate: "{{ r_rotate }}"
          rotate_again: "{{ r_rotate_again }}"
          unknown: "{{ r_unknown }}"
          refused: "{{ r_refused }}"
          secrets: "{{ r_secrets }}"
          absent_check: "{{ r_absent_check }}"
"""

# Records every task result as the callbacks see it (with `invocation`, which registered
# variables do not keep), one JSON line per host and task.
CAPTURE_CALLBACK = '''
import dataclasses
import json
import os

from ansible.plugins.callback import CallbackBase


def _plain(obj):
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return str(obj)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "capture"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status, result):
        line = {"host": result._host.get_name(), "task": result._task.get_name(), "status": status,
                "result": result._result}
        with open(os.environ["CAPTURE_FILE"], "a") as f:
            f.write(json.dumps(line, default=_plain, sort_keys=True) + "\\n")

    def v2_runner_on_ok(self, result):
        self._write("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result)

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result)
'''

# Keys whose values are random per simulator run.
RANDOM_KEYS = {"access_token", "issued_at", "id", "key", "secret", "main_key", "staged_key", "created_date",
               "expiration_date", "created_by", "identifier"}


def _inventory(sim, out_dir):
    hosts = {}
    for name, org in sim.orgs.items():
        hosts[name] = {"org_url": org.instance_url, "admin_id": org.admin["client_id"],
                       "admin_secret": org.admin["client_secret"]}
    return {"orgs": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "sim_ca": sim.ca_path, "out_dir": out_dir}}}


def _run(sim, tmp_path, label, in_process):
    work = tmp_path / label
    work.mkdir()
    (work / "inventory.json").write_text(json.dumps(_inventory(sim, str(work))))
    (work / "play.yml").write_text(PLAYBOOK)
    (work / "callbacks").mkdir()
    (work / "callbacks" / "capture.py").write_text(CAPTURE_CALLBACK)
    env = dict(os.environ)
    env.pop("SFDC_ECA_IN_PROCESS", None)
    if not in_process:
        env["SFDC_ECA_IN_PROCESS"] = "false"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.dirname(os.path.dirname(os.path.dirname(ROOT))))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_CALLBACK_PLUGINS=str(work / "callbacks"), ANSIBLE_CALLBACKS_ENABLED="capture",
               CAPTURE_FILE=str(work / "capture.jsonl"),
               # ansible-core 2.21+ returns invocation only when asked (earlier releases always do)
               ANSIBLE_INJECT_INVOCATION="true")
    bindir = os.path.dirname(sys.executable)
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), "-i", str(work / "inventory.json"),
                           str(work / "play.yml"), "-vvv"],
                          env=env, cwd=str(work), capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = {org: json.loads((work / ("%s.json" % org)).read_text()) for org in sim.orgs}
    for line in (work / "capture.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["task"].startswith("Keep every"):
            continue
        results[entry["host"]].setdefault("callback", {})[entry["task"]] = [entry["status"], entry["result"]]
    requests_log = {org: [(r["method"], r["endpoint"], r["status"]) for r in sim.requests(org)] for org in sim.orgs}
    return results, requests_log, proc.stdout, wall


def _normalize(value, sim, table):
    """Replace per-run values by placeholders; `table` numbers random values by first appearance."""
    if isinstance(value, dict):
        out = {}
        for k in sorted(value):
            v = value[k]
            if k == "exception" and isinstance(v, str):
                # a traceback (ansible-core < 2.19 at -vvv): the module's frames are not the plugin's
                out[k] = "<traceback>"
            elif k in RANDOM_KEYS and isinstance(v, str) and v:
                if v.startswith("..."):  # a key suffix in a diff
                    v = table.setdefault(("suffix", v), "<suffix#%d>" % len(table))
                else:
                    v = table.setdefault(v, "<%s#%d>" % (k, len(table)))
                out[k] = v
            else:
                out[k] = _normalize(v, sim, table)
        return out
    if isinstance(value, list):
        return [_normalize(v, sim, table) for v in value]
    if isinstance(value, str):
        for name, org in sim.orgs.items():
            value = value.replace(org.instance_url, "<url:%s>" % name)
            value = value.replace("127.0.0.1:%d" % org.port, "<host:%s>" % name)
        if sim.ca_path:
            value = value.replace(sim.ca_path, "<ca>")
        return value
    return value


def _assert_same(a, b, path="results"):
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), "%s: keys differ: only in-process %s, only module %s" % (
            path, sorted(set(a) - set(b)), sorted(set(b) - set(a)))
        for k in a:
            _assert_same(a[k], b[k], "%s.%s" % (path, k))
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), "%s: lengths differ (%d vs %d)" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, "%s[%d]" % (path, i))
    else:
        assert a == b and type(a) is type(b), "%s: in-process %r != module %r" % (path, a, b)


@pytest.fixture
def twin_sims(sim_factory):
    return sim_factory(copy.deepcopy(SEED)), sim_factory(copy.deepcopy(SEED))


def test_inprocess_and_module_results_are_identical(twin_sims, tmp_path):
    sim_a, sim_b = twin_sims
    res_a, log_a, out_a, wall_a = _run(sim_a, tmp_path, "inprocess", in_process=True)
    res_b, log_b, out_b, wall_b = _run(sim_b, tmp_path, "module", in_process=False)

    # Each run took the path it was meant to (the plugin says so at -vvv).
    assert "running in-process on the controller" in out_a and "running as a module" not in out_a
    assert "running as a module (SFDC_ECA_IN_PROCESS=false)" in out_b and "running in-process" not in out_b

    for org in sim_a.orgs:
        norm_a = _normalize(res_a[org], sim_a, {})
        norm_b = _normalize(res_b[org], sim_b, {})
        _assert_same(norm_a, norm_b, org)
        assert log_a[org] == log_b[org], "%s: the two paths sent different requests" % org

    # The comparison is not vacuous: the playbook did what it says, the same way on both paths.
    for res, sim in ((res_a, sim_a), (res_b, sim_b)):
        for org in sim.orgs:
            r = res[org]
            assert r["token"]["access_token"] and r["token"]["auth_flow"] == "client_credentials"
            assert r["usage"]["apps"][0]["developer_name"] == "Billing_Sync"
            assert any("No_Such_App" in str(w) for w in r["usage"].get("warnings", [])), r["usage"]
            assert r["mutex"]["failed"] and r["mutex"]["msg"] == "parameters are mutually exclusive: app_name|app_id"
            assert r["unsupported"]["failed"] and "Unsupported parameters for (sfdc.eca.eca_usage_info) module: bogus" \
                in r["unsupported"]["msg"]
            assert r["badenv"]["failed"] and "timeout" in r["badenv"]["msg"]
            assert r["stage_check"]["changed"] and r["stage_check"]["diff"]["after"]["staged_key"] == "(new)"
            assert r["stage"]["changed"] and r["stage"]["action"] == "staged" and r["stage"]["staged_credential"]["secret"]
            assert not r["stage_again"]["changed"]
            assert r["rotate"]["changed"] and r["rotate"]["action"] == "rotated"
            seen = r["callback"]
            assert len(seen) == 16, sorted(seen)
            rotate_args = seen["Rotate, with the token from the first task (no_log parameter)"][1]["invocation"]["module_args"]
            assert rotate_args["access_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
            assert rotate_args["client_id"] == sim.orgs[org].admin["client_id"] and rotate_args["state"] == "rotated"
            assert not r["rotate_again"]["changed"]
            assert r["unknown"]["failed"] and "No_Such_App" in r["unknown"]["msg"]
            assert r["unknown"]["error_type"] == "EcaInputError" and r["unknown"]["api_calls"] >= 1
            assert r["refused"]["failed"] and r["refused"]["error_type"] == "EcaAuthError"
            refused = seen["Refused credentials (EcaAuthError)"]
            assert refused[0] == "failed"
            assert refused[1]["invocation"]["module_args"]["client_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
            assert r["absent_check"]["changed"] and r["absent_check"]["action"] == "deleted"
            # no_log: the admin secret (from the environment) is masked wherever it would appear
            assert ADMIN_SECRET not in json.dumps(r)
            info_args = seen["Credential info"][1]["invocation"]["module_args"]
            assert info_args["client_secret"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
            assert info_args["timeout"] == 30.0 and info_args["api_version"] == "65.0"
            # the simulator really rotated: main key changed, the old one sits Rotated in the slot
            cons = sim.org(org).app("Billing_Sync").consumer("Billing")
            seeded_key = next(o for o in SEED["orgs"] if o["name"] == org)["apps"][0]["consumers"][0]["key"]
            assert cons.main["key"] != seeded_key
            assert cons.staged["state"] == "Rotated"
    print("\nparity playbook (2 orgs x 16 tasks): in-process %.2f s, module %.2f s" % (wall_a, wall_b))


def test_delegation_to_a_non_local_host_uses_the_module(tmp_path, sim):
    """delegate_to a host whose connection is not local: the plugin must not run on the controller."""
    work = tmp_path
    inventory = {"all": {"hosts": {
        "ctl": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "remote": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1,
                   "ansible_ssh_common_args": "-o ConnectTimeout=2 -o BatchMode=yes"}}}}
    (work / "inv.json").write_text(json.dumps(inventory))
    org = sim.orgs["org01"]
    (work / "play.yml").write_text("""
- hosts: ctl
  gather_facts: false
  tasks:
    - sfdc.eca.eca_usage_info:
        instance_url: %s
        client_id: %s
        client_secret: %s
        ca_path: %s
      delegate_to: remote
      register: r
      ignore_unreachable: true
    - ansible.builtin.assert:
        that: r is unreachable
""" % (org.instance_url, org.admin["client_id"], org.admin["client_secret"], sim.ca_path))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(work / "tmp"))
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.dirname(os.path.dirname(os.path.dirname(ROOT))))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(work / "inv.json"),
                           str(work / "play.yml"), "-vvv"], env=env, cwd=str(work), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "running as a module (connection" in proc.stdout
    assert not sim.requests("org01"), "the task reached the org although its host was unreachable"
    assert org.admin["client_secret"] not in proc.stdout
