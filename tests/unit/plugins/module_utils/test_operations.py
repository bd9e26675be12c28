"""The module logic (run_*) against the simulator: transitions, idempotence, check mode, ambiguity, errors, budgets."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaInputError, EcaNotFoundError, EcaStateError
from ansible_collections.sfdc.eca.plugins.module_utils._operations import (
    run_credential_info,
    run_staged_credential,
    run_token,
    run_usage_info,
)


@pytest.fixture
def staged(esim, make_client):
    """staged(app='Billing_Sync', check_mode=False, diff=True, org='org01', client=None, **params) -> result."""
    def run(app='Billing_Sync', check_mode=False, diff=True, org='org01', client=None, by_id=False, **params):
        if by_id:
            params['app_id'] = esim.orgs[org].app(app).id
        else:
            params['app_name'] = app
        params.setdefault('state', 'present')
        client = client or make_client(org, token=True)
        return run_staged_credential(client, params, check_mode=check_mode, diff=diff)
    return run


def consumer(esim, app='Billing_Sync', name=None, org='org01'):
    return esim.orgs[org].app(app).consumer(name)


def no_secret_in(esim, value):
    text = repr(value)
    return not [s for s in esim.secrets() if s in text]


# -- state: present -------------------------------------------------------------------------------

def test_present_stages_into_an_empty_slot_then_is_idempotent(esim, staged):
    c = consumer(esim)
    main_before = c.main
    result = staged()
    truth = c.staged
    assert result['changed'] and result['action'] == 'staged' and result['previous_state'] == 'absent'
    assert result['staged_credential']['secret'] == truth['secret']
    assert result['staged_credential']['key'] == truth['key'] and result['staged_credential']['state'] == 'Active'
    assert result['main_key'] == main_before['key'] and c.main == main_before
    assert esim.authenticates('org01', truth['key'], truth['secret'])
    assert result['app_id'] == esim.orgs['org01'].app('Billing_Sync').id and result['consumer_id'] == c.id
    assert result['consumer_name'] == 'Billing' and result['app_name'] == 'Billing_Sync'
    assert esim.counts('org01') == {'GET usage': 1, 'GET credentials': 1, 'GET staged': 1, 'POST staged': 1}

    esim.reset_log()
    again = staged()
    assert not again['changed'] and again['action'] == 'none' and again['previous_state'] == 'Active'
    assert 'secret' not in again['staged_credential'] and again['staged_credential']['id'] == truth['id']
    assert esim.write_count('org01') == 0
    assert again['api_calls'] == 3


def test_noop_present_with_app_id_costs_two_calls(esim, staged):
    staged()
    esim.reset_log()
    result = staged(by_id=True)
    assert not result['changed'] and result['api_calls'] == 2
    assert esim.counts('org01') == {'GET credentials': 1, 'GET staged': 1}


def test_present_return_secret_reads_the_existing_secret(esim, staged):
    result = staged('Active_App', return_secret=True)
    assert not result['changed'] and result['staged_credential']['secret'] == consumer(esim, 'Active_App').staged['secret']


def test_present_replaces_an_expired_credential(esim, staged):
    c = consumer(esim, 'Expired_App')
    old = c.staged
    assert old['state'] == 'Expired'
    result = staged('Expired_App')
    assert result['changed'] and result['action'] == 'replaced_expired' and result['previous_state'] == 'Expired'
    assert c.staged['state'] == 'Active' and c.staged['key'] != old['key']
    assert result['staged_credential']['secret'] == c.staged['secret']
    assert esim.counts('org01')['DELETE staged_item'] == 1 and esim.counts('org01')['POST staged'] == 1


def test_present_refuses_a_rotated_credential_by_default(esim, staged):
    c = consumer(esim, 'Rotated_App')
    before = c.staged
    with pytest.raises(EcaStateError) as info:
        staged('Rotated_App')
    message = str(info.value)
    assert 'Rotated' in message and 'replace_rotated: true' in message and before['key'][-4:] in message
    assert esim.write_count('org01') == 0 and c.staged == before
    assert no_secret_in(esim, message)


@pytest.mark.parametrize('variant', ['reject', 'replace'])
def test_present_replace_rotated_in_both_api_variants(esim, staged, variant):
    esim.set_variants('org01', post_over_rotated=variant)
    c = consumer(esim, 'Rotated_App')
    old = c.staged
    assert esim.authenticates('org01', old['key'], old['secret'])
    result = staged('Rotated_App', replace_rotated=True)
    assert result['changed'] and result['action'] == 'replaced_rotated'
    assert c.staged['state'] == 'Active' and c.staged['key'] != old['key']
    assert not esim.authenticates('org01', old['key'], old['secret'])
    assert esim.counts('org01')['POST staged'] == 1


# -- known_slot: the caller has just read the slot --------------------------------------------------

def _by_ids(esim, app, org='org01'):
    return {'app_id': esim.orgs[org].app(app).id, 'consumer_id': consumer(esim, app, org=org).id, 'state': 'present',
            'return_secret': True}


def test_known_empty_slot_stages_without_reading_it_again(esim, make_client):
    c = consumer(esim)
    result = run_staged_credential(make_client('org01', token=True), _by_ids(esim, 'Billing_Sync'), known_slot=None)
    assert result['changed'] and result['action'] == 'staged' and result['previous_state'] == 'absent'
    assert result['staged_credential']['secret'] == c.staged['secret']
    assert esim.counts('org01') == {'POST staged': 1}


@pytest.mark.parametrize('state, action, counts', [
    ('Active', 'none', {'POST staged': 1, 'GET staged': 1}),
    ('Expired', 'replaced_expired', {'POST staged': 2, 'GET staged': 1, 'DELETE staged_item': 1}),
])
def test_a_slot_filled_since_the_callers_read_is_read_and_decided_again(esim, make_client, state, action, counts):
    """The caller saw an empty slot, but a credential was staged since: the refused POST leads to a read and the
    decision a first read would have given (Active: kept as it is; Expired: replaced)."""
    c = consumer(esim)
    there = c.set_staged(state)
    result = run_staged_credential(make_client('org01', token=True), _by_ids(esim, 'Billing_Sync'), known_slot=None)
    assert result['action'] == action and result['previous_state'] == state
    assert esim.counts('org01') == counts
    if state == 'Active':
        assert c.staged == there and result['staged_credential']['secret'] == there['secret']
    else:
        assert c.staged['state'] == 'Active' and result['staged_credential']['secret'] == c.staged['secret']


def test_a_rotated_slot_found_after_a_refused_stage_is_left_alone(esim, make_client):
    """A Rotated pair is the previous main key in its grace: a caller's stale "empty" never gets it deleted."""
    c = consumer(esim, 'Rotated_App')
    before = c.staged
    with pytest.raises(EcaStateError) as info:
        run_staged_credential(make_client('org01', token=True), _by_ids(esim, 'Rotated_App'), known_slot=None)
    assert 'replace_rotated: true' in str(info.value)
    assert c.staged == before and esim.counts('org01') == {'POST staged': 1, 'GET staged': 1}
    assert esim.authenticates('org01', before['key'], before['secret'])


