"""Shared pytest fixtures: the in-process Salesforce ECA simulator.

- `sim`: a fresh, started simulator per test (TLS on) with a small seed (eca_simulator.testing.DEFAULT_TEST_SEED).
  Customize with `@pytest.mark.sim(seed=..., variants={...}, tls=False)`.
- `sim_factory(seed=None, **kwargs)`: start more simulators; all stopped at test end.
- `sim_http`: a requests.Session trusting `sim.ca_path`.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from eca_simulator import Simulator  # noqa: E402
from eca_simulator import testing as sim_testing  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "sim(seed=None, variants=None, tls=True): configure the `sim` fixture")


@pytest.fixture
def sim_factory():
    started = []

    def make(seed=None, **kwargs):
        s = Simulator(sim_testing.DEFAULT_TEST_SEED if seed is None else seed, **kwargs)
        s.start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def sim(request, sim_factory):
    marker = request.node.get_closest_marker("sim")
    kwargs = dict(marker.kwargs) if marker else {}
    return sim_factory(kwargs.pop("seed", None), **kwargs)


@pytest.fixture
def sim_http(sim):
    s = sim_testing.session(sim)
    yield s
    s.close()
