# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only audit of one org: apps, consumers, staged slots, against the rotation history."""

from __future__ import annotations

import time
import typing as t

from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaError, EcaLimitExceededError
from ansible_collections.sfdc.eca.plugins.plugin_utils import _rotation_history as history
from ansible_collections.sfdc.eca.plugins.plugin_utils._delivery import ConfigError, Deliveries
from ansible_collections.sfdc.eca.plugins.plugin_utils._report import audit_rows
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_engine import OrgApi
from ansible_collections.sfdc.eca.plugins.plugin_utils._rotation_model import Secrets


def audit_org(org: str, options: t.Mapping[str, t.Any], environment: dict[t.Any, t.Any] | None = None,
              sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    """-> {records, org_failed, api_calls}: one row per consumer (or per app without consumers). Writes nothing."""
    secrets = Secrets()
    connection = options.get('connection') or {}
    instance_url = connection.get('instance_url')
    api = None

    def failed(phase: str, message: str) -> dict[str, t.Any]:
        return {'records': [{'org': org, 'instance_url': instance_url, 'outcome': 'failed', 'phase': phase,
                             'error': secrets.redact(message)}], 'org_failed': True,
                'api_calls': api.calls if api else 0}
    try:
        api = OrgApi(connection, secrets, {} if environment is None else environment, sleep)
        api.authenticate()
    except EcaError as exc:
        return failed('authenticate', 'authentication to the org failed: %s' % exc)
    try:
        instance_url = instance_url or api.client.instance_url
        wanted = set(options.get('audit_apps') or [])
        try:
            listed = api.apps()
        except EcaError as exc:
            return failed('discover', "listing the org's apps failed: %s" % exc)
        apps = []
        for app in listed:
            if wanted and app.get('developer_name') not in wanted:
                continue
            entry: dict[str, t.Any] = {'app_name': app.get('developer_name'), 'app_id': app.get('identifier')}
            try:
                consumers = api.consumers(app['identifier'])
                for consumer in consumers:
                    staged = api.client.get_staged(app['identifier'], consumer['id'])
                    if staged:
                        secrets.add(staged.pop('secret', None))
                    consumer['staged'] = staged
                entry['consumers'] = consumers
            except EcaLimitExceededError as exc:
                return failed('read', str(exc))
            except EcaError as exc:
                entry['error'] = 'reading the consumers failed: %s' % secrets.redact(str(exc))
            apps.append(entry)
        missing = sorted(wanted - set(a.get('developer_name') for a in listed))
        try:
            store = Deliveries().history_store(options.get('history_store'))
        except ConfigError as exc:
            return failed('discover', str(exc))
        rows = audit_rows(org, instance_url, apps, history.History(options.get('state_dir') or '.', store).entries(org),
                          float(options.get('expiry_warning_days') or 0))
        for name in missing:
            rows.append({'org': org, 'instance_url': instance_url, 'app_name': name, 'outcome': 'failed', 'phase': 'discover',
                         'error': "no External Client App named '%s' in the listing (it shows only apps with OAuth usage "
                                  'data)' % name})
        return {'records': rows, 'org_failed': any(r.get('outcome') == 'failed' for r in rows), 'api_calls': api.calls}
    except history.HistoryError as exc:
        return failed('discover', str(exc))
    finally:
        api.close()
