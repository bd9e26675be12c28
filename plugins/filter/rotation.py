# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the sfdc.eca.rotation role: plan, per-phase bookkeeping, records, history, canary gate.

The role keeps one list of per-consumer work items per org. Items never hold a secret: secrets live
only in the registered results of ``no_log`` tasks and in a ``no_log`` fact the role clears at the end.
Every message copied into an item goes through ``_redact`` with the secrets of the run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: rotation_plan
short_description: internal filters of the sfdc.eca.rotation role
description:
  - Plan, bookkeeping and record filters used by the C(sfdc.eca.rotation) role. Not a public API.
author: sfdc.eca maintainers
"""

import datetime
import hashlib
import json
import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean

PLANS_TO_RUN = ('rotate', 'resume', 'revoke')
# 'revoke' finishes the revoke an earlier run of this tool was asked for and did not get to
PLANS_TO_STAGE = ('rotate', 'resume')
STAGED_BY_RUN_ACTIONS = ('staged', 'replaced_expired', 'replaced_rotated')
VERIFY_METHODS = ('client_credentials', 'jwt', 'none')
PLACEHOLDERS = ('{org}', '{app_name}', '{consumer_name}')
REDACTED = '********'
MASKED = '********'
NO_LOG_MARKER = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


# ---------------------------------------------------------------------------------------------
# small helpers


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _parse_time(value):
    """ISO 8601 (Salesforce's +0000 or Z or +00:00) -> aware datetime, or None."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    text = to_text(value).strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    if len(text) > 5 and text[-5] in '+-' and text[-3] != ':':
        text = text[:-2] + ':' + text[-2:]
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _suffix(key):
    return ('...' + key[-4:]) if key else None


def _fingerprint(key):
    """A consumer key's identity for the history file: not the key itself."""
    if not key:
        return None
    return hashlib.sha256(to_text(key).encode('utf-8')).hexdigest()[:32]


def _redact(text, secrets):
    if text is None:
        return None
    text = to_text(text)
    for secret in secrets or ():
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _error_of(result):
    """A secret-free one-line message of a failed module result (the modules' msg is secret-free)."""
    if not isinstance(result, dict):
        return to_text(result)
    if result.get('censored'):
        return 'the task failed (its output is hidden by no_log)'
    msg = result.get('msg') or result.get('message') or 'failed'
    parts = [to_text(msg).strip()]
    for field in ('error', 'error_description'):
        value = result.get(field)
        if value and to_text(value) not in parts[0]:
            parts.append('%s: %s' % (field, to_text(value)))
    return ' '.join(parts).replace('\n', ' ')


def _failed(result):
    return bool(isinstance(result, dict) and (result.get('failed') or result.get('unreachable')))


def _results(registered):
    """The per-item results of a registered loop task ([] when skipped or undefined)."""
    if not isinstance(registered, dict):
        return []
    results = registered.get('results')
    if results is None:
        return []
    return [r for r in results if isinstance(r, dict) and not r.get('skipped')]


def _item_id(result, loop_var='item'):
    item = result.get(loop_var) or {}
    return item.get('id') if isinstance(item, dict) else None


def _fill(path, org, app_name, consumer_name):
    return (path.replace('{org}', org or '').replace('{app_name}', app_name or '')
            .replace('{consumer_name}', consumer_name or ''))


def _pick(entry, name, options, default=None):
    value = entry.get(name)
    if value is None:
        value = options.get(name)
    return default if value is None else value


def _pick_bool(entry, name, options, default=False):
    """A yes/no option as AWX surveys and -e give it too: the string 'false' must mean False."""
    value = _pick(entry, name, options, default)
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise AnsibleFilterError("%s must be true or false, got '%s'." % (name, value))


# ---------------------------------------------------------------------------------------------
# plan


def _history_entries(history):
    """{org/app/consumer: entry} from the history file's text or dict, or a list of them (merged:
    per key, the entry with the latest last_rotated wins, then the later one)."""
    if isinstance(history, (list, tuple)):
        merged = {}
        for part in history:
            for key, entry in _history_entries(part).items():
                old = merged.get(key)
                if old is None or to_text(entry.get('last_rotated') or '') >= to_text(old.get('last_rotated') or ''):
                    merged[key] = entry
        return merged
    if not history:
        return {}
    if isinstance(history, (str, bytes)):
        text = to_text(history).strip()
        if not text:
            return {}
        try:
            history = json.loads(text)
        except ValueError as exc:
            raise AnsibleFilterError('The rotation history file is not valid JSON (%s): fix or remove it.' % exc)
    if not isinstance(history, dict):
        raise AnsibleFilterError('The rotation history file must hold a JSON object, got %s.' % type(history).__name__)
    consumers = history.get('consumers', {})
    return consumers if isinstance(consumers, dict) else {}


def history_key(org, app_name, consumer_name):
    return '%s/%s/%s' % (org, app_name, consumer_name)


def _check_deliver(entry, options, org, app_name, many):
    """-> (deliver dict with paths resolved, error or None). Paths are checked on the controller."""
    deliver = entry.get('deliver')
    if not isinstance(deliver, dict) or not deliver:
        return None, "rotation of app '%s': deliver is missing: set deliver.tasks_file or deliver.vault_file" % app_name
    tasks_file = deliver.get('tasks_file')
    vault_file = deliver.get('vault_file')
    if bool(tasks_file) == bool(vault_file):
        return None, ("rotation of app '%s': deliver must set exactly one of tasks_file and vault_file, got %s"
                      % (app_name, ', '.join(sorted(k for k in deliver if deliver.get(k))) or 'neither'))
    if tasks_file:
        path = os.path.abspath(os.path.expanduser(to_text(tasks_file)))
        if not os.path.isfile(path):
            return None, "rotation of app '%s': deliver.tasks_file '%s' does not exist on the controller" % (app_name, tasks_file)
        return {'backend': 'tasks_file', 'tasks_file': path}, None
    if many and '{consumer_name}' not in to_text(vault_file):
        return None, ("rotation of app '%s' covers several consumers: deliver.vault_file '%s' must contain {consumer_name} "
                      "so that each consumer gets its own file" % (app_name, vault_file))
    password_file = deliver.get('vault_password_file') or options.get('vault_password_file')
    if not password_file:
        return None, ("rotation of app '%s': deliver.vault_file needs a vault password: set deliver.vault_password_file "
                      "or sfdc_eca_vault_password_file" % app_name)
    password_file = os.path.abspath(os.path.expanduser(to_text(password_file)))
    if not os.path.isfile(password_file):
        return None, "rotation of app '%s': vault password file '%s' does not exist on the controller" % (app_name, password_file)
    vault_id = deliver.get('vault_id') or options.get('vault_id') or 'default'
    return {'backend': 'vault_file', 'vault_file': os.path.abspath(os.path.expanduser(to_text(vault_file))),
            'vault_password_file': password_file, 'vault_id': to_text(vault_id)}, None


def _check_verify(entry, options, app_name):
    method = _pick(entry, 'verify', options, 'client_credentials')
    if method not in VERIFY_METHODS:
        return None, None, "rotation of app '%s': verify '%s' is not one of %s" % (app_name, method, ', '.join(VERIFY_METHODS))
    jwt = {}
    if method == 'jwt':
        jwt = dict(options.get('verify_jwt') or {})
        jwt.update(entry.get('verify_jwt') or {})
        if not jwt.get('username') or not (jwt.get('private_key_file') or jwt.get('private_key') or jwt.get('inline_key')):
            return None, None, ("rotation of app '%s': verify jwt needs verify_jwt.username and verify_jwt.private_key_file "
                                "(or sfdc_eca_verify_jwt)" % app_name)
    hook = _pick(entry, 'verify_tasks_file', options, '') or ''
    if hook:
        hook = os.path.abspath(os.path.expanduser(to_text(hook)))
        if not os.path.isfile(hook):
            return None, None, "rotation of app '%s': verify_tasks_file '%s' does not exist on the controller" % (app_name, hook)
    # The JWT settings hold no secret except an inline private_key, which the item must not carry.
    verify = {'method': method, 'tasks_file': hook}
    if method == 'jwt':
        verify['jwt'] = dict((k, v) for k, v in jwt.items() if k != 'private_key' and k != 'private_key_passphrase')
        verify['jwt']['inline_key'] = bool(jwt.get('private_key') or jwt.get('inline_key'))
    return verify, hook, None


def _new_item(org, instance_url, entry, app_name, consumer_name, options):
    return {
        'id': '%s/%s' % (app_name, consumer_name or '*'),
        'org': org,
        'instance_url': instance_url,
        'app_name': app_name,
        'app_id': entry.get('app_id'),
        'consumer_name': consumer_name,
        'consumer_id': None,
        'plan': 'error',
        'plan_reason': '',
        'slot_before': None,
        'old_key': None,
        'old_key_fp': None,
        'new_key': None,
        'new_key_fp': None,
        'staged_id': None,
        'staged_by_run': False,
        'stage_action': None,
        'staged_expiration': None,
        'grace_end': None,
        'slot_after': None,
        'status': 'failed',
        'phase': 'plan',
        'error': None,
        'delivered': False,
        'verified': False,
        'promoted': False,
        'rolled_back': None,
        'revoke_previous': _pick_bool(entry, 'revoke_previous', options),
        'replace_rotated': _pick_bool(entry, 'replace_rotated', options),
        'revoked': None,
        'old_pair_refused': None,
        'deliver': None,
        'verify': None,
        'last_rotated': None,
        'http_status': None,
    }


def _decide(item, consumer, hist, options, now):
    staged = consumer.get('staged_credential') or None
    state = staged.get('state') if staged else None
    item['slot_before'] = state or 'empty'
    min_age = float(options.get('min_age_days') or 0)
    recent = None
    if hist and hist.get('key_fp') and hist.get('key_fp') == item['old_key_fp'] and hist.get('last_rotated'):
        when = _parse_time(hist['last_rotated'])
        if when is not None and min_age > 0 and now - when < datetime.timedelta(days=min_age):
            recent = when
    promoted_by_tool = bool(hist) and item['old_key_fp'] is not None and item['old_key_fp'] in (
        hist.get('key_fp'), hist.get('promoting_fp'))
    if state == 'Rotated' and item['revoke_previous'] and promoted_by_tool:
        # This tool promoted the current main key and the previous pair is still in its grace: the run
        # that promoted it stopped before its revoke (finding F8). Finish that revoke; rotate nothing.
        item['plan'] = 'revoke'
        item['plan_reason'] = ('this tool promoted the main key %s on %s and the previous pair %s is still valid until %s: '
                               'revoke_previous deletes it now' % (item['old_key'], hist.get('last_rotated') or '?',
                                                                   _suffix(staged.get('key')), staged.get('expiration_date') or '?'))
        item['new_key'], item['new_key_fp'] = item['old_key'], item['old_key_fp']
        item['old_key'] = _suffix(staged.get('key'))
        item['grace_end'] = staged.get('expiration_date')
    elif state == 'Active':
        item['plan'] = 'resume'
        item['plan_reason'] = ('an Active staged pair %s (created %s, expires %s) is waiting: it is reused'
                               % (_suffix(staged.get('key')), staged.get('created_date') or '?', staged.get('expiration_date') or '?'))
        item['staged_id'] = staged.get('id')
        item['staged_expiration'] = staged.get('expiration_date')
    elif recent is not None:
        item['plan'] = 'skip'
        item['plan_reason'] = ('rotated by this tool on %s (less than sfdc_eca_min_age_days=%s days ago); the main key is still that one'
                               % (_iso(recent), options.get('min_age_days')))
        if state == 'Rotated':
            item['grace_end'] = staged.get('expiration_date')
    elif state is None:
        item['plan'] = 'rotate'
        item['plan_reason'] = 'nothing staged: stage a new pair'
    elif state == 'Expired':
        item['plan'] = 'rotate'
        item['plan_reason'] = 'replaces the Expired staged pair %s' % _suffix(staged.get('key'))
    elif state == 'Rotated':
        item['grace_end'] = staged.get('expiration_date')
        if item['replace_rotated']:
            item['plan'] = 'rotate'
            item['plan_reason'] = ('replaces the Rotated previous pair %s (it stops working now instead of %s)'
                                   % (_suffix(staged.get('key')), staged.get('expiration_date') or 'at the end of its grace'))
        else:
            item['plan'] = 'blocked'
            item['plan_reason'] = ('previous pair %s still in its grace (Rotated, valid until %s); '
                                   'replace_rotated: true rotates now and revokes it'
                                   % (_suffix(staged.get('key')), staged.get('expiration_date') or '?'))
    else:
        item['plan'] = 'error'
        item['error'] = "the staged slot is in an unknown state '%s'; nothing was changed" % state
        return
    if item['plan'] in PLANS_TO_RUN:
        item['status'] = 'pending'
        item['phase'] = 'plan'
    else:
        item['status'] = 'done'
        item['phase'] = 'plan'


def rotation_plan(rotations, org, instance_url=None, usage=None, app_results=None, history=None, options=None, now=None,
                  token=None):
    """Resolve apps and consumers and decide, per consumer: rotate, resume, skip, blocked (or error).

    rotations: the host's sfdc_eca_rotations; usage: registered eca_usage_info result (or None when every
    rotation gives app_id); app_results: registered loop of eca_credential_info (loop item: {app_name, app_id});
    history: the history file's text or dict; options: the role's settings (see tasks/plan.yml).
    """
    options = options or {}
    now = _parse_time(now) or _now()
    rotations = rotations or []
    if isinstance(token, dict) and _failed(token):
        return rotation_fail_all(rotation_placeholders(rotations, org, instance_url), 'authenticate',
                                 'authentication to the org failed: %s' % rotation_error(token))
    entries = _history_entries(history)
    if not isinstance(rotations, list):
        raise AnsibleFilterError('sfdc_eca_rotations must be a list of {app_name, consumer_name, deliver}, got %s'
                                 % type(rotations).__name__)
    apps_by_name = {}
    usage_error = None
    if isinstance(usage, dict) and not usage.get('skipped'):
        if _failed(usage):
            usage_error = 'listing the org\'s apps failed: %s' % _error_of(usage)
        else:
            for app in usage.get('apps') or []:
                apps_by_name[app.get('developer_name')] = app
    details = {}
    for result in _results(app_results):
        item = result.get('item') or {}
        details[item.get('app_name')] = result
    items = []
    seen = set()
    for entry in rotations:
        if not isinstance(entry, dict) or not entry.get('app_name'):
            bad = _new_item(org, instance_url, {}, to_text(entry.get('app_name') if isinstance(entry, dict) else entry), None, options)
            bad['error'] = 'each sfdc_eca_rotations entry needs app_name, got %r' % (entry,)
            items.append(bad)
            continue
        app_name = to_text(entry['app_name'])
        wanted = entry.get('consumer_name')
        placeholder = _new_item(org, instance_url, entry, app_name, wanted, options)
        if usage_error and not entry.get('app_id'):
            placeholder['error'] = usage_error
            placeholder['http_status'] = usage.get('status')
            items.append(placeholder)
            continue
        result = details.get(app_name)
        if result is None:
            if entry.get('app_id') or app_name in apps_by_name:
                placeholder['error'] = "the consumers of app '%s' were not read" % app_name
            else:
                placeholder['error'] = ("no External Client App with developer name '%s' in %s (developer names are "
                                        "case-sensitive)" % (app_name, instance_url or org))
            items.append(placeholder)
            continue
        if _failed(result):
            placeholder['error'] = "reading the consumers of app '%s' failed: %s" % (app_name, _error_of(result))
            placeholder['http_status'] = result.get('status')
            items.append(placeholder)
            continue
        consumers = result.get('consumers') or []
        if wanted:
            chosen = [c for c in consumers if c.get('name') == wanted]
            if not chosen:
                placeholder['error'] = ("app '%s' has no consumer named '%s'; its consumers: %s"
                                        % (app_name, wanted, ', '.join(sorted(to_text(c.get('name')) for c in consumers)) or '(none)'))
                items.append(placeholder)
                continue
        else:
            chosen = consumers
            if not chosen:
                placeholder['error'] = "app '%s' has no OAuth consumer" % app_name
                items.append(placeholder)
                continue
        deliver_error = None
        deliver = None
        verify = None
        verify_error = None
        for consumer in chosen:
            name = consumer.get('name')
            item = _new_item(org, instance_url, entry, app_name, name, options)
            item['app_id'] = result.get('app_id') or entry.get('app_id')
            item['consumer_id'] = consumer.get('id')
            item['old_key'] = _suffix(consumer.get('key'))
            item['old_key_fp'] = _fingerprint(consumer.get('key'))
            hist = entries.get(history_key(org, app_name, name)) or {}
            item['last_rotated'] = hist.get('last_rotated')
            if item['id'] in seen:
                item['error'] = "consumer '%s' of app '%s' is listed twice in sfdc_eca_rotations: it is rotated once" % (name, app_name)
                item['status'] = 'failed'
                items.append(item)
                continue
            seen.add(item['id'])
            if deliver is None and deliver_error is None:
                deliver, deliver_error = _check_deliver(entry, options, org, app_name, len(chosen) > 1)
            if verify is None and verify_error is None:
                verify, _hook, verify_error = _check_verify(entry, options, app_name)
            _decide(item, consumer, hist, options, now)
            if item['plan'] in PLANS_TO_STAGE and (deliver_error or verify_error):
                item['status'] = 'failed'
                item['error'] = deliver_error or verify_error
            if deliver:
                resolved = dict(deliver)
                if resolved.get('vault_file'):
                    resolved['vault_file'] = _fill(resolved['vault_file'], org, app_name, name)
                item['deliver'] = resolved
            item['verify'] = verify
            items.append(item)
    return items


# ---------------------------------------------------------------------------------------------
# phase bookkeeping


def rotation_select(items, plans=None, status='pending', backend=None, verify=None, field=None):
    """Items still in play, optionally narrowed by plan, delivery backend, verify method or a true field."""
    out = []
    for item in items or []:
        if status and item.get('status') != status:
            continue
        if plans and item.get('plan') not in plans:
            continue
        if backend and (item.get('deliver') or {}).get('backend') != backend:
            continue
        if verify and (item.get('verify') or {}).get('method') != verify:
            continue
        if field and not item.get(field):
            continue
        out.append(item)
    return out


def rotation_secrets(stage, previous=None):
    """{item id: {key, secret}} from the registered stage loop (no_log data; used by no_log tasks only)."""
    out = {}
    for result in _results(stage):
        if _failed(result):
            continue
        staged = result.get('staged_credential') or {}
        if staged.get('key') and staged.get('secret'):
            out[_item_id(result)] = {'key': staged['key'], 'secret': staged['secret']}
    for result in _results(previous):
        if _failed(result):
            continue
        staged = result.get('staged_credential') or {}
        entry = out.setdefault(_item_id(result), {})
        if staged.get('state') == 'Rotated' and staged.get('secret'):
            entry['old_key'] = staged.get('key')
            entry['old_secret'] = staged['secret']
    return out


def _secret_values(secrets):
    values = []
    for entry in (secrets or {}).values():
        for name in ('secret', 'old_secret'):
            if entry.get(name):
                values.append(entry[name])
    return values


def _fail(item, phase, message, secrets):
    item['status'] = 'failed'
    item['phase'] = phase
    item['error'] = _redact(message, _secret_values(secrets))


def rotation_update(items, registered, phase, secrets=None, loop_var='item'):
    """Fold the registered results of one phase into the items (by item id)."""
    items = [dict(i) for i in items or []]
    by_id = dict((i['id'], i) for i in items)
    if phase in ('stage', 'promote'):
        # error messages are redacted with the secrets of these very results too
        found = rotation_secrets(registered) if phase == 'stage' else rotation_secrets(None, registered)
        secrets = dict(secrets or {}, **dict(('_' + k, v) for k, v in found.items()))
    if phase in ('deliver_tasks', 'verify_hook'):
        # registered: {item id: error message} collected by the rescue of the included file
        for item_id, message in (registered or {}).items():
            item = by_id.get(item_id)
            if item is not None and item['status'] == 'pending':
                label = 'delivery' if phase == 'deliver_tasks' else 'the verification hook'
                _fail(item, 'deliver' if phase == 'deliver_tasks' else 'verify', '%s failed: %s' % (label, message), secrets)
        for item in items:
            if item['status'] == 'pending' and (item.get('deliver') or {}).get('backend') == 'tasks_file' and phase == 'deliver_tasks':
                item['delivered'] = True
        return items
    for result in _results(registered):
        item = by_id.get(_item_id(result, loop_var))
        if item is None:
            continue
        if _failed(result) and phase in ('stage', 'promote', 'rollback', 'revoke') and item.get('status') == 'pending':
            item['http_status'] = result.get('status')
        if phase == 'stage':
            _update_stage(item, result, secrets)
        elif phase == 'deliver_vault':
            if _failed(result):
                _fail(item, 'deliver', 'writing the vault file %s failed: %s'
                      % ((item.get('deliver') or {}).get('vault_file'), _error_of(result)), secrets)
            else:
                item['delivered'] = True
        elif phase == 'verify':
            if _failed(result):
                _fail(item, 'verify', 'the new pair %s was refused: %s' % (item.get('new_key'), _error_of(result)), secrets)
            else:
                item['verified'] = True
        elif phase == 'rollback':
            if _failed(result):
                item['rolled_back'] = False
                item['error'] = '%s; rolling back failed too: %s: the staged pair %s is still in the slot' % (
                    item.get('error'), _redact(_error_of(result), _secret_values(secrets)), item.get('new_key'))
                item['slot_after'] = 'Active'
            else:
                item['rolled_back'] = True
                item['slot_after'] = 'empty'
        elif phase == 'promote':
            _update_promote(item, result, secrets)
        elif phase == 'revoke':
            if _failed(result):
                _fail(item, 'revoke', 'the new pair %s is promoted and delivered, but revoking the previous pair failed: %s'
                      % (item.get('new_key'), _error_of(result)), secrets)
            else:
                item['revoked'] = True
                item['slot_after'] = 'empty'
                item['grace_end'] = None
        elif phase == 'prove':
            # the token endpoint said no (error/error_description) -> refused; an exhausted until loop
            # over successful attempts also reads "failed" but carries the token_type of its success
            if _failed(result) and not result.get('token_type') and result.get('error'):
                item['old_pair_refused'] = True
            elif _failed(result) and not result.get('token_type'):
                item['old_pair_refused'] = None
                item['error'] = 'could not check that the previous pair is refused: %s' % _redact(_error_of(result), _secret_values(secrets))
            else:
                item['old_pair_refused'] = False
                _fail(item, 'revoke', 'the previous pair %s still authenticates after it was deleted' % item.get('old_key'), secrets)
    return items


def _update_stage(item, result, secrets):
    if _failed(result):
        _fail(item, 'stage', 'staging failed: %s' % _error_of(result), secrets)
        return
    staged = result.get('staged_credential') or {}
    action = result.get('action')
    item['stage_action'] = action
    item['staged_by_run'] = action in STAGED_BY_RUN_ACTIONS
    item['staged_id'] = staged.get('id') or item.get('staged_id')
    item['staged_expiration'] = staged.get('expiration_date')
    item['consumer_id'] = result.get('consumer_id') or item.get('consumer_id')
    item['app_id'] = result.get('app_id') or item.get('app_id')
    item['new_key'] = _suffix(staged.get('key'))
    item['new_key_fp'] = _fingerprint(staged.get('key'))
    item['phase'] = 'stage'
    item['slot_after'] = 'Active'
    if action == 'none' and item['plan'] == 'rotate':
        item['plan'] = 'resume'
    if staged.get('state') and staged.get('state') != 'Active':
        _fail(item, 'stage', 'the staged slot holds a %s pair %s, not an Active one' % (staged.get('state'), item['new_key']), secrets)
    elif not staged.get('key') or not staged.get('secret'):
        _fail(item, 'stage', 'the staged secret could not be read back (the calling user needs the View Client Secret '
                             'permission and the setting "Allow access to External Client App consumer secrets via REST API")', secrets)


def _update_promote(item, result, secrets):
    if _failed(result):
        _fail(item, 'promote', 'promoting failed: %s; both pairs stay valid and the next run resumes with the staged pair %s'
              % (_error_of(result), item.get('new_key')), secrets)
        return
    item['promoted'] = True
    item['phase'] = 'promote'
    staged = result.get('staged_credential') or {}
    main_key = result.get('main_key')
    if main_key and _fingerprint(main_key) != item.get('new_key_fp'):
        _fail(item, 'promote', 'after promoting, the main key is %s, not the staged pair %s'
              % (_suffix(main_key), item.get('new_key')), secrets)
        item['promoted'] = False
        return
    item['slot_after'] = staged.get('state') or 'Rotated'
    item['grace_end'] = staged.get('expiration_date')


def rotation_fail_all(items, phase, message, secrets=None):
    """Mark every pending item failed (an org-level failure such as authentication)."""
    out = []
    for item in items or []:
        item = dict(item)
        if item.get('status') == 'pending':
            _fail(item, phase, message, secrets)
        out.append(item)
    return out


def rotation_placeholders(rotations, org, instance_url=None):
    """Items for an org that failed before its plan: one per rotation entry."""
    items = []
    for entry in rotations or []:
        entry = entry if isinstance(entry, dict) else {}
        item = _new_item(org, instance_url, entry, to_text(entry.get('app_name') or '?'), entry.get('consumer_name'), {})
        item['status'] = 'pending'
        item['plan'] = None
        items.append(item)
    return items


# ---------------------------------------------------------------------------------------------
# records


RECORD_FIELDS = ('org', 'instance_url', 'app_name', 'app_id', 'consumer_name', 'consumer_id', 'plan', 'plan_reason',
                 'outcome', 'phase', 'old_key', 'new_key', 'slot_before', 'state', 'expiry', 'grace_end',
                 'staged_expiration', 'rolled_back', 'revoked', 'old_pair_refused', 'delivered_to', 'error',
                 'started', 'finished', 'duration', 'last_rotated')


def _outcome(item, check_mode):
    if item.get('status') == 'failed':
        return 'failed'
    if item.get('status') == 'not_run':
        return 'not_run'
    if check_mode:
        return 'planned'
    if item.get('plan') == 'skip':
        return 'skipped'
    if item.get('plan') == 'blocked':
        return 'blocked'
    if item.get('promoted'):
        return 'rotated'
    return 'failed'


def rotation_records(items, started=None, finished=None, check_mode=False):
    """One secret-free report row per item."""
    start = _parse_time(started)
    end = _parse_time(finished) or _now()
    duration = round((end - start).total_seconds(), 2) if start else None
    rows = []
    for item in items or []:
        outcome = _outcome(item, check_mode)
        row = dict((k, item.get(k)) for k in RECORD_FIELDS if k in item)
        row['outcome'] = outcome
        if outcome == 'failed' and not item.get('error'):
            row['error'] = 'the rotation stopped before promoting (phase %s)' % item.get('phase')
        state = item.get('slot_after') or item.get('slot_before')
        if outcome in ('planned', 'skipped', 'blocked', 'not_run') or (outcome == 'failed' and not item.get('slot_after')):
            state = item.get('slot_before')
        row['state'] = state
        if state == 'Rotated':
            row['expiry'] = item.get('grace_end')
        elif state == 'Active':
            row['expiry'] = item.get('staged_expiration')
        else:
            row['expiry'] = None
        deliver = item.get('deliver') or {}
        # a consumer that got past delivery was delivered
        delivered = item.get('delivered') or (item.get('promoted') and item.get('plan') != 'revoke') or (
            item.get('status') == 'failed' and item.get('phase') in ('promote', 'revoke') and item.get('plan') != 'revoke')
        row['delivered_to'] = (deliver.get('vault_file') or deliver.get('tasks_file')) if delivered else None
        row['started'] = _iso(start) if start else None
        row['finished'] = _iso(end)
        row['duration'] = duration
        # key fingerprints go to the history file only
        row['_new_key_fp'] = item.get('new_key_fp') if outcome == 'rotated' else None
        rows.append(row)
    return rows


def rotation_not_run(rotations, org, reason, instance_url=None):
    rows = []
    for entry in rotations or []:
        entry = entry if isinstance(entry, dict) else {}
        item = _new_item(org, instance_url, entry, to_text(entry.get('app_name') or '?'), entry.get('consumer_name'), {})
        item['status'] = 'not_run'
        item['plan'] = None
        item['error'] = reason
        item['phase'] = None
        rows.append(item)
    return rotation_records(rows, finished=None)


# ---------------------------------------------------------------------------------------------
# fleet level: canary gate, collecting records, history


def _hostvar(hostvars, host, name, default=None):
    try:
        values = hostvars[host]
    except (KeyError, TypeError):
        return default
    try:
        value = values.get(name, default) if hasattr(values, 'get') else values[name]
    except Exception:  # an undefined or untemplatable var means "not recorded"
        return default
    return default if value is None else value


def canary_gate(play_hosts_all, hostvars, play_batch, max_fail_percentage=100):
    """-> {'run': bool, 'canary': bool, 'reason': str} for the hosts of the current batch.

    Hosts before the current batch have run already. The first batch is the canary: if any canary org
    failed (or never recorded), every later org is skipped. After that, ``max_fail_percentage`` of the
    orgs run so far may fail before the rest is skipped (100 = never skip).
    """
    hosts = list(play_hosts_all or [])
    batch = [h for h in (play_batch or []) if h in hosts]
    if not batch:
        return {'run': True, 'canary': False, 'reason': ''}
    first = min(hosts.index(h) for h in batch)
    earlier = hosts[:first]
    if not earlier:
        return {'run': True, 'canary': True, 'reason': ''}
    canary = [h for h in earlier if _org_result(hostvars, h).get('canary', False)] or earlier[:1]
    bad = [h for h in canary if _org_result(hostvars, h).get('org_failed', True)]
    if bad:
        return {'run': False, 'canary': False,
                'reason': 'not run: the canary batch failed (%s)' % ', '.join(bad[:5] + (['...'] if len(bad) > 5 else []))}
    failed = [h for h in earlier if _org_result(hostvars, h).get('org_failed', True)]
    try:
        limit = float(max_fail_percentage)
    except (TypeError, ValueError):
        limit = 100.0
    if limit < 100 and failed and 100.0 * len(failed) / len(earlier) > limit:
        return {'run': False, 'canary': False,
                'reason': 'not run: %d of %d orgs already failed, more than sfdc_eca_max_fail_percentage=%s%%'
                          % (len(failed), len(earlier), max_fail_percentage)}
    return {'run': True, 'canary': False, 'reason': ''}


def _org_result(hostvars, host, name='sfdc_eca_rotation'):
    """The org's registered sfdc.eca.eca_rotation result ({records, org_failed, canary}), or {}.

    A task that rotated the whole batch (``orgs``, run_once) registered {orgs: {org: result}} on each host.
    """
    value = _hostvar(hostvars, host, name, None)
    if isinstance(value, dict) and isinstance(value.get('orgs'), dict):
        value = value['orgs'].get(host)
    return value if isinstance(value, dict) else {}


def collect_records(play_hosts_all, hostvars, name='sfdc_eca_rotation'):
    """Every org's rows; an org that recorded nothing gets one failed row.

    name: a host variable holding the rows, or a result ({records: rows}) such as sfdc_eca_rotation.
    """
    rows = []
    for host in play_hosts_all or []:
        records = _hostvar(hostvars, host, name, None)
        if isinstance(records, dict):
            records = _org_result(hostvars, host, name).get('records')
        if records is None:
            rows.append({'org': host, 'app_name': None, 'consumer_name': None, 'outcome': 'failed', 'phase': None,
                         'error': 'the playbook failed for this org before it recorded anything: see the log of this run'})
            continue
        rows.extend(records)
    return rows


def history_intent(history, items, now=None):
    """Before promoting: remember the key each consumer is about to get (its fingerprint), so that a run
    killed right after the promote knows the main key is this tool's (and can finish a requested revoke)."""
    now = _parse_time(now) or _now()
    entries = dict(_history_entries(history))
    for item in items or []:
        if not item.get('new_key_fp') or not item.get('consumer_name'):
            continue
        key = history_key(item.get('org'), item.get('app_name'), item.get('consumer_name'))
        entry = dict(entries.get(key) or {})
        entry.update({'org': item.get('org'), 'app_name': item.get('app_name'), 'consumer_name': item.get('consumer_name'),
                      'instance_url': item.get('instance_url'), 'promoting_fp': item['new_key_fp'],
                      'promoting_since': _iso(now)})
        entries[key] = entry
    return {'version': 1, 'updated': _iso(now), 'consumers': dict(sorted(entries.items()))}


def history_update(history, rows, now=None):
    """Merge the outcome rows of a rotation run into the history document."""
    now = _parse_time(now) or _now()
    entries = dict(_history_entries(history))
    for row in rows or []:
        if not row.get('app_name') or not row.get('consumer_name') or row.get('outcome') in (None, 'planned', 'not_run'):
            continue
        key = history_key(row.get('org'), row.get('app_name'), row.get('consumer_name'))
        entry = dict(entries.get(key) or {})
        entry.update({'org': row.get('org'), 'app_name': row.get('app_name'), 'consumer_name': row.get('consumer_name'),
                      'instance_url': row.get('instance_url'), 'last_run': _iso(now), 'last_outcome': row.get('outcome')})
        if row.get('outcome') == 'rotated':
            if entry.get('key_fp') != row.get('_new_key_fp') or not row.get('_new_key_fp'):
                # a new key is a new rotation (the org's own history file may have counted this one already)
                entry['rotations'] = int(entry.get('rotations') or 0) + 1
                entry['last_rotated'] = row.get('finished') or _iso(now)
            entry['key'] = row.get('new_key')
            entry['key_fp'] = row.get('_new_key_fp')
        entries[key] = entry
    return {'version': 1, 'updated': _iso(now), 'consumers': dict(sorted(entries.items()))}


# ---------------------------------------------------------------------------------------------
# connection helpers (no_log data in, no_log data out)


AUTH_OPTIONS = ('access_token', 'client_id', 'client_secret', 'username', 'private_key', 'private_key_file',
                'private_key_passphrase', 'refresh_token')


def eca_session(connection, token_result=None, keep_credentials=False):
    """The module defaults of the tasks after authentication: the connection with the token.

    Without keep_credentials the inventory's credentials are dropped: later tasks only carry the token.
    """
    connection = dict(connection or {})
    out = dict((k, v) for k, v in connection.items() if keep_credentials or k not in AUTH_OPTIONS)
    token_result = token_result or {}
    token = token_result.get('access_token')
    # A token given as input comes back masked by no_log: use the input itself.
    if connection.get('access_token'):
        out['access_token'] = connection['access_token']
    elif token and token not in (MASKED, NO_LOG_MARKER):
        out['access_token'] = token
    if not out.get('instance_url') and token_result.get('instance_url'):
        out['instance_url'] = token_result['instance_url']
    return out


def rotation_credential(item, secrets, connection=None):
    """The sfdc_eca_credential handed to a delivery or verification tasks file (holds the secret)."""
    pair = (secrets or {}).get(item.get('id')) or {}
    return {
        'instance_url': item.get('instance_url') or (connection or {}).get('instance_url'),
        'org': item.get('org'),
        'app_name': item.get('app_name'),
        'app_id': item.get('app_id'),
        'consumer_name': item.get('consumer_name'),
        'consumer_id': item.get('consumer_id'),
        'key': pair.get('key'),
        'secret': pair.get('secret'),
    }


def rotation_apps(rotations, usage=None):
    """The apps to read: [{app_name, app_id}] once each; app_id from the rotation or from eca_usage_info."""
    known = {}
    if isinstance(usage, dict) and not usage.get('skipped') and not _failed(usage):
        for app in usage.get('apps') or []:
            known[app.get('developer_name')] = app.get('identifier')
    out = []
    seen = set()
    for entry in rotations or []:
        if not isinstance(entry, dict) or not entry.get('app_name'):
            continue
        name = to_text(entry['app_name'])
        app_id = entry.get('app_id') or known.get(name)
        if name in seen or not app_id:
            continue
        seen.add(name)
        out.append({'app_name': name, 'app_id': app_id})
    return out


def rotation_needs_listing(rotations):
    return any(isinstance(e, dict) and not e.get('app_id') for e in rotations or [])


def rotation_rollback(items):
    """Failed items whose staged pair must go: staged by this run (stage/deliver/verify failure), or a
    resumed pair that failed verification (it does not work, and would block every later run)."""
    out = []
    for item in items or []:
        if item.get('status') != 'failed' or item.get('phase') not in ('stage', 'deliver', 'verify') or item.get('promoted'):
            continue
        if not item.get('staged_id') or not item.get('new_key'):
            continue
        if item.get('staged_by_run') or (item.get('phase') == 'verify' and item.get('plan') == 'resume'):
            out.append(item)
    return out


def rotation_error(result):
    """A message for a failure caught by a rescue; hidden results only name the failure."""
    if not isinstance(result, dict):
        return 'failed'
    if result.get('_ansible_no_log') or result.get('censored'):
        return 'failed (its output is hidden by no_log)'
    return _error_of(result)


def rotation_unexpected(items, rotations, org, instance_url, task_name, result, secrets=None):
    """After an unexpected failure of the org's run: every unfinished item failed, with what happened."""
    message = "unexpected failure in task '%s': %s" % (task_name, rotation_error(result))
    items = [dict(i) for i in items or []] or rotation_placeholders(rotations, org, instance_url)
    for item in items:
        if item.get('status') in ('pending', None) or (item.get('status') == 'done' and item.get('plan') in PLANS_TO_RUN):
            _fail(item, item.get('phase') or 'plan', message, secrets)
    return items


def rotation_plan_lines(items):
    lines = []
    for item in items or []:
        text = '%s: %s' % (item.get('id'), item.get('plan'))
        if item.get('status') == 'failed':
            text += ' -> failed: %s' % item.get('error')
        elif item.get('plan_reason'):
            text += ' (%s)' % item['plan_reason']
        lines.append(text)
    return lines


# A new pair is verified before it is delivered: no integration receives a pair that does not work.
FOLD_ORDER = ('stage', 'verify_cc', 'verify_jwt', 'deliver_vault', 'deliver_tasks', 'verify_hook', 'rollback', 'promote',
              'revoke', 'prove')


def rotation_fold(items, results=None, upto=None):
    """The items after folding in the registered results of every phase run so far, in phase order.

    results: {phase: registered result}; phases not run yet are missing or empty. The role keeps the
    plan in _sfdc_eca_items and derives the current state with this filter instead of a set_fact per phase.
    """
    results = results or {}
    secrets = rotation_secrets(results.get('stage'), results.get('promote'))
    for phase in FOLD_ORDER:
        registered = results.get(phase)
        # tasks-file deliveries report failures only: an empty dict after the delivery still counts
        if registered or (phase == 'deliver_tasks' and registered is not None):
            name = 'verify' if phase in ('verify_cc', 'verify_jwt') else phase
            items = rotation_update(items, registered, name, secrets)
        if phase == upto:
            break
    return items


def rotation_retry_entries(rotations, items):
    """The rotation entries to run again after re-authenticating: consumers that failed with HTTP 401."""
    out = []
    for item in items or []:
        if item.get('status') != 'failed' or item.get('http_status') != 401 or item.get('promoted'):
            continue
        entry = next((e for e in rotations or [] if isinstance(e, dict) and e.get('app_name') == item.get('app_name')
                      and e.get('consumer_name') in (None, item.get('consumer_name'))), None)
        if entry is None:
            continue
        entry = dict(entry)
        if item.get('consumer_name'):
            entry['consumer_name'] = item['consumer_name']
        if entry not in out:
            out.append(entry)
    return out


def rotation_merge_records(rows, new_rows, retried=None):
    """Rows of an earlier pass with the rows of a retry pass in place of the ones it covered."""
    if not rows:
        return list(new_rows or [])

    def covered(row):
        for entry in retried or []:
            if entry.get('app_name') == row.get('app_name') and entry.get('consumer_name') in (None, row.get('consumer_name')):
                return True
        return False
    kept = [r for r in rows if not covered(r)]
    merged = []
    for row in new_rows or []:
        row = dict(row)
        row['plan_reason'] = 'retried after HTTP 401 (authenticated again): %s' % (row.get('plan_reason') or '')
        merged.append(row)
    return kept + merged


class FilterModule(object):
    def filters(self):
        return {
            'rotation_plan': rotation_plan,
            'rotation_select': rotation_select,
            'rotation_secrets': rotation_secrets,
            'rotation_update': rotation_update,
            'rotation_fold': rotation_fold,
            'rotation_retry_entries': rotation_retry_entries,
            'rotation_merge_records': rotation_merge_records,
            'rotation_fail_all': rotation_fail_all,
            'rotation_placeholders': rotation_placeholders,
            'rotation_records': rotation_records,
            'rotation_not_run': rotation_not_run,
            'canary_gate': canary_gate,
            'collect_records': collect_records,
            'history_update': history_update,
            'eca_session': eca_session,
            'rotation_credential': rotation_credential,
            'rotation_apps': rotation_apps,
            'rotation_needs_listing': rotation_needs_listing,
            'rotation_rollback': rotation_rollback,
            'rotation_error': rotation_error,
            'rotation_unexpected': rotation_unexpected,
            'rotation_plan_lines': rotation_plan_lines,
        }
