# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many orgs in one task: each org's run in a pool of threads, the canary gate, target claims.

``run_fleet`` runs ``run_org`` for each (org, options); ``finish_fleet`` finishes the orgs whose
consumers waited for the user's tasks files. One org's failure, even an unexpected exception, is that
org's failed rows and never stops another org.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import hashlib
import json
import os
import shutil
import threading
import time
import typing as t

from jinja2 import nodes
from jinja2.environment import Environment

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import Deliveries
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_engine import OrgRotation
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_history import MergedCache
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import Consumer, Secrets, iso, now
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_options import variables_spec

OPEN = {'run': True, 'canary': False, 'reason': ''}
CLAIMS_KEPT_SECONDS = 24 * 3600


class Claims:
    """Which consumer of this run delivers to which target: the first claim wins, a second one is refused.

    In memory for the orgs of one task; with ``directory`` (a run's folder under STATE_DIR/.claims) also across
    the tasks of one playbook run (batches, or one task per org), as one marker file per target."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._owners: dict[str, str] = {}
        if directory:
            parent = os.path.dirname(directory)
            if os.path.isdir(parent):
                for name in os.listdir(parent):
                    old = os.path.join(parent, name)
                    try:
                        if old != directory and time.time() - os.path.getmtime(old) > CLAIMS_KEPT_SECONDS:
                            shutil.rmtree(old, ignore_errors=True)
                    except OSError:
                        pass
            os.makedirs(directory, mode=0o700, exist_ok=True)

    def claim(self, consumer: Consumer) -> str | None:
        """-> None when the consumer may deliver to its target, else who already does."""
        identity = (consumer.target or {}).get('identity')
        if not identity:
            return None
        owner = '%s %s' % (consumer.org, consumer.id)
        name = hashlib.sha256(json.dumps(identity).encode('utf-8')).hexdigest()
        with self._lock:
            other = self._owners.setdefault(name, owner)
            if other != owner:
                return other
            if self.directory is None:
                return None
            path = os.path.join(self.directory, name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                try:
                    with open(path, encoding='utf-8') as handle:
                        other = handle.read().strip()
                except OSError:
                    other = '?'
                if other != owner:
                    self._owners[name] = other
                    return other
                return None
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                handle.write(owner)
            return None


def canary_gate(hosts_all: t.Sequence[str], results: t.Callable[[str], dict[str, t.Any]], batch: t.Sequence[str],
                max_fail_percentage: t.Any = 100) -> dict[str, t.Any]:
    """-> {run, canary, reason} for the hosts of the current batch; ``results(host)`` gives an earlier org's result.

    The first batch is the canary: if any of its orgs failed (or never recorded a result), every later org is held
    back. After it, more than ``max_fail_percentage`` of the orgs run so far failing holds back the rest.
    """
    hosts = list(hosts_all or [])
    position: dict[str, int] = {}  # a host's first place in the play (a list lookup per host would be quadratic)
    for index, host in enumerate(hosts):
        position.setdefault(host, index)
    current = [h for h in batch or [] if h in position]
    if not current:
        return dict(OPEN)
    first = min(position[h] for h in current)
    earlier = hosts[:first]
    if not earlier:
        return {'run': True, 'canary': True, 'reason': ''}
    canary = [h for h in earlier if results(h).get('canary', False)] or earlier[:1]
    bad = [h for h in canary if results(h).get('org_failed', True)]
    if bad:
        return {'run': False, 'canary': False,
                'reason': 'not run: the canary batch failed (%s)' % ', '.join(bad[:5] + (['...'] if len(bad) > 5 else []))}
    failed = [h for h in earlier if results(h).get('org_failed', True)]
    try:
        limit = float(max_fail_percentage)
    except (TypeError, ValueError):
        limit = 100.0
    if limit < 100 and failed and 100.0 * len(failed) / len(earlier) > limit:
        return {'run': False, 'canary': False,
                'reason': 'not run: %d of %d orgs already failed, more than sfdc_eca_max_fail_percentage=%s%%'
                          % (len(failed), len(earlier), max_fail_percentage)}
    return dict(OPEN)


def entry_rows(org: str, rotations: t.Any, instance_url: str | None, phase: str | None, message: str,
               status: str = 'failed') -> list[dict[str, t.Any]]:
    """Rows of an org that never got to its consumers: one per rotation entry."""
    entries = rotations if isinstance(rotations, list) else []
    consumers = [Consumer(org, str((e if isinstance(e, dict) else {}).get('app_name') or '?'),
                          (e if isinstance(e, dict) else {}).get('consumer_name'), instance_url) for e in entries] or [
        Consumer(org, None, None, instance_url)]  # type: ignore[arg-type]
    stamp = iso(now())
    rows = []
    for consumer in consumers:
        if status == 'not_run':
            consumer.hold(message)
        else:
            consumer.fail(phase or 'options', message)
        row = consumer.row(stamp, stamp, 0.0)
        if consumer.app_name is None:
            row['app_name'] = None
        rows.append(row)
    return rows


def org_result(org: str, options: t.Mapping[str, t.Any], gate: t.Mapping[str, t.Any], rows: list[dict[str, t.Any]],
               **extra: t.Any) -> dict[str, t.Any]:
    out = {'changed': False, 'canary': bool(gate.get('canary')), 'plan': [], 'api_calls': 0, 'records': rows,
           'org_failed': any(r.get('outcome') == 'failed' for r in rows), 'warnings': []}
    out.update(extra)
    return out


def refused_org(org: str, options: t.Mapping[str, t.Any], message: str, gate: t.Mapping[str, t.Any] | None = None,
                phase: str = 'options') -> dict[str, t.Any]:
    connection = options.get('connection') if isinstance(options.get('connection'), dict) else {}
    rows = entry_rows(org, options.get('rotations'), connection.get('instance_url'), phase, message)
    return org_result(org, options, gate or OPEN, rows)


def _changed(run: OrgRotation) -> bool:
    return any(c.staged_by_run or c.rolled_back or c.promoted and c.plan != 'finish' or c.revoked for c in run.consumers)


def _result(run: OrgRotation, gate: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    rows = run.rows()
    return org_result(run.org, run.options, gate, rows, changed=_changed(run), plan=run.plan_lines(),
                      api_calls=run.api_calls, warnings=list(run.warnings))


def run_org(org: str, options: t.Mapping[str, t.Any], gate: t.Mapping[str, t.Any] | None = None, check_mode: bool = False,
            deliveries: Deliveries | None = None, claims: Claims | None = None, **kw: t.Any) -> dict[str, t.Any]:
    """The rotation of one org up to the end, or up to the user's tasks files (then ``handoff``, no_log data)."""
    gate = gate or OPEN
    if not gate.get('run', True):
        connection = options.get('connection') if isinstance(options.get('connection'), dict) else {}
        rows = entry_rows(org, options.get('rotations'), connection.get('instance_url'), None, gate.get('reason') or '',
                          status='not_run')
        return org_result(org, options, gate, rows)
    run = OrgRotation(org, options, deliveries, check_mode=check_mode, **kw)
    try:
        run.run(run.discover)
        run.run(lambda: run.plan(claims.claim if claims else None))
        if check_mode:
            return _result(run, gate)
        run.run(run.prepare)
        steps = run.steps()
        if steps:
            out = _result(run, gate)
            out['handoff'] = dict(run.handoff(), steps=steps)
            return out
        run.run(run.finish)
        return _result(run, gate)
    finally:
        run.close()


