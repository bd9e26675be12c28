"""Fixtures of the plugin unit tests: one simulator per test session (per xdist worker), reset per test."""

import pytest

from eca_simulator import Simulator

from ansible_collections.sfdc.eca.plugins.module_utils._common import build_client, connection_argument_spec

UNIT_SEED = {
    'orgs': [
        {'name': 'org01', 'apps': [
            {'developer_name': 'Billing_Sync', 'label': 'Billing Sync', 'consumers': [{'name': 'Billing'}]},
            {'developer_name': 'Multi_App', 'consumers': [{'name': 'East'}, {'name': 'West'}]},
            {'developer_name': 'Twin_App', 'consumers': [{'name': 'Same'}, {'name': 'Same'}]},
            {'developer_name': 'Rotated_App', 'consumers': [{'name': 'R', 'staged': {'state': 'Rotated'}}]},
            {'developer_name': 'Expired_App', 'consumers': [{'name': 'X', 'staged': {'state': 'Expired'}}]},
            {'developer_name': 'Active_App', 'consumers': [{'name': 'A', 'staged': {'state': 'Active', 'age_days': 2}}]},
        ]},
        # 250 apps: the usage list spans three pages of 100.
        {'name': 'big', 'apps': [{'developer_name': 'App_%03d' % i, 'consumers': [{'name': 'C%d' % i}]} for i in range(250)]},
    ],
}


class Sleeps:
    """Injected sleep: records instead of sleeping."""

    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


@pytest.fixture(scope='session')
def unit_sim():
    sim = Simulator(UNIT_SEED)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def esim(unit_sim):
    unit_sim.reset()
    unit_sim.reset_log()
    return unit_sim


@pytest.fixture
def sleeps():
    return Sleeps()


def module_params(sim, org='org01', **overrides):
    """Validated-looking module params: spec defaults + the org's URL, CA and admin client credentials."""
    params = {name: spec.get('default') for name, spec in connection_argument_spec().items()}
    admin = sim.orgs[org].admin
    params.update(instance_url=sim.orgs[org].instance_url, ca_path=sim.ca_path,
                  client_id=admin['client_id'], client_secret=admin['client_secret'])
    params.update(overrides)
    return params


@pytest.fixture
def params(esim):
    """params(org='org01', **overrides): module params for the org."""
    def make(org='org01', **overrides):
        return module_params(esim, org, **overrides)
    return make


@pytest.fixture
def make_client(esim, sleeps):
    """make_client(org='org01', token=False, **params): an EcaClient; token=True uses an issued access token."""
    def make(org='org01', token=False, random=lambda: 1.0, **overrides):
        if token:
            overrides.setdefault('access_token', esim.issue_access_token(org))
        return build_client(module_params(esim, org, **overrides), sleep=sleeps, random=random)
    return make
