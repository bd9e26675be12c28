# -*- coding: utf-8 -*-
# Copyright (c) sfdc.eca contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one retry policy of the collection: full-jitter exponential backoff, Retry-After honoured."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import random as _random
import time
from email.utils import parsedate_tz, mktime_tz

# 503 is Salesforce's Connect REST rate limit; 429 is not documented but treated alike.
RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
WRITE_METHODS = frozenset(('POST', 'PATCH', 'PUT', 'DELETE'))


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, mktime_tz(parsed) - now)


class RetryPolicy:
    """How many times and how long to wait.

    ``max_retries`` retries after the first attempt. Delay before retry ``n`` (0-based) is
    ``random() * min(max_delay, backoff * 2 ** n)`` (full jitter), or the server's
    ``Retry-After`` when given, never more than ``max_delay``.
    ``sleep`` and ``random`` are injectable so tests never really sleep.
    """

    def __init__(self, max_retries=4, backoff=0.5, max_delay=30.0, sleep=None, random=None):
        self.max_retries = max(0, int(max_retries))
        self.backoff = max(0.0, float(backoff))
        self.max_delay = max(0.0, float(max_delay))
        self.sleep = sleep if sleep is not None else time.sleep
        self.random = random if random is not None else _random.random
        self.slept = []

    def delay(self, retry_number, retry_after=None):
        if retry_after is not None:
            return min(float(retry_after), self.max_delay)
        ceiling = min(self.max_delay, self.backoff * (2 ** retry_number))
        return self.random() * ceiling

    def wait(self, retry_number, retry_after=None):
        seconds = self.delay(retry_number, retry_after)
        self.slept.append(seconds)
        if seconds > 0:
            self.sleep(seconds)
        return seconds

    @staticmethod
    def retryable_status(status):
        return status in RETRY_STATUSES

    @staticmethod
    def is_write(method):
        return method.upper() in WRITE_METHODS
