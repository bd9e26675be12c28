"""A fleet run split over several jobs (plugins/plugin_utils/_slices.py): the canary record and the gate of the later
jobs, the merge of the jobs' reports, and the history when the jobs write one state dir at the same time."""

import json
import multiprocessing
import os
import traceback

import pytest

from ansible_collections.sfdc.eca.plugins.plugin_utils import _report, _slices
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history


def _row(org, outcome='rotated', app='Billing_Sync', consumer='Billing', **extra):
    row = {'org': org, 'app_name': app, 'consumer_name': consumer, 'outcome': outcome, 'plan': 'rotate',
           'started': '2024-01-01T00:00:00Z', 'finished': '2024-01-01T00:00:01Z', 'duration': 1.0}
    row.update(extra)
    return row


def _job(report_dir, state_dir, run, job, rows, role='slice', orgs=None, kind='rotation'):
    target = _slices.job_dir(str(report_dir), run, job)
    report, _written = _report.write(rows, kind, target, str(state_dir), planned=False)
    _slices.write_manifest(target, run, job, kind, False, orgs or sorted({r['org'] for r in rows}), report, role)
    if role == 'canary':
        _slices.write_canary(str(state_dir), run, job, report, target)
    return target


# -- the canary record and the gate ----------------------------------------------------------------


def test_no_canary_record_leaves_the_gate_open(tmp_path):
    gate = _slices.fleet_gate(str(tmp_path), '')
    assert (gate.refuse, gate.done, gate.problem) == (None, set(), None)


def test_a_passed_canary_lets_its_run_go_on_without_its_orgs(tmp_path):
    _job(tmp_path, tmp_path, '77', '78', [_row('org0001'), _row('org0002', 'blocked')], role='canary')
    record = json.loads((tmp_path / 'canary' / 'run-77.json').read_text())
    assert record['outcome'] == 'passed' and record['orgs'] == ['org0001', 'org0002'] and record['job'] == '78'
    assert oct((tmp_path / 'canary' / 'run-77.json').stat().st_mode & 0o777) == '0o600'
    gate = _slices.fleet_gate(str(tmp_path), '77')
    assert gate.refuse is None and gate.done == {'org0001', 'org0002'} and gate.run == '77'
    assert _slices.fleet_gate(str(tmp_path), '').refuse is None  # latest passed


def test_a_failed_canary_refuses_its_run_and_every_run_naming_none_but_none(tmp_path):
    _job(tmp_path, tmp_path, '77', '78', [_row('org0001', 'failed', phase='deliver', error='refused')], role='canary')
    gate = _slices.fleet_gate(str(tmp_path), 77)
    assert gate.refuse and 'canary of run 77 failed (org0001)' in gate.refuse and not gate.done
    latest = _slices.fleet_gate(str(tmp_path), '')
    assert latest.refuse and 'latest fleet canary (run 77' in latest.refuse and 'sfdc_eca_canary_run=none' in latest.refuse
    assert _slices.fleet_gate(str(tmp_path), 'none').refuse is None
    assert _slices.fleet_gate(str(tmp_path), 'None').refuse is None
    # a later canary that passes lifts the refusal of the runs that name none
    _job(tmp_path, tmp_path, '90', '91', [_row('org0001')], role='canary')
    assert _slices.fleet_gate(str(tmp_path), '').refuse is None
    assert _slices.fleet_gate(str(tmp_path), '77').refuse  # run 77 itself stays refused


def test_a_not_run_canary_org_fails_the_canary(tmp_path):
    _job(tmp_path, tmp_path, '5', '6', [_row('org0001'), _row('org0002', 'not_run', consumer=None)], role='canary')
    assert json.loads((tmp_path / 'canary' / 'run-5.json').read_text())['failed_orgs'] == ['org0002']
    assert _slices.fleet_gate(str(tmp_path), '5').refuse


def test_a_run_without_its_canary_record_refuses(tmp_path):
    gate = _slices.fleet_gate(str(tmp_path), '12')
    assert gate.refuse and 'no record of the fleet canary of run 12' in gate.refuse


@pytest.mark.parametrize('bad', ['../x', 'a/b', '.hidden', 'x' * 200, 'a b'])
def test_a_bad_run_id_is_a_problem_naming_it(tmp_path, bad):
    gate = _slices.fleet_gate(str(tmp_path), bad)
    assert gate.problem and repr(bad) in gate.problem and 'letters, digits' in gate.problem
    with pytest.raises(_slices.SliceError, match='run id'):
        _slices.job_dir(str(tmp_path), bad, '1')


def test_an_unreadable_latest_record_refuses(tmp_path):
    (tmp_path / 'canary').mkdir()
    (tmp_path / 'canary' / 'latest.json').write_text('{')
    gate = _slices.fleet_gate(str(tmp_path), '')
    assert gate.refuse and 'latest.json' in gate.refuse


# -- the merge --------------------------------------------------------------------------------------


