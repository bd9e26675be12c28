# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation history: the only code that reads or writes its files.

``STATE_DIR/history.json`` holds, per ``org/app/consumer``: ``last_rotated``, ``last_run``,
``last_outcome``, ``rotations``, the promoted key's suffix (``key``) and a fingerprint of it (``key_fp``),
never a key. Each org also keeps ``STATE_DIR/history.d/ORG.json``, written by the org's run just before
it promotes (``promoting_fp``: the key about to become main) and right after, so that a run killed
before its report still tells the next run what happened. The report merges them into history.json.

Runs sharing a state directory (the slices of an AWX sliced job) take ``STATE_DIR/.history.lock``: a merge
into history.json exclusively, an org file write shared, so that no merge is lost and no run removes the
temporary file of another's write.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import typing as t

try:
    import fcntl
except ImportError:  # a controller without flock (not POSIX): one run at a time per state dir
    fcntl = None  # type: ignore[assignment]

from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import check_name, fill, write_durably
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import iso, now, parse_time
from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import StoreError

VERSION = 1
LOCK_FILE = '.history.lock'


class HistoryError(Exception):
    """A history file that cannot be read or written."""


def key(org: str, app_name: str | None, consumer_name: str | None) -> str:
    return '%s/%s/%s' % (org, app_name, consumer_name)


def _read(path: str) -> dict[str, dict[str, t.Any]]:
    try:
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise HistoryError('cannot read the rotation history %s: %s' % (path, exc.strerror or type(exc).__name__))
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise HistoryError('the rotation history %s is not valid JSON (%s): fix or remove it' % (path, exc))
    return _consumers(document, path)


