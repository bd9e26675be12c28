"""hashi_vault store against a real OpenBao server (tests/stores/servers.py) on 127.0.0.1."""

import logging
import os
import threading
import time
import uuid

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from eca_simulator import tlsgen

from ansible_collections.sfdc.eca.plugins.plugin_utils import _stores
from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import (
    HASHI_VAULT_OPTIONS, StoreConfigError, StoreError, open_store)
from ansible_collections.sfdc.eca.tests.stores.servers import FaultProxy, SilentPort, closed_port

READ_WRITE = 'path "secret/data/%s/*" { capabilities = ["create", "update", "read"] }'


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps(monkeypatch):
    """Retries record their waits instead of sleeping."""
    recorder = Sleeps()
    monkeypatch.setattr(_stores, 'RETRY', dict(_stores.RETRY, sleep=recorder))
    return recorder


def vault(options, environ=None, cache=None):
    params = ArgumentSpecValidator(HASHI_VAULT_OPTIONS).validate(options).validated_parameters
    return open_store('hashi_vault', params, environ or {}, {} if cache is None else cache)


def pair(org='org01', consumer='Billing'):
    return {'instance_url': 'https://%s.my.salesforce.com' % org, 'org': org, 'app_name': 'Billing_Sync',
            'app_id': '0xA000000000001', 'consumer_name': consumer, 'consumer_id': '888000000000001',
            'key': '3MVG9' + uuid.uuid4().hex, 'secret': 'SEC' + uuid.uuid4().hex.upper()}


def test_token_auth_writes_the_data_dict_and_reads_the_key_back(openbao, unique, sleeps):
    store = vault({'url': openbao.url, 'token': openbao.root_token})
    assert store.path_template == 'salesforce/{org}/{app_name}/{consumer_name}'
    store.check()
    target = store.target('%s/org01/Billing_Sync/Billing' % unique)
    assert target.label == 'hashi_vault %s secret/data/%s/org01/Billing_Sync/Billing' % (openbao.url, unique)
    assert target.read_back() is None
    data = pair()
    target.write(data)
    assert target.read_back() == data['key']
    stored = openbao.kv_get('%s/org01/Billing_Sync/Billing' % unique)
    assert stored['data'] == data and stored['metadata']['version'] == 1
    assert sleeps == []


def test_kv_v2_keeps_the_previous_versions(openbao, unique):
    target = vault({'url': openbao.url, 'token': openbao.root_token}).target('%s/o/a/c' % unique)
    first, second = pair(), pair()
    target.write(first)
    target.write(second)
    assert target.read_back() == second['key']
    assert openbao.kv_metadata('%s/o/a/c' % unique)['current_version'] == 2
    assert openbao.kv_get('%s/o/a/c' % unique, version=1)['data']['key'] == first['key']


def test_env_fallbacks_address_and_token(openbao, unique):
    env = {'VAULT_ADDR': openbao.url, 'VAULT_TOKEN': openbao.root_token, 'VAULT_NAMESPACE': ''}
    store = vault({}, env)
    store.check()
    data = pair()
    store.target('%s/o/a/c' % unique).write(data)
    assert openbao.kv_get('%s/o/a/c' % unique)['data']['key'] == data['key']


def test_names_with_spaces_and_url_characters_land_at_that_path(openbao, unique):
    target = vault({'url': openbao.url, 'token': openbao.root_token}).target('%s/o/a/Consumer ?#%%&+one' % unique)
    data = pair()
    target.write(data)
    assert target.read_back() == data['key']
    keys = openbao.api('GET', 'secret/metadata/%s/o/a?list=true' % unique)['data']['keys']
    assert keys == ['Consumer ?#%&+one']


