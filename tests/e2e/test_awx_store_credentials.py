"""The AWX credential types for secret-store delivery, checked the way AWX checks and injects them
(the AWX stand-in of test_awx_injectors.py), then used: the injected environment alone lets
deliver.hashi_vault / deliver.aws_secretsmanager (plugins/plugin_utils/_stores.py) write to a real
OpenBao / moto server on 127.0.0.1, and the job record AWX keeps shows none of their secrets.

AWX's managed "Amazon Web Services" credential type is modelled on its injector
(awx/main/models/credential/injectors.py: ``aws``), which is code, not a type definition.
"""

import json
import os
import stat
import sys
import uuid
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_awx_injectors import (  # noqa: E402
    AwxValidationError, build_safe_env, inject_credential, load_credential_type, secret_fields,
    validate_credential_inputs, validate_credential_type)

from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import (  # noqa: E402
    AWS_SECRETSMANAGER_OPTIONS, ENV_FALLBACKS, HASHI_VAULT_OPTIONS, StoreConfigError, open_store)
from ansible_collections.sfdc.eca.tests.stores.fixtures import (  # noqa: E402,F401  pylint: disable=unused-import
    _moto_session, _openbao_session, moto, openbao, unique)

ROOT = Path(__file__).resolve().parents[2]
APPROLE_TYPE = ROOT / "awx" / "credential_type_hashi_vault_approle.yml"
TOKEN_TYPE = ROOT / "awx" / "credential_type_hashi_vault_env.yml"


def inject(ctype, inputs, private_data_dir):
    validate_credential_inputs(ctype, inputs)
    env, safe_env = {}, {}
    inject_credential(ctype, inputs, env, safe_env, private_data_dir)
    return env, safe_env


def params(spec, options):
    return ArgumentSpecValidator(spec).validate(options).validated_parameters


def pair():
    return {"instance_url": "https://org01.my.salesforce.com", "org": "org01", "app_name": "Billing_Sync",
            "app_id": "0xA01", "consumer_name": "Billing", "consumer_id": "88801",
            "key": "3MVG9" + uuid.uuid4().hex, "secret": "SEC" + uuid.uuid4().hex}


def test_awx_accepts_both_vault_types_and_their_variables_are_the_store_fallbacks():
    fallbacks = {var for names in ENV_FALLBACKS["hashi_vault"].values() for var in names}
    for path in (APPROLE_TYPE, TOKEN_TYPE):
        ctype = load_credential_type(path)
        validate_credential_type(ctype)
        assert set(ctype["injectors"]["env"]) <= fallbacks, path.name
    approle = load_credential_type(APPROLE_TYPE)
    assert secret_fields(approle) == ["secret_id"]
    assert approle["inputs"]["required"] == ["url", "role_id", "secret_id"]
    with pytest.raises(AwxValidationError, match="secret_id required"):
        validate_credential_inputs(approle, {"url": "https://v:8200", "role_id": "r"})


@pytest.mark.parametrize("path", [APPROLE_TYPE, TOKEN_TYPE], ids=["approle", "token"])
def test_a_blank_namespace_is_injected_as_blank(path, tmp_path):
    """AWX leaves blank fields out of the template context: a field named like one of Jinja's globals
    (namespace, range, dict, lipsum, cycler, joiner) would inject that global's text instead."""
    ctype = load_credential_type(path)
    inputs = {"url": "https://vault.example:8200", "token": "hvs.x", "role_id": "r", "secret_id": "s"}
    inputs = {k: v for k, v in inputs.items() if k in {f["id"] for f in ctype["inputs"]["fields"]}}
    env = inject(ctype, inputs, tmp_path)[0]
    assert env["VAULT_NAMESPACE"] == "" and env["VAULT_CACERT"] == ""
    jinja_globals = {"namespace", "range", "dict", "lipsum", "cycler", "joiner"}
    assert not jinja_globals & {f["id"] for f in ctype["inputs"]["fields"]}
    env = inject(ctype, dict(inputs, vault_namespace="team1"), tmp_path)[0]
    assert env["VAULT_NAMESPACE"] == "team1"


