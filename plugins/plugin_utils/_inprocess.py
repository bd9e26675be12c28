# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run an sfdc.eca module's logic inside the controller's worker process.

A module run costs a fresh Python interpreter, an AnsiballZ unpack and an import of
``requests`` per host per task. When the task would run on the controller anyway
(local connection, not delegated elsewhere, no become, not async) the action plugin
runs the same ``run_*`` function from module_utils in the worker instead, and
reproduces what ``AnsibleModule`` would have returned: same validation, same env
fallbacks, same ``invocation``, same ``no_log`` masking, same failure shape.

``SFDC_ECA_IN_PROCESS=false`` (controller environment or the task's ``environment:``)
forces the ordinary module path.
"""

from __future__ import annotations

import contextlib
import os
import traceback
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# Imported at load time on purpose: ansible loads action plugins in the controller's main
# process, so urllib3 and the client are imported once and every forked worker inherits them
# (importing them per task would cost ~0.1 s CPU each). _http imports without requests.
from ansible_collections.sfdc.eca.plugins.module_utils._common import build_client
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaError
from ansible_collections.sfdc.eca.plugins.module_utils._http import HAS_REQUESTS
from ansible_collections.sfdc.eca.plugins.plugin_utils import _compat

IN_PROCESS_ENV = 'SFDC_ECA_IN_PROCESS'
LOCAL_TRANSPORTS = frozenset(('local', 'ansible.builtin.local', 'ansible.legacy.local'))
# Result keys whose non-empty value is a credential (a staged secret, a token).
SECRET_RESULT_KEYS = frozenset(('secret', 'client_secret', 'access_token', 'refresh_token'))
_MASKED = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def carries_secret(value: t.Any) -> bool:
    """True when a result holds a credential anywhere in it (the echoed, masked options do not count)."""
    if isinstance(value, dict):
        return any((k in SECRET_RESULT_KEYS and isinstance(v, str) and v not in ('', _MASKED)) or carries_secret(v)
                   for k, v in value.items() if k != 'invocation')
    if isinstance(value, (list, tuple)):
        return any(carries_secret(v) for v in value)
    return False


def hide_secret_results(result: dict[str, t.Any]) -> dict[str, t.Any]:
    """Censor the task's displayed result when it carries a credential.

    The value stays in the registered variable (the user asked for it by registering); callbacks,
    the log file and AWX events show the result as if the task had ``no_log: true``, so a task
    that stages a pair prints no secret at any verbosity even without ``no_log``.
    """
    if carries_secret(result):
        result['_ansible_no_log'] = True
    return result


@contextlib.contextmanager
def _environment(overlay: dict[str, str]) -> t.Iterator[None]:
    """Apply the task's ``environment:`` to os.environ for the duration of the run.

    The module would see the controller environment plus the task environment; the
    worker is a forked process that runs this one task, and the previous values are
    restored anyway so nothing leaks into a later task.
    """
    saved = {k: os.environ.get(k) for k in overlay}
    try:
        os.environ.update(overlay)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def task_environment(action: ActionBase) -> dict[str, str]:
    """The task's ``environment:`` (play, block and task levels merged) as strings."""
    env: dict[str, t.Any] = {}
    action._compute_environment_string(env)
    return {str(k): str(v) for k, v in env.items()}


class EcaInProcessAction(ActionBase):
    """Base of the sfdc.eca action plugins.

    Subclasses set ``SPEC`` (the module_utils ``_specs`` function returning the keyword arguments
    of ``AnsibleModule``: argument_spec, mutually_exclusive, ..., supports_check_mode) and
    ``RUNNER`` (the ``_operations`` function ``run(client, params, check_mode=..., diff=...) -> dict``),
    both as staticmethods.
    """

    _supports_check_mode = True
    _supports_async = True

    SPEC: t.Callable[[], dict[str, t.Any]]
    RUNNER: t.Callable[..., dict[str, t.Any]]

    # -- path selection -------------------------------------------------------

    def _task_environment(self) -> dict[str, str]:
        return task_environment(self)

    def _in_process_reason(self, task_env: dict[str, str]) -> str | None:
        """None when the task may run in-process, else why not (shown at -vvv)."""
        flag = task_env.get(IN_PROCESS_ENV, os.environ.get(IN_PROCESS_ENV))
        if flag not in (None, ''):
            try:
                if not boolean(flag, strict=True):
                    return '%s=%s' % (IN_PROCESS_ENV, flag)
            except TypeError:
                raise AnsibleActionFail(
                    '%s must be a boolean (true/false), got %r' % (IN_PROCESS_ENV, flag))
        transport = getattr(self._connection, 'transport', None)
        load_name = getattr(self._connection, '_load_name', None)
        if transport not in LOCAL_TRANSPORTS and load_name not in LOCAL_TRANSPORTS:
            return 'connection %s is not local' % (load_name or transport)
        if self._task.async_val:
            return 'async task'
        if _compat.IN_PROCESS_UNAVAILABLE:
            return _compat.IN_PROCESS_UNAVAILABLE
        if getattr(self._play_context, 'become', False):
            return 'become is set (the module must run as another user)'
        return None

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp

        task_env = self._task_environment()
        reason = self._in_process_reason(task_env)
        if reason is not None:
            self._display.vvv('%s: running as a module (%s)' % (self._task.action, reason))
            wrap_async = self._task.async_val and not self._connection.has_native_async
            result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return hide_secret_results(result)

        self._display.vvv('%s: running in-process on the controller' % self._task.action)
        with _environment(task_env):
            module_result = self._run_in_process(task_vars)
        if _compat.MARK_PARSED:
            # what _execute_module/_parse_returned_data add to every parsed module result
            module_result['_ansible_parsed'] = True
        return hide_secret_results(merge_hash(result, module_result))

    # -- AnsibleModule emulation ----------------------------------------------

    def _run_in_process(self, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        return run_operation(self._task.action, self.SPEC, self.RUNNER, dict(self._task.args),
                             check_mode=bool(self._task.check_mode), diff=bool(self._task.diff),
                             invocation=_compat.inject_invocation(task_vars or {}),
                             verbosity=self._display.verbosity)


def run_operation(name: str, spec_fn: t.Callable[[], dict[str, t.Any]], runner: t.Callable[..., dict[str, t.Any]],
                  args: dict[str, t.Any], check_mode: bool = False, diff: bool = False,
                  http: t.Any = None, internal: bool = False, invocation: bool = True,
                  verbosity: int = 0) -> dict[str, t.Any]:
    """What the module ``name`` would return for ``args``, computed in this process.

    Also used by the org-level rotation action, which runs several operations per task on one
    ``_http.Http`` (one TLS connection to the org instead of one per operation). Its results stay
    inside the action (``internal``): they are validated and masked like any, but not serialized and
    parsed again as a module's would be (the costliest part of a call after its HTTP requests).
    ``invocation``: whether the result carries ``invocation`` (see _compat.inject_invocation);
    ``verbosity``: the run's, which decides whether a failure carries a traceback on some releases.
    """
    spec = spec_fn()
    supports_check_mode = spec.pop('supports_check_mode', False)
    spec.pop('bypass_checks', None)
    spec.pop('no_log', None)

    params = dict(args) if internal else _compat.args_to_module(dict(args))
    validator = ModuleArgumentSpecValidator(
        spec['argument_spec'],
        spec.get('mutually_exclusive'),
        spec.get('required_together'),
        spec.get('required_one_of'),
        spec.get('required_if'),
        spec.get('required_by'),
    )
    validation = validator.validate(params)
    params.update(validation.validated_parameters)
    no_log_values = set(validation._no_log_values)

    if validation.errors.errors:
        error = validation.errors.errors[0]
        msg = validation.errors.msg
        if isinstance(error, UnsupportedError):
            msg = 'Unsupported parameters for (%s) module: %s' % (name, msg)
        return _finish(dict(failed=True, msg=str(msg)), params, no_log_values, internal, invocation)

    if check_mode and not supports_check_mode:
        return _finish(dict(skipped=True, msg='remote module (%s) does not support check mode' % name),
                       params, no_log_values, internal, invocation)

    result = _call_runner(name, runner, params, check_mode, diff, no_log_values, http, internal, verbosity)
    return _finish(result, params, no_log_values, internal, invocation)


def _call_runner(name: str, runner: t.Callable[..., dict[str, t.Any]], params: dict[str, t.Any], check_mode: bool,
                 diff: bool, no_log_values: set[str], http: t.Any = None, internal: bool = False,
                 verbosity: int = 0) -> dict[str, t.Any]:
    """module_utils._common.execute without AnsibleModule: EcaError becomes the module's failure."""
    if not HAS_REQUESTS:
        return dict(failed=True, msg=missing_required_lib('requests'))
    client = None
    try:
        client = build_client(params, http=http)
        result = runner(client, params, check_mode=check_mode, diff=diff)
    except EcaError as exc:
        result = exc.to_result()
        if client is not None:
            result['api_calls'] = client.api_calls
        result.update(failed=True, msg=str(exc))
        trace = None if internal else _compat.failure_traceback(exc, verbosity)
        if trace and 'exception' not in result:
            result['exception'] = trace
        return result
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A bug, not an API answer: the module would crash with a traceback on stderr. Fail the
        # task instead, with the same no_log masking as any result (a traceback can quote values).
        result = dict(failed=True, msg='MODULE FAILURE: %s raised %s: %s' % (name, type(exc).__name__, exc),
                      exception=traceback.format_exc())
        if client is not None:
            result['api_calls'] = client.api_calls
        return result
    # Where the module's warnings end up, masked as the module's result would be.
    _compat.report_warnings(result, [remove_values(w, no_log_values) for w in result.pop('warnings', [])], internal)
    return result


def _finish(result: dict[str, t.Any], params: dict[str, t.Any], no_log_values: set[str],
            internal: bool = False, invocation: bool = True) -> dict[str, t.Any]:
    """AnsibleModule._return_formatted: invocation, no_log masking, JSON trip."""
    if not internal and invocation:
        result.setdefault('invocation', {'module_args': params})
    elif not internal:
        result.pop('invocation', None)
    preserved = {k: v for k, v in result.items() if v is None or isinstance(v, bool)}
    result = remove_values(result, no_log_values)
    result.update(preserved)
    return result if internal else _compat.result_to_controller(result)
