"""The client and the module logic under each side of every behaviour the API documentation leaves open (issue 14).

Each test sets a simulator switch (docs/simulator.md) and checks the operation's result against the org's real state,
over HTTPS. The default side of each switch is covered here too, next to the other one.
"""

import pytest

from ansible_collections.sfdc.eca.plugins.module_utils._client import same_id, to18
from ansible_collections.sfdc.eca.plugins.module_utils._common import build_client
from ansible_collections.sfdc.eca.plugins.module_utils._errors import (
    EcaApiError,
    EcaFeatureDisabledError,
    EcaInputError,
    EcaLimitExceededError,
    EcaNotFoundError,
    EcaRateLimitedError,
    EcaStateError,
)
from ansible_collections.sfdc.eca.plugins.module_utils._operations import (
    run_credential_info,
    run_staged_credential,
    run_usage_info,
)

from eca_simulator import ids as sim_ids


def consumer(esim, app='Billing_Sync', name=None, org='org01'):
    return esim.orgs[org].app(app).consumer(name)


def by_ids(esim, app='Billing_Sync', name=None, org='org01', **params):
    a = esim.orgs[org].app(app)
    params.update(app_id=a.id, consumer_id=a.consumer(name).id)
    return params


@pytest.fixture
def run(esim, make_client):
    """run(params, org='org01', check_mode=False, **client_overrides) -> run_staged_credential result."""
    def call(params, org='org01', check_mode=False, diff=False, **overrides):
        params.setdefault('state', 'present')
        return run_staged_credential(make_client(org, token=True, **overrides), params, check_mode=check_mode, diff=diff)
    return call


# -- nothing staged: [] or 404; 404 means empty only for a consumer that exists -------------------------------------

@pytest.mark.parametrize('empty', ['empty_list', 'not_found'])
def test_an_empty_slot_either_way(esim, run, empty):
    esim.set_variants('org01', empty_staged=empty)
    assert run(by_ids(esim, state='absent'))['action'] == 'none'
    staged = run(by_ids(esim))
    assert staged['action'] == 'staged' and consumer(esim).staged['key'] == staged['staged_credential']['key']


@pytest.mark.parametrize('empty', ['empty_list', 'not_found'])
@pytest.mark.parametrize('state', ['absent', 'present', 'rotated'])
def test_a_wrong_consumer_id_is_not_an_empty_slot(esim, run, empty, state):
    esim.set_variants('org01', empty_staged=empty)
    params = by_ids(esim, state=state)
    params['consumer_id'] = '8885g0000000NoSuch'
    with pytest.raises(EcaNotFoundError) as info:
        run(params)
    message = str(info.value)
    assert "App %s has no consumer with id '8885g0000000NoSuch'" % params['app_id'] in message
    assert "Its consumers: 'Billing'" in message
    assert esim.write_count('org01') == 0


def test_a_wrong_app_id_is_named(esim, run):
    esim.set_variants('org01', empty_staged='not_found')
    params = by_ids(esim, state='absent')
    params['app_id'] = '0xI5g0000000NoSuch'
    with pytest.raises(EcaNotFoundError) as info:
        run(params)
    assert "No External Client App with id '0xI5g0000000NoSuch'" in str(info.value)
    assert 'sfdc.eca.eca_usage_info' in str(info.value)


def test_a_listed_consumer_needs_no_extra_read_for_its_404(esim, run):
    esim.set_variants('org01', empty_staged='not_found')
    result = run({'app_name': 'Billing_Sync', 'state': 'absent'})
    assert result['action'] == 'none'
    assert esim.counts('org01') == {'GET usage': 1, 'GET credentials': 1, 'GET staged': 1}


def test_an_existing_consumer_by_ids_is_confirmed_once(esim, run):
    esim.set_variants('org01', empty_staged='not_found')
    result = run(by_ids(esim, state='absent'))
    assert result['action'] == 'none'
    assert esim.counts('org01') == {'GET staged': 1, 'GET consumer': 1}


@pytest.mark.parametrize('version', ['64.0', '60.0', 'v59.0'])
def test_api_versions_before_65_are_refused_up_front(esim, make_client, version):
    with pytest.raises(EcaInputError) as info:
        make_client(token=True, api_version=version)
    assert "api_version '%s' is too old" % version.lstrip('v') in str(info.value)
    assert '65.0 or later' in str(info.value)
    assert esim.requests('org01') == []


def test_api_version_67_serves_the_whole_lifecycle(esim, run):
    first = run(by_ids(esim), api_version='67.0')
    assert first['action'] == 'staged'
    rotated = run(by_ids(esim, state='rotated'), api_version='67.0')
    assert rotated['action'] == 'rotated' and consumer(esim).main['key'] == first['staged_credential']['key']
    assert run(by_ids(esim, state='absent'), api_version='67.0')['action'] == 'deleted'
    assert {e['path'].split('/')[3] for e in esim.requests('org01') if e['endpoint'] != 'token'} == {'v67.0'}


