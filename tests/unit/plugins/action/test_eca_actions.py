"""The four action plugins, in-process, against the simulator over real HTTPS.

Each test builds the real ActionModule around a local connection and runs it; the result is
what the task would register (before Ansible's own post-processing).
"""

import os
from unittest import mock

import pytest

from ansible.playbook.play_context import PlayContext

from ansible_collections.sfdc.eca.plugins.action import (
    eca_credential_info,
    eca_staged_credential,
    eca_token,
    eca_usage_info,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils import _compat
from core_testing import INVOCATION

MASK = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def run_action(plugin, args, check_mode=False, diff=False, environment=None, action=None):
    task = mock.MagicMock()
    task.args = dict(args)
    task.action = action or 'sfdc.eca.' + plugin.__name__.rsplit('.', 1)[1]
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = diff
    task.environment = environment or []
    connection = mock.MagicMock()
    connection.transport = 'local'
    connection._load_name = 'ansible.builtin.local'
    connection._shell.tmpdir = None
    templar = mock.MagicMock()
    templar.template = lambda value, **kw: value
    act = plugin.ActionModule(task, connection, PlayContext(), loader=mock.MagicMock(), templar=templar,
                              shared_loader_obj=mock.MagicMock())
    act._execute_module = mock.MagicMock(side_effect=AssertionError('the module path must not be used here'))
    return act.run(task_vars=dict(INVOCATION))


@pytest.fixture(autouse=True)
def _no_escape_hatch(monkeypatch):
    monkeypatch.delenv('SFDC_ECA_IN_PROCESS', raising=False)
    for name in list(os.environ):
        if name.startswith('SALESFORCE_'):
            monkeypatch.delenv(name)


def conn(sim, org='org01'):
    o = sim.orgs[org]
    return {'instance_url': o.instance_url, 'client_id': o.admin['client_id'],
            'client_secret': o.admin['client_secret'], 'ca_path': sim.ca_path, 'max_retries': 0}


def test_token_returns_a_token_the_org_accepts(sim):
    result = run_action(eca_token, conn(sim))
    assert result.get('failed') is not True, result
    assert result['changed'] is False and result['auth_flow'] == 'client_credentials'
    assert result['access_token'] in sim.secrets()
    assert result['invocation']['module_args']['client_secret'] == MASK
    assert sim.counts('org01') == {'POST token': 1}


def test_token_refused_is_a_failure_without_the_secret(sim):
    args = dict(conn(sim), client_secret='not-the-secret-at-all')
    result = run_action(eca_token, args)
    assert result['failed'] is True and result['error_type'] == 'EcaAuthError'
    assert 'not-the-secret-at-all' not in repr(result)


def test_usage_info_lists_apps_and_warns_about_missing_names(sim):
    with mock.patch.object(_compat, 'warn') as warn:
        result = run_action(eca_usage_info, dict(conn(sim), name=['Billing_Sync', 'Nope_App']))
    assert [a['developer_name'] for a in result['apps']] == ['Billing_Sync']
    assert result['api_calls'] == 2  # token + one usage page
    if _compat.CORE_VERSION >= (2, 19):
        # a warn() on the controller is captured into the task result, as AnsibleModule.warn's would be
        assert 'warnings' not in result
        assert len(warn.call_args_list) == 1 and 'Nope_App' in warn.call_args_list[0][0][0]
    else:
        # the module's result carries its warnings, which the callbacks show
        assert not warn.called
        assert len(result['warnings']) == 1 and 'Nope_App' in result['warnings'][0]


def test_credential_info_matches_the_org(sim):
    result = run_action(eca_credential_info, dict(conn(sim), app_name='Data_Loader'))
    names = sorted(c['name'] for c in result['consumers'])
    assert names == ['Primary', 'Secondary']
    for c in result['consumers']:
        assert c['key'] == sim.org('org01').app('Data_Loader').consumer(c['name']).main['key']
        assert c['staged_credential'] is None and 'secret' not in c


def test_staged_credential_check_mode_writes_nothing(sim):
    result = run_action(eca_staged_credential, dict(conn(sim), app_name='Billing_Sync'), check_mode=True, diff=True)
    assert result['changed'] is True and result['action'] == 'staged'
    assert result['diff']['before']['state'] == 'absent'
    assert sim.write_count('org01') == 0
    assert sim.org('org01').app('Billing_Sync').consumer('Billing').staged is None


def test_staged_credential_stage_then_rotate(sim):
    cons = sim.org('org01').app('Billing_Sync').consumer('Billing')
    old_key = cons.main['key']
    staged = run_action(eca_staged_credential, dict(conn(sim), app_name='Billing_Sync'))
    assert staged['changed'] is True and staged['action'] == 'staged'
    assert staged['staged_credential']['secret'] == cons.staged['secret']  # this run staged it: returned
    assert sim.authenticates('org01', staged['staged_credential']['key'], staged['staged_credential']['secret'])

    again = run_action(eca_staged_credential, dict(conn(sim), app_name='Billing_Sync'))
    assert again['changed'] is False and 'secret' not in (again['staged_credential'] or {})

    rotated = run_action(eca_staged_credential, dict(conn(sim), app_name='Billing_Sync', state='rotated'))
    assert rotated['changed'] is True and rotated['action'] == 'rotated'
    assert cons.main['key'] == staged['staged_credential']['key'] != old_key
    assert cons.staged['state'] == 'Rotated'


def test_failure_is_the_modules_failure_shape(sim):
    result = run_action(eca_staged_credential, dict(conn(sim), app_name='No_Such_App'))
    assert result['failed'] is True and result['error_type'] == 'EcaInputError'
    assert "No_Such_App" in result['msg'] and 'Billing_Sync' in result['msg']
    assert result['api_calls'] == 2
    assert result['invocation']['module_args']['app_name'] == 'No_Such_App'
    assert sim.write_count('org01') == 0


def test_environment_supplies_connection_options(sim):
    o = sim.orgs['org02']
    env = [{'SALESFORCE_INSTANCE_URL': o.instance_url, 'SALESFORCE_CLIENT_ID': o.admin['client_id'],
            'SALESFORCE_CLIENT_SECRET': o.admin['client_secret'], 'SALESFORCE_CA_PATH': sim.ca_path}]
    result = run_action(eca_usage_info, {}, environment=env)
    assert result.get('failed') is not True, result
    assert sim.counts('org02') == {'POST token': 1, 'GET usage': 1}
    assert result['invocation']['module_args']['client_secret'] == MASK
    assert 'SALESFORCE_CLIENT_SECRET' not in os.environ
