"""report.html (plugin_utils/_report_html.py): what the page holds, escaping, the JSON, the charts' numbers.
The page's behaviour in a browser is tested in tests/browser."""

import base64
import hashlib
import json
import re
import time

import pytest

from ansible_collections.sfdc.eca.plugins.plugin_utils import _report as rep
from ansible_collections.sfdc.eca.plugins.plugin_utils import _report_html as rh

HOSTILE = 'o<script>alert(1)</script></script><img src=x onerror=alert(2)>&amp;"\'\u2028'
NOW = '2026-06-01T12:00:00Z'


def _report(rows, kind='rotation'):
    report = rep.build(rows, kind)
    report['generated'] = NOW
    return report


def _data(page):
    """The embedded JSON, as the page's script reads it."""
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def _rows():
    return [
        {'org': 'a', 'app_name': 'App', 'consumer_name': 'C1', 'plan': 'rotate', 'outcome': 'rotated',
         'old_key': '...AAAA', 'new_key': '...BBBB', 'state': 'Rotated', 'expiry': '2026-07-01T12:00:00.000+0000',
         'duration': 1.25, 'delivered_to': '/vault/a.yml'},
        {'org': 'a', 'app_name': 'App', 'consumer_name': 'C2', 'plan': 'rotate', 'outcome': 'failed',
         'phase': 'verify', 'old_key': '...CCCC', 'state': 'Active', 'expiry': '2026-06-20T00:00:00.000+0000',
         'error': 'the new pair ...DDDD was refused: invalid_client_id'},
        {'org': 'b', 'app_name': 'App', 'consumer_name': 'C1', 'plan': 'blocked', 'outcome': 'blocked',
         'plan_reason': 'an Active staged pair is in the slot', 'state': 'Active',
         'expiry': '2026-06-05T00:00:00.000+0000'},
        {'org': 'c', 'app_name': 'App', 'consumer_name': 'C1', 'outcome': 'failed', 'phase': 'stage',
         'error': 'the new pair ...EEEE was refused: invalid_client_id'},
    ]


def test_hostile_values_never_leave_their_text():
    rows = [{'org': HOSTILE, 'app_name': HOSTILE, 'consumer_name': HOSTILE, 'outcome': 'failed', 'error': HOSTILE,
             'phase': HOSTILE, 'plan_reason': HOSTILE, 'state': 'Rotated', 'expiry': HOSTILE}]
    page = rh.render_html(_report(rows))
    for raw in ('<script>alert', '<img', '</script></script>', 'onerror=alert(2)>'):
        assert raw not in page
    assert page.count('<script') == 2 and page.count('</script>') == 2  # the JSON block and the page's script
    assert '\u2028' not in page.split('id="report-data">')[1]
    # markup: entity-escaped (the first page of rows, chart labels)
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in page and '&amp;amp;' in page
    # JSON: the same values come back exactly
    data = _data(page)
    row = dict(zip(data['fields'], data['rows'][0]))
    assert row['org'] == HOSTILE and row['error'] == HOSTILE
    assert data['orgs'][0][0] == HOSTILE


def test_only_known_fields_are_rendered():
    rows = _rows()
    rows[0].update({'secret': 'S3cr3tValue', 'client_secret': 'S3cr3tValue', 'access_token': 'S3cr3tValue',
                    'new_secret': 'S3cr3tValue', '_new_key_fp': 'fingerprint123'})
    report = _report(rows)
    report['rows'][0]['staged_secret'] = 'S3cr3tValue'  # even when a row of the document carries one
    page = rh.render_html(report)
    assert 'S3cr3tValue' not in page and 'fingerprint123' not in page
    data = _data(page)
    assert set(data['fields']) <= set(rh.FIELDS)
    assert 'secret' not in ' '.join(data['fields'])