# -- the PATCH answer: the old main as Rotated, the promoted pair, or 204 ------------------------------------------

@pytest.mark.parametrize('by_staged_id', [False, True])
@pytest.mark.parametrize('answer,rereads', [('rotated', 0), ('promoted', 1), ('no_content', 1)])
@pytest.mark.parametrize('id_on_rotate', ['keep', 'new'])
def test_rotate_result_is_right_for_every_answer(esim, run, answer, rereads, id_on_rotate, by_staged_id):
    esim.set_variants('org01', rotate_answer=answer, staged_id_on_rotate=id_on_rotate)
    c = consumer(esim)
    old_main = c.main['key']
    new = run(by_ids(esim))['staged_credential']
    esim.reset_log()
    params = by_ids(esim, state='rotated')
    if by_staged_id:
        params['staged_id'] = new['id']
    result = run(params, diff=True)
    truth = c.staged
    assert c.main['key'] == new['key'] and truth['state'] == 'Rotated' and truth['key'] == old_main
    assert result['changed'] and result['action'] == 'rotated'
    # by staged_id the slot is not read first: the new main key is known when the answer names it, else not told
    known = not by_staged_id or answer == 'promoted'
    assert result['main_key'] == (new['key'] if known else None)
    final = result['staged_credential']
    assert (final['id'], final['key'], final['state']) == (truth['id'], truth['key'], 'Rotated')
    assert final['expiration_date'] == truth['expiration_date'] and 'secret' not in final
    assert result['diff']['after'] == {'state': 'Rotated', 'staged_key': '...' + old_main[-4:],
                                       'main_key': '...' + new['key'][-4:] if known else None}
    reads = esim.counts('org01').get('GET staged', 0) - (0 if by_staged_id else 1)
    assert reads == rereads
    # revoking afterwards finds the Rotated pair whatever its id became
    assert run(by_ids(esim, state='absent'))['action'] == 'deleted'
    assert c.staged is None


# -- usage lists only apps with OAuth usage data ----------------------------------------------------------------------

UNUSED_SEED = {'orgs': [{'name': 'org01', 'variants': {'usage_lists': 'used'}, 'apps': [
    {'developer_name': 'Billing_Sync', 'consumers': [{'name': 'Billing'}]},
    {'developer_name': 'New_App', 'used': False, 'consumers': [{'name': 'New'}]}]}]}


def _client(sim, org='org01'):
    return build_client({'instance_url': sim.orgs[org].instance_url, 'ca_path': sim.ca_path,
                         'access_token': sim.issue_access_token(org)})


def test_an_unused_app_missing_from_usage_is_explained(sim_factory):
    sim = sim_factory(UNUSED_SEED)
    client = _client(sim)
    with pytest.raises(EcaInputError) as info:
        run_staged_credential(client, {'app_name': 'New_App', 'state': 'present'})
    message = str(info.value)
    assert "No External Client App with developer name 'New_App'" in message
    assert 'only apps with OAuth usage data' in message and 'app_id' in message
    assert sim.write_count('org01') == 0
    app = sim.org('org01').app('New_App')
    client = _client(sim)
    result = run_staged_credential(client, {'app_id': app.id, 'state': 'present'})
    assert result['action'] == 'staged' and result['consumer_name'] == 'New'
    listed = run_usage_info(client, {'name': ['New_App']})
    assert listed['apps'] == [] and 'only apps with OAuth usage data' in listed['warnings'][0]


def test_every_app_listed_is_found_by_name(esim, run):
    assert run({'app_name': 'Multi_App', 'consumer_name': 'West'})['action'] == 'staged'


# -- REST access to secrets off: 403, or 200 without the secret -------------------------------------------------------

@pytest.mark.parametrize('form', ['forbidden', 'no_secret'])
def test_present_never_succeeds_without_a_secret(esim, run, form):
    esim.configure_org('org01', rest_secret_access=False)
    esim.set_variants('org01', secret_access_off=form, disabled_scope='secrets')
    c = consumer(esim)
    before = c.main
    with pytest.raises(EcaFeatureDisabledError) as info:
        run(by_ids(esim))
    message = str(info.value)
    assert "Allow access to External Client App consumer secrets via REST API" in message
    assert 'enableClientSecretInRestApiAccess' in message
    # nothing half-done: no credential left in the slot, the main pair untouched
    assert c.staged is None and c.main == before


