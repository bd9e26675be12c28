"""Each module's EXAMPLES run as written against the simulator (only host, ids and paths substituted)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.sfdc.eca.plugins.modules import (
    eca_credential_info,
    eca_staged_credential,
    eca_token,
    eca_usage_info,
)

EXAMPLE_HOST = 'https://mycompany.my.salesforce.com'
EXAMPLE_APP_ID = '0xI5g000000abcdEAA'
EXAMPLE_KEY_FILE = '/etc/salesforce/jwt.key'
EXAMPLE_USER = 'integration@mycompany.com'
# Not resolved: the collection may be a symlink under ansible_collections/sfdc/eca.
COLLECTIONS_ROOT = pathlib.Path(os.path.abspath(eca_token.__file__)).parents[5]


@pytest.mark.parametrize('module', [eca_token, eca_usage_info, eca_credential_info, eca_staged_credential],
                         ids=lambda m: m.__name__.rsplit('.', 1)[-1])
def test_examples_run(esim, module, tmp_path):
    org = esim.orgs['org01']
    admin = org.admin
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / 'jwt.key'
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    esim.register_certificate('org01', 'Sim_Admin', 'Sim_Admin', key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    text = (module.EXAMPLES.replace(EXAMPLE_HOST, org.instance_url)
            .replace(EXAMPLE_APP_ID, org.app('Billing_Sync').id)
            .replace(EXAMPLE_KEY_FILE, str(key_file))
            .replace(EXAMPLE_USER, admin['username']))
    examples = yaml.safe_load(text)
    assert examples, 'no EXAMPLES'
    play = {
        'name': 'EXAMPLES of %s' % module.__name__,
        'hosts': 'localhost',
        'connection': 'local',
        'gather_facts': False,
        'vars': {
            'admin_client_id': admin['client_id'],
            'admin_client_secret': admin['client_secret'],
            'jwt_consumer_key': admin['client_id'],
            'ansible_python_interpreter': sys.executable,
        },
        'tasks': [{
            'name': 'Token the examples refer to as sf_token',
            'sfdc.eca.eca_token': {'instance_url': org.instance_url, 'client_id': admin['client_id'],
                                   'client_secret': admin['client_secret']},
            'register': 'sf_token',
            'no_log': True,
        }] + examples,
    }
    playbook = tmp_path / 'examples.yml'
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    # Only what the examples cannot know, the simulator's CA, comes from the environment fallback.
    env = dict(os.environ, SALESFORCE_CA_PATH=esim.ca_path, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), str(playbook)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    recap = [line for line in proc.stdout.splitlines() if line.startswith('localhost')]
    assert recap and 'failed=0' in recap[-1], proc.stdout[-3000:]
    assert 'ok=%d' % (len(examples) + 1) in recap[-1], recap[-1]
