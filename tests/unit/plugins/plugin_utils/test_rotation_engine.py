"""The rotation engine (plugin_utils/_rotation_*.py) against the simulator over HTTPS."""

import json
import os
import stat

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_fleet as fleet
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_engine import OrgRotation
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_options import org_spec


class Sleeps:
    """Injected sleep: records instead of sleeping."""

    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


def options(**given):
    result = ArgumentSpecValidator(org_spec()).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


@pytest.fixture
def org(esim, tmp_path):
    """org(**settings) -> the validated options of org01, delivering to a vault file under tmp_path/out."""
    password = tmp_path / 'vault-pw'
    password.write_text('unit-vault-pw\n')

    def make(rotations=None, **settings):
        o = esim.orgs['org01']
        base = {'connection': {'instance_url': o.instance_url, 'client_id': o.admin['client_id'],
                               'client_secret': o.admin['client_secret'], 'ca_path': esim.ca_path},
                'rotations': rotations or [{'app_name': 'Billing_Sync', 'deliver': deliver_to(tmp_path)}],
                'state_dir': str(tmp_path / 'state'), 'verify_delay': 0, 'verify_retries': 1,
                'vault_password_file': str(password)}
        base.update(settings)
        return options(**base)
    return make


def deliver_to(tmp_path):
    return {'vault_file': str(tmp_path / 'out' / '{org}-{app_name}-{consumer_name}.vault.yml')}


def run(opts, check_mode=False, **kw):
    return fleet.run_org('org01', opts, {'run': True, 'canary': True}, check_mode=check_mode, sleep=Sleeps(), **kw)


def writes(esim):
    return [(e['method'], e['endpoint']) for e in esim.requests('org01') if e['method'] in ('POST', 'PATCH', 'DELETE')
            and e['endpoint'] != 'token']


def decrypt(path, password='unit-vault-pw'):
    return yaml.safe_load(VaultLib([('default', VaultSecret(password.encode()))]).decrypt(open(path, 'rb').read()))


def billing(esim):
    return esim.org('org01').app('Billing_Sync').consumer('Billing')


def test_plain_rotation_delivers_the_new_main_pair_within_the_call_budget(esim, org, tmp_path):
    consumer = billing(esim)
    old = consumer.main
    esim.reset_log()
    out = run(org())

    [row] = out['records']
    assert row['outcome'] == 'rotated', row
    assert out['changed'] is True and out['org_failed'] is False and 'handoff' not in out
    new = consumer.main
    assert new['key'] != old['key']
    assert consumer.staged['state'] == 'Rotated' and consumer.staged['key'] == old['key']
    vault_file = tmp_path / 'out' / 'org01-Billing_Sync-Billing.vault.yml'
    assert stat.S_IMODE(os.stat(vault_file).st_mode) == 0o600
    delivered = decrypt(vault_file)
    assert (delivered['key'], delivered['secret']) == (new['key'], new['secret'])
    assert list(delivered) == ['instance_url', 'org', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'key', 'secret']
    assert row['delivered_to'] == str(vault_file)
    # the admin token, usage, consumers, the staged slot (read once), POST, verification token, PATCH
    assert [(e['method'], e['endpoint']) for e in esim.requests('org01')] == [
        ('POST', 'token'), ('GET', 'usage'), ('GET', 'credentials'), ('GET', 'staged'), ('POST', 'staged'),
        ('POST', 'token'), ('PATCH', 'staged_item')], esim.counts('org01')
    assert out['api_calls'] == 7
    own = tmp_path / 'state' / 'history.d' / 'org01.json'
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o600
    entry = json.loads(own.read_text())['consumers']['org01/Billing_Sync/Billing']
    assert entry['rotations'] == 1 and entry['key'] == '...' + new['key'][-4:] and 'promoting_fp' not in entry
    text = json.dumps(out)
    assert new['secret'] not in text and old['secret'] not in text