@pytest.mark.parametrize('post_body', ['wrapper', 'flat'])
def test_a_staged_pair_without_its_secret_is_taken_back(esim, run, post_body):
    esim.configure_org('org01', rest_secret_access=False)
    esim.set_variants('org01', secret_access_off='no_secret', post_body=post_body)
    with pytest.raises(EcaFeatureDisabledError):
        run({'app_name': 'Billing_Sync'})
    assert consumer(esim).staged is None
    assert esim.counts('org01')['DELETE staged_item'] == 1


@pytest.mark.parametrize('form', ['forbidden', 'no_secret'])
def test_secrets_asked_for_but_not_given_fail_naming_the_setting(esim, run, make_client, form):
    esim.configure_org('org01', rest_secret_access=False)
    esim.set_variants('org01', secret_access_off=form, disabled_scope='secrets')
    with pytest.raises(EcaFeatureDisabledError, match='enableClientSecretInRestApiAccess'):
        run_credential_info(make_client(token=True), {'app_name': 'Active_App', 'include_secrets': True})
    with pytest.raises(EcaFeatureDisabledError, match='enableClientSecretInRestApiAccess'):
        run({'app_name': 'Active_App', 'return_secret': True})
    # without secrets asked for, the no_secret form still reads keys and slots
    if form == 'no_secret':
        info = run_credential_info(make_client(token=True), {'app_name': 'Active_App'})
        assert info['consumers'][0]['staged_credential']['state'] == 'Active'


def test_secrets_read_when_the_setting_is_on(esim, make_client):
    info = run_credential_info(make_client(token=True), {'app_name': 'Active_App', 'include_secrets': True})
    c = consumer(esim, 'Active_App')
    assert info['consumers'][0]['secret'] == c.main['secret']
    assert info['consumers'][0]['staged_credential']['secret'] == c.staged['secret']


# -- paging --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('paging,calls', [('null_next', 3), ('empty_next', 4), ('ignore_page', 4)])
def test_usage_paging_stops_at_the_end(esim, make_client, paging, calls):
    esim.set_variants('big', paging=paging)
    apps = make_client('big', token=True).list_apps()
    assert len(apps) == 251 and len({a['identifier'] for a in apps}) == 251
    assert esim.counts('big') == {'GET usage': calls}


@pytest.mark.parametrize('paging', ['null_next', 'empty_next', 'ignore_page'])
def test_a_credentials_endpoint_that_ignores_page_is_read_once(esim, make_client, paging):
    esim.set_variants('org01', paging=paging)
    app = esim.orgs['org01'].app('Multi_App')
    consumers = make_client(token=True).list_consumers(app.id)
    assert [c['name'] for c in consumers] == ['East', 'West']
    assert esim.counts('org01')['GET credentials'] == (1 if paging == 'null_next' else 2)


# -- 15 or 18 characters ------------------------------------------------------------------------------------------

def test_ids_compare_the_salesforce_way():
    id18 = sim_ids.to18('8885g00000AbCdE')
    assert same_id(id18, '8885g00000AbCdE') and same_id('8885g00000AbCdE', id18)
    assert not same_id('8885g00000abcde', '8885g00000AbCdE')        # 15-character ids are case-sensitive
    assert same_id(id18.lower(), '8885g00000AbCdE')                  # the 18-character suffix restores the case
    assert same_id(id18.upper(), id18)
    assert not same_id(id18[:15] + 'AAA', id18) or sim_ids.checksum_suffix(id18[:15]) == 'AAA'
    assert to18('8885g00000AbCdE') == id18 and to18(id18) == id18
    assert not same_id(None, id18) and not same_id('', '')


@pytest.mark.parametrize('length', ['15', '18'])
def test_ids_of_either_length_in_answers(esim, run, length):
    esim.set_variants('org01', id_length=length)
    c = consumer(esim, 'Multi_App', 'West')
    params = {'app_name': 'Multi_App', 'consumer_id': c.id}           # the user gives 18, the API may answer 15
    first = run(dict(params))
    assert first['action'] == 'staged' and len(first['consumer_id']) == int(length)
    assert run(dict(params))['action'] == 'none'
    lower = dict(params, consumer_id=c.id.lower())                       # an 18-character id in the wrong case
    assert run(dict(lower, state='rotated'))['action'] == 'rotated'
    assert run(dict(params, state='absent'))['action'] == 'deleted'
    assert c.staged is None


# -- error bodies: array, one object, an HTML page ------------------------------------------------------------------

@pytest.mark.parametrize('shape', ['array', 'object', 'html'])
def test_error_bodies_of_any_shape_give_clean_messages(esim, make_client, sleeps, shape):
    esim.set_variants('org01', error_body=shape)
    client = make_client(token=True)
    with pytest.raises(EcaNotFoundError) as info:
        client.list_consumers('0xI5g000000NoSuchAA')
    message = str(info.value)
    assert 'HTTP 404' in message and '<' not in message
    if shape == 'html':
        assert 'an HTML page (404 Not Found), not the API' in message
    else:
        assert 'NOT_FOUND: The requested resource does not exist' in message
    esim.add_fault('org01', 'unavailable', endpoint='usage', times=2)
    assert client.list_apps()
    esim.add_fault('org01', 'unavailable', endpoint='usage', times=None)
    with pytest.raises(EcaApiError) as info:
        make_client(token=True, max_retries=1).list_apps()
    assert info.value.status == 503 and '<' not in str(info.value) and 'after 2 attempts' in str(info.value)


