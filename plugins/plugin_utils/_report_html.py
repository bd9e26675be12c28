# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""report.html: one self-contained page for a rotation or audit report, usable at 10,000 rows.

What it holds: summary cards, "outcomes per org" (a map with one square per org, coloured by its worst
outcome, and the orgs with the most rows needing attention) and a timeline of when Rotated pairs leave
their grace period and Active staged pairs expire, both inline SVG drawn here; then the rows as a table
with filter, sort and pages, drawn by a script from the rows embedded as JSON. The first page of rows is
also written as HTML, so the page says something without JavaScript.

Safety: only the known, secret-free row fields are rendered; every value goes through html.escape in
markup and through textContent in the script; the embedded JSON escapes <, >, & and U+2028/9, so a
value cannot end the script element. A Content-Security-Policy allows nothing but the page's own
script (by hash) and inline styles: the page makes no request, it opens offline.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import math
import re
import typing as t

# Rendered row fields (a whitelist: anything else a row carries is not rendered).
FIELDS = ('org', 'instance_url', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'plan', 'plan_reason',
          'outcome', 'phase', 'old_key', 'new_key', 'slot_before', 'state', 'expiry', 'grace_end',
          'staged_expiration', 'staged_key', 'rolled_back', 'revoked', 'old_pair_refused', 'delivered_to',
          'findings', 'last_rotated', 'error', 'started', 'finished', 'duration')
LABELS = {'org': 'org', 'instance_url': 'instance URL', 'app_name': 'app', 'app_id': 'app id',
          'consumer_name': 'consumer', 'consumer_id': 'consumer id', 'plan': 'plan', 'plan_reason': 'plan reason',
          'outcome': 'outcome', 'phase': 'phase', 'old_key': 'old key', 'new_key': 'new key',
          'slot_before': 'slot before', 'state': 'slot', 'expiry': 'expiry / grace end', 'grace_end': 'grace end',
          'staged_expiration': 'staged expiration', 'staged_key': 'staged key', 'rolled_back': 'rolled back',
          'revoked': 'revoked', 'old_pair_refused': 'old pair refused', 'delivered_to': 'delivered to',
          'findings': 'findings', 'last_rotated': 'last rotated', 'error': 'error', 'started': 'started',
          'finished': 'finished', 'duration': 'duration'}
OUTCOMES = {'rotation': ('rotated', 'skipped', 'planned', 'blocked', 'not_run', 'failed'),
            'audit': ('ok', 'attention', 'failed')}
# worst first: an org's colour on the map is its worst row's outcome
SEVERITY = {'rotation': ('failed', 'not_run', 'blocked', 'planned', 'skipped', 'rotated'),
            'audit': ('failed', 'attention', 'ok')}
ATTENTION = ('failed', 'blocked', 'not_run', 'attention')
COLOURS = {'rotated': '#1a7f37', 'ok': '#1a7f37', 'skipped': '#8c959f', 'planned': '#0969da', 'blocked': '#bf8700',
           'attention': '#bf8700', 'failed': '#cf222e', 'not_run': '#8250df'}
OTHER_COLOUR = '#57606a'
GRACE_COLOUR, EXPIRE_COLOUR = '#0969da', '#bf8700'
# table columns: (key the script computes, header)
COLUMNS = {'rotation': (('org', 'org'), ('app_name', 'app'), ('consumer_name', 'consumer'), ('plan', 'plan'),
                        ('outcome', 'outcome'), ('keys', 'key old → new'), ('state', 'slot'),
                        ('expiry', 'expiry / grace end'), ('duration', 'duration'), ('detail', 'error / reason')),
           'audit': (('org', 'org'), ('app_name', 'app'), ('consumer_name', 'consumer'), ('outcome', 'outcome'),
                     ('old_key', 'main key'), ('staged_key', 'staged key'), ('state', 'slot'),
                     ('expiry', 'expiry / grace end'), ('findings', 'findings'), ('last_rotated', 'last rotated'),
                     ('detail', 'error'))}
FIRST_PAGE = 100
MAX_TEXT = 4000  # longer values (error messages) are cut: the page stays small and the table readable


def _text(value: t.Any) -> str:
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return ('%.2f' % value).rstrip('0').rstrip('.')
    if isinstance(value, (list, tuple)):
        return ', '.join(_text(v) for v in value)
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + '…'