def test_approle_credential_delivers_over_tls_with_its_ca_file(openbao, unique, tmp_path):
    openbao.policy("deliver-" + unique, 'path "secret/data/%s/*" { capabilities = ["create", "update", "read"] }'
                   % unique)
    role_id, secret_id = openbao.approle("awx-" + unique, ["deliver-" + unique])
    with open(openbao.ca_path) as f:
        ca_pem = f.read()
    ctype = load_credential_type(APPROLE_TYPE)
    env, safe_env = inject(ctype, {"url": openbao.tls_url, "role_id": role_id, "secret_id": secret_id,
                                   "ca_cert": ca_pem}, tmp_path)
    ca_file = Path(env["VAULT_CACERT"])
    assert ca_file.parent == tmp_path / "env" and ca_file.read_text() == ca_pem
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600
    assert env["VAULT_NAMESPACE"] == ""  # blank field: injected as "", read as unset

    # Inventory: deliver.hashi_vault with auth approle, nothing else; the rest comes from the credential.
    store = open_store("hashi_vault", params(HASHI_VAULT_OPTIONS, {"auth": "approle", "path": unique + "/{org}"}),
                       env, {})
    store.check()
    target = store.target(store.path_template.format(org="org01"))
    data = pair()
    target.write(data)
    assert target.read_back() == data["key"]
    assert openbao.kv_get(unique + "/org01")["data"] == data

    stored = repr(build_safe_env(env)) + repr(safe_env)
    assert secret_id not in stored and "VAULT_ROLE_ID" in stored


def test_approle_credential_without_auth_approle_in_the_inventory_says_so(openbao, tmp_path):
    role_id, secret_id = openbao.approle("awx-hint", ["default"])
    env = inject(load_credential_type(APPROLE_TYPE), {"url": openbao.url, "role_id": role_id,
                                                      "secret_id": secret_id}, tmp_path)[0]
    with pytest.raises(StoreConfigError, match="set auth: approle"):
        open_store("hashi_vault", params(HASHI_VAULT_OPTIONS, {}), env, {})


def test_token_credential_delivers(openbao, unique, tmp_path):
    openbao.policy("deliver-" + unique, 'path "secret/data/%s/*" { capabilities = ["create", "update", "read"] }'
                   % unique)
    token = openbao.token(["deliver-" + unique])
    env, safe_env = inject(load_credential_type(TOKEN_TYPE), {"url": openbao.url, "token": token}, tmp_path)
    assert env["VAULT_CACERT"] == ""
    store = open_store("hashi_vault", params(HASHI_VAULT_OPTIONS, {}), env, {})
    store.check()
    data = pair()
    target = store.target("%s/org01/Billing_Sync/Billing" % unique)
    target.write(data)
    assert target.read_back() == data["key"]
    assert token not in repr(build_safe_env(env)) + repr(safe_env)


# awx/main/models/credential/injectors.py (AWX 21-24): the managed "Amazon Web Services" type.
def awx_aws_injector(inputs, env):
    env["AWS_ACCESS_KEY_ID"] = inputs.get("username", "")
    env["AWS_SECRET_ACCESS_KEY"] = inputs.get("password", "")
    if inputs.get("security_token"):
        env["AWS_SECURITY_TOKEN"] = inputs["security_token"]
        env["AWS_SESSION_TOKEN"] = inputs["security_token"]


def test_awx_aws_credential_delivers_to_secrets_manager(moto, monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = {}
    awx_aws_injector({"username": moto.access_key, "password": moto.secret_key,
                      "security_token": "session-" + uuid.uuid4().hex}, env)
    fallbacks = {var for names in ENV_FALLBACKS["aws_secretsmanager"].values() for var in names}
    assert set(env) <= fallbacks
    # Region and endpoint come from the inventory (or the job template's extra environment).
    options = params(AWS_SECRETSMANAGER_OPTIONS, {"region": moto.region, "endpoint_url": moto.url})
    store = open_store("aws_secretsmanager", options, env, {})
    store.check()
    data = pair()
    target = store.target("salesforce/org01/Billing_Sync/Billing")
    target.write(data)
    assert target.read_back() == data["key"]
    assert json.loads(moto.secret("salesforce/org01/Billing_Sync/Billing")["SecretString"]) == data
    stored = repr(build_safe_env(env))
    assert moto.secret_key not in stored and env["AWS_SESSION_TOKEN"] not in stored
