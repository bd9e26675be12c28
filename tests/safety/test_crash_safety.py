"""Crash safety of the rotation (playbooks/rotate.yml with the sfdc.eca.rotation role).

The whole ansible-playbook process group is SIGKILLed at each phase boundary (after stage, after deliver,
after verify: from the user's delivery/verification tasks files; after promote: when the simulator logs the
successful PATCH; at the report: when the report task starts), or the simulator performs a write and resets the
connection (crash_after_write on each POST, PATCH, DELETE). Then the run is repeated to completion.
Each run covers four orgs, five consumers: four API-variant combinations (every [unknown] of the API in both
values) carrying an Expired slot (DELETE + POST), revoke_previous (DELETE after PATCH) and a two-consumer app
delivered to ansible-vault files.

After each kill: every integration still holds a pair that authenticates. After the rerun, for every
consumer: rotated exactly once, the delivered pair is the main pair, no Active staged pair left.
"""

import json
import threading

import pytest

from safety_helpers import SafetyRun, kill_tree, record_figure, wait_for
from fleet import ORGS, REVOKE_ORG, VARIANT_ORGS, Fleet, ansible_playbook, seed

HOOK_POINTS = ("after_stage", "after_deliver", "after_verify")
WATCH_POINTS = ("after_promote", "at_report")


@pytest.fixture
def fleet(sim_factory, tmp_path):
    sim = sim_factory(seed())
    return Fleet(sim, tmp_path / "fleet")


@pytest.fixture
def runner(tmp_path):
    return SafetyRun(tmp_path / "run")


def run(runner, fleet, crash_at="never", timeout=300, **extra):
    return runner.run([ansible_playbook(), "-i", fleet.inventory, str(fleet_playbook()), "-e", fleet.extra_vars(crash_at, **extra)],
                      timeout=timeout, label="rotate %s" % crash_at)


def fleet_playbook():
    from safety_helpers import ROOT
    return ROOT / "playbooks" / "rotate.yml"


def out(proc):
    return (proc.stdout.decode(errors="replace")[-4000:] + "\n--- stderr ---\n" + proc.stderr.decode(errors="replace")[-3000:])


def complete(runner, fleet, may_rotate_again=()):
    """Rerun to completion: the rerun must end with every consumer consistent."""
    proc = run(runner, fleet)
    problems = fleet.final_problems(may_rotate_again)
    assert problems == [], "\n".join(problems) + out(proc)
    record_figure("crash", consumers=len(list(fleet.consumers())), orgs=len(ORGS))
    return proc


@pytest.mark.parametrize("point", HOOK_POINTS)
def test_sigkill_at_phase_boundary_from_hooks(fleet, runner, point):
    proc = run(runner, fleet, crash_at=point)
    assert proc.returncode == -9 or (fleet.crash_dir / ("killed-" + point)).exists(), out(proc)
    assert (fleet.crash_dir / ("killed-" + point)).exists(), "the kill point was never reached" + out(proc)
    assert fleet.integration_problems() == []
    assert not (fleet.report_dir / "report.json").exists()
    complete(runner, fleet)


def _watch_and_kill(runner, fleet, point):
    """Start the run and SIGKILL its process group when `point` is reached (seen from the simulator/file system)."""
    cmd = [ansible_playbook(), "-i", fleet.inventory, str(fleet_playbook()), "-e", fleet.extra_vars()]
    proc = runner.popen(cmd)

    if point == "after_promote":
        # the revoke_previous org's DELETE must not land before the kill: hold it back
        fleet.sim.add_fault(REVOKE_ORG, "latency", method="DELETE", endpoint="staged_item", times=1, seconds=5)

    output = runner.base / ("popen-%d.out" % (len(runner.outputs) - 1))

    def reached():
        if point == "after_promote":
            return any(e["method"] == "PATCH" and e["status"] in (200, 204) for e in fleet.sim.requests(REVOKE_ORG))
        # at_report: the report task has started (its one action writes report.* and history.json within
        # milliseconds, so the kill lands before, between or after those atomic writes)
        return b"Write the JSON, Markdown and HTML reports" in output.read_bytes()
    try:
        hit = wait_for(lambda: reached() or proc.poll() is not None, timeout=240, interval=0.01)
        assert hit and proc.poll() is None, "the run ended before %s" % point
    finally:
        kill_tree(proc)
    fleet.sim.clear_faults()
    return proc


