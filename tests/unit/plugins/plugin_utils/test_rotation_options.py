"""The option list exists once (_rotation_options); the role's argument spec and the module docs must match it."""

import os

import pytest
import yaml

from ansible_collections.sfdc.eca.plugins.modules import eca_audit, eca_rotation
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_options as options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE_SPECS = yaml.safe_load(open(os.path.join(ROOT, 'roles', 'rotation', 'meta', 'argument_specs.yml')))['argument_specs']
# the role's own options (playbooks and report), not an org's rotation options
ROLE_ONLY = {'sfdc_eca_delivery_no_log', 'sfdc_eca_canary_size', 'sfdc_eca_batch_size', 'sfdc_eca_task_per_org',
             'sfdc_eca_workers', 'sfdc_eca_fail_on_error', 'sfdc_eca_report_dir', 'sfdc_eca_console_max_rows',
             'sfdc_eca_expiry_warning_days', 'sfdc_eca_audit_apps', 'sfdc_eca_report_kind', 'sfdc_eca_canary_run'}
# defaults the role computes from other variables
ROLE_DEFAULTS = {'sfdc_eca_state_dir': '{{ sfdc_eca_report_dir }}'}


def _shape(option, with_default=True):
    """What must agree: type, elements, choices, required, no_log, default, and the same for suboptions."""
    shape = {'type': option.get('type', 'str'), 'elements': option.get('elements'),
             'choices': sorted(option['choices']) if option.get('choices') else None,
             'required': bool(option.get('required')), 'no_log': bool(option.get('no_log'))}
    if with_default:
        shape['default'] = option.get('default')
    subs = option.get('options') or option.get('suboptions')
    if subs:
        shape['options'] = dict((name, _shape(sub)) for name, sub in subs.items())
    return shape


def test_the_roles_main_entry_point_has_every_option_as_its_variable():
    role = ROLE_SPECS['main']['options']
    spec = options.variables_spec()
    assert set(role) - ROLE_ONLY == set(spec), 'options missing from one side'
    for name, option in spec.items():
        expected = _shape(option)
        got = _shape(role[name])
        if name in ROLE_DEFAULTS:
            assert got.pop('default') == ROLE_DEFAULTS[name]
            expected.pop('default')
        if name == 'sfdc_eca_connection':
            # the role documents no_log on its own; the spec masks the whole dict
            got['no_log'] = expected['no_log']
        assert got == expected, name


def test_the_roles_audit_entry_point_matches_the_audit_options():
    role = ROLE_SPECS['audit']['options']
    for name, option in options.variables_spec(options.audit_spec()).items():
        expected, got = _shape(option), _shape(role[name])
        if name in ROLE_DEFAULTS:
            assert got.pop('default') == ROLE_DEFAULTS[name]
            expected.pop('default')
        got['no_log'] = expected['no_log'] if name == 'sfdc_eca_connection' else got['no_log']
        assert got == expected, name


@pytest.mark.parametrize('module, spec', [(eca_rotation, options.task_spec(nested=True)), (eca_audit, options.audit_task_spec())])
def test_the_module_docs_have_every_option(module, spec):
    documented = yaml.safe_load(module.DOCUMENTATION)['options']
    assert set(documented) == set(spec)
    for name, option in spec.items():
        expected, got = _shape(option), _shape(documented[name])
        # the docs never mark no_log (ansible-doc does not show it); the spec does
        expected = _without_no_log(expected)
        assert _without_no_log(got) == expected, name


def _without_no_log(shape):
    shape = dict(shape)
    shape.pop('no_log', None)
    if 'options' in shape:
        shape['options'] = dict((k, _without_no_log(v)) for k, v in shape['options'].items())
    return shape


def test_each_org_option_defaults_in_the_role_defaults_file():
    defaults = yaml.safe_load(open(os.path.join(ROOT, 'roles', 'rotation', 'defaults', 'main.yml')))
    for name, option in options.ORG_OPTIONS.items():
        variable = options.variable(name)
        assert variable in defaults, variable
        if variable not in ROLE_DEFAULTS:
            assert defaults[variable] == option['default'], variable
