"""``patch_module_args`` on every ansible-core the collection supports.

ansible-core 2.19 added ``ansible.module_utils.testing.patch_module_args``; before it, a test hands
``AnsibleModule`` its arguments through ``basic._ANSIBLE_ARGS``, the JSON the module would read on
stdin. From 2.21 a module returns ``invocation`` only when the controller asks for it
(INJECT_INVOCATION); the tests read it, so they ask on every release (``INVOCATION``).
Import as ``from core_testing import patch_module_args`` (this folder holds the unit tests'
conftest.py, so pytest puts it on sys.path).
"""

import contextlib
import json
from unittest import mock

from ansible import constants as C
from ansible.module_utils import basic
from ansible.module_utils.common import json as core_json

# task variables that make a module's result carry ``invocation`` (2.21+; always so before)
INVOCATION = {'ansible_inject_invocation': True}
_INVOCATION_ARGS = ({'_ansible_inject_invocation': True}
                    if 'INJECT_INVOCATION' in C.config.get_configuration_definitions() else {})

try:
    from ansible.module_utils.testing import patch_module_args as _core_patch_module_args
except ImportError:  # ansible-core 2.16 - 2.18
    _core_patch_module_args = None


@contextlib.contextmanager
def patch_module_args(args=None):
    """Expose ``args`` (plus the request for ``invocation``) to the AnsibleModule instances created within."""
    if not isinstance(args, (dict, type(None))):
        raise TypeError('The `args` arg must be a dict or None.')
    args = dict(_INVOCATION_ARGS, **(args or {}))
    if _core_patch_module_args is not None:
        with _core_patch_module_args(args):
            yield
        return
    data = json.dumps({'ANSIBLE_MODULE_ARGS': args}, cls=core_json.AnsibleJSONEncoder, vault_to_text=True).encode()
    with mock.patch.object(basic, '_ANSIBLE_ARGS', data):
        yield
