"""The rotation's parts on their own: the consumer's rules, delivery targets, history, report, gate, variables."""

import datetime
import json
import os
import stat

import pytest
import yaml

from ansible.parsing.vault import VaultLib

from ansible_collections.sfdc.eca.plugins.plugin_utils import _delivery as delivery
from ansible_collections.sfdc.eca.plugins.plugin_utils import _report as report
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_fleet as fleet
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_model as model

CREDENTIAL = {'instance_url': 'https://o.example', 'org': 'o1', 'app_name': 'A', 'app_id': '0xI1', 'consumer_name': 'C',
              'consumer_id': '8881', 'key': '3MVGnewKey0001', 'secret': 'TheNewSecretValue123'}


# -- the consumer's rules --------------------------------------------------------------------------

def staged_consumer(action='staged'):
    consumer = model.Consumer('o1', 'A', 'C')
    consumer.decide(model.ROTATE)
    consumer.staged({'id': '0sC1', 'key': '3MVGnew', 'secret': 's3cr3t-value'}, action)
    return consumer


def test_a_pair_is_deleted_only_when_this_run_staged_it_nothing_received_it_and_it_was_refused():
    refused = staged_consumer()
    refused.fail('verify', 'refused')
    assert refused.may_delete_staged()
    transient = staged_consumer()
    transient.fail('verify', 'the token endpoint answered 503', transient=True)
    assert not transient.may_delete_staged(), 'I2: a transient failure never deletes'
    resumed = model.Consumer('o1', 'A', 'C')
    resumed.decide(model.RESUME)
    resumed.staged({'id': '0sC1', 'key': '3MVGold', 'secret': 'x'}, 'none')
    resumed.fail('verify', 'refused')
    assert not resumed.may_delete_staged(), 'a pair an earlier run may have delivered is never deleted'
    for reached in (model.REACHED, model.MAYBE_REACHED):
        delivered = staged_consumer()
        delivered.passed_verification()
        delivered.delivering()
        delivered.delivered(reached)
        delivered.fail('hook', 'the hook failed')
        assert not delivered.may_delete_staged(), 'I1: %s' % reached
    unreached = staged_consumer()
    unreached.passed_verification()
    unreached.delivering()
    unreached.delivered(model.NOT_REACHED)
    unreached.fail('deliver', 'cannot write')
    assert unreached.may_delete_staged()


def test_transitions_check_their_preconditions():
    consumer = staged_consumer()
    with pytest.raises(model.TransitionError):
        consumer.delivering()  # not verified yet
    consumer.passed_verification()
    assert not consumer.promotable(), 'not delivered yet'
    consumer.delivering()
    consumer.delivered(model.MAYBE_REACHED)
    assert not consumer.promotable(), 'a delivery that may not have landed is not promoted'
    consumer.delivered(model.REACHED)
    assert consumer.promotable()
    with pytest.raises(model.TransitionError):
        consumer.rolled_back_now(True)


def test_rows_hold_no_secret_and_redact_messages():
    consumer = staged_consumer()
    consumer.fail('verify', 'refused while holding s3cr3t-value')
    secrets = model.Secrets()
    secrets.add('s3cr3t-value')
    row = consumer.row('2026-06-01T00:00:00Z', '2026-06-01T00:00:01Z', 1.0, secrets=secrets)
    assert 's3cr3t-value' not in json.dumps(row) and '********' in row['error']
    assert set(row) - {'_new_key_fp'} == set(model.ROW_FIELDS)
    assert row['new_key'] == '...Gnew'


def test_hand_off_state_round_trips():
    consumer = staged_consumer()
    consumer.passed_verification()
    again = model.Consumer.from_state(json.loads(json.dumps(consumer.state())))
    assert again.state() == consumer.state() and again.verified and again.pair['secret'] == 's3cr3t-value'