# -- state in any letter case ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('case', ['title', 'upper', 'lower'])
def test_states_in_any_letter_case(esim, run, make_client, case):
    esim.set_variants('org01', state_case=case)
    staged = run({'app_name': 'Billing_Sync'})
    assert staged['staged_credential']['state'] == 'Active'
    assert run({'app_name': 'Billing_Sync'})['action'] == 'none'
    rotated = run({'app_name': 'Billing_Sync', 'state': 'rotated'})
    assert rotated['staged_credential']['state'] == 'Rotated'
    assert run({'app_name': 'Billing_Sync', 'state': 'rotated'})['action'] == 'none'
    with pytest.raises(EcaStateError, match='Rotated credential'):
        run({'app_name': 'Billing_Sync'})
    assert run({'app_name': 'Expired_App'})['action'] == 'replaced_expired'
    info = run_credential_info(make_client(token=True), {'app_name': 'Rotated_App'})
    assert info['consumers'][0]['staged_credential']['state'] == 'Rotated'


# -- an Expired pair stays visible or disappears -------------------------------------------------------------------

@pytest.mark.parametrize('expired', ['stays', 'disappears'])
def test_an_expired_pair_either_way(esim, run, expired):
    esim.set_variants('org01', expired_staged=expired)
    with pytest.raises(EcaStateError) as info:
        run({'app_name': 'Expired_App', 'state': 'rotated'})
    if expired == 'stays':
        assert 'expired' in str(info.value) and 'cannot be promoted' in str(info.value)
    else:
        assert 'Nothing is staged' in str(info.value) and 'expired' in str(info.value)
    result = run({'app_name': 'Expired_App'})
    assert result['action'] == ('replaced_expired' if expired == 'stays' else 'staged')
    assert consumer(esim, 'Expired_App').staged['state'] == 'Active'


# -- consumers sharing one name -----------------------------------------------------------------------------------

@pytest.mark.parametrize('names', ['own', 'app'])
def test_consumer_name_selection_when_names_are_shared(esim, run, names):
    esim.set_variants('org01', consumer_names=names)
    west = consumer(esim, 'Multi_App', 'West')
    if names == 'own':
        assert run({'app_name': 'Multi_App', 'consumer_name': 'West'})['consumer_id'] == west.id
        return
    with pytest.raises(EcaInputError) as info:
        run({'app_name': 'Multi_App', 'consumer_name': 'Multi App'})
    message = str(info.value)
    assert "2 consumers named 'Multi App'" in message and 'set consumer_id' in message and west.id in message
    assert run({'app_name': 'Multi_App', 'consumer_id': west.id})['consumer_id'] == west.id
    assert esim.write_count('org01') == 1


# -- 429 is rate limiting, only 403 REQUEST_LIMIT_EXCEEDED is the daily limit --------------------------------------

def test_rate_limiting_is_retried(esim, run, sleeps):
    esim.set_variants('org01', rate_limit='on')
    c = consumer(esim)
    result = run({'app_name': 'Billing_Sync'})
    assert result['action'] == 'staged' and c.staged['key'] == result['staged_credential']['key']
    assert run({'app_name': 'Billing_Sync', 'state': 'rotated'})['action'] == 'rotated'
    assert 429 in [e['status'] for e in esim.requests('org01')] and sleeps.calls


def test_429_exhausted_is_reported_as_rate_limiting(esim, make_client, sleeps):
    esim.add_fault('org01', 'too_many_requests', endpoint='usage', times=None)
    with pytest.raises(EcaRateLimitedError) as info:
        make_client(token=True, max_retries=2).list_apps()
    err = info.value
    assert not isinstance(err, EcaLimitExceededError)
    assert 'rate limit' in str(err) and 'HTTP 429' in str(err) and 'after 3 attempts' in str(err)
    assert 'daily API request limit' not in str(err)
    assert err.to_result()['error_type'] == 'EcaRateLimitedError'
    assert len(sleeps.calls) == 2


def test_403_request_limit_exceeded_is_the_daily_limit(esim, make_client, sleeps):
    esim.add_fault('org01', 'limit_exceeded', endpoint='usage')
    with pytest.raises(EcaLimitExceededError, match='daily API request limit'):
        make_client(token=True).list_apps()
    assert sleeps.calls == []