# -- state: rotated ---------------------------------------------------------------------------------

@pytest.mark.parametrize('id_variant', ['keep', 'new'])
def test_rotated_promotes_then_is_idempotent(esim, staged, id_variant):
    esim.set_variants('org01', staged_id_on_rotate=id_variant)
    c = consumer(esim)
    old_main = c.main
    first = staged(by_id=True, consumer_id=c.id)
    # app_id and consumer_id both given: the consumers are not listed again.
    assert first['api_calls'] == 2
    assert esim.counts('org01') == {'GET staged': 1, 'POST staged': 1}
    esim.reset_log()
    result = staged(by_id=True, consumer_id=c.id, state='rotated')
    assert result['changed'] and result['action'] == 'rotated' and result['previous_state'] == 'Active'
    assert c.main['key'] == first['staged_credential']['key'] == result['main_key']
    assert result['staged_credential']['state'] == 'Rotated' and result['staged_credential']['key'] == old_main['key']
    assert 'secret' not in result['staged_credential']
    assert esim.counts('org01') == {'GET staged': 1, 'PATCH staged_item': 1}
    # The old pair still works in its grace period.
    assert esim.authenticates('org01', old_main['key'], old_main['secret'])

    esim.reset_log()
    again = staged(state='rotated')
    assert not again['changed'] and again['action'] == 'none' and esim.write_count('org01') == 0
    assert again['main_key'] == c.main['key']