# -- delivery targets -------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['../etc', 'a/b', 'a\\b', '..', 'x\x00y', 'tab\there', '', 'new\nline'])
def test_names_from_the_org_that_could_leave_the_directory_are_refused(tmp_path, name):
    """I4: a consumer name is input from the org."""
    deliveries = delivery.Deliveries()
    (tmp_path / 'pw').write_text('pw\n')
    target = deliveries.configure({'vault_file': str(tmp_path / 'out' / '{org}-{consumer_name}.yml'),
                                   'vault_password_file': str(tmp_path / 'pw')}, {}, 'A')
    with pytest.raises(delivery.ConfigError) as raised:
        target.target({'org': 'o1', 'app_name': 'A', 'consumer_name': name})
    assert 'consumer name' in str(raised.value) and repr(name) in str(raised.value)


def test_a_resolved_path_stays_in_the_templates_directory(tmp_path):
    configured = delivery.FileDelivery('file', str(tmp_path / 'out' / 'app-{consumer_name}.env'), 'deliver.file.path',
                                       lambda d: b'', lambda c: None)
    assert configured.directory == str(tmp_path / 'out')
    assert configured.target({'consumer_name': 'C'}).label == str(tmp_path / 'out' / 'app-C.env')
    with pytest.raises(delivery.ConfigError, match='placeholder other than'):
        delivery.FileDelivery('file', str(tmp_path / '{who}.env'), 'x', lambda d: b'', lambda c: None)


def test_write_durably_is_atomic_private_and_syncs_the_directory(tmp_path, monkeypatch):
    """I5: O_EXCL|O_NOFOLLOW temporary file, mode 0600, fsync of file and directory."""
    target = tmp_path / 'd' / 'f.yml'
    opened, synced = [], []
    real_open, real_fsync = os.open, os.fsync

    def recording_open(path, flags, *args):
        fd = real_open(path, flags, *args)
        opened.append((str(path), flags, args, fd))
        return fd

    def recording_fsync(fd):
        synced.append(fd)
        return real_fsync(fd)
    monkeypatch.setattr(delivery.os, 'open', recording_open)
    monkeypatch.setattr(delivery.os, 'fsync', recording_fsync)
    delivery.write_durably(str(target), b'new')
    tmp_open, dir_open = opened
    assert tmp_open[1] & os.O_EXCL and tmp_open[1] & os.O_NOFOLLOW and tmp_open[2] == (0o600,)
    assert os.path.dirname(tmp_open[0]) == str(target.parent) and len(os.path.basename(tmp_open[0])) > len('.f.yml..tmp') + 12
    assert synced == [tmp_open[3], dir_open[3]], 'the file, then its directory'
    assert target.read_bytes() == b'new' and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_says_it_did_not_reach(tmp_path, monkeypatch):
    target = tmp_path / 'd' / 'f.json'
    delivery.write_durably(str(target), b'old')

    def broken_fsync(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(delivery.os, 'fsync', broken_fsync)
    with pytest.raises(delivery.DeliveryError) as raised:
        delivery.write_durably(str(target), b'new')
    assert raised.value.reached == model.NOT_REACHED and 'No space left' in str(raised.value)
    assert target.read_bytes() == b'old'
    assert sorted(p.name for p in target.parent.iterdir()) == ['f.json']
    assert stat.S_IMODE(os.stat(target.parent).st_mode) == 0o700


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    (tmp_path / 'd').mkdir()
    left = tmp_path / 'd' / '.f.yml.0123456789abcdef.tmp'
    left.write_text('encrypted leftover')
    other = tmp_path / 'd' / '.g.yml.0123456789abcdef.tmp'
    other.write_text('another target\'s')
    delivery.write_durably(str(tmp_path / 'd' / 'f.yml'), b'new')
    assert sorted(p.name for p in (tmp_path / 'd').iterdir()) == ['.g.yml.0123456789abcdef.tmp', 'f.yml']


def test_a_directory_is_listed_once_for_all_its_writes(tmp_path, monkeypatch):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / '.f7.yml.0123456789abcdef.tmp').write_text('leftover')
    listed = []
    real = delivery.os.listdir
    monkeypatch.setattr(delivery.os, 'listdir', lambda path: listed.append(path) or real(path))
    for n in range(10):
        delivery.write_durably(str(tmp_path / 'd' / ('f%d.yml' % n)), b'new')
    assert listed == [str(tmp_path / 'd')]
    assert sorted(p.name for p in (tmp_path / 'd').iterdir()) == ['f%d.yml' % n for n in range(10)]


