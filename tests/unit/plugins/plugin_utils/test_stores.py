"""plugins/plugin_utils/_stores.py: option specs, environment fallbacks, configuration errors, missing
libraries. The stores against real servers: test_stores_vault.py (OpenBao), test_stores_aws.py (moto)."""

import sys
import threading

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.sfdc.eca.plugins.plugin_utils import _stores
from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import (
    AWS_SECRETSMANAGER_OPTIONS, ENV_FALLBACKS, HASHI_VAULT_OPTIONS, StoreConfigError, StoreError, open_store)

TOKEN = 'hvs.unit-token-0123456789abcdef'


def validated(spec, options):
    result = ArgumentSpecValidator(spec).validate(options)
    assert not result.error_messages, result.error_messages
    assert not result._warnings, result._warnings  # no "did not set no_log" warning either
    return result.validated_parameters


def vault(options=None, environ=None, cache=None):
    return open_store('hashi_vault', validated(HASHI_VAULT_OPTIONS, options or {}), environ or {},
                      {} if cache is None else cache)


def aws(options=None, environ=None, cache=None):
    return open_store('aws_secretsmanager', validated(AWS_SECRETSMANAGER_OPTIONS, options or {}), environ or {},
                      {} if cache is None else cache)


def test_specs_are_ansible_argument_specs_with_the_documented_defaults():
    v = validated(HASHI_VAULT_OPTIONS, {})
    assert v['mount'] == 'secret' and v['auth'] == 'token' and v['validate_certs'] is True and v['timeout'] == 30
    assert v['path'] == 'salesforce/{org}/{app_name}/{consumer_name}' and v['url'] is None
    a = validated(AWS_SECRETSMANAGER_OPTIONS, {})
    assert a['secret_id'] == 'salesforce/{org}/{app_name}/{consumer_name}' and a['region'] is None
    result = ArgumentSpecValidator(HASHI_VAULT_OPTIONS).validate({'auth': 'ldap'})
    assert result.error_messages and "ldap" in result.error_messages[0]


def test_store_secrets_are_no_log_and_every_env_fallback_names_an_option():
    assert {n for n, o in HASHI_VAULT_OPTIONS.items() if o.get('no_log')} == {'token', 'secret_id'}
    assert {n for n, o in AWS_SECRETSMANAGER_OPTIONS.items() if o.get('no_log')} == {'secret_key', 'session_token'}
    for kind, fallbacks in ENV_FALLBACKS.items():
        assert set(fallbacks) <= set(_stores.OPTIONS[kind]), kind
    assert ENV_FALLBACKS['hashi_vault']['url'] == ('VAULT_ADDR',)
    assert ENV_FALLBACKS['aws_secretsmanager']['region'] == ('AWS_REGION', 'AWS_DEFAULT_REGION')
    # no_log values are masked by Ansible in a task's output.
    result = ArgumentSpecValidator(HASHI_VAULT_OPTIONS).validate({'token': TOKEN, 'url': 'https://v:8200'})
    assert TOKEN in result._no_log_values


def test_vault_needs_a_url_and_has_no_default_one():
    with pytest.raises(StoreConfigError) as err:
        vault({'token': TOKEN})
    assert 'VAULT_ADDR' in str(err.value) and err.value.reason == 'config'
    store = vault(environ={'VAULT_ADDR': 'http://127.0.0.1:8200/', 'VAULT_TOKEN': TOKEN})
    assert store.cfg['url'] == 'http://127.0.0.1:8200'  # named by the user: plain http is allowed


@pytest.mark.parametrize('url, fragment', [
    ('vault.example.com:8200', 'not a URL'),
    ('ftp://vault.example.com', 'not a URL'),
    ('https://user:pw@vault.example.com', 'no user'),
    ('https://vault.example.com/?x=1', 'no user, query'),
    ('https://vault.example.com:99999', 'not a URL'),
])
def test_bad_vault_urls_are_named(url, fragment):
    with pytest.raises(StoreConfigError) as err:
        vault({'url': url, 'token': TOKEN})
    assert fragment in str(err.value) and 'deliver.hashi_vault.url' in str(err.value)
    assert 'pw@' not in str(err.value) or 'user:pw' not in str(err.value)


def test_bad_url_from_the_environment_names_the_variable():
    with pytest.raises(StoreConfigError, match='VAULT_ADDR'):
        vault(environ={'VAULT_ADDR': 'vault:8200', 'VAULT_TOKEN': TOKEN})


def test_options_win_over_the_environment_and_empty_values_are_unset():
    env = {'VAULT_ADDR': 'https://env.example:8200', 'VAULT_TOKEN': 'hvs.env', 'VAULT_NAMESPACE': ''}
    store = vault({'url': 'https://opt.example:8200', 'token': TOKEN}, env)
    assert store.cfg['url'] == 'https://opt.example:8200' and store.cfg['token'] == TOKEN
    assert store.cfg['namespace'] is None  # AWX injects a blank field as ""
    store = vault({'url': '', 'token': ''}, env)
    assert store.cfg['url'] == 'https://env.example:8200' and store.cfg['token'] == 'hvs.env'


