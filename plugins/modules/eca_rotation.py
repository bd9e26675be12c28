#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_rotation
short_description: Rotate the External Client App credentials of one org, or of many orgs, in one task
version_added: 0.2.0
description:
  - The engine of the C(sfdc.eca.rotation) role's fleet rotation. For one org it authenticates once, reads the apps and
    consumers, plans each consumer (rotate, resume, skip, blocked, revoke), stages a new pair, verifies it, delivers it to
    an ansible-vault encrypted file, rolls back what failed, promotes, records the promotion in the org's history file,
    and optionally revokes the previous pair and proves it is refused. Consumers refused with HTTP 401 are retried once after
    authenticating again.
  - It runs the same operations as M(sfdc.eca.eca_token) and M(sfdc.eca.eca_staged_credential) with the same API calls,
    inside one task, because at fleet scale each Ansible task costs a worker process per org.
  - When a consumer delivers through a tasks file (C(deliver.tasks_file) in O(rotations)) or has a verification hook
    (O(verify_tasks_file)), those are Ansible tasks, so the module stops before promoting and returns RV(handoff). Run the
    tasks files, then call the module again with O(handoff), O(deliver_errors) and O(hook_errors) to finish. The role
    does this; calling the module directly is for playbooks that build their own flow.
  - With O(orgs), one task rotates many orgs (inventory hosts, one per org) in a pool of O(workers) threads; each org's
    options are this task's options updated with the org's own variables named in O(org_options), as a task on that host
    would see them. Run it with C(run_once=true); the result holds each org's result in RV(orgs). Orgs whose options
    name a tasks file are not rotated but listed in RV(tasks_file_orgs), for tasks on those hosts (the role's
    C(fleet) entry point, used by C(playbooks/rotate.yml), does both).
  - It always runs on the controller (an org is not a machine), whatever the host's connection.
  - This module has no standalone implementation; it is an action plugin.
author:
  - sfdc.eca maintainers (@sfdc-eca)
attributes:
  check_mode:
    support: full
    description: Reads and plans; writes nothing to the org or the controller. The plan is displayed without C(-v).
  diff_mode:
    support: none
    description: The report rows in RV(records) say what changed.
