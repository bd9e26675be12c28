# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: the document (report.json), Markdown, HTML, the console summary, and writing them.

Rows are rebuilt from a fixed list of secret-free fields: whatever else a row carries is dropped.
"""

from __future__ import annotations

import datetime
import json
import os
import typing as t

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history
from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import remove_stale_temporary_files, write_durably
from ansible_collections.sfdc.eca.plugins.plugin_utils._report_html import render_html
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import fingerprint, iso, now, parse_time, suffix

ROW_FIELDS = ('org', 'instance_url', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'plan', 'plan_reason',
              'outcome', 'phase', 'old_key', 'new_key', 'slot_before', 'state', 'expiry', 'grace_end', 'staged_expiration',
              'staged_key', 'rolled_back', 'revoked', 'old_pair_refused', 'delivered_to', 'findings', 'last_rotated',
              'error', 'started', 'finished', 'duration')
ROTATION_OUTCOMES = ('rotated', 'skipped', 'blocked', 'failed', 'planned', 'not_run')
AUDIT_OUTCOMES = ('ok', 'attention', 'failed')
ATTENTION = ('failed', 'blocked', 'not_run', 'attention')


def _clean(row):
    return dict((k, row.get(k)) for k in ROW_FIELDS if k in row)


def build(rows, kind='rotation', check_mode=False, meta=None):
    """The report document: {kind, generated, check_mode, totals, orgs, rows}."""
    rows = [_clean(r) for r in rows or [] if isinstance(r, dict)]
    rows.sort(key=lambda r: (to_text(r.get('org')), to_text(r.get('app_name')), to_text(r.get('consumer_name'))))
    outcomes = ROTATION_OUTCOMES if kind == 'rotation' else AUDIT_OUTCOMES
    totals = dict((o, 0) for o in outcomes)
    for row in rows:
        totals[row.get('outcome')] = totals.get(row.get('outcome'), 0) + 1
    orgs = {}
    for row in rows:
        org = orgs.setdefault(row.get('org'), {'org': row.get('org'), 'consumers': 0, 'failed': 0, 'duration': row.get('duration')})
        if row.get('consumer_name') or row.get('app_name'):
            org['consumers'] += 1
        if row.get('outcome') == 'failed':
            org['failed'] += 1
    plans = {}
    for row in rows:
        if row.get('plan'):
            plans[row['plan']] = plans.get(row['plan'], 0) + 1
    if kind == 'rotation':
        totals['plans'] = dict(sorted(plans.items()))
    totals['orgs'] = len(orgs)
    totals['orgs_failed'] = sum(1 for o in orgs.values() if o['failed'])
    totals['consumers'] = len(rows)
    if kind == 'audit':
        findings = {}
        for row in rows:
            for finding in row.get('findings') or []:
                findings[finding] = findings.get(finding, 0) + 1
        totals['findings'] = dict(sorted(findings.items()))
    durations = [r.get('duration') for r in rows if isinstance(r.get('duration'), (int, float))]
    report = {
        'kind': kind,
        'generated': iso(now()),
        'check_mode': bool(check_mode),
        'totals': totals,
        'orgs': sorted(orgs.values(), key=lambda o: to_text(o['org'])),
        'rows': rows,
    }
    if durations:
        report['slowest_org_seconds'] = max(durations)
    if meta:
        report.update(dict((k, v) for k, v in meta.items() if k not in report))
    return report


def _totals_line(report):
    totals = report.get('totals') or {}
    outcomes = ROTATION_OUTCOMES if report.get('kind') == 'rotation' else AUDIT_OUTCOMES
    parts = ['%d %s' % (totals.get(o, 0), o.replace('_', ' ')) for o in outcomes if totals.get(o)]
    return '%d orgs, %d consumers: %s' % (totals.get('orgs', 0), totals.get('consumers', 0), ', '.join(parts) or 'nothing')


def _cell(value):
    if value is None or value == '':
        return ''
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (list, tuple)):
        return ', '.join(to_text(v) for v in value)
    return to_text(value)


def _keys(row):
    old, new = row.get('old_key'), row.get('new_key')
    if old and new:
        return '%s → %s' % (old, new)
    return old or new or row.get('staged_key') or ''


def _detail(row):
    return row.get('error') or row.get('plan_reason') or ''


def console(report, max_rows=20, paths=None):
    """A few lines for the console: totals, then only failed/blocked/not-run rows, capped."""
    title = 'sfdc.eca %s%s' % (report.get('kind'), ' (check mode: nothing was written to any org)' if report.get('check_mode') else '')
    lines = ['%s: %s' % (title, _totals_line(report))]
    if report.get('kind') == 'rotation' and report['totals'].get('plans'):
        lines.append('plan: ' + ', '.join('%s %d' % (k, v) for k, v in report['totals']['plans'].items()))
    if report.get('kind') == 'audit' and report['totals'].get('findings'):
        lines.append('findings: ' + ', '.join('%s %d' % (k, v) for k, v in report['totals']['findings'].items()))
    wanted = [r for r in report.get('rows') or [] if r.get('outcome') in ATTENTION]
    try:
        cap = max(0, int(max_rows))
    except (TypeError, ValueError):
        cap = 20
    for row in wanted[:cap]:
        text = '%s %s %s/%s' % (row.get('outcome', '').upper(), row.get('org'), row.get('app_name') or '-', row.get('consumer_name') or '*')
        if row.get('phase') and row.get('outcome') == 'failed':
            text += ' at %s' % row['phase']
        detail = _detail(row)
        if detail:
            text += ': ' + (detail if len(detail) <= 160 else detail[:157] + '...')
        lines.append(text)
    if len(wanted) > cap:
        lines.append('... and %d more rows needing attention: see the report' % (len(wanted) - cap))
    for path in paths or []:
        lines.append('report: %s' % path)
    return lines


def _md(value):
    return _cell(value).replace('|', '\\|').replace('\n', ' ')


def markdown(report):
    kind = report.get('kind')
    out = ['# sfdc.eca %s report' % kind, '',
           'Generated %s%s.' % (report.get('generated'), ' in check mode: nothing was written to any org' if report.get('check_mode') else ''),
           '', '**%s**' % _totals_line(report), '']
    totals = report.get('totals') or {}
    out.append('| total | count |')
    out.append('|---|---|')
    for name, value in totals.items():
        if isinstance(value, dict):
            for sub, count in value.items():
                out.append('| %s: %s | %s |' % (_md(name.rstrip('s')), _md(sub), count))
        else:
            out.append('| %s | %s |' % (_md(name.replace('_', ' ')), value))
    out.append('')
    if kind == 'audit':
        header = ['org', 'app', 'consumer', 'outcome', 'main key', 'staged', 'state', 'expiry', 'findings', 'last rotated', 'error']
        out.append('| ' + ' | '.join(header) + ' |')
        out.append('|' + '---|' * len(header))
        for row in report.get('rows') or []:
            out.append('| ' + ' | '.join(_md(v) for v in (
                row.get('org'), row.get('app_name'), row.get('consumer_name'), row.get('outcome'), row.get('old_key'),
                row.get('staged_key'), row.get('state'), row.get('expiry'), row.get('findings'), row.get('last_rotated'),
                row.get('error'))) + ' |')
    else:
        header = ['org', 'app', 'consumer', 'plan', 'outcome', 'keys (old → new)', 'state', 'expiry', 'duration (s)', 'error / reason']
        out.append('| ' + ' | '.join(header) + ' |')
        out.append('|' + '---|' * len(header))
        for row in report.get('rows') or []:
            out.append('| ' + ' | '.join(_md(v) for v in (
                row.get('org'), row.get('app_name'), row.get('consumer_name'), row.get('plan'), row.get('outcome'),
                _keys(row), row.get('state'), row.get('expiry'), row.get('duration'),
                ('at %s: ' % row['phase'] if row.get('outcome') == 'failed' and row.get('phase') else '') + _detail(row))) + ' |')
    out.append('')
    return '\n'.join(out)


def stats(report):
    """The totals for set_stats (numbers only)."""
    totals = report.get('totals') or {}
    return dict((k, v) for k, v in totals.items() if isinstance(v, int))


# --------------------------------------------------------------------------------------------------
# rows of the orgs of a play, and writing the report


def org_result(value: t.Any, org: str) -> dict[str, t.Any]:
    """An org's result in its registered variable: {orgs: {org: result}} (a task for a batch or for the org)."""
    if isinstance(value, dict) and isinstance(value.get('orgs'), dict):
        value = value['orgs'].get(org)
    return value if isinstance(value, dict) else {}


