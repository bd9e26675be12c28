"""The in-process base of the sfdc.eca action plugins: path choice and AnsibleModule emulation.

These tests drive the real base class with the collection's real argument specs; the operation
is replaced by a recorder so that each test sees exactly what the operation was handed.
Behaviour against the simulator (both paths, same results) is in tests/e2e/test_inprocess_parity.py.
"""

import os
from unittest import mock

import pytest

from ansible.errors import AnsibleActionFail
from ansible.playbook.play_context import PlayContext

from ansible_collections.sfdc.eca.plugins.action import (
    eca_credential_info,
    eca_staged_credential,
    eca_token,
    eca_usage_info,
)
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaAuthError, EcaInputError
from ansible_collections.sfdc.eca.plugins.plugin_utils import _compat, _inprocess
from core_testing import INVOCATION

SECRET = 'sEcReT-value-0123456789'
BASE_ARGS = {'instance_url': 'https://127.0.0.1:9', 'client_id': '3MVGkey', 'client_secret': SECRET}


class Recorder:
    """Stands in for a run_* operation: records its call and returns a canned result."""

    def __init__(self, result=None, exc=None):
        self.calls = []
        self.result = result if result is not None else {'changed': False}
        self.exc = exc
        self.env_seen = None

    def __call__(self, client, params, check_mode=False, diff=False):
        self.calls.append({'client': client, 'params': dict(params), 'check_mode': check_mode, 'diff': diff})
        self.env_seen = dict(os.environ)
        if self.exc is not None:
            raise self.exc
        return dict(self.result)


def make_action(cls, args, transport='local', environment=None, check_mode=False, diff=False,
                async_val=0, become=False, action='sfdc.eca.eca_token', runner=None):
    task = mock.MagicMock()
    task.args = dict(args)
    task.action = action
    task.async_val = async_val
    task.check_mode = check_mode
    task.diff = diff
    task.environment = environment if environment is not None else []
    task.delegate_to = None
    connection = mock.MagicMock()
    connection.transport = transport
    connection._load_name = 'ansible.builtin.%s' % transport
    connection._shell.tmpdir = None
    connection._shell.env_prefix = lambda **kw: ' '.join('%s=%s' % kv for kv in kw.items())
    play_context = PlayContext()
    play_context.become = become
    templar = mock.MagicMock()
    templar.template = lambda value, **kw: value
    action_obj = cls.ActionModule(task, connection, play_context, loader=mock.MagicMock(),
                                  templar=templar, shared_loader_obj=mock.MagicMock())
    if runner is not None:
        action_obj.RUNNER = runner  # instance attribute: not bound, called as RUNNER(client, params, ...)
    return action_obj


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith('SALESFORCE_') or name == _inprocess.IN_PROCESS_ENV:
            monkeypatch.delenv(name)


def test_each_action_uses_its_modules_spec_and_operation():
    from ansible_collections.sfdc.eca.plugins.module_utils import _operations, _specs
    pairs = {eca_token: ('token_spec', 'run_token'), eca_usage_info: ('usage_info_spec', 'run_usage_info'),
             eca_credential_info: ('credential_info_spec', 'run_credential_info'),
             eca_staged_credential: ('staged_credential_spec', 'run_staged_credential')}
    for mod, (spec, runner) in pairs.items():
        assert mod.ActionModule.SPEC is getattr(_specs, spec)
        assert mod.ActionModule.RUNNER is getattr(_operations, runner)


# -- path choice ---------------------------------------------------------------

@pytest.mark.parametrize('transport, become, async_val, env, expect_module', [
    ('local', False, 0, {}, False),
    ('ssh', False, 0, {}, True),
    ('local', True, 0, {}, True),
    ('local', False, 30, {}, True),
    ('local', False, 0, {'SFDC_ECA_IN_PROCESS': 'false'}, True),
    ('local', False, 0, {'SFDC_ECA_IN_PROCESS': 'no'}, True),
    ('local', False, 0, {'SFDC_ECA_IN_PROCESS': 'true'}, False),
    ('local', False, 0, {'SFDC_ECA_IN_PROCESS': ''}, False),
])
def test_path_choice(monkeypatch, transport, become, async_val, env, expect_module):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    runner = Recorder({'changed': False, 'token_type': 'Bearer'})
    act = make_action(eca_token, BASE_ARGS, transport=transport, become=become, async_val=async_val, runner=runner)
    act._execute_module = mock.MagicMock(return_value={'changed': False, 'from': 'module'})
    act._remove_tmp_path = mock.MagicMock()
    result = act.run(task_vars=dict(INVOCATION))
    if expect_module:
        assert act._execute_module.called
        assert result['from'] == 'module'
        assert runner.calls == []
    else:
        assert not act._execute_module.called
        assert len(runner.calls) == 1
        assert result['token_type'] == 'Bearer'