def test_rotated_with_an_empty_slot_fails_with_nothing_to_promote(esim, staged):
    with pytest.raises(EcaStateError, match='nothing to promote: run state: present first'):
        staged(state='rotated')
    assert esim.write_count('org01') == 0


def test_rotated_with_an_expired_credential_fails(esim, staged):
    with pytest.raises(EcaStateError, match='expired on .* cannot be promoted'):
        staged('Expired_App', state='rotated')
    assert esim.write_count('org01') == 0


def test_present_after_rotation_fails_until_the_old_key_is_revoked(esim, staged):
    staged()
    staged(state='rotated')
    with pytest.raises(EcaStateError, match='replace_rotated'):
        staged()


# -- state: absent ----------------------------------------------------------------------------------

@pytest.mark.parametrize('app', ['Active_App', 'Rotated_App', 'Expired_App'])
def test_absent_deletes_whatever_is_staged_then_is_idempotent(esim, staged, app):
    c = consumer(esim, app)
    old = c.staged
    result = staged(app, state='absent')
    assert result['changed'] and result['action'] == 'deleted' and result['previous_state'] == old['state']
    assert result['staged_credential'] is None and c.staged is None
    assert not esim.authenticates('org01', old['key'], old['secret'])
    again = staged(app, state='absent')
    assert not again['changed'] and again['previous_state'] == 'absent'


@pytest.mark.parametrize('variant', ['empty_list', 'not_found'])
def test_absent_on_an_empty_slot_in_both_variants(esim, staged, variant):
    esim.set_variants('org01', empty_staged=variant)
    result = staged(state='absent')
    assert not result['changed'] and esim.write_count('org01') == 0


# -- check mode and diff ------------------------------------------------------------------------------

@pytest.mark.parametrize('app, state, extra, expected_action', [
    ('Billing_Sync', 'present', {}, 'staged'),
    ('Expired_App', 'present', {}, 'replaced_expired'),
    ('Rotated_App', 'present', {'replace_rotated': True}, 'replaced_rotated'),
    ('Active_App', 'present', {}, 'none'),
    ('Active_App', 'rotated', {}, 'rotated'),
    ('Rotated_App', 'rotated', {}, 'none'),
    ('Active_App', 'absent', {}, 'deleted'),
    ('Billing_Sync', 'absent', {}, 'none'),
])
def test_check_mode_predicts_and_writes_nothing(esim, staged, app, state, extra, expected_action):
    c = consumer(esim, app)
    before = (c.main, c.staged)
    predicted = staged(app, state=state, check_mode=True, **extra)
    assert esim.write_count('org01') == 0 and (c.main, c.staged) == before
    assert predicted['action'] == expected_action and predicted['changed'] == (expected_action != 'none')
    assert no_secret_in(esim, predicted)
    real = staged(app, state=state, **extra)
    assert (real['changed'], real['action']) == (predicted['changed'], predicted['action'])
    assert real['diff']['before'] == predicted['diff']['before']
    if state != 'present':
        assert real['diff']['after'] == predicted['diff']['after']


def test_diff_shows_states_and_key_suffixes_only(esim, staged):
    c = consumer(esim)
    result = staged()
    diff = result['diff']
    assert diff['before'] == {'state': 'absent', 'staged_key': None, 'main_key': '...' + c.main['key'][-4:]}
    assert diff['after'] == {'state': 'Active', 'staged_key': '...' + c.staged['key'][-4:], 'main_key': '...' + c.main['key'][-4:]}
    assert no_secret_in(esim, diff) and c.staged['key'] not in repr(diff)
    rotated = staged(state='rotated')['diff']
    assert rotated['before']['state'] == 'Active' and rotated['after']['state'] == 'Rotated'
    assert rotated['after']['main_key'] == '...' + c.main['key'][-4:]