def _value(value: t.Any) -> t.Any:
    """A JSON-safe value of a known field: str, number, bool, None or a list of str."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return _text(value)


def _h(value: t.Any) -> str:
    return html.escape(_text(value), quote=True)


def _json_for_script(data: t.Any) -> str:
    """JSON that cannot end or confuse a <script> element (<, >, &, U+2028, U+2029 as \\u escapes)."""
    text = json.dumps(data, ensure_ascii=False, separators=(',', ':'), allow_nan=False)
    for char, escaped in (('<', '\\u003c'), ('>', '\\u003e'), ('&', '\\u0026'), ('\u2028', '\\u2028'),
                          ('\u2029', '\\u2029')):
        text = text.replace(char, escaped)
    return text


def _day(value: t.Any) -> datetime.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _fmt_int(n: int) -> str:
    return '{:,}'.format(n)


# -- what the charts show -----------------------------------------------------------------------

def _org_summary(rows: list[dict[str, t.Any]], kind: str) -> list[tuple[str, str, dict[str, int]]]:
    """[(org, worst outcome, {outcome: rows})] in org order."""
    severity = SEVERITY[kind]
    rank = dict((o, i) for i, o in enumerate(severity))
    orgs: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = orgs.setdefault(_text(row.get('org')), {})
        outcome = _text(row.get('outcome'))
        counts[outcome] = counts.get(outcome, 0) + 1
    out = []
    for org in sorted(orgs):
        counts = orgs[org]
        worst = min(counts, key=lambda o: (rank.get(o, -1), o))  # an unknown outcome counts as worst
        out.append((org, worst, counts))
    return out


def _timeline_events(rows: list[dict[str, t.Any]]) -> list[tuple[datetime.date, str]]:
    """(day, 'grace'|'expire') for every Rotated pair's grace end and every Active pair's expiry."""
    events = []
    for row in rows:
        state = row.get('state')
        if state == 'Rotated':
            day = _day(row.get('grace_end') or row.get('expiry'))
            kind = 'grace'
        elif state == 'Active':
            day = _day(row.get('staged_expiration') or row.get('expiry'))
            kind = 'expire'
        else:
            continue
        if day is not None:
            events.append((day, kind))
    return events


_KEY_SUFFIX = re.compile(r'\.\.\.[A-Za-z0-9._]{4}')
_NUMBER = re.compile(r'\d+')
SERIOUS = ('staged_expiring', 'staged_expired', 'rotated_outside_tool')


def _reason(row: dict[str, t.Any], kind: str) -> str | None:
    """Why a row needs attention, with what differs from org to org (key suffixes, numbers) left out."""
    outcome = row.get('outcome')
    if outcome not in ATTENTION:
        return None
    text = _text(row.get('error')) or _text(row.get('plan_reason'))
    if kind == 'audit' and not text:
        text = ', '.join(f for f in (row.get('findings') or []) if f in SERIOUS)
    text = _NUMBER.sub('N', _KEY_SUFFIX.sub('…', text)) or 'no reason recorded'
    if outcome == 'failed' and row.get('phase'):
        text = 'at %s: %s' % (_text(row.get('phase')), text)
    if len(text) > 160:
        text = text[:159] + '…'
    return '%s: %s' % (_text(outcome).replace('_', ' '), text)


def _reasons(rows: list[dict[str, t.Any]], kind: str) -> tuple[list[tuple[str, str, int]], list[int]]:
    """[(reason, outcome, rows)] most frequent first, and each row's index in it (-1: needs no attention)."""
    found: dict[str, list[t.Any]] = {}
    per_row = []
    for row in rows:
        reason = _reason(row, kind)
        per_row.append(reason)
        if reason is not None:
            entry = found.setdefault(reason, [reason, _text(row.get('outcome')), 0])
            entry[2] += 1
    ordered = sorted(found.values(), key=lambda e: (-e[2], e[0]))
    index = dict((e[0], i) for i, e in enumerate(ordered))
    return [tuple(e) for e in ordered], [index[r] if r is not None else -1 for r in per_row]


# -- SVG ----------------------------------------------------------------------------------------

