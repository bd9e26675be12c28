# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The logic of the modules as plain functions: validated params + EcaClient -> result dict.

Modules and the in-process action plugins call these; they raise EcaError subclasses.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.sfdc.eca.plugins.module_utils._client import SETTING_NAME, same_id
from ansible_collections.sfdc.eca.plugins.module_utils._errors import (
    EcaAmbiguousWrite,
    EcaApiError,
    EcaFeatureDisabledError,
    EcaInputError,
    EcaNotFoundError,
    EcaStateError,
)

APP_ID_RE = re.compile(r'^0x[A-Za-z0-9]{13}(?:[A-Za-z0-9]{3})?$')
SF_ID_RE = re.compile(r'^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$')
DEVELOPER_NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
LIST_LIMIT = 20


def key_suffix(key):
    """What diffs and messages show of a key: its last four characters."""
    if not key:
        return None
    return '...' + key[-4:]


USAGE_HINT = ("The usage listing (apps/oauth/usage) holds only apps with OAuth usage data: an app that nobody has "
              "authenticated with yet is missing from it. Give its app_id instead (the 0x... id in the app's URL in "
              "Setup > External Client App Manager).")


def _preview(names):
    names = sorted(n for n in names if n)
    if not names:
        return '(none)'
    text = ', '.join(names[:LIST_LIMIT])
    if len(names) > LIST_LIMIT:
        text += ' (and %d more)' % (len(names) - LIST_LIMIT)
    return text


def _consumer_label(consumer):
    if not consumer.get('name'):
        return str(consumer.get('id'))
    return "'%s' (%s)" % (consumer.get('name'), consumer.get('id'))


def _public(staged, with_secret):
    if staged is None:
        return None
    result = dict(staged)
    if not with_secret:
        result.pop('secret', None)
    return result


def resolve_app(client, params):
    """-> (app_id, app_name). app_id skips the usage call; app_name is looked up among the org's apps."""
    app_id = params.get('app_id')
    if app_id:
        app_id = app_id.strip()
        if not APP_ID_RE.match(app_id):
            raise EcaInputError(
                "app_id '%s' is not an External Client App id: expected 15 or 18 letters and digits starting with '0x' "
                "(the identifier returned by sfdc.eca.eca_usage_info)." % app_id)
        return app_id, None
    app_name = (params.get('app_name') or '').strip()
    if not DEVELOPER_NAME_RE.match(app_name):
        raise EcaInputError(
            "app_name '%s' is not a developer name: expected letters, digits and underscores starting with a letter "
            "(for example Billing_Sync)." % app_name)
    apps = client.list_apps()
    for app in apps:
        if app.get('developer_name') == app_name:
            return app['identifier'], app_name
    hint = ''
    for app in apps:
        if (app.get('developer_name') or '').lower() == app_name.lower():
            hint = " Developer names are case-sensitive: did you mean '%s'?" % app['developer_name']
    raise EcaInputError(
        "No External Client App with developer name '%s' in %s.%s Available apps: %s. %s"
        % (app_name, client.instance_url, hint, _preview(a.get('developer_name') for a in apps), USAGE_HINT))


def resolve_consumer(consumers, params, app_label):
    """Pick one consumer by consumer_id, consumer_name, or because it is the only one."""
    listing = _preview(_consumer_label(c) for c in consumers)
    consumer_id = params.get('consumer_id')
    consumer_name = params.get('consumer_name')
    if consumer_id:
        consumer_id = consumer_id.strip()
        if not SF_ID_RE.match(consumer_id):
            raise EcaInputError("consumer_id '%s' is not a Salesforce id: expected 15 or 18 letters and digits." % consumer_id)
        for consumer in consumers:
            if same_id(consumer.get('id'), consumer_id):
                return consumer
        raise EcaInputError("App %s has no consumer with id '%s'. Its consumers: %s." % (app_label, consumer_id, listing))
    if consumer_name:
        found = [c for c in consumers if c.get('name') == consumer_name]
        if len(found) == 1:
            return found[0]
        if not found:
            raise EcaInputError("App %s has no consumer named '%s'. Its consumers: %s." % (app_label, consumer_name, listing))
        raise EcaInputError("App %s has %d consumers named '%s': set consumer_id to one of %s."
                            % (app_label, len(found), consumer_name, _preview(c.get('id') for c in found)))
    if len(consumers) == 1:
        return consumers[0]
    if not consumers:
        raise EcaStateError('App %s has no OAuth consumer: enable OAuth on the External Client App first.' % app_label)
    raise EcaInputError('App %s has %d consumers: set consumer_name or consumer_id to one of %s.'
                        % (app_label, len(consumers), listing))


