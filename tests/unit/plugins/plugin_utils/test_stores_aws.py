"""aws_secretsmanager store against a real moto server (tests/stores/servers.py) on 127.0.0.1."""

import json
import logging
import os
import uuid

import boto3
import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.sfdc.eca.plugins.plugin_utils import _stores
from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import (
    AWS_SECRETSMANAGER_OPTIONS, StoreError, open_store)
from ansible_collections.sfdc.eca.tests.stores.servers import FaultProxy, Moto, closed_port


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps(monkeypatch):
    recorder = Sleeps()
    monkeypatch.setattr(_stores, 'RETRY', dict(_stores.RETRY, sleep=recorder))
    return recorder


@pytest.fixture(autouse=True)
def hermetic_aws(monkeypatch, tmp_path):
    """boto3 sees no AWS setting of the machine, and never asks the instance-metadata address."""
    for var in list(os.environ):
        if var.startswith('AWS_'):
            monkeypatch.delenv(var)
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'aws-config'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'aws-credentials'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')


@pytest.fixture(scope='module')
def iam_moto(tmp_path_factory):
    """A moto server that checks IAM: users 'deliver' (create, put, get) and 'reader' (get, describe)."""
    server = Moto(tmp_path_factory.mktemp('iam-moto')).start()
    server.users = {
        'deliver': server.iam_user('deliver', ['secretsmanager:CreateSecret', 'secretsmanager:PutSecretValue',
                                               'secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret']),
        'reader': server.iam_user('reader', ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret']),
    }
    server.enforce_iam()
    yield server
    server.stop()


def sm(options, environ=None, cache=None):
    params = ArgumentSpecValidator(AWS_SECRETSMANAGER_OPTIONS).validate(options).validated_parameters
    return open_store('aws_secretsmanager', params, environ or {}, {} if cache is None else cache)


def moto_options(moto, **extra):
    options = {'endpoint_url': moto.url, 'region': moto.region, 'access_key': moto.access_key,
               'secret_key': moto.secret_key}
    options.update(extra)
    return options


def pair(org='org01'):
    return {'instance_url': 'https://%s.my.salesforce.com' % org, 'org': org, 'app_name': 'Billing_Sync',
            'app_id': '0xA000000000001', 'consumer_name': 'Billing', 'consumer_id': '888000000000001',
            'key': '3MVG9' + uuid.uuid4().hex, 'secret': 'SEC' + uuid.uuid4().hex.upper()}


def test_creates_the_secret_when_absent_then_puts_new_versions(moto, sleeps):
    store = sm(moto_options(moto))
    store.check()
    assert store.path_template == 'salesforce/{org}/{app_name}/{consumer_name}'
    target = store.target('salesforce/org01/Billing_Sync/Billing')
    assert target.label == 'aws_secretsmanager %s us-east-1 salesforce/org01/Billing_Sync/Billing' % moto.url
    assert target.read_back() is None
    first = pair()
    target.write(first)
    created = moto.secret('salesforce/org01/Billing_Sync/Billing')
    assert json.loads(created['SecretString']) == first
    assert 'org01 Billing_Sync Billing' in created['Description'] and 'KmsKeyId' not in created
    assert target.read_back() == first['key']
    second = pair()
    target.write(second)
    now = moto.secret('salesforce/org01/Billing_Sync/Billing')
    assert json.loads(now['SecretString']) == second
    stages = now['VersionIdsToStages']
    assert stages[created['VersionId']] == ['AWSPREVIOUS'] and stages[now['VersionId']] == ['AWSCURRENT']
    assert target.read_back() == second['key'] and sleeps == []


def test_kms_key_id_on_create_and_on_a_new_version(moto):
    target = sm(moto_options(moto, kms_key_id='alias/sfdc-eca')).target('salesforce/o/a/c')
    target.write(pair())
    assert moto.secret('salesforce/o/a/c')['KmsKeyId'] == 'alias/sfdc-eca'
    data = pair()
    sm(moto_options(moto, kms_key_id='alias/rotated-key')).target('salesforce/o/a/c').write(data)
    meta = moto.secret('salesforce/o/a/c')
    assert meta['KmsKeyId'] == 'alias/rotated-key' and json.loads(meta['SecretString'])['key'] == data['key']


def test_region_and_endpoint_from_the_environment(moto):
    env = {'AWS_DEFAULT_REGION': 'eu-west-1', 'AWS_ENDPOINT_URL': moto.url,
           'AWS_ACCESS_KEY_ID': moto.access_key, 'AWS_SECRET_ACCESS_KEY': moto.secret_key}
    store = sm({}, env)
    store.check()
    target = store.target('salesforce/o/a/c')
    assert target.label == 'aws_secretsmanager %s eu-west-1 salesforce/o/a/c' % moto.url
    data = pair()
    target.write(data)
    client = boto3.session.Session(aws_access_key_id='a', aws_secret_access_key='b', region_name='eu-west-1').client(
        'secretsmanager', endpoint_url=moto.url)
    assert json.loads(client.get_secret_value(SecretId='salesforce/o/a/c')['SecretString'])['key'] == data['key']
    assert moto.secret('salesforce/o/a/c') is None  # not in us-east-1
    # AWS_REGION wins over AWS_DEFAULT_REGION, the option over both; the service-specific endpoint first.
    assert sm({}, dict(env, AWS_REGION='us-east-1')).target('salesforce/o/a/c').read_back() is None
    assert sm({'region': 'eu-west-1'}, dict(env, AWS_REGION='us-east-1')).target('salesforce/o/a/c').read_back() \
        == data['key']
    env2 = dict(env, AWS_ENDPOINT_URL='http://127.0.0.1:%d' % closed_port(), AWS_ENDPOINT_URL_SECRETS_MANAGER=moto.url)
    assert sm({}, env2).target('salesforce/o/a/c').read_back() == data['key']


def test_credentials_from_the_task_environment_and_from_options(iam_moto, unique):
    writer = iam_moto.users['deliver']
    env = {'AWS_REGION': 'us-east-1', 'AWS_ENDPOINT_URL': iam_moto.url,
           'AWS_ACCESS_KEY_ID': writer[0], 'AWS_SECRET_ACCESS_KEY': writer[1]}
    data = pair()
    target = sm({}, env).target('salesforce/%s/a/c' % unique)
    target.write(data)
    assert target.read_back() == data['key']
    # Keys given as options win over the environment's (here: a wrong secret key).
    wrong = sm({'access_key': writer[0], 'secret_key': 'not-the-secret-key-' + uuid.uuid4().hex}, env)
    with pytest.raises(StoreError) as err:
        wrong.target('salesforce/%s/a/c' % unique).read_back()
    assert err.value.reason == 'permission' and 'SignatureDoesNotMatch' in str(err.value)
    # A profile in the task's credentials file.
    creds = iam_moto.workdir + '/credentials'
    with open(creds, 'w') as f:
        f.write('[deliver]\naws_access_key_id = %s\naws_secret_access_key = %s\n' % writer)
    by_profile = sm({'profile': 'deliver', 'region': 'us-east-1', 'endpoint_url': iam_moto.url},
                    {'AWS_SHARED_CREDENTIALS_FILE': creds})
    assert by_profile.target('salesforce/%s/a/c' % unique).read_back() == data['key']


def test_credentials_without_write_permission_fail_and_write_nothing(iam_moto, unique, sleeps):
    reader = iam_moto.users['reader']
    store = sm({'endpoint_url': iam_moto.url, 'region': 'us-east-1', 'access_key': reader[0],
                'secret_key': reader[1]})
    store.check()
    target = store.target('salesforce/%s/a/c' % unique)
    assert target.read_back() is None  # reading is allowed
    data = pair()
    with pytest.raises(StoreError) as err:
        target.write(data)
    message = str(err.value)
    assert err.value.reason == 'permission' and not err.value.transient and sleeps == []
    assert message.startswith('aws_secretsmanager %s us-east-1 salesforce/%s/a/c: writing failed: permission denied'
                              % (iam_moto.url, unique))
    assert 'not authorized to perform: secretsmanager:PutSecretValue' in message
    assert 'secretsmanager:CreateSecret, PutSecretValue' in message  # what to grant
    assert reader[1] not in message and data['secret'] not in message
    assert iam_moto.secret('salesforce/%s/a/c' % unique, *iam_moto.users['deliver']) is None


def test_endpoint_down_is_unreachable_after_a_few_retries(sleeps):
    url = 'http://127.0.0.1:%d' % closed_port()
    target = sm({'endpoint_url': url, 'region': 'us-east-1', 'access_key': 'A', 'secret_key': 'B'}).target('s/o/a/c')
    with pytest.raises(StoreError) as err:
        target.write(pair())
    assert err.value.reason == 'unreachable' and err.value.transient and len(sleeps) == 3
    assert 'endpoint unreachable after 4 attempts' in str(err.value) and url in str(err.value)


def test_throttling_and_server_errors_are_retried_then_classified(moto, sleeps):
    throttled = {'__type': 'ThrottlingException', 'message': 'Rate exceeded'}
    with FaultProxy(moto.url) as proxy:
        target = sm(moto_options(moto, endpoint_url=proxy.url)).target('salesforce/o/a/c')
        data = pair()
        proxy.answer(2, 400, throttled, {'Content-Type': 'application/x-amz-json-1.1'})
        proxy.answer(1, 503, {'__type': 'ServiceUnavailable', 'message': 'try later'})
        target.write(data)
        assert len(sleeps) == 3 and target.read_back() == data['key']
        proxy.answer(4, 400, throttled, {'Content-Type': 'application/x-amz-json-1.1'})
        with pytest.raises(StoreError) as err:
            target.write(pair())
        assert err.value.reason == 'throttled' and 'ThrottlingException after 4 attempts: Rate exceeded' in str(err.value)
        proxy.answer(4, 500, {'__type': 'InternalServiceError', 'message': 'boom'})
        with pytest.raises(StoreError) as err:
            target.read_back()
        assert err.value.reason == 'server' and 'InternalServiceError' in str(err.value)


def test_a_lost_answer_is_retried_without_a_second_version(moto, sleeps):
    with FaultProxy(moto.url) as proxy:
        target = sm(moto_options(moto, endpoint_url=proxy.url)).target('salesforce/o/a/c')
        target.write(pair())
        before = moto.secret('salesforce/o/a/c')
        proxy.lose_answer(1, match='POST')
        data = pair()
        target.write(data)
        assert [outcome for _line, outcome in proxy.seen][-2:] == ['lose_answer', 'forward']
        after = moto.secret('salesforce/o/a/c')
    assert json.loads(after['SecretString'])['key'] == data['key']
    # Same idempotency token on the retry: one new version, not two.
    assert len(after['VersionIdsToStages']) == len(before['VersionIdsToStages']) + 1


def test_a_secret_scheduled_for_deletion_is_a_clear_refusal(moto, sleeps):
    target = sm(moto_options(moto, kms_key_id='alias/k')).target('salesforce/o/a/c')
    target.write(pair())
    moto.client().delete_secret(SecretId='salesforce/o/a/c', RecoveryWindowInDays=7)
    # (moto accepts PutSecretValue on such a secret, AWS refuses it; UpdateSecret is refused by both.)
    with pytest.raises(StoreError) as err:
        target.write(pair())
    assert err.value.reason == 'invalid' and 'marked for deletion' in str(err.value) and sleeps == []
    with pytest.raises(StoreError) as err:
        target.read_back()
    assert err.value.reason == 'invalid' and 'InvalidRequestException' in str(err.value)


def test_a_secret_given_by_arn_is_not_created(moto, sleeps):
    arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:salesforce/nope-AbCdEf'
    with pytest.raises(StoreError) as err:
        sm(moto_options(moto)).target(arn).write(pair())
    assert err.value.reason == 'not_found' and 'is not created' in str(err.value)


def test_one_client_per_endpoint_and_credentials(moto):
    cache = {}
    a = sm(moto_options(moto), cache=cache)
    b = sm(moto_options(moto), cache=cache)
    c = sm(moto_options(moto, secret_key='other-secret-key'), cache=cache)
    assert a.conn is b.conn and a.conn is not c.conn
    assert not any('other-secret-key' in repr(k) or moto.secret_key in repr(k) for k in cache)
    assert a.target('salesforce/o/a/c').identity == c.target('salesforce/o/a/c').identity


def test_no_secret_in_messages_or_logs_at_debug(moto, iam_moto, caplog, sleeps):
    reader = iam_moto.users['reader']
    logging.getLogger('botocore').setLevel(logging.NOTSET)  # as in a fresh process
    caplog.set_level(logging.DEBUG)
    data = pair()
    texts, secrets = [], [data['secret'], moto.secret_key, reader[1], iam_moto.users['deliver'][1]]
    for options in (moto_options(moto),
                    {'endpoint_url': iam_moto.url, 'region': 'us-east-1', 'access_key': reader[0],
                     'secret_key': reader[1], 'session_token': 'session-token-' + uuid.uuid4().hex},
                    moto_options(moto, endpoint_url='http://127.0.0.1:%d' % closed_port())):
        store = sm(options)
        target = store.target('salesforce/o/a/c')
        for call in (store.check, lambda: target.write(data), target.read_back):
            try:
                call()
            except StoreError as exc:
                texts += [str(exc), repr(exc), repr(exc.to_result()), repr(exc.__cause__), repr(exc.__context__)]
        texts += [target.label, repr(target.identity)]
        secrets += [options['secret_key'], options.get('session_token')]
    assert any('permission denied' in t for t in texts) and any('unreachable' in t for t in texts)
    blob = '\n'.join(texts) + caplog.text
    assert caplog.records
    for secret in filter(None, secrets):
        assert secret not in blob, 'a secret leaked'


def test_tls_endpoint_with_ca_path_or_aws_ca_bundle(openbao, sleeps):
    """No AWS emulator here speaks TLS: OpenBao's TLS listener (CA made at test time) stands in for the
    handshake. Without its CA the handshake fails (tls, not retried); with it the handshake passes and
    the answer, not being AWS's, is an ordinary refusal."""
    base = {'endpoint_url': openbao.tls_url, 'region': 'us-east-1', 'access_key': 'A', 'secret_key': 'B'}
    with pytest.raises(StoreError) as err:
        sm(base).target('salesforce/o/a/c').read_back()
    assert err.value.reason == 'tls' and 'AWS_CA_BUNDLE' in str(err.value) and sleeps == []
    for options, environ in ((dict(base, ca_path=openbao.ca_path), {}), (base, {'AWS_CA_BUNDLE': openbao.ca_path})):
        with pytest.raises(StoreError) as err:
            sm(options, environ).target('salesforce/o/a/c').write(pair())
        assert err.value.reason != 'tls', str(err.value)