def test_no_request_markup_and_a_csp_that_allows_only_this_script():
    page = rh.render_html(_report(_rows()))
    markup = page.split('<script type="application/json"', maxsplit=1)[0]
    assert not re.search(r'\b(src|href|srcset|action|formaction|xlink:href)\s*=', markup)
    assert '<link' not in page and '@import' not in page and 'url(' not in page
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page).group(1)
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp and "img-src 'none'" in csp
    script = re.search(r'<script>(.*)</script></body>', page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert "script-src 'sha256-%s'" % digest in csp


def test_summary_numbers():
    page = rh.render_html(_report(_rows()))
    data = _data(page)
    # worst outcome per org: a has a failed row, b blocked, c failed
    assert [(o[0], o[1]) for o in data['orgs']] == [('a', 'failed'), ('b', 'blocked'), ('c', 'failed')]
    assert data['orgs'][0][2] == {'rotated': 1, 'failed': 1}
    # the map: 3 squares, in two colours
    squares = re.findall(r'<path fill="(#[0-9a-f]{6})" d="([^"]*)"/>', page.split('id="fleetmap"')[1].split('</svg>')[0])
    assert sorted((c, d.count('M')) for c, d in squares) == sorted([(rh.COLOURS['failed'], 2), (rh.COLOURS['blocked'], 1)])
    # reasons: the two refused pairs differ only in the key suffix and phase
    assert [r[0] for r in data['reasons']] == [
        'blocked: an Active staged pair is in the slot', 'failed: at stage: the new pair … was refused: invalid_client_id',
        'failed: at verify: the new pair … was refused: invalid_client_id']
    assert data['reason'] == [-1, 2, 0, 1]
    # the timeline: one Rotated grace end (Jul 01), two Active expiries (Jun 05, Jun 20)
    bars = re.findall(r'<g class="tbar" data-day="([\d-]+)" data-days="(\d+)"><title>([^<]*)</title>', page)
    assert [(d, n) for d, n, dummy in bars] == [('2026-06-05', '1'), ('2026-06-20', '1'), ('2026-07-01', '1')]
    assert bars[2][2] == '2026-07-01: 1 Rotated pair(s) leave their grace period, 0 Active pair(s) expire'
    assert 'Next 7 days: <b>0</b> old pair(s) stop working, <b>1</b> staged pair(s) expire.' in page


def test_timeline_uses_grace_end_and_staged_expiration_when_rows_have_them():
    rows = [{'org': 'a', 'outcome': 'rotated', 'state': 'Rotated', 'grace_end': '2026-06-30T10:00:00Z',
             'expiry': None},
            {'org': 'b', 'outcome': 'blocked', 'state': 'Active', 'staged_expiration': '2026-06-03T10:00:00Z'},
            {'org': 'c', 'outcome': 'skipped', 'state': 'Expired', 'expiry': '2026-06-02T10:00:00Z'}]
    report = {'kind': 'rotation', 'generated': NOW, 'totals': {}, 'rows': rows}
    page = rh.render_html(report)
    assert re.findall(r'data-day="([\d-]+)"', page) == ['2026-06-03', '2026-06-30']


def test_one_huge_day_is_drawn_broken_so_the_others_stay_visible():
    rows = [{'org': 'o%d' % i, 'outcome': 'rotated', 'state': 'Rotated', 'expiry': '2026-07-01T12:00:00Z'}
            for i in range(1000)]
    rows += [{'org': 'p%d' % i, 'outcome': 'blocked', 'state': 'Active', 'expiry': '2026-06-%02dT12:00:00Z' % (i + 2)}
             for i in range(10)]
    page = rh.render_html(_report(rows))
    timeline = page.split('id="timeline"')[1].split('</svg>')[0]
    assert '<text x="' in timeline and '>1,000</text>' in timeline and 'class="brk"' in timeline
    heights = [float(h) for h in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', timeline)]
    assert min(heights) > 50  # a day with one expiry is not a sliver next to the day with 1,000


def test_audit_kind_same_page_with_its_columns():
    rows = [{'org': 'a', 'app_name': 'App', 'consumer_name': 'C', 'outcome': 'attention', 'state': 'Active',
             'expiry': '2026-06-03T00:00:00.000+0000', 'findings': ['staged_waiting', 'staged_expiring'],
             'old_key': '...AAAA', 'staged_key': '...BBBB', 'last_rotated': '2026-01-01T00:00:00Z'},
            {'org': 'b', 'outcome': 'failed', 'phase': 'authenticate', 'error': 'authentication failed: invalid_grant'}]
    page = rh.render_html(_report(rows, 'audit'))
    assert '<title>sfdc.eca audit report</title>' in page
    headers = re.findall(r'<th data-col="[a-z_]+" scope="col">([^<]*)<', page)
    assert headers == ['org', 'app', 'consumer', 'outcome', 'main key', 'staged key', 'slot', 'expiry / grace end',
                       'findings', 'last rotated', 'error']
    assert 'findings:</span> staged expiring <b>1</b>, staged waiting <b>1</b>' in page
    data = _data(page)
    assert [r[0] for r in data['reasons']] == [
        'attention: staged_expiring', 'failed: at authenticate: authentication failed: invalid_grant']
    assert 'staged_waiting, staged_expiring' in page  # the first page, as text


def test_check_mode_and_empty_report():
    page = rh.render_html({'kind': 'rotation', 'generated': NOW, 'check_mode': True, 'totals': {}, 'rows': []})
    assert 'check mode: nothing was written to any org' in page
    assert _data(page)['rows'] == [] and 'nothing is due' in page and '<svg id="fleetmap"' not in page


@pytest.mark.parametrize('value, shown', [
    ({'nested': 'x'}, "{'nested': 'x'}"), (float('nan'), None), (3, 3), (True, True), (['a', 1], ['a', '1']),
    ('x' * 5000, 'x' * 3999 + '…'),
])
def test_values_are_plain_json(value, shown):
    page = rh.render_html({'kind': 'rotation', 'generated': NOW, 'rows': [{'org': 'a', 'error': value}]})
    data = _data(page)
    assert dict(zip(data['fields'], data['rows'][0]))['error'] == shown


def test_10000_rows_render_quickly_and_stay_small():
    rows = []
    for i in range(10000):
        rows.append({'org': 'org%05d' % i, 'app_name': 'Billing_Sync', 'consumer_name': 'Billing', 'plan': 'rotate',
                     'plan_reason': 'main pair older than 90 days', 'outcome': 'failed' if i % 40 == 0 else 'rotated',
                     'phase': 'promote', 'old_key': '...AAAA', 'new_key': '...BBBB', 'state': 'Rotated',
                     'expiry': '2026-07-01T12:00:00.000+0000', 'delivered_to': '/v/org%05d.yml' % i,
                     'started': NOW, 'finished': NOW, 'duration': 1.5,
                     'error': 'boom ...XXXX' if i % 40 == 0 else None})
    report = _report(rows)
    c0 = time.process_time()
    page = rh.render_html(report)
    cpu = time.process_time() - c0
    assert cpu < 5.0, '%.2f s of CPU for 10,000 rows' % cpu
    assert len(page.encode()) < 6 * 1024 * 1024
    assert len(_data(page)['rows']) == 10000 and page.count('<tr class="row">') == rh.FIRST_PAGE
