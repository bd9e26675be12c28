# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The probe: the credential lifecycle run once against a throwaway External Client App, recorded as a
secret-free behaviour profile (which way this org answers each question the API documentation leaves open).

A profile holds status codes, field names, shapes, id lengths, error codes and state spellings: never a key,
secret, token, id, name or URL of the org. ``variants`` names the simulator switch each answer matches
(docs/simulator.md), ``unknown`` where the probe could not tell.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json

from ansible.module_utils.six.moves.urllib.parse import quote, urlsplit

from ansible_collections.sfdc.eca.plugins.module_utils._auth import ClientCredentialsAuth, RefreshTokenAuth
from ansible_collections.sfdc.eca.plugins.module_utils._client import (
    HTML_TITLE_RE,
    canonical_state,
    same_id,
    staged_from_body,
)
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaAuthError, EcaError, EcaInputError, EcaStateError
from ansible_collections.sfdc.eca.plugins.module_utils._operations import APP_ID_RE, SF_ID_RE, USAGE_HINT

FORMAT = 1
UNKNOWN = 'unknown'
# The simulator's switches (eca_simulator.core.VARIANTS), in its order.
SWITCHES = ('post_over_rotated', 'empty_staged', 'post_body', 'staged_url_spelling', 'staged_id_on_rotate',
            'refresh_token_rotation', 'error_body', 'disabled_scope', 'secret_access_off', 'rotate_answer',
            'usage_lists', 'paging', 'id_length', 'state_case', 'expired_staged', 'consumer_names',
            'max_api_version', 'rate_limit')
VERSIONS = ('65.0', '66.0', '67.0', '68.0')
SIMULATED_VERSIONS = ('65.0', '66.0', '67.0', '68.0')
MAX_PAGES = 50
# Values of these fields are recorded (they are codes, not data of the org).
RECORDED_VALUES = ('errorCode', 'error', 'state', 'token_type')
ID_FIELDS = ('id', 'identifier')


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _json(resp):
    if not resp.content:
        return None
    try:
        return resp.json()
    except (ValueError, RecursionError):
        return None


def describe(value, depth=0):
    """The shape of a JSON value: kinds, field names, lengths of ids, codes and states; never other values."""
    if isinstance(value, dict):
        out = {'form': 'object', 'fields': sorted(str(k) for k in value)[:40]}
        for key in RECORDED_VALUES:
            if isinstance(value.get(key), str) and len(value[key]) <= 60:
                out[key] = value[key]
        for key in ID_FIELDS:
            if isinstance(value.get(key), str):
                out['%s_length' % key] = len(value[key])
        if depth < 2:
            for key, item in sorted(value.items()):
                if isinstance(item, (dict, list)):
                    out.setdefault('nested', {})[str(key)] = describe(item, depth + 1)
        return out
    if isinstance(value, list):
        out = {'form': 'array', 'length': len(value)}
        if value and depth < 2:
            out['item'] = describe(value[0], depth + 1)
        return out
    if value is None:
        return {'form': 'null'}
    return {'form': type(value).__name__}


def body_form(resp):
    """How an answer's body is made: empty, json (with its shape), html, or text."""
    if not resp.content:
        return {'form': 'empty'}
    body = _json(resp)
    if body is not None or resp.content.strip() == b'null':
        return describe(body)
    text = resp.text.strip()
    if 'html' in (resp.headers.get('Content-Type') or '').lower() or text[:1] == '<':
        return {'form': 'html', 'has_title': bool(HTML_TITLE_RE.search(text))}
    return {'form': 'text', 'length': len(text)}