def test_a_planted_symlink_is_not_followed(tmp_path):
    outside = tmp_path / 'outside'
    outside.write_text('untouched')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'f.yml').symlink_to(outside)
    delivery.write_durably(str(tmp_path / 'out' / 'f.yml'), b'new')
    assert outside.read_text() == 'untouched' and not (tmp_path / 'out' / 'f.yml').is_symlink()


@pytest.mark.parametrize('fmt', ['env', 'json', 'yaml'])
def test_file_targets_write_and_read_back(tmp_path, fmt):
    deliveries = delivery.Deliveries()
    configured = deliveries.configure({'file': {'path': str(tmp_path / ('{org}-{app_name}.' + fmt)), 'format': fmt,
                                                'prefix': 'SALESFORCE_'}}, {}, 'A')
    target = configured.target({'org': 'o1', 'app_name': 'A', 'consumer_name': 'C'})
    target.write(dict(CREDENTIAL, org='o "1" $x'))
    assert target.read_back() == CREDENTIAL['key']
    text = (tmp_path / ('o1-A.' + fmt)).read_text()
    if fmt == 'env':
        assert 'SALESFORCE_KEY=3MVGnewKey0001\n' in text and 'SALESFORCE_ORG="o \\"1\\" \\$x"\n' in text
    else:
        assert yaml.safe_load(text)['secret'] == CREDENTIAL['secret']
    # what another writer put there is read as it is
    (tmp_path / ('o1-A.' + fmt)).write_text('SALESFORCE_KEY=other\n' if fmt == 'env' else '{"key": "other"}')
    assert target.read_back() == 'other'


def test_vault_password_files_are_read_the_way_ansible_vault_reads_them(tmp_path):
    """I5: an empty password is refused; an executable is run (a vault-id client script gets --vault-id)."""
    deliveries = delivery.Deliveries()
    empty = tmp_path / 'empty'
    empty.write_text('\n')
    with pytest.raises(delivery.ConfigError, match='cannot be used|empty password'):
        deliveries.configure({'vault_file': str(tmp_path / 'v.yml'), 'vault_password_file': str(empty)}, {}, 'A')
    script = tmp_path / 'pass.sh'
    script.write_text('#!/bin/sh\necho from-the-script\n')
    script.chmod(0o700)
    client = tmp_path / 'vault-client.sh'
    client.write_text('#!/bin/sh\n[ "$1" = --vault-id ] && echo "client-for-$2"\n')
    client.chmod(0o700)
    for password_file, vault_id, password in ((script, None, 'from-the-script'), (client, 'prod', 'client-for-prod')):
        configured = deliveries.configure({'vault_file': str(tmp_path / '{org}.yml'), 'vault_password_file': str(password_file),
                                           'vault_id': vault_id}, {}, 'A')
        target = configured.target({'org': 'o-%s' % (vault_id or 'x')})
        target.write(CREDENTIAL)
        secret = type('S', (), {'bytes': password.encode(), 'load': lambda self: None})()
        clear = VaultLib([(vault_id or 'default', secret)]).decrypt(open(target.label, 'rb').read())
        assert yaml.safe_load(clear)['key'] == CREDENTIAL['key']
        assert open(target.label).read().startswith('$ANSIBLE_VAULT;1.%s;AES256' % ('2' if vault_id else '1'))
    with pytest.raises(delivery.ConfigError, match='does not exist'):
        deliveries.configure({'vault_file': str(tmp_path / 'v.yml'), 'vault_password_file': str(tmp_path / 'nope')}, {}, 'A')


