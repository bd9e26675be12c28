"""EcaClient against the simulator over real HTTPS: paging, error mapping, retries, renew, TLS, variants."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

import pytest
from urllib3._collections import HTTPHeaderDict

from ansible_collections.sfdc.eca.plugins.module_utils._client import (
    EcaClient,
    check_api_version,
    check_instance_url,
    staged_from_body,
)
from ansible_collections.sfdc.eca.plugins.module_utils._auth import AccessTokenAuth
from ansible_collections.sfdc.eca.plugins.module_utils._http import Response
from ansible_collections.sfdc.eca.plugins.module_utils._errors import (
    EcaAmbiguousWrite,
    EcaApiError,
    EcaAuthError,
    EcaFeatureDisabledError,
    EcaInputError,
    EcaLimitExceededError,
    EcaNotFoundError,
    EcaTransportError,
)


def ids(sim, app, org='org01'):
    a = sim.orgs[org].app(app)
    return a.id, a.consumer().id


# -- paging -------------------------------------------------------------------------------------

def test_list_apps_follows_next_page_url(esim, make_client):
    client = make_client('big', token=True)
    apps = client.list_apps()
    names = [a['developer_name'] for a in apps]
    assert len(apps) == 251 and names[1:] == ['App_%03d' % i for i in range(250)]
    assert apps[1]['identifier'] == esim.orgs['big'].app('App_000').id
    assert set(apps[0]) == {'identifier', 'developer_name', 'label'}
    assert esim.counts('big') == {'GET usage': 3}
    assert client.api_calls == 3


def test_list_consumers_normalizes_both_url_spellings(esim, make_client):
    app_id = esim.orgs['org01'].app('Multi_App').id
    client = make_client(token=True)
    first = client.list_consumers(app_id)
    assert [c['name'] for c in first] == ['East', 'West']
    assert first[0]['staged_credentials_url'].endswith('/staged')
    esim.set_variants('org01', staged_url_spelling='URL')
    again = client.list_consumers(app_id)
    assert again == first


# -- error mapping ------------------------------------------------------------------------------

def test_404_array_body_maps_to_not_found_with_fields(esim, make_client):
    client = make_client(token=True)
    with pytest.raises(EcaNotFoundError) as info:
        client.list_consumers('0xI5g000000NoSuchAA')
    err = info.value
    assert (err.status, err.error_code, err.method) == (404, 'NOT_FOUND', 'GET')
    assert err.path == '/services/data/v65.0/apps/oauth/credentials/0xI5g000000NoSuchAA'
    assert 'HTTP 404 NOT_FOUND: The requested resource does not exist' in str(err)
    result = err.to_result()
    assert result['error_code'] == 'NOT_FOUND' and result['status'] == 404 and result['error_type'] == 'EcaNotFoundError'


def _response(status, body, content_type='application/json'):
    return Response(status, HTTPHeaderDict({'Content-Type': content_type}), body.encode())


def test_single_object_error_body_is_mapped_like_an_array(esim, make_client):
    client = make_client(token=True)
    err = client._api_error('GET', '/x', _response(400, '{"message": "bad thing", "errorCode": "INVALID_FIELD"}'))
    assert not isinstance(err, (EcaLimitExceededError, EcaFeatureDisabledError, EcaNotFoundError))
    assert err.error_code == 'INVALID_FIELD' and err.api_message == 'bad thing'
    err = client._api_error('GET', '/x', _response(403, '[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]'))
    assert isinstance(err, EcaLimitExceededError)
    err = client._api_error('GET', '/x', _response(502, '<html>gateway</html>', 'text/html'))
    assert err.status == 502 and 'gateway' in str(err)


def test_limit_exceeded_fails_at_once_with_a_clear_message(esim, make_client, sleeps):
    esim.configure_org('org01', api_limit=5, api_usage=5)
    client = make_client(token=True)
    with pytest.raises(EcaLimitExceededError) as info:
        client.list_apps()
    assert "daily API request limit is spent" in str(info.value)
    assert esim.counts('org01') == {'GET usage': 1}
    assert sleeps.calls == []


def test_feature_disabled_names_the_setting(esim, make_client):
    esim.configure_org('org01', rest_secret_access=False)
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    client = make_client(token=True)
    with pytest.raises(EcaFeatureDisabledError) as info:
        client.get_staged(app_id, consumer_id)
    assert 'enableClientSecretInRestApiAccess' in str(info.value)
    assert info.value.error_code == 'FUNCTIONALITY_NOT_ENABLED'


def test_feature_disabled_fault_is_mapped_too(esim, make_client):
    esim.add_fault('org01', 'feature_disabled', endpoint='credentials')
    with pytest.raises(EcaFeatureDisabledError):
        make_client(token=True).list_consumers(ids(esim, 'Billing_Sync')[0])


# -- retries --------------------------------------------------------------------------------------

def test_503_with_retry_after_is_retried_honouring_the_header(esim, make_client, sleeps):
    esim.add_fault('org01', 'unavailable', endpoint='usage', times=2, retry_after=7)
    client = make_client(token=True)
    assert client.list_apps()
    assert sleeps.calls == [7.0, 7.0]
    assert esim.counts('org01') == {'GET usage': 3}


def test_retry_after_is_capped_by_retry_max_delay(esim, make_client, sleeps):
    esim.add_fault('org01', 'unavailable', endpoint='usage', times=1, retry_after=300)
    make_client(token=True, retry_max_delay=12.0).list_apps()
    assert sleeps.calls == [12.0]


def test_500_uses_jittered_exponential_backoff(esim, make_client, sleeps):
    esim.add_fault('org01', 'server_error', endpoint='usage', times=3)
    make_client(token=True, retry_backoff=0.5, random=lambda: 0.5).list_apps()
    assert sleeps.calls == [0.25, 0.5, 1.0]


def test_retries_are_bounded(esim, make_client, sleeps):
    esim.add_fault('org01', 'server_error', endpoint='usage', times=None)
    with pytest.raises(EcaApiError) as info:
        make_client(token=True, max_retries=2).list_apps()
    assert info.value.status == 500 and 'after 3 attempts' in str(info.value)
    assert len(sleeps.calls) == 2
    assert esim.counts('org01') == {'GET usage': 3}


@pytest.mark.parametrize('kind', ['reset', 'malformed_json'])
def test_reads_survive_resets_and_malformed_json(esim, make_client, sleeps, kind):
    esim.add_fault('org01', kind, endpoint='usage', times=1)
    assert len(make_client(token=True).list_apps()) == 7
    assert len(sleeps.calls) == 1


def test_read_timeout_is_retried(esim, make_client, sleeps):
    esim.add_fault('org01', 'latency', endpoint='usage', times=1, seconds=1.5)
    assert make_client(token=True, timeout=0.5).list_apps()
    assert len(sleeps.calls) == 1
    # Let the slow first request finish on the server, so its log entry does not land in the next test.
    deadline = time.time() + 10
    while esim.counts('org01').get('GET usage', 0) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert esim.counts('org01')['GET usage'] == 2


@pytest.mark.parametrize('status_setup', ['not_found', 'limit'])
def test_4xx_is_never_retried(esim, make_client, sleeps, status_setup):
    client = make_client(token=True)
    if status_setup == 'limit':
        esim.add_fault('org01', 'limit_exceeded', endpoint='usage')
        with pytest.raises(EcaLimitExceededError):
            client.list_apps()
    else:
        with pytest.raises(EcaNotFoundError):
            client.get_main('0xI5g000000NoSuchAA', '8885g000000NoSuchAA')
    assert sleeps.calls == []
    assert sum(esim.counts('org01').values()) == 1


def test_connection_refused_is_retried_then_fails_naming_the_host(esim, make_client, sleeps):
    client = make_client(instance_url='https://127.0.0.1:9', access_token='t', max_retries=2)
    with pytest.raises(EcaTransportError) as info:
        client.list_apps()
    assert '127.0.0.1:9' in str(info.value) and 'after 3 attempts' in str(info.value)
    assert len(sleeps.calls) == 2


def test_write_5xx_is_ambiguous_and_not_repeated(esim, make_client, sleeps):
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    esim.add_fault('org01', 'server_error', method='POST', endpoint='staged')
    with pytest.raises(EcaAmbiguousWrite) as info:
        make_client(token=True).stage(app_id, consumer_id)
    assert info.value.method == 'POST' and info.value.path.endswith('/staged')
    assert esim.write_count('org01') == 1 and sleeps.calls == []


def test_write_reset_after_sending_is_ambiguous(esim, make_client):
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    esim.add_fault('org01', 'crash_after_write', method='POST', endpoint='staged')
    with pytest.raises(EcaAmbiguousWrite):
        make_client(token=True).stage(app_id, consumer_id)
    # The write happened although the client never saw the answer.
    assert esim.orgs['org01'].app('Billing_Sync').consumer().staged['state'] == 'Active'


# -- tokens ---------------------------------------------------------------------------------------

def test_401_renews_once_and_replays(esim, make_client):
    esim.add_fault('org01', 'invalid_session', endpoint='usage', times=1)
    client = make_client()
    assert client.list_apps()
    assert esim.counts('org01') == {'POST token': 2, 'GET usage': 2}
    assert client.api_calls == 4


def test_401_twice_fails_after_one_renewal(esim, make_client):
    esim.add_fault('org01', 'invalid_session', endpoint='usage', times=2)
    with pytest.raises(EcaApiError) as info:
        make_client().list_apps()
    assert info.value.status == 401 and 'even after renewing' in str(info.value)
    assert esim.counts('org01') == {'POST token': 2, 'GET usage': 2}


def test_401_with_a_given_access_token_is_not_renewed(esim, make_client):
    client = make_client(access_token='00Dbogus!token')
    with pytest.raises(EcaApiError) as info:
        client.list_apps()
    assert info.value.status == 401 and 'access_token is invalid or expired' in str(info.value)
    assert '00Dbogus!token' not in str(info.value)
    assert esim.counts('org01') == {'GET usage': 1}


def test_one_token_per_client(esim, make_client):
    client = make_client()
    client.list_apps()
    client.list_apps()
    assert esim.counts('org01') == {'POST token': 1, 'GET usage': 2}


def test_refused_client_credentials_give_auth_error_without_the_secret(esim, make_client):
    client = make_client(client_secret='WRONG-secret-value')
    with pytest.raises(EcaAuthError) as info:
        client.list_apps()
    err = info.value
    assert (err.error, err.status, err.auth_flow) == ('invalid_client', 400, 'client_credentials')
    assert 'WRONG-secret-value' not in str(err) and 'invalid client credentials' in str(err)


def test_token_endpoint_5xx_is_retried(esim, make_client, sleeps):
    esim.add_fault('org01', 'unavailable', endpoint='token', times=1, retry_after=1)
    make_client().list_apps()
    assert sleeps.calls == [1.0]


# -- TLS ------------------------------------------------------------------------------------------

def test_tls_failure_without_ca_path_is_clear(esim, make_client, sleeps):
    client = make_client(token=True, ca_path=None)
    with pytest.raises(EcaTransportError) as info:
        client.list_apps()
    assert 'TLS verification of 127.0.0.1' in str(info.value) and 'ca_path' in str(info.value)
    assert sleeps.calls == []


def test_validate_certs_false_skips_verification(esim, make_client):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert make_client(token=True, ca_path=None, validate_certs=False).list_apps()


def test_missing_ca_path_file_is_an_input_error(esim, make_client):
    with pytest.raises(EcaInputError, match="ca_path '/nope.pem' does not exist"):
        make_client(token=True, ca_path='/nope.pem')


# -- input validation -----------------------------------------------------------------------------

@pytest.mark.parametrize('url, message', [
    ('http://example.com', 'uses http: use https'),
    ('example.com', 'not an absolute https URL'),
    ('https://', 'has no host'),
    ('https://example.com/services/data', "must not have a path"),
    ('https://example.com/?x=1', 'must not have a query'),
    ('https://user:pw@example.com', 'must not carry user information'),
    ('', 'instance_url is required'),
])
def test_instance_url_validation(url, message):
    with pytest.raises(EcaInputError, match=message):
        check_instance_url(url)


def test_instance_url_accepts_trailing_slash_and_http_when_allowed():
    assert check_instance_url('https://x.my.salesforce.com/') == 'https://x.my.salesforce.com'
    assert check_instance_url('http://127.0.0.1:8080', allow_http=True) == 'http://127.0.0.1:8080'


@pytest.mark.parametrize('value', ['65', 'v65', '65.0.1', 'latest', '6.5'])
def test_api_version_validation(value):
    with pytest.raises(EcaInputError, match="api_version '.*' is not of the form NN.N"):
        check_api_version(value)


def test_api_version_accepts_v_prefix():
    assert check_api_version('v66.0') == '66.0'


def test_timeout_must_be_positive():
    with pytest.raises(EcaInputError, match='timeout must be more than 0'):
        EcaClient('https://example.com', AccessTokenAuth('t'), timeout=0)


# -- API variants ---------------------------------------------------------------------------------

def test_empty_staged_variants_both_mean_none(esim, make_client):
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    client = make_client(token=True)
    assert client.get_staged(app_id, consumer_id) is None
    esim.set_variants('org01', empty_staged='not_found')
    assert client.get_staged(app_id, consumer_id) is None


@pytest.mark.parametrize('post_body', ['wrapper', 'flat'])
def test_stage_accepts_wrapper_and_flat_bodies(esim, make_client, post_body):
    esim.set_variants('org01', post_body=post_body)
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    staged = make_client(token=True).stage(app_id, consumer_id)
    truth = esim.orgs['org01'].app('Billing_Sync').consumer().staged
    assert staged['key'] == truth['key'] and staged['secret'] == truth['secret'] and staged['id'] == truth['id']
    assert staged['state'] == 'Active' and staged['expiration_date']


@pytest.mark.parametrize('id_variant', ['keep', 'new'])
def test_rotate_and_delete(esim, make_client, id_variant):
    esim.set_variants('org01', staged_id_on_rotate=id_variant)
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    consumer = esim.orgs['org01'].app('Billing_Sync').consumer()
    old_main = consumer.main['key']
    client = make_client(token=True)
    staged = client.stage(app_id, consumer_id)
    rotated = client.rotate(app_id, consumer_id, staged['id'])
    assert rotated['state'] == 'Rotated' and rotated['key'] == old_main
    assert consumer.main['key'] == staged['key']
    assert (rotated['id'] == staged['id']) == (id_variant == 'keep')
    assert client.delete_staged(app_id, consumer_id, rotated['id']) is True
    assert client.delete_staged(app_id, consumer_id, rotated['id']) is False
    assert consumer.staged is None


def test_get_main_parts(esim, make_client):
    app_id, consumer_id = ids(esim, 'Billing_Sync')
    client = make_client(token=True)
    main = esim.orgs['org01'].app('Billing_Sync').consumer().main
    assert client.get_main(app_id, consumer_id) == {'id': consumer_id, 'key': main['key']}
    assert client.get_main(app_id, consumer_id, part='keyandsecret')['secret'] == main['secret']


def test_staged_from_body_prefers_the_active_item():
    body = {'stagedCredentials': [{'id': '1', 'key': 'a', 'state': 'Rotated'}, {'id': '2', 'key': 'b', 'state': 'Active'}]}
    assert staged_from_body(body)['id'] == '2'
    assert staged_from_body({'stagedCredentials': []}) is None
    assert staged_from_body({'id': '3', 'consumerKey': 'k', 'consumerSecret': 's', 'state': 'Active'})['secret'] == 's'


def test_sforce_limit_info_is_recorded(esim, make_client):
    client = make_client(token=True)
    client.list_apps()
    assert client.api_usage and '/' in client.api_usage


# -- hardening: secrets in URLs and server text, odd answers ---------------------------------------

@pytest.mark.parametrize('url', ['http://admin:S3cretValue@example.com', 'https://admin:S3cretValue@example.com',
                                 'http://example.com/?access_token=S3cretValue', 'https://admin:S3cretValue@127.0.0.1:99999'])
def test_url_errors_never_echo_userinfo_or_query(url):
    with pytest.raises(EcaInputError) as info:
        check_instance_url(url)
    assert 'S3cretValue' not in str(info.value)


def test_timeout_zero_is_refused_not_defaulted(esim, make_client):
    with pytest.raises(EcaInputError, match='timeout must be more than 0'):
        make_client(token=True, timeout=0)


def test_server_text_echoing_the_token_is_scrubbed(esim, make_client):
    client = make_client(token=True)
    token = client.token
    err = client._api_error('GET', '/x', _response(400, '[{"message": "bad header Bearer %s", "errorCode": "MALFORMED_QUERY"}]' % token))
    assert token not in str(err) and '********' in str(err) and err.error_code == 'MALFORMED_QUERY'


@pytest.mark.parametrize('body, message', [
    (['not', 'an', 'object'], "expected an object with a 'apps' list"),
    ('text', "expected an object with a 'apps' list"),
    ({'apps': {'a': 1}}, "expected an object with a 'apps' list"),
    ({'apps': [{'developerName': 'No_Id'}]}, "app without an 'identifier'"),
])
def test_odd_usage_answers_fail_as_api_errors(esim, make_client, monkeypatch, body, message):
    client = make_client(token=True)
    monkeypatch.setattr(client, '_request', lambda method, path, **kw: body)
    with pytest.raises(EcaApiError, match=message):
        client.list_apps()


def test_pages_that_repeat_end_the_listing(esim, make_client, monkeypatch):
    """An endpoint that ignores page answers its first page again: paging ends there, without an error."""
    client = make_client(token=True)
    pages = iter(range(1, 100))
    monkeypatch.setattr(client, '_request', lambda method, path, **kw: {
        'apps': [{'identifier': '0xI5g0000000001AAA', 'developerName': 'Same'}], 'nextPageUrl': '/p?page=%d' % next(pages)})
    assert [a['developer_name'] for a in client.list_apps()] == ['Same']
    assert next(pages) == 3   # two pages read


def test_consumer_without_id_fails_as_api_error(esim, make_client, monkeypatch):
    client = make_client(token=True)
    monkeypatch.setattr(client, '_request', lambda method, path, **kw: {'consumers': [{'name': 'x'}]})
    with pytest.raises(EcaApiError, match="without an 'id'"):
        client.list_consumers('0xI5g0000000001AAA')
