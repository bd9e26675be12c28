#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_usage_info
short_description: List the External Client Apps of a Salesforce org
version_added: 0.1.0
description:
  - Lists the org's External Client Apps with OAuth (C(GET /apps/oauth/usage)), following every page.
  - Optionally keeps only the apps with the given developer names.
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
  name:
    description:
      - Developer names of the apps to keep. Names that match no app give a warning.
      - All apps when omitted.
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: List every External Client App of the org
  sfdc.eca.eca_usage_info:
    instance_url: https://mycompany.my.salesforce.com
    client_id: "{{ admin_client_id }}"
    client_secret: "{{ admin_client_secret }}"
  register: usage

- name: Look up two apps, with the connection set once for the whole group
  module_defaults:
    group/sfdc.eca.eca:
      instance_url: https://mycompany.my.salesforce.com
      access_token: "{{ sf_token.access_token }}"
  sfdc.eca.eca_usage_info:
    name:
      - Billing_Sync
      - Data_Loader
  register: usage

- name: Show their ids
  ansible.builtin.debug:
    msg: "{{ usage.apps | map(attribute='identifier') | list }}"
'''

RETURN = r'''
apps:
  description: The apps, in the order the API returned them.
  returned: success
  type: list
  elements: dict
  contains:
    identifier:
      description: The app id, used as O(sfdc.eca.eca_staged_credential#module:app_id) by the other modules.
      type: str
      sample: 0xI5g000000abcdEAA
    developer_name:
      description: The app's API (developer) name.
      type: str
      sample: Billing_Sync
    label:
      description: The app's label.
      type: str
      sample: Billing Sync
  sample:
    - identifier: 0xI5g000000abcdEAA
      developer_name: Billing_Sync
      label: Billing Sync
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
  sample: 2
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sfdc.eca.plugins.module_utils._common import execute
from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_usage_info
from ansible_collections.sfdc.eca.plugins.module_utils._specs import usage_info_spec


def main():
    module = AnsibleModule(**usage_info_spec())
    execute(module, run_usage_info)


if __name__ == '__main__':
    main()
