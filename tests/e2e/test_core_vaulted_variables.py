"""playbooks/rotate.yml with the org's client secret vault-encrypted in the inventory, on this ansible-core.

The batch task reads each org's variables through the play's variable manager and templates them itself;
how a vault-encrypted value comes out of that differs between ansible-core releases (plugin_utils/_compat.py,
_rotation.plain). The CI matrix runs this on every release of scripts/lib/matrix.txt.
"""

import pytest
import yaml

from ansible.parsing.vault import VaultLib, VaultSecret

SEED = {"orgs": [
    {"name": "org%02d" % i, "apps": [{"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]}]}
    for i in (1, 2)]}
INVENTORY_PASSWORD = "inventory-vault-pw"


class Vaulted(str):
    """A string YAML writes as ``!vault |`` with its ciphertext."""


def _vault_representer(dumper, value):
    return dumper.represent_scalar("!vault", str(value), style="|")


@pytest.mark.parametrize("per_org", [False, True], ids=["batch task", "task per org"])
def test_a_vault_encrypted_client_secret_reaches_the_org(per_org, sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(SEED)
    vault = VaultLib([("default", VaultSecret(INVENTORY_PASSWORD.encode()))])
    (tmp_path / "inventory-pw").write_text(INVENTORY_PASSWORD + "\n")
    (tmp_path / "delivery-pw").write_text("delivery-vault-pw\n")
    hosts = {}
    for org in sorted(sim.orgs):
        deliver = {"vault_file": str(tmp_path / "vaults" / "{org}.vault.yml"),
                   "vault_password_file": str(tmp_path / "delivery-pw")}
        hosts[org] = e2e.org_host(sim, org, [{"app_name": "Billing_Sync", "deliver": deliver}])
    path = e2e.write_inventory(tmp_path / "plain.yml", hosts)
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    for host in data["all"]["hosts"].values():
        connection = host["sfdc_eca_connection"]
        connection["client_secret"] = Vaulted(vault.encrypt(connection["client_secret"]).decode())
    dumper = type("VaultDumper", (yaml.SafeDumper,), {})
    dumper.add_representer(Vaulted, _vault_representer)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.dump(data, Dumper=dumper, sort_keys=False))
    assert "!vault |" in inventory.read_text() and sim.orgs["org01"].admin["client_secret"] not in inventory.read_text()

    before = {org: dict(sim.org(org).app("Billing_Sync").consumer("Billing").main) for org in sim.orgs}
    proc = ansible.playbook("rotate.yml", str(inventory), "--vault-password-file", str(tmp_path / "inventory-pw"),
                            extra_vars={"sfdc_eca_task_per_org": per_org})
    assert proc.returncode == 0, e2e.tail(proc)
    rows = e2e.rows_by(proc.report)
    for org in sim.orgs:
        row = rows[(org, "Billing_Sync", "Billing")]
        assert row["outcome"] == "rotated", row
        main = sim.org(org).app("Billing_Sync").consumer("Billing").main
        assert main["key"] != before[org]["key"] and sim.authenticates(org, main["key"], main["secret"])
        stored = ansible.vault_view(str(tmp_path / "vaults" / ("%s.vault.yml" % org)), str(tmp_path / "delivery-pw"))
        assert stored["key"] == main["key"] and stored["secret"] == main["secret"]
    assert not e2e.leaks(proc.output, sim)