# -- ambiguous writes ----------------------------------------------------------------------------------

def test_post_crash_after_write_adopts_the_staged_credential_read_by_get(esim, staged, sleeps):
    esim.add_fault('org01', 'crash_after_write', method='POST', endpoint='staged')
    result = staged()
    c = consumer(esim)
    assert result['changed'] and result['action'] == 'staged'
    assert result['staged_credential']['secret'] == c.staged['secret']
    assert esim.counts('org01')['POST staged'] == 1 and esim.counts('org01')['GET staged'] == 2
    assert any('ambiguously' in w for w in result['warnings'])


def test_post_5xx_that_did_not_happen_is_retried_after_re_reading(esim, staged, sleeps):
    esim.add_fault('org01', 'server_error', method='POST', endpoint='staged')
    result = staged()
    assert result['changed'] and result['staged_credential']['secret'] == consumer(esim).staged['secret']
    assert esim.counts('org01')['POST staged'] == 2 and len(sleeps.calls) == 1


def test_post_unavailable_with_retry_after_waits_before_the_next_post(esim, staged, sleeps):
    esim.add_fault('org01', 'unavailable', method='POST', endpoint='staged', retry_after=4)
    assert staged()['changed']
    assert sleeps.calls == [4.0]


def test_patch_crash_after_write_is_recognised_as_done(esim, staged):
    c = consumer(esim)
    old_main = c.main['key']
    new_key = staged()['staged_credential']['key']
    esim.add_fault('org01', 'crash_after_write', method='PATCH', endpoint='staged_item')
    result = staged(state='rotated')
    assert result['changed'] and result['action'] == 'rotated' and result['main_key'] == new_key == c.main['key']
    assert result['staged_credential']['key'] == old_main
    assert esim.counts('org01')['PATCH staged_item'] == 1


def test_patch_5xx_that_did_not_happen_is_retried(esim, staged):
    new_key = staged()['staged_credential']['key']
    esim.add_fault('org01', 'server_error', method='PATCH', endpoint='staged_item')
    result = staged(state='rotated')
    assert result['changed'] and consumer(esim).main['key'] == new_key
    assert esim.counts('org01')['PATCH staged_item'] == 2


def test_delete_crash_after_write_is_done(esim, staged):
    esim.add_fault('org01', 'crash_after_write', method='DELETE', endpoint='staged_item')
    result = staged('Active_App', state='absent')
    assert result['changed'] and consumer(esim, 'Active_App').staged is None
    assert esim.counts('org01')['DELETE staged_item'] == 1


def test_persistent_write_failure_leaves_nothing_half_done(esim, staged):
    esim.add_fault('org01', 'server_error', method='POST', endpoint='staged', times=None)
    with pytest.raises(EcaStateError, match='nothing staged'):
        staged(max_retries=2)
    assert consumer(esim).staged is None


@pytest.mark.parametrize('post_body', ['wrapper', 'flat'])
def test_flat_and_wrapper_post_bodies_return_the_secret(esim, staged, post_body):
    esim.set_variants('org01', post_body=post_body)
    result = staged()
    assert result['staged_credential']['secret'] == consumer(esim).staged['secret']
    assert esim.counts('org01')['GET staged'] == 1


# -- resolution errors ----------------------------------------------------------------------------------

def test_unknown_app_lists_the_available_names(esim, staged):
    with pytest.raises(EcaInputError) as info:
        staged('No_Such_App')
    message = str(info.value)
    assert "'No_Such_App'" in message and 'Billing_Sync' in message and 'Multi_App' in message


def test_unknown_app_list_is_truncated_and_case_hint_given(esim, staged):
    with pytest.raises(EcaInputError) as info:
        staged('app_007', org='big')
    message = str(info.value)
    assert "did you mean 'App_007'" in message and '(and 231 more)' in message


def test_ambiguous_consumer_lists_the_consumers(esim, staged):
    with pytest.raises(EcaInputError) as info:
        staged('Multi_App')
    east, west = consumer(esim, 'Multi_App', 'East'), consumer(esim, 'Multi_App', 'West')
    message = str(info.value)
    assert 'has 2 consumers' in message and "'East' (%s)" % east.id in message and "'West' (%s)" % west.id in message
    assert esim.write_count('org01') == 0