def test_check_mode_plans_and_writes_nothing(esim, org, tmp_path):
    esim.reset_log()
    rotations = [{'app_name': 'Billing_Sync', 'deliver': deliver_to(tmp_path)},
                 {'app_name': 'Rotated_App', 'deliver': deliver_to(tmp_path)}]
    out = run(org(rotations), check_mode=True)
    assert [r['outcome'] for r in out['records']] == ['planned', 'planned']
    assert out['plan'][0].startswith('Billing_Sync/Billing: rotate')
    assert out['plan'][1].startswith('Rotated_App/R: blocked')
    assert writes(esim) == []
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'state').exists()


def test_tasks_file_delivery_hands_off_then_finishes(esim, org, tmp_path):
    tasks = tmp_path / 'deliver.yml'
    tasks.write_text('- ansible.builtin.debug: {msg: hi}\n')
    opts = org([{'app_name': 'Billing_Sync', 'deliver': {'tasks_file': str(tasks)}}])
    consumer = billing(esim)
    out = run(opts)
    handoff = out['handoff']
    assert writes(esim)[-1:] == [('POST', 'staged')], 'nothing is promoted before the tasks files ran'
    [step] = handoff['steps']
    assert (step['kind'], step['file'], step['after']) == ('deliver', str(tasks), None)
    assert step['credential']['secret'] == consumer.staged['secret'] and step['credential']['org'] == 'org01'
    assert consumer.staged['secret'] not in json.dumps(dict(out, handoff=None))

    staged_key = consumer.staged['key']
    done = fleet.finish_org('org01', opts, handoff, failed={}, ran=True, sleep=Sleeps())
    [row] = done['records']
    assert row['outcome'] == 'rotated' and row['delivered_to'] == str(tasks), row
    assert consumer.main['key'] == staged_key


def test_a_failed_tasks_file_delivery_keeps_the_pair_for_the_next_run(esim, org, tmp_path):
    """The tasks file may have written part of its targets before failing: the pair is kept, unpromoted."""
    tasks = tmp_path / 'deliver.yml'
    tasks.write_text('- ansible.builtin.debug: {msg: hi}\n')
    opts = org([{'app_name': 'Billing_Sync', 'deliver': {'tasks_file': str(tasks)}}])
    consumer = billing(esim)
    old = consumer.main
    handoff = run(opts)['handoff']
    secret = consumer.staged['secret']
    out = fleet.finish_org('org01', opts, handoff, failed={'Billing_Sync/Billing#deliver': 'Write to the store'},
                           ran=True, sleep=Sleeps())
    [row] = out['records']
    assert (row['outcome'], row['phase']) == ('failed', 'deliver') and not row['rolled_back'], row
    assert 'failed at task "Write to the store"' in row['error'] and 'next run resumes' in row['error']
    assert consumer.main == old and consumer.staged['state'] == 'Active' and consumer.staged['secret'] == secret
    assert secret not in json.dumps(out)
    # the role never reported back (the play stopped): not promoted either
    out = fleet.finish_org('org01', opts, handoff, failed={}, ran=False, sleep=Sleeps())
    assert out['records'][0]['outcome'] == 'failed' and 'did not report back' in out['records'][0]['error']
    assert consumer.main == old


def test_a_hook_runs_after_the_delivery_and_only_when_it_succeeded(esim, org, tmp_path):
    hook = tmp_path / 'hook.yml'
    hook.write_text('- ansible.builtin.debug: {msg: hi}\n')
    tasks = tmp_path / 'deliver.yml'
    tasks.write_text('- ansible.builtin.debug: {msg: hi}\n')
    out = run(org([{'app_name': 'Billing_Sync', 'deliver': {'tasks_file': str(tasks)}, 'verify_tasks_file': str(hook)}]))
    steps = out['handoff']['steps']
    assert [(s['kind'], s['after']) for s in steps] == [('deliver', None), ('hook', 'Billing_Sync/Billing#deliver')]
    # a vault delivery is done in the first task; only its hook is handed off
    billing(esim).set_staged('Expired')
    out = run(org(verify_tasks_file=str(hook), min_age_days=0))
    [step] = out['handoff']['steps']
    assert (step['kind'], step['after']) == ('hook', None)
    assert decrypt(tmp_path / 'out' / 'org01-Billing_Sync-Billing.vault.yml')['key'] == step['credential']['key']


