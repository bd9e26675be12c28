"""Live integrations: the collection's promise over whole fleet runs with faults and kills.

One simulated integration per consumer keeps reading its delivery target and authenticating with
client_credentials against the simulator over HTTPS while playbooks/rotate.yml rotates the fleet with
`revoke_previous: true`. A third of the orgs deliver to ansible-vault files, a third to a real OpenBao (KV v2,
token auth, a policy limited to the run's prefix), a third to moto's Secrets Manager (org i: i mod 3); the
store integrations read their secret over HTTP (a KV read with a read-only token, GetSecretValue). Under one
fault family or all of them (orgs dealt into families by index, i mod 5, so each family meets each kind):

- hook:        the verify_tasks_file hook fails for about half of the hook orgs' consumers in the first run
- verify_503:  the token endpoint answers 503 in bursts to the rotation's verification (short, medium and
               longer than every retry); half of these orgs also get their first run's promotion refused
               (503), so that the next run verifies a delivered, in-use pair under the bursts
- lost_patch:  the first PATCH (promote) of each of these orgs is performed, its reply lost
- lost_delete: the first DELETE (revoke) of each of these orgs is performed, its reply lost
- sigkill:     the first --live-kills runs are SIGKILLed (whole process group) at a random moment

then reruns until the fleet converges (at most 4). Checks over the whole run, for every target kind: no
integration auth failure, every consumer converged (its target holds the main pair and the consumer's data)
with exactly one promotion, no secret (the stores' tokens and keys included) in any output or file, no file
written outside the configured directories, no secret in the stores but the targets. Run one family:
`-k hook`; the combined run: `-k all`.
"""

import pytest

from conftest import live_option
from live_harness import FAMILIES, LiveStores, Scenario, Settings, live_seed, table, write_summary


@pytest.fixture
def settings(request):
    c = request.config
    return Settings(orgs=live_option(c, "orgs"), seed=live_option(c, "seed"), kills=live_option(c, "kills"),
                    auth_rate=live_option(c, "auth-rate"), log_dir=live_option(c, "log-dir") or None,
                    kinds=live_option(c, "targets"), store_max_age=live_option(c, "store-max-age"))


@pytest.fixture
def stores(request, settings):
    """OpenBao and moto (session servers on 127.0.0.1) for the store kinds of this run, a fresh prefix."""
    if not any(k in settings.kinds for k in ("hashi_vault", "aws_secretsmanager")):
        return None
    openbao = request.getfixturevalue("openbao") if "hashi_vault" in settings.kinds else None
    moto = request.getfixturevalue("moto") if "aws_secretsmanager" in settings.kinds else None
    return LiveStores(openbao, moto, prefix="live-" + request.getfixturevalue("unique"))


@pytest.mark.parametrize("families", [FAMILIES] + [(f,) for f in FAMILIES],
                         ids=["all"] + list(FAMILIES))
def test_live_rotation(sim_factory, tmp_path, settings, stores, request, families):
    sim = sim_factory(live_seed(settings.orgs))
    scenario = Scenario(sim, tmp_path / "live", settings, families, stores).play()
    problems = scenario.checks()
    summary = scenario.summary(problems)
    path = write_summary(settings, summary)
    text = table(summary, problems) + "\n  summary: %s" % path
    print(text)
    request.config._live_tables = getattr(request.config, "_live_tables", []) + [text]
    # every integration authenticated many times while the fleet rotated (the measurement means something)
    assert summary["auths_per_integration_min"] >= 3, text
    # every store integration read its store (a real KV read / GetSecretValue) more than once
    for kind, figures in summary["by_kind"].items():
        if figures["store_reads"] is not None:
            assert figures["consumers"] and figures["store_reads"] >= 2 * figures["consumers"], text
    broken = {k: v for k, v in problems.items() if v}
    detail = "\n".join("%s (%d):\n    %s" % (k, len(v), "\n    ".join(v[:25])) for k, v in broken.items())
    assert not broken, "%s\nseed %s\n%s" % (text, settings.seed, detail)
