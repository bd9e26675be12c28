"""pytest fixtures of the real secret-store servers (tests/stores/servers.py).

Use them from a conftest.py::

    from ansible_collections.sfdc.eca.tests.stores.fixtures import openbao, moto, store_servers  # noqa: F401

- ``openbao``: one OpenBao dev server per test session (per xdist worker), HTTP and TLS listeners.
- ``moto``: one moto server per test session, reset before each test that uses it.
- ``store_servers``: start more servers in a test (``.openbao()``, ``.moto()``), stopped at its end.

Each test that writes to the shared OpenBao should use a path of its own (``unique``).
"""

import uuid

import pytest

from ansible_collections.sfdc.eca.tests.stores.servers import Moto, OpenBao


@pytest.fixture(scope='session')
def _openbao_session(tmp_path_factory):
    server = OpenBao(tmp_path_factory.mktemp('openbao')).start()
    yield server
    server.stop()


@pytest.fixture
def openbao(_openbao_session):
    if not _openbao_session.running:
        raise RuntimeError('the session OpenBao server has exited; its log:\n%s' % _openbao_session.log_tail())
    return _openbao_session


@pytest.fixture(scope='session')
def _moto_session(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp('moto')).start()
    yield server
    server.stop()


@pytest.fixture
def moto(_moto_session):
    if not _moto_session.running:
        raise RuntimeError('the session moto server has exited; its log:\n%s' % _moto_session.log_tail())
    _moto_session.reset()
    return _moto_session


class _Servers:
    def __init__(self, base):
        self.base = base
        self.started = []

    def openbao(self, tls=False):
        server = OpenBao(self.base / ('openbao-%d' % len(self.started)), tls=tls).start()
        self.started.append(server)
        return server

    def moto(self):
        server = Moto(self.base / ('moto-%d' % len(self.started))).start()
        self.started.append(server)
        return server

    def stop(self):
        for server in reversed(self.started):
            server.stop()


@pytest.fixture
def store_servers(tmp_path):
    servers = _Servers(tmp_path)
    yield servers
    servers.stop()


@pytest.fixture
def unique():
    """A fresh path prefix, so tests sharing a server do not see each other's secrets."""
    return 't%s' % uuid.uuid4().hex[:12]