class Probe:
    """One run of the probe. Secrets it meets stay in this object's memory and are dropped at the end."""

    def __init__(self, client, params, writes):
        self.client = client
        self.params = params
        self.writes = writes
        self.variants = dict((name, UNKNOWN) for name in SWITCHES)
        self.observations = []
        self.notes = []
        self.versions = {}
        self.ids = {}          # org id -> placeholder, so that no id of the org is recorded
        self.id_lengths = set()
        self.states = set()
        self.changed = False
        self.secrets = set()   # the new pair's secret: checked absent from the profile, then dropped
        self._cleanup = None   # (app, consumer, staged id) to discard if the lifecycle stops before promoting

    # -- recording ---------------------------------------------------------------------------------

    def _mask(self, text):
        for value, placeholder in sorted(self.ids.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(value, placeholder)
            if len(value) == 18:
                text = text.replace(value[:15], placeholder)
        return text

    def _remember_id(self, value, placeholder):
        if isinstance(value, str) and value:
            self.ids[value] = placeholder
            self.id_lengths.add(len(value))

    def call(self, step, method, path, params=None, json_body=None):
        """Send one request; record what came back (never a value); return (status, parsed body or None, response)."""
        resp = self.client.exchange(method, path, params=params, json_body=json_body)
        parts = urlsplit(path if path.startswith('/services/') else self.client.base_path + path)
        query = '&'.join([q for q in [parts.query] if q] + ['%s=%s' % kv for kv in sorted((params or {}).items())])
        body = _json(resp)
        self._collect(body)
        request = '%s %s%s' % (method, self._mask(parts.path), '?' + self._mask(query) if query else '')
        self.observations.append({'step': step, 'request': request, 'status': resp.status_code, 'body': body_form(resp)})
        return resp.status_code, body, resp

    def _collect(self, body):
        if isinstance(body, dict):
            state = body.get('state')
            if isinstance(state, str) and canonical_state(state) in ('Active', 'Rotated', 'Expired'):
                self.states.add(state)
            for value in body.values():
                if isinstance(value, (dict, list)):
                    self._collect(value)
        elif isinstance(body, list):
            for value in body:
                self._collect(value)

    def note(self, text):
        self.notes.append(text)

    # -- the steps ---------------------------------------------------------------------------------

    def run(self):
        try:
            self._run()
        except EcaError:
            if self._cleanup is not None:
                # stopped between staging and promoting: discard the staged pair, the main pair is as it was
                app_id, consumer_id, staged_id = self._cleanup
                self._cleanup = None
                try:
                    self._delete(app_id, consumer_id, staged_id, 'discard the staged pair after a failure')
                except EcaError:
                    self.note('The staged pair could not be discarded: delete it with sfdc.eca.eca_staged_credential '
                              'state=absent.')
            raise
        finally:
            self.finish()

    def _run(self):
        self.probe_versions()
        listed_before, app_id, label = self.find_app()
        consumer = self.read_consumers(app_id, label)
        if consumer is None:
            return
        consumer_id = consumer['id']
        self.read_main(app_id, consumer_id)
        slot = self.read_slot('read the staged slot', app_id, consumer_id)
        self.probe_error_body(app_id, consumer_id)
        if self.writes and self.variants['disabled_scope'] == UNKNOWN:
            if slot is not None:
                self.note('The staged slot of the consumer holds a %s credential: the write steps were skipped. '
                          'Probe an External Client App whose slot is empty.' % canonical_state(slot.get('state')))
            else:
                self.lifecycle(app_id, consumer_id, consumer.get('key'))
        if listed_before is False:
            self.relist_usage(app_id)

    def probe_versions(self):
        tried = self.params.get('api_versions') or list(VERSIONS)
        for version in tried:
            status, body, resp = self.call('API version %s' % version, 'GET',
                                           '/services/data/v%s/apps/oauth/usage' % version, params={'pageSize': 1})
            self.versions[str(version)] = status
        answered = [v for v, status in self.versions.items() if status == 200]
        if answered:
            highest = max(answered, key=float)
            if highest in SIMULATED_VERSIONS:
                self.variants['max_api_version'] = highest
            if highest == max(tried, key=float):
                self.note('Every version tried answered; newer ones may too.')

    def _list_usage(self, step):
        apps, pages, url, last = [], 0, '/apps/oauth/usage', None
        seen = set()
        while url and pages < MAX_PAGES and url not in seen:
            seen.add(url)
            status, body, resp = self.call('%s (page %d)' % (step, pages + 1), 'GET', url)
            if status != 200 or not isinstance(body, dict) or not isinstance(body.get('apps'), list):
                raise EcaStateError('GET %s/apps/oauth/usage answered HTTP %s: the probe cannot go on.'
                                    % (self.client.base_path, status))
            pages += 1
            items = [a for a in body['apps'] if isinstance(a, dict)]
            apps.extend(items)
            last = (len(items), body.get('nextPageUrl'))
            if not items:
                break
            url = body.get('nextPageUrl') if isinstance(body.get('nextPageUrl'), str) else None
        return apps, pages, last

    def find_app(self):
        apps, pages, last = self._list_usage('list apps')
        for app in apps:
            self.id_lengths.add(len(app.get('identifier') or ''))
        if last is not None:
            count, next_url = last
            if count == 0 and pages > 1:
                self.variants['paging'] = 'empty_next'   # a nextPageUrl that led to an empty page
            elif next_url is None:
                self.variants['paging'] = 'null_next'
        app_id = (self.params.get('app_id') or '').strip()
        app_name = (self.params.get('app_name') or '').strip()
        found = None
        for app in apps:
            if (app_id and same_id(app.get('identifier'), app_id)) or (not app_id and app.get('developerName') == app_name):
                found = app
        if found is None and not app_id:
            raise EcaInputError("No External Client App with developer name '%s' is listed. %s" % (app_name, USAGE_HINT))
        if found is not None:
            app_id = found['identifier']
        elif not APP_ID_RE.match(app_id):
            raise EcaInputError("app_id '%s' is not an External Client App id (0x..., 15 or 18 characters)." % app_id)
        self._remember_id(app_id, '{app_id}')
        if found is None:
            self.variants['usage_lists'] = 'used'   # confirmed by relist_usage once the app has usage data
            self.note('The app is not in the usage listing before the probe authenticated with it.')
        return found is not None, app_id, (found or {}).get('label')

    def read_consumers(self, app_id, label):
        path = '/apps/oauth/credentials/%s' % quote(app_id, safe='')
        status, body, resp = self.call('list consumers', 'GET', path)
        if status == 403:
            self._forbidden(body, 'credentials')
            return None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get('consumers'), list):
            raise EcaStateError('GET %s%s answered HTTP %s: the probe cannot go on.' % (self.client.base_path, '/apps/oauth/credentials/{app_id}', status))
        consumers = [c for c in body['consumers'] if isinstance(c, dict) and c.get('id')]
        if not consumers:
            raise EcaStateError('The app has no OAuth consumer: enable OAuth on the External Client App first.')
        for index, consumer in enumerate(consumers):
            self._remember_id(consumer['id'], '{consumer_id}' if index == 0 else '{consumer_id_%d}' % index)
        spellings = set('URL' if 'stagedCredentialsURL' in c else 'Url' if 'stagedCredentialsUrl' in c else '' for c in consumers)
        if len(spellings) == 1 and '' not in spellings:
            self.variants['staged_url_spelling'] = spellings.pop()
        names = [c.get('name') for c in consumers]
        if label:
            self.variants['consumer_names'] = 'app' if all(n == label for n in names) else 'own'
        # an endpoint that honours page answers page 1 with the next consumer, or nothing; one that ignores it repeats
        status, again, resp = self.call('list consumers, page 1', 'GET', path, params={'page': 1, 'pageSize': 1})
        if status == 200 and isinstance(again, dict) and isinstance(again.get('consumers'), list):
            first = [c.get('id') for c in again['consumers'][:1] if isinstance(c, dict)]
            if first and same_id(first[0], consumers[0]['id']):
                self.variants['paging'] = 'ignore_page'
        return self._pick(consumers)

    def _pick(self, consumers):
        consumer_id = (self.params.get('consumer_id') or '').strip()
        consumer_name = self.params.get('consumer_name')
        if consumer_id:
            if not SF_ID_RE.match(consumer_id):
                raise EcaInputError("consumer_id '%s' is not a Salesforce id: expected 15 or 18 letters and digits." % consumer_id)
            chosen = [c for c in consumers if same_id(c['id'], consumer_id)]
        elif consumer_name:
            chosen = [c for c in consumers if c.get('name') == consumer_name]
        else:
            chosen = consumers if len(consumers) == 1 else []
        if len(chosen) != 1:
            raise EcaInputError('Name one consumer of the app with consumer_id (%d consumers%s).'
                                % (len(consumers), ', %d named like that' % len(chosen) if consumer_name else ''))
        self.ids[chosen[0]['id']] = '{consumer_id}'
        return chosen[0]

    def read_main(self, app_id, consumer_id):
        path = '/apps/oauth/credentials/%s/%s' % (quote(app_id, safe=''), quote(consumer_id, safe=''))
        self.call('read the main key', 'GET', path, params={'part': 'key'})
        if not self.writes:
            return   # read-only runs do not fetch a secret
        status, body, resp = self.call('read the main key and secret', 'GET', path, params={'part': 'keyandsecret'})
        if status == 403:
            self._forbidden(body, 'secrets')
        elif status == 200 and isinstance(body, dict) and not body.get('secret'):
            self.variants['secret_access_off'] = 'no_secret'
            self.note('The main secret was not in the answer: REST access to consumer secrets looks off.')

    def _forbidden(self, body, scope):
        item = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body if isinstance(body, dict) else {}
        message = str(item.get('message') or '').lower()
        if item.get('errorCode') == 'FUNCTIONALITY_NOT_ENABLED' or 'not enabled' in message:
            self.variants['secret_access_off'] = 'forbidden'
            self.variants['disabled_scope'] = scope
            self.note('REST access to consumer secrets is off (%s refused): turn on "Allow access to External Client App '
                      'consumer secrets via REST API" and probe again for the rest.' % scope)
        else:
            self.note('A call was refused with HTTP 403 (%s): the calling user may lack a permission.'
                      % (item.get('errorCode') or 'no error code'))

    def _staged_path(self, app_id, consumer_id, staged_id=None):
        path = '/apps/oauth/credentials/%s/%s/staged' % (quote(app_id, safe=''), quote(consumer_id, safe=''))
        return path + ('/' + quote(staged_id, safe='') if staged_id else '')

    def read_slot(self, step, app_id, consumer_id):
        status, body, resp = self.call(step, 'GET', self._staged_path(app_id, consumer_id))
        if status == 404:
            self.variants['empty_staged'] = 'not_found'
            return None
        if status == 403:
            self._forbidden(body, 'secrets')
            return None
        if status != 200:
            return None
        item = staged_from_body(body)
        if item is None and isinstance(body, dict) and body.get('stagedCredentials') == []:
            self.variants['empty_staged'] = 'empty_list'
        if item is not None:
            self._remember_id(item.get('id'), '{staged_id}')
        return item

    def probe_error_body(self, app_id, consumer_id):
        status, body, resp = self.call('an unknown staged id (an error on purpose)', 'GET',
                                       self._staged_path(app_id, consumer_id, '0sC000000000000'))
        if status < 400:
            return
        form = body_form(resp)['form']
        if form == 'array':
            self.variants['error_body'] = 'array'
        elif form == 'object':
            self.variants['error_body'] = 'object'
        elif form == 'html':
            self.variants['error_body'] = 'html'

    def lifecycle(self, app_id, consumer_id, old_key):
        staged_path = self._staged_path(app_id, consumer_id)
        status, body, resp = self.call('stage a new pair', 'POST', staged_path, json_body={})
        if status == 403:
            self._forbidden(body, 'secrets')
            return
        if status not in (200, 201):
            self.note('Staging answered HTTP %s: the write steps stopped there.' % status)
            return
        self.changed = True
        self.variants['post_body'] = 'wrapper' if isinstance(body, dict) and 'stagedCredentials' in body else (
            'flat' if isinstance(body, dict) and ('consumerKey' in body or 'key' in body) else UNKNOWN)
        staged = staged_from_body(body) or {}
        self._cleanup = (app_id, consumer_id, staged.get('id'))
        read = self.read_slot('read the staged pair', app_id, consumer_id) or {}
        new_key = staged.get('key') or read.get('key')
        new_secret = staged.get('secret') or read.get('secret')
        staged_id = staged.get('id') or read.get('id')
        self._cleanup = (app_id, consumer_id, staged_id)
        self._remember_id(staged_id, '{staged_id}')
        if new_secret:
            self.secrets.add(new_secret)
        if not new_secret:
            self.variants['secret_access_off'] = 'no_secret'
            self.note('The staged pair came without its secret (REST access to consumer secrets is off); it was deleted.')
            self._cleanup = None
            self._delete(app_id, consumer_id, staged_id, 'delete the pair staged without its secret')
            return
        status, answer, resp = self.call('promote the staged pair', 'PATCH', self._staged_path(app_id, consumer_id, staged_id),
                                         json_body={'command': 'rotate'})
        if status == 204:
            self.variants['rotate_answer'] = 'no_content'
        elif status == 200:
            item = staged_from_body(answer) or {}
            if item.get('state') == 'Rotated' and item.get('key') == old_key:
                self.variants['rotate_answer'] = 'rotated'
            elif item.get('state') == 'Active' and item.get('key') == new_key:
                self.variants['rotate_answer'] = 'promoted'
        else:
            self.note('Promoting answered HTTP %s: the staged pair was deleted again.' % status)
            self._cleanup = None
            self._delete(app_id, consumer_id, staged_id, 'delete the pair that could not be promoted')
            return
        self._cleanup = None
        rotated = self.read_slot('read the slot after promoting', app_id, consumer_id) or {}
        if rotated.get('id'):
            self.variants['staged_id_on_rotate'] = 'keep' if same_id(rotated['id'], staged_id) else 'new'
            self._remember_id(rotated['id'], '{rotated_id}')
        status, body, resp = self.call('stage again over the Rotated pair', 'POST', staged_path, json_body={})
        if status in (200, 201):
            self.variants['post_over_rotated'] = 'replace'
            extra = staged_from_body(body) or self.read_slot('read the pair staged over the Rotated one', app_id, consumer_id) or {}
            self._delete(app_id, consumer_id, extra.get('id'), 'delete the pair staged over the Rotated one')
        elif 400 <= status < 500:
            self.variants['post_over_rotated'] = 'reject'
            self._delete(app_id, consumer_id, rotated.get('id'), 'delete the Rotated pair')
        if self.read_slot('read the emptied slot', app_id, consumer_id) is not None:
            self.note('The slot was not empty after deleting its credential.')
        self.verify_pair(new_key, new_secret)

    def _delete(self, app_id, consumer_id, staged_id, step):
        if not staged_id:
            self.note('No staged id to %s.' % step)
            return
        status, body, resp = self.call(step, 'DELETE', self._staged_path(app_id, consumer_id, staged_id))
        if status not in (200, 204, 404):
            self.note('Deleting answered HTTP %s: the staged slot may still hold a credential.' % status)

    def verify_pair(self, key, secret):
        # client credentials work on the org's own host only (a login host refuses them)
        flow = ClientCredentialsAuth(self.client.instance_url + '/services/oauth2/token', key, secret)
        record = {'step': 'authenticate with the new pair (client credentials)', 'request': 'POST /services/oauth2/token'}
        try:
            answer = self.client.request_token(flow)
            record.update(status=200, body=describe(answer))
        except EcaAuthError as exc:
            record.update(status=exc.status, body={'form': 'object', 'error': exc.error})
        self.observations.append(record)

    def relist_usage(self, app_id):
        apps, pages, last = self._list_usage('list apps again')
        if any(same_id(a.get('identifier'), app_id) for a in apps):
            self.note('The app appeared in the usage listing once it had been used.')
        else:
            self.note('The app is still not in the usage listing.')

    def finish(self):
        auth = self.client.auth
        if isinstance(auth, RefreshTokenAuth):
            self.variants['refresh_token_rotation'] = 'on' if auth.new_refresh_token else 'off'
        if self.client.throttled:
            self.variants['rate_limit'] = 'on'
        lengths = set(n for n in self.id_lengths if n)
        if lengths == set([15]):
            self.variants['id_length'] = '15'
        elif lengths == set([18]):
            self.variants['id_length'] = '18'
        cases = set('upper' if s.isupper() else 'lower' if s.islower() else 'title' if s == canonical_state(s) else '?'
                    for s in self.states)
        if len(cases) == 1 and '?' not in cases:
            self.variants['state_case'] = cases.pop()

    def profile(self):
        return {
            'sfdc_eca_profile': FORMAT,
            'generated': _now(),
            'probe_writes': self.writes,
            'api_version': self.client.api_version,
            'api_versions': dict((v, 'answered' if s == 200 else 'HTTP %s' % s) for v, s in sorted(self.versions.items())),
            'variants': self.variants,
            'notes': self.notes,
            'observations': self.observations,
        }


def run_probe(client, params, check_mode=False, diff=False):
    """The probe as a module operation: ``writes`` (default true) runs the lifecycle, false (or check mode) only reads."""
    from ansible_collections.sfdc.eca.plugins.module_utils._operations import _finish
    writes = bool(params.get('writes', True)) and not check_mode
    probe = Probe(client, params, writes)
    probe.run()
    profile = probe.profile()
    # a last guard: no secret the run held may be in the profile
    text = json.dumps(profile)
    for value in client._secrets() | probe.secrets:
        if value and len(value) >= 8 and value in text:
            raise EcaStateError('The probe profile would have held a secret; it was not written.')
    probe.secrets.clear()
    result = {'changed': probe.changed, 'profile': profile}
    return _finish(client, result)
