# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of one consumer's rotation and the rules that keep credentials safe.

A ``Consumer`` moves through its phases only by the methods below, and each method checks that the
move is allowed. Two rules live here and nowhere else:

- ``may_delete_staged()``: this tool deletes a staged pair only when this very run staged it, no
  delivery target may have received it, and the failure is definitive (the token endpoint refused the
  pair, or the API answered that the pair cannot be used). A transient failure (5xx, 429, timeouts,
  resets, TLS errors) never leads to a DELETE, and neither does anything after a delivery started.
- ``row()``: the report row, built from a fixed list of secret-free fields.

Secrets (the new pair's secret, the previous pair's secret) live only in ``pair`` and ``previous``,
which ``row()`` never reads and ``Secrets`` redacts from every message.
"""

from __future__ import annotations

import datetime
import hashlib
import typing as t

# plans
ROTATE = 'rotate'        # stage a new pair (the slot is empty, Expired, or Rotated with replace_rotated)
RESUME = 'resume'        # an Active staged pair waits: verify, deliver and promote it
REVOKE = 'revoke'        # this tool promoted the main key and a requested revoke did not happen yet
FINISH = 'finish'        # a promotion of this tool happened but was not recorded (its reply was lost)
SKIP = 'skip'            # rotated by this tool within min_age_days
BLOCKED = 'blocked'      # the previous pair is still in its grace and replace_rotated is off
ERROR = 'error'          # the consumer cannot be planned (the error says why)
PLANS = (ROTATE, RESUME, REVOKE, FINISH, SKIP, BLOCKED, ERROR)
PLANS_TO_STAGE = (ROTATE, RESUME)
PLANS_TO_RUN = (ROTATE, RESUME, REVOKE, FINISH)

# status
PENDING = 'pending'
DONE = 'done'
FAILED = 'failed'
NOT_RUN = 'not_run'

# phases, in order
PHASES = ('options', 'authenticate', 'plan', 'stage', 'verify', 'deliver', 'hook', 'promote', 'revoke', 'unexpected')

# what a delivery target may hold after a delivery attempt
NOT_ATTEMPTED = 'not_attempted'
NOT_REACHED = 'not_reached'      # certainly not written (failed before the atomic rename, or read back without it)
MAYBE_REACHED = 'maybe_reached'  # a write whose outcome is unknown (a tasks file failed, a store did not answer)
REACHED = 'reached'

OUTCOMES = ('rotated', 'skipped', 'blocked', 'failed', 'planned', 'not_run')

ROW_FIELDS = ('org', 'instance_url', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'plan', 'plan_reason',
              'outcome', 'phase', 'old_key', 'new_key', 'slot_before', 'state', 'expiry', 'grace_end',
              'staged_expiration', 'rolled_back', 'revoked', 'old_pair_refused', 'delivered_to', 'error',
              'started', 'finished', 'duration', 'last_rotated')

REDACTED = '********'


class TransitionError(Exception):
    """A phase change the rules do not allow: a bug in the engine, never an API answer."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment: datetime.datetime | None) -> str | None:
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ') if moment else None


def parse_time(value: t.Any) -> datetime.datetime | None:
    """ISO 8601 (Salesforce's +0000, Z or +00:00) -> aware datetime, or None."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    text = str(value).strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    if len(text) > 5 and text[-5] in '+-' and text[-3] != ':':
        text = text[:-2] + ':' + text[-2:]
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def suffix(key: str | None) -> str | None:
    """What reports and messages show of a consumer key: its last four characters."""
    return ('...' + key[-4:]) if key else None


def fingerprint(key: str | None) -> str | None:
    """A consumer key's identity in the history file, not the key itself."""
    if not key:
        return None
    return hashlib.sha256(str(key).encode('utf-8')).hexdigest()[:32]


