# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation of one org, as a state machine over its consumers.

    discover (authenticate, apps, consumers, delivery targets)
      -> plan (claim targets, read each staged slot, decide)          [check mode stops here]
      -> prepare (stage, verify, deliver to native targets and read back)
      [-> the role runs the user's tasks files: deliveries, then verification hooks]
      -> finish (roll back what may be, promote, record, revoke, prove)

Each step acts on the consumers still pending and records a failure on the consumer it belongs to; an
org-level failure (authentication, the daily API limit) fails every pending consumer. The rules of what
may be deleted and what may be promoted are the Consumer's (_rotation_model).
"""

from __future__ import annotations

import os
import time
import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.sfdc.eca.plugins.module_utils._auth import ClientCredentialsAuth, JwtBearerAuth
from ansible_collections.sfdc.eca.plugins.module_utils._client import without_userinfo
from ansible_collections.sfdc.eca.plugins.module_utils._common import (
    build_client,
    connection_argument_spec,
    connection_mutually_exclusive,
)
from ansible_collections.sfdc.eca.plugins.module_utils._errors import (
    EcaAmbiguousWrite,
    EcaAuthError,
    EcaError,
    EcaInputError,
    EcaLimitExceededError,
    EcaTransportError,
)
from ansible_collections.sfdc.eca.plugins.module_utils._http import Http
from ansible_collections.sfdc.eca.plugins.module_utils._operations import (
    resolve_consumer,
    run_staged_credential,
    same_id,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history
from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import (
    ConfigError,
    Deliveries,
    DeliveryError,
    Target,
    credential,
)
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import (
    BLOCKED,
    ERROR,
    FINISH,
    MAYBE_REACHED,
    NOT_REACHED,
    PENDING,
    REACHED,
    RESUME,
    REVOKE,
    ROTATE,
    SKIP,
    Consumer,
    Secrets,
    fingerprint,
    iso,
    now,
    parse_time,
    suffix,
)

# the token endpoint's answers that mean "this pair does not authenticate"
REFUSALS = ('invalid_client', 'invalid_grant', 'invalid_client_id')
OK, REFUSED, UNUSABLE, TRANSIENT = 'ok', 'refused', 'unusable', 'transient'


class OrgStop(Exception):
    """The org cannot go on (authentication refused, daily API limit spent): every pending consumer fails."""

    def __init__(self, phase: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.http_status = http_status


def transient(exc: BaseException) -> bool:
    """Whether a failure may go away by itself: it then never leads to deleting a pair."""
    if isinstance(exc, (EcaTransportError, EcaAmbiguousWrite)):
        return True
    status = getattr(exc, 'status', None)
    return isinstance(status, int) and (status >= 500 or status == 429)


def connection_params(connection: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The org's connection options validated like a module's (SALESFORCE_* fallbacks included)."""
    validator = ArgumentSpecValidator(connection_argument_spec(), connection_mutually_exclusive())
    result = validator.validate(dict(connection))
    if result.error_messages:
        raise EcaInputError('sfdc_eca_connection: %s' % remove_values(result.error_messages[0], result._no_log_values))
    return result.validated_parameters


class OrgApi:
    """The calls a rotation makes to one org: one client, one token, one set of connections."""

    def __init__(self, connection: t.Mapping[str, t.Any], secrets: Secrets, environment: dict[t.Any, t.Any],
                 sleep: t.Callable[[float], None] = time.sleep) -> None:
        self.raw = dict(connection or {})
        self.params = connection_params(self.raw)
        for name in ('client_secret', 'access_token', 'refresh_token', 'private_key', 'private_key_passphrase'):
            secrets.add(self.params.get(name))
        self.secrets = secrets
        self.client = build_client(self.params, http=Http(environment), sleep=sleep)
        # a pair under test goes to this org's own token endpoint: its own token_url, never one from the environment
        self.token_url = (self.raw.get('token_url') or (self.client.instance_url + '/services/oauth2/token'))
        self.audience = self.raw.get('audience') or 'https://login.salesforce.com'

    @property
    def calls(self) -> int:
        return self.client.api_calls

    def authenticate(self, token: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        if token and token.get('access_token'):
            self.client.token_info = dict(token)
        else:
            self.client.authenticate()
        info = self.client.token_info or {}
        self.secrets.add(info.get('access_token'), info.get('refresh_token'))
        return info

    def close(self) -> None:
        self.client.http.close()

    def apps(self) -> list[dict[str, t.Any]]:
        return self.client.list_apps()

    def consumers(self, app_id: str) -> list[dict[str, t.Any]]:
        return self.client.list_consumers(app_id)

    def slot(self, consumer: Consumer) -> dict[str, t.Any] | None:
        item = self.client.get_staged(consumer.app_id, consumer.consumer_id)
        if item:
            self.secrets.add(item.get('secret'))
        return item

    def _staged_op(self, consumer: Consumer, **params: t.Any) -> dict[str, t.Any]:
        params.update(app_id=consumer.app_id, consumer_id=consumer.consumer_id, client_id=self.params.get('client_id'))
        known = params.pop('known_slot', None)
        kwargs = {'known_slot': known[0]} if known else {}
        result = run_staged_credential(self.client, params, **kwargs)
        self.secrets.add((result.get('staged_credential') or {}).get('secret'))
        return result

    def stage(self, consumer: Consumer, known: tuple[dict[str, t.Any] | None] | None) -> tuple[dict[str, t.Any], str]:
        """POST a new pair. ``known``: (the slot as the plan read it a moment ago,), which is then not read again."""
        result = self._staged_op(consumer, state='present', replace_rotated=consumer.replace_rotated,
                                 return_secret=True, known_slot=known)
        return result.get('staged_credential') or {}, result.get('action') or 'none'

    def promote(self, consumer: Consumer, return_secret: bool) -> tuple[str | None, dict[str, t.Any] | None]:
        """PATCH rotate of the verified and delivered staged id; a fallback acts only on that same pair."""
        result = self._staged_op(consumer, state='rotated', staged_id=consumer.staged_id,
                                 expect_key=consumer.pair.get('key'), return_secret=return_secret)
        return result.get('main_key'), result.get('staged_credential')

    def delete(self, consumer: Consumer, staged_id: str | None, key: str | None) -> bool:
        """DELETE the staged pair ``key`` (by its id); -> False when it was already gone."""
        result = self._staged_op(consumer, state='absent', staged_id=staged_id, expect_key=key)
        return result.get('action') == 'deleted'

    def try_pair(self, key: str, secret: str, method: str, jwt: t.Mapping[str, t.Any]) -> tuple[str, str]:
        """Ask the org's token endpoint for a token with a pair. -> (OK | REFUSED | UNUSABLE | TRANSIENT, detail).

        Only an invalid_client/invalid_grant answer is REFUSED. The pair is sent to this org's token endpoint only,
        with no other credential: the connection's auth options and their environment fallbacks play no part."""
        try:
            if method == 'jwt':
                flow = JwtBearerAuth(self.token_url, key, jwt.get('username'), private_key=jwt.get('private_key'),
                                     private_key_file=jwt.get('private_key_file'),
                                     private_key_passphrase=jwt.get('private_key_passphrase'),
                                     audience=jwt.get('audience') or self.audience)
            else:
                flow = ClientCredentialsAuth(self.token_url, key, secret)
            answer = self.client.request_token(flow)
        except EcaAuthError as exc:
            detail = self.secrets.redact(str(exc)) or ''
            if exc.status == 400 and exc.error in REFUSALS:
                return REFUSED, detail
            if exc.status == 400 or exc.status == 401 and exc.error:
                return UNUSABLE, detail
            return TRANSIENT, detail
        except EcaInputError as exc:
            return UNUSABLE, self.secrets.redact(str(exc)) or ''
        except EcaError as exc:
            return TRANSIENT, self.secrets.redact(str(exc)) or ''
        self.secrets.add(answer.get('access_token'), answer.get('refresh_token'))
        return OK, ''


class OrgRotation:
    """One org's rotation. ``options``: the org's validated options (_rotation_options.ORG_OPTIONS)."""

    # How long the plan's reading of a staged slot stands in for reading it again before staging. A slot that
    # fills in between makes the POST fail and the step decide again, except in the API variant where a POST
    # replaces a Rotated credential: a short window keeps that race as narrow as a read right before the POST.
    SLOT_FRESH_SECONDS = 2.0

    def __init__(self, org: str, options: t.Mapping[str, t.Any], deliveries: Deliveries | None = None,
                 check_mode: bool = False, environment: dict[t.Any, t.Any] | None = None,
                 sleep: t.Callable[[float], None] = time.sleep, refused_entries: t.Mapping[int, str] | None = None,
                 history_cache: history.MergedCache | None = None) -> None:
        self.org = org
        self.refused_entries = dict(refused_entries or {})  # rotation entry index -> why it cannot run
        self.options = dict(options)
        self.deliveries = deliveries or Deliveries()
        self.check_mode = check_mode
        self.environment = {} if environment is None else environment
        self.sleep = sleep
        self.secrets = Secrets()
        self.history_cache = history_cache
        self.history = history.History(self.options.get('state_dir') or '.', cache=history_cache)
        self.consumers: list[Consumer] = []
        self.targets: dict[str, Target] = {}
        self.slots: dict[str, dict[str, t.Any] | None] = {}
        self.read_at: dict[str, float] = {}
        self.api: OrgApi | None = None
        self.started = iso(now())
        self.calls_before = 0
        self.warnings: list[str] = []
        self.entry_rows: list[Consumer] = []   # one per rotation entry until its consumers are known
        self.history_entries: dict[str, dict[str, t.Any]] = {}

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def instance_url(self) -> str | None:
        connection = self.options.get('connection') or {}
        url = connection.get('instance_url') or (self.api.client.instance_url if self.api else None)
        return without_userinfo(url) if url else url   # never a user:password@ the inventory put in it

    @property
    def api_calls(self) -> int:
        return self.calls_before + (self.api.calls if self.api else 0)

    def pending(self, *plans: str) -> list[Consumer]:
        return [c for c in self.consumers if c.status == PENDING and (not plans or c.plan in plans)]

    def _each(self, consumers: t.Iterable[Consumer], phase: str, action: t.Callable[[Consumer], None]) -> None:
        """Run ``action`` per consumer; a failure is that consumer's, the daily limit stops the org."""
        for consumer in consumers:
            if consumer.status != PENDING:
                continue
            try:
                action(consumer)
            except EcaLimitExceededError as exc:
                raise OrgStop(phase, self.secrets.redact(str(exc)) or '', exc.status)
            except EcaError as exc:
                consumer.fail(phase, self.secrets.redact(str(exc)) or '', getattr(exc, 'status', None), transient(exc))
            except (ConfigError, DeliveryError, history.HistoryError) as exc:
                consumer.fail(phase, self.secrets.redact(str(exc)) or '')

    def stop(self, phase: str, message: str, http_status: int | None = None) -> None:
        for consumer in (self.consumers or self.entry_rows):
            if consumer.status == PENDING:
                consumer.fail(phase, message, http_status)

    def run(self, step: t.Callable[[], None]) -> None:
        """Run one step of the org; an OrgStop fails whatever is still pending."""
        try:
            step()
        except OrgStop as exc:
            self.stop(exc.phase, str(exc), exc.http_status)

    def close(self) -> None:
        if self.api is not None:
            self.api.close()

    # -- discover ------------------------------------------------------------------------------------

    def discover(self) -> None:
        """Authenticate, read the apps and consumers the rotations name, resolve each consumer's target."""
        rotations = self.options.get('rotations') or []
        for index, entry in enumerate(rotations):
            self.entry_rows.append(Consumer(self.org, str(entry.get('app_name') or '?'), entry.get('consumer_name'),
                                            entry_index=index))
            if index in self.refused_entries:
                self.entry_rows[-1].fail('plan', self.refused_entries[index])
        if not any(row.pending for row in self.entry_rows):
            self.consumers = list(self.entry_rows)
            return
        try:
            self.api = OrgApi(self.options.get('connection') or {}, self.secrets, self.environment, self.sleep)
        except EcaInputError as exc:
            raise OrgStop('authenticate', self.secrets.redact(str(exc)) or '')
        try:
            self.api.authenticate()
        except EcaError as exc:
            raise OrgStop('authenticate', 'authentication to the org failed: %s' % self.secrets.redact(str(exc)),
                          getattr(exc, 'status', None))
        if getattr(self.api.client.auth, 'new_refresh_token', None):
            self.warnings.append(
                'the org rotated the refresh token of sfdc_eca_connection (refresh-token rotation is on for the admin '
                'app): the one in the inventory no longer works. Authenticate fleet runs with client credentials or '
                'a JWT instead (docs/rotation.md, "Connecting to the orgs").')
        for row in self.entry_rows:
            row.instance_url = self.instance_url
        try:
            self.history = history.History(self.options.get('state_dir') or '.',
                                           self.deliveries.history_store(self.options.get('history_store')),
                                           self.history_cache)
            self.history_entries = self.history.entries(self.org)
        except (ConfigError, history.HistoryError) as exc:
            raise OrgStop('plan', self.secrets.redact(str(exc)) or '')
        deliveries = {}
        for index, entry in enumerate(rotations):
            try:
                deliveries[index] = self.deliveries.configure(entry.get('deliver'), self.options, str(entry['app_name']))
            except ConfigError as exc:
                self.entry_rows[index].fail('plan', str(exc))
        app_ids = self._app_ids(rotations)
        seen: dict[str, Consumer] = {}
        listed: dict[str, list[dict[str, t.Any]]] = {}
        for index, entry in enumerate(rotations):
            row = self.entry_rows[index]
            if row.status != PENDING:
                self.consumers.append(row)
                continue
            app_name = str(entry['app_name'])
            app_id = entry.get('app_id') or app_ids.get(app_name)
            if isinstance(app_id, Exception):
                row.fail('plan', str(app_id))
                self.consumers.append(row)
                continue
            try:
                if app_id not in listed:
                    listed[app_id] = self.api.consumers(app_id)
                chosen = self._choose(listed[app_id], entry, app_name, app_id)
            except EcaLimitExceededError as exc:
                raise OrgStop('plan', self.secrets.redact(str(exc)) or '', exc.status)
            except EcaError as exc:
                row.fail('plan', "reading the consumers of app '%s' failed: %s" % (app_name, self.secrets.redact(str(exc))),
                         getattr(exc, 'status', None), transient(exc))
                self.consumers.append(row)
                continue
            shared = deliveries[index].shared_by(len(chosen))
            for found in chosen:
                consumer = self._consumer(entry, index, app_name, app_id, found, deliveries[index])
                if shared and consumer.status == PENDING:
                    consumer.fail('plan', shared)
                twin = next((c for cid, c in seen.items() if same_id(cid, consumer.consumer_id)), None)
                if twin is not None:
                    consumer.fail('plan', "consumer '%s' of app '%s' is listed twice in sfdc_eca_rotations: it is rotated "
                                  'once' % (consumer.consumer_name, app_name))
                else:
                    seen[consumer.consumer_id or consumer.id] = consumer
                self.consumers.append(consumer)
        self._same_targets([c for c in self.consumers if c.status == PENDING])

    def _app_ids(self, rotations: list[dict[str, t.Any]]) -> dict[str, t.Any]:
        """app name -> id for the entries without app_id (one listing), or -> the error of a name not found."""
        names = sorted(set(str(e['app_name']) for i, e in enumerate(rotations)
                           if not e.get('app_id') and self.entry_rows[i].status == PENDING))
        if not names:
            return {}
        try:
            apps = self.api.apps()
        except EcaLimitExceededError as exc:
            raise OrgStop('plan', self.secrets.redact(str(exc)) or '', exc.status)
        except EcaError as exc:
            raise OrgStop('plan', "listing the org's apps failed: %s" % self.secrets.redact(str(exc)),
                          getattr(exc, 'status', None))
        known = dict((a.get('developer_name'), a.get('identifier')) for a in apps)
        out: dict[str, t.Any] = {}
        for name in names:
            if name in known:
                out[name] = known[name]
                continue
            near = [n for n in known if n and n.lower() == name.lower()]
            hint = " (developer names are case-sensitive: did you mean '%s'?)" % near[0] if near else ''
            out[name] = ConfigError(
                "no External Client App with developer name '%s' in %s%s. The listing shows only apps with OAuth usage "
                "data: an app nobody has used yet is missing from it; give its app_id (0x...) in the rotation entry."
                % (name, self.instance_url, hint))
        return out

    @staticmethod
    def _choose(consumers: list[dict[str, t.Any]], entry: t.Mapping[str, t.Any], app_name: str,
                app_id: str) -> list[dict[str, t.Any]]:
        if entry.get('consumer_name') or entry.get('consumer_id'):
            return [resolve_consumer(consumers, {'consumer_name': entry.get('consumer_name'),
                                                 'consumer_id': entry.get('consumer_id')}, "'%s' (%s)" % (app_name, app_id))]
        if not consumers:
            raise EcaInputError("app '%s' has no OAuth consumer" % app_name)
        return consumers

    def _consumer(self, entry: t.Mapping[str, t.Any], index: int, app_name: str, app_id: str,
                  found: t.Mapping[str, t.Any], delivery: t.Any) -> Consumer:
        o = self.options
        consumer = Consumer(self.org, app_name, found.get('name'), self.instance_url, app_id, found.get('id'), index)
        consumer.main_key = consumer.main_key_before = found.get('key')
        consumer.replace_rotated = bool(o.get('replace_rotated') if entry.get('replace_rotated') is None
                                        else entry['replace_rotated'])
        consumer.revoke_previous = bool(o.get('revoke_previous') if entry.get('revoke_previous') is None
                                        else entry['revoke_previous'])
        hist = self.history_entries.get(history.key(self.org, app_name, consumer.consumer_name)) or {}
        consumer.last_rotated = hist.get('last_rotated')
        try:
            consumer.verify = self._verify_settings(entry, app_name)
            target = delivery.target({'org': self.org, 'app_name': app_name, 'consumer_name': consumer.consumer_name})
        except ConfigError as exc:
            consumer.fail('plan', str(exc))
            return consumer
        consumer.target = target.describe()
        self.targets[consumer.id] = target
        return consumer

    def _verify_settings(self, entry: t.Mapping[str, t.Any], app_name: str) -> dict[str, t.Any]:
        o = self.options
        method = entry.get('verify') or o.get('verify') or 'client_credentials'
        hook = entry.get('verify_tasks_file') or o.get('verify_tasks_file') or ''
        settings: dict[str, t.Any] = {'method': method, 'hook': ''}
        if hook:
            path = os.path.abspath(os.path.expanduser(str(hook)))
            if not os.path.isfile(path):
                raise ConfigError("rotation of app '%s': verify_tasks_file '%s' does not exist on the controller"
                                  % (app_name, hook))
            settings['hook'] = path
        if method == 'jwt':
            jwt = dict((k, v) for k, v in (o.get('verify_jwt') or {}).items() if v is not None)
            jwt.update((k, v) for k, v in (entry.get('verify_jwt') or {}).items() if v is not None)
            if not jwt.get('username') or not (jwt.get('private_key_file') or jwt.get('private_key')):
                raise ConfigError("rotation of app '%s': verify jwt needs verify_jwt.username and "
                                  'verify_jwt.private_key_file or private_key (or sfdc_eca_verify_jwt)' % app_name)
            settings['jwt'] = jwt
            self.secrets.add(jwt.get('private_key'), jwt.get('private_key_passphrase'))
        return settings

    def _same_targets(self, consumers: list[Consumer]) -> None:
        """Two consumers of this org resolving to one target both fail before anything is written."""
        by_identity: dict[tuple[t.Any, ...], list[Consumer]] = {}
        for consumer in consumers:
            identity = (consumer.target or {}).get('identity')
            if identity:
                by_identity.setdefault(tuple(identity), []).append(consumer)
        for group in by_identity.values():
            if len(group) > 1:
                names = ', '.join(c.id for c in group)
                for consumer in group:
                    consumer.fail('plan', 'consumers %s would all be delivered to %s: give each its own target (use '
                                  '{org}, {app_name} and {consumer_name} in the path)' % (names, consumer.target['label']))

    # -- plan ----------------------------------------------------------------------------------------

    def plan(self, claim: t.Callable[[Consumer], str | None] | None = None) -> None:
        """Claim each consumer's target for this run, read its staged slot and decide."""
        if claim is not None:
            for consumer in self.pending():
                other = claim(consumer)
                if other:
                    consumer.fail('plan', '%s is also the delivery target of %s in this run: give each consumer its own '
                                  'target (use {org}, {app_name} and {consumer_name} in the path)'
                                  % (consumer.target['label'], other))

        def read(consumer: Consumer) -> None:
            slot = self.api.slot(consumer)
            self.slots[consumer.id] = slot
            self.read_at[consumer.id] = time.monotonic()
            self._decide(consumer, slot)
        self._each(self.pending(), 'plan', read)

    def _decide(self, consumer: Consumer, slot: dict[str, t.Any] | None) -> None:
        state = slot.get('state') if slot else None
        state = state.capitalize() if isinstance(state, str) else state
        consumer.slot_before = state or 'empty'
        hist = self.history_entries.get(history.key(self.org, consumer.app_name, consumer.consumer_name)) or {}
        main_fp = fingerprint(consumer.main_key_before)
        since = history.promoted_since(hist, main_fp)
        if history.unrecorded_promotion(hist, main_fp):
            consumer.promoted_key = consumer.main_key_before
            if consumer.revoke_previous and state == 'Rotated':
                self._plan_revoke(consumer, slot, 'an interrupted run of this tool promoted the main key %s on %s without '
                                  'recording it; revoke_previous deletes the previous pair %s now'
                                  % (suffix(consumer.main_key_before), hist.get('promoting_since'), suffix(slot.get('key'))))
            else:
                consumer.decide(FINISH, 'an interrupted run of this tool promoted the main key %s on %s without '
                                'recording it: recorded now, nothing else to do'
                                % (suffix(consumer.main_key_before), hist.get('promoting_since')))
            if state == 'Rotated':
                consumer.grace_end = slot.get('expiration_date')
            return
        if state == 'Rotated' and consumer.revoke_previous and since:
            consumer.promoted_key = consumer.main_key_before
            self._plan_revoke(consumer, slot, 'this tool promoted the main key %s on %s and the previous pair %s is still '
                              'valid until %s: revoke_previous deletes it now'
                              % (suffix(consumer.main_key_before), since, suffix(slot.get('key')),
                                 slot.get('expiration_date') or '?'))
            return
        if state == 'Active':
            consumer.staged_id = slot.get('id')
            consumer.staged_expiration = slot.get('expiration_date')
            consumer.decide(RESUME, 'an Active staged pair %s (created %s, expires %s) is waiting: it is reused'
                            % (suffix(slot.get('key')), slot.get('created_date') or '?', slot.get('expiration_date') or '?'))
            return
        if history.within(since, float(self.options.get('min_age_days') or 0)):
            if state == 'Rotated':
                consumer.grace_end = slot.get('expiration_date')
            consumer.decide(SKIP, 'rotated by this tool on %s (less than sfdc_eca_min_age_days=%s days ago); the main key '
                            'is still that one' % (since, self.options.get('min_age_days')))
            return
        if state is None:
            consumer.decide(ROTATE, 'nothing staged: stage a new pair')
        elif state == 'Expired':
            consumer.decide(ROTATE, 'replaces the Expired staged pair %s' % suffix(slot.get('key')))
        elif state == 'Rotated':
            consumer.grace_end = slot.get('expiration_date')
            if consumer.replace_rotated:
                consumer.decide(ROTATE, 'replaces the Rotated previous pair %s (it stops working now instead of %s)'
                                % (suffix(slot.get('key')), slot.get('expiration_date') or 'at the end of its grace'))
            else:
                consumer.decide(BLOCKED, 'previous pair %s still in its grace (Rotated, valid until %s); replace_rotated: '
                                'true rotates now and revokes it' % (suffix(slot.get('key')),
                                                                     slot.get('expiration_date') or '?'))
        else:
            consumer.decide(ERROR, "the staged slot is in an unknown state '%s'; nothing was changed" % state)

    def _plan_revoke(self, consumer: Consumer, slot: dict[str, t.Any], reason: str) -> None:
        consumer.decide(REVOKE, reason)
        consumer.staged_id = slot.get('id')
        consumer.previous = {'key': slot.get('key') or '', 'secret': slot.get('secret') or '', 'id': slot.get('id') or ''}
        consumer.grace_end = slot.get('expiration_date')

    def plan_lines(self) -> list[str]:
        lines = []
        for consumer in self.consumers or self.entry_rows:
            text = '%s: %s' % (consumer.id, consumer.plan)
            if consumer.status == 'failed':
                text += ' -> failed: %s' % self.secrets.redact(consumer.error)
            elif consumer.plan_reason:
                text += ' (%s)' % consumer.plan_reason
            lines.append(text)
        return lines

    # -- prepare: stage, verify, deliver ----------------------------------------------------------

    def prepare(self) -> None:
        self._each(self.pending(ROTATE, RESUME), 'stage', self._stage)
        self._each(self.pending(ROTATE, RESUME), 'verify', self._verify)
        self._each([c for c in self.pending(ROTATE, RESUME) if c.verified], 'deliver', self._deliver)

    def _stage(self, consumer: Consumer) -> None:
        if consumer.plan == RESUME:
            slot = self.slots.get(consumer.id) or {}
            consumer.staged(slot, 'none')
            if not slot.get('secret'):
                consumer.fail('stage', 'the secret of the waiting Active pair %s could not be read (the calling user needs '
                              'the View Client Secret permission and the setting "Allow access to External Client App '
                              'consumer secrets via REST API")' % suffix(slot.get('key')))
            return
        fresh = time.monotonic() - self.read_at.get(consumer.id, float('-inf')) < self.SLOT_FRESH_SECONDS
        item, action = self.api.stage(consumer, (self.slots.get(consumer.id),) if fresh else None)
        state = item.get('state')
        consumer.staged(item, action)
        if isinstance(state, str) and state.capitalize() != 'Active':
            consumer.fail('stage', 'the staged slot holds a %s pair %s, not an Active one' % (state, suffix(item.get('key'))))
        elif not item.get('key') or not item.get('secret'):
            consumer.fail('stage', 'the new staged pair %s came without its secret (the calling user needs the View Client '
                          'Secret permission and the setting "Allow access to External Client App consumer secrets via '
                          'REST API")' % suffix(item.get('key')))

    def _verify(self, consumer: Consumer) -> None:
        method = consumer.verify.get('method')
        if method == 'none':
            consumer.passed_verification()
            return
        attempts = 1 + max(0, int(self.options.get('verify_retries') or 0))
        delay = float(self.options.get('verify_delay') or 0)
        verdict, detail = TRANSIENT, ''
        for attempt in range(attempts):
            if attempt:
                self.sleep(delay)
            verdict, detail = self.api.try_pair(consumer.pair['key'], consumer.pair['secret'], method,
                                                consumer.verify.get('jwt') or {})
            if verdict in (OK, UNUSABLE):
                break
        if verdict == OK:
            consumer.passed_verification()
        elif verdict == REFUSED:
            consumer.fail('verify', 'the new pair %s was refused: %s' % (suffix(consumer.pair['key']), detail))
        elif verdict == UNUSABLE:
            consumer.fail('verify', 'the new pair %s could not be verified with %s: %s'
                          % (suffix(consumer.pair['key']), method, detail))
        else:
            consumer.fail('verify', 'the new pair %s could not be verified, the token endpoint did not answer usefully '
                          '(%s); it is kept staged and the next run verifies it again'
                          % (suffix(consumer.pair['key']), detail), transient=True)

    def credential(self, consumer: Consumer) -> dict[str, t.Any]:
        """What a delivery receives: sfdc_eca_credential (plain strings: it is serialized as YAML or JSON)."""
        return credential({'instance_url': self.instance_url, 'org': self.org, 'app_name': consumer.app_name,
                           'app_id': consumer.app_id, 'consumer_name': consumer.consumer_name,
                           'consumer_id': consumer.consumer_id, 'key': consumer.pair.get('key'),
                           'secret': consumer.pair.get('secret')})

    def _deliver(self, consumer: Consumer) -> None:
        target = self.targets[consumer.id]
        if target.kind == 'tasks_file':
            return
        consumer.delivering()
        try:
            target.write(self.credential(consumer))
        except DeliveryError as exc:
            consumer.delivered(exc.reached)
            consumer.fail('deliver', 'delivering to %s failed: %s' % (target.label, self.secrets.redact(str(exc))))
            return
        try:
            held = target.read_back()
        except DeliveryError as exc:
            consumer.delivered(MAYBE_REACHED)
            consumer.fail('deliver', 'reading %s back failed: %s' % (target.label, self.secrets.redact(str(exc))))
            return
        if held != consumer.pair['key']:
            consumer.delivered(NOT_REACHED)
            consumer.fail('deliver', '%s holds %s after the write, not the new pair %s'
                          % (target.label, suffix(held) or 'nothing', suffix(consumer.pair['key'])))
            return
        consumer.delivered(REACHED)

    # -- the user's tasks files ----------------------------------------------------------------------

    def steps(self) -> list[dict[str, t.Any]]:
        """The tasks files the role runs before this org can finish, in order (deliveries, then hooks)."""
        out = []
        for consumer in self.pending(ROTATE, RESUME):
            if not consumer.verified:
                continue
            deliver_step = None
            if (consumer.target or {}).get('kind') == 'tasks_file':
                deliver_step = '%s#deliver' % consumer.id
                out.append({'id': deliver_step, 'consumer': consumer.id, 'kind': 'deliver',
                            'file': consumer.target['label'], 'after': None, 'credential': self.credential(consumer)})
            if consumer.verify.get('hook'):
                out.append({'id': '%s#hook' % consumer.id, 'consumer': consumer.id, 'kind': 'hook',
                            'file': consumer.verify['hook'], 'after': deliver_step, 'credential': self.credential(consumer)})
        return out

    def took_steps(self, steps: list[dict[str, t.Any]], failed: t.Mapping[str, t.Any] | None, ran: bool) -> None:
        """Fold in what the role's tasks files did: ``failed`` {step id: failed task name}; ``ran`` false when the
        role never reported (the consumers then stay unpromoted, their pairs kept)."""
        failed = dict(failed or {})
        by_id = dict((c.id, c) for c in self.consumers)
        for step in steps:
            consumer = by_id.get(step['consumer'])
            if consumer is None or consumer.status != PENDING:
                continue
            if step['kind'] == 'deliver':
                consumer.delivering()
            if not ran:
                consumer.fail(step['kind'] if step['kind'] == 'deliver' else 'hook',
                              'the tasks files of this org did not report back (the play stopped before they finished); '
                              'the staged pair %s is kept and the next run resumes it' % suffix(consumer.pair.get('key')))
                continue
            if step['id'] in failed:
                what = 'delivery tasks file' if step['kind'] == 'deliver' else 'verification hook'
                consumer.fail('deliver' if step['kind'] == 'deliver' else 'hook',
                              '%s %s failed at task "%s"; the staged pair %s is kept unpromoted (an integration may '
                              'already hold it) and the next run resumes it'
                              % (what, step['file'], self.secrets.redact(failed[step['id']]) or '?',
                                 suffix(consumer.pair.get('key'))))
                continue
            if step['kind'] == 'deliver':
                consumer.delivered(REACHED)
            else:
                consumer.phase = 'hook'

    # -- finish: roll back, promote, record, revoke, prove -------------------------------------------

    def finish(self) -> None:
        self._roll_back()
        self._promote()
        self._revoke()

    def _roll_back(self) -> None:
        for consumer in self.consumers:
            if not consumer.may_delete_staged():
                continue
            try:
                # already gone (404) counts as deleted: the slot no longer holds the pair
                self.api.delete(consumer, consumer.staged_id, consumer.pair.get('key'))
            except EcaLimitExceededError as exc:
                raise OrgStop('plan', self.secrets.redact(str(exc)) or '', exc.status)
            except EcaError as exc:
                consumer.rolled_back_now(False, self.secrets.redact(str(exc)))
                continue
            consumer.rolled_back_now(True)

    def _promote(self) -> None:
        ready = [c for c in self.consumers if c.promotable()]
        if ready:
            try:
                self.history.record_intent(self.org, [(c.app_name, c.consumer_name, c.instance_url,
                                                       fingerprint(c.pair['key'])) for c in ready])
            except history.HistoryError as exc:
                for consumer in ready:
                    consumer.fail('promote', '%s; nothing was promoted, the next run resumes' % exc)
                ready = []

        def promote(consumer: Consumer) -> None:
            try:
                main_key, slot = self.api.promote(consumer, return_secret=consumer.revoke_previous)
            except EcaError as exc:
                consumer.fail('promote', 'promoting failed: %s; both pairs stay valid and the next run resumes with the '
                              'staged pair %s' % (self.secrets.redact(str(exc)), suffix(consumer.pair.get('key'))),
                              getattr(exc, 'status', None), transient(exc))
                return
            if main_key and fingerprint(main_key) != fingerprint(consumer.pair['key']):
                consumer.fail('promote', 'after promoting, the main key is %s, not the staged pair %s'
                              % (suffix(main_key), suffix(consumer.pair['key'])))
                return
            consumer.promoted_now(main_key, slot)
        for consumer in ready:
            if consumer.status == PENDING:
                try:
                    promote(consumer)
                except EcaLimitExceededError as exc:
                    raise OrgStop('promote', self.secrets.redact(str(exc)) or '', exc.status)
        for consumer in self.pending(FINISH, REVOKE):
            consumer.finished_earlier(consumer.main_key_before or '')
        done = [c for c in self.consumers if c.promoted]
        if done:
            try:
                self.history.record_rows(self.org, self.rows(finished=True, only=done))
            except history.HistoryError as exc:
                self.warnings.append('%s: the report merges this run\'s rows into history.json' % exc)

    def _revoke(self) -> None:
        def revoke(consumer: Consumer) -> None:
            previous = consumer.previous
            if not previous.get('key'):
                consumer.fail('revoke', 'the new pair %s is promoted and delivered, but the previous pair could not be '
                              'read to revoke it: delete the Rotated pair with sfdc.eca.eca_staged_credential state=absent'
                              % suffix(consumer.pair.get('key') or consumer.promoted_key))
                return
            staged_id = consumer.staged_id if consumer.plan == REVOKE else previous.get('id') or None
            try:
                self.api.delete(consumer, staged_id, previous['key'])
            except EcaError as exc:
                consumer.fail('revoke', 'the new pair %s is promoted and delivered, but revoking the previous pair %s '
                              'failed: %s' % (suffix(consumer.pair.get('key') or consumer.promoted_key),
                                              suffix(previous['key']), self.secrets.redact(str(exc))),
                              getattr(exc, 'status', None), transient(exc))
                return
            consumer.revoked_now()
            self._prove(consumer)
        self._each([c for c in self.pending() if c.revoke_previous and (c.promoted or c.plan == REVOKE)
                    and c.plan != FINISH], 'revoke', revoke)
        for consumer in self.consumers:
            consumer.done()

    def _prove(self, consumer: Consumer) -> None:
        previous = consumer.previous
        if not previous.get('secret'):
            return
        attempts = 1 + max(0, int(self.options.get('verify_retries') or 0))
        verdict, detail = TRANSIENT, ''
        for attempt in range(attempts):
            if attempt:
                self.sleep(float(self.options.get('verify_delay') or 0))
            verdict, detail = self.api.try_pair(previous['key'], previous['secret'], 'client_credentials', {})
            if verdict in (REFUSED, UNUSABLE):
                break
        if verdict == REFUSED:
            consumer.old_pair_refused = True
        elif verdict == OK:
            consumer.old_pair_refused = False
            consumer.fail('revoke', 'the previous pair %s still authenticates after it was deleted' % suffix(previous['key']))
        else:
            consumer.old_pair_refused = None
            consumer.error = 'could not check that the previous pair is refused: %s' % detail

    # -- results -------------------------------------------------------------------------------------

    def rows(self, finished: bool = True, only: list[Consumer] | None = None) -> list[dict[str, t.Any]]:
        end = iso(now()) if finished else None
        start = self.started
        began, ended = parse_time(start), parse_time(end)
        duration = round((ended - began).total_seconds(), 2) if began and ended else None
        consumers = only if only is not None else (self.consumers or self.entry_rows)
        return [c.row(start, end, duration, self.check_mode, self.secrets) for c in consumers]

    # -- hand-off (no_log data) ----------------------------------------------------------------------

    def handoff(self) -> dict[str, t.Any]:
        return {'consumers': [c.state() for c in self.consumers], 'entries': [c.state() for c in self.entry_rows],
                'token': dict(self.api.client.token_info or {}) if self.api else {}, 'started': self.started,
                'api_calls': self.api_calls, 'warnings': list(self.warnings)}

    @classmethod
    def resume(cls, org: str, options: t.Mapping[str, t.Any], data: t.Mapping[str, t.Any], **kw: t.Any) -> 'OrgRotation':
        run = cls(org, options, **kw)
        run.consumers = [Consumer.from_state(c) for c in data.get('consumers') or []]
        run.entry_rows = [Consumer.from_state(c) for c in data.get('entries') or []]
        run.started = data.get('started') or run.started
        run.calls_before = int(data.get('api_calls') or 0)
        run.warnings = list(data.get('warnings') or [])
        for consumer in run.consumers:
            run.secrets.add(consumer.pair.get('secret'), consumer.previous.get('secret'))
        try:
            run.history = history.History(options.get('state_dir') or '.',
                                          run.deliveries.history_store(options.get('history_store')), run.history_cache)
        except ConfigError as exc:
            run.stop('promote', '%s; nothing was promoted, the next run resumes' % exc)
        try:
            run.api = OrgApi(options.get('connection') or {}, run.secrets, run.environment, run.sleep)
            run.api.authenticate(data.get('token'))
        except EcaError as exc:
            run.stop('promote', 'cannot reach the org again after the tasks files: %s' % run.secrets.redact(str(exc)))
        return run
