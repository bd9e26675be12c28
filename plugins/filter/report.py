# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Report filters of the sfdc.eca.rotation role: the report document, Markdown, HTML, console summary, audit rows.

Rows are built from a fixed list of secret-free fields: whatever else a row carries is dropped.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: eca_report
short_description: internal report filters of the sfdc.eca.rotation role
description:
  - Build the rotation/audit report (JSON document, Markdown, HTML, console lines). Not a public API.
author: sfdc.eca maintainers
"""

import datetime

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.sfdc.eca.plugins.filter.rotation import (
    _fingerprint,
    _history_entries,
    _iso,
    _now,
    _parse_time,
    _suffix,
    history_key,
    rotation_error,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils._report_html import render_html

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


def eca_report(rows, kind='rotation', check_mode=False, meta=None):
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
        'generated': _iso(_now()),
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


def eca_report_console(report, max_rows=20, paths=None):
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


def eca_report_markdown(report):
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


def eca_report_html(report):
    return render_html(report)


def eca_stats(report):
    """The totals for set_stats (numbers only)."""
    totals = report.get('totals') or {}
    return dict((k, v) for k, v in totals.items() if isinstance(v, int))


def audit_rows(app_results, org, instance_url=None, usage=None, history=None, options=None, now=None, token=None):
    """Audit rows of one org from its eca_usage_info and eca_credential_info results (read-only data)."""
    options = options or {}
    if isinstance(token, dict) and (token.get('failed') or token.get('unreachable')):
        return [{'org': org, 'instance_url': instance_url, 'outcome': 'failed', 'phase': 'authenticate',
                 'error': 'authentication to the org failed: %s' % rotation_error(token)}]
    now = _parse_time(now) or _now()
    try:
        warn_days = float(options.get('expiry_warning_days', 7))
    except (TypeError, ValueError):
        warn_days = 7.0
    entries = _history_entries(history)
    rows = []
    if isinstance(usage, dict) and (usage.get('failed') or usage.get('unreachable')):
        return [{'org': org, 'instance_url': instance_url, 'outcome': 'failed', 'phase': 'discover',
                 'error': "listing the org's apps failed: %s" % to_text(usage.get('msg') or 'failed')}]
    for result in (app_results or {}).get('results') or []:
        if not isinstance(result, dict) or result.get('skipped'):
            continue
        app = result.get('item') or {}
        app_name = app.get('developer_name') or app.get('app_name') or result.get('app_name')
        if result.get('failed'):
            rows.append({'org': org, 'instance_url': instance_url, 'app_name': app_name, 'app_id': app.get('identifier'),
                         'outcome': 'failed', 'phase': 'read', 'error': "reading the consumers failed: %s" % to_text(result.get('msg'))})
            continue
        consumers = result.get('consumers') or []
        if not consumers:
            rows.append({'org': org, 'instance_url': instance_url, 'app_name': app_name, 'app_id': result.get('app_id'),
                         'outcome': 'ok', 'findings': ['no_consumer'], 'state': None})
        for consumer in consumers:
            staged = consumer.get('staged_credential') or None
            state = staged.get('state') if staged else 'empty'
            hist = entries.get(history_key(org, app_name, consumer.get('name'))) or {}
            findings = []
            expiry = staged.get('expiration_date') if staged else None
            ends = _parse_time(expiry)
            if state == 'Active':
                findings.append('staged_waiting')
                if ends is not None and ends - now <= datetime.timedelta(days=warn_days):
                    findings.append('staged_expiring')
            elif state == 'Expired':
                findings.append('staged_expired')
            elif state == 'Rotated':
                findings.append('previous_in_grace')
            if not hist.get('last_rotated'):
                findings.append('never_rotated_by_tool')
            elif hist.get('key_fp') and hist.get('key_fp') != _fingerprint(consumer.get('key')):
                findings.append('rotated_outside_tool')
            serious = set(findings) & set(('staged_expiring', 'staged_expired', 'rotated_outside_tool'))
            rows.append({
                'org': org, 'instance_url': instance_url, 'app_name': app_name, 'app_id': result.get('app_id'),
                'consumer_name': consumer.get('name'), 'consumer_id': consumer.get('id'),
                'old_key': _suffix(consumer.get('key')), 'staged_key': _suffix(staged.get('key')) if staged else None,
                'state': state, 'expiry': expiry, 'findings': findings, 'last_rotated': hist.get('last_rotated'),
                'outcome': 'attention' if serious else 'ok',
            })
    return rows


class FilterModule(object):
    def filters(self):
        return {
            'eca_report': eca_report,
            'eca_report_console': eca_report_console,
            'eca_report_markdown': eca_report_markdown,
            'eca_report_html': eca_report_html,
            'eca_stats': eca_stats,
            'audit_rows': audit_rows,
        }