def test_an_unrecorded_promotion_is_finished_and_its_revoke_done_by_the_next_run(esim, org, tmp_path, monkeypatch):
    """I3: the PATCH went through but the run died before recording it: the rerun records it, rotates nothing again,
    and with revoke_previous finishes the revoke."""
    opts = org(revoke_previous=True, replace_rotated=True)
    consumer = billing(esim)
    old = consumer.main

    def killed(self, org_name, rows):
        raise KeyboardInterrupt('killed after the PATCH')
    monkeypatch.setattr(history.History, 'record_rows', killed)
    with pytest.raises(KeyboardInterrupt):
        run(opts)
    monkeypatch.undo()
    promoted = consumer.main
    assert promoted['key'] != old['key'] and consumer.staged['state'] == 'Rotated'

    esim.reset_log()
    out = run(opts)
    [row] = out['records']
    assert row['plan'] == 'revoke' and row['outcome'] == 'rotated', row
    assert row['revoked'] is True and row['old_pair_refused'] is True
    assert consumer.main == promoted and consumer.staged is None
    assert writes(esim) == [('DELETE', 'staged_item')], 'nothing staged or promoted again'
    entry = json.loads((tmp_path / 'state' / 'history.d' / 'org01.json').read_text())['consumers']['org01/Billing_Sync/Billing']
    assert entry['rotations'] == 1 and 'promoting_fp' not in entry


def test_without_revoke_an_unrecorded_promotion_is_recorded_not_blocked(esim, org, tmp_path, monkeypatch):
    opts = org(min_age_days=0)
    consumer = billing(esim)

    def killed(self, org_name, rows):
        raise KeyboardInterrupt('killed after the PATCH')
    monkeypatch.setattr(history.History, 'record_rows', killed)
    with pytest.raises(KeyboardInterrupt):
        run(opts)
    monkeypatch.undo()
    promoted = consumer.main
    esim.reset_log()
    [row] = run(opts)['records']
    assert (row['plan'], row['outcome']) == ('finish', 'rotated'), row
    assert writes(esim) == [] and consumer.main == promoted
    # the next run sees a recorded rotation: with min_age_days=0 and a Rotated slot it is blocked as usual
    [row] = run(opts)['records']
    assert row['plan'] == 'blocked', row


def test_a_stopped_revoke_is_finished_by_the_next_run(esim, org, tmp_path, monkeypatch):
    """Promoted and recorded, then stopped before revoking: the rerun plans 'revoke' and finishes it."""
    opts = org(revoke_previous=True)
    consumer = billing(esim)
    old = consumer.main
    monkeypatch.setattr(OrgRotation, '_revoke', lambda self: [c.done() for c in self.consumers])
    assert run(opts)['records'][0]['outcome'] == 'rotated'
    monkeypatch.undo()
    assert consumer.staged['state'] == 'Rotated' and old['key'] in consumer.valid_keys

    esim.reset_log()
    [row] = run(opts)['records']
    assert row['plan'] == 'revoke' and row['outcome'] == 'rotated' and row['revoked'] is True, row
    assert row['old_pair_refused'] is True and row['delivered_to'] is None
    assert consumer.staged is None and old['key'] not in consumer.valid_keys
    assert writes(esim) == [('DELETE', 'staged_item')]


def test_without_revoke_previous_a_rotated_slot_stays_blocked(esim, org, tmp_path):
    assert run(org())['records'][0]['outcome'] == 'rotated'
    [row] = run(org(min_age_days=0))['records']
    assert (row['plan'], row['outcome']) == ('blocked', 'blocked')


def test_http_401_mid_run_renews_the_token_and_goes_on(esim, org, tmp_path):
    consumer = billing(esim)
    esim.add_fault('org01', 'invalid_session', method='POST', endpoint='staged', times=1)
    esim.reset_log()
    [row] = run(org())['records']
    assert row['outcome'] == 'rotated', row
    assert esim.counts('org01')['POST staged'] == 2 and esim.counts('org01')['POST token'] == 3
    assert decrypt(tmp_path / 'out' / 'org01-Billing_Sync-Billing.vault.yml')['key'] == consumer.main['key']


