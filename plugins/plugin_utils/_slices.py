# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One fleet run split over several jobs (AWX job slicing, a fleet-wide canary): where each job's report goes,
the canary's record, the gate a job reads from it, and the merge of the jobs' reports into one fleet report.

- A job of run ``RUN`` writes its report into ``REPORT_DIR/slices/RUN/JOB/`` and, last, ``job.json`` there (its
  manifest: which orgs it covered, when, whether it was the canary). The history stays per org
  (``history.d/ORG.json``); history.json is merged under the history lock.
- The canary job also writes ``STATE_DIR/canary/run-RUN.json`` (its outcome and orgs) and ``latest.json``.
  A later job names the canary it follows (``canary_run``): it runs only when that record says ``passed``, and
  leaves out the canary's orgs. A job naming none refuses to run while the latest canary record says
  ``failed``; ``none`` turns the check off.
- ``merge`` builds the fleet report from every job's report of a run: per org the rows of the last job that
  reported it; orgs no job reported are failed rows, and missing slices are named.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import typing as t

from ansible_collections.sfdc.eca.plugins.plugin_utils import _report
from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import write_durably
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import iso, now

VERSION = 1
SLICES = 'slices'
MANIFEST = 'job.json'
CANARY_DIR = 'canary'
LATEST = 'latest.json'
NO_CANARY = 'none'
_NAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$')


class SliceError(Exception):
    """A run or job name, a manifest or a canary record that cannot be used."""


def check_id(value: t.Any, what: str) -> str:
    """A run or job id: it names a folder, so only a plain name is accepted."""
    text = '' if value is None else str(value).strip()
    if not _NAME.match(text) or '..' in text:
        raise SliceError("%s %r cannot name a folder of the fleet run: use 1 to 128 letters, digits, '.', '_' or '-', "
                         "not starting with '.' (AWX job ids are numbers)" % (what, text))
    return text


def new_job_id() -> str:
    """A job id for a run outside AWX (AWX gives each job its number)."""
    return 'job-%s-%s' % (time.strftime('%Y%m%dT%H%M%S', time.gmtime()), secrets.token_hex(3))


def run_dir(report_dir: str, run: str) -> str:
    return os.path.join(report_dir, SLICES, check_id(run, 'run id'))


def job_dir(report_dir: str, run: str, job: str) -> str:
    return os.path.join(run_dir(report_dir, run), check_id(job, 'job id'))


def _write_json(path: str, data: t.Any, mode: int = 0o644) -> str:
    write_durably(path, (json.dumps(data, indent=2) + '\n').encode('utf-8'), dir_mode=0o755)
    os.chmod(path, mode)
    return path


def _read_json(path: str, what: str) -> dict[str, t.Any] | None:
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SliceError('cannot read %s %s: %s' % (what, path, getattr(exc, 'strerror', None) or exc))
    if not isinstance(data, dict):
        raise SliceError('%s %s must hold a JSON object' % (what, path))
    return data


# --------------------------------------------------------------------------------------------------
# one job of a run


def write_manifest(directory: str, run: str, job: str, kind: str, planned: bool, orgs: t.Iterable[str],
                   report: dict[str, t.Any], role: str = 'slice') -> str:
    """The job's manifest, written after its report and history: its presence says the job finished its report."""
    rows_orgs = sorted(set(str(r.get('org')) for r in report.get('rows') or []))
    return _write_json(os.path.join(directory, MANIFEST), {
        'version': VERSION, 'run': run, 'job': job, 'role': role, 'kind': kind, 'check_mode': bool(planned),
        'orgs': sorted(set(str(o) for o in orgs)), 'reported_orgs': rows_orgs,
        'totals': report.get('totals') or {}, 'finished': iso(now()), 'finished_epoch': time.time()})


# --------------------------------------------------------------------------------------------------
# the canary record and the gate of the later jobs


def canary_file(state_dir: str, run: str) -> str:
    return os.path.join(state_dir, CANARY_DIR, 'run-%s.json' % check_id(run, 'run id'))


def canary_outcome(report: dict[str, t.Any]) -> tuple[str, list[str]]:
    """-> ('passed' | 'failed', the orgs that failed or did not run). A canary with no org proves nothing."""
    bad = sorted(set(str(r.get('org')) for r in report.get('rows') or [] if r.get('outcome') in ('failed', 'not_run')))
    if not report.get('rows'):
        return 'failed', []
    return ('failed' if bad else 'passed'), bad