def _combine(merged: dict[str, dict[str, t.Any]], *own: dict[str, dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """history.json's entries with each org file's: an org file is written at every promotion of its org, so its
    entry is the authority on rotations; history.json may hold a later run's last_run/last_outcome."""
    out = dict(merged)
    for source in own:
        for name, entry in source.items():
            base = out.get(name) or {}
            combined = dict(entry)
            if str(base.get('last_run') or '') > str(entry.get('last_run') or ''):
                combined['last_run'] = base.get('last_run')
                combined['last_outcome'] = base.get('last_outcome')
            out[name] = combined
    return out


def _document(entries: dict[str, dict[str, t.Any]]) -> bytes:
    return (json.dumps({'version': VERSION, 'updated': iso(now()), 'consumers': dict(sorted(entries.items()))},
                       indent=2) + '\n').encode('utf-8')


def _consumers(document: t.Any, where: str) -> dict[str, dict[str, t.Any]]:
    consumers = document.get('consumers') if isinstance(document, dict) else None
    if not isinstance(consumers, dict):
        raise HistoryError('the rotation history %s must hold a JSON object with "consumers"' % where)
    return dict((k, v) for k, v in consumers.items() if isinstance(v, dict))


class MergedCache:
    """history.json's entries by org, parsed once for the orgs of one task (its threads share it) while the file
    stays the same: every org asks for its own entries, and parsing the whole file for each would cost N x N. Only
    the report replaces history.json, after the rotation tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[tuple[int, int, int], dict[str, dict[str, dict[str, t.Any]]]]] = {}

    def by_org(self, path: str) -> dict[str, dict[str, dict[str, t.Any]]]:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return {}
        except OSError:
            info = None  # _read reports it
        identity = (info.st_ino, info.st_size, info.st_mtime_ns) if info is not None else None
        with self._lock:
            cached = self._files.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        by_org: dict[str, dict[str, dict[str, t.Any]]] = {}
        for name, entry in _read(path).items():
            org, sep, _rest = name.partition('/')
            if sep:
                by_org.setdefault(org, {})[name] = entry
        if identity is not None:
            with self._lock:
                self._files[path] = (identity, by_org)
        return by_org


class History:
    """The history of one state directory, and of a secret store when ``store`` is given (a _stores Store whose path
    template names {org}): each org's document is then read from the store and written to it as well.
    ``cache``: a MergedCache shared by the orgs of a task."""

    def __init__(self, state_dir: str, store: t.Any = None, cache: MergedCache | None = None) -> None:
        self.state_dir = state_dir or '.'
        self.store = store
        self.cache = cache

    def _store_target(self, org: str) -> t.Any:
        try:
            return self.store.target(fill(self.store.path_template, {'org': check_name(org, 'org name')}))
        except StoreError as exc:
            raise HistoryError('the rotation history in %s cannot be used: %s' % (self.store.kind, exc))

    def _own(self, org: str) -> dict[str, dict[str, t.Any]]:
        if self.store is None:
            return _read(self.org_file(org))
        target = self._store_target(org)
        try:
            document = target.read_data()
        except StoreError as exc:
            raise HistoryError('cannot read the rotation history: %s' % exc)
        return _consumers(document, target.label) if document else {}

    @property
    def merged_file(self) -> str:
        return os.path.join(self.state_dir, 'history.json')

    def org_file(self, org: str) -> str:
        return os.path.join(self.state_dir, 'history.d', '%s.json' % check_name(org, 'org name'))

    @contextlib.contextmanager
    def lock(self, exclusive: bool = True) -> t.Iterator[None]:
        """Held while history.json is merged (exclusive) or an org file written (shared); released on close."""
        path = os.path.join(self.state_dir, LOCK_FILE)
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0), 0o600)
        except OSError as exc:
            raise HistoryError('cannot open the rotation history lock %s: %s' % (path, exc.strerror or type(exc).__name__))
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def entries(self, org: str) -> dict[str, dict[str, t.Any]]:
        """What the history knows of the org's consumers."""
        own = self._own(org)
        if self.cache is not None:
            # copies: a caller may change an entry, the cache serves the next org too
            merged = self.cache.by_org(self.merged_file).get(org) or {}
            return _combine(dict((name, dict(entry)) for name, entry in merged.items()), own)
        prefix = org + '/'
        return _combine(dict((k, v) for k, v in _read(self.merged_file).items() if k.startswith(prefix)), own)

    def _write_org(self, org: str, entries: dict[str, dict[str, t.Any]]) -> None:
        mine = dict((k, v) for k, v in entries.items() if k.startswith(org + '/'))
        document = _document(mine)
        if self.store is not None:
            try:
                self._store_target(org).write_data(json.loads(document))
            except StoreError as exc:
                raise HistoryError('cannot write the rotation history: %s' % exc)
        try:
            with self.lock(exclusive=False):
                write_durably(self.org_file(org), document)
        except HistoryError:
            raise
        except Exception as exc:  # DeliveryError: a secret-free message naming the file
            raise HistoryError('cannot write the rotation history: %s' % exc)

    def record_intent(self, org: str, intents: t.Iterable[tuple[str, str, str | None, str]]) -> None:
        """Before promoting: (app_name, consumer_name, instance_url, fingerprint of the key about to become main)."""
        entries = self.entries(org)
        moment = iso(now())
        for app_name, consumer_name, instance_url, fp in intents:
            name = key(org, app_name, consumer_name)
            entry = dict(entries.get(name) or {})
            entry.update(org=org, app_name=app_name, consumer_name=consumer_name, instance_url=instance_url,
                         promoting_fp=fp, promoting_since=moment)
            entries[name] = entry
        self._write_org(org, entries)

    def record_rows(self, org: str, rows: t.Iterable[dict[str, t.Any]]) -> None:
        """After promoting: the org's outcome rows (only rotated ones change what the history says)."""
        entries = self.entries(org)
        changed = False
        for row in rows:
            if row.get('outcome') == 'rotated':
                update(entries, row)
                changed = True
        if changed:
            self._write_org(org, entries)

    def merge(self, rows: t.Iterable[dict[str, t.Any]]) -> str:
        """The report's merge: every org's file and this run's rows into history.json. -> its path."""
        with self.lock():
            return self._merge(rows)

    def _merge(self, rows: t.Iterable[dict[str, t.Any]]) -> str:
        sources = []
        directory = os.path.join(self.state_dir, 'history.d')
        if os.path.isdir(directory):
            for name in sorted(os.listdir(directory)):
                if name.endswith('.json') and not name.startswith('.'):
                    sources.append(_read(os.path.join(directory, name)))
        entries = _combine(_read(self.merged_file), *sources)
        for row in rows:
            if row.get('app_name') and row.get('consumer_name') and row.get('outcome') not in (None, 'planned', 'not_run'):
                update(entries, row)
        try:
            write_durably(self.merged_file, _document(entries))
        except Exception as exc:
            raise HistoryError('cannot write the rotation history: %s' % exc)
        return self.merged_file


def update(entries: dict[str, dict[str, t.Any]], row: dict[str, t.Any]) -> None:
    """Fold one outcome row into the entries. A rotation counts once per promoted key."""
    name = key(row.get('org'), row.get('app_name'), row.get('consumer_name'))
    entry = dict(entries.get(name) or {})
    entry.update(org=row.get('org'), app_name=row.get('app_name'), consumer_name=row.get('consumer_name'),
                 instance_url=row.get('instance_url'), last_run=iso(now()), last_outcome=row.get('outcome'))
    fp = row.get('_new_key_fp')
    if row.get('outcome') == 'rotated' and fp:
        if entry.get('key_fp') != fp:
            entry['rotations'] = int(entry.get('rotations') or 0) + 1
            entry['last_rotated'] = row.get('rotated_at') or row.get('finished') or iso(now())
        entry['key'] = row.get('new_key')
        entry['key_fp'] = fp
        if entry.get('promoting_fp') == fp:
            entry.pop('promoting_fp', None)
            entry.pop('promoting_since', None)
    entries[name] = entry


def promoted_since(entry: t.Mapping[str, t.Any], main_fp: str | None) -> str | None:
    """When this tool promoted the current main key, per the history (also an unrecorded promotion), or None."""
    if not main_fp or not entry:
        return None
    if entry.get('key_fp') == main_fp:
        return entry.get('last_rotated') or entry.get('promoting_since')
    if entry.get('promoting_fp') == main_fp:
        return entry.get('promoting_since')
    return None


def unrecorded_promotion(entry: t.Mapping[str, t.Any], main_fp: str | None) -> bool:
    """The main key is one this tool was about to promote, and the promotion was never recorded."""
    return bool(main_fp and entry and entry.get('promoting_fp') == main_fp and entry.get('key_fp') != main_fp)


def within(moment: str | None, days: float) -> bool:
    when = parse_time(moment)
    return bool(when is not None and days > 0 and (now() - when).total_seconds() < days * 86400)
