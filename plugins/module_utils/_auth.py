# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Authentication strategies.

Each strategy has ``validate()`` (raises EcaInputError), ``authenticate(http)`` which returns
the token endpoint's answer as a dict with at least ``access_token``, and ``can_renew``.
``http`` is the client: it offers ``token_request(url, form, auth_flow)``.

Precedence of ``select_auth()``: ``access_token`` > ``private_key``/``private_key_file``
(JWT bearer) > ``refresh_token`` > ``client_id`` + ``client_secret``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import os
import time
import traceback

from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaInputError

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

DEFAULT_AUDIENCE = 'https://login.salesforce.com'
JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
# Salesforce accepts an assertion whose exp is at most 3 minutes ahead.
JWT_LIFETIME = 170


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


class AuthStrategy:
    name = 'none'
    can_renew = True

    def validate(self):
        pass

    def authenticate(self, http):
        raise NotImplementedError


class AccessTokenAuth(AuthStrategy):
    """A token the caller already has (for example from sfdc.eca.eca_token). Cannot renew."""

    name = 'access_token'
    can_renew = False

    def __init__(self, access_token):
        self.access_token = access_token

    def validate(self):
        if not self.access_token or not str(self.access_token).strip():
            raise EcaInputError('access_token is empty: give the token returned by sfdc.eca.eca_token or leave it unset.')

    def authenticate(self, http):
        return {'access_token': self.access_token, 'token_type': 'Bearer'}


class ClientCredentialsAuth(AuthStrategy):
    name = 'client_credentials'

    def __init__(self, token_url, client_id, client_secret):
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret

    def validate(self):
        if not self.client_id:
            raise EcaInputError('client_credentials needs client_id (the consumer key of the External Client App).')
        if not self.client_secret:
            raise EcaInputError('client_credentials needs client_secret together with client_id.')

    def authenticate(self, http):
        form = {'grant_type': 'client_credentials', 'client_id': self.client_id, 'client_secret': self.client_secret}
        return http.token_request(self.token_url, form, self.name)


class RefreshTokenAuth(AuthStrategy):
    name = 'refresh_token'

    def __init__(self, token_url, refresh_token, client_id, client_secret=None):
        self.token_url = token_url
        self.refresh_token = refresh_token
        self.new_refresh_token = None
        self.client_id = client_id
        self.client_secret = client_secret

    def validate(self):
        if not self.refresh_token:
            raise EcaInputError('refresh_token is empty.')
        if not self.client_id:
            raise EcaInputError('refresh_token needs client_id (the consumer key the refresh token was issued to).')

    def authenticate(self, http):
        form = {'grant_type': 'refresh_token', 'refresh_token': self.refresh_token, 'client_id': self.client_id}
        if self.client_secret:
            form['client_secret'] = self.client_secret
        answer = http.token_request(self.token_url, form, self.name)
        # With refresh-token rotation on, the old one dies: keep the new one for a renewal, and hand it to the
        # caller (new_refresh_token), who must store it for the next run.
        new = answer.get('refresh_token')
        if new and isinstance(new, str) and new != self.refresh_token:
            self.refresh_token = self.new_refresh_token = new
        return answer


def load_rsa_private_key(data, passphrase=None, source='private_key'):
    """Parse a PEM RSA private key; every failure is an EcaInputError naming ``source``."""
    if not HAS_CRYPTOGRAPHY:
        raise EcaInputError('JWT bearer needs the Python library cryptography on the host that runs the module.')
    if isinstance(data, bytes):
        text = data.decode('utf-8', 'replace')
    else:
        text = data or ''
    # Values from environment variables or single-line vault strings often carry literal \n.
    if '\\n' in text and '\n' not in text.strip():
        text = text.replace('\\n', '\n')
    text = text.strip()
    if '-----BEGIN' not in text or 'PRIVATE KEY-----' not in text:
        raise EcaInputError(
            '%s is not a PEM private key: expected text starting with "-----BEGIN PRIVATE KEY-----" '
            'or "-----BEGIN RSA PRIVATE KEY-----".' % source)
    password = passphrase.encode('utf-8') if passphrase else None
    encrypted = 'ENCRYPTED' in text
    try:
        key = serialization.load_pem_private_key(text.encode('utf-8'), password=password)
    except TypeError:
        if password is None:
            raise EcaInputError('%s is encrypted: set private_key_passphrase to its passphrase.' % source)
        # A passphrase was given for a key that is not encrypted: use the key as it is.
        try:
            key = serialization.load_pem_private_key(text.encode('utf-8'), password=None)
        except (TypeError, ValueError):
            raise EcaInputError('%s could not be parsed as a PEM RSA private key.' % source)
    except ValueError:
        if encrypted and password is not None:
            raise EcaInputError('%s could not be decrypted: private_key_passphrase is wrong.' % source)
        raise EcaInputError('%s could not be parsed as a PEM RSA private key (damaged or unsupported format).' % source)
    except Exception:  # cryptography raises UnsupportedAlgorithm and others for exotic inputs
        raise EcaInputError('%s could not be parsed as a PEM RSA private key.' % source)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EcaInputError(
            '%s is a %s key; the JWT bearer flow signs with RS256 and needs an RSA private key.'
            % (source, type(key).__name__.replace('_', '').replace('PrivateKey', '') or 'non-RSA'))
    return key


