"""A synthetic fleet report: rows shaped like the rotation's and the audit's, for any number of orgs."""

import datetime
import random

HOSTILE_ORG = 'org-<script>alert("x")</script>-</script><img src=x onerror=alert(1)>&amp;'
GENERATED = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _sf(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.000+0000')


def _key(rng):
    return '...' + ''.join(rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789') for dummy in range(4))


def rotation_rows(n, seed=17, hostile=True):
    """n rotation rows, one per org (org00001..): mostly rotated, some skipped/blocked/failed/not run."""
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        org = 'org%05d' % i
        roll = rng.random()
        started = GENERATED - datetime.timedelta(minutes=20) + datetime.timedelta(seconds=i * 0.1)
        duration = round(rng.uniform(0.4, 3.5), 2)
        row = {'org': org, 'instance_url': 'https://127.1.%d.%d:8443' % (i // 254, i % 254 + 1),
               'app_name': rng.choice(('Billing_Sync', 'Data_Loader', 'Partner_Portal')),
               'consumer_name': rng.choice(('Billing', 'Primary', 'Secondary')), 'plan': 'rotate',
               'plan_reason': 'main pair older than 90 days', 'old_key': _key(rng),
               'started': _iso(started), 'finished': _iso(started + datetime.timedelta(seconds=duration)),
               'duration': duration}
        if roll < 0.86:
            grace = GENERATED + datetime.timedelta(days=30, hours=rng.uniform(-2, 2))
            row.update(outcome='rotated', phase='promote', new_key=_key(rng), state='Rotated',
                       grace_end=_sf(grace), expiry=_sf(grace), delivered_to='vault/%s.yml' % org,
                       revoked=False, rolled_back=False)
        elif roll < 0.91:
            age = rng.randint(1, 29)
            grace = GENERATED + datetime.timedelta(days=30 - age)
            row.update(outcome='skipped', plan='skip', plan_reason='rotated %d days ago (min age 30)' % age,
                       state='Rotated', grace_end=_sf(grace), expiry=_sf(grace), last_rotated=_iso(GENERATED - datetime.timedelta(days=age)))
        elif roll < 0.95:
            ends = GENERATED + datetime.timedelta(days=rng.randint(1, 29))
            row.update(outcome='blocked', plan='blocked', plan_reason='an Active staged pair nobody promoted is in the slot',
                       state='Active', staged_expiration=_sf(ends), expiry=_sf(ends))
        elif roll < 0.985:
            row.update(outcome='failed', phase=rng.choice(('stage', 'verify', 'deliver')), state='Active',
                       rolled_back=True, error='the new pair %s was refused: invalid_client_id' % _key(rng))
        else:
            row.update(outcome='not_run', plan=None, error='the canary failed: the fleet was not rotated')
        rows.append(row)
    if hostile and rows:
        rows[len(rows) // 2].update(org=HOSTILE_ORG, app_name='A&B "quoted" \u2028 line', outcome='failed', phase='promote',
                                    error='</script><script>window.__pwned=1</script>')
    return rows


def audit_rows(n, seed=23):
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        state = rng.choice(('empty', 'empty', 'empty', 'Rotated', 'Active', 'Expired'))
        findings, expiry = [], None
        if state == 'Active':
            expiry = GENERATED + datetime.timedelta(days=rng.randint(1, 29))
            findings = ['staged_waiting'] + (['staged_expiring'] if expiry - GENERATED < datetime.timedelta(days=7) else [])
        elif state == 'Rotated':
            expiry = GENERATED + datetime.timedelta(days=rng.randint(1, 29))
            findings = ['previous_in_grace']
        elif state == 'Expired':
            findings = ['staged_expired']
        if rng.random() < 0.2:
            findings.append('never_rotated_by_tool')
        serious = set(findings) & {'staged_expiring', 'staged_expired', 'rotated_outside_tool'}
        rows.append({'org': 'org%05d' % i, 'app_name': 'Billing_Sync', 'consumer_name': 'Billing',
                     'old_key': _key(rng), 'staged_key': _key(rng) if state != 'empty' else None, 'state': state,
                     'expiry': _sf(expiry) if expiry else None, 'findings': findings,
                     'last_rotated': _iso(GENERATED - datetime.timedelta(days=rng.randint(20, 200))),
                     'outcome': 'attention' if serious else 'ok'})
    rows[3].update(outcome='failed', phase='authenticate', error='authentication to the org failed: invalid_grant')
    return rows