def test_consumer_by_name_and_by_15_char_id(esim, staged):
    west = consumer(esim, 'Multi_App', 'West')
    assert staged('Multi_App', consumer_name='West')['consumer_id'] == west.id
    assert staged('Multi_App', consumer_id=west.id[:15])['consumer_id'] == west.id


def test_duplicate_consumer_names_ask_for_the_id(esim, staged):
    with pytest.raises(EcaInputError, match="2 consumers named 'Same': set consumer_id"):
        staged('Twin_App', consumer_name='Same')


def test_unknown_consumer_name_and_id(esim, staged):
    with pytest.raises(EcaInputError, match="no consumer named 'North'. Its consumers: 'East'"):
        staged('Multi_App', consumer_name='North')
    with pytest.raises(EcaInputError, match="no consumer with id '8885g0000000NoSuch'"):
        staged('Multi_App', consumer_id='8885g0000000NoSuch')


@pytest.mark.parametrize('field, value, message', [
    ('app_id', '0xIshort', "app_id '0xIshort' is not an External Client App id"),
    ('app_id', '8885g0000000NoSuch', "app_id '8885g0000000NoSuch' is not an External Client App id"),
    ('consumer_id', 'abc', "consumer_id 'abc' is not a Salesforce id"),
    ('app_name', 'bad name!', "app_name 'bad name!' is not a developer name"),
])
def test_malformed_ids_and_names_are_input_errors_before_any_call(esim, make_client, field, value, message):
    params = {'app_id': esim.orgs['org01'].app('Billing_Sync').id, 'state': 'present', field: value}
    if field == 'app_name':
        params.pop('app_id')
    client = make_client(token=True)
    with pytest.raises(EcaInputError, match=message):
        run_staged_credential(client, params)
    assert esim.write_count('org01') == 0


# -- info modules and token -------------------------------------------------------------------------------

def test_usage_info_filters_and_warns_on_missing_names(esim, make_client):
    result = run_usage_info(make_client(token=True), {'name': ['Multi_App', 'Ghost_App']})
    assert [a['developer_name'] for a in result['apps']] == ['Multi_App']
    assert 'Ghost_App' in result['warnings'][0] and not result['changed'] and result['api_calls'] == 1


def test_credential_info_without_and_with_secrets(esim, make_client):
    app = esim.orgs['org01'].app('Active_App')
    truth = app.consumer().staged
    result = run_credential_info(make_client(token=True), {'app_name': 'Active_App'})
    entry = result['consumers'][0]
    assert entry['staged_credential']['state'] == 'Active' and entry['staged_credential']['key'] == truth['key']
    assert entry['key'] == app.consumer().main['key'] and result['app_id'] == app.id
    assert no_secret_in(esim, result) and result['api_calls'] == 3
    full = run_credential_info(make_client(token=True), {'app_id': app.id, 'include_secrets': True})
    entry = full['consumers'][0]
    assert entry['staged_credential']['secret'] == truth['secret'] and entry['secret'] == app.consumer().main['secret']


def test_credential_info_multi_consumer_and_empty_slots(esim, make_client):
    result = run_credential_info(make_client(token=True), {'app_name': 'Multi_App'})
    assert [(c['name'], c['staged_credential']) for c in result['consumers']] == [('East', None), ('West', None)]


def test_token_returns_or_withholds_the_token(esim, make_client):
    result = run_token(make_client(), {})
    assert result['access_token'] and result['auth_flow'] == 'client_credentials' and result['api_calls'] == 1
    assert result['token_type'] == 'Bearer' and result['issued_at'] and not result['changed']
    verify = run_token(make_client(), {'verify_only': True})
    assert 'access_token' not in verify and no_secret_in(esim, verify)


def test_token_verify_only_with_access_token_makes_one_call(esim, make_client):
    esim.reset_log()
    result = run_token(make_client(token=True), {'verify_only': True})
    assert result['auth_flow'] == 'access_token' and esim.counts('org01') == {'GET usage': 1}