def test_deliver_needs_exactly_one_kind():
    deliveries = delivery.Deliveries()
    for deliver, message in (({}, 'none'), ({'vault_file': '/a', 'tasks_file': '/b'}, 'vault_file, tasks_file'), (None, 'missing')):
        with pytest.raises(delivery.ConfigError, match=message):
            deliveries.configure(deliver, {}, 'A')


# -- history ----------------------------------------------------------------------------------------

def test_history_records_intent_then_promotion_and_counts_one_rotation_once(tmp_path):
    store = history.History(str(tmp_path))
    fp = model.fingerprint('3MVGnew')
    store.record_intent('o', [('A', 'C', 'https://o.example', fp)])
    entry = store.entries('o')['o/A/C']
    assert entry['promoting_fp'] == fp and history.unrecorded_promotion(entry, fp)
    assert history.promoted_since(entry, fp) == entry['promoting_since']
    row = {'org': 'o', 'app_name': 'A', 'consumer_name': 'C', 'outcome': 'rotated', 'new_key': '...wNew',
           '_new_key_fp': fp, 'finished': '2026-06-01T12:00:00Z'}
    store.record_rows('o', [row])
    entry = store.entries('o')['o/A/C']
    assert entry['rotations'] == 1 and entry['key_fp'] == fp and 'promoting_fp' not in entry
    assert not history.unrecorded_promotion(entry, fp)
    store.merge([row, dict(row, consumer_name='D', outcome='planned')])
    merged = json.loads((tmp_path / 'history.json').read_text())['consumers']
    assert list(merged) == ['o/A/C'] and merged['o/A/C']['rotations'] == 1
    assert stat.S_IMODE(os.stat(tmp_path / 'history.json').st_mode) == 0o600
    newer = dict(row, _new_key_fp='def', finished='2026-07-01T12:00:00Z')
    store.merge([newer])
    assert json.loads((tmp_path / 'history.json').read_text())['consumers']['o/A/C']['rotations'] == 2


def test_a_broken_history_file_is_named(tmp_path):
    (tmp_path / 'history.json').write_text('{broken')
    with pytest.raises(history.HistoryError, match='not valid JSON'):
        history.History(str(tmp_path)).entries('o')
    with pytest.raises(Exception, match='org name'):
        history.History(str(tmp_path)).org_file('../x')


# -- report -----------------------------------------------------------------------------------------

def _rows(n):
    rows = []
    for i in range(n):
        outcome = 'failed' if i % 10 == 0 else ('blocked' if i % 7 == 0 else 'rotated')
        rows.append({'org': 'org%03d' % i, 'app_name': 'Billing_Sync', 'consumer_name': 'Billing', 'plan': 'rotate',
                     'outcome': outcome, 'phase': 'verify' if outcome == 'failed' else 'promote',
                     'old_key': '...AAAA', 'new_key': '...BBBB', 'state': 'Rotated', 'duration': 1.5,
                     'error': 'the new pair ...BBBB was refused: invalid_grant' if outcome == 'failed' else None,
                     'secret': 'MUST-NOT-SHOW', '_new_key_fp': 'fp'})
    return rows


def test_report_for_500_orgs_fits_one_screen():
    built = report.build(_rows(500), 'rotation')
    assert built['totals']['orgs'] == 500 and built['totals']['failed'] == 50
    lines = report.console(built, 20, ['/r/report.html'])
    assert len(lines) <= 25 and max(len(line) for line in lines) <= 260
    assert lines[0].startswith('sfdc.eca rotation: 500 orgs, 500 consumers')
    assert any(line.startswith('... and ') for line in lines)
    text = json.dumps(built) + report.markdown(built) + report.render_html(built) + '\n'.join(lines)
    assert 'MUST-NOT-SHOW' not in text and '_new_key_fp' not in text
    assert report.stats(built)['failed'] == 50
    assert report.failed_orgs(built)['org000'] == ['Billing_Sync/Billing']


