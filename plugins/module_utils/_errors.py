# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Typed exceptions of the sfdc.eca client.

Every message is secret-free: it may name hosts, paths, option names, ids, keys
and states, never a secret, token or header. ``to_result()`` gives the fields a
module merges into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class EcaError(Exception):
    """Base class. ``str()`` is a clear message for the user."""

    def __init__(self, message, **fields):
        super(EcaError, self).__init__(message)
        self.message = message
        self.fields = fields

    def to_result(self):
        result = {'error_type': type(self).__name__}
        for name, value in self.fields.items():
            if value is not None:
                result[name] = value
        return result


class EcaInputError(EcaError):
    """An option value is wrong; the message names it and what is allowed."""


class EcaTransportError(EcaError):
    """Connection refused/reset, timeout or TLS failure."""

    def __init__(self, message, host=None, **fields):
        super(EcaTransportError, self).__init__(message, host=host, **fields)
        self.host = host


class EcaAuthError(EcaError):
    """The token endpoint refused the request."""

    def __init__(self, message, error=None, description=None, status=None, auth_flow=None):
        super(EcaAuthError, self).__init__(
            message, error=error, error_description=description, status=status, auth_flow=auth_flow)
        self.error = error
        self.description = description
        self.status = status
        self.auth_flow = auth_flow


class EcaApiError(EcaError):
    """A REST call answered with an error."""

    def __init__(self, message, status=None, error_code=None, api_message=None, method=None, path=None):
        super(EcaApiError, self).__init__(
            message, status=status, error_code=error_code, api_message=api_message, method=method, path=path)
        self.status = status
        self.error_code = error_code
        self.api_message = api_message
        self.method = method
        self.path = path


class EcaLimitExceededError(EcaApiError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's daily API request limit is spent."""


class EcaRateLimitedError(EcaApiError):
    """HTTP 429 after every retry: the org or a gateway limits the request rate (not the daily limit)."""


class EcaFeatureDisabledError(EcaApiError):
    """The org setting that allows reading consumer secrets over REST is off."""


class EcaNotFoundError(EcaApiError):
    """404 from the REST API."""


class EcaStateError(EcaError):
    """The org is in a state the requested change cannot act on."""


class EcaAmbiguousWrite(EcaError):
    """A write may or may not have happened (timeout, reset or 5xx after sending).

    Raised by the client; the operation layer re-reads the state and decides.
    """

    def __init__(self, message, method=None, path=None, cause=None):
        super(EcaAmbiguousWrite, self).__init__(message, method=method, path=path)
        self.method = method
        self.path = path
        self.cause = cause
