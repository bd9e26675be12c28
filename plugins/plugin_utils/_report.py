# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: the document (report.json), Markdown, HTML, the console summary, and writing them.

Rows are rebuilt from a fixed list of secret-free fields: whatever else a row carries is dropped.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import typing as t

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history
from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import remove_stale_temporary_files, write_durably
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import fingerprint, iso, now, parse_time, suffix

ROW_FIELDS = ('org', 'instance_url', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'plan', 'plan_reason',
              'outcome', 'phase', 'old_key', 'new_key', 'slot_before', 'state', 'expiry', 'staged_key',
              'rolled_back', 'revoked', 'old_pair_refused', 'delivered_to', 'findings', 'last_rotated',
              'error', 'started', 'finished', 'duration')
ROTATION_OUTCOMES = ('rotated', 'skipped', 'blocked', 'failed', 'planned', 'not_run')
AUDIT_OUTCOMES = ('ok', 'attention', 'failed')
ATTENTION = ('failed', 'blocked', 'not_run', 'attention')
COLOURS = {'rotated': '#1a7f37', 'ok': '#1a7f37', 'skipped': '#57606a', 'planned': '#0969da', 'blocked': '#9a6700',
           'attention': '#9a6700', 'failed': '#cf222e', 'not_run': '#8250df'}


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


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1f2328;background:#f6f8fa}
h1{font-size:1.5rem;margin:0 0 .25rem} .sub{color:#57606a;margin-bottom:1.25rem}
.cards{display:flex;flex-wrap:wrap;gap:.75rem;margin-bottom:1.25rem}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.6rem 1rem;min-width:6.5rem}
.card b{display:block;font-size:1.4rem} .card span{color:#57606a;font-size:.85rem}
input{padding:.4rem .6rem;border:1px solid #d0d7de;border-radius:6px;width:20rem;margin-bottom:.75rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;font-size:.88rem}
th,td{padding:.4rem .6rem;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:#f6f8fa;position:sticky;top:0} tr:hover td{background:#f6f8fa}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;color:#fff;font-size:.8rem;font-weight:600}
code{font-family:ui-monospace,Menlo,monospace;font-size:.85rem} .err{color:#cf222e} .muted{color:#57606a}
"""

_JS = """
function f(){var q=document.getElementById('q').value.toLowerCase();
document.querySelectorAll('tbody tr').forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';});}
"""


def _h(value):
    return html.escape(_cell(value), quote=True)


def _badge(outcome):
    colour = COLOURS.get(outcome, '#57606a')
    return '<span class="badge" style="background:%s">%s</span>' % (colour, _h(outcome))


def render_html(report):
    kind = report.get('kind')
    totals = report.get('totals') or {}
    cards = []
    for name in ('orgs', 'consumers') + (ROTATION_OUTCOMES if kind == 'rotation' else AUDIT_OUTCOMES):
        if name in totals and (totals[name] or name in ('orgs', 'consumers')):
            colour = COLOURS.get(name, '#1f2328')
            cards.append('<div class="card"><b style="color:%s">%s</b><span>%s</span></div>'
                         % (colour, _h(totals[name]), _h(name.replace('_', ' '))))
    for name, count in (totals.get('findings') or {}).items():
        cards.append('<div class="card"><b>%s</b><span>%s</span></div>' % (_h(count), _h(name.replace('_', ' '))))
    if kind == 'audit':
        header = ['org', 'app', 'consumer', 'outcome', 'main key', 'staged key', 'slot', 'expiry / grace end', 'findings', 'last rotated', 'error']
    else:
        header = ['org', 'app', 'consumer', 'plan', 'outcome', 'key old → new', 'slot', 'expiry / grace end', 'duration', 'error / reason']
    body = []
    for row in report.get('rows') or []:
        if kind == 'audit':
            cells = [_h(row.get('org')), _h(row.get('app_name')), _h(row.get('consumer_name')), _badge(row.get('outcome')),
                     '<code>%s</code>' % _h(row.get('old_key')), '<code>%s</code>' % _h(row.get('staged_key')),
                     _h(row.get('state')), _h(row.get('expiry')), _h(row.get('findings')), _h(row.get('last_rotated')),
                     '<span class="err">%s</span>' % _h(row.get('error'))]
        else:
            detail = _detail(row)
            klass = 'err' if row.get('outcome') == 'failed' else 'muted'
            if row.get('outcome') == 'failed' and row.get('phase'):
                detail = 'at %s: %s' % (row['phase'], detail)
            cells = [_h(row.get('org')), _h(row.get('app_name')), _h(row.get('consumer_name')), _h(row.get('plan')),
                     _badge(row.get('outcome')), '<code>%s</code>' % _h(_keys(row)), _h(row.get('state')), _h(row.get('expiry')),
                     _h('%ss' % row['duration'] if row.get('duration') is not None else ''),
                     '<span class="%s">%s</span>' % (klass, _h(detail))]
        body.append('<tr>' + ''.join('<td>%s</td>' % c for c in cells) + '</tr>')
    sub = 'Generated %s' % _h(report.get('generated'))
    if report.get('check_mode'):
        sub += ' &middot; <b>check mode</b>: nothing was written to any org'
    return ''.join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>sfdc.eca %s report</title>' % _h(kind),
        '<meta name="viewport" content="width=device-width,initial-scale=1"><style>%s</style></head><body>' % _CSS,
        '<h1>sfdc.eca %s report</h1><div class="sub">%s &middot; %s</div>' % (_h(kind), sub, _h(_totals_line(report))),
        '<div class="cards">%s</div>' % ''.join(cards),
        '<input id="q" placeholder="filter rows (org, app, outcome, error...)" oninput="f()">',
        '<table><thead><tr>%s</tr></thead><tbody>\n%s\n</tbody></table>' % (''.join('<th>%s</th>' % _h(h) for h in header), '\n'.join(body)),
        '<script>%s</script></body></html>\n' % _JS,
    ])


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
          planned: bool = False) -> tuple[dict[str, t.Any], list[str]]:
    """Write report.{json,md,html} (or audit.*) and, after a rotation that was not a plan only, merge the rows and
    every org's history file into history.json. -> (report, paths written)."""
    report = build(rows, kind, planned)
    base = 'report' if kind == 'rotation' else 'audit'
    written = []
    for directory in sorted(set((report_dir, state_dir))):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    remove_stale_temporary_files(report_dir, state_dir, os.path.join(state_dir, 'history.d'))
    for ext, text in (('json', json.dumps(report, indent=2, sort_keys=False) + '\n'), ('md', markdown(report)),
                      ('html', render_html(report))):
        path = os.path.join(report_dir, '%s.%s' % (base, ext))
        write_durably(path, text.encode('utf-8'))
        os.chmod(path, 0o644)  # the report holds no secret: readable like any report
        written.append(path)
    if kind == 'rotation' and not planned:
        written.append(history.History(state_dir).merge(rows))
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