def test_html_escapes_everything():
    rows = [{'org': '<script>alert(1)</script>', 'app_name': 'A&B', 'consumer_name': '"q"', 'outcome': 'failed',
             'error': '<img src=x onerror=alert(1)>'}]
    html = report.render_html(report.build(rows, 'rotation'))
    assert '<script>alert(1)</script>' not in html and '<img src=x' not in html
    assert '&lt;script&gt;' in html and 'A&amp;B' in html


def test_collect_rows_reads_both_result_shapes_and_names_an_org_without_result():
    results = {'a': {'orgs': {'a': {'records': [{'org': 'a', 'outcome': 'rotated'}]},
                              'b': {'records': [{'org': 'b', 'outcome': 'failed'}]}}},
               'c': {'records': [{'org': 'c', 'outcome': 'skipped'}]}}
    rows = report.collect_rows(['a', 'b', 'c', 'd'], lambda host: results.get(host) or results['a'] if host == 'b'
                               else results.get(host))
    assert [(r['org'], r['outcome']) for r in rows] == [('a', 'rotated'), ('b', 'failed'), ('c', 'skipped'), ('d', 'failed')]
    assert 'before it recorded anything' in rows[-1]['error']


def test_a_report_killed_before_the_history_leaves_whole_files(tmp_path, monkeypatch):
    rows = [{'org': 'o', 'app_name': 'A', 'consumer_name': 'C', 'outcome': 'rotated', 'new_key': '...ZZZZ',
             '_new_key_fp': 'abc', 'finished': '2026-06-01T12:00:00Z'}]
    report_dir, state_dir = tmp_path / 'report', tmp_path / 'state'

    def killed(self, rows):
        raise KeyboardInterrupt('killed')
    monkeypatch.setattr(history.History, 'merge', killed)
    with pytest.raises(KeyboardInterrupt):
        report.write(rows, 'rotation', str(report_dir), str(state_dir))
    monkeypatch.undo()
    assert json.loads((report_dir / 'report.json').read_text())['totals']['rotated'] == 1
    assert stat.S_IMODE(os.stat(report_dir / 'report.json').st_mode) == 0o644
    assert not (state_dir / 'history.json').exists()
    # a SIGKILL leaves its temporary file: the next report removes it
    (state_dir / '.history.json.999.tmp').write_text('{')
    _built, written = report.write(rows, 'rotation', str(report_dir), str(state_dir))
    assert json.loads((state_dir / 'history.json').read_text())['consumers']['o/A/C']['rotations'] == 1
    assert str(state_dir / 'history.json') in written and not (state_dir / '.history.json.999.tmp').exists()


def test_audit_rows_findings():
    moment = datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.timezone.utc)
    soon = (moment + datetime.timedelta(days=3)).strftime('%Y-%m-%dT%H:%M:%S.000+0000')
    later = (moment + datetime.timedelta(days=20)).strftime('%Y-%m-%dT%H:%M:%S.000+0000')
    apps = [{'app_name': 'A', 'app_id': '0xI1', 'consumers': [
        {'id': '1', 'name': 'C1', 'key': 'k1', 'staged': {'key': '3MVGs1', 'state': 'Active', 'expiration_date': soon}},
        {'id': '2', 'name': 'C2', 'key': 'k2', 'staged': {'key': '3MVGs2', 'state': 'Rotated', 'expiration_date': later}},
        {'id': '3', 'name': 'C3', 'key': 'k3', 'staged': {'key': '3MVGs3', 'state': 'Expired'}},
        {'id': '4', 'name': 'C4', 'key': 'k4', 'staged': None}]}, {'app_name': 'B', 'error': 'HTTP 500'}]
    entries = {'o/A/C4': {'last_rotated': '2026-05-01T00:00:00Z', 'key_fp': model.fingerprint('not-k4')}}
    rows = dict((r.get('consumer_name') or r['app_name'], r) for r in report.audit_rows('o', None, apps, entries, 7, moment))
    assert 'staged_expiring' in rows['C1']['findings'] and rows['C1']['outcome'] == 'attention'
    assert 'previous_in_grace' in rows['C2']['findings'] and rows['C2']['expiry'] == later
    assert 'staged_expired' in rows['C3']['findings']
    assert rows['C4']['findings'] == ['rotated_outside_tool'] and rows['C4']['outcome'] == 'attention'
    assert rows['B']['outcome'] == 'failed'