def test_task_environment_can_force_module_path():
    runner = Recorder()
    act = make_action(eca_token, BASE_ARGS, environment=[{'SFDC_ECA_IN_PROCESS': False}], runner=runner)
    act._execute_module = mock.MagicMock(return_value={'changed': False})
    act._remove_tmp_path = mock.MagicMock()
    act.run(task_vars=dict(INVOCATION))
    assert act._execute_module.called and runner.calls == []


def test_a_core_without_the_internals_runs_the_module_with_a_vvv_note(monkeypatch):
    """On an ansible-core whose internals _compat does not know, the task runs as a module, never a traceback."""
    monkeypatch.setattr(_compat, 'IN_PROCESS_UNAVAILABLE', 'ansible-core 9.9.0 has neither JSON trip')
    runner = Recorder()
    act = make_action(eca_token, BASE_ARGS, runner=runner)
    act._execute_module = mock.MagicMock(return_value={'changed': False, 'from': 'module'})
    act._remove_tmp_path = mock.MagicMock()
    with mock.patch.object(act._display, 'vvv') as vvv:
        result = act.run(task_vars=dict(INVOCATION))
    assert result['from'] == 'module' and runner.calls == []
    assert vvv.call_args_list == [mock.call('sfdc.eca.eca_token: running as a module '
                                            '(ansible-core 9.9.0 has neither JSON trip)')]


def test_bad_escape_hatch_value_is_an_error(monkeypatch):
    monkeypatch.setenv('SFDC_ECA_IN_PROCESS', 'sometimes')
    act = make_action(eca_token, BASE_ARGS, runner=Recorder())
    with pytest.raises(AnsibleActionFail, match="SFDC_ECA_IN_PROCESS must be a boolean.*'sometimes'"):
        act.run(task_vars=dict(INVOCATION))


# -- AnsibleModule emulation ---------------------------------------------------

def test_defaults_types_and_flags_reach_the_operation():
    runner = Recorder({'changed': True})
    args = dict(BASE_ARGS, timeout='12', app_name='Billing_Sync', state='rotated')
    act = make_action(eca_staged_credential, args, check_mode=True, diff=True, runner=runner)
    act.run(task_vars=dict(INVOCATION))
    call = runner.calls[0]
    assert call['check_mode'] is True and call['diff'] is True
    params = call['params']
    assert params['timeout'] == 12.0 and isinstance(params['timeout'], float)
    assert params['api_version'] == '65.0'
    assert params['replace_rotated'] is False
    assert params['state'] == 'rotated'
    assert params['client_secret'] == SECRET  # the operation gets the real value
    assert call['client'].__class__.__name__ == 'EcaClient'