class JwtBearerAuth(AuthStrategy):
    name = 'jwt_bearer'

    def __init__(self, token_url, client_id, username, private_key=None, private_key_file=None,
                 private_key_passphrase=None, audience=None, clock=None):
        self.token_url = token_url
        self.client_id = client_id
        self.username = username
        self.private_key = private_key
        self.private_key_file = private_key_file
        self.private_key_passphrase = private_key_passphrase
        self.audience = audience or DEFAULT_AUDIENCE
        self.clock = clock or time.time
        self._key = None

    def validate(self):
        if not self.client_id:
            raise EcaInputError('JWT bearer (private_key/private_key_file) needs client_id (the consumer key, used as iss).')
        if not self.username:
            raise EcaInputError('JWT bearer (private_key/private_key_file) needs username (the Salesforce user, used as sub).')
        if self.private_key and self.private_key_file:
            raise EcaInputError('Set only one of private_key and private_key_file.')
        if self.private_key_file:
            path = os.path.expanduser(self.private_key_file)
            if not os.path.isfile(path):
                raise EcaInputError("private_key_file '%s' does not exist or is not a file." % self.private_key_file)
            try:
                with open(path, 'rb') as handle:
                    data = handle.read()
            except (IOError, OSError) as exc:
                raise EcaInputError("private_key_file '%s' cannot be read: %s." % (self.private_key_file, exc.strerror or exc))
            source = "private_key_file '%s'" % self.private_key_file
        else:
            data = self.private_key
            source = 'private_key'
        self._key = load_rsa_private_key(data, self.private_key_passphrase, source)

    def assertion(self):
        if self._key is None:
            self.validate()
        header = {'alg': 'RS256', 'typ': 'JWT'}
        claims = {'iss': self.client_id, 'sub': self.username, 'aud': self.audience,
                  'exp': int(self.clock()) + JWT_LIFETIME}
        signing_input = '%s.%s' % (_b64url(json.dumps(header, separators=(',', ':')).encode('utf-8')),
                                   _b64url(json.dumps(claims, separators=(',', ':')).encode('utf-8')))
        signature = self._key.sign(signing_input.encode('ascii'), padding.PKCS1v15(), hashes.SHA256())
        return '%s.%s' % (signing_input, _b64url(signature))

    def authenticate(self, http):
        form = {'grant_type': JWT_GRANT, 'assertion': self.assertion()}
        return http.token_request(self.token_url, form, self.name)


def select_auth(params, token_url):
    """Pick the strategy from module params (precedence documented in the connection doc fragment)."""
    if params.get('access_token'):
        return AccessTokenAuth(params['access_token'])
    if params.get('private_key') or params.get('private_key_file'):
        return JwtBearerAuth(token_url, params.get('client_id'), params.get('username'),
                             private_key=params.get('private_key'), private_key_file=params.get('private_key_file'),
                             private_key_passphrase=params.get('private_key_passphrase'),
                             audience=params.get('audience'))
    if params.get('refresh_token'):
        return RefreshTokenAuth(token_url, params['refresh_token'], params.get('client_id'), params.get('client_secret'))
    if params.get('client_id') or params.get('client_secret'):
        return ClientCredentialsAuth(token_url, params.get('client_id'), params.get('client_secret'))
    raise EcaInputError(
        'No credentials given. Set one of: access_token; client_id + client_secret (client credentials); '
        'client_id + username + private_key or private_key_file (JWT bearer); refresh_token + client_id. '
        'Each can also come from its SALESFORCE_* environment variable.')
