"""Live integrations: the collection's promise over whole fleet runs with faults and kills.

One simulated integration per consumer keeps reading its ansible-vault file and authenticating with
client_credentials against the simulator over HTTPS while playbooks/rotate.yml rotates the fleet with
`revoke_previous: true`, under one fault family or all of them (orgs dealt into families by index):

- hook:        the verify_tasks_file hook fails for about half of the hook orgs' consumers in the first run
- verify_503:  the token endpoint answers 503 in bursts to the rotation's verification (short, medium and
               longer than every retry); half of these orgs also get their first run's promotion refused
               (503), so that the next run verifies a delivered, in-use pair under the bursts
- lost_patch:  the first PATCH (promote) of each of these orgs is performed, its reply lost
- lost_delete: the first DELETE (revoke) of each of these orgs is performed, its reply lost
- sigkill:     the first --live-kills runs are SIGKILLed (whole process group) at a random moment

then reruns until the fleet converges (at most 4). Checks over the whole run: no integration auth failure,
every consumer converged with exactly one promotion, no secret in any output or file, no file written
outside the configured directories. Run one family: `-k hook`; the combined run: `-k all`.
"""

import pytest

from conftest import live_option
from live_harness import FAMILIES, Scenario, Settings, live_seed, table, write_summary


@pytest.fixture
def settings(request):
    c = request.config
    return Settings(orgs=live_option(c, "orgs"), seed=live_option(c, "seed"), kills=live_option(c, "kills"),
                    auth_rate=live_option(c, "auth-rate"), log_dir=live_option(c, "log-dir") or None)


@pytest.mark.parametrize("families", [FAMILIES] + [(f,) for f in FAMILIES],
                         ids=["all"] + list(FAMILIES))
def test_live_rotation(sim_factory, tmp_path, settings, request, families):
    sim = sim_factory(live_seed(settings.orgs))
    scenario = Scenario(sim, tmp_path / "live", settings, families).play()
    problems = scenario.checks()
    summary = scenario.summary(problems)
    path = write_summary(settings, summary)
    text = table(summary, problems) + "\n  summary: %s" % path
    print(text)
    request.config._live_tables = getattr(request.config, "_live_tables", []) + [text]
    # every integration authenticated many times while the fleet rotated (the measurement means something)
    assert summary["auths_per_integration_min"] >= 3, text
    broken = {k: v for k, v in problems.items() if v}
    detail = "\n".join("%s (%d):\n    %s" % (k, len(v), "\n    ".join(v[:25])) for k, v in broken.items())
    assert not broken, "%s\nseed %s\n%s" % (text, settings.seed, detail)