def finish_org(org: str, options: t.Mapping[str, t.Any], handoff: t.Mapping[str, t.Any], failed: t.Mapping[str, t.Any],
               ran: bool, gate: t.Mapping[str, t.Any] | None = None, **kw: t.Any) -> dict[str, t.Any]:
    """The rest of an org's rotation after the role ran its tasks files (``failed``: {step id: task name})."""
    run = OrgRotation.resume(org, options, handoff, **kw)
    try:
        run.took_steps(list(handoff.get('steps') or []), failed, ran)
        run.run(run.finish)
        return _result(run, gate or {'canary': handoff.get('canary')})
    finally:
        run.close()


def pool(jobs: list[tuple[str, t.Callable[[], dict[str, t.Any]], t.Mapping[str, t.Any]]], workers: int,
         gate: t.Mapping[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    futures = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(workers))) as executor:
        for org, call, options in jobs:
            if org in futures:
                continue
            # each org in a copy of this context: Ansible collects a task's warnings through a context variable
            futures[org] = (executor.submit(contextvars.copy_context().run, call), options)
    out: dict[str, dict[str, t.Any]] = {}
    for org, (future, options) in futures.items():
        try:
            out[org] = future.result()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # a bug: its text could quote a token or a new secret, so only its type is recorded
            out[org] = refused_org(org, options, "the rotation of this org stopped unexpectedly (%s); the next run plans "
                                   "again from the org's state" % type(exc).__name__, gate, phase='unexpected')
    return out