def test_missing_required_option_fails_like_the_module():
    runner = Recorder()
    act = make_action(eca_token, {'client_id': 'k', 'client_secret': SECRET}, runner=runner)
    result = act.run(task_vars=dict(INVOCATION))
    assert result['failed'] is True
    assert result['msg'] == 'missing required arguments: instance_url'
    assert runner.calls == []
    assert result['invocation']['module_args']['client_secret'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def test_unsupported_option_names_the_module():
    act = make_action(eca_usage_info, dict(BASE_ARGS, bogus=1), action='sfdc.eca.eca_usage_info', runner=Recorder())
    result = act.run(task_vars=dict(INVOCATION))
    assert result['failed'] is True
    assert result['msg'].startswith('Unsupported parameters for (sfdc.eca.eca_usage_info) module: bogus.')
    assert 'Supported parameters include:' in result['msg']


def test_mutually_exclusive_and_required_one_of():
    act = make_action(eca_credential_info, dict(BASE_ARGS, app_name='A', app_id='0xI'), runner=Recorder())
    assert act.run(task_vars=dict(INVOCATION))['msg'] == 'parameters are mutually exclusive: app_name|app_id'
    act = make_action(eca_credential_info, dict(BASE_ARGS), runner=Recorder())
    assert act.run(task_vars=dict(INVOCATION))['msg'] == 'one of the following is required: app_name, app_id'


def test_bad_choice_and_bad_type():
    act = make_action(eca_staged_credential, dict(BASE_ARGS, app_name='A', state='gone'), runner=Recorder())
    msg = act.run(task_vars=dict(INVOCATION))['msg']
    assert msg.startswith('value of state must be one of: present, rotated, absent, got: gone')
    act = make_action(eca_token, dict(BASE_ARGS, timeout='soon'), runner=Recorder())
    assert "timeout" in act.run(task_vars=dict(INVOCATION))['msg'] and 'float' in act.run(task_vars=dict(INVOCATION))['msg']


def test_env_fallback_from_task_environment_and_controller(monkeypatch):
    monkeypatch.setenv('SALESFORCE_CLIENT_ID', 'from-controller')
    monkeypatch.setenv('SALESFORCE_API_VERSION', '64.0')
    runner = Recorder()
    env = [{'SALESFORCE_INSTANCE_URL': 'https://127.0.0.1:9', 'SALESFORCE_CLIENT_SECRET': SECRET},
           {'SALESFORCE_API_VERSION': '65.0'}]  # later entries win, as for the module
    act = make_action(eca_token, {}, environment=env, runner=runner)
    result = act.run(task_vars=dict(INVOCATION))
    params = runner.calls[0]['params']
    assert params['instance_url'] == 'https://127.0.0.1:9'
    assert params['client_id'] == 'from-controller'
    assert params['client_secret'] == SECRET
    assert params['api_version'] == '65.0'
    # a secret from the environment is no_log too
    assert result['invocation']['module_args']['client_secret'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    # the task environment was visible while running and is gone afterwards
    assert runner.env_seen['SALESFORCE_CLIENT_SECRET'] == SECRET
    assert 'SALESFORCE_CLIENT_SECRET' not in os.environ
    assert os.environ['SALESFORCE_API_VERSION'] == '64.0'


def test_no_log_values_are_masked_everywhere_but_bools_survive():
    runner = Recorder({'changed': True, 'echo': 'prefix %s suffix' % SECRET, 'nested': [{'v': SECRET}],
                       'verify_only': False, 'nothing': None})
    act = make_action(eca_token, BASE_ARGS, runner=runner)
    result = act.run(task_vars=dict(INVOCATION))
    assert SECRET not in repr(result)
    assert result['nested'] == [{'v': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}]
    assert result['echo'] == 'prefix ******** suffix'
    assert result['changed'] is True and result['verify_only'] is False and result['nothing'] is None
    inv = result['invocation']['module_args']
    assert inv['client_id'] == '3MVGkey'
    assert inv['client_secret'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert inv['access_token'] is None and inv['verify_only'] is False
    # what _execute_module adds to a parsed module result, up to ansible-core 2.20
    assert result.get('_ansible_parsed') is (True if _compat.CORE_VERSION < (2, 21) else None)


def test_eca_error_becomes_the_module_failure():
    exc = EcaAuthError('the token endpoint refused client_credentials: invalid_client', error='invalid_client',
                       description='invalid client credentials', status=400, auth_flow='client_credentials')
    act = make_action(eca_token, BASE_ARGS, runner=Recorder(exc=exc))
    result = act.run(task_vars=dict(INVOCATION))
    assert result['failed'] is True
    assert result['msg'] == 'the token endpoint refused client_credentials: invalid_client'
    assert result['error'] == 'invalid_client' and result['status'] == 400
    assert result['error_type'] == 'EcaAuthError'
    assert 'invocation' in result


@pytest.mark.parametrize('task_vars,env', [({}, None), ({'ansible_inject_invocation': False}, None),
                                           ({}, 'false'), ({}, 'true'), ({'ansible_inject_invocation': True}, None)])
def test_invocation_is_returned_when_this_core_would_return_it(monkeypatch, task_vars, env):
    """ansible-core 2.21 returns a module's invocation only with INJECT_INVOCATION (off by default); earlier
    releases always do. The in-process result follows the setting as the module's does."""
    monkeypatch.delenv('ANSIBLE_INJECT_INVOCATION', raising=False)
    if env is not None:
        monkeypatch.setenv('ANSIBLE_INJECT_INVOCATION', env)
    result = make_action(eca_token, BASE_ARGS, runner=Recorder()).run(task_vars=task_vars)
    asked = task_vars.get('ansible_inject_invocation', env == 'true')
    expect = asked if _compat.CORE_VERSION >= (2, 21) else True
    assert ('invocation' in result) is expect, result
    if expect:
        assert result['invocation']['module_args']['client_secret'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert SECRET not in repr(result)


@pytest.mark.parametrize('verbosity', [0, 2, 3, 4])
def test_a_failure_carries_a_traceback_where_this_cores_module_would(verbosity):
    """Up to ansible-core 2.18, fail_json while handling an exception adds its traceback at -vvv."""
    exc = EcaAuthError('the token endpoint refused client_credentials: invalid_client', error='invalid_client',
                       description='invalid client credentials', status=400, auth_flow='client_credentials')
    act = make_action(eca_token, BASE_ARGS, runner=Recorder(exc=exc))
    with mock.patch.object(act._display, 'verbosity', verbosity):
        result = act.run(task_vars=dict(INVOCATION))
    assert result['failed'] is True and SECRET not in repr(result)
    if _compat.CORE_VERSION < (2, 19) and verbosity >= 3:
        assert 'in __call__' in result['exception'] and 'raise self.exc' in result['exception']
    else:
        assert 'exception' not in result


def test_bad_input_from_client_construction_fails_cleanly():
    act = make_action(eca_token, dict(BASE_ARGS, instance_url='ftp://example.invalid'), runner=Recorder())
    result = act.run(task_vars=dict(INVOCATION))
    assert result['failed'] is True
    assert 'ftp://example.invalid' in result['msg']
    assert result['error_type'] == EcaInputError.__name__


def test_results_are_plain_json_types():
    runner = Recorder({'changed': False, 'pair': ('a', 'b'), 'n': 3})
    result = make_action(eca_token, BASE_ARGS, runner=runner).run(task_vars=dict(INVOCATION))
    assert result['pair'] == ['a', 'b'] and isinstance(result['pair'], list)


def test_unexpected_exception_fails_the_task_with_masked_message():
    runner = Recorder(exc=ValueError('cannot parse %s' % SECRET))
    result = make_action(eca_token, BASE_ARGS, runner=runner).run(task_vars=dict(INVOCATION))
    assert result['failed'] is True
    assert result['msg'].startswith('MODULE FAILURE: sfdc.eca.eca_token raised ValueError: cannot parse ')
    assert SECRET not in repr(result)
    assert 'Traceback' in result['exception']


@pytest.mark.parametrize('result,expect', [
    ({'changed': True, 'staged_credential': {'key': '3MVG', 'secret': SECRET}}, True),
    ({'consumers': [{'staged_credential': {'secret': SECRET}}]}, True),
    ({'access_token': '00Dxx!tok'}, True),
    ({'changed': True, 'staged_credential': {'key': '3MVG', 'secret': None}}, False),
    ({'changed': False, 'staged_credential': {'key': '3MVG', 'secret': ''}}, False),
    ({'invocation': {'module_args': {'client_secret': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}}}, False),
    ({'changed': False, 'invocation': {'module_args': {'client_secret': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}},
      'staged_credential': {'secret': SECRET}}, True),
    ({'changed': False, 'apps': [{'label': 'secret'}]}, False),
])
def test_results_carrying_a_credential_are_censored_for_display(result, expect):
    """Finding F6: a result holding a secret the user did not ask to see is hidden like no_log."""
    assert _inprocess.carries_secret(result) is expect
    shown = _inprocess.hide_secret_results(dict(result))
    assert shown.get('_ansible_no_log', False) is expect


def test_in_process_run_marks_a_staging_result_no_log():
    runner = Recorder(result={'changed': True, 'staged_credential': {'key': '3MVGnew', 'secret': 'fresh-staged-secret-42'}})
    action = make_action(eca_staged_credential, dict(BASE_ARGS, app_name='Billing_Sync'),
                         action='sfdc.eca.eca_staged_credential', runner=runner)
    with mock.patch.object(_inprocess, 'build_client'):
        result = action.run(task_vars=dict(INVOCATION))
    assert result['_ansible_no_log'] is True
    assert result['staged_credential']['secret'] == 'fresh-staged-secret-42'


def test_rotation_action_applies_the_task_environment_only_while_it_runs(monkeypatch):
    """SALESFORCE_* in a task's environment: reach the org rotation (env fallbacks), then are gone."""
    from ansible_collections.sfdc.eca.plugins.action import eca_rotation
    seen = {}

    def fake_run_fleet(jobs, gate, check_mode=False, workers=1, claims=None):
        [(org, params)] = jobs
        seen.update(env=os.environ.get('SALESFORCE_CLIENT_SECRET'), org=org, gate=gate, check_mode=check_mode,
                    state_dir=params['state_dir'])
        return {org: {'changed': False, 'plan': [], 'records': [], 'org_failed': False, 'canary': False, 'api_calls': 0}}
    monkeypatch.setattr(eca_rotation, 'run_fleet', fake_run_fleet)
    monkeypatch.setattr(eca_rotation.ActionModule, 'org_variables', lambda self, host, task_vars: {})
    action = make_action(eca_rotation, {'state_dir': '/tmp/x', 'canary_gate': False},
                         environment=[{'SALESFORCE_CLIENT_SECRET': SECRET}], check_mode=True,
                         action='sfdc.eca.eca_rotation')
    action._templar.template = lambda value, **kw: value
    result = action.run(task_vars={'inventory_hostname': 'prod-eu'})
    assert seen == {'env': SECRET, 'org': 'prod-eu', 'gate': {'run': True, 'canary': False, 'reason': ''},
                    'check_mode': True, 'state_dir': '/tmp/x'}
    assert 'SALESFORCE_CLIENT_SECRET' not in os.environ
    assert result['org_failed'] is False and '_ansible_no_log' not in result
