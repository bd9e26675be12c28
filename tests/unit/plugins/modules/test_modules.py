"""The thin modules end to end in-process: AnsibleModule validation, env fallbacks, fail_json shape, no_log."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.sfdc.eca.plugins.modules import (
    eca_credential_info,
    eca_staged_credential,
    eca_token,
    eca_usage_info,
)
from core_testing import patch_module_args


def run_module(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def conn(esim):
    admin = esim.orgs['org01'].admin
    return {'instance_url': esim.orgs['org01'].instance_url, 'ca_path': esim.ca_path,
            'client_id': admin['client_id'], 'client_secret': admin['client_secret']}


def test_staged_credential_module_stages_masks_inputs_and_returns_the_new_secret(esim, conn, capsys):
    result = run_module(eca_staged_credential, dict(conn, app_name='Billing_Sync', _ansible_diff=True), capsys)
    truth = esim.orgs['org01'].app('Billing_Sync').consumer().staged
    assert result['changed'] is True and result['action'] == 'staged'
    assert result['staged_credential']['secret'] == truth['secret']
    assert result['invocation']['module_args']['client_secret'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert conn['client_secret'] not in json.dumps(result)
    assert truth['secret'] not in json.dumps(result['diff'])
    assert result['api_calls'] == 5


def test_check_mode_through_the_module(esim, conn, capsys):
    result = run_module(eca_staged_credential, dict(conn, app_name='Billing_Sync', _ansible_check_mode=True), capsys)
    assert result['changed'] is True and esim.write_count('org01') == 0


def test_env_fallbacks_supply_every_common_option(esim, conn, capsys, monkeypatch):
    for name, value in conn.items():
        monkeypatch.setenv('SALESFORCE_' + name.upper(), value)
    monkeypatch.setenv('SALESFORCE_MAX_RETRIES', '0')
    result = run_module(eca_usage_info, {'name': ['Billing_Sync']}, capsys)
    assert [a['developer_name'] for a in result['apps']] == ['Billing_Sync']
    assert result['invocation']['module_args']['max_retries'] == 0


def test_task_value_wins_over_the_environment(esim, conn, capsys, monkeypatch):
    monkeypatch.setenv('SALESFORCE_INSTANCE_URL', 'https://127.0.0.1:9')
    result = run_module(eca_usage_info, conn, capsys)
    assert 'failed' not in result and result['apps']


def test_failure_is_one_fail_json_with_fields(esim, conn, capsys):
    result = run_module(eca_staged_credential, dict(conn, app_name='Nope_App'), capsys)
    assert result['failed'] is True and result['error_type'] == 'EcaInputError'
    assert "'Nope_App'" in result['msg'] and 'Billing_Sync' in result['msg']
    assert result['api_calls'] == 2


def test_auth_failure_fields(esim, conn, capsys):
    result = run_module(eca_token, dict(conn, client_secret='wrong-secret-123456'), capsys)
    assert result['failed'] and result['error'] == 'invalid_client' and result['auth_flow'] == 'client_credentials'
    assert 'wrong-secret-123456' not in json.dumps(result)


def test_mutually_exclusive_and_required_options(esim, conn, capsys):
    result = run_module(eca_credential_info, dict(conn, app_name='A', app_id='0xI5g0000000000AAA'), capsys)
    assert result['failed'] and 'mutually exclusive' in result['msg']
    result = run_module(eca_credential_info, conn, capsys)
    assert result['failed'] and 'one of the following is required: app_name, app_id' in result['msg']


def test_no_credentials_error(esim, conn, capsys):
    result = run_module(eca_usage_info, {'instance_url': conn['instance_url']}, capsys)
    assert result['failed'] and 'No credentials given' in result['msg']


def test_http_instance_url_refused_without_allow_http(esim, conn, capsys):
    result = run_module(eca_usage_info, dict(conn, instance_url='http://127.0.0.1:9'), capsys)
    assert result['failed'] and 'allow_http' in result['msg']


def test_token_module(esim, conn, capsys):
    result = run_module(eca_token, conn, capsys)
    assert result['changed'] is False and result['access_token'] and result['auth_flow'] == 'client_credentials'