def test_approle_logs_in_once_for_many_threads_and_writes(openbao, unique):
    openbao.policy('rw-' + unique, READ_WRITE % unique)
    role_id, secret_id = openbao.approle('deliver-' + unique, ['rw-' + unique])
    cache, logins, errors = {}, [], []
    options = {'url': openbao.url, 'auth': 'approle', 'role_id': role_id, 'secret_id': secret_id}
    store = vault(options, cache=cache)
    login = store.conn.client.auth.approle.login

    def counted_login(*args, **kwargs):
        logins.append(1)
        return login(*args, **kwargs)

    store.conn.client.auth.approle.login = counted_login
    store.check()

    def deliver(i):
        try:
            s = vault(options, cache=cache)
            s.check()
            target = s.target('%s/org%02d/App/C' % (unique, i))
            data = pair('org%02d' % i)
            target.write(data)
            assert target.read_back() == data['key']
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def run_threads():
        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

    run_threads()
    assert errors == []
    assert len(logins) == 1
    assert len([k for k in cache if isinstance(k, tuple) and 'hashi_vault' in k]) == 1
    assert openbao.kv_get('%s/org07/App/C' % unique)['data']['org'] == 'org07'
    # The token is revoked under the threads' feet: they are refused together, one of them logs in again.
    openbao.api('POST', 'auth/token/revoke', {'token': store.conn.client.token})
    run_threads()
    assert errors == [] and len(logins) == 2


def test_approle_logs_in_again_when_its_token_is_revoked(openbao, unique):
    openbao.policy('rw-' + unique, READ_WRITE % unique)
    role_id, secret_id = openbao.approle('deliver-' + unique, ['rw-' + unique])
    store = vault({'url': openbao.url, 'auth': 'approle'}, {'VAULT_ROLE_ID': role_id, 'VAULT_SECRET_ID': secret_id})
    target = store.target('%s/o/a/c' % unique)
    target.write(pair())
    first_token = store.conn.client.token
    openbao.api('POST', 'auth/token/revoke', {'token': first_token})
    data = pair()
    target.write(data)
    assert store.conn.client.token != first_token
    assert openbao.kv_get('%s/o/a/c' % unique)['data']['key'] == data['key']


def test_approle_with_a_wrong_secret_id_fails_the_check(openbao, unique, sleeps):
    role_id, secret_id = openbao.approle('deliver-' + unique, ['default'])
    wrong = str(uuid.uuid4())
    store = vault({'url': openbao.url, 'auth': 'approle', 'role_id': role_id, 'secret_id': wrong})
    with pytest.raises(StoreConfigError) as err:
        store.check()
    message = str(err.value)
    assert err.value.reason == 'auth' and 'AppRole login refused' in message
    assert '%s/auth/approle/login' % openbao.url in message and "auth_mount 'approle'" in message
    assert wrong not in message and secret_id not in message
    # The verdict is kept for the run: the next org's check does not log in again.
    with pytest.raises(StoreConfigError):
        store.check()


def test_a_policy_that_forbids_writing_fails_the_write_and_writes_nothing(openbao, unique, sleeps):
    openbao.policy('ro-' + unique, 'path "secret/data/%s/*" { capabilities = ["read"] }' % unique)
    token = openbao.token(['ro-' + unique])
    store = vault({'url': openbao.url, 'token': token})
    store.check()  # the token may read under the mount: the plan cannot tell it may not write
    target = store.target('%s/o/a/c' % unique)
    data = pair()
    with pytest.raises(StoreError) as err:
        target.write(data)
    message = str(err.value)
    assert err.value.reason == 'permission' and not err.value.transient
    assert message.startswith('hashi_vault %s secret/data/%s/o/a/c: writing failed: permission denied'
                              % (openbao.url, unique))
    assert 'create, update and read on secret/data/%s/o/a/c' % unique in message
    assert token not in message and data['secret'] not in message
    assert openbao.kv_get('%s/o/a/c' % unique) is None
    assert sleeps == []  # a refusal is not retried


