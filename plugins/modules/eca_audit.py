#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: eca_audit
short_description: Read-only audit of the External Client App credentials of many orgs, or of one, in one task
version_added: 0.3.0
description:
  - For each org (one inventory host per org) lists the apps, each consumer's main key suffix and staged slot, and compares
    them with the rotation history. Nothing is written to any org or file.
  - Findings per row - C(staged_waiting), C(staged_expiring) (an C(Active) pair expiring within O(expiry_warning_days)),
    C(staged_expired), C(previous_in_grace), C(never_rotated_by_tool), C(rotated_outside_tool); outcome C(attention) for
    the serious ones.
  - Each org's options are this task's options; an option left unset takes the org's variable C(sfdc_eca_<option>), else
    its default (as for M(sfdc.eca.eca_rotation)).
  - This module has no standalone implementation; it is an action plugin. It always runs on the controller.
author:
  - sfdc.eca maintainers (@sfdc-eca)
attributes:
  check_mode:
    support: full
    description: It only reads.
  diff_mode:
    support: none
    description: It changes nothing.
options:
  orgs:
    description: Audit these orgs (inventory host names, such as C(ansible_play_batch)). Run the task with C(run_once=true).
    type: list
    elements: str
  org:
    description: Without O(orgs), the org's name in the rows (default the inventory host name).
    type: str
  workers:
    description: How many orgs are read at the same time. Defaults to the number of forks (C(-f)).
    type: int
  connection:
    description: How to reach and authenticate to the org, as for M(sfdc.eca.eca_rotation). Default C(sfdc_eca_connection).
    type: dict
  audit_apps:
    description: Developer names of the apps to audit. Default C(sfdc_eca_audit_apps), else every app the org lists.
    type: list
    elements: str
  expiry_warning_days:
    description: An C(Active) staged pair expiring within this many days is C(staged_expiring). Default C(sfdc_eca_expiry_warning_days), else V(7).
    type: float
  state_dir:
    description: Directory of the rotation history (only read). Default C(sfdc_eca_state_dir), else the current directory.
    type: path
  history_store:
    description:
      - Keep the rotation history in a secret store as well, one document per org (an AWX job's files are thrown away
        after the job). Set one of O(history_store.hashi_vault) and O(history_store.aws_secretsmanager). Default
        C(sfdc_eca_history_store).
    type: dict
    suboptions:
      hashi_vault:
        type: dict
        description: The history in a HashiCorp Vault or OpenBao KV version 2 secret per org (same options as deliver.hashi_vault).
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
            default: "sfdc_eca/history/{org}"
            description: "Secret path under the mount, a template with {org}."
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
        description: The history in an AWS Secrets Manager secret per org (same options as deliver.aws_secretsmanager).
        suboptions:
          secret_id:
            type: str
            default: "sfdc_eca/history/{org}"
            description: "Secret name, a template with {org}."
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
seealso:
  - module: sfdc.eca.eca_rotation
  - module: sfdc.eca.eca_fleet_report
'''

EXAMPLES = r'''
- name: Audit every org of the batch in one task
  sfdc.eca.eca_audit:
    orgs: "{{ ansible_play_batch }}"
  run_once: true
  register: sfdc_eca_audit
  no_log: true
'''

RETURN = r'''
orgs:
  description: Each org's result by org name - C(records) (one row per consumer), C(org_failed), C(api_calls).
  returned: always
  type: dict
  sample:
    prod-eu:
      records:
        - {org: prod-eu, app_name: Billing_Sync, consumer_name: Billing, old_key: "...a1B2", state: Rotated,
           expiry: "2026-12-28T10:00:00.000+0000", findings: [previous_in_grace], outcome: ok}
      org_failed: false
      api_calls: 4
api_calls:
  description: API requests made to the orgs by this task.
  returned: always
  type: int
'''