def shared_templates(jobs: t.Iterable[tuple[str, t.Mapping[str, t.Any]]]) -> dict[str, dict[int, str]]:
    """Rotation entries of different orgs whose file path templates are the same once {org} and {app_name} are
    filled: their consumers would write each other's files. -> {org: {entry index: message}}, found before any call."""
    users: dict[str, list[tuple[str, int]]] = {}
    for org, options in jobs:
        for index, entry in enumerate(options.get('rotations') or []):
            deliver = entry.get('deliver') if isinstance(entry, dict) else None
            if not isinstance(deliver, dict):
                continue
            template = deliver.get('vault_file') or (deliver.get('file') or {}).get('path')
            vault, aws = deliver.get('hashi_vault') or {}, deliver.get('aws_secretsmanager') or {}
            if template:
                place = os.path.normpath(os.path.abspath(os.path.expanduser(str(template))))
            elif vault.get('path'):
                place = 'hashi_vault %s %s/%s' % (vault.get('url') or '$VAULT_ADDR', vault.get('mount'), vault['path'])
            elif aws.get('secret_id'):
                place = 'aws_secretsmanager %s %s' % (aws.get('endpoint_url') or aws.get('region') or '', aws['secret_id'])
            else:
                continue
            partial = place.replace('{org}', org).replace('{app_name}', str(entry.get('app_name')))
            users.setdefault(partial, []).append((org, index))
    out: dict[str, dict[int, str]] = {}
    for partial, entries in users.items():
        orgs = sorted(set(org for org, _index in entries))
        if len(orgs) < 2:
            continue
        for org, index in entries:
            out.setdefault(org, {})[index] = (
                "the delivery target resolves to %s for the orgs %s too: put {org} in it so that each org gets its own "
                'target; nothing was written' % (partial, ', '.join(o for o in orgs if o != org)))
    return out


def run_fleet(jobs: t.Iterable[tuple[str, t.Mapping[str, t.Any]]], gate: t.Mapping[str, t.Any] | None = None,
              check_mode: bool = False, workers: int = 25, claims: Claims | None = None,
              **kw: t.Any) -> dict[str, dict[str, t.Any]]:
    """Rotate many orgs at once. -> {org: run_org's result}, in the order of ``jobs`` (an org given twice runs once)."""
    gate = gate or OPEN
    deliveries = Deliveries()
    kw.setdefault('environment', {})
    kw.setdefault('history_cache', MergedCache())
    claims = claims if claims is not None else Claims()
    jobs = list(jobs)
    shared = shared_templates(jobs)
    calls = [(org, (lambda o=org, p=options: run_org(o, p, gate, check_mode, deliveries, claims,
                                                     refused_entries=shared.get(o), **kw)), options)
             for org, options in jobs]
    return pool(calls, workers, gate)


