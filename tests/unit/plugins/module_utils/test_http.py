"""The client's HTTP transport (_http.Http) over real HTTPS to the simulator: the environment's proxy and CA
settings, and the answer object the client reads."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import select
import socket
import ssl
import threading

import pytest
from urllib3._collections import HTTPHeaderDict

from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaAmbiguousWrite, EcaTransportError
from ansible_collections.sfdc.eca.plugins.module_utils._http import Http, Response
from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_usage_info


class ConnectProxy:
    """A loopback HTTP proxy that tunnels CONNECT requests and records each one's target and headers (lower-case)."""

    def __init__(self, refuse=None):
        self.refuse = refuse  # e.g. b'407 Proxy Authentication Required': answer CONNECT with it
        self.connects = []
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.url = 'http://127.0.0.1:%d' % self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client = self.sock.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        lines = head.split(b'\r\n\r\n', 1)[0].decode('latin-1').split('\r\n')
        method, target = lines[0].split(' ')[:2]
        headers = dict(line.split(': ', 1) for line in lines[1:] if ': ' in line)
        headers = dict((k.lower(), v) for k, v in headers.items())
        self.connects.append({'method': method, 'target': target, 'headers': headers})
        if self.refuse:
            client.sendall(b'HTTP/1.1 ' + self.refuse + b'\r\nContent-Length: 0\r\n\r\n')
            client.close()
            return
        host, port = target.rsplit(':', 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
        pair = {client: upstream, upstream: client}
        try:
            while True:
                ready = select.select(list(pair), [], [], 30)[0]
                if not ready:
                    break
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def close(self):
        self.sock.close()


PROXY_VARIABLES = ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY',
                   'no_proxy')