def test_a_refused_new_pair_is_deleted_and_never_delivered(esim, org, tmp_path):
    consumer = billing(esim)
    old = consumer.main
    run_ = OrgRotation('org01', org(), sleep=Sleeps())
    try:
        run_.discover()
        run_.plan()
        # from now on the token endpoint refuses every pair (invalid_grant): the new pair fails verification
        esim.add_fault('org01', 'invalid_session', method='POST', endpoint='token', times=None)
        run_.prepare()
        run_.finish()
    finally:
        run_.close()
    [row] = run_.rows()
    assert (row['outcome'], row['phase'], row['rolled_back']) == ('failed', 'verify', True), row
    assert 'was refused' in row['error'] and row['delivered_to'] is None
    assert not (tmp_path / 'out').exists(), 'a pair that failed verification is never delivered'
    assert consumer.main == old and consumer.staged is None
    assert run_.sleep.calls == [0.0]


@pytest.mark.parametrize('kind', ['unavailable', 'reset'])
def test_a_token_endpoint_that_does_not_answer_never_deletes_the_pair(esim, org, tmp_path, kind):
    """I2: 5xx, timeouts and resets are not refusals: the staged pair is kept for the next run."""
    consumer = billing(esim)
    old = consumer.main
    run_ = OrgRotation('org01', org(connection=dict(org()['connection'], retry_backoff=0.01, max_retries=1)),
                       sleep=Sleeps())
    try:
        run_.discover()
        run_.plan()
        esim.add_fault('org01', kind, method='POST', endpoint='token', times=None)
        run_.prepare()
        run_.finish()
    finally:
        run_.close()
    [row] = run_.rows()
    assert (row['outcome'], row['phase']) == ('failed', 'verify') and not row['rolled_back'], row
    assert 'kept staged' in row['error']
    assert consumer.main == old and consumer.staged['state'] == 'Active'
    assert not [e for e in esim.requests('org01') if e['method'] == 'DELETE']


def test_a_held_back_org_is_not_contacted(esim, org):
    esim.reset_log()
    out = fleet.run_org('org01', org(), {'run': False, 'canary': False, 'reason': 'not run: the canary batch failed (a)'})
    assert [r['outcome'] for r in out['records']] == ['not_run']
    assert esim.requests('org01') == []


def test_a_plan_read_that_is_no_longer_fresh_is_read_again_before_staging(esim, org, tmp_path):
    """The plan found the slot empty, but by the time staging starts the read is older than SLOT_FRESH_SECONDS
    and another tool has rotated the consumer meanwhile: staging reads the slot again and refuses the Rotated
    pair (in the API variant where a POST would silently replace it, revoking a key that may still be in use)."""
    esim.set_variants('org01', post_over_rotated='replace')
    run_ = OrgRotation('org01', org(), sleep=Sleeps())
    try:
        run_.discover()
        run_.plan()
        assert [c.plan for c in run_.consumers] == ['rotate']
        rotated = billing(esim).set_staged('Rotated')
        run_.SLOT_FRESH_SECONDS = 0
        esim.reset_log()
        run_._each(run_.pending('rotate'), 'stage', run_._stage)
    finally:
        run_.close()
    [consumer] = run_.consumers
    assert consumer.status == 'failed' and 'replace_rotated' in consumer.error
    assert billing(esim).staged == rotated and esim.authenticates('org01', rotated['key'], rotated['secret'])
    assert esim.counts('org01') == {'GET staged': 1}


def test_a_fresh_plan_read_of_an_empty_slot_is_not_repeated(esim, org, tmp_path):
    run_ = OrgRotation('org01', org(), sleep=Sleeps())
    try:
        run_.discover()
        run_.plan()
        esim.reset_log()
        run_._each(run_.pending('rotate'), 'stage', run_._stage)
    finally:
        run_.close()
    assert run_.consumers[0].staged_by_run is True
    assert esim.counts('org01') == {'POST staged': 1}