# -- fleet helpers ----------------------------------------------------------------------------------

def test_canary_gate():
    results = {}
    hosts = ['a', 'b', 'c', 'd', 'e']
    assert fleet.canary_gate(hosts, lambda h: results.get(h, {}), ['a'])['canary'] is True
    results = {'a': {'canary': True, 'org_failed': True}}
    gate = fleet.canary_gate(hosts, lambda h: results.get(h, {}), ['b', 'c'])
    assert gate['run'] is False and 'canary' in gate['reason']
    results = {'a': {'canary': True, 'org_failed': False}, 'b': {'org_failed': True}, 'c': {'org_failed': False}}
    assert fleet.canary_gate(hosts, lambda h: results.get(h, {}), ['d', 'e'])['run'] is True
    gate = fleet.canary_gate(hosts, lambda h: results.get(h, {}), ['d', 'e'], max_fail_percentage=30)
    assert gate['run'] is False and '1 of 3' in gate['reason']
    # a canary org that never recorded anything (it crashed) counts as failed
    assert fleet.canary_gate(hosts, lambda h: {}, ['b'])['run'] is False


def test_claims_across_tasks_of_one_run(tmp_path):
    def consumer(org, path):
        c = model.Consumer(org, 'A', 'C')
        c.target = {'kind': 'file', 'label': path, 'identity': ['file', path]}
        return c
    first = fleet.Claims(str(tmp_path / '.claims' / 'run1'))
    assert first.claim(consumer('o1', '/x')) is None and first.claim(consumer('o1', '/x')) is None
    assert first.claim(consumer('o2', '/x')) == 'o1 A/C'
    second = fleet.Claims(str(tmp_path / '.claims' / 'run1'))  # the next batch of the same run
    assert second.claim(consumer('o3', '/x')) == 'o1 A/C' and second.claim(consumer('o3', '/y')) is None
    assert fleet.Claims(str(tmp_path / '.claims' / 'run2')).claim(consumer('o3', '/x')) is None, 'another run'


def test_refused_org_fails_each_rotation_with_the_message():
    out = fleet.refused_org('o1', {'rotations': [{'app_name': 'A'}, {'app_name': 'B', 'consumer_name': 'C'}],
                                   'connection': {'instance_url': 'https://o1.example'}},
                            'invalid variable: sfdc_eca_verify must be one of ..., got: bogus')
    assert out['org_failed'] is True and out['api_calls'] == 0
    assert [(r['app_name'], r['outcome'], r['phase']) for r in out['records']] == [('A', 'failed', 'options'),
                                                                                   ('B', 'failed', 'options')]
    assert all('got: bogus' in r['error'] for r in out['records'])
    [row] = fleet.refused_org('o2', {'rotations': 'oops'}, 'bad')['records']
    assert (row['org'], row['outcome'], row['error']) == ('o2', 'failed', 'bad')


