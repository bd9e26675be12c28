"""The fleet's shortcuts for large fleets give the answers of the plain code: the canary gate's host positions,
history.json parsed once per task, the registered-result reader."""

import json
import os

from ansible_collections.sfdc.eca.plugins.plugin_utils import _delivery as delivery
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
        assert history.History(str(tmp_path), cache).entries(org) == history.History(str(tmp_path)).entries(org)
    assert history.History(str(tmp_path), cache).entries('org1')['org1/A/C']['key_fp'] == 'newer'
    # the report replaces history.json: the cache reads the new file
    write_history(tmp_path / 'history.json', {'org1/B/D': {'org': 'org1', 'key_fp': 'f9'}})
    assert history.History(str(tmp_path), cache).entries('org1')['org1/B/D']['key_fp'] == 'f9'
    # an entry changed by one caller does not change what the cache gives the next
    entries = history.History(str(tmp_path), cache).entries('org1')
    entries['org1/B/D']['key_fp'] = 'changed by a caller'
    assert history.History(str(tmp_path), cache).entries('org1')['org1/B/D']['key_fp'] == 'f9'
    os.unlink(tmp_path / 'history.json')
    assert history.History(str(tmp_path), cache).entries('org10') == {}


def test_history_cache_reports_a_broken_file_each_time(tmp_path):
    (tmp_path / 'history.json').write_text('{not json')
    cache = history.MergedCache()
    for _attempt in range(2):
        try:
            history.History(str(tmp_path), cache).entries('org1')
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
