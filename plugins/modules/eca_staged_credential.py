#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_staged_credential
short_description: Stage, promote or delete the staged OAuth credential of an External Client App consumer
version_added: 0.1.0
description:
  - Manages the staged credential slot of one OAuth consumer of a Salesforce External Client App, the API behind
    rotating a consumer key and secret without downtime.
  - "O(state=present): an V(Active) staged credential exists. Stages a new key and secret when the slot is empty,
    replaces an V(Expired) one (delete, then stage), and leaves an V(Active) one alone. A V(Rotated) one is the
    previous main credential in its grace period and may still be in use: by default the task fails and changes
    nothing; O(replace_rotated=true) revokes it and stages a new one."
  - "O(state=rotated): the staged credential has been promoted. Promotes an V(Active) one (the staged key and secret
    become the main ones, the old main becomes V(Rotated)); an already V(Rotated) slot is a no-op. An empty slot
    fails, since there is nothing to promote; an V(Expired) one fails too."
  - "O(state=absent): the slot is empty. Deletes whatever is there; deleting a V(Rotated) credential revokes the
    previous main key and secret at once, deleting an V(Active) one discards it."
  - A write that fails ambiguously (timeout, reset, server error after sending) is not blindly repeated; the slot is
    read again and the module decides whether it happened.
author:
  - sfdc.eca maintainers (@sfdc-eca)
extends_documentation_fragment:
  - sfdc.eca.connection
attributes:
  check_mode:
    support: full
    description: Reads the state, reports what would change, writes nothing.
  diff_mode:
    support: full
    description: Shows the slot state and key suffixes before and after, never a secret.
options:
  app_name:
    description:
      - Developer name of the app. Costs one call more than O(app_id).
      - Exactly one of O(app_name) and O(app_id) is required.
    type: str
  app_id:
    description:
      - Id of the app (15 or 18 characters starting with C(0x)), as returned by M(sfdc.eca.eca_usage_info).
    type: str
  consumer_name:
    description:
      - Name of the OAuth consumer. Needed only when the app has more than one consumer (the error lists them).
      - Mutually exclusive with O(consumer_id).
    type: str
  consumer_id:
    description:
      - Id of the OAuth consumer (15 or 18 characters), as returned by M(sfdc.eca.eca_credential_info).
      - Given together with O(app_id), the app's consumers are not listed again (one call less); an unknown id then
        fails when the API answers 404. RV(consumer_name) is then not returned, and RV(main_key) only after a promotion.
    type: str
  state:
    description:
      - The wanted state of the staged slot, see the description.
    type: str
    choices: [present, rotated, absent]
    default: present
  replace_rotated:
    description:
      - With O(state=present), revoke a V(Rotated) credential in the slot (the previous main key, still valid in its
        grace period) and stage a new one. Only when nothing uses the previous key any more.
    type: bool
    default: false
  return_secret:
    description:
      - Return the staged secret even when this run did not stage it (read from the API).
      - The secret of a credential this run staged is always returned.
    type: bool
    default: false
  staged_id:
    description:
      - With O(state=rotated) or O(state=absent), the id of the staged credential to promote or delete, as an earlier
        O(state=present) returned it. The module then sends the PATCH or DELETE at once, without reading the slot
        (one call instead of three with O(app_id) and O(consumer_id)).
      - If that credential is gone or no longer V(Active), the module reads the slot and decides as without this option.
      - Not used in check mode, which always reads the slot.
    type: str
notes:
  - "A no-op O(state=present) costs 2 API calls with O(app_id) and an O(access_token), 3 with O(app_name)."
  - O(state=present) never succeeds without the new secret. An org whose REST access to consumer secrets is off
    refuses (HTTP 403) or stages the pair and answers without its secret; the pair is then deleted again and the task
    fails naming the setting C(Allow access to External Client App consumer secrets via REST API).
  - With O(app_id) and O(consumer_id), a slot answered 404 counts as empty only for a consumer that exists; a wrong
    id fails naming the app or the consumer, before anything is written.
  - The module copes with each behaviour the API documentation leaves open (empty slot as V([]) or 404, the three
    answers of a promotion, staged ids kept or renewed, states in any letter case, 15 or 18 character ids, an
    C(Expired) pair kept or removed); see docs/modules.md.
  - A result that carries a secret (a pair this task staged, or O(return_secret=true)) is displayed as if the task
    had C(no_log=true); the value is still in the registered variable. Set C(no_log=true) anyway on tasks that
    template secrets into their options.
