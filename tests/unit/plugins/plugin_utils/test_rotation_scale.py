"""The fleet's shortcuts for large fleets give the answers of the plain code: the canary gate's host positions,
history.json parsed once per task, the registered-result reader, the same template of many orgs templated once."""

import json
import os

from ansible_collections.sfdc.eca.plugins.plugin_utils import _delivery as delivery
from ansible_collections.sfdc.eca.plugins.plugin_utils._fleet_action import FleetAction
from ansible_collections.sfdc.eca.plugins.plugin_utils import _report as report
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_fleet as fleet
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history


def test_canary_gate_first_place_of_a_host_listed_twice():
    results = {'a': {'canary': True, 'org_failed': False}, 'b': {'org_failed': True}}
    # 'c' is listed again after 'd': its first place decides which hosts ran before the batch
    hosts = ['a', 'b', 'c', 'd', 'c']
    gate = fleet.canary_gate(hosts, lambda h: results.get(h, {}), ['c', 'd'], max_fail_percentage=40)
    assert gate['run'] is False and '1 of 2' in gate['reason']
    assert fleet.canary_gate(hosts, lambda h: results.get(h, {}), ['x'])['run'] is True, 'a batch outside the play'
    many = ['org%05d' % i for i in range(10000)]
    gate = fleet.canary_gate(many, lambda h: {'canary': h == many[0], 'org_failed': False}, many[1:])
    assert gate == fleet.OPEN


def write_history(path, consumers):
    delivery.write_durably(str(path), json.dumps({'version': 1, 'consumers': consumers}).encode())


def test_history_entries_with_a_shared_cache_equal_the_plain_reading(tmp_path):
    consumers = {
        'org1/A/C': {'org': 'org1', 'key_fp': 'f1'},
        'org1/B/D': {'org': 'org1', 'key_fp': 'f2'},
        'org10/A/C': {'org': 'org10', 'key_fp': 'f3'},
        'org1': {'org': 'org1', 'key_fp': 'not an entry of org1'},
    }
    write_history(tmp_path / 'history.json', consumers)
    own = history.History(str(tmp_path))
    own._write_org('org1', {'org1/A/C': {'org': 'org1', 'key_fp': 'newer', 'last_run': '2030-01-01T00:00:00Z'}})
    cache = history.MergedCache()
    for org in ('org1', 'org10', 'org2'):
        assert history.History(str(tmp_path), cache=cache).entries(org) == history.History(str(tmp_path)).entries(org)
    assert history.History(str(tmp_path), cache=cache).entries('org1')['org1/A/C']['key_fp'] == 'newer'
    # the report replaces history.json: the cache reads the new file
    write_history(tmp_path / 'history.json', {'org1/B/D': {'org': 'org1', 'key_fp': 'f9'}})
    assert history.History(str(tmp_path), cache=cache).entries('org1')['org1/B/D']['key_fp'] == 'f9'
    # an entry changed by one caller does not change what the cache gives the next
    entries = history.History(str(tmp_path), cache=cache).entries('org1')
    entries['org1/B/D']['key_fp'] = 'changed by a caller'
    assert history.History(str(tmp_path), cache=cache).entries('org1')['org1/B/D']['key_fp'] == 'f9'
    os.unlink(tmp_path / 'history.json')
    assert history.History(str(tmp_path), cache=cache).entries('org10') == {}


def test_history_cache_reports_a_broken_file_each_time(tmp_path):
    (tmp_path / 'history.json').write_text('{not json')
    cache = history.MergedCache()
    for _attempt in range(2):
        try:
            history.History(str(tmp_path), cache=cache).entries('org1')
        except history.HistoryError as exc:
            assert 'not valid JSON' in str(exc)
        else:
            raise AssertionError('a broken history.json must fail every org')


class FakeManager:
    def __init__(self, facts, extra):
        self._nonpersistent_fact_cache = facts
        self.extra_vars = extra


class FakeHostVars:
    def __init__(self, values):
        self.values = values
        self.asked = []

    def __getitem__(self, host):
        self.asked.append(host)
        if host == 'broken':
            raise RuntimeError('cannot template')
        return self.values.get(host, {})


def test_registered_reader_reads_set_facts_as_stored_and_asks_hostvars_otherwise():
    batch = {'orgs': {'a': {'records': []}, 'b': {'records': []}}}
    hostvars = FakeHostVars({'c': {'res': 'from inventory'}})
    read = report.registered_reader(FakeManager({'a': {'res': batch}, 'b': {'res': batch}, 'c': {}}, {}), hostvars, 'res')
    assert read('a') is batch and read('b') is batch and hostvars.asked == []
    assert read('c') == 'from inventory' and read('d') is None and read('broken') is None
    assert hostvars.asked == ['c', 'd', 'broken']
    # an extra var outranks a registered value: hostvars answers
    hostvars = FakeHostVars({'a': {'res': 'extra'}})
    read = report.registered_reader(FakeManager({'a': {'res': batch}}, {'res': 'extra'}), hostvars, 'res')
    assert read('a') == 'extra'
    # a variable manager without that store (another ansible-core): hostvars answers
    assert report.registered_reader(object(), FakeHostVars({'a': {'res': 1}}), 'res')('a') == 1