class Secrets:
    """Every secret an org's run has seen; ``redact`` masks them in any text that leaves the run."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, *values: t.Any) -> None:
        for value in values:
            if isinstance(value, str) and len(value) >= 4:
                self._values.add(value)

    def redact(self, text: t.Any) -> str | None:
        if text is None:
            return None
        text = str(text)
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text


class Consumer:
    """One consumer of one app in one org, from its plan to its report row."""

    def __init__(self, org: str, app_name: str, consumer_name: str | None, instance_url: str | None = None,
                 app_id: str | None = None, consumer_id: str | None = None, entry_index: int = 0) -> None:
        self.org = org
        self.app_name = app_name
        self.consumer_name = consumer_name
        self.instance_url = instance_url
        self.app_id = app_id
        self.consumer_id = consumer_id
        self.entry_index = entry_index     # which sfdc_eca_rotations entry it comes from
        # options of its entry
        self.replace_rotated = False
        self.revoke_previous = False
        self.verify: dict[str, t.Any] = {'method': 'client_credentials', 'hook': ''}   # hook: a tasks file
        self.target: dict[str, t.Any] | None = None   # {kind, label, identity}; the live object is the engine's
        # plan
        self.plan: str | None = None
        self.plan_reason = ''
        self.status = PENDING
        self.phase = 'plan'
        self.error: str | None = None
        self.http_status: int | None = None
        self.last_rotated: str | None = None
        # the slot and keys
        self.slot_before: str | None = None
        self.slot_after: str | None = None
        self.main_key: str | None = None    # the consumer's main key now (promote updates it)
        self.main_key_before: str | None = None   # the main key this run found
        self.staged_id: str | None = None
        self.pair: dict[str, str] = {}      # the new pair: key, secret
        self.previous: dict[str, str] = {}  # the previous main pair after promote (for the revoke proof): key, secret
        self.staged_by_run = False
        self.staged_expiration: str | None = None
        self.grace_end: str | None = None
        # progress
        self.verified = False
        self.transient = False              # the last failure may go away by itself (5xx, 429, timeout, reset)
        self.delivery = NOT_ATTEMPTED
        self.promoted = False
        self.rolled_back: bool | None = None
        self.revoked: bool | None = None
        self.old_pair_refused: bool | None = None
        self.promoted_key: str | None = None   # REVOKE/FINISH plans: the main key this tool promoted

    # -- identity ------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return '%s/%s' % (self.app_name, self.consumer_name or '*')

    @property
    def pending(self) -> bool:
        return self.status == PENDING

    def wants(self, *plans: str) -> bool:
        return self.status == PENDING and self.plan in plans

    # -- transitions ---------------------------------------------------------------------------------

    def _require(self, condition: bool, what: str) -> None:
        if not condition:
            raise TransitionError('%s: cannot %s (plan %s, status %s, phase %s)'
                                  % (self.id, what, self.plan, self.status, self.phase))

    def decide(self, plan: str, reason: str = '') -> None:
        self._require(self.status == PENDING and plan in PLANS, 'plan %s' % plan)
        self.plan = plan
        self.plan_reason = reason
        if plan not in PLANS_TO_RUN:
            self.status = FAILED if plan == ERROR else DONE
            if plan == ERROR:
                self.error = reason

    def fail(self, phase: str, message: str, http_status: int | None = None, transient: bool = False) -> None:
        """The consumer stops here; ``transient`` when the failure may go away by itself."""
        self._require(self.status in (PENDING, DONE), 'fail')
        self.status = FAILED
        self.phase = phase
        self.error = message
        self.transient = transient
        if http_status is not None:
            self.http_status = http_status

    def hold(self, reason: str) -> None:
        """Not run at all (the canary failed, the org's options are invalid before any call)."""
        self.status = NOT_RUN
        self.plan = None
        self.phase = None  # type: ignore[assignment]
        self.error = reason

    def staged(self, item: dict[str, t.Any], action: str) -> None:
        """The slot holds the pair this consumer goes on with (staged now, or the Active one resumed)."""
        self._require(self.wants(*PLANS_TO_STAGE), 'take a staged pair')
        self.phase = 'stage'
        self.staged_id = item.get('id')
        self.pair = {'key': item.get('key') or '', 'secret': item.get('secret') or ''}
        self.staged_expiration = item.get('expiration_date')
        self.staged_by_run = action in ('staged', 'replaced_expired', 'replaced_rotated')
        self.slot_after = 'Active'
        if action == 'none' and self.plan == ROTATE:
            self.plan = RESUME
            self.plan_reason = 'an Active pair was staged since the plan read the slot: it is reused'

    def passed_verification(self) -> None:
        self._require(self.wants(*PLANS_TO_STAGE) and bool(self.pair.get('key')), 'pass verification')
        self.phase = 'verify'
        self.verified = True

    def delivering(self) -> None:
        """A delivery starts: from now on the pair may be where an integration reads it."""
        self._require(self.wants(*PLANS_TO_STAGE) and self.verified, 'deliver an unverified pair')
        self.phase = 'deliver'
        if self.delivery == NOT_ATTEMPTED:
            self.delivery = MAYBE_REACHED

    def delivered(self, reached: str) -> None:
        self._require(self.phase in ('deliver', 'hook'), 'record a delivery')
        self.delivery = reached

    def promotable(self) -> bool:
        """Promote only a verified pair that its target holds (read back), with a known staged id."""
        return (self.wants(*PLANS_TO_STAGE) and self.verified and self.delivery == REACHED
                and bool(self.staged_id) and bool(self.pair.get('key')))

    def may_delete_staged(self) -> bool:
        """Whether this tool may delete the staged pair of a failed consumer (see the module docstring)."""
        return (self.status == FAILED and self.staged_by_run and not self.promoted and not self.transient
                and self.delivery in (NOT_ATTEMPTED, NOT_REACHED) and bool(self.staged_id)
                and self.phase in ('stage', 'verify', 'deliver'))

    def rolled_back_now(self, deleted: bool, message: str | None = None) -> None:
        self._require(self.may_delete_staged(), 'delete the staged pair')
        self.rolled_back = deleted
        if deleted:
            self.slot_after = 'empty'
        elif message:
            self.error = '%s; deleting the staged pair %s failed too: %s' % (self.error, suffix(self.pair.get('key')), message)

    def promoted_now(self, main_key: str | None, slot: dict[str, t.Any] | None) -> None:
        self._require(self.promotable(), 'promote')
        self.phase = 'promote'
        self.promoted = True
        self.main_key = main_key or self.pair.get('key')
        self.slot_after = (slot or {}).get('state') or 'Rotated'
        self.grace_end = (slot or {}).get('expiration_date')
        if slot and slot.get('key') and str(slot.get('state') or '').capitalize() == 'Rotated':
            self.previous = {'key': slot['key'], 'secret': slot.get('secret') or '', 'id': slot.get('id') or ''}

    def finished_earlier(self, main_key: str) -> None:
        """A promotion of an earlier run that was not recorded: it counts as this run's rotation."""
        self._require(self.wants(FINISH, REVOKE), 'record an earlier promotion')
        self.promoted = True
        self.main_key = main_key

    def revoked_now(self) -> None:
        self._require(self.status == PENDING and (self.promoted or self.plan == REVOKE), 'revoke')
        self.phase = 'revoke'
        self.revoked = True
        self.slot_after = 'empty'
        self.grace_end = None

    def done(self) -> None:
        if self.status == PENDING:
            self.status = DONE

    # -- outcome and report row ----------------------------------------------------------------------

    def outcome(self, check_mode: bool = False) -> str:
        if self.status == FAILED:
            return 'failed'
        if self.status == NOT_RUN:
            return 'not_run'
        if check_mode:
            return 'planned'
        if self.plan == SKIP:
            return 'skipped'
        if self.plan == BLOCKED:
            return 'blocked'
        if self.promoted or self.plan == REVOKE:
            return 'rotated'
        return 'failed'

    def row(self, started: str | None, finished: str | None, duration: float | None, check_mode: bool = False,
            secrets: Secrets | None = None) -> dict[str, t.Any]:
        outcome = self.outcome(check_mode)
        new_key = self.pair.get('key') or self.promoted_key
        old_key = self.previous.get('key') if self.plan == REVOKE else self.main_key_before
        state = self.slot_after if (outcome in ('rotated',) or (outcome == 'failed' and self.slot_after)) else self.slot_before
        row = {
            'org': self.org, 'instance_url': self.instance_url, 'app_name': self.app_name, 'app_id': self.app_id,
            'consumer_name': self.consumer_name, 'consumer_id': self.consumer_id, 'plan': self.plan,
            'plan_reason': self.plan_reason, 'outcome': outcome,
            'phase': self.phase if outcome in ('failed', 'rotated') else (self.phase if outcome == 'not_run' else 'plan'),
            'old_key': suffix(old_key), 'new_key': suffix(new_key) if self.plan != SKIP else None,
            'slot_before': self.slot_before, 'state': state,
            'expiry': self.grace_end if state == 'Rotated' else (self.staged_expiration if state == 'Active' else None),
            'grace_end': self.grace_end, 'staged_expiration': self.staged_expiration,
            'rolled_back': self.rolled_back, 'revoked': self.revoked, 'old_pair_refused': self.old_pair_refused,
            'delivered_to': (self.target or {}).get('label') if self.delivery in (REACHED, MAYBE_REACHED) or (
                self.promoted and self.plan in PLANS_TO_STAGE) else None,
            'error': self.error, 'started': started, 'finished': finished, 'duration': duration,
            'last_rotated': self.last_rotated,
        }
        if outcome == 'failed' and not row['error']:
            row['error'] = 'the rotation stopped before promoting (phase %s)' % self.phase
        if secrets is not None:
            for name in ('error', 'plan_reason'):
                row[name] = secrets.redact(row[name])
        # the history keeps a fingerprint of the promoted key, the report never
        row['_new_key_fp'] = fingerprint(self.main_key if self.plan in (FINISH, REVOKE) else new_key) \
            if outcome == 'rotated' else None
        return row

    # -- hand-off between tasks (no_log data: holds the pair) ----------------------------------------

    STATE = ('org', 'app_name', 'consumer_name', 'instance_url', 'app_id', 'consumer_id', 'entry_index',
             'replace_rotated', 'revoke_previous', 'verify', 'target', 'plan', 'plan_reason', 'status',
             'phase', 'error', 'http_status', 'last_rotated', 'slot_before', 'slot_after', 'main_key',
             'main_key_before', 'staged_id', 'pair', 'previous', 'staged_by_run', 'staged_expiration', 'grace_end',
             'verified', 'transient', 'delivery', 'promoted', 'rolled_back', 'revoked', 'old_pair_refused',
             'promoted_key')

    def state(self) -> dict[str, t.Any]:
        return dict((name, getattr(self, name)) for name in self.STATE)

    @classmethod
    def from_state(cls, data: t.Mapping[str, t.Any]) -> 'Consumer':
        consumer = cls(data.get('org') or '', data.get('app_name') or '', data.get('consumer_name'))
        for name in cls.STATE:
            if name in data:
                setattr(consumer, name, data[name])
        return consumer