@pytest.fixture(autouse=True)
def no_proxy_of_the_machine(monkeypatch):
    """Each test sets the proxy variables it means (lower case ones win over upper case in urllib)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy():
    server = ConnectProxy()
    yield server
    server.close()


def _apps(esim, make_client):
    client = make_client(token=True)
    return client, run_usage_info(client, {})


def test_https_proxy_of_the_environment_tunnels_every_call_and_tls_stays_end_to_end(
        esim, make_client, proxy, monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', proxy.url.replace('http://', 'http://ops:p%40ss@'))
    client, result = _apps(esim, make_client)
    host = esim.orgs['org01'].instance_url.split('://')[1]
    assert [c['target'] for c in proxy.connects] == [host], 'one tunnel, reused by the calls that follow'
    assert proxy.connects[0]['method'] == 'CONNECT'
    # the proxy's credentials, unquoted, go to the proxy only (the org never sees them: the tunnel is TLS)
    assert proxy.connects[0]['headers']['proxy-authorization'] == 'Basic ' + base64.b64encode(b'ops:p@ss').decode()
    assert {a['developer_name'] for a in result['apps']} >= {'Billing_Sync'}
    assert esim.counts('org01') == {'GET usage': 1}


def test_a_write_dropped_after_it_went_through_the_proxy_is_ambiguous_not_retried(
        esim, make_client, proxy, monkeypatch):
    """urllib3 reports a connection closed after the request as a ProxyError too: the write may have happened."""
    monkeypatch.setenv('HTTPS_PROXY', proxy.url)
    app = esim.orgs['org01'].app('Billing_Sync')
    esim.add_fault('org01', 'crash_after_write', method='POST', endpoint='staged', times=1)
    with pytest.raises(EcaAmbiguousWrite) as info:
        make_client(token=True).stage(app.id, app.consumer('Billing').id)
    assert 'through the proxy' in str(info.value)
    assert esim.counts('org01') == {'POST staged': 1}, 'sent once, not retried'
    assert app.consumer('Billing').staged['state'] == 'Active'


def test_a_tunnel_the_proxy_refuses_is_named_with_its_status(esim, make_client, monkeypatch):
    refusing = ConnectProxy(refuse=b'407 Proxy Authentication Required')
    try:
        monkeypatch.setenv('HTTPS_PROXY', refusing.url)
        with pytest.raises(EcaTransportError) as info:
            make_client(token=True, max_retries=1).list_apps()
    finally:
        refusing.close()
    assert 'Tunnel connection failed: 407 Proxy Authentication Required' in str(info.value)
    assert len(refusing.connects) == 2, 'refused before anything was sent: retried'
    assert esim.requests('org01') == []


def test_no_proxy_sends_the_calls_directly(esim, make_client, proxy, monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', proxy.url)
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    _apps(esim, make_client)
    assert proxy.connects == []


def test_a_proxy_that_cannot_be_reached_is_named_in_the_error(esim, make_client, monkeypatch):
    dead = socket.socket()
    dead.bind(('127.0.0.1', 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:%d' % port)
    with pytest.raises(EcaTransportError) as info:
        make_client(token=True, max_retries=1).list_apps()
    assert 'through the proxy of the environment (HTTPS_PROXY)' in str(info.value)
    assert esim.requests('org01') == []


def test_the_environment_is_read_once_per_host_and_ca_setting(esim, make_client, monkeypatch):
    client = make_client(token=True)
    http = client.http = Http()
    client.list_apps()
    # set after the first call: not looked at again (a proxy on port 9 would refuse every call)
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:9')
    client.list_apps()
    host = esim.orgs['org01'].instance_url.split('://')[1]
    assert http.environment[(host, esim.ca_path)] == {'proxy': None, 'verify': esim.ca_path}
    assert esim.counts('org01') == {'GET usage': 2}


def test_orgs_sharing_a_cache_share_one_tls_context_per_ca_bundle(esim, make_client):
    shared = {}
    for org in ('org01', 'big'):
        client = make_client(org, token=True)
        client.http = Http(shared)
        client.list_apps()
    assert [key for key in shared if key[0] == 'tls'] == [('tls', esim.ca_path)]


def test_response_json_accepts_a_utf8_bom_and_refuses_what_is_not_json():
    headers = HTTPHeaderDict({'Content-Type': 'application/json'})
    assert Response(200, headers, b'\xef\xbb\xbf{"a": 1}').json() == {'a': 1}
    assert Response(200, headers, '{"a": "\u00e9"}'.encode('utf-16')).json() == {'a': '\u00e9'}
    for body in (b'', b'<html>', b'\xff\xfe\x00'):
        with pytest.raises(ValueError):
            Response(200, headers, body).json()


def test_response_text_follows_the_declared_charset():
    body = '\u00e9chec'.encode('latin-1')
    assert Response(502, HTTPHeaderDict({'Content-Type': 'text/plain; charset=ISO-8859-1'}), body).text == '\u00e9chec'
    assert Response(502, HTTPHeaderDict({'Content-Type': 'text/plain; charset=nonsense'}), b'ok').text == 'ok'
    assert Response(502, HTTPHeaderDict(), b'\xff ok').text == '\ufffd ok'


def test_without_ca_path_the_bundle_of_requests_is_trusted(esim, make_client, monkeypatch):
    """validate_certs without ca_path: certifi's bundle, as requests uses it (the simulator's private CA is not in it),
    or the bundle REQUESTS_CA_BUNDLE names."""
    import requests.certs
    from ansible_collections.sfdc.eca.plugins.module_utils._http import _tls_context
    expected = ssl.create_default_context(cafile=requests.certs.where())
    assert len(_tls_context(True).get_ca_certs()) == len(expected.get_ca_certs()) > 50
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(EcaTransportError) as info:
        make_client(token=True, ca_path=None).list_apps()
    assert 'TLS verification' in str(info.value)
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', esim.ca_path)
    assert make_client(token=True, ca_path=None).list_apps()


def test_a_socks_proxy_without_pysocks_is_refused_with_what_to_install(esim, make_client, monkeypatch):
    try:
        import socks  # noqa: F401  pylint: disable=unused-import
        pytest.skip('PySocks is installed here')
    except ImportError:
        pass
    monkeypatch.setenv('HTTPS_PROXY', 'socks5://ops:hunter2@127.0.0.1:1080')
    with pytest.raises(EcaTransportError) as info:
        make_client(token=True).list_apps()
    message = str(info.value)
    assert 'PySocks' in message and 'socks5' in message and 'hunter2' not in message
    assert esim.requests('org01') == []


def test_a_ca_bundle_that_cannot_be_read_is_named(esim, make_client, monkeypatch, tmp_path):
    missing = str(tmp_path / 'no-such-bundle.pem')
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', missing)
    with pytest.raises(EcaTransportError) as info:
        make_client(token=True, ca_path=None).list_apps()
    assert 'cannot load the CA bundle %s' % missing in str(info.value)
    assert esim.requests('org01') == []
    # a directory of hashed certificates (c_rehash layout) is a bundle too
    import shutil
    import subprocess
    if not shutil.which('openssl'):
        pytest.skip('openssl names the hashed certificate file')
    certs = tmp_path / 'certs'
    certs.mkdir()
    shutil.copy(esim.ca_path, str(certs / 'ca.pem'))
    digest = subprocess.run(['openssl', 'x509', '-hash', '-noout', '-in', esim.ca_path], capture_output=True,
                            text=True, check=True).stdout.strip()
    (certs / ('%s.0' % digest)).symlink_to(certs / 'ca.pem')
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', str(certs))
    assert make_client(token=True, ca_path=None).list_apps()