'''

EXAMPLES = r'''
- name: Stage a new key and secret for the only consumer of Billing_Sync
  sfdc.eca.eca_staged_credential:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_name: Billing_Sync
    state: present
  register: staged
  no_log: true

- name: Verify the new pair before promoting it
  sfdc.eca.eca_token:
    instance_url: https://mycompany.my.salesforce.com
    client_id: "{{ staged.staged_credential.key }}"
    client_secret: "{{ staged.staged_credential.secret }}"
    verify_only: true
  no_log: true

- name: Promote it
  sfdc.eca.eca_staged_credential:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_id: "{{ staged.app_id }}"
    consumer_id: "{{ staged.consumer_id }}"
    staged_id: "{{ staged.staged_credential.id }}"   # one PATCH, no re-read of the slot
    state: rotated

- name: Once every integration uses the new pair, revoke the previous one
  sfdc.eca.eca_staged_credential:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_id: "{{ staged.app_id }}"
    consumer_name: Billing
    state: absent

- name: Preview a rotation with a diff, writing nothing
  sfdc.eca.eca_staged_credential:
    instance_url: https://mycompany.my.salesforce.com
    access_token: "{{ sf_token.access_token }}"
    app_name: Billing_Sync
    state: present
    replace_rotated: true
  check_mode: true
  diff: true
'''

RETURN = r'''
app_id:
  description: Id of the app.
  returned: success
  type: str
  sample: 0xI5g000000abcdEAA
app_name:
  description: Developer name of the app (null when given by O(app_id)).
  returned: success
  type: str
  sample: Billing_Sync
consumer_id:
  description: Id of the consumer.
  returned: success
  type: str
  sample: 8885g000000XyZaAAK
consumer_name:
  description: Name of the consumer.
  returned: success
  type: str
  sample: Billing
previous_state:
  description: State of the slot before the task, V(absent) when it was empty.
  returned: success
  type: str
  sample: absent
action:
  description:
    - What the task did (or would do in check mode).
    - V(staged), V(replaced_expired), V(replaced_rotated), V(rotated), V(deleted) or V(none).
  returned: success
  type: str
  sample: staged
staged_credential:
  description:
    - The staged credential after the task; null when the slot is empty, or in check mode before staging.
    - After a promotion this is the V(Rotated) previous main credential.
  returned: success
  type: dict
  contains:
    id:
      description: Staged credential id.
      type: str
      sample: 0sC5g000000abcdEAA
    key:
      description: Its consumer key.
      type: str
      sample: 3MVG9NotARealStagedKey
    state:
      description: V(Active), V(Rotated) or V(Expired).
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
      description: When it expires.
      type: str
      sample: '2026-12-28T15:40:00.000+0000'
    secret:
      description: Its consumer secret.
      type: str
      returned: when this task staged it, or with O(return_secret=true)
      sample: FEDCBA9876543210
  sample:
    id: 0sC5g000000abcdEAA
    key: 3MVG9NotARealStagedKey
    state: Active
    created_by: 0055g000000AbCdAAK
    created_date: '2026-11-28T15:40:00.000+0000'
    expiration_date: '2026-12-28T15:40:00.000+0000'
main_key:
  description: The consumer's main key after the task (the staged key after a promotion).
  returned: success
  type: str
  sample: 3MVG9NotARealConsumerKey
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
diff:
  description: Slot state and key suffixes before and after.
  returned: with C(--diff)
  type: dict
  sample:
    before:
      state: absent
      staged_key: null
      main_key: '...Ab12'
    after:
      state: Active
      staged_key: '...Cd34'
      main_key: '...Ab12'
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sfdc.eca.plugins.module_utils._common import execute
from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_staged_credential
from ansible_collections.sfdc.eca.plugins.module_utils._specs import staged_credential_spec


def main():
    module = AnsibleModule(**staged_credential_spec())
    execute(module, run_staged_credential)


if __name__ == '__main__':
    main()