def test_token_auth_without_token_points_at_approle_when_its_variables_are_there():
    with pytest.raises(StoreConfigError) as err:
        vault({'url': 'https://v.example:8200'})
    assert 'VAULT_TOKEN' in str(err.value) and 'approle' not in str(err.value)
    with pytest.raises(StoreConfigError, match='set auth: approle'):
        vault({'url': 'https://v.example:8200'}, {'VAULT_ROLE_ID': 'r', 'VAULT_SECRET_ID': 's'})


def test_approle_needs_role_id_and_secret_id():
    with pytest.raises(StoreConfigError, match='role_id and secret_id'):
        vault({'url': 'https://v.example:8200', 'auth': 'approle'})
    with pytest.raises(StoreConfigError, match='needs secret_id'):
        vault({'url': 'https://v.example:8200', 'auth': 'approle', 'role_id': 'r'})
    store = vault({'url': 'https://v.example:8200', 'auth': 'approle'},
                  {'VAULT_ROLE_ID': 'r', 'VAULT_SECRET_ID': 'sid-0123456789'})
    assert store.cfg['role_id'] == 'r'


def test_bad_mount_timeout_and_ca_path_are_named(tmp_path):
    base = {'url': 'https://v.example:8200', 'token': TOKEN}
    with pytest.raises(StoreConfigError, match="mount '../x'"):
        vault(dict(base, mount='../x'))
    with pytest.raises(StoreConfigError, match='timeout 0'):
        vault(dict(base, timeout=0))
    missing = str(tmp_path / 'nope.pem')
    with pytest.raises(StoreConfigError) as err:
        vault(dict(base, ca_path=missing))
    assert missing in str(err.value) and 'deliver.hashi_vault.ca_path' in str(err.value)
    with pytest.raises(StoreConfigError, match='VAULT_CACERT'):
        vault(base, {'VAULT_CACERT': missing})
    # validate_certs: false does not look at the CA at all.
    assert vault(dict(base, ca_path=missing, validate_certs=False)).cfg['verify'] is False


def test_unknown_kind_and_unknown_option():
    with pytest.raises(StoreConfigError, match='unknown secret store'):
        open_store('azure_keyvault', {}, {}, {})
    with pytest.raises(StoreConfigError, match='unknown option'):
        open_store('hashi_vault', {'url': 'https://v:8200', 'token': 't', 'engine': 'x'}, {}, {})


@pytest.mark.parametrize('path', ['', '/a/b', 'a/b/', 'a//b', 'a/../b', 'a/./b', 'a/b\nc', 'a/\x00'])
def test_target_paths_that_are_not_plain_segments_are_refused(path):
    store = vault({'url': 'https://v.example:8200', 'token': TOKEN})
    with pytest.raises(StoreConfigError) as err:
        store.target(path)
    assert 'deliver.hashi_vault.path' in str(err.value)


def test_vault_label_and_identity():
    cache = {}
    assert vault({'url': 'https://Vault.Example:443/', 'token': TOKEN}).target('x').identity == \
        vault({'url': 'https://vault.example', 'token': TOKEN}).target('x').identity
    a = vault({'url': 'https://Vault.Example:8200/', 'token': TOKEN}, cache=cache).target('salesforce/o/a/c')
    b = vault({'url': 'https://vault.example:8200', 'auth': 'approle', 'role_id': 'r', 'secret_id': 's' * 10},
              cache=cache).target('salesforce/o/a/c')
    assert a.label == 'hashi_vault https://vault.example:8200 secret/data/salesforce/o/a/c'
    assert a.identity == b.identity and hash(a.identity) == hash(b.identity)  # same place, whoever writes
    assert a.identity != vault({'url': 'https://vault.example:8200', 'token': TOKEN}).target('salesforce/o/a/d').identity
    ns = vault({'url': 'https://vault.example:8200', 'token': TOKEN, 'namespace': 'team1'}).target('salesforce/o/a/c')
    assert ns.identity != a.identity and '[namespace team1]' in ns.label
    assert TOKEN not in repr(a) + a.label + repr(a.identity)