def registered_reader(variable_manager: t.Any, hostvars: t.Any, name: str) -> t.Callable[[str], t.Any]:
    """host -> the value of ``name`` a task of that host registered (or set_fact set), as ``hostvars[host][name]``
    gives it, else None.

    A batch task registers one result, holding every org of the batch, on each of the batch's hosts: reading it
    through ``hostvars`` templates the whole result once per host, N times N orgs for a fleet. A registered
    value is data, not a template, so it is read as stored, unless an extra var of that name (which outranks it)
    or no registered value makes ``hostvars`` the answer."""
    facts = getattr(variable_manager, '_nonpersistent_fact_cache', None)
    extra = getattr(variable_manager, 'extra_vars', None)
    fast = isinstance(facts, dict) and isinstance(extra, t.Mapping) and name not in extra

    def read(host: str) -> t.Any:
        if fast:
            own = facts.get(host)
            if own is not None and name in own:
                return own[name]
        try:
            return hostvars[host].get(name) if hostvars is not None else None
        except Exception:  # an undefined or untemplatable var means "not recorded"
            return None
    return read


def collect_rows(orgs: t.Iterable[str], registered: t.Callable[[str], t.Any]) -> list[dict[str, t.Any]]:
    """Every org's rows; ``registered(org)`` gives its registered result. An org that recorded nothing gets one
    failed row (the playbook failed for it before its task ran)."""
    rows = []
    for org in orgs:
        records = org_result(registered(org), org).get('records')
        if not isinstance(records, list):
            rows.append({'org': org, 'app_name': None, 'consumer_name': None, 'outcome': 'failed', 'phase': None,
                         'error': 'the playbook failed for this org before it recorded anything: see the log of this run'})
            continue
        rows.extend(r for r in records if isinstance(r, dict))
    return rows