def write_canary(state_dir: str, run: str, job: str, report: dict[str, t.Any], report_dir: str) -> list[str]:
    """The canary job's outcome, for the jobs that follow it: its run's record, then ``latest.json``."""
    outcome, bad = canary_outcome(report)
    record = {'version': VERSION, 'run': run, 'job': job, 'outcome': outcome,
              'orgs': sorted(set(str(r.get('org')) for r in report.get('rows') or [])), 'failed_orgs': bad,
              'totals': report.get('totals') or {}, 'finished': iso(now()), 'report_dir': report_dir}
    path = _write_json(canary_file(state_dir, run), record, 0o600)
    return [path, _write_json(os.path.join(state_dir, CANARY_DIR, LATEST), record, 0o600)]


def _names(orgs: list[str]) -> str:
    return ', '.join(orgs[:5]) + (' and %d more' % (len(orgs) - 5) if len(orgs) > 5 else '')


class FleetGate:
    """What a job may do after the fleet's canary: ``refuse`` (a reason: run no org), ``done`` (the canary's orgs,
    left out), ``problem`` (a bad ``canary_run`` value: every org fails naming it)."""

    def __init__(self, refuse: str | None = None, done: t.Iterable[str] = (), problem: str | None = None,
                 run: str | None = None) -> None:
        self.refuse = refuse
        self.done = set(done)
        self.problem = problem
        self.run = run


def fleet_gate(state_dir: str, canary_run: t.Any) -> FleetGate:
    """The gate of a rotation job: ``canary_run`` names the canary it follows ('' = the latest, 'none' = no check)."""
    value = '' if canary_run is None else str(canary_run).strip()
    if value.lower() == NO_CANARY:
        return FleetGate()
    directory = os.path.join(state_dir, CANARY_DIR)
    if not value:
        try:
            latest = _read_json(os.path.join(directory, LATEST), 'the latest canary record')
        except SliceError as exc:
            return FleetGate(refuse='not run: %s; fix or remove it' % exc)
        if latest is None or latest.get('outcome') == 'passed':
            return FleetGate()
        return FleetGate(refuse='not run: the latest fleet canary (run %s, %s) failed (%s): run the canary again once '
                                'that is fixed, or set sfdc_eca_canary_run=none to rotate without a fleet canary'
                                % (latest.get('run'), latest.get('finished'), _names(latest.get('failed_orgs') or [])
                                   or 'no org ran'))
    try:
        run = check_id(value, 'sfdc_eca_canary_run')
        record = _read_json(canary_file(state_dir, run), 'the canary record')
    except SliceError as exc:
        return FleetGate(problem=str(exc))
    if record is None:
        return FleetGate(refuse='not run: no record of the fleet canary of run %s in %s: the canary job did not '
                                'finish, or ran with another sfdc_eca_state_dir' % (run, directory), run=run)
    if record.get('outcome') != 'passed':
        return FleetGate(refuse='not run: the fleet canary of run %s failed (%s)'
                                % (run, _names(record.get('failed_orgs') or []) or 'no org ran'), run=run)
    return FleetGate(done=[str(o) for o in record.get('orgs') or []], run=run)


def done_by_canary(run: str | None) -> dict[str, t.Any]:
    """The result of an org the canary already rotated: no rows here, its rows are in the canary's report."""
    return {'changed': False, 'canary': False, 'plan': ['rotated by the fleet canary of run %s' % run], 'api_calls': 0,
            'records': [], 'org_failed': False, 'warnings': [], 'fleet_canary': run}


# --------------------------------------------------------------------------------------------------
# the merge


def _job_report(directory: str, manifest: dict[str, t.Any]) -> dict[str, t.Any]:
    base = 'report' if manifest.get('kind', 'rotation') == 'rotation' else 'audit'
    report = _read_json(os.path.join(directory, base + '.json'), 'the report of job %s' % manifest.get('job'))
    if report is None:
        raise SliceError('job %s of run %s has a manifest but no %s.json in %s'
                         % (manifest.get('job'), manifest.get('run'), base, directory))
    return report