options:
  org:
    description: The org's name in records and the history file. Defaults to the inventory host name.
    type: str
  connection:
    description:
      - How to reach and authenticate to the org, with the options of the sfdc.eca modules
        (O(sfdc.eca.eca_token#module:instance_url), O(sfdc.eca.eca_token#module:client_id), ...). C(SALESFORCE_*)
        environment variables fill what is not given, as for the modules.
    type: dict
    default: {}
  rotations:
    description:
      - What to rotate, as the role's C(sfdc_eca_rotations)
        (C(app_name), optional C(app_id), C(consumer_name), C(deliver), and per-entry overrides of the options below).
    type: list
    elements: raw
    default: []
  replace_rotated:
    description: Rotate a consumer whose previous pair is still in its grace (C(Rotated)), revoking that pair.
    type: bool
    default: false
  revoke_previous:
    description:
      - After promoting, delete the previous pair now instead of letting it expire, and prove it is refused.
      - Also finishes the revoke of a consumer whose main key this tool promoted when the run that promoted it stopped
        before revoking (plan C(revoke)).
    type: bool
    default: false
  min_age_days:
    description: Skip a consumer this tool rotated less than this many days ago.
    type: float
    default: 7
  verify:
    description: How a new pair is proven before it is delivered and promoted.
    type: str
    choices: [client_credentials, jwt, none]
    default: client_credentials
  verify_jwt:
    description: C(username), C(private_key_file) or C(private_key), optional C(private_key_passphrase) and C(audience).
    type: dict
    default: {}
  verify_tasks_file:
    description: A tasks file run after delivery with C(sfdc_eca_credential); failing it rolls the consumer back.
    type: str
    default: ''
  verify_retries:
    description: Extra attempts of a verification that fails (the new pair may take a moment to work everywhere).
    type: int
    default: 3
  verify_delay:
    description: Seconds between verification attempts.
    type: float
    default: 5
  vault_password_file:
    description: Default vault password file of C(deliver.vault_file) targets.
    type: str
    default: ''
  vault_id:
    description: Default vault id of C(deliver.vault_file) targets.
    type: str
    default: ''
  state_dir:
    description:
      - Directory of the rotation history (C(history.json) and C(history.d/ORG.json)) on the controller.
      - Required; with O(orgs), the task's value or each org's (through O(org_options)).
    type: str
  canary_gate:
    description:
      - Apply the canary gate of the role's playbooks (hosts of earlier batches with C(sfdc_eca_canary) and
        C(sfdc_eca_org_failed) in their host variables). A held-back org records C(not_run) and is not contacted.
    type: bool
    default: true
  max_fail_percentage:
    description: After the canary batch, hold back the remaining orgs once more than this percentage failed.
    type: float
    default: 100
  handoff:
    description: The RV(handoff) of the previous call, to finish after the user's tasks files ran.
    type: dict
  deliver_errors:
    description: The tasks-file deliveries that failed, as a message per consumer id (C(APP/CONSUMER)).
    type: dict
    default: {}
  hook_errors:
    description: The verification hooks that failed, as a message per consumer id (C(APP/CONSUMER)).
    type: dict
    default: {}
  orgs:
    description:
      - Rotate these orgs (inventory host names, such as C(ansible_play_batch)) in this one task, instead of one org.
      - An org whose options are invalid records a failed row naming the bad variable or option and is not contacted; the
        others go on. An org listed twice is rotated once.
      - The task's own options apply to every org unless O(org_options) maps them; O(org), O(handoff), O(deliver_errors) and
        O(hook_errors) are not accepted, O(org_options) cannot map O(canary_gate), and the canary gate is computed once for
        the batch (with the first org's O(max_fail_percentage)).
      - The task's C(environment) (for C(SALESFORCE_*) fallbacks or proxies) is templated once, on the host that runs the
        task, and applies to every org.
    type: list
    elements: str
  org_options:
    description:
      - With O(orgs), required. Option name to the name of the variable that gives its value for each org, for example
        C(connection) to C(sfdc_eca_connection) and C(rotations) to C(sfdc_eca_rotations). Each org's variables are templated as a
        task on that org's host would see them (inventory, group and host vars, play, role and extra vars in their
        usual precedence). An org without the variable keeps this task's value of the option.
    type: dict
  org_variables_spec:
    description:
      - With O(orgs), an argument spec (as in C(meta/argument_specs.yml)) that each org's variables must meet before it is
        rotated, for example a role's entry point options. Errors name the org and the variable.
    type: dict
    default: {}
  workers:
    description:
      - With O(orgs), how many orgs are rotated at the same time. Defaults to the number of forks (C(-f)).
    type: int
notes:
  - API calls per consumer with a plain rotation (client credentials verification, no revoke) are the same as with the
    modules - stage 1, verification token 1, promote 1 - plus per org one token request and per app one read.
  - The result never carries a secret, except RV(handoff); a result with RV(handoff) is displayed as if the task had
    C(no_log=true).
seealso:
  - module: sfdc.eca.eca_staged_credential
  - name: Rotation role and its options
    description: docs/rotation.md in the collection.
    link: https://github.com/sfdc-eca/sfdc.eca/blob/main/docs/rotation.md
'''

EXAMPLES = r'''
- name: Rotate one org's Billing_Sync credentials into a vault file
  sfdc.eca.eca_rotation:
    connection:
      instance_url: https://mycompany.my.salesforce.com
      client_id: "{{ admin_client_id }}"
      client_secret: "{{ admin_client_secret }}"
    rotations:
      - app_name: Billing_Sync
        deliver:
          vault_file: "/srv/creds/{org}-{app_name}-{consumer_name}.vault.yml"
          vault_password_file: /etc/ansible/vault-password
    state_dir: /var/lib/sfdc_eca
  register: rotation
  no_log: true

- name: Show what happened (records hold key suffixes, never secrets)
  ansible.builtin.debug:
    msg: "{{ rotation.records | map(attribute='outcome') | list }}"

# One task for every org of the play's current batch; each org (host) sets eca_connection and eca_rotations.
- name: Rotate the batch's orgs on the controller, 20 at a time
  sfdc.eca.eca_rotation:
    orgs: "{{ ansible_play_batch }}"
    org_options:
      connection: eca_connection
      rotations: eca_rotations
    state_dir: /var/lib/sfdc_eca
    workers: 20
  run_once: true
  register: fleet
  no_log: true

- name: List the orgs with a failed consumer
  ansible.builtin.debug:
    msg: "{{ fleet.orgs | dict2items | selectattr('value.org_failed') | map(attribute='key') | list }}"
  run_once: true
'''

RETURN = r'''
records:
  description: One report row per consumer (the role's report rows). Never holds a secret.
  returned: without O(orgs)
  type: list
  elements: dict
  sample:
    - org: prod-eu
      app_name: Billing_Sync
      consumer_name: Billing
      plan: rotate
      outcome: rotated
      old_key: "...a1B2"
      new_key: "...c3D4"
      state: Rotated
      expiry: "2026-12-28T10:00:00.000+0000"
      delivered_to: /srv/creds/prod-eu-Billing_Sync-Billing.vault.yml
      error: null
org_failed:
  description: Whether a consumer of this org failed.
  returned: without O(orgs)
  type: bool
  sample: false
canary:
  description: Whether this org is in the canary batch.
  returned: without O(orgs)
  type: bool
  sample: true
plan:
  description: The plan, one line per consumer.
  returned: without O(orgs)
  type: list
  elements: str
  sample: ["Billing_Sync/Billing: rotate (nothing staged: stage a new pair)"]
api_calls:
  description: API requests made to the org by this task.
  returned: always
  type: int
  sample: 6
orgs:
  description:
    - With O(orgs), each org's result (RV(records), RV(org_failed), RV(canary), RV(plan), RV(api_calls)) by org name.
      The other return values then sum up the orgs (RV(api_calls)) or are not returned (RV(records), RV(plan)).
  returned: with O(orgs)
  type: dict
  sample:
    prod-eu:
      records: []
      org_failed: false
      canary: false
      plan: ["Billing_Sync/Billing: rotate (nothing staged: stage a new pair)"]
      api_calls: 7
tasks_file_orgs:
  description: With O(orgs), the orgs left for tasks on their hosts because their options name a tasks file.
  returned: with O(orgs)
  type: list
  elements: str
  sample: [prod-us]
handoff:
  description:
    - The state to finish with after the user's tasks files ran (consumers, new pairs, token). Holds secrets.
  returned: when a tasks-file delivery or a verification hook must run before promoting
  type: dict
  sample: {}
'''