@pytest.mark.parametrize("point", ["after_promote", "at_report"])
def test_sigkill_at_phase_boundary_watched(fleet, runner, point):
    _watch_and_kill(runner, fleet, point)
    assert fleet.integration_problems() == []
    # whatever the kill interrupted, no report or history file is half written (each is written to a
    # hidden temporary file and renamed); the rerun's report removes the temporary files a kill left
    for path in fleet.report_dir.rglob("*.json") if fleet.report_dir.exists() else ():
        json.loads(path.read_text())
    complete(runner, fleet)
    assert [p.name for p in fleet.report_dir.rglob("*") if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("method,endpoint", [("POST", "staged"), ("PATCH", "staged_item"), ("DELETE", "staged_item")])
def test_write_performed_but_answer_lost(fleet, runner, method, endpoint):
    """crash_after_write on the first write of that kind in every org: the write happens, the client sees a reset."""
    for org in ORGS:
        fleet.sim.add_fault(org, "crash_after_write", method=method, endpoint=endpoint, times=1)
    run(runner, fleet)
    hit = [f for f in fleet.sim.faults() if f["kind"] == "crash_after_write"]
    fired = len(ORGS) - len(hit)
    assert fired >= (2 if method == "DELETE" else len(ORGS)), "faults left unfired: %s" % hit
    assert fleet.integration_problems() == []
    fleet.sim.clear_faults()
    complete(runner, fleet)


def test_token_revoked_mid_run(fleet, runner):
    """The access token dies (expiry or revocation) right after the first stage lands; the run goes on failing
    what it must, the integrations keep a working pair, and the rerun completes."""
    stop = threading.Event()

    def revoke_after_first_post():
        if wait_for(lambda: stop.is_set() or any(e["method"] == "POST" and e["status"] in (200, 201)
                                                 for e in fleet.sim.requests()), timeout=240, interval=0.01):
            for org in ORGS:
                fleet.sim.revoke_tokens(org, refresh=True)
    t = threading.Thread(target=revoke_after_first_post, daemon=True)
    t.start()
    try:
        run(runner, fleet)
    finally:
        stop.set()
        t.join(10)
    assert fleet.integration_problems() == []
    complete(runner, fleet)


def test_short_token_lifetime(fleet, runner):
    """Tokens that live one second: every later task may meet an expired token."""
    for org in ORGS:
        fleet.sim.configure_org(org, token_lifetime=1)
        fleet.sim.add_fault(org, "latency", method="*", endpoint="*", times=None, seconds=0.2)
    run(runner, fleet)
    assert fleet.integration_problems() == []
    fleet.sim.clear_faults()
    for org in ORGS:
        fleet.sim.configure_org(org, token_lifetime=7200)
    complete(runner, fleet)


def test_clock_past_staged_expiry_between_runs(fleet, runner):
    """Killed after delivery, then 31 days pass: the delivered staged pair expired unpromoted. This is the one
    window no tool can close (Salesforce expires staged pairs after 30 days); the rerun must replace it
    (DELETE + POST), deliver the new pair and promote it."""
    run(runner, fleet, crash_at="after_deliver")
    assert (fleet.crash_dir / "killed-after_deliver").exists()
    assert fleet.integration_problems() == []
    fleet.sim.clock.advance(days=31)
    complete(runner, fleet)


def test_clock_past_rotated_grace_between_runs(fleet, runner):
    """Killed right after the first promotion, then 31 days pass (the Rotated pair's grace ends). A consumer
    promoted before the kill is due again 31 days later: it may be rotated a second time, the others once."""
    _watch_and_kill(runner, fleet, "after_promote")
    promoted = {k for k, n in fleet.rotation_counts().items() if n}
    assert promoted
    fleet.sim.clock.advance(days=31)
    complete(runner, fleet, may_rotate_again=promoted)
    assert fleet.integration_problems() == []


def test_api_limit_runs_out_mid_fleet(fleet, runner):
    """One org's daily API limit is spent right after its stage lands; the next day the rerun completes."""
    victim = "v_doc"

    def spend():
        if wait_for(lambda: any(e["method"] == "POST" and e["status"] in (200, 201) for e in fleet.sim.requests(victim)),
                    timeout=240, interval=0.005):
            usage = fleet.sim.configure_org(victim)["api_usage"]
            fleet.sim.configure_org(victim, api_limit=usage)
    t = threading.Thread(target=spend, daemon=True)
    t.start()
    run(runner, fleet)
    t.join(10)
    assert fleet.integration_problems() == []
    spent = [e for e in fleet.sim.requests(victim) if e["status"] == 403]
    assert spent, "the limit never bit"
    fleet.sim.configure_org(victim, api_limit=15000, api_usage=0)
    complete(runner, fleet)


def test_variants_covered():
    """Each [unknown] of the API runs in both of its values in every scenario above."""
    from eca_simulator.core import VARIANTS
    for name, values in VARIANTS.items():
        if name == "refresh_token_rotation":   # the role never uses refresh tokens
            continue
        seen = {v.get(name, values[0]) for v in VARIANT_ORGS.values()}
        assert seen == set(values), name