def test_a_token_without_access_to_the_mount_fails_the_plan(openbao, unique):
    openbao.policy('elsewhere-' + unique, 'path "other/*" { capabilities = ["read"] }')
    token = openbao.token(['elsewhere-' + unique])
    with pytest.raises(StoreConfigError) as err:
        vault({'url': openbao.url, 'token': token}).check()
    assert err.value.reason == 'permission' and 'may do nothing under secret/' in str(err.value)
    with pytest.raises(StoreConfigError) as err:
        vault({'url': openbao.url, 'token': 'hvs.not-a-token-' + unique}).check()
    assert err.value.reason == 'auth' and 'refused the token' in str(err.value)
    assert 'hvs.not-a-token' not in str(err.value)


def test_wrong_mount(openbao, unique, sleeps):
    store = vault({'url': openbao.url, 'token': openbao.root_token, 'mount': 'no-such-mount'})
    with pytest.raises(StoreConfigError) as err:
        store.check()
    assert 'no such mount' in str(err.value) and 'no-such-mount/' in str(err.value)
    with pytest.raises(StoreError) as err:
        store.target('%s/o/a/c' % unique).write(pair())
    assert err.value.reason == 'mount'
    assert 'no secrets engine is mounted at no-such-mount/ on %s' % openbao.url in str(err.value)
    with pytest.raises(StoreError) as err:
        store.target('%s/o/a/c' % unique).read_back()
    assert err.value.reason == 'mount'


@pytest.mark.parametrize('engine, options, found', [
    ('kv', {'version': '1'}, 'KV version 1 engine'),
    ('transit', {}, 'transit engine'),
])
def test_a_mount_that_is_not_kv_v2_fails_the_plan(openbao, engine, options, found):
    mount = openbao.mount('m-%s-%s' % (engine, options.get('version', '')), engine, options)
    with pytest.raises(StoreConfigError) as err:
        vault({'url': openbao.url, 'token': openbao.root_token, 'mount': mount}).check()
    assert err.value.reason == 'mount' and found in str(err.value) and 'KV version 2' in str(err.value)


def test_a_mount_that_requires_check_and_set(openbao, unique):
    mount = openbao.mount('cas-' + unique, 'kv', {'version': '2'})
    openbao.api('POST', '%s/config' % mount, {'cas_required': True})
    target = vault({'url': openbao.url, 'token': openbao.root_token, 'mount': mount}).target('o/a/c')
    for _round in range(2):
        data = pair()
        target.write(data)
        assert target.read_back() == data['key']
    assert openbao.kv_metadata('o/a/c', mount=mount)['current_version'] == 2


def test_read_back_of_a_deleted_or_foreign_secret_is_none(openbao, unique):
    target = vault({'url': openbao.url, 'token': openbao.root_token}).target('%s/o/a/c' % unique)
    openbao.kv_put('%s/o/a/c' % unique, {'consumer_key': 'written by someone else'})
    assert target.read_back() is None
    target.write(pair())
    openbao.api('DELETE', 'secret/data/%s/o/a/c' % unique)  # soft delete of the latest version
    assert target.read_back() is None


def test_server_down_is_unreachable_after_a_few_retries(sleeps):
    url = 'http://127.0.0.1:%d' % closed_port()
    store = vault({'url': url, 'token': 'hvs.down-token-000000'})
    with pytest.raises(StoreConfigError) as err:
        store.check()
    assert err.value.reason == 'unreachable' and err.value.transient
    assert 'server unreachable after 4 attempts (connection refused)' in str(err.value) and url in str(err.value)
    assert len(sleeps) == 3
    with pytest.raises(StoreError) as err:
        store.target('o/a/c').write(pair())
    assert err.value.reason == 'unreachable' and 'writing failed' in str(err.value)


def test_a_server_that_never_answers_times_out(sleeps):
    with SilentPort() as silent:
        target = vault({'url': silent.url, 'token': 'hvs.hung-0000000', 'timeout': 1}).target('o/a/c')
        started = time.monotonic()
        with pytest.raises(StoreError) as err:
            target.read_back()
    assert err.value.reason == 'timeout' and err.value.transient and len(sleeps) == 3
    assert 'no answer within 1 s after 4 attempts' in str(err.value)
    assert time.monotonic() - started < 10