def test_promotion_acts_only_on_the_delivered_pair(esim, org, tmp_path):
    """I6: the staged pair was replaced after it was delivered: the PATCH by its id fails, and the fallback does not
    promote the pair that is in the slot now."""
    consumer = billing(esim)
    old = consumer.main
    run_ = OrgRotation('org01', org(), sleep=Sleeps())
    try:
        run_.discover()
        run_.plan()
        run_.prepare()
        delivered = decrypt(tmp_path / 'out' / 'org01-Billing_Sync-Billing.vault.yml')
        other = consumer.set_staged('Active')  # another tool replaced it: a new id and key
        run_.finish()
    finally:
        run_.close()
    [row] = run_.rows()
    assert (row['outcome'], row['phase']) == ('failed', 'promote'), row
    assert 'not the pair' in row['error']
    assert consumer.main == old and consumer.staged['key'] == other['key'] != delivered['key']


# -- many orgs in one task --------------------------------------------------------------------------

FLEET_SEED = {'orgs': [{'name': 'fleet%02d' % i, 'apps': [
    {'developer_name': 'Billing_Sync', 'consumers': [{'name': 'Billing'}]}]} for i in range(6)]}


def fleet_jobs(fleet_sim, tmp_path, **settings):
    password = tmp_path / 'vault-pw'
    password.write_text('unit-vault-pw\n')
    jobs = []
    for name in sorted(fleet_sim.orgs):
        o = fleet_sim.orgs[name]
        given = dict(state_dir=str(tmp_path / 'state'), verify_delay=0, verify_retries=1,
                     vault_password_file=str(password),
                     connection={'instance_url': o.instance_url, 'client_id': o.admin['client_id'],
                                 'client_secret': o.admin['client_secret'], 'ca_path': fleet_sim.ca_path},
                     rotations=[{'app_name': 'Billing_Sync', 'deliver': deliver_to(tmp_path)}])
        given.update(settings)
        jobs.append((name, options(**given)))
    return jobs


def test_run_fleet_rotates_every_org_and_one_orgs_failure_stays_its_own(sim_factory, tmp_path):
    fleet_sim = sim_factory(FLEET_SEED)
    jobs = fleet_jobs(fleet_sim, tmp_path)
    jobs[2][1]['connection']['client_secret'] = 'not-the-admin-secret'
    before = dict((name, fleet_sim.org(name).app('Billing_Sync').consumer('Billing').main['key']) for name, _o in jobs)

    out = fleet.run_fleet(jobs, {'run': True, 'canary': False}, workers=4, sleep=Sleeps())

    assert list(out) == [name for name, _o in jobs], 'results come back in the order of the jobs'
    for name, _o in jobs:
        consumer = fleet_sim.org(name).app('Billing_Sync').consumer('Billing')
        if name == 'fleet02':
            assert out[name]['org_failed'] is True
            assert out[name]['records'][0]['phase'] == 'authenticate'
            assert consumer.main['key'] == before[name] and consumer.staged is None
            assert [e['endpoint'] for e in fleet_sim.requests(name)] == ['token'], 'refused at authentication'
            continue
        [row] = out[name]['records']
        assert row['outcome'] == 'rotated' and row['org'] == name, row
        delivered = decrypt(tmp_path / 'out' / ('%s-Billing_Sync-Billing.vault.yml' % name))
        assert (delivered['key'], delivered['secret']) == (consumer.main['key'], consumer.main['secret'])
        assert consumer.staged['key'] == before[name]
        assert out[name]['api_calls'] == 7, fleet_sim.counts(name)
    assert 'not-the-admin-secret' not in json.dumps(out)


def test_run_fleet_applies_the_gate_to_every_org(sim_factory, tmp_path):
    fleet_sim = sim_factory(FLEET_SEED)
    jobs = fleet_jobs(fleet_sim, tmp_path)
    out = fleet.run_fleet(jobs, {'run': False, 'reason': 'not run: the canary batch failed (x)'}, workers=3)
    assert set(r['outcome'] for o in out.values() for r in o['records']) == {'not_run'}
    assert all(not fleet_sim.requests(name) for name, _o in jobs), 'a held-back org is not contacted'


