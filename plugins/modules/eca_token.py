#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_token
short_description: Get an OAuth access token for a Salesforce org, or verify a key and secret
version_added: 0.1.0
description:
  - Authenticates once against the org's OAuth token endpoint with the flow chosen from the connection options
    and returns the access token, so later tasks can pass it as O(access_token) instead of authenticating again.
  - With O(verify_only=true) it only proves that the credentials work and returns no token. O(verify_pair=true)
    proves one key and secret (or key and JWT private key), for example a newly staged pair before promoting it,
    with nothing else.
  - Never changes anything in the org (C(changed) is always V(false)).
author:
  - sfdc.eca maintainers (@sfdc-eca)
extends_documentation_fragment:
  - sfdc.eca.connection
attributes:
  check_mode:
    support: full
    description: Runs normally in check mode; it only reads.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
options:
  verify_only:
    description:
      - Only check that the credentials are accepted; do not return the token.
      - With O(access_token) this makes one cheap REST call to prove the token works.
    type: bool
    default: false
  verify_pair:
    description:
      - Verify the pair this task gives, and nothing else, like O(verify_only=true). The pair is O(client_id) with
        O(client_secret) (client credentials), or O(client_id) with O(username) and O(private_key) or
        O(private_key_file) (JWT bearer).
      - O(access_token), O(refresh_token) and every C(SALESFORCE_*) credential variable are ignored, so that an
        AWX credential injected for the admin connection cannot take the place of the pair under test.
    type: bool
    default: false
notes:
  - Run the task with C(no_log=true) when the token is kept in a variable, so it does not appear in callback output.
  - With the refresh token flow and refresh-token rotation on in the org, the token endpoint answers with a new
    refresh token and the one given stops working. Every module then returns it as RV(refresh_token); store it
    (into an ansible-vault encrypted file, or back into the AWX credential) before the next run, which would
    otherwise fail with the old one. docs/modules.md shows how.
'''

EXAMPLES = r'''
- name: Authenticate once with client credentials
  sfdc.eca.eca_token:
    instance_url: https://mycompany.my.salesforce.com
    client_id: "{{ admin_client_id }}"
    client_secret: "{{ admin_client_secret }}"
  register: sf_token
  no_log: true

- name: Use the token in later tasks
  sfdc.eca.eca_usage_info:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"

- name: Authenticate with the JWT bearer flow
  sfdc.eca.eca_token:
    instance_url: https://mycompany.my.salesforce.com
    client_id: "{{ jwt_consumer_key }}"
    username: integration@mycompany.com
    private_key_file: /etc/salesforce/jwt.key
  register: sf_token
  no_log: true

- name: Stage a new key and secret
  sfdc.eca.eca_staged_credential:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_name: Billing_Sync
  register: staged
  no_log: true

- name: Check that the newly staged key and secret authenticate
  sfdc.eca.eca_token:
    instance_url: https://mycompany.my.salesforce.com
    client_id: "{{ staged.staged_credential.key }}"
    client_secret: "{{ staged.staged_credential.secret }}"
    verify_pair: true
'''

RETURN = r'''
access_token:
  description: The access token. Omitted when O(verify_only=true).
  returned: success and not verify_only
  type: str
  sample: 00D5g000004XXXX!AQ4AQNotARealToken
instance_url:
  description: The org URL the token endpoint reported (or O(instance_url) when it reported none).
  returned: success
  type: str
  sample: https://mycompany.my.salesforce.com
token_type:
  description: Token type.
  returned: success
  type: str
  sample: Bearer
issued_at:
  description: When the token was issued, milliseconds since the epoch, as the token endpoint reported it.
  returned: when the token endpoint reported it
  type: str
  sample: '1764340000000'
refresh_token:
  description:
    - The new refresh token the token endpoint returned (refresh-token rotation); the one given no longer works.
    - The task's displayed result is hidden as if it had C(no_log=true); the value is in the registered variable.
  returned: when the refresh token flow got a new refresh token
  type: str
  sample: 5Aep861NotARealRefreshToken
auth_flow:
  description: The authentication flow used.
  returned: always
  type: str
  sample: client_credentials
api_calls:
  description: HTTP requests sent to the org by this task (token requests included).
  returned: always
  type: int
  sample: 1
error:
  description: OAuth error code of a refused token request.
  returned: failure, when the token endpoint refused
  type: str
  sample: invalid_client
error_description:
  description: OAuth error description of a refused token request.
  returned: failure, when the token endpoint refused
  type: str
  sample: invalid client credentials
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sfdc.eca.plugins.module_utils._common import execute
from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_token
from ansible_collections.sfdc.eca.plugins.module_utils._specs import token_spec


def main():
    module = AnsibleModule(**token_spec())
    execute(module, run_token)


if __name__ == '__main__':
    main()