def test_variables_check_names_the_bad_variable_and_validates_each_distinct_value_once(monkeypatch):
    spec = {'sfdc_eca_verify': {'type': 'str', 'choices': ['client_credentials', 'jwt', 'none']},
            'sfdc_eca_connection': {'type': 'dict', 'no_log': True},
            'sfdc_eca_min_age_days': {'type': 'float', 'required': True}}
    check = fleet.VariablesCheck(spec)
    calls = []
    for validator in check.validators.values():
        original = validator.validate
        monkeypatch.setattr(validator, 'validate', lambda p, _o=original: calls.append(p) or _o(p))
    good = {'sfdc_eca_verify': 'jwt', 'sfdc_eca_connection': {'client_secret': 'S3cr3t-value'}, 'sfdc_eca_min_age_days': 7}
    for _org in range(5):
        assert check.problem(good.__getitem__, good) is None
    assert len(calls) == 3, 'five orgs with the same values: each variable validated once'
    bad = dict(good, sfdc_eca_verify='bogus')
    problem = check.problem(bad.__getitem__, bad)
    assert 'sfdc_eca_verify' in problem and 'bogus' in problem
    missing = dict(good)
    del missing['sfdc_eca_min_age_days']
    assert 'sfdc_eca_min_age_days' in check.problem(missing.__getitem__, missing)
    secret_check = fleet.VariablesCheck({'org_token': {'type': 'str', 'no_log': True, 'choices': ['a', 'b']}})
    problem = secret_check.problem({'org_token': 'S3cr3t-value'}.__getitem__, {'org_token': 'S3cr3t-value'})
    assert 'org_token' in problem and 'S3cr3t-value' not in problem and '********' in problem


def test_plain_turns_templated_values_into_plain_ones_equal_to_them():
    tags = pytest.importorskip('ansible._internal._datatag._tags', reason='data tagging arrived in ansible-core 2.19')
    tag = tags.Origin(path='/inventory/hosts.yml', line_num=3).tag
    templated = tag({'connection': tag({'client_secret': tag('s3cr3t'), 'timeout': tag(12.5)}),
                     'rotations': tag([tag({'app_name': tag('Billing_Sync')})]), 'verify_retries': tag(3),
                     'revoke_previous': True, 'vault_id': None})
    out = fleet.plain(templated)
    assert out == templated

    def types(value):
        if isinstance(value, dict):
            return set([type(value)]).union(*[types(k) | types(v) for k, v in value.items()])
        if isinstance(value, list):
            return set([type(value)]).union(*[types(v) for v in value])
        return {type(value)}
    assert types(out) == {dict, list, str, float, int, bool, type(None)}


class _StickyText(str):
    """Like ansible-core < 2.19's unsafe text: str() of it returns it again."""

    def __str__(self):  # pylint: disable=invalid-str-returned
        return self


def test_sticky_template_text_becomes_plain_str_in_options_and_deliveries(tmp_path):
    url = _StickyText('https://acme.my.salesforce.com')
    assert str(url).__class__ is _StickyText
    assert fleet.plain({'connection': {'instance_url': url}})['connection']['instance_url'].__class__ is str
    data = delivery.credential({'instance_url': url, 'org': _StickyText('acme'), 'key': 'K' * 20, 'secret': 'S' * 20})
    assert set(v.__class__ for v in data.values() if v is not None) == {str}
    # the YAML writers of the vault and plain files take it (a str subclass makes yaml.safe_dump raise)
    assert 'instance_url: https://acme.my.salesforce.com' in yaml.safe_dump(data)
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump({'instance_url': url})


def test_template_free_tells_plain_data_from_what_templating_would_change():
    assert fleet.template_free({'instance_url': 'https://x.my.salesforce.com', 'timeout': 30,
                                'rotations': [{'app_name': 'A', 'deliver': {'vault_file': '/v/{org}.yml'}}],
                                'flag': True, 'none': None})
    for templated in ('{{ playbook_dir }}/state', '{% if x %}a{% endif %}', 'a {# note #}'):
        assert not fleet.template_free({'k': [templated]}), templated
    assert not fleet.template_free({'client_secret': object()})