def merge(report_dir: str, run: str, kind: str = 'rotation', expected_orgs: t.Iterable[str] | None = None,
          slices: int | None = None) -> tuple[list[dict[str, t.Any]], dict[str, t.Any], bool]:
    """Every job's rows of the run -> (rows, what was merged, planned). Per org, the rows of the job that finished
    last win (a relaunched slice replaces the first attempt); an expected org no job reported gets a failed row."""
    folder = run_dir(report_dir, run)
    if not os.path.isdir(folder):
        raise SliceError('no job of run %s wrote a report: %s does not exist (is sfdc_eca_run_id the run of the '
                         'slices, and sfdc_eca_report_dir the folder they wrote to?)' % (run, folder))
    jobs, incomplete = [], []
    for name in sorted(os.listdir(folder)):
        directory = os.path.join(folder, name)
        if name.startswith('.') or not os.path.isdir(directory):
            continue
        manifest = _read_json(os.path.join(directory, MANIFEST), 'the manifest of job %s' % name)
        if manifest is None:
            incomplete.append(name)
            continue
        if manifest.get('kind', 'rotation') != kind:
            continue
        jobs.append((float(manifest.get('finished_epoch') or 0), name, manifest, directory))
    jobs.sort()
    owner: dict[str, str] = {}
    rows_of: dict[str, list[dict[str, t.Any]]] = {}
    replaced = []
    planned = []
    summary = []
    for _when, name, manifest, directory in jobs:
        report = _job_report(directory, manifest)
        planned.append(bool(report.get('check_mode')))
        by_org: dict[str, list[dict[str, t.Any]]] = {}
        for row in report.get('rows') or []:
            by_org.setdefault(str(row.get('org')), []).append(row)
        for org, rows in by_org.items():
            if org in owner:
                replaced.append({'org': org, 'job': owner[org], 'by': name})
            owner[org] = name
            rows_of[org] = rows
        summary.append({'job': name, 'role': manifest.get('role') or 'slice', 'orgs': len(by_org),
                        'finished': manifest.get('finished'), 'totals': report.get('totals') or {}})
    rows = [row for org in sorted(rows_of) for row in rows_of[org]]
    expected = sorted(set(str(o) for o in expected_orgs or []))
    missing = [org for org in expected if org not in rows_of]
    stamp = iso(now())
    for org in missing:
        rows.append({'org': org, 'app_name': None, 'consumer_name': None, 'outcome': 'failed', 'phase': 'report',
                     'started': stamp, 'finished': stamp,
                     'error': 'no job of run %s reported this org: its slice did not finish (or ran with another '
                              'sfdc_eca_report_dir); see that AWX job, and history.d/%s.json for what it promoted'
                              % (run, org)})
    found = [s for s in summary if s['role'] != 'canary']
    info = {
        'run': run,
        'jobs': summary,
        'canary': next((s['job'] for s in summary if s['role'] == 'canary'), None),
        'slices_found': len(found),
        'slices_expected': slices,
        'missing_slices': max(0, slices - len(found)) if slices else 0,
        'missing_orgs': missing,
        'incomplete_jobs': incomplete,
        'replaced': replaced,
    }
    info['complete'] = not (missing or info['missing_slices'] or incomplete)
    return rows, info, bool(planned) and all(planned)


def describe(info: dict[str, t.Any]) -> list[str]:
    """A few lines saying what was merged and what is missing."""
    canary = info.get('canary')
    slices = sorted((s['job'] for s in info['jobs'] if s['role'] != 'canary'), key=lambda j: (len(j), j))
    lines = ['merged run %s: %s%d slice job(s) (%s)%s' % (
        info['run'], 'the canary job %s and ' % canary if canary else '', info['slices_found'],
        ', '.join(slices) or 'none',
        ' of %d expected' % info['slices_expected'] if info.get('slices_expected') else '')]
    if info.get('missing_slices'):
        lines.append('MISSING: %d slice job(s) wrote no report' % info['missing_slices'])
    if info.get('incomplete_jobs'):
        lines.append('INCOMPLETE: job(s) %s started their report but did not finish it' % ', '.join(info['incomplete_jobs']))
    if info.get('missing_orgs'):
        lines.append('MISSING: %d org(s) reported by no job: %s' % (len(info['missing_orgs']), _names(info['missing_orgs'])))
    for item in info.get('replaced')[:5]:
        lines.append('%s: the rows of job %s replace those of job %s (run later)' % (item['org'], item['by'], item['job']))
    if info.get('complete'):
        lines.append('no slice and no org missing')
    return lines


def write_merged(report_dir: str, state_dir: str, run: str, kind: str = 'rotation',
                 expected_orgs: t.Iterable[str] | None = None, slices: int | None = None,
                 ) -> tuple[dict[str, t.Any], list[str], dict[str, t.Any]]:
    """The merged fleet report in ``report_dir`` (report.* or audit.*), and history.json merged with every org's
    file. -> (report, files written, what was merged)."""
    rows, info, planned = merge(report_dir, run, kind, expected_orgs, slices)
    lines = describe(info)
    # each job merged its own rows into the history; the org files also hold a job's killed before its report
    report, written = _report.write(rows, kind, report_dir, state_dir, planned, meta={'merged': info},
                                    notes=['*%s*' % line for line in lines], history_rows=False)
    return report, written, info
