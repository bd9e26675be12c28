#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_credential_info
short_description: Show the OAuth consumers of an External Client App and their staged credentials
version_added: 0.1.0
description:
  - For one External Client App, lists its OAuth consumers with their main consumer key and the state of each
    one's staged credential slot (V(Active), V(Rotated), V(Expired) or none).
  - Secrets are returned only with O(include_secrets=true).
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
  app_name:
    description:
      - Developer name of the app. Costs one call more than O(app_id), to look the app up.
      - Exactly one of O(app_name) and O(app_id) is required.
    type: str
  app_id:
    description:
      - Id of the app (15 or 18 characters starting with C(0x)), as returned by M(sfdc.eca.eca_usage_info).
    type: str
  include_secrets:
    description:
      - Also return each consumer's main secret and its staged secret. Costs one more call per consumer.
      - Fails naming the org setting C(Allow access to External Client App consumer secrets via REST API) when the
        org refuses or answers without a secret.
      - Use C(no_log=true) on the task.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Show the consumers of Billing_Sync and their staged credentials
  sfdc.eca.eca_credential_info:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_name: Billing_Sync
  register: creds

- name: Fail if a staged credential waits to be promoted
  ansible.builtin.assert:
    that:
      - creds.consumers | selectattr('staged_credential') | selectattr('staged_credential.state', 'eq', 'Active') | list | length == 0

- name: Read the current key and secret to deliver them
  sfdc.eca.eca_credential_info:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_id: 0xI5g000000abcdEAA
    include_secrets: true
  register: creds
  no_log: true
'''

RETURN = r'''
app_id:
  description: Id of the app.
  returned: success
  type: str
  sample: 0xI5g000000abcdEAA
app_name:
  description: Developer name of the app (null when the app was given by O(app_id)).
  returned: success
  type: str
  sample: Billing_Sync
consumers:
  description: The app's OAuth consumers.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Consumer id.
      type: str
      sample: 8885g000000XyZaAAK
    name:
      description: Consumer name.
      type: str
      sample: Billing
    key:
      description: The main (primary) consumer key.
      type: str
      sample: 3MVG9NotARealConsumerKey
    secret:
      description: The main consumer secret.
      type: str
      returned: when O(include_secrets=true)
      sample: 0123456789ABCDEF
    staged_credential:
      description: The staged credential slot, null when empty.
      type: dict
      contains:
        id:
          description: Staged credential id.
          type: str
          sample: 0sC5g000000abcdEAA
        key:
          description: Its consumer key. For a V(Rotated) one this is the previous main key.
          type: str
          sample: 3MVG9NotARealStagedKey
        state:
          description: V(Active) (staged, not promoted), V(Rotated) (previous main in its grace period) or V(Expired).
          type: str
          sample: Active
        created_by:
          description: Id of the user who staged it.
          type: str
          sample: 0055g000000AbCdAAK
        created_date:
          description: When it was staged.
          type: str
          sample: '2026-11-28T15:40:00.000+0000'
        expiration_date:
          description: When it expires (30 days after staging, or the end of the grace period).
          type: str
          sample: '2026-12-28T15:40:00.000+0000'
        secret:
          description: Its consumer secret.
          type: str
          returned: when O(include_secrets=true) and the API returned it
          sample: FEDCBA9876543210
  sample:
    - id: 8885g000000XyZaAAK
      name: Billing
      key: 3MVG9NotARealConsumerKey
      staged_credential:
        id: 0sC5g000000abcdEAA
        key: 3MVG9NotARealStagedKey
        state: Active
        created_by: 0055g000000AbCdAAK
        created_date: '2026-11-28T15:40:00.000+0000'
        expiration_date: '2026-12-28T15:40:00.000+0000'
refresh_token:
  description:
    - The new refresh token the org returned when the task authenticated with a refresh token and the org rotates
      them; the one given no longer works. Store it for the next run (see M(sfdc.eca.eca_token)).
  returned: when the refresh token flow got a new refresh token
  type: str
  sample: 5Aep861NotARealRefreshToken
api_calls:
  description: HTTP requests sent to the org by this task (token requests included).
  returned: always
  type: int
  sample: 3
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sfdc.eca.plugins.module_utils._common import execute
from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_credential_info
from ansible_collections.sfdc.eca.plugins.module_utils._specs import credential_info_spec


def main():
    module = AnsibleModule(**credential_info_spec())
    execute(module, run_credential_info)


if __name__ == '__main__':
    main()
