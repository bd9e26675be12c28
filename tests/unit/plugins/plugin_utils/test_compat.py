"""plugin_utils/_compat.py on the ansible-core this test runs on (the CI matrix runs it on each release).

Each test checks that the branch of this core's version range is the one in use, and that it gives
what the module path gives on this core: the arguments a real AnsibleModule parses, the result the
controller parses from a real AnsibleModule's output, the warnings where the module's are shown.
"""

import importlib.util
import json
import sys
import types
from unittest import mock

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.release import __version__ as core_version
from ansible.template import Templar

from ansible_collections.sfdc.eca.plugins.plugin_utils import _compat
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_fleet as _rotation
from core_testing import patch_module_args

CORE = tuple(int(p) for p in core_version.split('.')[:2])
PROFILES = CORE >= (2, 19)
VAULT_PASSWORD = b'matrix-vault-password'
HIDDEN = 'hidden-value-0123456789'


@pytest.fixture
def vault_secret(monkeypatch):
    """The vault password, where this core's templating and JSON encoders find it."""
    secret = VaultSecret(VAULT_PASSWORD)
    if PROFILES:
        # 2.19+ decrypts through one process-wide context, which ansible's CLI initializes
        from ansible.parsing.vault import VaultSecretsContext
        monkeypatch.setattr(VaultSecretsContext, '_current', VaultSecretsContext([('default', secret)]))
    return secret


def vaulted_variables(secret):
    """Variables as the inventory gives them on this core: a vault-encrypted string, a template, plain data."""
    ciphertext = VaultLib([('default', secret)]).encrypt(HIDDEN).decode()
    text = ('encrypted: !vault |\n' + ''.join('  %s\n' % line for line in ciphertext.splitlines())
            + "templated: '{{ plain | upper }}'\nplain: value\nnumbers: [1, 2]\n")
    loader = DataLoader()
    loader.set_vault_secrets([('default', secret)])
    data = loader.load(text)
    if PROFILES:
        # 2.19+ templates only what it trusts; inventory and playbook sources are trusted
        from ansible.template import trust_as_template
        data['templated'] = trust_as_template(data['templated'])
    return loader, data


def module_output(argument_spec, args, result, capsys):
    """What a real AnsibleModule built with ``args`` prints for ``exit_json(**result)``."""
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=argument_spec)
        with pytest.raises(SystemExit):
            module.exit_json(**result)
    return capsys.readouterr().out


def test_the_branch_of_this_cores_version_range_is_in_use():
    assert _compat.CORE_VERSION[:2] == CORE
    assert _compat.IN_PROCESS_UNAVAILABLE is None, 'every release CI runs must run in-process'
    if PROFILES:
        assert _compat.JSON_TRIP == 'profile' and _compat.WARNINGS_CAPTURED is True
    else:
        assert _compat.JSON_TRIP == 'jsonify' and _compat.WARNINGS_CAPTURED is False


@pytest.mark.parametrize('text,expect', [('2.16.19', (2, 16, 19)), ('2.19.0rc1', (2, 19, 0)),
                                         ('2.21.0.dev0', (2, 21, 0)), ('2.20', (2, 20))])
def test_core_version_parsing(text, expect):
    assert _compat._version(text) == expect


def test_arguments_reach_the_operation_as_a_real_module_parses_them(vault_secret, capsys):
    """A vault-encrypted value arrives decrypted, tuples as lists, templated text as plain str."""
    loader, data = vaulted_variables(vault_secret)
    templar = Templar(loader=loader, variables=data)
    args = {'secret': data['encrypted'], 'name': templar.template(data['templated']), 'pair': ('a', 'b'),
            'nested': {'n': 3, 'flag': True, 'none': None}}
    assert args['name'] == 'VALUE'
    got = _compat.args_to_module(args)
    assert got == {'secret': HIDDEN, 'name': 'VALUE', 'pair': ['a', 'b'], 'nested': {'n': 3, 'flag': True, 'none': None}}
    assert [type(got[k]) for k in ('secret', 'name', 'pair')] == [str, str, list]  # not subclasses

    spec = {k: {'type': 'raw'} for k in args}
    module_args = json.loads(module_output(spec, args, {'changed': False}, capsys))['invocation']['module_args']
    assert module_args == got


def test_results_reach_the_controller_as_a_real_modules_output_parses():
    result = {'changed': True, 'pair': ('a', 'b'), 'items': [{'k': 'v', 'n': 1.5}], 'none': None, 'msg': 'é ü'}
    got = _compat.result_to_controller(result)
    assert got == {'changed': True, 'pair': ['a', 'b'], 'items': [{'k': 'v', 'n': 1.5}], 'none': None, 'msg': 'é ü'}
    assert [type(got['pair'])] == [list]  # not a tuple


def test_the_trip_matches_the_module_path_of_this_core(capsys):
    """The in-process result equals the module's printed result as this core's controller parses it."""
    result = {'changed': False, 'pair': ('a', 'b'), 'deep': {'list': [('x', 1)], 'none': None}, 'msg': 'ok'}
    out = module_output({}, {}, dict(result), capsys)
    if PROFILES:
        from ansible.module_utils.common.json import Direction, get_module_decoder
        parsed = json.loads(out, cls=get_module_decoder('legacy', Direction.MODULE_TO_CONTROLLER))
    else:
        parsed = json.loads(out)
    parsed.pop('invocation')
    assert _compat.result_to_controller(dict(result)) == parsed