def _app_label(app_id, app_name):
    return "'%s' (%s)" % (app_name, app_id) if app_name else app_id


# --------------------------------------------------------------------------------------------------
# eca_token


def secret_missing(where):
    """The error for an answer that lacks the secret it should carry (the org answers 200 without it)."""
    return EcaFeatureDisabledError(
        '%s answered without the secret: the org does not hand out consumer secrets over the REST API. Turn on %s in '
        "the org, and give the calling user the permissions 'External Client App Developer' and 'View Client Secret'."
        % (where, SETTING_NAME))


def _finish(client, result):
    """Add what every result carries: the API call count, and a refresh token the org rotated during the task."""
    result['api_calls'] = client.api_calls
    new = getattr(client.auth, 'new_refresh_token', None)
    if new:
        # the one the task was given no longer works: the caller stores this one (no_log) for the next run
        result['refresh_token'] = new
    return result


def run_token(client, params, check_mode=False, diff=False):
    info = client.authenticate()
    verify_only = bool(params.get('verify_only') or params.get('verify_pair'))
    if verify_only and not client.auth.can_renew:
        # A given access token is proven only by using it: one usage page of one app.
        client.check_token()
    result = {
        'changed': False,
        'auth_flow': client.auth.name,
        'instance_url': info.get('instance_url') or client.instance_url,
        'token_type': info.get('token_type') or 'Bearer',
        'issued_at': info.get('issued_at'),
    }
    if not verify_only:
        result['access_token'] = info['access_token']
    return _finish(client, result)


# --------------------------------------------------------------------------------------------------
# eca_usage_info


def run_usage_info(client, params, check_mode=False, diff=False):
    apps = client.list_apps()
    names = params.get('name')
    warnings = []
    if names:
        wanted = set(names)
        apps = [a for a in apps if a.get('developer_name') in wanted]
        missing = wanted - set(a.get('developer_name') for a in apps)
        if missing:
            warnings.append('No External Client App named %s in %s. %s' % (_preview(missing), client.instance_url, USAGE_HINT))
    result = {'changed': False, 'apps': apps}
    if warnings:
        result['warnings'] = warnings
    return _finish(client, result)


# --------------------------------------------------------------------------------------------------
# eca_credential_info


def run_credential_info(client, params, check_mode=False, diff=False):
    include_secrets = bool(params.get('include_secrets'))
    app_id, app_name = resolve_app(client, params)
    consumers = client.list_consumers(app_id)
    out = []
    for consumer in consumers:
        staged = client.get_staged(app_id, consumer['id'])
        entry = {
            'id': consumer['id'],
            'name': consumer.get('name'),
            'key': consumer.get('key'),
            'staged_credential': _public(staged, include_secrets),
        }
        if include_secrets:
            main = client.get_main(app_id, consumer['id'], part='keyandsecret')
            if not main.get('secret') or (staged is not None and not staged.get('secret')):
                raise secret_missing('GET %s/apps/oauth/credentials/%s/%s%s' % (
                    client.base_path, app_id, consumer['id'], '?part=keyandsecret' if not main.get('secret') else '/staged'))
            entry['key'] = main.get('key') or entry['key']
            entry['secret'] = main.get('secret')
        out.append(entry)
    return _finish(client, {'changed': False, 'app_id': app_id, 'app_name': app_name, 'consumers': out})


