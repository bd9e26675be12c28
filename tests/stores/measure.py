"""Time per write + read_back and client memory of the secret stores, against local servers.

    python tests/stores/measure.py [--targets 200] [--threads 1,8]

Starts OpenBao (dev, plain HTTP on 127.0.0.1) and moto_server, then for each store writes and reads
back ``--targets`` distinct targets through plugins/plugin_utils/_stores.py, sequentially and from a
thread pool sharing one cache (as the fleet task does). Memory is measured in fresh interpreters:
RSS after importing the library and after opening one store, over a bare interpreter with ansible's
module_utils loaded. Prints a Markdown table.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MEMORY_PROBE = r'''
import json, os, sys
def rss():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS:'))
from ansible_collections.sfdc.eca.plugins.plugin_utils import _stores
base = rss()
kind, options, environ = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
_stores.load_library(kind)
imported = rss()
store = _stores.open_store(kind, options, environ, {})
store.check()
target = store.target('salesforce/mem/App/C')
target.write({'key': 'k', 'secret': 's' * 40, 'org': 'mem'})
target.read_back()
used = rss()
print(json.dumps({'base': base, 'import': imported - base, 'client': used - imported}))
'''


def options_for(kind, servers):
    from ansible_collections.sfdc.eca.plugins.plugin_utils import _stores
    spec = _stores.OPTIONS[kind]
    options = {name: opt.get('default') for name, opt in spec.items()}
    if kind == 'hashi_vault':
        options.update(url=servers['bao'].url, token=servers['bao'].root_token)
    else:
        moto = servers['moto']
        options.update(endpoint_url=moto.url, region=moto.region, access_key=moto.access_key,
                       secret_key=moto.secret_key)
    return options


def run(kind, servers, targets, threads):
    from ansible_collections.sfdc.eca.plugins.plugin_utils import _stores
    cache = {}
    options = options_for(kind, servers)
    run_id = os.urandom(3).hex()

    def one(i):
        store = _stores.open_store(kind, options, {}, cache)
        store.check()
        target = store.target('salesforce/%s/org%04d/App/C' % (run_id, i))
        data = {'instance_url': 'https://org%04d.my.salesforce.com' % i, 'org': 'org%04d' % i, 'app_name': 'App',
                'app_id': '0xA', 'consumer_name': 'C', 'consumer_id': '888', 'key': 'key-%d' % i,
                'secret': 'secret-%s-%d' % (run_id, i)}
        started = time.perf_counter()
        target.write(data)
        assert target.read_back() == data['key']
        return time.perf_counter() - started

    # Warm-up: client creation, connection, plan check.
    one(-1)
    server = servers['bao'] if kind == 'hashi_vault' else servers['moto']
    server_cpu0 = server.cpu_seconds()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if threads == 1:
        per = [one(i) for i in range(targets)]
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            per = list(pool.map(one, range(targets)))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    server_cpu = server.cpu_seconds() - server_cpu0
    per.sort()
    return {'wall': wall, 'cpu': cpu, 'server_cpu': server_cpu, 'median_ms': per[len(per) // 2] * 1000,
            'p95_ms': per[int(len(per) * .95)] * 1000}


def memory(kind, servers):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, '-c', MEMORY_PROBE, kind, json.dumps(options_for(kind, servers)), '{}'],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--targets', type=int, default=200)
    parser.add_argument('--threads', default='1,8')
    args = parser.parse_args()
    from ansible_collections.sfdc.eca.tests.stores.servers import Moto, OpenBao

    work = tempfile.mkdtemp(prefix='sfdc-eca-stores-')
    with OpenBao(os.path.join(work, 'bao'), tls=False) as bao, Moto(os.path.join(work, 'moto')) as moto:
        servers = {'bao': bao, 'moto': moto}
        print('| store | threads | targets | wall s | per target (wall/targets) ms | median write+read_back ms '
              '| p95 ms | controller CPU s | server CPU s |')
        print('|---|---|---|---|---|---|---|---|---|')
        for kind in ('hashi_vault', 'aws_secretsmanager'):
            for threads in [int(x) for x in args.threads.split(',')]:
                r = run(kind, servers, args.targets, threads)
                print('| %s | %d | %d | %.2f | %.1f | %.1f | %.1f | %.2f | %.2f |' % (
                    kind, threads, args.targets, r['wall'], r['wall'] / args.targets * 1000, r['median_ms'],
                    r['p95_ms'], r['cpu'], r['server_cpu']))
        print()
        print('| store | RSS of the import (MiB) | RSS of one open store + a write (MiB) | server RSS (MiB) |')
        print('|---|---|---|---|')
        for kind, server in (('hashi_vault', bao), ('aws_secretsmanager', moto)):
            m = memory(kind, servers)
            print('| %s | %.1f | %.1f | %.0f |' % (
                kind, m['import'] / 1024, m['client'] / 1024, (server.rss_kib() or 0) / 1024))


if __name__ == '__main__':
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    main()
