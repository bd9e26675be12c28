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
  - With O(verify_only=true) it only proves that the credentials work, for example a newly staged consumer key and
    secret before promoting them, and returns no token.
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
notes:
  - Run the task with C(no_log=true) when the token is kept in a variable, so it does not appear in callback output.
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
    verify_only: true
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
