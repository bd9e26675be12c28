# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  instance_url:
    description:
      - The org's My Domain URL, for example V(https://mycompany.my.salesforce.com).
      - Scheme and host (and port) only, no path, no C(user:password@). Must be C(https) unless O(allow_http=true).
      - Falls back to the environment variable E(SALESFORCE_INSTANCE_URL).
      - When it is set and differs from E(SALESFORCE_INSTANCE_URL), the environment's credentials, O(token_url),
        O(validate_certs) and O(allow_http) are not used (see the notes).
    type: str
    required: true
  access_token:
    description:
      - An access token for the org, for example RV(sfdc.eca.eca_token#module:access_token) of an earlier task.
      - Takes precedence over every other credential. It cannot be renewed; a refused token fails the task.
      - Falls back to E(SALESFORCE_ACCESS_TOKEN).
    type: str
  client_id:
    description:
      - Consumer key of the External Client App used to authenticate (not necessarily the one being rotated).
      - Used by the client credentials, JWT bearer and refresh token flows.
      - Falls back to E(SALESFORCE_CLIENT_ID).
    type: str
  client_secret:
    description:
      - Consumer secret that goes with O(client_id) (client credentials flow; optional for the refresh token flow).
      - Falls back to E(SALESFORCE_CLIENT_SECRET).
    type: str
  username:
    description:
      - Salesforce username the JWT bearer flow signs in as (the C(sub) claim).
      - Falls back to E(SALESFORCE_USERNAME).
    type: str
  private_key:
    description:
      - PEM RSA private key (the content, not a path) for the JWT bearer flow. Literal C(\n) sequences are accepted.
      - Mutually exclusive with O(private_key_file). Falls back to E(SALESFORCE_PRIVATE_KEY).
    type: str
  private_key_file:
    description:
      - Path to a PEM RSA private key for the JWT bearer flow, on the host that runs the module.
      - Falls back to E(SALESFORCE_PRIVATE_KEY_FILE).
    type: path
  private_key_passphrase:
    description:
      - Passphrase of an encrypted private key. Falls back to E(SALESFORCE_PRIVATE_KEY_PASSPHRASE).
    type: str
  refresh_token:
    description:
      - Refresh token for the refresh token flow, with O(client_id) (and O(client_secret) when the app requires it).
      - Falls back to E(SALESFORCE_REFRESH_TOKEN).
    type: str
  token_url:
    description:
      - OAuth token endpoint. Defaults to C({instance_url}/services/oauth2/token).
      - Falls back to E(SALESFORCE_TOKEN_URL), which must be on the org's host or a Salesforce login host
        (C(login.salesforce.com), C(test.salesforce.com)); a token endpoint elsewhere must be set in the task.
    type: str
  audience:
    description:
      - The C(aud) claim of the JWT bearer assertion, for example V(https://test.salesforce.com) for sandboxes.
      - Falls back to E(SALESFORCE_AUDIENCE).
    type: str
    default: https://login.salesforce.com
  api_version:
    description:
      - REST API version, of the form C(NN.N). The staged credential endpoints exist since V(65.0), so older versions
        are refused before any call. V(67.0) is the newest the reference documents.
      - Falls back to E(SALESFORCE_API_VERSION).
    type: str
    default: '65.0'
  validate_certs:
    description:
      - Verify the server's TLS certificate. Set to V(false) only against test servers.
      - Falls back to E(SALESFORCE_VALIDATE_CERTS).
    type: bool
    default: true
  ca_path:
    description:
      - PEM bundle of the CA(s) to trust instead of the default one, which is the bundle C(requests) uses (C(certifi)'s,
        or E(REQUESTS_CA_BUNDLE) or E(CURL_CA_BUNDLE) when set). Falls back to E(SALESFORCE_CA_PATH).
    type: path
  timeout:
    description:
      - Seconds to wait for a connection and for each answer. Falls back to E(SALESFORCE_TIMEOUT).
    type: float
    default: 30
  max_retries:
    description:
      - Retries after a transient failure (HTTP 429, 500, 502, 503, 504, connection errors), with jittered
        exponential backoff that honours C(Retry-After). Writes are repeated only when they certainly did not
        reach the server; otherwise the state is read again to decide.
      - Falls back to E(SALESFORCE_MAX_RETRIES).
    type: int
    default: 4
  retry_backoff:
    description:
      - Base delay in seconds; retry N waits a random time up to O(retry_backoff) * 2^N.
      - Falls back to E(SALESFORCE_RETRY_BACKOFF).
    type: float
    default: 0.5
  retry_max_delay:
    description:
      - Longest wait between two attempts, also for C(Retry-After). Falls back to E(SALESFORCE_RETRY_MAX_DELAY).
    type: float
    default: 30
  max_response_mb:
    description:
      - Largest answer read from the org, in megabytes once decoded (a small gzip body can expand to gigabytes).
        A larger answer fails the task without being read.
      - Falls back to E(SALESFORCE_MAX_RESPONSE_MB).
    type: float
    default: 8
  allow_http:
    description:
      - Allow C(http) URLs for O(instance_url) and O(token_url) (local test servers only).
      - Falls back to E(SALESFORCE_ALLOW_HTTP).
    type: bool
    default: false
notes:
  - "Authentication, by precedence: O(access_token); JWT bearer when O(private_key) or O(private_key_file) is set
    (needs O(client_id) and O(username)); the refresh token flow when O(refresh_token) is set (needs O(client_id));
    the client credentials flow with O(client_id) and O(client_secret)."
  - One token is requested per task. When the API answers 401 during the task, a token from a renewable flow is
    renewed once and the call replayed.
  - Every option falls back to an environment variable C(SALESFORCE_<OPTION>), so an AWX/AAP credential type can
    inject them. A value set in the task wins over the environment. An empty variable counts as unset.
  - The environment's credentials (O(access_token), O(client_id), O(client_secret), O(username), O(private_key),
    O(private_key_file), O(private_key_passphrase), O(refresh_token)), O(token_url), O(validate_certs) and
    O(allow_http) belong to one org. They are used only when O(instance_url) is not set in the task, or is the same
    URL as E(SALESFORCE_INSTANCE_URL). So in a play over many orgs, one org's credential never goes to another org's
    host. The other options (O(ca_path), O(api_version), O(audience), timeouts, retries, O(max_response_mb)) apply
    to every task.
  - Calls go through the proxy the environment names for https (E(HTTPS_PROXY), with C(user:password@) for a proxy
    that asks for credentials; E(ALL_PROXY); a C(socks5://) proxy needs the Python package C(PySocks)), except to the
    hosts of E(NO_PROXY). Redirects are never followed.
  - All modules are in the action group C(sfdc.eca.eca), so C(module_defaults) with C(group/sfdc.eca.eca) sets
    these options once for all of them.
  - The calling user needs the permissions C(External Client App Developer) and C(View Client Secret), and the org
    setting C(Allow access to External Client App consumer secrets via REST API) must be on.
requirements:
  - requests (the client sends its calls through the C(urllib3) that requests is built on)
  - cryptography (JWT bearer flow only)
'''
