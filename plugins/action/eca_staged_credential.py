# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs sfdc.eca.eca_staged_credential on the controller in-process; see plugin_utils/_inprocess.py."""

from __future__ import annotations

from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import EcaInProcessAction


class ActionModule(EcaInProcessAction):
    # Names, resolved on first in-process use: the module path must not need requests here.
    SPEC_NAME = 'staged_credential_spec'
    RUNNER_NAME = 'run_staged_credential'
