"""ansible-playbook sfdc.eca.probe (playbooks/probe.yml) against the simulator in several switch settings: the profile
it writes names each setting, the simulator loaded with it behaves the same, and no secret is printed or written."""

import os
import stat

import pytest
import yaml

from eca_simulator import Simulator

SEED = {"orgs": [{"name": "lab", "admin": {"username": "admin@probe.test"}, "apps": [
    {"developer_name": "Probe_App", "label": "Probe App", "consumers": [{"name": "Probe"}]},
    {"developer_name": "Billing_Sync", "consumers": [{"name": "Billing"}]},
]}]}

SETTINGS = [
    ("defaults", {}, True, {}),
    ("mixed", {"rotate_answer": "no_content", "empty_staged": "not_found", "id_length": "15", "error_body": "object",
               "paging": "ignore_page", "post_body": "flat", "staged_id_on_rotate": "new", "post_over_rotated": "replace",
               "state_case": "upper", "consumer_names": "app", "max_api_version": "66.0", "staged_url_spelling": "URL"},
     True, {}),
    ("secrets off", {"secret_access_off": "no_secret", "rotate_answer": "promoted"}, True, {"rest_secret_access": False}),
    ("read only", {"error_body": "html", "empty_staged": "not_found", "paging": "empty_next"}, False, {}),
]
WRITE_ONLY = ("post_over_rotated", "post_body", "staged_id_on_rotate", "rotate_answer")


def _run(sim, ansible, e2e, tmp_path, writes=True, connection=None, **extra):
    host = e2e.org_host(sim, "lab", [], auth=connection or "client_credentials")
    inventory = e2e.write_inventory(tmp_path / "inventory.yml", {"lab": host})
    profile = tmp_path / "profile.yml"
    variables = {"sfdc_eca_hosts": "lab", "probe_app_name": "Probe_App", "probe_writes": writes,
                 "probe_profile": str(profile)}
    variables.update(extra)
    proc = ansible.playbook("probe.yml", inventory, "-v", extra_vars=variables)
    return proc, profile


def _written(tmp_path, skip=()):
    """What the runs wrote (the inventory holds the admin's secret: the test wrote it)."""
    texts = []
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in skip + ("inventory.yml",) and "ansible-tmp" not in str(path):
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


@pytest.mark.parametrize("name,switches,writes,settings", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_probe_playbook_reports_the_switches(sim_factory, tmp_path, ansible, e2e, name, switches, writes, settings):
    sim = sim_factory(SEED)
    sim.set_variants(**switches)
    if settings:
        sim.configure_org("lab", **settings)
    cons = sim.org("lab").app("Probe_App").consumer()
    old = cons.main
    proc, profile_file = _run(sim, ansible, e2e, tmp_path, writes=writes)
    assert proc.returncode == 0, e2e.tail(proc)
    profile = yaml.safe_load(profile_file.read_text())
    variants = profile["variants"]
    for switch, value in switches.items():
        if not writes and switch in WRITE_ONLY:
            continue
        if switch == "secret_access_off" or (settings and switch == "rotate_answer"):
            continue
        assert variants[switch] == value, (switch, variants)
    if settings:
        assert variants["secret_access_off"] == "no_secret" and variants["rotate_answer"] == "unknown"
        assert cons.main == old and cons.staged is None
    elif writes:
        assert cons.main != old and cons.staged is None and sim.authenticates("lab", cons.main["key"], cons.main["secret"])
    else:
        assert all(variants[s] == "unknown" for s in WRITE_ONLY) and sim.write_count("lab") == 0
    assert "profile: %s" % profile_file in proc.stdout
    # the simulator loaded with the profile behaves like the probed org
    twin = Simulator(SEED, profile=str(profile_file))
    assert all(twin.variants()[k] == v for k, v in variants.items() if v != "unknown")
    assert e2e.leaks(proc.output, sim) == []
    assert e2e.leaks(_written(tmp_path), sim) == []
    assert sim.orgs["lab"].instance_url not in profile_file.read_text()


def test_probe_playbook_keeps_a_rotated_refresh_token(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(SEED)
    sim.set_variants(refresh_token_rotation="on")
    admin = sim.orgs["lab"].admin
    given = sim.issue_refresh_token("lab")
    proc, profile_file = _run(sim, ansible, e2e, tmp_path,
                              connection={"client_id": admin["client_id"], "refresh_token": given})
    assert proc.returncode == 0, e2e.tail(proc)
    assert yaml.safe_load(profile_file.read_text())["variants"]["refresh_token_rotation"] == "on"
    kept = tmp_path / "profile.yml.refresh_token"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    new = kept.read_text()
    assert new != given and new in sim.secrets()
    assert "refresh token rotated: the new one is in %s" % kept in proc.stdout
    # the kept token works
    (tmp_path / "again").mkdir()
    second, dummy = _run(sim, ansible, e2e, tmp_path / "again", writes=False,
                         connection={"client_id": admin["client_id"], "refresh_token": new})
    assert second.returncode == 0, e2e.tail(second)
    assert e2e.leaks(proc.output + second.output, sim) == []
    assert e2e.leaks(_written(tmp_path, skip=("profile.yml.refresh_token",)), sim) == []


def test_probe_playbook_failures_are_clear(sim_factory, tmp_path, ansible, e2e):
    sim = sim_factory(SEED)
    proc, dummy = _run(sim, ansible, e2e, tmp_path, probe_app_name="No_Such_App")
    assert proc.returncode != 0
    assert "No External Client App with developer name 'No_Such_App'" in proc.output
    assert "only apps with OAuth usage data" in proc.output and sim.write_count("lab") == 0
    assert e2e.leaks(proc.output, sim) == []
