# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs sfdc.eca.eca_token on the controller in-process; see plugin_utils/_inprocess.py."""

from __future__ import annotations

from ansible_collections.sfdc.eca.plugins.module_utils._operations import run_token
from ansible_collections.sfdc.eca.plugins.module_utils._specs import token_spec
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import EcaInProcessAction


class ActionModule(EcaInProcessAction):
    SPEC = staticmethod(token_spec)
    RUNNER = staticmethod(run_token)