def finish_fleet(jobs: t.Iterable[tuple[str, t.Mapping[str, t.Any], t.Mapping[str, t.Any], t.Mapping[str, t.Any], bool]],
                 workers: int = 25, **kw: t.Any) -> dict[str, dict[str, t.Any]]:
    """jobs: (org, options, handoff, failed steps, ran)."""
    kw.setdefault('environment', {})
    kw.setdefault('history_cache', MergedCache())
    calls = [(org, (lambda o=org, p=options, h=handoff, f=failed, r=ran: finish_org(o, p, h, f, r, **kw)), options)
             for org, options, handoff, failed, ran in jobs]
    return pool(calls, workers, OPEN)


def unexpected(org: str, options: t.Mapping[str, t.Any], handoff: t.Mapping[str, t.Any] | None, task: str,
               gate: t.Mapping[str, t.Any] | None = None) -> dict[str, t.Any]:
    """An org whose role tasks failed unexpectedly: every unfinished consumer fails, naming the task."""
    message = "unexpected failure in task '%s': see the log of this run" % (task or '?')
    if handoff and handoff.get('consumers'):
        secrets = Secrets()
        consumers = [Consumer.from_state(c) for c in handoff['consumers']]
        for consumer in consumers:
            secrets.add(consumer.pair.get('secret'))
            if consumer.status == 'pending':
                consumer.fail(consumer.phase or 'plan', message)
        stamp = iso(now())
        rows = [c.row(handoff.get('started'), stamp, None, secrets=secrets) for c in consumers]
        return org_result(org, options, gate or OPEN, rows)
    return refused_org(org, options, message, gate, phase='unexpected')


class VariablesCheck:
    """Each org's variables against the option spec, one variable at a time: most orgs share most values (role
    defaults, group vars), and each distinct value is validated once."""

    def __init__(self, spec: dict[str, dict[str, t.Any]] | None = None) -> None:
        self.validators = dict((name, ArgumentSpecValidator({name: option}))
                               for name, option in (spec or variables_spec()).items())
        self.known: dict[tuple[str, str], str | None] = {}

    def problem(self, value: t.Callable[[str], t.Any], present: t.Container[str]) -> str | None:
        """The first error (no_log values removed) of an org's variables, or None; ``value(name)`` templates one."""
        for name, validator in self.validators.items():
            provided = {name: value(name)} if name in present else {}
            try:
                key: tuple[str, str] | None = (name, json.dumps(provided, sort_keys=True, default=repr))
            except (TypeError, ValueError):
                key = None
            if key is not None and key in self.known:
                found = self.known[key]
            else:
                checked = validator.validate(provided)
                found = remove_values(checked.error_messages[0], checked._no_log_values) if checked.error_messages else None
                if key is not None:
                    self.known[key] = found
            if found:
                return found
        return None