def _fleet_map(summary: list[tuple[str, str, dict[str, int]]], kind: str) -> tuple[str, dict[str, t.Any]]:
    """One square per org, coloured by its worst outcome: one <path> per colour (10,000 squares stay light)."""
    n = len(summary)
    cell = 16 if n <= 100 else 10 if n <= 1000 else 5
    gap = 2 if cell > 5 else 1
    step = cell + gap
    cols = max(1, min(n, int(math.ceil(math.sqrt(n * 5)))))  # about 5 wide for 1 high
    lines = max(1, -(-n // cols))
    height = lines * step
    paths: dict[str, list[str]] = {}
    for i, (dummy, worst, dummy2) in enumerate(summary):
        y, x = divmod(i, cols)
        paths.setdefault(worst, []).append('M%d %dh%dv%dh-%dz' % (x * step, y * step, cell, cell, cell))
    parts = ['<svg id="fleetmap" class="map" role="img" viewBox="0 0 %d %d" width="%d" height="%d" '
             'preserveAspectRatio="xMinYMin meet"><title>outcomes per org: one square per org, coloured by its '
             'worst outcome</title>' % (cols * step, height, cols * step, height)]
    for outcome in SEVERITY[kind][::-1] + tuple(sorted(set(paths) - set(SEVERITY[kind]))):
        if outcome in paths:
            parts.append('<path fill="%s" d="%s"/>' % (COLOURS.get(outcome, OTHER_COLOUR), ''.join(paths[outcome])))
    parts.append('<rect id="maphover" class="hover" x="0" y="0" width="%d" height="%d" visibility="hidden"/>'
                 % (cell, cell))
    parts.append('</svg>')
    return ''.join(parts), {'cols': cols, 'step': step, 'cell': cell}


def _legend(summary: list[tuple[str, str, dict[str, int]]], kind: str) -> str:
    worst: dict[str, int] = {}
    for dummy, outcome, dummy2 in summary:
        worst[outcome] = worst.get(outcome, 0) + 1
    items = []
    for outcome in SEVERITY[kind] + tuple(sorted(set(worst) - set(SEVERITY[kind]))):
        if worst.get(outcome):
            items.append('<button type="button" class="key" data-outcome="%s"><i style="background:%s"></i>%s '
                         '<b>%s</b></button>' % (_h(outcome), COLOURS.get(outcome, OTHER_COLOUR),
                                                 _h(outcome.replace('_', ' ')), _fmt_int(worst[outcome])))
    return ('<div class="legend"><span class="muted">orgs by worst outcome:</span> %s</div>' % ''.join(items)
            if items else '')


def _reason_bars(reasons: list[tuple[str, str, int]], top: int = 8) -> str:
    """The most frequent reasons rows need attention, as bars (click: show those rows)."""
    if not reasons:
        return '<p class="muted small">No row needs attention.</p>'
    shown = reasons[:top]
    biggest = shown[0][2]
    bar_w, row_h = 560, 34
    height = row_h * len(shown)
    parts = ['<svg class="bars" role="img" viewBox="0 0 %d %d" width="%d" height="%d"><title>why rows need '
             'attention, most frequent first</title>' % (bar_w + 70, height, bar_w + 70, height)]
    for i, (reason, outcome, count) in enumerate(shown):
        y = i * row_h
        label = reason if len(reason) <= 92 else reason[:91] + '…'
        w = max(2.0, bar_w * count / biggest)
        parts.append('<g class="barrow" data-reason="%d"><title>%s: %s row(s)</title>' % (i, _h(reason), _fmt_int(count)))
        parts.append('<text x="0" y="%d">%s</text>' % (y + 12, _h(label)))
        parts.append('<rect x="0" y="%d" width="%.1f" height="10" rx="2" fill="%s"/>'
                     % (y + 17, w, COLOURS.get(outcome, OTHER_COLOUR)))
        parts.append('<text x="%.1f" y="%d" class="muted">%s</text></g>' % (w + 6, y + 26, _fmt_int(count)))
    parts.append('</svg>')
    more = sum(c for dummy, dummy2, c in reasons[top:])
    if more:
        parts.append('<p class="muted small">and %s more row(s) for %s other reason(s)</p>'
                     % (_fmt_int(more), _fmt_int(len(reasons) - top)))
    return ''.join(parts)


def _attention_bars(summary: list[tuple[str, str, dict[str, int]]], kind: str, top: int = 6) -> str:
    """The orgs with the most rows needing attention (when some org has more than one), as stacked bars."""
    scored = [(sum(c for o, c in counts.items() if o in ATTENTION), org, counts) for org, dummy, counts in summary]
    scored = [s for s in scored if s[0]]
    if not scored or max(s[0] for s in scored) < 2:
        return ''
    scored.sort(key=lambda s: (-s[0], s[1]))
    shown = scored[:top]
    biggest = max(sum(counts.values()) for dummy, dummy2, counts in shown)
    label_w, bar_w, row_h = 170, 400, 20
    height = row_h * len(shown) + 4
    parts = ['<h2 class="second">Orgs with the most rows needing attention</h2><svg class="bars" role="img" '
             'viewBox="0 0 %d %d" width="%d" height="%d"><title>orgs with the most rows needing attention</title>'
             % (label_w + bar_w + 50, height, label_w + bar_w + 50, height)]
    for i, (score, org, counts) in enumerate(shown):
        y = i * row_h + 2
        name = org if len(org) <= 24 else org[:23] + '…'
        parts.append('<g class="barrow" data-org="%s"><title>%s: %s</title>' % (
            _h(org), _h(org), _h(', '.join('%d %s' % (counts[o], o.replace('_', ' ')) for o in sorted(counts)))))
        parts.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (label_w - 6, y + 13, _h(name)))
        x = float(label_w)
        for outcome in SEVERITY[kind] + tuple(sorted(set(counts) - set(SEVERITY[kind]))):
            if counts.get(outcome):
                w = max(1.0, bar_w * counts[outcome] / biggest)
                parts.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"/>'
                             % (x, y + 2, w, row_h - 6, COLOURS.get(outcome, OTHER_COLOUR)))
                x += w
        parts.append('<text x="%.1f" y="%d" class="muted">%s</text></g>' % (x + 5, y + 13, _fmt_int(score)))
    parts.append('</svg>')
    return ''.join(parts)