# --------------------------------------------------------------------------------------------------
# eca_staged_credential


def _stage(client, app_id, consumer_id, warnings):
    """POST a new staged credential and return it with its secret. A credential the org stages but whose secret it
    does not hand out is deleted again: a pair nobody can deliver is of no use, and present never succeeds without it."""
    item = _post_staged(client, app_id, consumer_id, warnings)
    if item is not None and not item.get('secret'):
        where = 'POST %s%s/staged (and GET)' % (client.base_path, client._consumer_path(app_id, consumer_id))
        error = secret_missing(where)
        try:
            _delete(client, app_id, consumer_id, item)
        except (EcaApiError, EcaStateError, EcaAmbiguousWrite) as exc:
            raise EcaFeatureDisabledError(
                '%s Deleting the credential it staged (%s) failed too (%s): delete it with state: absent.'
                % (error, key_suffix(item.get('key')), exc), method='POST', path=where)
        raise EcaFeatureDisabledError('%s The credential it staged (%s) was deleted again: nothing changed.'
                                      % (error, key_suffix(item.get('key'))), method='POST', path=where)
    return item


def _post_staged(client, app_id, consumer_id, warnings):
    """POST a new staged credential; on an ambiguous failure re-read the slot and decide."""
    attempt = 0
    ambiguous = False
    while True:
        try:
            item = client.stage(app_id, consumer_id)
        except EcaApiError as exc:
            if not ambiguous or exc.status not in (400, 409):
                raise
            # An earlier attempt that looked lost may have landed after all: adopt it if it is there.
            current = client.get_staged(app_id, consumer_id)
            if current and current.get('state') == 'Active':
                warnings.append('An earlier stage request that failed ambiguously had succeeded; using its credential.')
                return current
            raise
        except EcaAmbiguousWrite as exc:
            ambiguous = True
            current = client.get_staged(app_id, consumer_id)
            if current and current.get('state') == 'Active':
                creator = client.user_id
                created_by = current.get('created_by') or ''
                # createdBy is compared only when it is a user id: some answers carry a username there.
                if creator and created_by.startswith('005') and SF_ID_RE.match(created_by) and not same_id(created_by, creator):
                    raise EcaStateError(
                        'Staging failed ambiguously (%s) and the slot now holds an Active credential %s created by %s, '
                        'not by this run; nothing more was changed. Re-run to adopt it.'
                        % (exc.cause, key_suffix(current.get('key')), current['created_by']))
                warnings.append('The stage request failed ambiguously (%s); re-reading showed it had succeeded.' % exc.cause)
                return current
            if current is None and attempt < client.retry.max_retries:
                client.retry.wait(attempt, getattr(exc, 'retry_after', None))
                attempt += 1
                continue
            raise EcaStateError(
                'Staging a new credential failed (%s) and the slot now shows %s: re-run to decide again.'
                % (exc.cause, current.get('state') if current else 'nothing staged'))
        if item is None or not item.get('secret') or not item.get('id'):
            # The answer lacked the credential: the documented GET representation carries it.
            read = client.get_staged(app_id, consumer_id)
            if read is not None:
                item = read
        return item