def test_merge_is_the_union_of_the_jobs_rows_and_says_what_it_merged(tmp_path):
    reports, state = tmp_path / 'r', tmp_path / 's'
    _job(reports, state, '9', '10', [_row('org1')], role='canary')
    _job(reports, state, '9', '11', [_row('org2'), _row('org4', 'blocked')], orgs=['org1', 'org2', 'org4'])
    _job(reports, state, '9', '12', [_row('org3', app='Data', consumer='X'), _row('org3')])
    report, written, info = _slices.write_merged(str(reports), str(state), '9', expected_orgs=['org1', 'org2', 'org3', 'org4'],
                                                 slices=2)
    single = _report.build([_row('org1'), _row('org2'), _row('org4', 'blocked'), _row('org3', app='Data', consumer='X'),
                            _row('org3')])
    assert report['rows'] == single['rows'] and report['totals'] == single['totals']
    assert info['complete'] and info['canary'] == '10' and info['slices_found'] == 2 and not info['missing_orgs']
    assert str(reports / 'report.json') in written and str(state / 'history.json') in written
    on_disk = json.loads((reports / 'report.json').read_text())
    assert on_disk['merged']['run'] == '9' and on_disk['rows'] == single['rows']
    assert 'merged run 9: the canary job 10 and 2 slice job(s) (11, 12) of 2 expected' in (reports / 'report.md').read_text()


def test_merge_names_missing_slices_and_orgs_and_fails_them(tmp_path):
    _job(tmp_path, tmp_path, 'r1', 'a', [_row('org1')])
    (tmp_path / 'slices' / 'r1' / 'b').mkdir()  # a job that started its report and never finished it
    report, _written, info = _slices.write_merged(str(tmp_path), str(tmp_path), 'r1', expected_orgs=['org1', 'org2'], slices=3)
    assert not info['complete'] and info['missing_orgs'] == ['org2'] and info['missing_slices'] == 2
    assert info['incomplete_jobs'] == ['b']
    row = [r for r in report['rows'] if r['org'] == 'org2'][0]
    assert row['outcome'] == 'failed' and 'no job of run r1 reported this org' in row['error']
    lines = _slices.describe(info)
    assert any(line.startswith('MISSING: 2 slice job(s)') for line in lines)
    assert any(line.startswith('MISSING: 1 org(s) reported by no job: org2') for line in lines)
    assert any(line.startswith('INCOMPLETE: job(s) b') for line in lines)


def test_a_relaunched_slice_replaces_the_first_attempt(tmp_path):
    _job(tmp_path, tmp_path, 'r', '20', [_row('org1', 'failed', phase='promote', error='503'), _row('org2')])
    _job(tmp_path, tmp_path, 'r', '31', [_row('org1')], orgs=['org1'])
    report, _written, info = _slices.write_merged(str(tmp_path), str(tmp_path), 'r', expected_orgs=['org1', 'org2'])
    assert [(r['org'], r['outcome']) for r in report['rows']] == [('org1', 'rotated'), ('org2', 'rotated')]
    assert info['replaced'] == [{'org': 'org1', 'job': '20', 'by': '31'}]


def test_merge_of_a_run_nobody_wrote_says_where_it_looked(tmp_path):
    with pytest.raises(_slices.SliceError, match='no job of run 404 wrote a report'):
        _slices.merge(str(tmp_path), '404')


def test_merge_keeps_rotation_and_audit_apart(tmp_path):
    _job(tmp_path, tmp_path, 'r', '1', [_row('org1')])
    _job(tmp_path, tmp_path, 'r', '2', [_row('org2', 'ok')], kind='audit')
    rows, info, _planned = _slices.merge(str(tmp_path), 'r', 'audit')
    assert [r['org'] for r in rows] == ['org2'] and [j['job'] for j in info['jobs']] == ['2']


# -- the history, written by several jobs at once ------------------------------------------------------


def _writer(state_dir, worker, rounds, errors):
    try:
        for i in range(rounds):
            org = 'w%d-o%d' % (worker, i)
            rotated = dict(_row(org), _new_key_fp='fp-%s' % org, new_key='...%04d' % i)
            hist = history.History(state_dir)
            hist.record_intent(org, [('Billing_Sync', 'Billing', None, 'fp-%s' % org)])
            hist.record_rows(org, [rotated])
            # a blocked consumer lives only in history.json: a lost merge loses it
            _report.write([rotated, _row(org, 'blocked', app='Other', consumer='C')], 'rotation',
                          os.path.join(state_dir, 'reports', str(worker)), state_dir)
    except BaseException:  # pylint: disable=broad-exception-caught
        errors.put(traceback.format_exc())


def test_jobs_writing_one_state_dir_at_once_lose_nothing(tmp_path):
    """Slices share the state dir: merges into history.json must not lose another's entries, and a report's clean-up of
    stale temporary files must not remove the file another job is writing."""
    context = multiprocessing.get_context('fork')
    errors = context.Queue()
    workers, rounds = 6, 15
    procs = [context.Process(target=_writer, args=(str(tmp_path), w, rounds, errors)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found[0]
    assert all(proc.exitcode == 0 for proc in procs)
    consumers = json.loads((tmp_path / 'history.json').read_text())['consumers']
    for w in range(workers):
        for i in range(rounds):
            org = 'w%d-o%d' % (w, i)
            assert consumers.get('%s/Other/C' % org, {}).get('last_outcome') == 'blocked', org
            entry = consumers.get('%s/Billing_Sync/Billing' % org, {})
            assert entry.get('key_fp') == 'fp-%s' % org and 'promoting_fp' not in entry, (org, entry)
    assert not list(tmp_path.rglob('*.tmp'))