def test_run_fleet_records_an_unexpected_error_as_that_orgs_failure_without_its_secret(sim_factory, tmp_path,
                                                                                       monkeypatch):
    fleet_sim = sim_factory(FLEET_SEED)
    jobs = fleet_jobs(fleet_sim, tmp_path)
    broken = jobs[1][1]['connection']
    real = OrgRotation.prepare

    def prepare(self):
        if self.org == 'fleet01':
            raise RuntimeError('bug while holding %s' % broken['client_secret'])
        return real(self)
    monkeypatch.setattr(OrgRotation, 'prepare', prepare)
    out = fleet.run_fleet(jobs, {'run': True, 'canary': True}, workers=2, sleep=Sleeps())
    [row] = out['fleet01']['records']
    assert out['fleet01']['org_failed'] is True and row['outcome'] == 'failed' and row['phase'] == 'unexpected'
    assert out['fleet01']['canary'] is True, 'a crashed canary org still holds back the next batches'
    # only the type: the text of an unexpected error may quote anything the org's run held
    assert '(RuntimeError)' in row['error'] and 'bug while holding' not in row['error']
    assert broken['client_secret'] not in json.dumps(out)
    assert [o['records'][0]['outcome'] for n, o in out.items() if n != 'fleet01'] == ['rotated'] * 5


def test_run_fleet_rotates_an_org_given_twice_once(sim_factory, tmp_path):
    fleet_sim = sim_factory(FLEET_SEED)
    jobs = fleet_jobs(fleet_sim, tmp_path)[:2]
    out = fleet.run_fleet(jobs + [jobs[0]], {'run': True}, workers=3, sleep=Sleeps())
    assert list(out) == ['fleet00', 'fleet01']
    assert [e['endpoint'] for e in fleet_sim.requests('fleet00')].count('staged') == 2  # plan GET, POST: once
    assert out['fleet00']['records'][0]['outcome'] == 'rotated'


def test_two_orgs_of_a_run_cannot_deliver_to_one_file(sim_factory, tmp_path):
    """I4: a path template without {org}: every org that would write the file fails before any call."""
    fleet_sim = sim_factory(FLEET_SEED)
    jobs = fleet_jobs(fleet_sim, tmp_path, rotations=[{'app_name': 'Billing_Sync', 'deliver': {
        'vault_file': str(tmp_path / 'out' / '{app_name}.vault.yml')}}])[:2]
    fleet_sim.reset_log()
    out = fleet.run_fleet(jobs, {'run': True}, workers=2, sleep=Sleeps())
    for name in ('fleet00', 'fleet01'):
        [row] = out[name]['records']
        assert (row['outcome'], row['phase']) == ('failed', 'plan') and '{org}' in row['error'], row
        assert fleet_sim.requests(name) == [], 'nothing was asked of the org'
    assert not (tmp_path / 'out').exists()


def test_a_target_claimed_by_another_org_of_the_run_is_refused(sim_factory, tmp_path):
    """I4: templates that differ, but resolve to one file: the second consumer to claim it fails before it writes."""
    fleet_sim = sim_factory(FLEET_SEED)
    jobs = fleet_jobs(fleet_sim, tmp_path)[:2]
    jobs[0][1]['rotations'][0]['deliver']['vault_file'] = str(tmp_path / 'out' / '{consumer_name}.vault.yml')
    jobs[1][1]['rotations'][0]['deliver']['vault_file'] = str(tmp_path / 'out' / 'Billing.vault.yml')
    out = fleet.run_fleet(jobs, {'run': True}, workers=1, sleep=Sleeps())
    first, second = out['fleet00']['records'][0], out['fleet01']['records'][0]
    assert first['outcome'] == 'rotated'
    assert (second['outcome'], second['phase']) == ('failed', 'plan') and 'also the delivery target of fleet00' in \
        second['error'], second
    assert fleet_sim.write_count('fleet01') == 0
    assert decrypt(tmp_path / 'out' / 'Billing.vault.yml')['org'] == 'fleet00'


def test_a_broken_history_file_fails_the_org_in_its_plan_naming_the_file(esim, org, tmp_path):
    (tmp_path / 'state').mkdir()
    (tmp_path / 'state' / 'history.json').write_text('{broken')
    esim.reset_log()
    out = run(org())
    [row] = out['records']
    assert (row['outcome'], row['phase']) == ('failed', 'plan') and 'history.json is not valid JSON' in row['error'], row
    assert writes(esim) == []