def _timeline(rows: list[dict[str, t.Any]], today: datetime.date) -> str:
    events = _timeline_events(rows)
    if not events:
        return '<p class="muted small">No Rotated pair in its grace period and no Active staged pair: nothing ' \
               'is due.</p>'
    first = min(min(d for d, dummy in events), today)
    last = max(max(d for d, dummy in events), today)
    span = (last - first).days + 1
    bin_days = max(1, -(-span // 60))
    nbins = -(-span // bin_days)
    grace = [0] * nbins
    expire = [0] * nbins
    for day, kind in events:
        i = (day - first).days // bin_days
        (grace if kind == 'grace' else expire)[i] += 1
    totals = sorted((g + e for g, e in zip(grace, expire)), reverse=True)
    peak = totals[0]
    # One bin that dwarfs the others (a whole fleet rotated in one run) would flatten them to nothing:
    # scale to the others and draw that bin broken, with its count written on it.
    scale = peak
    if len(totals) > 1 and totals[1] and peak > 4 * totals[1]:
        scale = int(math.ceil(totals[1] * 1.5))
    left, top, plot_w, plot_h = 48, 18, 620, 150
    bw = plot_w / nbins
    parts = ['<svg id="timeline" class="timeline" role="img" viewBox="0 0 %d %d" width="%d" height="%d">'
             '<title>when Rotated pairs leave their grace period and Active staged pairs expire</title>'
             % (left + plot_w + 12, top + plot_h + 24, left + plot_w + 12, top + plot_h + 24)]
    for frac in (0, 0.5, 1):
        y = top + plot_h - frac * plot_h
        parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>' % (left, left + plot_w, y, y))
        parts.append('<text x="%d" y="%.1f" text-anchor="end" class="axis">%s</text>'
                     % (left - 5, y + 4, _fmt_int(int(round(frac * scale)))))
    for i in range(nbins):
        start = first + datetime.timedelta(days=i * bin_days)
        end = start + datetime.timedelta(days=bin_days - 1)
        if not grace[i] and not expire[i]:
            continue
        when = start.isoformat() if bin_days == 1 else '%s .. %s' % (start.isoformat(), end.isoformat())
        x = left + i * bw
        parts.append('<g class="tbar" data-day="%s" data-days="%d"><title>%s: %s Rotated pair(s) leave their grace '
                     'period, %s Active pair(s) expire</title>' % (start.isoformat(), bin_days, when,
                                                                   _fmt_int(grace[i]), _fmt_int(expire[i])))
        total = grace[i] + expire[i]
        factor = plot_h / max(total, scale) if total > scale else plot_h / scale
        y = float(top + plot_h)
        for count, colour in ((grace[i], GRACE_COLOUR), (expire[i], EXPIRE_COLOUR)):
            if count:
                h = max(1.5, factor * count)
                y -= h
                parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                             % (x + 0.5, y, max(1.0, bw - 1), h, colour))
        if total > scale:
            parts.append('<path d="M%.1f %.1fl%.1f -4v5l-%.1f 4z" class="brk"/>'
                         % (x, top + 22, bw + 1, bw + 1))
            parts.append('<text x="%.1f" y="%d" class="peak" text-anchor="%s">%s</text>'
                         % (x + bw / 2 if i < nbins - 1 else x + bw, top - 6, 'middle' if i < nbins - 1 else 'end',
                            _fmt_int(total)))
        parts.append('</g>')
    tx = left + ((today - first).days / bin_days) * bw
    parts.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="today"/><text x="%.1f" y="%d" class="axis" '
                 'text-anchor="start">today</text>' % (tx, tx, top, top + plot_h, tx + 3, top + 8))
    ticks = 5 if nbins >= 5 else nbins
    for k in range(ticks):
        i = int(round(k * (nbins - 1) / max(1, ticks - 1)))
        day = first + datetime.timedelta(days=i * bin_days)
        parts.append('<text x="%.1f" y="%d" class="axis" text-anchor="middle">%s</text>'
                     % (left + (i + 0.5) * bw, top + plot_h + 16, day.strftime('%b %d')))
    parts.append('</svg>')
    soon = today + datetime.timedelta(days=7)
    g7 = sum(1 for d, k in events if k == 'grace' and d <= soon)
    e7 = sum(1 for d, k in events if k == 'expire' and d <= soon)
    total_g = sum(grace)
    total_e = sum(expire)
    legend = ('<div class="legend"><span><i style="background:%s"></i>Rotated pair leaves its grace period '
              '(the old secret stops working) <b>%s</b></span><span><i style="background:%s"></i>Active staged pair '
              'expires unused <b>%s</b></span></div><p class="small">Next 7 days: <b>%s</b> old pair(s) stop '
              'working, <b>%s</b> staged pair(s) expire.</p>'
              % (GRACE_COLOUR, _fmt_int(total_g), EXPIRE_COLOUR, _fmt_int(total_e), _fmt_int(g7), _fmt_int(e7)))
    return ''.join(parts) + legend


# -- page ---------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0969da}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:var(--fg);background:var(--soft)}
header{background:#fff;border-bottom:1px solid var(--line);padding:1.1rem 2rem .9rem}
main{padding:1.1rem 2rem 2rem;max-width:1500px}
h1{font-size:1.45rem;margin:0}
h2{font-size:1rem;margin:0 0 .6rem}
.sub{color:var(--muted);margin-top:.2rem}
.check{display:inline-block;background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.05rem .5rem;
color:#7d4e00;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.5rem .9rem;min-width:7rem;
text-align:left;font:inherit;color:inherit;border-left-width:4px}
button.card{cursor:pointer} button.card:hover{background:#f3f4f6}
.card b{display:block;font-size:1.45rem;line-height:1.2} .card span{color:var(--muted);font-size:.82rem}
.card.on{outline:2px solid var(--accent);outline-offset:1px}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem;margin-bottom:1rem}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.9rem 1rem;min-width:0}
.panel.wide{margin-bottom:1rem}
.panel svg{max-width:100%;height:auto;display:block}
.map{cursor:pointer;margin:.2rem 0 .5rem}
.hover{fill:none;stroke:#1f2328;stroke-width:1.5}
h2.second{margin-top:1rem}
.bars text{font-size:12px;fill:var(--fg)} .bars .muted{fill:var(--muted)} .barrow{cursor:pointer}
.barrow:hover rect{opacity:.8}
.timeline .grid{stroke:#eaeef2} .timeline .today{stroke:#1f2328;stroke-dasharray:3 3}
.timeline .axis{font-size:10.5px;fill:var(--muted)} .timeline .brk{fill:#fff}
.timeline .peak{font-size:11px;font-weight:600;fill:var(--fg)} .tbar{cursor:pointer} .tbar:hover rect{opacity:.75}
.legend{display:flex;flex-wrap:wrap;gap:.35rem .9rem;align-items:center;font-size:.85rem;margin:.3rem 0}
.legend i{display:inline-block;width:.75rem;height:.75rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
.key{border:1px solid transparent;background:none;font:inherit;color:inherit;padding:.05rem .3rem;border-radius:5px;
cursor:pointer} .key:hover{border-color:var(--line)}
.small{font-size:.85rem;margin:.35rem 0 0} .muted{color:var(--muted)}
.tools{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.2rem 0 .6rem}
#q{padding:.42rem .65rem;border:1px solid var(--line);border-radius:6px;width:26rem;max-width:100%;font:inherit}
#q:focus{outline:2px solid var(--accent);border-color:transparent}
.chip{background:#ddf4ff;border:1px solid #54aeff;border-radius:1rem;padding:.05rem .25rem .05rem .6rem;font-size:.85rem}
.chip button{border:0;background:none;cursor:pointer;font-size:.95rem;color:#0550ae;padding:0 .2rem}
.count{color:var(--muted);font-size:.88rem;margin-left:auto}
.pager{display:flex;gap:.3rem;align-items:center;font-size:.88rem}
.pager button,.pager select{font:inherit;padding:.2rem .55rem;border:1px solid var(--line);border-radius:6px;background:#fff;
cursor:pointer}
.pager button:disabled{opacity:.45;cursor:default}
.tablewrap{background:#fff;border:1px solid var(--line);border-radius:8px;overflow:auto;max-height:75vh}
table{border-collapse:collapse;width:100%;font-size:.86rem}
th,td{padding:.38rem .6rem;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:var(--soft);position:sticky;top:0;z-index:1;white-space:nowrap;user-select:none}
th[data-col]{cursor:pointer} th[data-col]:hover{color:var(--accent)}
th .arrow{color:var(--accent);font-size:.75rem;margin-left:.2rem}
tbody tr.row{cursor:pointer} tbody tr.row:hover td{background:#f6f8fa}
td{max-width:34rem;overflow-wrap:break-word;white-space:nowrap}
td.wrap{white-space:normal;min-width:14rem} td.org{white-space:normal;min-width:7rem;max-width:20rem}
.badge{display:inline-block;padding:.02rem .5rem;border-radius:1rem;color:#fff;font-size:.78rem;font-weight:600;
white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.82rem}
.err{color:#cf222e} .nowrap{white-space:nowrap}
tr.detail td{background:#fbfcfd;padding:.6rem 1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0}
dt{color:var(--muted)} dd{margin:0;overflow-wrap:anywhere}
.empty{padding:1.5rem;text-align:center;color:var(--muted)}
noscript p{background:#fff8c5;padding:.5rem .8rem;border-radius:6px}
"""

_JS = r"""
(function () {
'use strict';
var D = JSON.parse(document.getElementById('report-data').textContent);
var F = D.fields, COLS = D.columns, KIND = D.kind, COLOURS = D.colours;
var fi = {}; F.forEach(function (f, i) { fi[f] = i; });
function raw(r, f) { var i = fi[f]; return i === undefined ? null : r[i]; }
function txt(v) {
  if (v === null || v === undefined) return '';
  if (v === true) return 'yes';
  if (v === false) return 'no';
  if (Array.isArray(v)) return v.join(', ');
  return String(v);
}
function cell(r, c) {
  switch (c) {
    case 'keys':
      var o = raw(r, 'old_key'), n = raw(r, 'new_key');
      return o && n ? o + ' \u2192 ' + n : txt(o || n || raw(r, 'staged_key'));
    case 'duration':
      var d = raw(r, 'duration'); return d === null || d === undefined || d === '' ? '' : d + ' s';
    case 'expiry':
    case 'last_rotated':
      var e = txt(raw(r, c)); return e.length > 16 && e.charAt(10) === 'T' ? e.slice(0, 10) + ' ' + e.slice(11, 16) : e;
    case 'detail':
      var err = txt(raw(r, 'error'));
      if (err && raw(r, 'outcome') === 'failed' && raw(r, 'phase')) return 'at ' + raw(r, 'phase') + ': ' + err;
      return err || txt(raw(r, 'plan_reason'));
    default:
      return txt(raw(r, c));
  }
}
var rows = D.rows, N = rows.length;
// one lower-case text per row, for the filter: every rendered field
var hay = new Array(N);
for (var i = 0; i < N; i++) {
  var parts = [];
  for (var j = 0; j < F.length; j++) parts.push(txt(rows[i][j]));
  hay[i] = parts.join('\u0001').toLowerCase();
}
var state = {q: '', outcome: null, org: null, day: null, days: 1, reason: null, sort: null, desc: false, page: 0,
  size: 100};
var view = null, order = null, open = {};
var $ = function (id) { return document.getElementById(id); };
var tbody = $('rows'), q = $('q');

function dayOf(r) {
  var s = raw(r, 'state'), v = null;
  if (s === 'Rotated') v = raw(r, 'grace_end') || raw(r, 'expiry');
  else if (s === 'Active') v = raw(r, 'staged_expiration') || raw(r, 'expiry');
  return v ? String(v).slice(0, 10) : null;
}
function addDays(day, n) {
  var t = Date.UTC(+day.slice(0, 4), +day.slice(5, 7) - 1, +day.slice(8, 10)) + n * 86400000;
  return new Date(t).toISOString().slice(0, 10);
}
function sortOrder() {
  if (!state.sort) return null;
  var c = state.sort, keys = new Array(N), idx = new Array(N), numeric = c === 'duration';
  for (var i = 0; i < N; i++) {
    idx[i] = i;
    keys[i] = numeric ? (typeof raw(rows[i], 'duration') === 'number' ? raw(rows[i], 'duration') : -1)
                      : cell(rows[i], c).toLowerCase();
  }
  idx.sort(function (a, b) { return keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b; });
  if (state.desc) idx.reverse();
  return idx;
}
function compute() {
  var terms = state.q.toLowerCase().split(/\s+/).filter(Boolean), fieldTerms = [], plain = [];
  terms.forEach(function (t) {
    var k = t.indexOf(':'), f = k > 0 ? t.slice(0, k) : null;
    var key = f && ({org: 'org', app: 'app_name', consumer: 'consumer_name', outcome: 'outcome', plan: 'plan',
      slot: 'state', state: 'state', phase: 'phase', finding: 'findings', findings: 'findings'})[f];
    if (key && k < t.length - 1) fieldTerms.push([key, t.slice(k + 1)]); else plain.push(t);
  });
  var last = state.day ? addDays(state.day, state.days - 1) : null;
  var src = order || null, out = [];
  for (var n = 0; n < N; n++) {
    var i = src ? src[n] : n, r = rows[i], ok = true, h = hay[i];
    if (state.outcome && raw(r, 'outcome') !== state.outcome) continue;
    if (state.org !== null && txt(raw(r, 'org')) !== state.org) continue;
    if (state.reason !== null && D.reason[i] !== state.reason) continue;
    if (state.day) { var d = dayOf(r); if (!d || d < state.day || d > last) continue; }
    for (var a = 0; a < plain.length; a++) if (h.indexOf(plain[a]) < 0) { ok = false; break; }
    if (!ok) continue;
    for (var b = 0; b < fieldTerms.length; b++)
      if (txt(raw(r, fieldTerms[b][0])).toLowerCase().indexOf(fieldTerms[b][1]) < 0) { ok = false; break; }
    if (ok) out.push(i);
  }
  view = out;
}
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function renderCell(r, c) {
  var td = el('td'), v = cell(r, c);
  if (c === 'outcome') {
    var b = el('span', 'badge', v.replace('_', ' '));
    b.style.background = COLOURS[v] || '#57606a';
    td.appendChild(b);
  } else if (c === 'keys' || c === 'old_key' || c === 'staged_key') {
    td.appendChild(el('code', null, v));
  } else if (c === 'detail' || c === 'findings') {
    td.textContent = v; td.className = 'wrap ' + (c === 'findings' ? '' : raw(r, 'outcome') === 'failed' ? 'err' : 'muted');
  } else if (c === 'org') {
    td.textContent = v; td.className = 'org';
  } else {
    td.textContent = v;
  }
  return td;
}
function detailRow(i) {
  var tr = el('tr', 'detail'), td = el('td'), dl = el('dl'), r = rows[i];
  td.colSpan = COLS.length;
  F.forEach(function (f, j) {
    var v = txt(r[j]);
    if (v === '') return;
    if (f === 'duration') v += ' s';
    dl.appendChild(el('dt', null, D.labels[f] || f));
    dl.appendChild(el('dd', f.indexOf('key') >= 0 ? 'mono' : null, v));
  });
  td.appendChild(dl); tr.appendChild(td);
  return tr;
}
function render() {
  var total = view.length, pages = Math.max(1, Math.ceil(total / state.size));
  if (state.page >= pages) state.page = pages - 1;
  var from = state.page * state.size, to = Math.min(total, from + state.size);
  var frag = document.createDocumentFragment();
  for (var k = from; k < to; k++) {
    var i = view[k], r = rows[i], tr = el('tr', 'row');
    tr.dataset.i = i;
    for (var c = 0; c < COLS.length; c++) tr.appendChild(renderCell(r, COLS[c][0]));
    frag.appendChild(tr);
    if (open[i]) frag.appendChild(detailRow(i));
  }
  if (!total) {
    var tr0 = el('tr'), td0 = el('td', 'empty', N ? 'No row matches the filter.' : 'The report has no rows.');
    td0.colSpan = COLS.length; tr0.appendChild(td0); frag.appendChild(tr0);
  }
  tbody.textContent = '';
  tbody.appendChild(frag);
  $('count').textContent = total ? 'rows ' + (from + 1).toLocaleString('en') + '\u2013' + to.toLocaleString('en') +
    ' of ' + total.toLocaleString('en') + (total < N ? ' (filtered from ' + N.toLocaleString('en') + ')' : '') : '0 rows';
  $('page').textContent = 'page ' + (state.page + 1).toLocaleString('en') + ' of ' + pages.toLocaleString('en');
  $('first').disabled = $('prev').disabled = state.page === 0;
  $('next').disabled = $('last').disabled = state.page >= pages - 1;
  document.querySelectorAll('th[data-col]').forEach(function (th) {
    var a = th.querySelector('.arrow');
    a.textContent = th.dataset.col === state.sort ? (state.desc ? '\u25bc' : '\u25b2') : '';
    th.setAttribute('aria-sort', th.dataset.col === state.sort ? (state.desc ? 'descending' : 'ascending') : 'none');
  });
  document.querySelectorAll('[data-outcome]').forEach(function (b) {
    b.classList.toggle('on', b.dataset.outcome === state.outcome);
  });
  var chips = $('chips'); chips.textContent = '';
  [['outcome', state.outcome && 'outcome = ' + state.outcome.replace('_', ' ')],
   ['org', state.org !== null && 'org = ' + state.org],
   ['reason', state.reason !== null && D.reasons[state.reason][0]],
   ['day', state.day && (state.days > 1 ? 'due ' + state.day + ' .. ' + addDays(state.day, state.days - 1) : 'due ' + state.day)]
  ].forEach(function (p) {
    if (!p[1]) return;
    var s = el('span', 'chip', p[1]), x = el('button', null, '\u00d7');
    x.type = 'button'; x.title = 'remove'; x.setAttribute('aria-label', 'remove ' + p[1]);
    x.addEventListener('click', function () { state[p[0]] = null; update(); });
    s.appendChild(x); chips.appendChild(s);
  });
  document.body.dataset.shown = String(to - from);
  document.body.dataset.matched = String(total);
}
function update(keepPage) {
  if (!keepPage) state.page = 0;
  compute(); render();
}
var timer = null;
q.addEventListener('input', function () {
  clearTimeout(timer);
  timer = setTimeout(function () { state.q = q.value; update(); }, 80);
});
q.addEventListener('keydown', function (e) {
  if (e.key === 'Enter') { clearTimeout(timer); state.q = q.value; update(); }
  if (e.key === 'Escape') { q.value = ''; clearTimeout(timer); state.q = ''; update(); }
});
document.addEventListener('keydown', function (e) {
  if (e.key === '/' && document.activeElement !== q) { e.preventDefault(); q.focus(); }
});
document.querySelectorAll('th[data-col]').forEach(function (th) {
  th.addEventListener('click', function () {
    var c = th.dataset.col;
    if (state.sort === c) { if (state.desc) { state.sort = null; state.desc = false; } else state.desc = true; }
    else { state.sort = c; state.desc = false; }
    order = sortOrder(); update();
  });
});
$('first').addEventListener('click', function () { state.page = 0; render(); });
$('prev').addEventListener('click', function () { state.page = Math.max(0, state.page - 1); render(); });
$('next').addEventListener('click', function () { state.page += 1; render(); });
$('last').addEventListener('click', function () { state.page = Math.ceil(view.length / state.size) - 1; render(); });
$('size').addEventListener('change', function () { state.size = +this.value; update(); });
tbody.addEventListener('click', function (e) {
  if (window.getSelection && String(window.getSelection())) return;
  var tr = e.target.closest('tr.row');
  if (!tr) return;
  var i = +tr.dataset.i;
  if (open[i]) delete open[i]; else open[i] = true;
  render();
});
document.querySelectorAll('[data-outcome]').forEach(function (b) {
  b.addEventListener('click', function () {
    state.outcome = state.outcome === b.dataset.outcome ? null : b.dataset.outcome; update();
  });
});
document.querySelectorAll('[data-reason]').forEach(function (g) {
  g.addEventListener('click', function () { state.reason = +g.getAttribute('data-reason'); update(); });
});
document.querySelectorAll('[data-org]').forEach(function (g) {
  g.addEventListener('click', function () { state.org = g.getAttribute('data-org'); update(); });
});
document.querySelectorAll('.tbar').forEach(function (g) {
  g.addEventListener('click', function () {
    state.day = g.getAttribute('data-day'); state.days = +g.getAttribute('data-days'); update();
  });
});
var map = $('fleetmap'), tip = $('maptip'), hover = $('maphover');
if (map && D.map) {
  var M = D.map;
  var at = function (e) {
    var box = map.getBoundingClientRect(), vb = map.viewBox.baseVal, s = vb.width / box.width;
    var x = Math.floor((e.clientX - box.left) * s / M.step), y = Math.floor((e.clientY - box.top) * s / M.step);
    if (x < 0 || x >= M.cols) return -1;
    var i = y * M.cols + x;
    return i >= 0 && i < D.orgs.length ? i : -1;
  };
  map.addEventListener('mousemove', function (e) {
    var i = at(e);
    if (i < 0) { hover.setAttribute('visibility', 'hidden'); tip.textContent = tip.dataset.idle; return; }
    var o = D.orgs[i], parts = [];
    Object.keys(o[2]).sort().forEach(function (k) { parts.push(o[2][k] + ' ' + k.replace('_', ' ')); });
    tip.textContent = o[0] + ': ' + parts.join(', ');
    hover.setAttribute('x', (i % M.cols) * M.step); hover.setAttribute('y', Math.floor(i / M.cols) * M.step);
    hover.setAttribute('visibility', 'visible');
  });
  map.addEventListener('mouseleave', function () { hover.setAttribute('visibility', 'hidden'); tip.textContent = tip.dataset.idle; });
  map.addEventListener('click', function (e) { var i = at(e); if (i >= 0) { state.org = D.orgs[i][0]; update(); } });
}
compute(); render();
document.body.dataset.readyMs = String(Math.round(performance.now()));
document.body.dataset.ready = '1';
})();
"""


def _script_hash(script: str) -> str:
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(script.encode('utf-8')).digest()).decode('ascii')


def _cards(report: dict[str, t.Any], kind: str) -> str:
    totals = report.get('totals') if isinstance(report.get('totals'), dict) else {}
    cards = []
    for name in ('orgs', 'consumers'):
        if isinstance(totals.get(name), int):
            cards.append('<div class="card" style="border-left-color:#1f2328"><b>%s</b><span>%s</span></div>'
                         % (_fmt_int(totals[name]), _h(name)))
    if isinstance(totals.get('orgs_failed'), int) and totals['orgs_failed']:
        cards.append('<div class="card" style="border-left-color:%s"><b>%s</b><span>orgs with a failure</span></div>'
                     % (COLOURS['failed'], _fmt_int(totals['orgs_failed'])))
    for outcome in OUTCOMES[kind]:
        count = totals.get(outcome)
        if isinstance(count, int) and count:
            cards.append('<button type="button" class="card" data-outcome="%s" style="border-left-color:%s" '
                         'title="show only %s rows"><b>%s</b><span>%s</span></button>'
                         % (_h(outcome), COLOURS[outcome], _h(outcome.replace('_', ' ')), _fmt_int(count),
                            _h(outcome.replace('_', ' '))))
    extra = []
    for group in ('plans', 'findings'):
        values = totals.get(group)
        if isinstance(values, dict) and values:
            extra.append('<span class="muted">%s:</span> %s' % (_h(group), ', '.join(
                '%s <b>%s</b>' % (_h(str(k).replace('_', ' ')), _fmt_int(v) if isinstance(v, int) else _h(v))
                for k, v in sorted(values.items(), key=lambda kv: str(kv[0])))))
    return '<div class="cards">%s</div>%s' % (''.join(cards), ''.join('<p class="small">%s</p>' % e for e in extra))


def _first_page(rows: list[dict[str, t.Any]], kind: str) -> str:
    """The first rows as plain HTML: what the page shows without JavaScript (the script redraws them)."""
    out = []
    for row in rows[:FIRST_PAGE]:
        cells = []
        for key, dummy in COLUMNS[kind]:
            if key == 'keys':
                old, new = row.get('old_key'), row.get('new_key')
                value = '%s → %s' % (_text(old), _text(new)) if old and new else _text(old or new or row.get('staged_key'))
            elif key == 'detail':
                value = _text(row.get('error') or row.get('plan_reason'))
                if row.get('error') and row.get('outcome') == 'failed' and row.get('phase'):
                    value = 'at %s: %s' % (_text(row.get('phase')), value)
            elif key in ('expiry', 'last_rotated'):
                value = _text(row.get(key))
                if len(value) > 16 and value[10] == 'T':
                    value = value[:10] + ' ' + value[11:16]
            elif key == 'duration':
                value = '%s s' % _text(row['duration']) if row.get('duration') not in (None, '') else ''
            else:
                value = _text(row.get(key))
            if key == 'outcome':
                cells.append('<td><span class="badge" style="background:%s">%s</span></td>'
                             % (COLOURS.get(value, OTHER_COLOUR), html.escape(value.replace('_', ' '))))
            else:
                klass = {'org': 'org', 'detail': 'wrap', 'findings': 'wrap'}.get(key)
                cells.append('<td%s>%s</td>' % (' class="%s"' % klass if klass else '', html.escape(value, quote=True)))
        out.append('<tr class="row">%s</tr>' % ''.join(cells))
    return '\n'.join(out)


def render_html(report: dict[str, t.Any]) -> str:
    """report.html for a report document {kind, generated, check_mode, totals, orgs, rows} (rotation or audit)."""
    kind = 'audit' if report.get('kind') == 'audit' else 'rotation'
    rows = [r for r in report.get('rows') or [] if isinstance(r, dict)]
    present = [f for f in FIELDS if any(f in r for r in rows)]
    generated = _text(report.get('generated'))
    today = _day(generated) or datetime.datetime.now(datetime.timezone.utc).date()
    summary = _org_summary(rows, kind)
    reasons, reason_of_row = _reasons(rows, kind)
    fleet_svg, map_geometry = _fleet_map(summary, kind) if summary else ('', None)
    data = {
        'kind': kind,
        'fields': present,
        'labels': dict((f, LABELS[f]) for f in present),
        'columns': [list(c) for c in COLUMNS[kind]],
        'colours': COLOURS,
        'rows': [[_value(r.get(f)) for f in present] for r in rows],
        'orgs': [[org, worst, counts] for org, worst, counts in summary],
        'map': map_geometry,
        'reasons': [[r, o, c] for r, o, c in reasons],
        'reason': reason_of_row,
    }
    script = _JS
    csp = ("default-src 'none'; script-src %s; style-src 'unsafe-inline'; img-src 'none'; connect-src 'none'; "
           "form-action 'none'; base-uri 'none'" % _script_hash(script))
    title = 'sfdc.eca %s report' % kind
    sub = ['Generated %s' % _h(generated or 'at an unknown time')]
    if report.get('check_mode'):
        sub.append('<span class="check">check mode: nothing was written to any org</span>')
    if isinstance(report.get('slowest_org_seconds'), (int, float)):
        sub.append('slowest org %s s' % _h(report['slowest_org_seconds']))
    org_count = len(summary)
    map_tip = 'one square per org (%s); point at one to see it, click to show its rows' % _fmt_int(org_count)
    header_cells = ''.join('<th data-col="%s" scope="col">%s<span class="arrow"></span></th>' % (_h(c), _h(label))
                           for c, label in COLUMNS[kind])
    page = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % csp,  # a constant: no quote in it
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<title>%s</title><style>%s</style></head>' % (_h(title), _CSS),
        '<body data-kind="%s" data-rows="%d">' % (kind, len(rows)),
        '<header><h1>%s</h1><div class="sub">%s</div></header><main>' % (_h(title), ' &middot; '.join(sub)),
        _cards(report, kind),
        '<section class="panel wide"><h2>Outcomes per org</h2>',
        (fleet_svg + _legend(summary, kind) + '<p id="maptip" class="small muted" data-idle="%s">%s</p>'
         % (_h(map_tip), _h(map_tip))) if summary else '<p class="muted">No rows.</p>',
        '</section><div class="panels"><section class="panel"><h2>Timeline: old pairs leaving their grace period, '
        'staged pairs expiring</h2>%s</section>' % _timeline(rows, today),
        '<section class="panel"><h2>Why rows need attention</h2>%s%s</section></div>'
        % (_reason_bars(reasons), _attention_bars(summary, kind)),
        '<section><div class="tools"><input id="q" type="search" autocomplete="off" spellcheck="false" '
        'placeholder="Filter: any text, or org: app: outcome: slot: phase:" title="press / to get here" '
        'aria-label="filter rows"><span id="chips"></span><span id="count" class="count">%s rows</span>'
        '<span class="pager"><button type="button" id="first" title="first page">«</button>'
        '<button type="button" id="prev" title="previous page">‹</button><span id="page"></span>'
        '<button type="button" id="next" title="next page">›</button>'
        '<button type="button" id="last" title="last page">»</button>'
        '<select id="size" aria-label="rows per page"><option>50</option><option selected>100</option>'
        '<option>250</option><option>1000</option></select></span></div>' % _fmt_int(len(rows)),
        '<noscript><p>Showing the first %d of %s rows: filtering, sorting and the other pages need JavaScript '
        '(the report\'s .json and .md files hold every row).</p></noscript>'
        % (min(FIRST_PAGE, len(rows)), _fmt_int(len(rows))),
        '<div class="tablewrap"><table><thead><tr>%s</tr></thead><tbody id="rows">\n%s\n</tbody></table></div>'
        % (header_cells, _first_page(rows, kind)),
        '</section></main>',
        '<script type="application/json" id="report-data">%s</script>' % _json_for_script(data),
        '<script>%s</script></body></html>\n' % script,
    ]
    return ''.join(page)