def test_one_client_per_server_and_auth_identity_shared_by_threads():
    cache, stores = {}, []

    def opener():
        stores.append(vault({'url': 'https://vault.example:8200', 'token': TOKEN}, cache=cache))

    threads = [threading.Thread(target=opener) for _i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({id(s.conn) for s in stores}) == 1
    other = vault({'url': 'https://vault.example:8200', 'token': TOKEN + 'x'}, cache=cache)
    assert other.conn is not stores[0].conn
    assert not any(TOKEN in repr(key) for key in cache)  # the cache key holds a digest, not the token


def test_aws_options_env_fallbacks_and_credentials_precedence(tmp_path):
    (tmp_path / 'credentials').write_text('[deliver]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = p\n')
    env = {'AWS_SHARED_CREDENTIALS_FILE': str(tmp_path / 'credentials'), 'AWS_CONFIG_FILE': str(tmp_path / 'config'),
           'AWS_DEFAULT_REGION': 'eu-west-1', 'AWS_ACCESS_KEY_ID': 'AKIAENV', 'AWS_SECRET_ACCESS_KEY': 'env-secret',
           'AWS_SESSION_TOKEN': 'env-session', 'AWS_ENDPOINT_URL': 'http://127.0.0.1:1/'}
    store = aws({}, env)
    assert store.region == 'eu-west-1' and store.cfg['endpoint_url'] == 'http://127.0.0.1:1'
    assert store._credentials(store.cfg, {})[0] == {'aws_access_key_id': 'AKIAENV', 'aws_secret_access_key': 'env-secret',
                                                    'aws_session_token': 'env-session'}
    assert aws({}, dict(env, AWS_REGION='us-west-2')).region == 'us-west-2'  # AWS_REGION first
    assert aws({'region': 'ap-south-1'}, env).region == 'ap-south-1'
    # A profile given as an option wins over keys from the environment; keys given as options win over all.
    store = aws({'profile': 'deliver'}, env)
    assert store._credentials(store.cfg, {'profile': 'deliver'})[0] == {'profile_name': 'deliver'}
    assert store.conn.session.get_credentials().access_key == 'AKIAPROFILE'  # the task's credentials file
    opts = {'profile': 'deliver', 'access_key': 'AKIAOPT', 'secret_key': 'opt-secret'}
    store = aws(opts, env)
    assert store._credentials(store.cfg, opts)[0]['aws_access_key_id'] == 'AKIAOPT'
    # AWX's AWS credential injects AWS_SECURITY_TOKEN too.
    store = aws({}, {'AWS_REGION': 'us-east-1', 'AWS_ACCESS_KEY_ID': 'A', 'AWS_SECRET_ACCESS_KEY': 'B',
                     'AWS_SECURITY_TOKEN': 'legacy-session'})
    assert store._credentials(store.cfg, {})[0]['aws_session_token'] == 'legacy-session'
    with pytest.raises(StoreConfigError, match='secret_key .or AWS_SECRET_ACCESS_KEY. is missing'):
        aws({'access_key': 'AKIAONLY', 'region': 'us-east-1'})


def test_aws_secret_names_aws_refuses_fail_before_any_write():
    store = aws({'region': 'us-east-1', 'access_key': 'A', 'secret_key': 'B'})
    with pytest.raises(StoreConfigError, match='letters, digits'):
        store.target('salesforce/org/app/Consumer One')
    assert store.target('salesforce/org/App_1/c.d@e+f=g-h').label == \
        'aws_secretsmanager us-east-1 salesforce/org/App_1/c.d@e+f=g-h'
    arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:salesforce/x-AbCdEf'
    assert store.target(arn).identity == ('aws_secretsmanager', '', 'us-east-1', arn)


def test_aws_without_region_fails_the_check(monkeypatch, tmp_path):
    for var in ('AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'none'))
    store = aws({'access_key': 'A', 'secret_key': 'B'})
    with pytest.raises(StoreConfigError, match='region is not set .nor AWS_REGION'):
        store.check()
    with pytest.raises(StoreConfigError, match='region'):
        store.target('salesforce/o/a/c')


def test_aws_without_any_credentials_fails_the_check(monkeypatch, tmp_path):
    for var in list(__import__('os').environ):
        if var.startswith('AWS_'):
            monkeypatch.delenv(var)
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'none'))
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')  # no instance-metadata request off loopback
    store = aws({'region': 'us-east-1'})
    with pytest.raises(StoreConfigError) as err:
        store.check()
    assert err.value.reason == 'auth' and 'AWS_ACCESS_KEY_ID' in str(err.value)
    with pytest.raises(StoreConfigError, match='profile .nope. not found'):
        aws({'region': 'us-east-1', 'profile': 'nope'})


@pytest.mark.parametrize('kind, module, options', [
    ('hashi_vault', 'hvac', {'url': 'https://v.example:8200', 'token': TOKEN}),
    ('aws_secretsmanager', 'boto3', {'region': 'us-east-1'}),
])
def test_a_missing_library_says_what_to_install(monkeypatch, kind, module, options):
    monkeypatch.setitem(sys.modules, module, None)  # "import hvac" now raises ImportError
    spec = _stores.OPTIONS[kind]
    with pytest.raises(StoreConfigError) as err:
        open_store(kind, validated(spec, options), {}, {})
    assert 'pip install %s' % module in str(err.value)
    assert err.value.reason == 'missing_library' and err.value.to_result()['store'] == kind


def test_errors_are_classified_and_secret_free():
    err = StoreError('hashi_vault https://v:8200 secret/data/x: writing failed: server unreachable', reason='unreachable',
                     store='hashi_vault', label='hashi_vault https://v:8200 secret/data/x')
    assert err.transient and not StoreError('x', reason='permission').transient
    assert err.to_result() == {'error_type': 'StoreError', 'reason': 'unreachable', 'msg': str(err),
                               'store': 'hashi_vault', 'target': 'hashi_vault https://v:8200 secret/data/x'}
    assert issubclass(StoreConfigError, StoreError)
    scrub = _stores._Scrub(['s3cr3t-value'])
    assert scrub('Vault said s3cr3t-value\n and more', extra=['more']) == 'Vault said ******** and ********'
