"""Options of the live-integration suite (each also an SFDC_LIVE_* environment variable):

--live-orgs N          orgs in the simulated fleet (SFDC_LIVE_ORGS, default 100)
--live-seed S          seed of the fault RNG: which consumers fail the hook, burst lengths, kill moments
                       (SFDC_LIVE_SEED, default: random, printed in the summary)
--live-kills K         runs SIGKILLed at a random moment in the sigkill family (SFDC_LIVE_KILLS, default 2)
--live-auth-rate R     authentications per second of all integrations together (SFDC_LIVE_AUTH_RATE,
                       default: one per integration every 2 s, within 50..150)
--live-log-dir D       where the JSON summaries go (SFDC_LIVE_LOG_DIR, default .tmp/test-logs/live)
--live-targets K,...   target kinds the orgs are dealt into (org i gets the (i mod 3)-th of vault_file, hashi_vault,
                       aws_secretsmanager; a kind left out falls back to vault_file) (SFDC_LIVE_TARGETS, default all
                       three; the store kinds start OpenBao and moto on 127.0.0.1 for the session)
--live-store-max-age S seconds a store integration uses what it read before reading the store again
                       (SFDC_LIVE_STORE_MAX_AGE, default: about every third authentication, at least 5 s)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ansible_collections.sfdc.eca.tests.stores.fixtures import (  # noqa: E402,F401  pylint: disable=unused-import
    _moto_session, _openbao_session, moto, openbao, unique)

OPTIONS = (("orgs", "100"), ("seed", ""), ("kills", "2"), ("auth-rate", ""), ("log-dir", ""),
           ("targets", "vault_file,hashi_vault,aws_secretsmanager"), ("store-max-age", ""))


def pytest_addoption(parser):
    group = parser.getgroup("live", "live-integration suite (tests/live)")
    for name, default in OPTIONS:
        env = "SFDC_LIVE_" + name.upper().replace("-", "_")
        group.addoption("--live-" + name, default=None, help="%s (default %s)" % (env, default or "see conftest"))


def live_option(config, name):
    default = dict(OPTIONS)[name]
    value = config.getoption("--live-" + name, default=None)
    if value is None:
        value = os.environ.get("SFDC_LIVE_" + name.upper().replace("-", "_"), default)
    return value


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pylint: disable=unused-argument
    tables = getattr(config, "_live_tables", [])
    if tables:
        terminalreporter.section("live integrations")
        for text in tables:
            terminalreporter.write_line(text)
            terminalreporter.write_line("")