def test_a_server_that_stops_and_one_that_is_sealed(store_servers, sleeps):
    bao = store_servers.openbao()
    target = vault({'url': bao.url, 'token': bao.root_token}).target('o/a/c')
    data = pair()
    target.write(data)
    bao.seal()
    with pytest.raises(StoreError) as err:
        target.read_back()
    assert err.value.reason == 'server' and '(HTTP 503)' in str(err.value) and 'Vault is sealed' in str(err.value)
    bao.unseal()
    assert target.read_back() == data['key']
    bao.stop()
    del sleeps[:]
    with pytest.raises(StoreError) as err:
        target.write(pair())
    assert err.value.reason == 'unreachable' and len(sleeps) == 3


def test_throttling_is_retried_with_backoff(openbao, unique, monkeypatch):
    mount = openbao.mount('thr-' + unique, 'kv', {'version': '2'})
    openbao.api('POST', 'sys/quotas/rate-limit/%s' % mount, {'path': mount + '/', 'rate': 1, 'interval': '1s'})
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(_stores, 'RETRY', dict(_stores.RETRY, sleep=sleep, random=lambda: 1.0, backoff=0.6))
    target = vault({'url': openbao.url, 'token': openbao.root_token, 'mount': mount}).target('o/a/c')
    data = pair()
    target.write(data)
    target.write(data)  # within the same second: 429 first, then through after a wait
    assert slept and slept[0] == 0.6
    time.sleep(1.1)  # the quota covers the test's own reads too
    assert openbao.kv_metadata('o/a/c', mount=mount)['current_version'] == 2


def test_throttling_that_lasts_ends_in_a_throttled_error(openbao, unique, sleeps):
    mount = openbao.mount('thr-' + unique, 'kv', {'version': '2'})
    openbao.api('POST', 'sys/quotas/rate-limit/%s' % mount, {'path': mount + '/', 'rate': 1, 'interval': '1m'})
    target = vault({'url': openbao.url, 'token': openbao.root_token, 'mount': mount}).target('o/a/c')
    target.write(pair())
    with pytest.raises(StoreError) as err:
        target.write(pair())
    assert err.value.reason == 'throttled' and err.value.transient and len(sleeps) == 3
    assert 'throttled by the server (HTTP 429) after 4 attempts' in str(err.value)


def test_bad_gateway_reset_and_lost_answer_through_a_proxy(openbao, unique, sleeps):
    with FaultProxy(openbao.url) as proxy:
        target = vault({'url': proxy.url, 'token': openbao.root_token}).target('%s/o/a/c' % unique)
        proxy.answer(2, 502, {'errors': ['upstream down']}).reset(1)
        data = pair()
        target.write(data)
        assert [outcome for _line, outcome in proxy.seen] == ['answer', 'answer', 'reset', 'forward'] and len(sleeps) == 3
        # An answer lost after the write went through: the write is retried (a new version, same data).
        proxy.lose_answer(1)
        data = pair()
        target.write(data)
        assert target.read_back() == data['key']
        assert openbao.kv_metadata('%s/o/a/c' % unique)['current_version'] == 3


def test_namespace_option_and_env(openbao, unique):
    ns = openbao.namespace('team-' + unique)
    openbao.mount('secret', 'kv', {'version': '2'}, namespace=ns)
    store = vault({'url': openbao.url, 'token': openbao.root_token, 'namespace': ns})
    store.check()
    target = store.target('o/a/c')
    assert target.label == 'hashi_vault %s [namespace %s] secret/data/o/a/c' % (openbao.url, ns)
    data = pair()
    target.write(data)
    assert openbao.kv_get('o/a/c', namespace=ns)['data']['key'] == data['key']
    assert openbao.kv_get('o/a/c') is None  # not in the root namespace
    from_env = vault({'url': openbao.url, 'token': openbao.root_token}, {'VAULT_NAMESPACE': ns}).target('o/a/c')
    assert from_env.read_back() == data['key'] and from_env.identity == target.identity
    assert vault({'url': openbao.url, 'token': openbao.root_token}).target('o/a/c').read_back() is None


