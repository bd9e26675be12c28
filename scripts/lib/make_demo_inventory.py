"""Write the demo's inventory from the simulator's state file: make_demo_inventory.py STATE_FILE OUTDIR

OUTDIR gets:
  inventory.yml    one host per simulated org (ansible_connection: local), its instance URL, the
                   simulator's CA, the org's admin External Client App with the client secret as an
                   inline !vault value, and every app of the org in sfdc_eca_rotations;
  vault-password   a random vault password (mode 0600): pass it with --vault-password-file;
  deliver/         where the new credentials land: ansible-vault encrypted files (mode 0600), and for
                   one org a tasks file that writes an integration's env file (deliver_env.yml).
The apps of each org are read from the org itself (token + usage listing over the simulator's HTTPS,
127.0.0.1 only), so the inventory matches whatever seed the simulator was started with.
"""

import json
import os
import secrets
import sys

import requests
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

ADMIN_APP = "Sim_Admin"
API = "/services/data/v65.0"

DELIVER_ENV = """---
# Example delivery tasks file: the integration reads its consumer key and secret from an env file.
# sfdc.eca.rotation includes it once per rotated consumer with sfdc_eca_credential set; its tasks run
# with no_log. Replace it with yours (AWX credential, HashiCorp Vault, a Kubernetes secret...).
- name: Write the integration's env file (mode 0600)
  ansible.builtin.copy:
    dest: "{{ demo_deliver_dir }}/{{ sfdc_eca_credential.org }}-{{ sfdc_eca_credential.app_name }}-{{ sfdc_eca_credential.consumer_name }}.env"
    mode: "0600"
    content: |
      SALESFORCE_INSTANCE_URL={{ sfdc_eca_credential.instance_url }}
      SALESFORCE_CLIENT_ID={{ sfdc_eca_credential.key }}
      SALESFORCE_CLIENT_SECRET={{ sfdc_eca_credential.secret }}
"""


class VaultString(str):
    pass


def _vault_representer(dumper, value):
    return dumper.represent_scalar("!vault", str(value), style="|")


yaml.SafeDumper.add_representer(VaultString, _vault_representer)


def list_apps(org, ca_path):
    """Developer names of the org's apps (the simulator's own admin app excluded)."""
    http = requests.Session()
    http.trust_env = False  # never a proxy, never REQUESTS_CA_BUNDLE: the simulator's CA only
    http.verify = ca_path or True
    admin = org["admin"]
    resp = http.post(org["instance_url"] + "/services/oauth2/token", timeout=30,
                     data={"grant_type": "client_credentials", "client_id": admin["client_id"],
                           "client_secret": admin["client_secret"]})
    resp.raise_for_status()
    headers = {"Authorization": "Bearer " + resp.json()["access_token"]}
    names = []
    url = org["instance_url"] + API + "/apps/oauth/usage"
    while url:
        resp = http.get(url, headers=headers, timeout=30)
        resp.raise_for_status()
        body = resp.json()
        names.extend(a["developerName"] for a in body.get("apps") or [])
        url = body.get("nextPageUrl")
        if url and url.startswith("/"):
            url = org["instance_url"] + url
    return [n for n in names if n != ADMIN_APP]


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: make_demo_inventory.py STATE_FILE OUTDIR\n")
        return 2
    state_file, outdir = argv[1], os.path.abspath(argv[2])
    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    deliver_dir = os.path.join(outdir, "deliver")
    os.makedirs(deliver_dir, mode=0o700, exist_ok=True)

    password = secrets.token_urlsafe(24)
    password_file = os.path.join(outdir, "vault-password")
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    vault = VaultLib([("default", VaultSecret(password.encode()))])

    tasks_file = os.path.join(outdir, "deliver_env.yml")
    with open(tasks_file, "w", encoding="utf-8") as f:
        f.write(DELIVER_ENV)

    hosts = {}
    for i, (name, org) in enumerate(sorted(state["orgs"].items())):
        apps = list_apps(org, state.get("ca_path"))
        secret = vault.encrypt(org["admin"]["client_secret"].encode()).decode()
        connection = {"instance_url": org["instance_url"], "client_id": org["admin"]["client_id"],
                      "client_secret": VaultString(secret)}
        if state.get("ca_path"):
            connection["ca_path"] = state["ca_path"]
        # Every org but one delivers to vault files; the second org shows the tasks-file backend.
        if i == 1:
            deliver = {"tasks_file": tasks_file}
        else:
            deliver = {"vault_file": os.path.join(deliver_dir, "{org}-{app_name}-{consumer_name}.vault.yml")}
        hosts[name] = {"sfdc_eca_connection": connection,
                       "sfdc_eca_rotations": [{"app_name": app, "deliver": deliver} for app in apps]}

    inventory = {"all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "sfdc_eca_vault_password_file": password_file,
            "sfdc_eca_state_dir": os.path.join(outdir, "state"),
            "demo_deliver_dir": deliver_dir,
        },
        "hosts": hosts,
    }}
    path = os.path.join(outdir, "inventory.yml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Written by scripts/lib/make_demo_inventory.py from %s\n" % os.path.abspath(state_file))
        yaml.safe_dump(inventory, f, sort_keys=False, default_flow_style=False, width=1000)
    print("inventory: %s (%d orgs); vault password file: %s" % (path, len(hosts), password_file))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
