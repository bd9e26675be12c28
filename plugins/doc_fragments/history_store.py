# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # The option of the rotation and audit actions that keeps the rotation history in a secret store.
    DOCUMENTATION = r'''
options:
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
'''