@pytest.mark.parametrize('asked', [None, False, True])
def test_invocation_follows_this_cores_module_path(asked, monkeypatch, capsys):
    """Whether a real module returns invocation, for the arguments the controller of this core would send."""
    monkeypatch.delenv('ANSIBLE_INJECT_INVOCATION', raising=False)
    task_vars = {} if asked is None else {'ansible_inject_invocation': asked}
    args = {}
    if CORE >= (2, 21):
        # what ActionBase._update_module_args sends on 2.21+
        from ansible import constants as C
        args['_ansible_inject_invocation'] = C.config.get_config_value('INJECT_INVOCATION', variables=task_vars)
    with mock.patch('core_testing._INVOCATION_ARGS', {}):
        out = json.loads(module_output({}, args, {'changed': False}, capsys))
    assert _compat.inject_invocation(task_vars) is ('invocation' in out)
    assert _compat.inject_invocation(task_vars) is (bool(asked) if CORE >= (2, 21) else True)


@pytest.mark.parametrize('verbosity', [0, 3])
def test_a_failures_traceback_follows_this_cores_module_path(verbosity, capsys):
    """fail_json while an exception is handled: the module's result has a traceback exactly when ours does."""
    def fail_while_handling(module):
        try:
            raise ValueError('the API said no')
        except ValueError as exc:
            with pytest.raises(SystemExit):
                module.fail_json(msg='failed')
            return exc

    with patch_module_args({'_ansible_verbosity': verbosity}):
        caught = fail_while_handling(AnsibleModule(argument_spec={}))
    out = json.loads(capsys.readouterr().out)
    ours = _compat.failure_traceback(caught, verbosity)
    assert ('exception' in out) is (ours is not None)
    if ours is not None:
        assert ours.splitlines()[-1] == out['exception'].splitlines()[-1] == "    raise ValueError('the API said no')"


def test_warnings_go_where_the_modules_are_shown():
    result = {}
    with mock.patch.object(_compat, 'warn') as warn, mock.patch('ansible.utils.display.Display.warning') as display:
        _compat.report_warnings(result, ['first', 'second'])
    if PROFILES:
        # captured into the task's result by the display
        assert [c.args[0] for c in warn.call_args_list] == ['first', 'second'] and 'warnings' not in result
    else:
        assert result == {'warnings': ['first', 'second']} and not warn.called
    assert not display.called


def test_warnings_of_an_internal_operation_are_shown_on_every_core():
    """The org rotation keeps its operations' results: their warnings must still reach the user."""
    result = {}
    with mock.patch.object(_compat, 'warn') as warn, mock.patch('ansible.utils.display.Display.warning') as display:
        _compat.report_warnings(result, ['rotation warning'], internal=True)
    assert result == {}
    shown = [c.args[0] for c in (warn if PROFILES else display).call_args_list]
    assert shown == ['rotation warning']


def test_no_warnings_touch_nothing():
    result = {'changed': False}
    with mock.patch.object(_compat, 'warn') as warn:
        _compat.report_warnings(result, [])
    assert result == {'changed': False} and not warn.called


def test_a_core_without_either_json_trip_loads_and_says_why(monkeypatch):
    """A core that lacks both sets of internals: the module loads and names the reason (the actions then run the
    module, see test_inprocess.py); the JSON trip refuses instead of guessing."""
    import ansible.module_utils.common
    bare = types.ModuleType('ansible.module_utils.common.json')
    monkeypatch.setitem(sys.modules, 'ansible.module_utils.common.json', bare)
    monkeypatch.setattr(ansible.module_utils.common, 'json', bare)
    spec = importlib.util.spec_from_file_location('sfdc_eca_compat_probe', _compat.__file__)
    probe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, 'sfdc_eca_compat_probe', probe)
    spec.loader.exec_module(probe)
    assert probe.JSON_TRIP == ''
    assert probe.IN_PROCESS_UNAVAILABLE.startswith('ansible-core %s has neither JSON trip' % core_version)
    with pytest.raises(RuntimeError, match='neither JSON trip'):
        probe.args_to_module({})


# -- what the fleet action gets from templating on this core ---------------------------------------------------


def test_templated_values_become_plain_data_on_this_core(vault_secret):
    """The fleet action templates each org's variables (copy_with_new_env + template) and hands plain() the output."""
    loader, data = vaulted_variables(vault_secret)
    templar = Templar(loader=loader, variables=data).copy_with_new_env(available_variables=data)
    rendered = templar.template({'name': data['templated'], 'secret': data['encrypted'], 'numbers': data['numbers']})
    out = _rotation.plain(rendered)
    assert out == {'name': 'VALUE', 'secret': HIDDEN, 'numbers': [1, 2]}

    def types(value):
        if isinstance(value, dict):
            return {type(value)}.union(*[types(k) | types(v) for k, v in value.items()])
        if isinstance(value, list):
            return {type(value)}.union(*[types(v) for v in value])
        return {type(value)}
    assert types(out) == {dict, list, str, int}


def test_vault_encrypted_values_are_never_template_free_on_this_core(vault_secret):
    _loader, data = vaulted_variables(vault_secret)
    assert _rotation.template_free({'plain': data['plain'], 'numbers': data['numbers']})
    assert not _rotation.template_free({'client_secret': data['encrypted']})
    assert not _rotation.template_free({'x': data['templated']})
