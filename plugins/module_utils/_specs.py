# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each module's AnsibleModule keyword arguments, shared by the modules and the action plugins.

Functions (not module-level dicts) so that every caller gets its own copy to work on.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.sfdc.eca.plugins.module_utils._common import (
    connection_argument_spec,
    connection_mutually_exclusive,
)


def _spec(options, mutually_exclusive=None):
    argument_spec = connection_argument_spec()
    argument_spec.update(options)
    return {
        'argument_spec': argument_spec,
        'mutually_exclusive': connection_mutually_exclusive() + (mutually_exclusive or []),
        'supports_check_mode': True,
    }


def _app_options():
    return {
        'app_name': {'type': 'str'},
        'app_id': {'type': 'str'},
    }


def token_spec():
    return _spec({'verify_only': {'type': 'bool', 'default': False},
                  'verify_pair': {'type': 'bool', 'default': False}})


def usage_info_spec():
    return _spec({'name': {'type': 'list', 'elements': 'str'}})


def credential_info_spec():
    options = _app_options()
    options['include_secrets'] = {'type': 'bool', 'default': False}
    spec = _spec(options, [['app_name', 'app_id']])
    spec['required_one_of'] = [['app_name', 'app_id']]
    return spec


def staged_credential_spec():
    options = _app_options()
    options.update({
        'consumer_name': {'type': 'str'},
        'consumer_id': {'type': 'str'},
        'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'rotated', 'absent']},
        'replace_rotated': {'type': 'bool', 'default': False},
        'return_secret': {'type': 'bool', 'default': False, 'no_log': False},
        'staged_id': {'type': 'str'},
    })
    spec = _spec(options, [['app_name', 'app_id'], ['consumer_name', 'consumer_id']])
    spec['required_one_of'] = [['app_name', 'app_id']]
    return spec


def probe_spec():
    options = _app_options()
    options.update({
        'consumer_name': {'type': 'str'},
        'consumer_id': {'type': 'str'},
        'writes': {'type': 'bool', 'default': True},
        'api_versions': {'type': 'list', 'elements': 'str'},
    })
    spec = _spec(options, [['app_name', 'app_id'], ['consumer_name', 'consumer_id']])
    spec['required_one_of'] = [['app_name', 'app_id']]
    return spec
