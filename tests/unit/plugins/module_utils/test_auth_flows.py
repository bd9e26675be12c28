"""Each auth flow end to end against the simulator's token endpoint."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.sfdc.eca.plugins.module_utils._auth import ClientCredentialsAuth
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaApiError, EcaAuthError


@pytest.fixture(scope='module')
def key_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.fixture
def jwt_ready(esim, key_pair):
    esim.register_certificate('org01', 'Sim_Admin', 'Sim_Admin', key_pair[1])
    return key_pair[0]


def test_client_credentials(esim, make_client):
    client = make_client()
    info = client.authenticate()
    assert info['access_token'] and info['instance_url'] == esim.orgs['org01'].instance_url
    assert client.auth.name == 'client_credentials'
    assert client.list_apps()
    assert client.user_id and client.user_id.startswith('005')


def test_jwt_bearer_with_private_key(esim, make_client, jwt_ready):
    client = make_client(client_secret=None, private_key=jwt_ready, username=esim.orgs['org01'].admin['username'])
    assert client.auth.name == 'jwt_bearer'
    assert client.list_apps()
    assert esim.counts('org01') == {'POST token': 1, 'GET usage': 1}


def test_jwt_bearer_with_private_key_file_and_passphrase(esim, make_client, key_pair, tmp_path):
    esim.register_certificate('org01', 'Sim_Admin', 'Sim_Admin', key_pair[1])
    key = serialization.load_pem_private_key(key_pair[0].encode(), None)
    path = tmp_path / 'jwt.key'
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b'pass-phrase')))
    client = make_client(private_key_file=str(path), private_key_passphrase='pass-phrase',
                         username=esim.orgs['org01'].admin['username'])
    assert client.list_apps()


def test_jwt_bearer_with_an_unregistered_key_is_refused(esim, make_client, jwt_ready):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    client = make_client(private_key=other, username=esim.orgs['org01'].admin['username'])
    with pytest.raises(EcaAuthError) as info:
        client.list_apps()
    assert info.value.error == 'invalid_grant' and 'signature' in info.value.description
    assert 'PRIVATE KEY' not in str(info.value)


def test_jwt_bearer_wrong_audience(esim, make_client, jwt_ready):
    client = make_client(private_key=jwt_ready, username=esim.orgs['org01'].admin['username'],
                         audience='https://elsewhere.example.com')
    with pytest.raises(EcaAuthError, match='audience is invalid'):
        client.authenticate()


def test_refresh_token_flow(esim, make_client):
    rt = esim.issue_refresh_token('org01')
    client = make_client(client_secret=None, refresh_token=rt)
    assert client.auth.name == 'refresh_token'
    assert client.list_apps()


def test_refresh_token_with_rotation_renews_with_the_new_token(esim, make_client):
    esim.set_variants('org01', refresh_token_rotation='on')
    rt = esim.issue_refresh_token('org01')
    client = make_client(refresh_token=rt)
    esim.add_fault('org01', 'invalid_session', endpoint='usage', times=1)
    assert client.list_apps()
    assert client.auth.refresh_token != rt
    assert esim.counts('org01') == {'POST token': 2, 'GET usage': 2}


def test_refresh_token_unknown(esim, make_client):
    with pytest.raises(EcaAuthError) as info:
        make_client(refresh_token='5Aep861NotAToken').authenticate()
    assert info.value.error == 'invalid_grant' and '5Aep861NotAToken' not in str(info.value)


def test_access_token_flow_sends_no_token_request(esim, make_client):
    client = make_client(token=True)
    assert client.auth.name == 'access_token' and not client.auth.can_renew
    client.list_apps()
    assert esim.counts('org01') == {'GET usage': 1}


def test_expired_access_token_fails_clearly(esim, make_client):
    client = make_client(token=True)
    esim.clock.advance(hours=3)
    with pytest.raises(EcaApiError, match='access_token is invalid or expired'):
        client.list_apps()


def test_request_token_verifies_another_pair_without_replacing_the_client_token(esim, make_client):
    client = make_client(token=True)
    own = client.token
    admin = esim.orgs['org01'].admin
    ok = client.request_token(ClientCredentialsAuth(client.instance_url + '/services/oauth2/token',
                                                    admin['client_id'], admin['client_secret']))
    assert ok['access_token'] != own and client.token == own
    with pytest.raises(EcaAuthError):
        client.request_token(ClientCredentialsAuth(client.instance_url + '/services/oauth2/token', admin['client_id'], 'not-the-secret-0000'))