def failed_orgs(report: dict[str, t.Any]) -> dict[str, list[str]]:
    """{org: [app/consumer, ...]} of the failed rows, in report order."""
    out: dict[str, list[str]] = {}
    for row in report.get('rows') or []:
        if row.get('outcome') == 'failed':
            out.setdefault(row.get('org'), []).append('%s/%s' % (row.get('app_name') or '-', row.get('consumer_name') or '*'))
    return out


def write(rows: list[dict[str, t.Any]], kind: str, report_dir: str, state_dir: str,
          planned: bool = False, meta: dict[str, t.Any] | None = None, notes: list[str] | None = None,
          history_rows: bool = True) -> tuple[dict[str, t.Any], list[str]]:
    """Write report.{json,md,html} (or audit.*) and, after a rotation that was not a plan only, merge the rows and
    every org's history file into history.json. ``meta``: more keys of report.json; ``notes``: Markdown lines after
    the totals; ``history_rows=False``: the rows are already in the history (a merge of slices' reports), only the
    org files are merged. -> (report, paths written)."""
    report = build(rows, kind, planned, meta)
    base = 'report' if kind == 'rotation' else 'audit'
    written = []
    for directory in sorted(set((report_dir, state_dir))):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    hist = history.History(state_dir)
    with hist.lock():  # another run sharing the state dir may be writing: its temporary files are not stale
        remove_stale_temporary_files(report_dir, state_dir, os.path.join(state_dir, 'history.d'))
    text_md = markdown(report)
    if notes:
        head, sep, rest = text_md.partition('\n\n| total | count |')
        text_md = head + '\n\n' + '\n'.join(notes) + sep + rest
    for ext, text in (('json', json.dumps(report, indent=2, sort_keys=False) + '\n'), ('md', text_md),
                      ('html', render_html(report))):
        path = os.path.join(report_dir, '%s.%s' % (base, ext))
        write_durably(path, text.encode('utf-8'))
        os.chmod(path, 0o644)  # the report holds no secret: readable like any report
        written.append(path)
    if kind == 'rotation' and not planned:
        written.append(hist.merge(rows if history_rows else []))
    return report, written


# --------------------------------------------------------------------------------------------------
# audit rows


SERIOUS_FINDINGS = ('staged_expiring', 'staged_expired', 'rotated_outside_tool')


def audit_rows(org: str, instance_url: str | None, apps: list[dict[str, t.Any]],
               entries: dict[str, dict[str, t.Any]], warn_days: float, moment: datetime.datetime | None = None,
               ) -> list[dict[str, t.Any]]:
    """Audit rows of one org. ``apps``: [{app_name, app_id, consumers: [{id, name, key, staged}] | None,
    error: None | message}]; ``entries``: the org's history entries."""
    moment = moment or now()
    rows = []
    for app in apps:
        base = {'org': org, 'instance_url': instance_url, 'app_name': app.get('app_name'), 'app_id': app.get('app_id')}
        if app.get('error'):
            rows.append(dict(base, outcome='failed', phase='read', error=app['error']))
            continue
        consumers = app.get('consumers') or []
        if not consumers:
            rows.append(dict(base, outcome='ok', findings=['no_consumer'], state=None))
        for consumer in consumers:
            staged = consumer.get('staged') or None
            state = staged.get('state') if staged else 'empty'
            hist = entries.get(history.key(org, app.get('app_name'), consumer.get('name'))) or {}
            findings = []
            expiry = staged.get('expiration_date') if staged else None
            ends = parse_time(expiry)
            if state == 'Active':
                findings.append('staged_waiting')
                if ends is not None and ends - moment <= datetime.timedelta(days=warn_days):
                    findings.append('staged_expiring')
            elif state == 'Expired':
                findings.append('staged_expired')
            elif state == 'Rotated':
                findings.append('previous_in_grace')
            if not hist.get('last_rotated'):
                findings.append('never_rotated_by_tool')
            elif hist.get('key_fp') and hist.get('key_fp') != fingerprint(consumer.get('key')):
                findings.append('rotated_outside_tool')
            rows.append(dict(base, consumer_name=consumer.get('name'), consumer_id=consumer.get('id'),
                             old_key=suffix(consumer.get('key')), staged_key=suffix(staged.get('key')) if staged else None,
                             state=state, expiry=expiry, findings=findings, last_rotated=hist.get('last_rotated'),
                             outcome='attention' if set(findings) & set(SERIOUS_FINDINGS) else 'ok'))
    return rows
