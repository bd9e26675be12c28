"""A small fleet for the crash and leak suites: one org per API variant combination plus the slot situations
that make the role write with POST, PATCH and DELETE, an inventory for playbooks/rotate.yml, the delivery and
verification tasks files (which can SIGKILL the whole ansible-playbook process group at a chosen point), and
the checks of what the integrations hold."""

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import yaml

from safety_helpers import ROOT

_spec = importlib.util.spec_from_file_location("e2e_helpers", str(ROOT / "tests" / "e2e" / "conftest.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)   # reuse org_host / write_inventory of the e2e suite

ADMIN = "admin@fleet.test"
VAULT_PASSWORD = "crash safety vault password 7"

# org -> variants (every documented [unknown] of the API in at least one org, both values of each)
VARIANT_ORGS = {
    "v_doc": {},
    "v_flat": {"post_body": "flat", "empty_staged": "not_found", "staged_id_on_rotate": "new",
               "post_over_rotated": "replace", "staged_url_spelling": "URL", "error_body": "object",
               "disabled_scope": "secrets", "rotate_answer": "promoted", "paging": "empty_next",
               "state_case": "upper", "max_api_version": "66.0"},
    "v_mix1": {"post_body": "flat", "staged_id_on_rotate": "keep", "post_over_rotated": "replace",
               "error_body": "html", "secret_access_off": "no_secret", "rotate_answer": "no_content",
               "id_length": "15", "max_api_version": "65.0"},
    "v_mix2": {"empty_staged": "not_found", "staged_id_on_rotate": "new", "staged_url_spelling": "URL",
               "error_body": "object", "usage_lists": "used", "paging": "ignore_page", "state_case": "lower",
               "expired_staged": "disappears", "consumer_names": "app", "max_api_version": "68.0",
               "rate_limit": "on"},
}
# The slot situations ride on the variant orgs (fewer hosts, quicker runs): v_flat has a two-consumer app
# delivered to vault files, v_mix1 an Expired pair to replace (DELETE then POST), v_mix2 revoke_previous
# (DELETE after PATCH).
MULTI_ORG, EXPIRED_ORG, REVOKE_ORG = "v_flat", "v_mix1", "v_mix2"
ORGS = tuple(VARIANT_ORGS)


def seed():
    orgs = []
    for name, variants in VARIANT_ORGS.items():
        consumer = {"name": "Billing"}
        if name == EXPIRED_ORG:
            consumer["staged"] = {"state": "Expired", "age_days": 40}
        apps = [{"developer_name": "Billing_Sync", "consumers": [consumer]}]
        if name == MULTI_ORG:
            apps = [{"developer_name": "Data_Loader", "consumers": [{"name": "Primary"}, {"name": "Secondary"}]}]
        orgs.append({"name": name, "admin": {"username": ADMIN}, "variants": variants, "apps": apps})
    return {"orgs": orgs}


# SIGKILL the whole process group of ansible-playbook (the test starts it in a session of its own).
KILL = """
    argv:
      - "{{ ansible_python_interpreter }}"
      - "-c"
      - "import os, signal; open('{{ crash_dir }}/killed-{{ crash_at }}', 'w').close(); os.killpg(os.getpgid(0), signal.SIGKILL)\"""".rstrip()

DELIVER = """
- name: Crash before delivering (after stage)
  ansible.builtin.command:%(kill)s
  when: crash_at == 'after_stage'
  changed_when: false

- name: Store the credential where the integration reads it
  ansible.builtin.copy:
    content: "{{ sfdc_eca_credential | to_json }}"
    dest: "{{ delivery_dir }}/{{ sfdc_eca_credential.org }}__{{ sfdc_eca_credential.app_name }}__{{ sfdc_eca_credential.consumer_name }}.json"
    mode: "0600"

- name: Crash after delivering
  ansible.builtin.command:%(kill)s
  when: crash_at == 'after_deliver'
  changed_when: false
""" % {"kill": KILL}

VERIFY_HOOK = """
- name: The integration's smoke test
  ansible.builtin.assert:
    that: sfdc_eca_credential.key | length > 10

- name: Crash after verifying
  ansible.builtin.command:%(kill)s
  when: crash_at == 'after_verify'
  changed_when: false
""" % {"kill": KILL}


class Fleet:
    def __init__(self, sim, base):
        self.sim = sim
        self.base = Path(base)
        self.delivery_dir = self.base / "delivered"
        self.vault_dir = self.base / "vaults"
        self.crash_dir = self.base / "crash"
        self.report_dir = self.base / "report"
        for d in (self.delivery_dir, self.vault_dir, self.crash_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.password_file = self.base / "vault-password"
        self.password_file.write_text(VAULT_PASSWORD + "\n")
        self.password_file.chmod(0o600)
        self.deliver_file = self.base / "deliver.yml"
        self.deliver_file.write_text(DELIVER)
        self.verify_file = self.base / "verify_hook.yml"
        self.verify_file.write_text(VERIFY_HOOK)
        self.original = self.pairs()
        hosts = {}
        tasks = {"tasks_file": str(self.deliver_file)}
        for org in ORGS:
            app = "Data_Loader" if org == MULTI_ORG else "Billing_Sync"
            entry = {"app_name": app, "deliver": tasks, "verify_tasks_file": str(self.verify_file)}
            if org == MULTI_ORG:
                entry["deliver"] = {"vault_file": str(self.vault_dir / "{org}-{app_name}-{consumer_name}.yml"),
                                    "vault_password_file": str(self.password_file)}
            if org == REVOKE_ORG:
                entry["revoke_previous"] = True
            hosts[org] = e2e.org_host(sim, org, [entry], retry_backoff=0.01)
        self.inventory = e2e.write_inventory(self.base / "inventory.yml", hosts, {
            "delivery_dir": str(self.delivery_dir), "crash_dir": str(self.crash_dir)})

    def extra_vars(self, crash_at="never", **more):
        v = {"sfdc_eca_report_dir": str(self.report_dir), "sfdc_eca_verify_delay": 0, "sfdc_eca_verify_retries": 1,
             "sfdc_eca_canary_size": len(ORGS), "crash_at": crash_at}
        v.update(more)
        return json.dumps(v)

    # -- truth -------------------------------------------------------------------------------------
    def consumers(self):
        for org in ORGS:
            for app in self.sim.org(org).apps:
                if app.developer_name in ("Billing_Sync", "Data_Loader"):
                    for c in app.consumers:
                        yield org, app.developer_name, c

    def pairs(self):
        return {(org, app, c.name): dict(c.main) for org, app, c in self.consumers()}

    def shown_name(self, org, app, consumer):
        """The consumer's name as the API shows it (the app's label where the org names every consumer so)."""
        if self.sim.variants(org)["consumer_names"] == "app":
            return self.sim.org(org).app(app).label
        return consumer

    def delivered(self, org, app, consumer):
        consumer = self.shown_name(org, app, consumer)
        plain = self.delivery_dir / ("%s__%s__%s.json" % (org, app, consumer))
        if plain.exists():
            assert stat.S_IMODE(plain.stat().st_mode) == 0o600, plain
            return json.loads(plain.read_text())
        vault = self.vault_dir / ("%s-%s-%s.yml" % (org, app, consumer))
        if vault.exists():
            return decrypt_vault_file(vault, VAULT_PASSWORD)
        return None

    def held(self, org, app, consumer):
        """The pair the integration uses now: the last delivered one, else the original main pair."""
        got = self.delivered(org, app, consumer)
        if got is not None:
            return got["key"], got["secret"]
        p = self.original[(org, app, consumer)]
        return p["key"], p["secret"]

    def rotation_counts(self):
        return {(org, app, c.name): self.rotations(org, c.id) for org, app, c in self.consumers()}

    def rotations(self, org, consumer_id):
        """PATCH rotate requests that took effect (answered 200 or 204, or performed before the connection was reset)."""
        return sum(1 for e in self.sim.requests(org)
                   if e["method"] == "PATCH" and consumer_id[:15] in e["path"]   # 15- or 18-character ids
                   and (e["status"] in (200, 204) or e.get("fault") == "crash_after_write"))

    def integration_problems(self):
        """Every consumer whose integration holds no pair that authenticates now."""
        out = []
        for org, app, c in self.consumers():
            key, secret = self.held(org, app, c.name)
            if not self.sim.authenticates(org, key, secret):
                out.append("%s %s/%s holds ...%s which does not authenticate (slot %s)"
                           % (org, app, c.name, key[-4:], (c.staged or {}).get("state")))
        return out

    def final_problems(self, may_rotate_again=()):
        """After the last run: rotated exactly once, delivered == main, no Active staged pair left behind.
        `may_rotate_again`: consumers whose first rotation is older than a new rotation period (two allowed)."""
        out = []
        for org, app, c in self.consumers():
            where = "%s %s/%s" % (org, app, c.name)
            n = self.rotations(org, c.id)
            if n != 1 and not (n == 2 and (org, app, c.name) in may_rotate_again):
                out.append("%s rotated %d times" % (where, n))
            main = c.main
            got = self.delivered(org, app, c.name)
            if got is None or (got["key"], got["secret"]) != (main["key"], main["secret"]):
                out.append("%s: delivered pair is not the main pair" % where)
            if main["key"] == self.original[(org, app, c.name)]["key"]:
                out.append("%s: main key unchanged" % where)
            staged = c.staged
            if staged and staged["state"] == "Active":
                out.append("%s: orphaned Active staged pair ...%s" % (where, staged["key"][-4:]))
            if org == REVOKE_ORG and staged is not None:
                out.append("%s: previous pair not revoked (%s)" % (where, staged["state"]))
        return out


def decrypt_vault_file(path, password):
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret
    text = Path(path).read_bytes()
    assert text.startswith(b"$ANSIBLE_VAULT;"), "%s is not vault-encrypted" % path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(password.encode()))])
    return yaml.safe_load(vault.decrypt(text))


def ansible_playbook():
    return str(Path(sys.executable).parent / "ansible-playbook")
