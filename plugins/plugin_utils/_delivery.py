# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a new pair goes before it is promoted: delivery targets.

A rotation entry's ``deliver`` names exactly one kind. ``Deliveries.configure`` checks it once per entry
(before any call to the org); ``Delivery.target`` resolves it for one consumer, refusing names from the
org that could leave the configured directory; ``Target.write`` stores the credential and
``Target.read_back`` returns the consumer key the target holds now, which the engine compares with the
new key before it promotes. ``tasks_file`` is the user's Ansible tasks: the role runs it, so its target
only carries the label.

File targets are written atomically and durably: a temporary file created with O_EXCL|O_NOFOLLOW and
mode 0600 in the target directory, fsync, rename over the target, fsync of the directory.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import typing as t

import yaml

from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, get_file_vault_secret

from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import (
    MAYBE_REACHED,
    NOT_REACHED,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils._stores import STORE_KINDS, StoreError, open_store

PLACEHOLDERS = ('{org}', '{app_name}', '{consumer_name}')
# Every key a delivery carries, in this order (the same dict a tasks file receives as sfdc_eca_credential).
CREDENTIAL_FIELDS = ('instance_url', 'org', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'key', 'secret')
FILE_KINDS = ('vault_file', 'file')
KINDS = ('vault_file', 'file') + STORE_KINDS + ('tasks_file',)
# a store's failure that certainly left the target as it was (the others may have written it)
STORE_NOT_WRITTEN = frozenset(('config', 'missing_library', 'auth', 'permission', 'mount', 'not_found', 'invalid', 'tls'))
_ENV_SAFE = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-')


class ConfigError(Exception):
    """A delivery setting, or a name that would go into a target, is unusable; nothing was written."""


class DeliveryError(Exception):
    """A write or read-back failed; ``reached`` says whether the target may hold the new pair."""

    def __init__(self, message: str, reached: str = MAYBE_REACHED) -> None:
        super().__init__(message)
        self.reached = reached


def check_name(value: t.Any, what: str) -> str:
    """A name that goes into a path or a secret-store path: refused when it could leave its place."""
    text = '' if value is None else str(value)
    problem = None
    if not text:
        problem = 'it is empty'
    elif '/' in text or '\\' in text:
        problem = 'it contains a path separator'
    elif text in ('.', '..') or '..' in text:
        problem = "it contains '..'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in text):
        problem = 'it contains a control character'
    if problem:
        raise ConfigError('%s %r cannot name a delivery target: %s (allowed: letters, digits and punctuation other '
                          "than '/', '\\' and '..')" % (what, text, problem))
    return text


def fill(template: str, fields: t.Mapping[str, str]) -> str:
    """The template with {org}, {app_name} and {consumer_name} replaced; any other {...} is refused."""
    out = template
    for name in ('org', 'app_name', 'consumer_name'):
        out = out.replace('{%s}' % name, fields.get(name) or '')
    return out


def check_template(template: str, what: str) -> None:
    rest = template
    for placeholder in PLACEHOLDERS:
        rest = rest.replace(placeholder, '')
    if '{' in rest or '}' in rest:
        raise ConfigError("%s '%s' has a placeholder other than %s" % (what, template, ', '.join(PLACEHOLDERS)))


def fixed_directory(template: str) -> str:
    """The directory a path template cannot leave: the part before the first placeholder, up to a '/'."""
    first = min([template.index(p) for p in PLACEHOLDERS if p in template] or [len(template)])
    head = template[:first]
    if first == len(template):
        return os.path.dirname(template) or os.sep
    return head[:head.rindex(os.sep) + 1] if os.sep in head else os.sep


def credential(fields: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The credential a delivery stores, with plain str values (templated strings are str subclasses that the
    YAML and JSON writers of some targets refuse)."""
    return dict((name, plain_text(fields.get(name))) for name in CREDENTIAL_FIELDS)


def plain_text(value: t.Any) -> str | None:
    """``value`` as an exact str. ``str()`` is not enough: ansible-core < 2.19's unsafe text returns itself from it."""
    if value is None:
        return None
    return str.__str__(value) if isinstance(value, str) else str(value)


def write_durably(path: str, data: bytes, dir_mode: int = 0o700) -> None:
    """Replace ``path`` by ``data`` atomically and durably, mode 0600.

    Raises DeliveryError: NOT_REACHED when the target was left as it was, MAYBE_REACHED when the rename
    happened but its durability could not be confirmed.
    """
    directory = os.path.dirname(path) or '.'
    name = os.path.basename(path)
    try:
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
        _remove_leftovers(directory, name)
        # unpredictable and hidden, named after its target: a run killed while writing leaves one behind, and
        # the next write of the same target removes it (one writer per target and run: Claims)
        tmp = os.path.join(directory, '.%s.%s.tmp' % (name, secrets.token_hex(8)))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    except OSError as exc:
        raise DeliveryError('cannot write %s: %s' % (path, exc.strerror or type(exc).__name__), NOT_REACHED)
    try:
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise DeliveryError('cannot write %s: %s' % (path, exc.strerror or type(exc).__name__), NOT_REACHED)
    finally:
        if os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise DeliveryError('%s was written but its directory could not be synced to disk: %s'
                            % (path, exc.strerror or type(exc).__name__), MAYBE_REACHED)


# Temporary files left by killed writes, per directory, listed at the first write into it: a task runs in a process
# of its own, and listing a directory of 10,000 targets before each write made a fleet's writes quadratic.
_LEFTOVERS: dict[str, dict[str, list[str]]] = {}
_LEFTOVERS_LOCK = threading.Lock()


def _remove_leftovers(directory: str, name: str) -> None:
    """Temporary files a killed write of ``name`` left in ``directory`` (``.NAME.HEX.tmp``)."""
    with _LEFTOVERS_LOCK:
        table = _LEFTOVERS.get(directory)
        if table is None:
            table = _LEFTOVERS[directory] = {}
            for entry in os.listdir(directory):
                if entry.startswith('.') and entry.endswith('.tmp') and entry.count('.') >= 3:
                    table.setdefault(entry[1:-len('.tmp')].rsplit('.', 1)[0], []).append(entry)
        left = table.pop(name, ())
    for entry in left:
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            pass


def remove_stale_temporary_files(*directories: str) -> None:
    """Temporary files of writes that a killed run left behind."""
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name.startswith('.') and name.endswith('.tmp'):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass


class Target:
    """One consumer's delivery target."""

    kind = 'tasks_file'

    def __init__(self, label: str, identity: tuple[t.Any, ...] | None) -> None:
        self.label = label
        self.identity = identity

    def describe(self) -> dict[str, t.Any]:
        return {'kind': self.kind, 'label': self.label, 'identity': list(self.identity) if self.identity else None}

    def write(self, data: t.Mapping[str, t.Any]) -> None:
        raise DeliveryError('a tasks file is run by the role, not written here')

    def read_back(self) -> str | None:
        return None


class FileTarget(Target):
    kind = 'file'

    def __init__(self, path: str, render: t.Callable[[t.Mapping[str, t.Any]], bytes],
                 parse: t.Callable[[bytes], str | None]) -> None:
        super().__init__(path, ('file', os.path.normpath(path)))
        self.path = path
        self._render = render
        self._parse = parse
        self._written: tuple[bytes, str] | None = None

    def write(self, data: t.Mapping[str, t.Any]) -> None:
        content = self._render(credential(data))
        write_durably(self.path, content)
        self._written = (content, str(data.get('key') or ''))

    def read_back(self) -> str | None:
        try:
            with open(self.path, 'rb') as handle:
                content = handle.read()
        except OSError as exc:
            raise DeliveryError('cannot read %s back: %s' % (self.path, exc.strerror or type(exc).__name__))
        if self._written is not None and content == self._written[0]:
            return self._written[1]
        return self._parse(content)


class VaultFileTarget(FileTarget):
    kind = 'vault_file'


class StoreTarget(Target):
    """A secret store's target (_stores), its failures told as DeliveryError."""

    def __init__(self, target: t.Any) -> None:
        super().__init__(target.label, tuple(target.identity))
        self.kind = target.kind
        self._target = target

    def write(self, data: t.Mapping[str, t.Any]) -> None:
        try:
            self._target.write(credential(data))
        except StoreError as exc:
            raise DeliveryError(str(exc), NOT_REACHED if exc.reason in STORE_NOT_WRITTEN else MAYBE_REACHED)

    def read_back(self) -> str | None:
        try:
            return self._target.read_back()
        except StoreError as exc:
            raise DeliveryError(str(exc))


class Delivery:
    """A rotation entry's checked ``deliver``; ``target`` resolves it for one consumer."""

    kind = 'tasks_file'

    def __init__(self, template: str, what: str) -> None:
        self.template = template
        self.what = what

    def target(self, fields: t.Mapping[str, str]) -> Target:
        return Target(self.template, None)

    def shared_by(self, count: int) -> str | None:
        """Why ``count`` consumers of one entry cannot share this delivery, or None."""
        return None


class TemplatedDelivery(Delivery):
    """A target named by a template with {org}, {app_name} and {consumer_name}."""

    def shared_by(self, count: int) -> str | None:
        if count > 1 and '{consumer_name}' not in self.template:
            return ("%s '%s' must contain {consumer_name}: the entry covers %d consumers and each needs its own target"
                    % (self.what, self.template, count))
        return None

    def resolve(self, fields: t.Mapping[str, str]) -> str:
        """The template filled for one consumer; a name from the org that could leave its place is refused."""
        for name, what in (('org', 'org name'), ('app_name', 'app name'), ('consumer_name', 'consumer name')):
            if '{%s}' % name in self.template:
                check_name(fields.get(name), what)
        return fill(self.template, fields)


class FileDelivery(TemplatedDelivery):
    """vault_file and file: a path template on the controller."""

    def __init__(self, kind: str, template: str, what: str, render: t.Callable[[t.Mapping[str, t.Any]], bytes],
                 parse: t.Callable[[bytes], str | None]) -> None:
        check_template(template, what)
        path = os.path.abspath(os.path.expanduser(template))
        super().__init__(path, what)
        self.kind = kind
        self.directory = os.path.normpath(fixed_directory(path))
        self._render = render
        self._parse = parse

    def target(self, fields: t.Mapping[str, str]) -> Target:
        path = os.path.normpath(self.resolve(fields))
        if os.path.commonpath([path, self.directory]) != self.directory or path == self.directory:
            raise ConfigError("%s '%s' resolves to %s, outside %s" % (self.what, self.template, path, self.directory))
        target = (VaultFileTarget if self.kind == 'vault_file' else FileTarget)(path, self._render, self._parse)
        return target


class StoreDelivery(TemplatedDelivery):
    """hashi_vault and aws_secretsmanager: a path (or secret id) template in a secret store."""

    def __init__(self, store: t.Any, what: str) -> None:
        check_template(store.path_template, what)
        super().__init__(store.path_template, what)
        self.kind = store.kind
        self.store = store

    def target(self, fields: t.Mapping[str, str]) -> Target:
        path = self.resolve(fields)
        try:
            return StoreTarget(self.store.target(path))
        except StoreError as exc:
            raise ConfigError('%s: %s' % (self.what, exc))


def _env_value(value: t.Any) -> str:
    text = '' if value is None else str(value)
    if '\n' in text or '\r' in text or '\0' in text:
        raise DeliveryError('a value contains a line break, which an env file cannot hold', NOT_REACHED)
    if all(c in _ENV_SAFE for c in text):
        return text
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"').replace('$', '\\$').replace('`', '\\`')


def _render_env(prefix: str) -> t.Callable[[t.Mapping[str, t.Any]], bytes]:
    def render(data: t.Mapping[str, t.Any]) -> bytes:
        return ''.join('%s%s=%s\n' % (prefix, name.upper(), _env_value(data.get(name)))
                       for name in CREDENTIAL_FIELDS).encode('utf-8')
    return render


def _parse_env(prefix: str) -> t.Callable[[bytes], str | None]:
    def parse(content: bytes) -> str | None:
        for line in content.decode('utf-8', 'replace').splitlines():
            name, sep, value = line.partition('=')
            if sep and name.strip() == prefix + 'KEY':
                value = value.strip()
                return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
        return None
    return parse


def _render_json(data: t.Mapping[str, t.Any]) -> bytes:
    return (json.dumps(dict(data), indent=2) + '\n').encode('utf-8')


def _render_yaml(data: t.Mapping[str, t.Any]) -> bytes:
    return yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=False).encode('utf-8')


def _parse_mapping(content: bytes) -> str | None:
    try:
        data = yaml.safe_load(content)  # JSON is YAML
    except yaml.YAMLError:
        return None
    key = data.get('key') if isinstance(data, dict) else None
    return str(key) if key else None


class Deliveries:
    """The delivery settings of a run; shared by the orgs of a fleet (threads), so its caches are locked."""

    def __init__(self, environ: t.Mapping[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._vault_secrets: dict[tuple[str, str], t.Any] = {}
        # the task's environment (fallbacks of the stores' options), read when an entry is configured
        self.environ = os.environ if environ is None else environ
        self.cache: dict[t.Any, t.Any] = {}  # the stores' clients and logins, shared by the orgs of a run

    def configure(self, deliver: t.Any, defaults: t.Mapping[str, t.Any], app_name: str) -> Delivery:
        """The entry's ``deliver`` checked; raises ConfigError with a message naming the entry."""
        where = "rotation of app '%s'" % app_name
        if not isinstance(deliver, dict):
            raise ConfigError('%s: deliver is missing: set one of %s' % (where, ', '.join(KINDS)))
        given = [kind for kind in KINDS if deliver.get(kind)]
        if len(given) != 1:
            raise ConfigError('%s: deliver must set exactly one of %s, got %s'
                              % (where, ', '.join(KINDS), ', '.join(given) or 'none'))
        kind = given[0]
        if kind in STORE_KINDS:
            what = '%s: deliver.%s' % (where, kind)
            try:
                store = open_store(kind, deliver[kind], self.environ, self.cache)
                store.check()
            except StoreError as exc:
                raise ConfigError('%s: %s' % (what, exc))
            return StoreDelivery(store, what + ('.path' if kind == 'hashi_vault' else '.secret_id'))
        if kind == 'tasks_file':
            path = os.path.abspath(os.path.expanduser(str(deliver['tasks_file'])))
            if not os.path.isfile(path):
                raise ConfigError("%s: deliver.tasks_file '%s' does not exist on the controller"
                                  % (where, deliver['tasks_file']))
            return Delivery(path, '%s: deliver.tasks_file' % where)
        if kind == 'vault_file':
            template = str(deliver['vault_file'])
            password_file = deliver.get('vault_password_file') or defaults.get('vault_password_file')
            if not password_file:
                raise ConfigError('%s: deliver.vault_file needs a vault password: set deliver.vault_password_file or '
                                  'sfdc_eca_vault_password_file' % where)
            vault_id = str(deliver.get('vault_id') or defaults.get('vault_id') or 'default')
            secret = self._vault_secret(str(password_file), vault_id, where)
            vault = VaultLib([(vault_id, secret)])

            def render(data: t.Mapping[str, t.Any]) -> bytes:
                text = yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=False)
                return vault.encrypt(text.encode('utf-8'), secret, vault_id) + b'\n'

            def parse(content: bytes) -> str | None:
                try:
                    return _parse_mapping(vault.decrypt(content))
                except AnsibleError:
                    return None
            return FileDelivery('vault_file', template, '%s: deliver.vault_file' % where, render, parse)
        options = deliver['file']
        if not isinstance(options, dict) or not options.get('path'):
            raise ConfigError('%s: deliver.file needs path' % where)
        template = str(options['path'])
        fmt = options.get('format') or 'env'
        prefix = options.get('prefix')
        prefix = 'SALESFORCE_' if prefix is None else str(prefix)
        if fmt == 'env':
            return FileDelivery('file', template, '%s: deliver.file.path' % where, _render_env(prefix), _parse_env(prefix))
        if fmt in ('json', 'yaml'):
            return FileDelivery('file', template, '%s: deliver.file.path' % where,
                                _render_json if fmt == 'json' else _render_yaml, _parse_mapping)
        raise ConfigError("%s: deliver.file.format '%s' is not one of env, json, yaml" % (where, fmt))

    def history_store(self, spec: t.Any) -> t.Any:
        """The secret store that keeps the rotation history (``history_store``), or None for files only."""
        given = [kind for kind in STORE_KINDS if isinstance(spec, dict) and spec.get(kind)]
        if not given:
            return None
        if len(given) > 1:
            raise ConfigError('history_store must set one of %s, got %s' % (', '.join(STORE_KINDS), ', '.join(given)))
        kind = given[0]
        try:
            store = open_store(kind, spec[kind], self.environ, self.cache)
            store.check()
        except StoreError as exc:
            raise ConfigError('history_store.%s: %s' % (kind, exc))
        check_template(store.path_template, 'history_store.%s' % kind)
        if '{org}' not in store.path_template:
            raise ConfigError("history_store.%s: the path '%s' must contain {org}: each org keeps its own history"
                              % (kind, store.path_template))
        return store

    def _vault_secret(self, password_file: str, vault_id: str, where: str) -> t.Any:
        """The vault secret as ansible-vault reads it: the file's text, or an executable's output (a vault-id
        client script gets --vault-id). Loaded once per run."""
        path = os.path.abspath(os.path.expanduser(password_file))
        with self._lock:
            cached = self._vault_secrets.get((path, vault_id))
            if cached is not None:
                return cached
            if not os.path.isfile(path):
                raise ConfigError("%s: vault password file '%s' does not exist on the controller" % (where, password_file))
            try:
                secret = get_file_vault_secret(filename=path, vault_id=vault_id, loader=DataLoader())
                secret.load()
            except AnsibleError as exc:
                # ansible's messages name the file, never the password
                raise ConfigError('%s: vault password file %s cannot be used: %s' % (where, path, exc.message))
            if not secret.bytes:
                raise ConfigError('%s: vault password file %s gives an empty password' % (where, path))
            self._vault_secrets[(path, vault_id)] = secret
            return secret