def _rotate(client, app_id, consumer_id, staged, old_main_key, warnings):
    """PATCH rotate; on an ambiguous failure decide from the slot and the main key."""
    attempt = 0
    while True:
        try:
            item = client.rotate(app_id, consumer_id, staged['id'])
        except EcaAmbiguousWrite as exc:
            current = client.get_staged(app_id, consumer_id)
            main_key = client.get_main(app_id, consumer_id).get('key')
            promoted = main_key == staged.get('key') or (old_main_key is not None and main_key != old_main_key
                                                         and current is not None and current.get('key') == old_main_key)
            if current and current.get('state') == 'Rotated' and promoted:
                warnings.append('The rotate request failed ambiguously (%s); re-reading showed it had succeeded.' % exc.cause)
                return current, main_key
            if (current and current.get('state') == 'Active' and current.get('key') == staged.get('key')
                    and main_key != staged.get('key') and attempt < client.retry.max_retries):
                client.retry.wait(attempt, getattr(exc, 'retry_after', None))
                attempt += 1
                staged = current
                continue
            raise EcaStateError(
                'Promoting the staged credential failed (%s) and the result is unclear: the slot shows %s, the main key is %s. '
                'Inspect with sfdc.eca.eca_credential_info before re-running.'
                % (exc.cause, current.get('state') if current else 'nothing staged', key_suffix(main_key)))
        return slot_after_rotate(client, app_id, consumer_id, item), staged.get('key')


def slot_after_rotate(client, app_id, consumer_id, answer):
    """The staged slot after a PATCH rotate. The answer is the old main pair as Rotated, the promoted pair (Active,
    without its secret), or nothing (204): only the first says what the slot holds, so the others read it."""
    if answer is not None and answer.get('state') == 'Rotated' and answer.get('id') and answer.get('key'):
        return answer
    return client.get_staged(app_id, consumer_id)


def _delete(client, app_id, consumer_id, staged):
    """DELETE the staged credential. -> True if this call removed it, False if it was already gone."""
    attempt = 0
    while True:
        try:
            return client.delete_staged(app_id, consumer_id, staged['id'])
        except EcaAmbiguousWrite as exc:
            current = client.get_staged(app_id, consumer_id)
            if current is None or (not same_id(current.get('id'), staged.get('id')) and current.get('key') != staged.get('key')):
                return True
            if attempt < client.retry.max_retries:
                client.retry.wait(attempt, getattr(exc, 'retry_after', None))
                attempt += 1
                continue
            raise EcaStateError('Deleting the staged credential %s failed (%s); it is still there (%s).'
                                % (key_suffix(staged.get('key')), exc.cause, current.get('state')))


def _diff_view(staged, main_key):
    return {
        'state': staged.get('state') if staged else 'absent',
        'staged_key': key_suffix(staged.get('key')) if staged else None,
        'main_key': key_suffix(main_key),
    }


def _by_ids(params):
    """app_id and consumer_id both given: the caller resolved them, so the consumers are not listed again."""
    consumer_id = (params.get('consumer_id') or '').strip()
    if not (params.get('app_id') and consumer_id):
        return None
    if not SF_ID_RE.match(consumer_id):
        raise EcaInputError("consumer_id '%s' is not a Salesforce id: expected 15 or 18 letters and digits." % consumer_id)
    return {'id': consumer_id, 'name': None, 'key': None}


def _act_on_staged_id(client, params, app_id, consumer, diff):
    """PATCH or DELETE the staged credential the caller named, without reading the slot first.

    -> a result, or None when the id no longer fits (gone, or not Active): the caller then reads the slot and decides.
    """
    state = params.get('state')
    staged_id = params.get('staged_id').strip()
    consumer_id = consumer['id']
    main_key = None
    try:
        if state == 'rotated':
            answer = client.rotate(app_id, consumer_id, staged_id)
            if answer is not None and answer.get('state') == 'Active' and answer.get('key'):
                main_key = answer['key']   # the promoted pair
            final = slot_after_rotate(client, app_id, consumer_id, answer)
            action = 'rotated'
        elif client.delete_staged(app_id, consumer_id, staged_id):
            final, action = None, 'deleted'
        else:
            return None
    except EcaApiError as exc:
        if exc.status in (400, 404, 409):
            return None
        raise
    except EcaAmbiguousWrite:
        return None
    if state == 'rotated' and final is not None and params.get('return_secret') and not final.get('secret'):
        final = client.get_staged(app_id, consumer_id) or final
    result = {
        'changed': True,
        'action': action,
        'app_id': app_id,
        'app_name': None,
        'consumer_id': consumer_id,
        'consumer_name': consumer.get('name'),
        'previous_state': 'Active' if state == 'rotated' else None,
        'staged_credential': _public(final, bool(params.get('return_secret'))),
        'main_key': main_key,
    }
    if diff:
        old_main = final.get('key') if final else None
        result['diff'] = {'before': {'state': result['previous_state'] or 'present', 'staged_key': None, 'main_key': key_suffix(old_main)},
                          'after': _diff_view(final, main_key)}
    return _finish(client, result)


