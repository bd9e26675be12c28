"""Auth strategy validation and the JWT assertion, without a server."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ansible_collections.sfdc.eca.plugins.module_utils._auth import (
    AccessTokenAuth,
    ClientCredentialsAuth,
    JwtBearerAuth,
    RefreshTokenAuth,
    load_rsa_private_key,
    select_auth,
)
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaInputError

TOKEN_URL = 'https://127.0.0.1:1/services/oauth2/token'


@pytest.fixture(scope='module')
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key, passphrase=None, fmt=serialization.PrivateFormat.PKCS8):
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc).decode()


class Recorder:
    """Stands in for the client's token_request: records the form sent."""

    def __init__(self):
        self.calls = []

    def token_request(self, url, form, flow):
        self.calls.append((url, dict(form), flow))
        return {'access_token': 'tok', 'token_type': 'Bearer'}


def b64d(part):
    return base64.urlsafe_b64decode(part + '=' * (-len(part) % 4))


def test_jwt_assertion_is_rs256_signed_and_verifies_with_the_public_key(rsa_key):
    auth = JwtBearerAuth(TOKEN_URL, '3MVG9consumer', 'user@example.com', private_key=pem(rsa_key),
                         audience='https://test.salesforce.com', clock=lambda: 1000)
    auth.validate()
    http = Recorder()
    auth.authenticate(http)
    url, form, flow = http.calls[0]
    assert (url, flow, form['grant_type']) == (TOKEN_URL, 'jwt_bearer', 'urn:ietf:params:oauth:grant-type:jwt-bearer')
    header, claims, signature = form['assertion'].split('.')
    assert json.loads(b64d(header))['alg'] == 'RS256'
    assert json.loads(b64d(claims)) == {'iss': '3MVG9consumer', 'sub': 'user@example.com',
                                        'aud': 'https://test.salesforce.com', 'exp': 1170}
    # Raises InvalidSignature if the signature is wrong.
    rsa_key.public_key().verify(b64d(signature), ('%s.%s' % (header, claims)).encode(), padding.PKCS1v15(), hashes.SHA256())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Exception):
        other.public_key().verify(b64d(signature), ('%s.%s' % (header, claims)).encode(), padding.PKCS1v15(), hashes.SHA256())


def test_jwt_default_audience_and_exp_within_three_minutes(rsa_key):
    auth = JwtBearerAuth(TOKEN_URL, 'k', 'u', private_key=pem(rsa_key), clock=lambda: 5000)
    claims = json.loads(b64d(auth.assertion().split('.')[1]))
    assert claims['aud'] == 'https://login.salesforce.com'
    assert 5000 < claims['exp'] <= 5000 + 180


def test_traditional_rsa_format_and_escaped_newlines_are_accepted(rsa_key):
    text = pem(rsa_key, fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    assert 'BEGIN RSA PRIVATE KEY' in text
    load_rsa_private_key(text)
    load_rsa_private_key(text.strip().replace('\n', '\\n'))


def test_encrypted_key_without_passphrase_names_the_option(rsa_key):
    with pytest.raises(EcaInputError, match='encrypted: set private_key_passphrase'):
        load_rsa_private_key(pem(rsa_key, 'pw-1234'))


def test_encrypted_key_with_wrong_passphrase(rsa_key):
    with pytest.raises(EcaInputError, match='passphrase is wrong'):
        load_rsa_private_key(pem(rsa_key, 'pw-1234'), 'nope')


def test_encrypted_key_with_passphrase_loads(rsa_key):
    key = load_rsa_private_key(pem(rsa_key, 'pw-1234'), 'pw-1234')
    assert key.public_key().public_numbers() == rsa_key.public_key().public_numbers()


def test_garbage_is_not_a_pem_key():
    with pytest.raises(EcaInputError, match='private_key is not a PEM private key'):
        load_rsa_private_key('hello world')


def test_damaged_pem_is_reported():
    with pytest.raises(EcaInputError, match='could not be parsed'):
        load_rsa_private_key('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')


def test_ec_key_is_refused_as_wrong_type():
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(EcaInputError, match='needs an RSA private key'):
        load_rsa_private_key(pem(key))


def test_private_key_file_missing_names_the_path(tmp_path):
    auth = JwtBearerAuth(TOKEN_URL, 'k', 'u', private_key_file=str(tmp_path / 'nope.key'))
    with pytest.raises(EcaInputError, match="private_key_file '.*nope.key' does not exist"):
        auth.validate()


def test_private_key_file_garbage_names_the_path(tmp_path):
    path = tmp_path / 'bad.key'
    path.write_text('not a key')
    auth = JwtBearerAuth(TOKEN_URL, 'k', 'u', private_key_file=str(path))
    with pytest.raises(EcaInputError, match="private_key_file '.*bad.key' is not a PEM"):
        auth.validate()


def test_key_material_never_appears_in_the_error(rsa_key):
    text = pem(rsa_key, 'pw-1234')
    with pytest.raises(EcaInputError) as info:
        load_rsa_private_key(text, 'wrong-pass')
    body = text.splitlines()[3]
    assert body not in str(info.value) and 'wrong-pass' not in str(info.value)


@pytest.mark.parametrize('params, cls', [
    ({'access_token': 't', 'private_key': 'x', 'client_id': 'c', 'client_secret': 's', 'refresh_token': 'r'}, AccessTokenAuth),
    ({'private_key': 'x', 'client_id': 'c', 'client_secret': 's', 'refresh_token': 'r', 'username': 'u'}, JwtBearerAuth),
    ({'private_key_file': '/x', 'client_id': 'c', 'username': 'u'}, JwtBearerAuth),
    ({'client_id': 'c', 'client_secret': 's', 'refresh_token': 'r'}, RefreshTokenAuth),
    ({'client_id': 'c', 'client_secret': 's'}, ClientCredentialsAuth),
])
def test_select_auth_precedence(params, cls):
    assert select_auth(params, TOKEN_URL).name == cls.name


def test_no_credentials_lists_the_choices():
    with pytest.raises(EcaInputError, match='No credentials given.*client_id \\+ client_secret'):
        select_auth({}, TOKEN_URL)


@pytest.mark.parametrize('auth, message', [
    (ClientCredentialsAuth(TOKEN_URL, 'c', None), 'needs client_secret'),
    (ClientCredentialsAuth(TOKEN_URL, None, 's'), 'needs client_id'),
    (JwtBearerAuth(TOKEN_URL, None, 'u', private_key='x'), 'needs client_id'),
    (JwtBearerAuth(TOKEN_URL, 'c', None, private_key='x'), 'needs username'),
    (RefreshTokenAuth(TOKEN_URL, 'r', None), 'needs client_id'),
    (AccessTokenAuth('  '), 'access_token is empty'),
])
def test_incomplete_flows_say_what_is_missing(auth, message):
    with pytest.raises(EcaInputError, match=message):
        auth.validate()


def test_refresh_token_keeps_a_rotated_refresh_token():
    class Rotating(Recorder):
        def token_request(self, url, form, flow):
            super().token_request(url, form, flow)
            return {'access_token': 'tok', 'refresh_token': 'new-rt'}

    auth = RefreshTokenAuth(TOKEN_URL, 'old-rt', 'cid', 'sec')
    http = Rotating()
    auth.authenticate(http)
    auth.authenticate(http)
    assert [c[1]['refresh_token'] for c in http.calls] == ['old-rt', 'new-rt']
    assert http.calls[0][1]['client_secret'] == 'sec'