# -- staged_id: act on the credential the caller named, without reading the slot --------------------

@pytest.mark.parametrize('id_variant', ['keep', 'new'])
def test_rotated_by_staged_id_is_one_patch(esim, staged, id_variant):
    esim.set_variants('org01', staged_id_on_rotate=id_variant)
    c = consumer(esim)
    old_main = c.main
    new = staged(by_id=True, consumer_id=c.id)['staged_credential']
    esim.reset_log()
    result = staged(by_id=True, consumer_id=c.id, state='rotated', staged_id=new['id'], return_secret=True)
    assert result['changed'] and result['action'] == 'rotated'
    assert esim.counts('org01') == {'PATCH staged_item': 1}
    assert c.main['key'] == new['key']
    # What the PATCH answered: the previous main pair, now Rotated, with its secret because it was asked for.
    assert result['staged_credential']['state'] == 'Rotated'
    assert result['staged_credential']['key'] == old_main['key'] and result['staged_credential']['secret'] == old_main['secret']
    assert result['diff']['after']['state'] == 'Rotated' and no_secret_in(esim, result['diff'])

    # Rerun with the same id: the PATCH is refused (no longer Active), so the slot is read and nothing changes.
    esim.reset_log()
    again = staged(by_id=True, consumer_id=c.id, state='rotated', staged_id=new['id'])
    assert not again['changed'] and again['action'] == 'none' and c.main['key'] == new['key']
    assert esim.counts('org01')['PATCH staged_item'] == 1 and 'GET staged' in esim.counts('org01')


def test_absent_by_staged_id_is_one_delete_and_a_stale_id_reads_the_slot(esim, staged):
    c = consumer(esim, 'Active_App')
    current = c.staged
    esim.reset_log()
    result = staged('Active_App', by_id=True, consumer_id=c.id, state='absent', staged_id=current['id'])
    assert result['changed'] and result['action'] == 'deleted' and c.staged is None
    assert esim.counts('org01') == {'DELETE staged_item': 1}
    esim.reset_log()
    again = staged('Active_App', by_id=True, consumer_id=c.id, state='absent', staged_id=current['id'])
    assert not again['changed'] and esim.write_count('org01') == 1   # the refused DELETE, then only reads


def test_staged_id_in_check_mode_reads_and_writes_nothing(esim, staged):
    c = consumer(esim, 'Active_App')
    result = staged('Active_App', by_id=True, consumer_id=c.id, state='rotated', staged_id=c.staged['id'], check_mode=True)
    assert result['changed'] and esim.write_count('org01') == 0 and c.staged['state'] == 'Active'


def test_staged_id_with_present_is_an_input_error(esim, staged):
    with pytest.raises(EcaInputError, match="staged_id names the credential to promote or delete"):
        staged(state='present', staged_id='0sC000000000001AAA')
    assert esim.write_count('org01') == 0


def test_unknown_consumer_id_given_with_app_id_is_named(esim, staged):
    with pytest.raises(EcaNotFoundError, match="has no consumer with id '8885g0000000NoSuch'"):
        staged(by_id=True, consumer_id='8885g0000000NoSuch')
    # The 404 of its staged slot is checked before anything is written: no write was tried.
    assert esim.write_count('org01') == 0
    assert esim.counts('org01') == {'GET staged': 1, 'GET consumer': 1, 'GET credentials': 1}


def test_rotated_by_staged_id_whose_answer_is_lost_reports_the_promoted_main_key(esim, staged):
    """A lost PATCH answer falls back to reading the slot; the main key is read too, so the caller can check it."""
    c = consumer(esim)
    new = staged(by_id=True, consumer_id=c.id)['staged_credential']
    esim.add_fault('org01', 'crash_after_write', method='PATCH', endpoint='staged_item')
    result = staged(by_id=True, consumer_id=c.id, state='rotated', staged_id=new['id'])
    assert c.main['key'] == new['key']
    assert result['main_key'] == new['key'] and result['previous_state'] == 'Rotated'
    assert esim.counts('org01')['PATCH staged_item'] == 1
