# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation of one org, run inside one task on the controller.

The sfdc.eca.rotation role used to run each phase as its own task (about 30 tasks per org). Every
Ansible task costs a worker process per host, which at fleet scale dominates the run. This runs the
same phases, with the same operations (module_utils ``run_*``) and the same bookkeeping (the role's
filters), in one task:

    authenticate -> list apps -> read consumers -> plan -> stage -> verify -> deliver (vault)
      [-> hand off to the role for tasks-file deliveries and verification hooks]
      -> roll back failures -> promote -> history -> revoke -> prove -> records

A consumer refused with HTTP 401 is retried once after authenticating again. Secrets stay in this
object and in the ``handoff`` of a run that waits for the user's tasks files; items, records and
messages never carry one.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import datetime
import functools
import json
import os
import threading
import time
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.filter.core import to_nice_json, to_nice_yaml
from ansible.plugins.filter.encryption import do_vault

from ansible_collections.sfdc.eca.plugins.filter import rotation as book
from ansible_collections.sfdc.eca.plugins.module_utils._client import without_userinfo
from ansible_collections.sfdc.eca.plugins.module_utils._http import Http
from ansible_collections.sfdc.eca.plugins.module_utils._operations import (
    run_credential_info,
    run_staged_credential,
    run_token,
    run_usage_info,
)
from ansible_collections.sfdc.eca.plugins.module_utils._specs import (
    credential_info_spec,
    staged_credential_spec,
    token_spec,
    usage_info_spec,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils._inprocess import run_operation

Operation = t.Callable[..., t.Dict[str, t.Any]]

OPERATIONS = {
    'eca_token': (token_spec, run_token),
    'eca_usage_info': (usage_info_spec, run_usage_info),
    'eca_credential_info': (credential_info_spec, run_credential_info),
    'eca_staged_credential': (staged_credential_spec, run_staged_credential),
}

# Empty values keep SALESFORCE_* environment fallbacks (AWX) from replacing the pair under test.
NO_OTHER_AUTH = {'access_token': '', 'refresh_token': '', 'private_key_file': ''}


def _now_text() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _in_process(name: str, args: dict[str, t.Any], http: t.Any = None, **runner_kw: t.Any) -> dict[str, t.Any]:
    """``runner_kw``: what this rotation knows that the operation would otherwise read again (see run_staged_credential)."""
    spec, runner = OPERATIONS[name]
    if runner_kw:
        runner = functools.partial(runner, **runner_kw)
    return run_operation('sfdc.eca.' + name, spec, runner, args, http=http, internal=True)


def _loop(results: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The shape of a registered loop task, which the role's bookkeeping filters read."""
    return {'results': results, 'changed': any(r.get('changed') for r in results)}


def write_private(path: str, text: str, dir_mode: int = 0o700) -> None:
    """Write a file only its owner can read, atomically (a crash leaves the old file or the new one)."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
    # hidden and named after its target: a SIGKILL can leave one behind, and the next report removes it
    # (orgs are rotated in threads of one process: the thread is part of the name)
    tmp = os.path.join(directory, '.%s.%d.%d.tmp' % (os.path.basename(path), os.getpid(), threading.get_ident()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporary_files(*directories: str) -> None:
    """Temporary files of writes that a killed run left (the report runs once, after every org)."""
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name.startswith('.') and name.endswith('.tmp'):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ''


class OrgRotation:
    """One org's rotation. ``settings`` are the role's options (see ``eca_rotation``'s documentation)."""

    # How long the plan's reading of an empty staged slot stands in for reading it again before staging.
    # A slot that fills in between makes the POST fail and the step decide again, except in the API variant
    # where a POST replaces a Rotated credential: keeping this window short keeps that race as narrow as a
    # read right before the POST would.
    SLOT_FRESH_SECONDS = 2.0

    def __init__(self, org: str, connection: dict[str, t.Any], rotations: list[t.Any], settings: dict[str, t.Any],
                 check_mode: bool = False, operation: Operation = _in_process,
                 sleep: t.Callable[[float], None] = time.sleep, environment: dict[t.Any, t.Any] | None = None) -> None:
        self.org = org
        # proxies and CA bundle read from os.environ, shared by this org's connections (and a fleet's orgs)
        self.environment = {} if environment is None else environment
        self.connection = dict(connection or {})
        self.rotations = rotations
        self.settings = dict(settings or {})
        self.check_mode = check_mode
        self.operation = operation
        self.sleep = sleep
        self.api: dict[str, t.Any] = {}
        self.token: dict[str, t.Any] = {}
        self.results: dict[str, dict[str, t.Any]] = {}
        self.items: list[dict[str, t.Any]] = []
        self.plan_lines: list[str] = []
        self.api_calls = 0
        self.started = _now_text()
        # every call of the org on one set of connections (one TLS handshake); it keeps no cookie or header,
        # so a pair under test never sends anything of the admin's
        self.http: t.Any = None
        self.slots_read: dict[t.Any, float] = {}  # app_id -> when the plan read its consumers' staged slots

    # -- settings ----------------------------------------------------------------------------

    @property
    def instance_url(self) -> str | None:
        url = self.connection.get('instance_url') or self.token.get('instance_url')
        return without_userinfo(url) if url else url   # never a user:password@ the inventory put in it

    def _plan_options(self) -> dict[str, t.Any]:
        s = self.settings
        jwt = dict(s.get('verify_jwt') or {})
        inline = bool(jwt.pop('private_key', None))
        jwt.pop('private_key_passphrase', None)
        jwt['inline_key'] = inline
        return {
            'replace_rotated': s.get('replace_rotated', False),
            'revoke_previous': s.get('revoke_previous', False),
            'min_age_days': s.get('min_age_days', 7),
            'verify': s.get('verify') or 'client_credentials',
            'verify_jwt': jwt,
            'verify_tasks_file': s.get('verify_tasks_file') or '',
            'vault_password_file': s.get('vault_password_file') or '',
            'vault_id': s.get('vault_id') or '',
        }

    def _attempts(self) -> int:
        return 1 + max(0, int(self.settings.get('verify_retries', 3) or 0))

    def _delay(self) -> float:
        return float(self.settings.get('verify_delay', 5) or 0)

    @property
    def history_file(self) -> str:
        return os.path.join(self.settings.get('state_dir') or '.', 'history.d', '%s.json' % self.org)

    def _history(self) -> list[str]:
        state_dir = self.settings.get('state_dir') or '.'
        return [_read(os.path.join(state_dir, 'history.json')), _read(self.history_file)]

    # -- operations --------------------------------------------------------------------------

    def _call(self, name: str, args: dict[str, t.Any], item: dict[str, t.Any] | None = None,
              **runner_kw: t.Any) -> dict[str, t.Any]:
        if self.operation is _in_process:
            if self.http is None:
                self.http = Http(self.environment)
            result = _in_process(name, args, http=self.http, **runner_kw)
        else:
            result = self.operation(name, args)
        self.api_calls += int(result.get('api_calls') or 0)
        if item is not None:
            result['item'] = item
        return result

    def _api_args(self, **args: t.Any) -> dict[str, t.Any]:
        merged = dict(self.api)
        merged.update(args)
        return merged

    def _authenticate(self) -> bool:
        self.token = self._call('eca_token', dict(self.connection))
        if book._failed(self.token):
            return False
        self.api = book.eca_session(self.connection, self.token)
        return True

    # -- plan ----------------------------------------------------------------------------------

    def plan(self, rotations: list[t.Any]) -> list[dict[str, t.Any]]:
        """Authenticate, read what the plan needs (usage only for names without app_id) and plan."""
        self.results = {}
        if not self._authenticate():
            items = book.rotation_plan(rotations, self.org, instance_url=self.instance_url, token=self.token)
            return items
        usage = None
        if book.rotation_needs_listing(rotations):
            names = sorted(set(to_text(e.get('app_name')) for e in rotations if isinstance(e, dict) and e.get('app_name')))
            usage = self._call('eca_usage_info', self._api_args(name=names))
        app_results = []
        for app in book.rotation_apps(rotations, usage):
            app_results.append(self._call('eca_credential_info', self._api_args(app_id=app['app_id']), item=app))
            self.slots_read[app['app_id']] = time.monotonic()
        items = book.rotation_plan(rotations, self.org, instance_url=self.instance_url, usage=usage,
                                   app_results=_loop(app_results), history=self._history(),
                                   options=self._plan_options(), token=self.token)
        for item in items:
            if item.get('plan') == 'revoke':
                # finishing an earlier run's revoke: nothing is staged, delivered or verified
                item['deliver'] = None
                item['verify'] = None
        return items

    # -- phases before the user's tasks files --------------------------------------------------

    def _select(self, items: list[dict[str, t.Any]], **kw: t.Any) -> list[dict[str, t.Any]]:
        """Consumers still in play (rotate, resume and revoke plans)."""
        return book.rotation_select(items, plans=book.PLANS_TO_RUN, **kw)

    def _to_stage(self, items: list[dict[str, t.Any]], **kw: t.Any) -> list[dict[str, t.Any]]:
        """Consumers that get a new pair (a revoke plan gets none)."""
        return book.rotation_select(items, plans=book.PLANS_TO_STAGE, **kw)

    def _fold(self) -> list[dict[str, t.Any]]:
        return book.rotation_fold(self.items, self.results)

    def secrets(self) -> dict[str, dict[str, str]]:
        return book.rotation_secrets(self.results.get('stage'), self.results.get('promote'))

    def stage(self) -> None:
        out = []
        for item in self._to_stage(self.items):
            args = self._api_args(app_id=item['app_id'], consumer_id=item['consumer_id'], state='present',
                                  replace_rotated=item['replace_rotated'], return_secret=True)
            # the plan has just read this slot: when it was empty, stage without reading it again
            read = self.slots_read.get(item['app_id'])
            fresh = read is not None and time.monotonic() - read < self.SLOT_FRESH_SECONDS
            known = {'known_slot': None} if fresh and item.get('slot_before') == 'empty' else {}
            out.append(self._call('eca_staged_credential', args, item=item, **known))
        self.results['stage'] = _loop(out)

    def _until(self, args: dict[str, t.Any], item: dict[str, t.Any], want_failure: bool = False) -> dict[str, t.Any]:
        """The task keyword ``until`` with retries/delay: repeat until the token request succeeds (or fails)."""
        attempts = self._attempts()
        result: dict[str, t.Any] = {}
        for attempt in range(1, attempts + 1):
            result = self._call('eca_token', args, item=item)
            if book._failed(result) == want_failure:
                break
            if attempt < attempts:
                self.sleep(self._delay())
        else:
            # retries exhausted: the task would be failed, keeping its last answer
            result['failed'] = True
            result['attempts'] = attempts
        return result

    def verify(self) -> None:
        secrets = self.secrets()
        state = self._fold()
        cc, jwt = [], []
        for item in self._to_stage(state, verify='client_credentials'):
            pair = secrets.get(item['id']) or {}
            args = self._api_args(verify_only=True, client_id=pair.get('key'), client_secret=pair.get('secret'),
                                  verify_pair=True, **NO_OTHER_AUTH)
            cc.append(self._until(args, item))
        key = dict(self.settings.get('verify_jwt') or {})
        for item in self._to_stage(state, verify='jwt'):
            pair = secrets.get(item['id']) or {}
            conf = item['verify']['jwt']
            args = self._api_args(verify_only=True, client_id=pair.get('key'), client_secret='',
                                  username=conf.get('username'), access_token='', refresh_token='', verify_pair=True)
            if conf.get('inline_key'):
                args['private_key'] = key.get('private_key')
                args.pop('private_key_file', None)
            else:
                args['private_key_file'] = conf.get('private_key_file')
            if key.get('private_key_passphrase'):
                args['private_key_passphrase'] = key['private_key_passphrase']
            if conf.get('audience'):
                args['audience'] = conf['audience']
            jwt.append(self._until(args, item))
        self.results['verify_cc'] = _loop(cc)
        self.results['verify_jwt'] = _loop(jwt)

    def deliver_vault(self) -> None:
        secrets = self.secrets()
        out = []
        for item in self._to_stage(self._fold(), backend='vault_file'):
            deliver = item['deliver']
            try:
                with open(deliver['vault_password_file']) as handle:
                    password = handle.read().strip()
                content = to_nice_yaml(book.rotation_credential(item, secrets), indent=2)
                write_private(deliver['vault_file'], do_vault(content, password, vault_id=deliver['vault_id']),
                              dir_mode=0o700)
                out.append({'changed': True, 'item': item, 'dest': deliver['vault_file']})
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # an OS or vault error names the file, never the content
                out.append({'failed': True, 'item': item, 'msg': '%s: %s' % (type(exc).__name__, exc)})
        self.results['deliver_vault'] = _loop(out)

    def needs_tasks_files(self) -> bool:
        state = self._fold()
        return bool(self._to_stage(state, backend='tasks_file')
                    or [i for i in self._to_stage(state, field='verify') if i['verify'].get('tasks_file')])

    # -- phases after the user's tasks files ---------------------------------------------------

    def rollback(self) -> None:
        self.results['rollback'] = _loop([
            self._call('eca_staged_credential', self._api_args(
                app_id=item['app_id'], consumer_id=item['consumer_id'], state='absent'), item=item)
            for item in book.rotation_rollback(self._fold())])

    def remember_intent(self) -> None:
        """Before promoting, the org's history file names the keys about to become main."""
        items = [i for i in self._select(self._fold()) if i.get('plan') != 'revoke']
        if not items:
            return
        document = book.history_intent(self._history(), items)
        document['consumers'] = dict((k, v) for k, v in document['consumers'].items() if v.get('org') == self.org)
        write_private(self.history_file, to_nice_json(document, indent=2))

    def promote(self) -> None:
        out = []
        for item in self._select(self._fold()):
            args = self._api_args(app_id=item['app_id'], consumer_id=item['consumer_id'], state='rotated',
                                  return_secret=bool(item['revoke_previous']))
            if item.get('staged_id') and item.get('plan') != 'revoke':
                args['staged_id'] = item['staged_id']
            out.append(self._call('eca_staged_credential', args, item=item))
        self.results['promote'] = _loop(out)

    def remember(self) -> None:
        """The org's history file, written right after promoting: a run killed before its report still
        knows what it rotated (the next run skips instead of rotating twice)."""
        state = self._fold()
        if not book.rotation_select(state, field='promoted'):
            return
        rows = [r for r in book.rotation_records(state, self.started, _now_text()) if r['outcome'] == 'rotated']
        document = book.history_update(_read(self.history_file), rows)
        write_private(self.history_file, to_nice_json(document, indent=2))

    def revoke(self) -> None:
        self.results['revoke'] = _loop([
            self._call('eca_staged_credential', self._api_args(
                app_id=item['app_id'], consumer_id=item['consumer_id'], state='absent'), item=item)
            for item in self._select(self._fold(), field='revoke_previous')])

    def prove(self) -> None:
        secrets = self.secrets()
        out = []
        for item in self._select(self._fold(), field='revoked'):
            pair = secrets.get(item['id']) or {}
            if not pair.get('old_secret'):
                continue
            args = self._api_args(verify_only=True, client_id=pair['old_key'], client_secret=pair['old_secret'],
                                  max_retries=0, **NO_OTHER_AUTH)
            out.append(self._until(args, item, want_failure=True))
        self.results['prove'] = _loop(out)

    # -- passes ----------------------------------------------------------------------------------

    def prepare(self, rotations: list[t.Any]) -> None:
        """Plan and run the phases that need no user tasks file."""
        self.items = self.plan(rotations)
        if self.check_mode or not self._to_stage(self.items):
            return
        self.stage()
        self.verify()
        self.deliver_vault()

    def finish(self, deliver_errors: dict[str, str] | None = None, hook_errors: dict[str, str] | None = None) -> None:
        # tasks-file deliveries report failures only (an empty dict: all delivered)
        self.results['deliver_tasks'] = dict(deliver_errors or {})
        if hook_errors:
            self.results['verify_hook'] = dict(hook_errors)
        if self.check_mode or not self._select(self.items):
            return
        self.rollback()
        self.remember_intent()
        self.promote()
        self.remember()
        self.revoke()
        self.prove()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.http = None

    def records(self) -> list[dict[str, t.Any]]:
        return book.rotation_records(self._fold(), self.started, _now_text(), self.check_mode)

    def retry_entries(self) -> list[dict[str, t.Any]]:
        return book.rotation_retry_entries(self.rotations, self._fold())

    # -- handoff to the role's tasks files and back --------------------------------------------

    def handoff(self, pass_records: list[dict[str, t.Any]], retried: list[dict[str, t.Any]]) -> dict[str, t.Any]:
        """What the role's tasks files and the finishing task need. Holds secrets: no_log data."""
        return {
            'plan': self.items,
            'consumers': self._fold(),
            'secrets': self.secrets(),
            'results': self.results,
            'token': self.token,
            'started': self.started,
            'pass_records': pass_records,
            'retried': retried,
        }

    @classmethod
    def resume(cls, handoff: dict[str, t.Any], org: str, connection: dict[str, t.Any], rotations: list[t.Any],
               settings: dict[str, t.Any], **kw: t.Any) -> 'OrgRotation':
        run = cls(org, connection, rotations, settings, **kw)
        run.token = dict(handoff.get('token') or {})
        run.api = book.eca_session(run.connection, run.token)
        run.started = handoff.get('started') or run.started
        run.results = dict(handoff.get('results') or {})
        run.items = list(handoff.get('plan') or [])
        return run


def first_error(validation: t.Any) -> str:
    """The first error of a validation, without the values of its no_log options."""
    return remove_values(validation.error_messages[0], validation._no_log_values)


class VariablesCheck:
    """The orgs' variables against an argument spec, one variable at a time: most orgs share most values
    (role defaults, group vars), and each distinct value is validated once."""

    def __init__(self, spec: dict[str, t.Any] | None) -> None:
        self.validators = dict((name, ArgumentSpecValidator({name: option})) for name, option in (spec or {}).items())
        self.known: dict[tuple[str, str], str | None] = {}

    def problem(self, value: t.Callable[[str], t.Any], variables: t.Mapping[str, t.Any]) -> str | None:
        """The first error (no_log values removed) of this org's variables, or None; ``value(name)`` gives a
        variable's templated value."""
        for name, validator in self.validators.items():
            provided = {name: value(name)} if name in variables else {}
            try:
                key = (name, json.dumps(provided, sort_keys=True, default=repr))
            except (TypeError, ValueError):
                key = None
            if key is not None and key in self.known:
                found = self.known[key]
            else:
                checked = validator.validate(provided)
                found = first_error(checked) if checked.error_messages else None
                if key is not None:
                    self.known[key] = found
            if found:
                return found
        return None


# Options of a task that rotates many orgs (``orgs``); the others are each org's.
# One org's name, the finishing call after tasks files and the gate switch make no sense per org of a batch.
NOT_IN_FLEET = ('org', 'handoff', 'deliver_errors', 'hook_errors')
FLEET_OPTIONS = ('orgs', 'org_options', 'org_variables_spec', 'workers')


def rotation_argument_spec(fleet: bool = False) -> dict[str, t.Any]:
    """Options of sfdc.eca.eca_rotation (documented in plugins/modules/eca_rotation.py).

    fleet: the task's own options when it rotates many orgs; each org's options (the task's, updated with
    ``org_options``) are then checked against the spec without ``fleet``.
    """
    spec = {
        'org': {'type': 'str'},
        'connection': {'type': 'dict', 'default': {}, 'no_log': True},
        'rotations': {'type': 'list', 'elements': 'raw', 'default': []},
        'replace_rotated': {'type': 'bool', 'default': False},
        'revoke_previous': {'type': 'bool', 'default': False},
        'min_age_days': {'type': 'float', 'default': 7},
        'verify': {'type': 'str', 'default': 'client_credentials', 'choices': list(book.VERIFY_METHODS)},
        'verify_jwt': {'type': 'dict', 'default': {}, 'no_log': True},
        'verify_tasks_file': {'type': 'str', 'default': ''},
        'verify_retries': {'type': 'int', 'default': 3},
        'verify_delay': {'type': 'float', 'default': 5},
        'vault_password_file': {'type': 'str', 'default': ''},
        'vault_id': {'type': 'str', 'default': ''},
        'state_dir': {'type': 'str', 'required': True},
        'canary_gate': {'type': 'bool', 'default': True},
        'max_fail_percentage': {'type': 'float', 'default': 100},
        'handoff': {'type': 'dict', 'no_log': True},
        'deliver_errors': {'type': 'dict', 'default': {}},
        'hook_errors': {'type': 'dict', 'default': {}},
    }
    if fleet:
        for name in NOT_IN_FLEET:
            del spec[name]
        spec['state_dir'] = {'type': 'str'}
        spec.update({
            'orgs': {'type': 'list', 'elements': 'str', 'required': True},
            'org_options': {'type': 'dict', 'required': True},
            'org_variables_spec': {'type': 'dict', 'default': {}},
            'workers': {'type': 'int'},
        })
    return spec


def uses_tasks_files(params: dict[str, t.Any]) -> bool:
    """Whether an org's options name a tasks file (a delivery or a verification hook): those are Ansible
    tasks, so such an org is rotated by the role's tasks for that host, not inside a fleet task."""
    if params.get('verify_tasks_file'):
        return True
    for entry in params.get('rotations') or []:
        if not isinstance(entry, dict):
            continue
        deliver = entry.get('deliver')
        if entry.get('verify_tasks_file') or (isinstance(deliver, dict) and deliver.get('tasks_file')):
            return True
    return False


def invalid_org(org: str, params: dict[str, t.Any], message: str) -> dict[str, t.Any]:
    """The result of an org whose options were refused before any API call: one failed row per rotation."""
    connection = params.get('connection') if isinstance(params.get('connection'), dict) else {}
    rotations = params.get('rotations') if isinstance(params.get('rotations'), list) else []
    rows = book.rotation_not_run(rotations, org, message, connection.get('instance_url')) or [
        {'org': org, 'app_name': None, 'consumer_name': None, 'plan': None, 'phase': None}]
    for row in rows:
        row.update(outcome='failed', phase='options', error=message)
    return {'changed': False, 'canary': False, 'plan': [], 'api_calls': 0, 'records': rows, 'org_failed': True}


def plain(value: t.Any) -> t.Any:
    """``value`` with plain str, int, float, dict and list in place of the tagged types templating gives
    (their origin serves error messages of templates; an org's run templates nothing). Each operation of the
    run validates and masks its arguments, and copying a tagged string costs 60 times a plain one."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, dict):
        return dict((plain(k) if isinstance(k, (str, int, float)) else k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for base in (str, int, float):
        if isinstance(value, base):
            return base(value)
    return value


def template_free(value: t.Any) -> bool:
    """Whether ``value`` is plain data with no Jinja in it, which templating would return unchanged: the fleet
    task then skips templating it (most of an org's variables are such data, and templating a nested
    structure rebuilds it)."""
    if isinstance(value, str):
        return '{{' not in value and '{%' not in value and '{#' not in value
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, dict):
        return all(template_free(k) and template_free(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(template_free(v) for v in value)
    return False  # e.g. a vault-encrypted value: templating decrypts it


def run_fleet(jobs: t.Iterable[tuple[str, dict[str, t.Any]]], gate: dict[str, t.Any], check_mode: bool = False,
              workers: int = 25, **kw: t.Any) -> dict[str, dict[str, t.Any]]:
    """Rotate many orgs at once: ``run_org`` for each (org, params) in a pool of threads.

    Each org has its own connections, files and records; one org's failure (even an unexpected exception) is
    that org's failed record and never stops another. -> {org: run_org's result}, in the order of ``jobs``
    (an org given twice is rotated once).
    """
    kw.setdefault('environment', {})
    futures = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        for org, params in jobs:
            if org in futures:
                continue
            # each org in a copy of this context: Ansible collects a task's warnings through a context variable
            context = contextvars.copy_context()
            futures[org] = (pool.submit(context.run, run_org, params, org, gate, check_mode, **kw), params)
    out: dict[str, dict[str, t.Any]] = {}
    for org, (future, params) in futures.items():
        try:
            out[org] = future.result()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # run_org catches API and file errors per consumer, so this is a bug; its text could quote a token
            # or a new secret, so only its type is recorded
            out[org] = invalid_org(org, params, 'the rotation of this org stopped unexpectedly (%s); the next run '
                                   'plans again from the org\'s state' % type(exc).__name__)
            out[org]['canary'] = bool(gate.get('canary'))
            for row in out[org]['records']:
                row['phase'] = 'unexpected'
    return out


def run_org(params: dict[str, t.Any], org: str, gate: dict[str, t.Any], check_mode: bool = False,
            **kw: t.Any) -> dict[str, t.Any]:
    """The whole rotation of one org (or its part after the user's tasks files, with ``handoff``).

    -> {changed, records, org_failed, canary, plan, api_calls[, handoff]}; ``handoff`` (secrets) only
    when tasks files must run before the consumers can be promoted.
    """
    params = plain(params)
    rotations = params.get('rotations') or []
    settings = dict((k, params.get(k)) for k in (
        'replace_rotated', 'revoke_previous', 'min_age_days', 'verify', 'verify_jwt', 'verify_tasks_file',
        'verify_retries', 'verify_delay', 'vault_password_file', 'vault_id', 'state_dir'))
    connection = params.get('connection') or {}
    instance_url = connection.get('instance_url')
    out: dict[str, t.Any] = {'changed': False, 'canary': bool(gate.get('canary')), 'plan': [], 'api_calls': 0}
    if not gate.get('run', True):
        out.update(records=book.rotation_not_run(rotations, org, gate.get('reason'), instance_url), org_failed=False)
        return out

    runs: list[OrgRotation] = []
    try:
        return _run_passes(params, org, rotations, settings, connection, out, runs, check_mode, **kw)
    finally:
        for run in runs:
            run.close()


def _run_passes(params: dict[str, t.Any], org: str, rotations: list[t.Any], settings: dict[str, t.Any],
                connection: dict[str, t.Any], out: dict[str, t.Any], runs: list['OrgRotation'], check_mode: bool,
                **kw: t.Any) -> dict[str, t.Any]:
    handoff = params.get('handoff')
    if handoff:
        run = OrgRotation.resume(handoff, org, connection, rotations, settings, check_mode=check_mode, **kw)
        runs.append(run)
        run.finish(params.get('deliver_errors'), params.get('hook_errors'))
        pass_records, retried = handoff.get('pass_records') or [], handoff.get('retried') or []
        records = book.rotation_merge_records(pass_records, run.records(), retried) if retried else run.records()
    else:
        run = OrgRotation(org, connection, rotations, settings, check_mode=check_mode, **kw)
        runs.append(run)
        run.prepare(rotations)
        retried = []
        if not check_mode and run.needs_tasks_files():
            return _handed_off(out, runs, run, [], [])
        run.finish()
        records = run.records()

    retry = [] if retried or check_mode else run.retry_entries()
    if retry:
        # refused with HTTP 401 (session expired or revoked mid-run): authenticate again, once
        second = OrgRotation(org, connection, rotations, settings, check_mode=check_mode, **kw)
        runs.append(second)
        second.prepare(retry)
        if second.needs_tasks_files():
            return _handed_off(out, runs, second, records, retry)
        second.finish()
        records = book.rotation_merge_records(records, second.records(), retry)

    out.update(_summary(runs))
    out.update(records=records, org_failed=any(r.get('outcome') == 'failed' for r in records))
    return out


def _summary(runs: list[OrgRotation]) -> dict[str, t.Any]:
    changed = False
    for run in runs:
        for phase in ('stage', 'rollback', 'promote', 'revoke'):
            changed = changed or bool((run.results.get(phase) or {}).get('changed'))
    return {'changed': changed, 'api_calls': sum(r.api_calls for r in runs),
            'plan': [line for r in runs for line in book.rotation_plan_lines(r.items)]}


def _handed_off(out: dict[str, t.Any], runs: list[OrgRotation], run: OrgRotation, records: list[dict[str, t.Any]],
                retried: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    out.update(_summary(runs))
    out['handoff'] = run.handoff(records, retried)
    out['records'] = records
    out['org_failed'] = False
    return out


def write_fleet_report(rows: list[dict[str, t.Any]], kind: str, report_dir: str, state_dir: str,
                       planned: bool = False) -> tuple[dict[str, t.Any], list[str]]:
    """Write report.{json,md,html} (or audit.*) and, after a rotation that was not a plan only, merge the
    run's rows and every org's history file into history.json. -> (report, paths written)."""
    from ansible_collections.sfdc.eca.plugins.filter import report as reports

    report = reports.eca_report(rows, kind, planned)
    base = 'report' if kind == 'rotation' else 'audit'
    written = []
    for directory in sorted(set((report_dir, state_dir))):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    remove_stale_temporary_files(report_dir, state_dir, os.path.join(state_dir, 'history.d'))
    for ext, text in (('json', to_nice_json(report, indent=2) + '\n'), ('md', reports.eca_report_markdown(report)),
                      ('html', reports.eca_report_html(report))):
        path = os.path.join(report_dir, '%s.%s' % (base, ext))
        write_private(path, text)
        os.chmod(path, 0o644)  # the report holds no secret: readable like any report
        written.append(path)
    if kind == 'rotation' and not planned:
        history_dir = os.path.join(state_dir, 'history.d')
        parts = [_read(os.path.join(state_dir, 'history.json'))]
        if os.path.isdir(history_dir):
            parts += [_read(os.path.join(history_dir, name)) for name in sorted(os.listdir(history_dir))
                      if name.endswith('.json')]
        path = os.path.join(state_dir, 'history.json')
        write_private(path, to_nice_json(book.history_update(parts, rows), indent=2))
        written.append(path)
    return report, written