def test_tls_with_the_ca_from_ca_path_or_vault_cacert(openbao, unique, sleeps):
    target = vault({'url': openbao.tls_url, 'token': openbao.root_token, 'ca_path': openbao.ca_path}).target(
        '%s/o/a/c' % unique)
    data = pair()
    target.write(data)
    assert target.read_back() == data['key']
    env = {'VAULT_ADDR': openbao.tls_url, 'VAULT_TOKEN': openbao.root_token, 'VAULT_CACERT': openbao.ca_path}
    assert vault({}, env).target('%s/o/a/c' % unique).read_back() == data['key']


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_without_the_ca_fails_the_plan_and_validate_certs_false_skips_it(
        openbao, unique, sleeps, tmp_path, monkeypatch):
    for var in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        monkeypatch.delenv(var, raising=False)
    store = vault({'url': openbao.tls_url, 'token': openbao.root_token})
    with pytest.raises(StoreConfigError) as err:
        store.check()
    assert err.value.reason == 'tls' and openbao.tls_url in str(err.value)
    assert 'certificate verify failed' in str(err.value) and 'ca_path' in str(err.value)
    assert sleeps == []  # a TLS failure is not retried
    other_ca_path = tlsgen.generate(str(tmp_path))[0]  # a CA that did not sign the server's certificate
    with pytest.raises(StoreConfigError) as err:
        vault({'url': openbao.tls_url, 'token': openbao.root_token, 'ca_path': other_ca_path}).check()
    assert err.value.reason == 'tls'
    insecure = vault({'url': openbao.tls_url, 'token': openbao.root_token, 'validate_certs': False})
    insecure.check()
    # Plain http to a TLS listener is a clear failure, not a hang.
    with pytest.raises(StoreConfigError) as err:
        vault({'url': openbao.tls_url.replace('https', 'http'), 'token': openbao.root_token}).check()
    assert err.value.reason == 'invalid' and 'HTTP request to an HTTPS server' in str(err.value)


def test_no_secret_in_messages_or_logs_at_debug(openbao, unique, caplog, sleeps):
    caplog.set_level(logging.DEBUG)
    openbao.policy('ro-' + unique, 'path "secret/data/%s/*" { capabilities = ["read"] }' % unique)
    role_id, secret_id = openbao.approle('ro-' + unique, ['ro-' + unique])
    token = openbao.token(['ro-' + unique])
    data = pair()
    texts = []
    for options in ({'url': openbao.url, 'token': token},
                    {'url': openbao.url, 'auth': 'approle', 'role_id': role_id, 'secret_id': secret_id},
                    {'url': openbao.url, 'auth': 'approle', 'role_id': role_id, 'secret_id': secret_id + 'x'},
                    {'url': 'http://127.0.0.1:%d' % closed_port(), 'token': token}):
        store = vault(options)
        target = store.target('%s/o/a/c' % unique)
        for call in (store.check, lambda: target.write(data), target.read_back):
            try:
                call()
            except StoreError as exc:
                texts += [str(exc), repr(exc), repr(exc.to_result()), repr(exc.__cause__), repr(exc.__context__)]
        texts += [target.label, repr(target), repr(target.identity)]
    assert any('permission denied' in t for t in texts) and any('AppRole login refused' in t for t in texts)
    texts.append(caplog.text)
    blob = '\n'.join(texts)
    assert caplog.records  # urllib3 logged at DEBUG: the scan looked at something
    for secret in [data['secret'], token, secret_id, openbao.root_token] + sorted(openbao.issued):
        assert secret not in blob, 'a secret leaked'


def test_write_rejects_data_without_key_or_secret(openbao, unique):
    target = vault({'url': openbao.url, 'token': openbao.root_token}).target('%s/o/a/c' % unique)
    with pytest.raises(TypeError):
        target.write({'key': 'k'})
    assert os.environ.get('VAULT_TOKEN') != openbao.root_token
