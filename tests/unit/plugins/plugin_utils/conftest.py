"""Fixtures of the plugin_utils units: the real secret-store servers (tests/stores/fixtures.py)."""

from ansible_collections.sfdc.eca.tests.stores.fixtures import (  # noqa: F401  pylint: disable=unused-import
    _moto_session, _openbao_session, moto, openbao, store_servers, unique)