# -- the same template of many orgs ---------------------------------------------------------------------

def memo_names(source):
    return fleet.TemplateMemo()._pure_names(source)


def test_template_memo_shares_only_templates_that_depend_on_the_variables_they_name():
    assert memo_names('{{ sfdc_eca_report_dir }}') == {'sfdc_eca_report_dir'}
    assert memo_names("{{ lookup('ansible.builtin.env', 'PWD') | default('.', true) }}/sfdc_eca_report") == frozenset()
    assert memo_names('{{ base }}/{{ inventory_hostname }}.d') == {'base', 'inventory_hostname'}
    for impure in ("{{ lookup('env', 'PWD') }}",           # a bare name may be a lookup plugin of the playbook
                   "{{ lookup('ansible.builtin.pipe', 'date') }}", "{{ now() }}", '{{ 100 | random }}',
                   '{{ base | upper }}', '{{ base | default(other) }}', '{{ x.y }}', "{{ query('ansible.builtin.env', 'A') }}",
                   '{% if a %}x{% endif %}', '{% set a = 1 %}{{ a }}', '#jinja2: trim_blocks: False\n{{ a }}', '{{ a ',
                   "{{ lookup('ansible.builtin.env', name) }}"):
        assert memo_names(impure) is None, impure


def test_template_memo_keys():
    memo = fleet.TemplateMemo()
    template = '{{ sfdc_eca_report_dir }}'
    org1 = {'sfdc_eca_state_dir': template, 'sfdc_eca_report_dir': '/r', 'inventory_hostname': 'org1'}
    org2 = dict(org1, inventory_hostname='org2')
    assert memo.key(template, org1) is not None
    assert memo.key(template, org1) == memo.key(template, org2)
    assert memo.key(template, dict(org1, sfdc_eca_report_dir='/other')) != memo.key(template, org1)
    assert memo.key(template, dict(org1, sfdc_eca_report_dir=['/r'])) is None, 'only scalars are compared'
    assert memo.key(template, {}) is None, 'an undefined variable is templated (and fails) for each org'
    assert memo.key('{{ a }}' + '', org1) is None
    other = ''.join(['{{ sfdc_eca_', 'report_dir }}'])  # the same text, another object (perhaps another trust)
    assert memo.key(other, org1) != memo.key(template, org1)
    per_host = '{{ sfdc_eca_report_dir }}/{{ inventory_hostname }}'
    assert memo.key(per_host, org1) != memo.key(per_host, org2)
    # a named variable that is a template itself: the key follows it
    default = "{{ lookup('ansible.builtin.env', 'PWD') | default('.', true) }}/sfdc_eca_report"
    org3 = dict(org1, sfdc_eca_report_dir=default)
    assert memo.key(template, org3) is not None
    assert memo.key(template, org3) == memo.key(template, dict(org3, inventory_hostname='x'))
    assert memo.key(template, dict(org3, sfdc_eca_report_dir='{{ now() }}')) is None


class Templated(FleetAction):
    ORG_SPEC = staticmethod(dict)

    def __init__(self):  # pylint: disable=super-init-not-called
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar
        self._templar = Templar(loader=DataLoader())

    def run(self, tmp=None, task_vars=None):
        raise NotImplementedError


def test_templated_variables_equal_templating_each_org(monkeypatch):
    from ansible.template import Templar
    try:
        from ansible.template import trust_as_template  # 2.19+: only trusted strings are templates
    except ImportError:
        trust_as_template = None
    trusted = trust_as_template or (lambda text: text)
    templates = {
        'base': 'from-env',
        'sfdc_eca_state_dir': trusted('{{ sfdc_eca_report_dir }}'),
        'sfdc_eca_report_dir': trusted("{{ base | default('.', true) }}/r"),
        'per_host': trusted('{{ sfdc_eca_report_dir }}/{{ inventory_hostname }}'),
        'impure': trusted('{{ inventory_hostname | upper }}'),
    }
    if trust_as_template:
        templates['untrusted'] = '{{ inventory_hostname }}'
    calls = []
    real = Templar.template

    def counting(self, value, *args, **kwargs):
        calls.append(str(value))
        return real(self, value, *args, **kwargs)
    monkeypatch.setattr(Templar, 'template', counting)
    action = Templated()
    for org in ('org1', 'org2', 'org3'):
        variables = dict(templates, inventory_hostname=org)
        value = action.templated(variables)
        assert value('sfdc_eca_state_dir') == 'from-env/r'
        assert value('per_host') == 'from-env/r/%s' % org
        assert value('impure') == org.upper()
        if trust_as_template:
            assert value('untrusted') == '{{ inventory_hostname }}', 'an untrusted string stays as it is'
    # state_dir once for all three orgs; the others for each org
    assert calls.count('{{ sfdc_eca_report_dir }}') == 1
    assert calls.count('{{ sfdc_eca_report_dir }}/{{ inventory_hostname }}') == 3
    assert calls.count('{{ inventory_hostname | upper }}') == 3
