"""RetryPolicy arithmetic (no simulator): full jitter, cap, Retry-After parsing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import email.utils

import pytest

from ansible_collections.sfdc.eca.plugins.module_utils._retry import RetryPolicy, parse_retry_after


def test_full_jitter_grows_exponentially_and_is_capped():
    policy = RetryPolicy(max_retries=10, backoff=0.5, max_delay=3.0, random=lambda: 1.0, sleep=lambda s: None)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_scales_the_ceiling():
    policy = RetryPolicy(backoff=1.0, max_delay=30, random=lambda: 0.25, sleep=lambda s: None)
    assert policy.delay(3) == pytest.approx(2.0)


def test_retry_after_is_honoured_up_to_the_cap():
    policy = RetryPolicy(backoff=1.0, max_delay=10, random=lambda: 0.0, sleep=lambda s: None)
    assert policy.delay(0, retry_after=7) == 7
    assert policy.delay(0, retry_after=120) == 10


def test_wait_calls_the_injected_sleep_and_records():
    slept = []
    policy = RetryPolicy(backoff=1.0, random=lambda: 0.5, sleep=slept.append)
    policy.wait(1)
    policy.wait(0, retry_after=3)
    assert slept == [1.0, 3.0]
    assert policy.slept == [1.0, 3.0]


@pytest.mark.parametrize('value, expected', [('5', 5.0), (' 2.5 ', 2.5), ('-3', 0.0), ('', None), (None, None), ('soon', None)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = 1_700_000_000
    header = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(42, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 42, usegmt=True), now=now) == 0.0


def test_retryable_statuses_and_write_methods():
    assert all(RetryPolicy.retryable_status(s) for s in (429, 500, 502, 503, 504))
    assert not any(RetryPolicy.retryable_status(s) for s in (400, 401, 403, 404, 409))
    assert RetryPolicy.is_write('post') and RetryPolicy.is_write('PATCH') and RetryPolicy.is_write('DELETE')
    assert not RetryPolicy.is_write('GET')


def test_negative_settings_are_clamped():
    policy = RetryPolicy(max_retries=-1, backoff=-1, max_delay=-5)
    assert (policy.max_retries, policy.backoff, policy.max_delay) == (0, 0.0, 0.0)
