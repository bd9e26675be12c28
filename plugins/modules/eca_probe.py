#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_probe
short_description: Record how a Salesforce org answers the External Client App credential API
version_added: 0.2.0
description:
  - Runs the credential lifecycle once against one throwaway External Client App and returns a secret-free
    behaviour profile, answering the questions the API documentation leaves open (an empty staged slot as an empty
    list or a 404, the answer of a promotion, staged ids kept or renewed, paging, id lengths, error body forms,
    letter case of states, API versions answered, and more).
  - The lifecycle is list the apps, read the consumers and the staged slot, stage a pair, read it, promote it, read the
    slot, stage again over the C(Rotated) pair, delete what is staged, and authenticate with the new pair. It
    rotates the app's key and secret, so the previous pair stops working. Name an app nothing depends on, in a sandbox.
  - With O(writes=false) (or in check mode) it only reads, and never fetches a secret; production orgs can be probed
    that way, with fewer answers.
  - The profile holds status codes, field names, shapes, error codes, state spellings and id lengths; never a key,
    secret, token, id, name or URL of the org. Its C(variants) name the switches of the collection's simulator that
    match the org; C(ansible-playbook sfdc.eca.probe) writes it as YAML (see docs/simulator.md).
author:
  - sfdc.eca maintainers (@sfdc-eca)
extends_documentation_fragment:
  - sfdc.eca.connection
attributes:
  check_mode:
    support: full
    description: Reads only, as with O(writes=false).
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  app_name:
    description:
      - Developer name of the throwaway External Client App. Mutually exclusive with O(app_id).
    type: str
  app_id:
    description:
      - Identifier of the app (C(0x...)), for an app the usage listing does not show (never used yet).
    type: str
  consumer_name:
    description: The consumer to use when the app has several.
    type: str
  consumer_id:
    description: The consumer to use when the app has several (15 or 18 characters).
    type: str
  writes:
    description:
      - Run the lifecycle (stage, promote, delete). V(false) only reads.
      - The consumer's staged slot must be empty for the writes to run; otherwise they are skipped with a note.
    type: bool
    default: true
  api_versions:
    description: The REST API versions to try (one usage call each). Default V(65.0) to V(68.0).
    type: list
    elements: str
notes:
  - "The profile's C(notes) say what the probe could not find out, for example with REST access to consumer secrets
    off. A switch it could not observe is V(unknown) (C(expired_staged) always is: it takes 30 days)."
  - With the refresh token flow and refresh-token rotation on, run the task with C(no_log=true) and store the returned
    RV(refresh_token); the one given stops working.
'''

EXAMPLES = r'''
- name: Probe a sandbox with a throwaway app
  sfdc.eca.eca_probe:
    instance_url: https://mycompany--uat.sandbox.my.salesforce.com
    client_id: "{{ admin_client_id }}"
    client_secret: "{{ admin_client_secret }}"
    app_name: Probe_Throwaway
  register: probe

- name: Write the profile
  ansible.builtin.copy:
    content: "{{ probe.profile | to_nice_yaml }}"
    dest: sfdc_eca_profile.yml
    mode: "0644"

- name: Read-only probe of a production org
  sfdc.eca.eca_probe:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_name: Billing_Sync
    writes: false
  register: probe_ro
'''

RETURN = r'''
profile:
  description: The behaviour profile (secret-free).
  returned: success
  type: dict
  contains:
    sfdc_eca_profile:
      description: Format of the profile.
      type: int
      sample: 1
    variants:
      description: The simulator switch each answer matched, V(unknown) where the probe could not tell.
      type: dict
      sample: {"empty_staged": "not_found", "rotate_answer": "rotated", "expired_staged": "unknown"}
    api_versions:
      description: Each API version tried and how it answered.
      type: dict
      sample: {"65.0": "answered", "68.0": "HTTP 404"}
    observations:
      description: Each request (ids replaced by placeholders), its status and the shape of its answer.
      type: list
      elements: dict
    notes:
      description: What the probe could not do or find out.
      type: list
      elements: str
refresh_token:
  description: The new refresh token, when the org rotated the one the task authenticated with.
  returned: when the refresh token flow got a new refresh token
  type: str
  sample: 5Aep861NotARealRefreshToken
api_calls:
  description: HTTP requests sent to the org by this task.
  returned: always
  type: int
  sample: 24
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sfdc.eca.plugins.module_utils._common import execute
from ansible_collections.sfdc.eca.plugins.module_utils._probe import run_probe
from ansible_collections.sfdc.eca.plugins.module_utils._specs import probe_spec


def main():
    module = AnsibleModule(**probe_spec())
    execute(module, run_probe)


if __name__ == '__main__':
    main()