# known_slot's default: the slot is read before acting on it
UNREAD = object()


def run_staged_credential(client, params, check_mode=False, diff=False, known_slot=UNREAD):
    """known_slot: the staged credential as the caller read it a moment ago (None: nothing staged), so that it
    is not read a second time. Only in-process callers that have just read it pass it; a stage refused because
    the slot is not empty after all falls back to reading it and deciding again.

    params['expect_key'] (in-process callers only, not a module option): with state rotated or absent, act only
    on the staged pair with this key; a slot that holds another pair is left alone."""
    try:
        return _run_staged_credential(client, params, check_mode, diff, known_slot)
    except EcaNotFoundError as exc:
        consumer = _by_ids(params)
        if consumer is not None and not getattr(exc, 'consumer_checked', False):
            # Without the consumer listing, an unknown consumer shows as a 404 on its staged credentials: name it.
            client.confirm_consumer(params['app_id'].strip(), consumer['id'])
        raise


def _run_staged_credential(client, params, check_mode, diff, known_slot=UNREAD):
    state = params.get('state') or 'present'
    replace_rotated = bool(params.get('replace_rotated'))
    return_secret = bool(params.get('return_secret'))
    warnings = []

    if params.get('staged_id') and state == 'present':
        raise EcaInputError("staged_id names the credential to promote or delete: use it with state: rotated or absent, not '%s'."
                            % state)
    app_id, app_name = resolve_app(client, params)
    app_label = _app_label(app_id, app_name)
    consumer = _by_ids(params)
    if consumer is None:
        consumer = resolve_consumer(client.list_consumers(app_id), params, app_label)
        main_key = consumer.get('key') or client.get_main(app_id, consumer['id']).get('key')
    else:
        main_key = None
    consumer_id = consumer['id']
    if params.get('staged_id') and not check_mode:
        done = _act_on_staged_id(client, params, app_id, consumer, diff)
        if done is not None:
            return done
    label = 'consumer %s of app %s' % (_consumer_label(consumer), app_label)
    staged = client.get_staged(app_id, consumer_id) if known_slot is UNREAD else known_slot
    previous_state = staged.get('state') if staged else 'absent'
    before = _diff_view(staged, main_key)

    action = 'none'
    final = staged
    staged_by_run = False
    final_main = main_key

    if state == 'present':
        if staged is None:
            action = 'staged'
        elif previous_state == 'Active':
            action = 'none'
        elif previous_state == 'Expired':
            action = 'replaced_expired'
        elif previous_state == 'Rotated':
            if not replace_rotated:
                raise EcaStateError(
                    'The staged slot of %s holds a Rotated credential (the previous main key %s, still valid until %s): '
                    'it may still be in use, so nothing was changed. Set replace_rotated: true to revoke it now and stage '
                    'a new credential, or state: absent to only revoke it.'
                    % (label, key_suffix(staged.get('key')), staged.get('expiration_date') or 'its grace period ends'))
            action = 'replaced_rotated'
            if params.get('client_id') and params.get('client_id') == staged.get('key'):
                warnings.append('The replaced Rotated credential is the one this run authenticated with; it no longer works.')
        else:
            raise EcaStateError("The staged slot of %s is in state '%s', which this module does not know; nothing was changed."
                                % (label, previous_state))
        if action != 'none':
            if check_mode:
                final = None
            else:
                if staged is not None:
                    _delete(client, app_id, consumer_id, staged)
                try:
                    final = _stage(client, app_id, consumer_id, warnings)
                except EcaApiError as exc:
                    if known_slot is UNREAD or exc.status not in (400, 409):
                        raise
                    # refused: something was staged since the caller read the slot; read it and decide again
                    return _run_staged_credential(client, params, check_mode, diff)
                staged_by_run = True
    elif state == 'rotated':
        expect_key = params.get('expect_key')
        if expect_key and previous_state == 'Active' and staged.get('key') != expect_key:
            raise EcaStateError('The staged slot of %s holds the pair %s, not the pair %s that was to be promoted: '
                                'nothing was promoted.' % (label, key_suffix(staged.get('key')), key_suffix(expect_key)))
        if staged is None:
            raise EcaStateError('Nothing is staged for %s, so there is nothing to promote: run state: present first, '
                                'deliver the new credential, then state: rotated. (A staged credential that expired after '
                                '30 days may have been removed from the slot.)' % label)
        if previous_state == 'Expired':
            raise EcaStateError('The staged credential %s of %s expired on %s and cannot be promoted: run state: present to '
                                'replace it, deliver it, then state: rotated.'
                                % (key_suffix(staged.get('key')), label, staged.get('expiration_date') or 'an unknown date'))
        if previous_state == 'Active':
            action = 'rotated'
            final_main = staged.get('key')
            if check_mode:
                final = dict(staged, state='Rotated', key=main_key)
                final.pop('secret', None)
            else:
                final, final_main = _rotate(client, app_id, consumer_id, staged, main_key, warnings)
            if params.get('client_id') and params.get('client_id') == main_key:
                warnings.append('This run promoted a new credential on the consumer whose key it authenticated with; '
                                'the previous key keeps working only until the Rotated credential is deleted or expires.')
        elif previous_state == 'Rotated':
            if final_main is None:
                # Ids given, so the main key was not listed: read it, so that callers can tell whose pair was promoted
                # (this path also follows a staged_id PATCH whose answer was lost).
                final_main = client.get_main(app_id, consumer_id).get('key')
        else:
            raise EcaStateError("The staged slot of %s is in state '%s', which this module does not know; nothing was changed."
                                % (label, previous_state))
    else:
        expect_key = params.get('expect_key')
        if staged is not None and expect_key and staged.get('key') != expect_key:
            # the pair to delete is gone; what the slot holds now is another one, left alone
            staged = None
        if staged is not None:
            action = 'deleted'
            if not check_mode:
                if not _delete(client, app_id, consumer_id, staged):
                    action = 'none'
            if previous_state == 'Rotated' and params.get('client_id') and params.get('client_id') == staged.get('key'):
                warnings.append('The deleted Rotated credential is the one this run authenticated with; it no longer works.')
        final = None

    result = {
        'changed': action != 'none',
        'action': action,
        'app_id': app_id,
        'app_name': app_name,
        'consumer_id': consumer_id,
        'consumer_name': consumer.get('name'),
        'previous_state': previous_state,
        'staged_credential': _public(final, staged_by_run or return_secret),
        'main_key': final_main,
    }
    if return_secret and final is not None and not final.get('secret') and state != 'absent':
        if state == 'present':
            raise secret_missing('GET %s%s/staged' % (client.base_path, client._consumer_path(app_id, consumer_id)))
        warnings.append('return_secret is true but the API did not return the staged secret.')
    if diff:
        if before['main_key'] is None and action == 'rotated' and final and final.get('state') == 'Rotated':
            # Not read (ids given): the Rotated credential is the previous main pair.
            before['main_key'] = key_suffix(final.get('key'))
        after = _diff_view(final, final_main)
        if check_mode and state == 'present' and action != 'none':
            after['state'] = 'Active'
            after['staged_key'] = '(new)'
        result['diff'] = {'before': before, 'after': after}
    if warnings:
        result['warnings'] = warnings
    return _finish(client, result)
