# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the in-process path needs from ansible-core that differs between the releases it supports.

The rest of the collection imports these from here and nowhere else. The JSON trip is chosen by
what the running core has; the rest, which no public name tells apart, by its version.
tests/unit/plugins/plugin_utils/test_compat.py checks, on every release of the CI matrix
(scripts/lib/matrix.txt), that the branch of that release is in use and matches its module path.

- JSON trip of a module's arguments and result (``args_to_module``, ``result_to_controller``):
  2.19+ serializes both ways with a named profile (``get_module_encoder``/``get_module_decoder``);
  2.16-2.18 encode the arguments with ``AnsibleJSONEncoder(vault_to_text=True)`` and the module
  writes its result with ``jsonify``; both then parse plain JSON.
- ``invocation`` in a module's result (``inject_invocation``): 2.21+ adds it only when the
  INJECT_INVOCATION setting is on (off by default); earlier releases always add it.
- ``_ansible_parsed`` (``MARK_PARSED``): ``_execute_module`` adds it to a parsed result before
  2.21; 2.21+ keeps that flag out of the task's result.
- A failure's traceback (``failure_traceback``): before 2.19, ``fail_json`` called while an
  exception is handled adds its traceback as ``exception`` at -vvv or with DEFAULT_DEBUG. 2.19+
  adds one only when DISPLAY_TRACEBACK asks for errors' tracebacks; the in-process path leaves it out.
- Warnings (``report_warnings``): 2.19+ captures a ``warn()`` made on the controller into the
  task's result; before, ``warn()`` fills a module-side list nobody reads on the controller, so the
  warnings go into the result (where a module's are) or to the display.

When neither JSON trip is there (a core this collection does not know), ``IN_PROCESS_UNAVAILABLE``
says why and the action plugins run the module instead.
"""

from __future__ import annotations

import json
import traceback
import typing as t

from ansible import constants as C
from ansible.module_utils.common import json as core_json
from ansible.module_utils.common.text import converters
from ansible.module_utils.common.warnings import warn
from ansible.release import __version__ as CORE_VERSION_TEXT


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split('.')[:3]:
        digits = ''
        for char in part:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    return tuple(parts)


CORE_VERSION = _version(CORE_VERSION_TEXT)

# Serialization profile of an AnsibleModule-based module (2.19+).
MODULE_PROFILE = 'legacy'

IN_PROCESS_UNAVAILABLE: str | None = None
if all(hasattr(core_json, name) for name in ('Direction', 'get_module_encoder', 'get_module_decoder')):
    JSON_TRIP = 'profile'  # ansible-core 2.19 and later
elif hasattr(core_json, 'AnsibleJSONEncoder') and hasattr(converters, 'jsonify'):
    JSON_TRIP = 'jsonify'  # ansible-core 2.16 - 2.18
else:
    JSON_TRIP = ''
    IN_PROCESS_UNAVAILABLE = ('ansible-core %s has neither JSON trip the in-process path knows (get_module_encoder, '
                              'AnsibleJSONEncoder)' % CORE_VERSION_TEXT)

MARK_PARSED = CORE_VERSION < (2, 21)
WARNINGS_CAPTURED = CORE_VERSION >= (2, 19)
TRACEBACK_AT_VVV = CORE_VERSION < (2, 19)
# ansible-core 2.21 and later
_INVOCATION_SETTING = 'INJECT_INVOCATION' in C.config.get_configuration_definitions()


def args_to_module(args: dict[str, t.Any]) -> dict[str, t.Any]:
    """The arguments as the module would parse them from the controller's JSON."""
    if JSON_TRIP == 'profile':
        return _profile_trip(args, core_json.Direction.CONTROLLER_TO_MODULE)
    if JSON_TRIP == 'jsonify':
        return json.loads(json.dumps(args, cls=core_json.AnsibleJSONEncoder, vault_to_text=True))
    raise RuntimeError(IN_PROCESS_UNAVAILABLE)


def result_to_controller(result: dict[str, t.Any]) -> dict[str, t.Any]:
    """The result as the controller would parse it from the module's output."""
    if JSON_TRIP == 'profile':
        return _profile_trip(result, core_json.Direction.MODULE_TO_CONTROLLER)
    if JSON_TRIP == 'jsonify':
        return json.loads(converters.jsonify(result))
    raise RuntimeError(IN_PROCESS_UNAVAILABLE)


def _profile_trip(value: t.Any, direction: t.Any) -> t.Any:
    """Serialize and parse like the module path does (tuples become lists, tags drop)."""
    encoder = core_json.get_module_encoder(MODULE_PROFILE, direction)
    decoder = core_json.get_module_decoder(MODULE_PROFILE, direction)
    return json.loads(json.dumps(value, cls=encoder), cls=decoder)


def inject_invocation(task_vars: dict[str, t.Any]) -> bool:
    """Whether a module run for this task would return ``invocation`` (its arguments, masked)."""
    if not _INVOCATION_SETTING:
        return True
    return bool(C.config.get_config_value('INJECT_INVOCATION', variables=task_vars))


def failure_traceback(exc: BaseException, verbosity: int) -> str | None:
    """The ``exception`` the module's fail_json would add for ``exc``, which it was handling."""
    if TRACEBACK_AT_VVV and (verbosity >= 3 or C.DEFAULT_DEBUG):
        return ''.join(traceback.format_tb(exc.__traceback__))
    return None


def report_warnings(result: dict[str, t.Any], warnings: t.Iterable[str], internal: bool = False) -> None:
    """Show an operation's (already masked) warnings the way the module's would be shown.

    ``internal``: the result stays inside an action that does not return it (the org rotation).
    """
    warnings = list(warnings)
    if not warnings:
        return
    if WARNINGS_CAPTURED:
        for warning in warnings:
            warn(warning)
    elif not internal:
        # the task result's warnings, which the callbacks show (a module's result carries them so)
        result['warnings'] = warnings
    else:
        from ansible.utils.display import Display
        display = Display()
        for warning in warnings:
            display.warning(warning)
