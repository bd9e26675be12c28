#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_rotation
short_description: Rotate the External Client App credentials of many orgs, or of one, in one task
version_added: 0.2.0
description:
  - The engine of the C(sfdc.eca.rotation) role. For each org (one inventory host per org) it authenticates once, reads
    the apps and consumers, plans each consumer (C(rotate), C(resume), C(revoke), C(finish), C(skip), C(blocked)), stages
    a new pair, verifies it with the token endpoint, delivers it (ansible-vault file or plain file on the controller,
    HashiCorp Vault or OpenBao KV v2, AWS Secrets Manager) and reads it back, promotes it, records the promotion in the
    org's history file, and optionally revokes the previous
    pair and proves it is refused. Orgs run side by side in a pool of O(workers) threads.
  - Each org's options are this task's options; an option the task leaves unset takes the org's variable
    C(sfdc_eca_<option>) (for example C(sfdc_eca_connection), C(sfdc_eca_rotations)) as a task on that org's host would see
    it, else its default. An org whose options are invalid gets a failed row naming the variable and is not contacted;
    the other orgs go on.
  - A consumer that delivers through a tasks file (C(deliver.tasks_file)) or has a verification hook (O(verify_tasks_file))
    needs Ansible tasks, so its org stops before promoting; the result lists it in RV(tasks_file_orgs) and gives the tasks
    files to run in RV(handoff). Call the module again with O(handoff) (the first call's registered result) to finish.
    The role does all this; see C(roles/rotation/tasks/fleet.yml).
  - A staged pair is deleted only when this run staged it, no delivery target may have received it, and the failure is
    definitive (the token endpoint refused the pair). Timeouts, resets, 429 and 5xx never lead to a deletion; a pair that
    may have reached a target is kept unpromoted and the next run resumes it.
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
    description: The report rows in RV(orgs) say what changed.
extends_documentation_fragment:
  - sfdc.eca.history_store
options:
  orgs:
    description:
      - Rotate these orgs (inventory host names, such as C(ansible_play_batch)) in this one task. Run the task with
        C(run_once=true). An org listed twice is rotated once.
      - Without O(orgs), the task rotates the org of the host it runs on.
    type: list
    elements: str
  org:
    description:
      - Without O(orgs), the org's name in records and the history (default the inventory host name); its variables are the
        host's.
    type: str
  workers:
    description: How many orgs are rotated at the same time. Defaults to the number of forks (C(-f)).
    type: int
  canary_gate:
    description:
      - Apply the canary gate of the role's playbooks. The first batch of the play is the canary; if one of its orgs failed,
        later orgs record C(not_run) and are not contacted. After it, O(max_fail_percentage) holds back the rest.
    type: bool
    default: true
  canary_run:
    description:
      - The fleet canary this job follows, when one fleet run is split over several jobs (AWX job slicing, see the
        collection's docs/awx.md). A run id - the job runs only if C(STATE_DIR/canary/run-ID.json) says the canary passed,
        and leaves out the canary's orgs (they have no rows in this job's report). Otherwise every org records
        C(not_run) without a call.
      - Empty - the job refuses to run (C(not_run)) while C(STATE_DIR/canary/latest.json), the latest fleet canary, says
        it failed. C(none) - no fleet canary is checked.
    type: str
    default: ''
  handoff:
    description:
      - The registered result of the first call, to finish its RV(tasks_file_orgs) after the role ran their tasks files.
        Each such org's variable C(_sfdc_eca_failed_steps) names the failed steps; an org whose host has left the play's
        batch (C(ansible_play_batch)) did not finish its tasks files, and its consumers fail with their pairs kept.
    type: dict
  failed_task:
    description: Record an unexpected failure of the role's tasks, naming this task; every unfinished consumer fails.
    type: str
  connection:
    description:
      - How to reach and authenticate to the org, with the options of the sfdc.eca modules
        (O(sfdc.eca.eca_token#module:instance_url), O(sfdc.eca.eca_token#module:client_id), ...). C(SALESFORCE_*)
        environment variables fill what is not given, as for the modules. Default C(sfdc_eca_connection), else V({}).
    type: dict
  rotations:
    description:
      - What to rotate in the org, one entry per app; without O(rotations[].consumer_name) or
        O(rotations[].consumer_id) every consumer of the app. Default C(sfdc_eca_rotations), else V([]).
    type: list
    elements: dict
    suboptions:
      app_name:
        description: Developer name of the External Client App (case-sensitive).
        type: str
        required: true
      app_id:
        description:
          - The app's id (C(0x...)). When every entry has one, the apps are not listed. Needed for an app that the org's
            listing omits (the listing shows only apps with OAuth usage data).
        type: str
      consumer_name:
        description: Rotate only this consumer of the app.
        type: str
      consumer_id:
        description: Rotate only the consumer with this id (for consumers that share a name).
        type: str
      deliver:
        description:
          - Where the new key and secret go before they are promoted. Exactly one of O(rotations[].deliver.vault_file),
            O(rotations[].deliver.file), O(rotations[].deliver.hashi_vault), O(rotations[].deliver.aws_secretsmanager) and
            O(rotations[].deliver.tasks_file).
          - Paths may contain C({org}), C({app_name}) and C({consumer_name}); a name from the org that contains C(/), C(\),
            C(..) or a control character is refused, and a resolved path must stay in the directory before the first
            placeholder. Two consumers of one run cannot share a target.
          - Each delivery receives C({instance_url, org, app_name, app_id, consumer_name, consumer_id, key, secret}).
        type: dict
        required: true
        suboptions:
          tasks_file:
            description:
              - A tasks file on the controller, run by the role once per consumer with C(sfdc_eca_credential).
            type: path
          vault_file:
            description:
              - An ansible-vault encrypted YAML file on the controller (mode 0600, written atomically and synced to disk,
                read back before promoting).
            type: path
          vault_password_file:
            description:
              - The vault password file, read as C(ansible-vault) reads it (an executable is run; a vault-id client script
                gets C(--vault-id)). Default O(vault_password_file).
            type: path
          vault_id:
            description: Vault id label of the file. Default O(vault_id).
            type: str
          file:
            description: A plain-text file on the controller for a local integration (mode 0600, atomic, synced, read back).
            type: dict
            suboptions:
              path:
                description: The file's path template.
                type: path
                required: true
              format:
                description:
                  - C(env) writes C(PREFIX_KEY=value) lines, C(json) and C(yaml) the credential as a mapping.
                type: str
                choices: [env, json, yaml]
                default: env
              prefix:
                description: With C(env), the prefix of the variable names.
                type: str
                default: SALESFORCE_
          hashi_vault:
            type: dict
            description:
              - A HashiCorp Vault or OpenBao KV version 2 secret - a new version holding the credential, read back before
                promoting (docs/delivery.md).
            suboptions:
              url:
                type: str
                description: "Vault or OpenBao address; C(http://) only when named here (a local test server). Environment C(VAULT_ADDR)."
              mount:
                type: str
                default: "secret"
                description: "Mount point of a KV version 2 secrets engine."
              path:
                type: str
                default: "salesforce/{org}/{app_name}/{consumer_name}"
                description: "Secret path under the mount (template)."
              auth:
                type: str
                choices: [token, approle]
                default: "token"
                description: "How to log in."
              token:
                type: str
                description: "Token for C(auth=token). Environment C(VAULT_TOKEN)."
              role_id:
                type: str
                description: "AppRole role id for C(auth=approle). Environment C(VAULT_ROLE_ID)."
              secret_id:
                type: str
                description: "AppRole secret id. Environment C(VAULT_SECRET_ID)."
              auth_mount:
                type: str
                default: "approle"
                description: "Where the AppRole auth method is mounted."
              namespace:
                type: str
                description: "Vault Enterprise or OpenBao namespace. Environment C(VAULT_NAMESPACE)."
              ca_path:
                type: path
                description: "PEM file of the CA that signed the server certificate. Environment C(VAULT_CACERT)."
              validate_certs:
                type: bool
                default: true
                description: "C(false) skips certificate checks (not for production)."
              timeout:
                type: int
                default: 30
                description: "Seconds per request."
          aws_secretsmanager:
            type: dict
            description:
              - An AWS Secrets Manager secret (the credential as JSON) - created when absent, else a new version; read back
                before promoting (docs/delivery.md).
            suboptions:
              secret_id:
                type: str
                default: "salesforce/{org}/{app_name}/{consumer_name}"
                description: "Secret name (template), or the ARN of an existing secret."
              region:
                type: str
                description: "AWS region; else the profile's. Environment C(AWS_REGION)/C(AWS_DEFAULT_REGION)."
              endpoint_url:
                type: str
                description: "Another endpoint (a VPC endpoint, a local emulator). Environment C(AWS_ENDPOINT_URL_SECRETS_MANAGER)/C(AWS_ENDPOINT_URL)."
              kms_key_id:
                type: str
                description: "KMS key of the secret, used when it is created and for every new version."
              profile:
                type: str
                description: "Profile of the shared config and credentials files. Environment C(AWS_PROFILE)/C(AWS_DEFAULT_PROFILE)."
              access_key:
                type: str
                description: "AWS access key id (else boto3's credential chain). Environment C(AWS_ACCESS_KEY_ID)/C(AWS_ACCESS_KEY)."
              secret_key:
                type: str
                description: "AWS secret access key. Environment C(AWS_SECRET_ACCESS_KEY)/C(AWS_SECRET_KEY)."
              session_token:
                type: str
                description: "AWS session token. Environment C(AWS_SESSION_TOKEN)/C(AWS_SECURITY_TOKEN)."
              ca_path:
                type: path
                description: "PEM CA bundle for the endpoint. Environment C(AWS_CA_BUNDLE)."
              validate_certs:
                type: bool
                default: true
                description: "C(false) skips certificate checks (not for production)."
              timeout:
                type: int
                default: 30
                description: "Seconds per request."
      verify:
        description: How to prove this app's new pair works. Default O(verify).
        type: str
        choices: [client_credentials, jwt, none]
      verify_jwt:
        description: JWT bearer verification settings of this app (over O(verify_jwt)).
        type: dict
        suboptions:
          username:
            description: The Salesforce user of the JWT (C(sub)).
            type: str
          private_key_file:
            description: PEM private key whose certificate is registered on the consumer.
            type: path
          private_key:
            description: The PEM private key itself.
            type: str
          private_key_passphrase:
            description: Passphrase of an encrypted private key.
            type: str
          audience:
            description: JWT C(aud).
            type: str
      verify_tasks_file:
        description: This app's verification hook (see O(verify_tasks_file)).
        type: path
      replace_rotated:
        description: This app's O(replace_rotated).
        type: bool
      revoke_previous:
        description: This app's O(revoke_previous).
        type: bool
  verify:
    description:
      - How a new pair is proven before it is delivered. C(client_credentials) gets a token with the new key and secret,
        C(jwt) with the JWT bearer flow and the new consumer key, C(none) skips it. Only an C(invalid_client) or
        C(invalid_grant) answer counts as a refusal. Default C(sfdc_eca_verify), else V(client_credentials).
    type: str
    choices: [client_credentials, jwt, none]
  verify_jwt:
    description: Default JWT verification settings. Default C(sfdc_eca_verify_jwt), else V({}).
    type: dict
    suboptions:
      username:
        description: The Salesforce user of the JWT (C(sub)).
        type: str
      private_key_file:
        description: PEM private key whose certificate is registered on the consumer.
        type: path
      private_key:
        description: The PEM private key itself, instead of O(verify_jwt.private_key_file).
        type: str
      private_key_passphrase:
        description: Passphrase of an encrypted private key.
        type: str
      audience:
        description: JWT C(aud); default the connection's C(audience).
        type: str
  verify_tasks_file:
    description:
      - A tasks file run after the delivery with C(sfdc_eca_credential); when it fails, the consumer fails and its pair is
        kept unpromoted for the next run. Default C(sfdc_eca_verify_tasks_file), else none.
    type: path
  verify_retries:
    description: Extra attempts of a verification (a new pair can take a moment to work everywhere). Default C(sfdc_eca_verify_retries), else V(3).
    type: int
  verify_delay:
    description: Seconds between verification attempts. Default C(sfdc_eca_verify_delay), else V(5).
    type: float
  replace_rotated:
    description:
      - Rotate a consumer whose previous pair is still in its grace (C(Rotated)), revoking that pair. Default
        C(sfdc_eca_replace_rotated), else V(false).
    type: bool
  revoke_previous:
    description:
      - After promoting, delete the previous pair now and prove it is refused. Also finishes the revoke of a consumer whose
        main key this tool promoted when the run that promoted it stopped before revoking (plan C(revoke)). Default
        C(sfdc_eca_revoke_previous), else V(false).
    type: bool
  min_age_days:
    description: Skip a consumer this tool rotated less than this many days ago. Default C(sfdc_eca_min_age_days), else V(7).
    type: float
  vault_password_file:
    description: Default vault password file of C(deliver.vault_file) targets. Default C(sfdc_eca_vault_password_file).
    type: path
  vault_id:
    description: Default vault id of C(deliver.vault_file) targets. Default C(sfdc_eca_vault_id).
    type: str
  state_dir:
    description:
      - Directory of the rotation history (C(history.json), C(history.d/ORG.json)) on the controller. Default
        C(sfdc_eca_state_dir), else the current directory.
    type: path
  max_fail_percentage:
    description:
      - After the canary batch, hold back the remaining orgs once more than this percentage failed. The first org of the
        task gives it. Default C(sfdc_eca_max_fail_percentage), else V(100).
    type: float
notes:
  - API calls per org for a plain rotation of one consumer (client credentials verification, no revoke) - one token, one
    apps listing (none when every entry has C(app_id)), one consumers read per app, then per consumer its staged slot, the
    POST, the verification token and the PATCH.
  - The result never carries a secret, except RV(handoff); a result with RV(handoff) is displayed as if the task had
    C(no_log=true).
seealso:
  - module: sfdc.eca.eca_staged_credential
  - module: sfdc.eca.eca_fleet_report
  - name: Rotation role and its options
    description: docs/rotation.md in the collection.
    link: https://github.com/sfdc-eca/sfdc.eca/blob/main/docs/rotation.md
'''

EXAMPLES = r'''
- name: Rotate the Billing_Sync credentials of this host's org into a vault file
  sfdc.eca.eca_rotation:
    org: prod-eu
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

# One task for every org of the play's current batch; each org (host) sets sfdc_eca_connection and sfdc_eca_rotations.
- name: Rotate the batch's orgs on the controller, 20 at a time
  sfdc.eca.eca_rotation:
    orgs: "{{ ansible_play_batch }}"
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
orgs:
  description:
    - Each org's result by org name - C(records) (one report row per consumer, never a secret), C(org_failed),
      C(canary), C(plan) (one line per consumer) and C(api_calls).
  returned: always
  type: dict
  sample:
    prod-eu:
      records:
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
      org_failed: false
      canary: false
      plan: ["Billing_Sync/Billing: rotate (nothing staged: stage a new pair)"]
      api_calls: 7
records:
  description: Without O(orgs), the org's rows (as in RV(orgs)).
  returned: without O(orgs)
  type: list
  elements: dict
org_failed:
  description: Without O(orgs), whether a consumer of the org failed.
  returned: without O(orgs)
  type: bool
plan:
  description: Without O(orgs), the org's plan, one line per consumer.
  returned: without O(orgs)
  type: list
  elements: str
api_calls:
  description: API requests made to the orgs by this task.
  returned: always
  type: int
  sample: 7
tasks_file_orgs:
  description: The orgs that wait for the user's tasks files before they can finish.
  returned: always
  type: list
  elements: str
  sample: [prod-us]
handoff:
  description:
    - Per org in RV(tasks_file_orgs), the state to finish with and C(steps), the tasks files to run in order, each
      C({id, consumer, kind (deliver or hook), file, after, credential}). Holds secrets.
  returned: when a tasks-file delivery or a verification hook must run before promoting
  type: dict
  sample: {}
'''