def plain(value: t.Any) -> t.Any:
    """``value`` with plain str, int, float, dict and list in place of the tagged types templating gives: each check
    of an org's options copies them, and copying a tagged string costs 60 times a plain one."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, dict):
        return dict((plain(k) if isinstance(k, (str, int, float)) else k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str.__str__(value)   # str() of ansible-core < 2.19's unsafe text is that text again
    for base in (int, float):
        if isinstance(value, base):
            return base(value)
    if getattr(value, '__ENCRYPTED__', False):  # ansible-core < 2.19: templating leaves a vault value encrypted
        return str(value)
    return value


def template_free(value: t.Any) -> bool:
    """Whether ``value`` is plain data with no Jinja in it, which templating would return unchanged."""
    if isinstance(value, str):
        return '{{' not in value and '{%' not in value and '{#' not in value
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, dict):
        return all(template_free(k) and template_free(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(template_free(v) for v in value)
    return False  # a vault-encrypted value: templating decrypts it


SCALARS = (str, int, float, bool)
# what a template may use and still be a function of the variables it names alone
PURE_FILTERS = frozenset(('default', 'd'))
PURE_LOOKUPS = frozenset(('ansible.builtin.env',))  # the controller's environment: the same for every org of a task


class TemplateMemo:
    """Results of templating the same variable for many orgs, shared when they cannot differ.

    Most orgs take a template such as the role's ``sfdc_eca_state_dir: "{{ sfdc_eca_report_dir }}"`` from the same
    place, and Jinja compiles a template string on every use (about 1 ms). A template is shared only when its result
    is a function of the variables it names: text, variable names, the default filter, and
    lookup('ansible.builtin.env', ...) with literal arguments; and only between orgs whose template is the same
    object (same source, so the same trust) and whose named variables hold the same scalars, or templates that are
    again the same objects, recursively. Anything else is templated for each org as before."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str] | None] = {}
        self._results: dict[tuple[t.Any, ...], t.Any] = {}
        self._parser = Environment()

    def key(self, raw: t.Any, variables: t.Mapping[str, t.Any], depth: int = 0) -> tuple[t.Any, ...] | None:
        if not isinstance(raw, str) or depth > 10:
            return None
        names = self._names.get(raw, self)
        if names is self:
            names = self._names[raw] = self._pure_names(raw)
        if names is None:
            return None
        parts: list[t.Any] = [id(raw), raw]  # raw (kept alive by the key) makes id(raw) unique while the memo lives
        for name in sorted(names):
            if name not in variables:
                return None
            value = variables[name]
            if isinstance(value, str) and not template_free(value):
                sub = self.key(value, variables, depth + 1)
                if sub is None:
                    return None
                parts.append((name, sub))
            elif value is None or type(value) in SCALARS or isinstance(value, SCALARS):
                parts.append((name, type(value).__name__, value))
            else:
                return None
        return tuple(parts)

    def _pure_names(self, source: str) -> frozenset[str] | None:
        if source.lstrip().startswith('#jinja2:'):
            return None  # the template sets its own Jinja options
        try:
            tree = self._parser.parse(source)
        except Exception:  # pylint: disable=broad-exception-caught
            return None
        names: set[str] = set()
        return frozenset(names) if self._pure(tree, names) else None

    def _pure(self, node: t.Any, names: set[str]) -> bool:
        if isinstance(node, (nodes.Template, nodes.Output, nodes.Concat)):
            return all(self._pure(child, names) for child in node.iter_child_nodes())
        if isinstance(node, (nodes.TemplateData, nodes.Const)):
            return True
        if isinstance(node, nodes.Name):
            names.add(node.name)
            return node.ctx == 'load'

        def literal(args, kwargs):
            return all(isinstance(a, nodes.Const) for a in args) and all(isinstance(k.value, nodes.Const) for k in kwargs)

        if isinstance(node, nodes.Filter):
            return (node.name in PURE_FILTERS and node.node is not None and self._pure(node.node, names)
                    and literal(node.args, node.kwargs) and node.dyn_args is None and node.dyn_kwargs is None)
        if isinstance(node, nodes.Call):
            return (isinstance(node.node, nodes.Name) and node.node.name == 'lookup' and bool(node.args)
                    and isinstance(node.args[0], nodes.Const) and node.args[0].value in PURE_LOOKUPS
                    and literal(node.args, node.kwargs) and node.dyn_args is None and node.dyn_kwargs is None)
        return False

    def get(self, key: tuple[t.Any, ...] | None) -> t.Any:
        return self._results.get(key, self) if key is not None else self

    def put(self, key: tuple[t.Any, ...] | None, value: t.Any) -> None:
        if key is not None and (value is None or type(value) in SCALARS):
            self._results[key] = value
