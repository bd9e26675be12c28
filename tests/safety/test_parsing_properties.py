"""Property-based tests of the parsing of API answers: whatever JSON (or non-JSON) the org answers, the client
raises nothing but EcaError subclasses, and the values of secret fields never reach an error message.

The client runs on a fake transport (no network); every call of the API surface is driven with
arbitrary answers: staged items in both body shapes, REST error arrays and objects, usage and consumer
pages, token answers, Sforce-Limit-Info and Retry-After headers.
"""

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from urllib3._collections import HTTPHeaderDict

from ansible_collections.sfdc.eca.plugins.module_utils._auth import AccessTokenAuth, ClientCredentialsAuth
from ansible_collections.sfdc.eca.plugins.module_utils._client import EcaClient, normalize_staged, staged_from_body
from ansible_collections.sfdc.eca.plugins.module_utils._errors import EcaError
from ansible_collections.sfdc.eca.plugins.module_utils._http import Response
from ansible_collections.sfdc.eca.plugins.module_utils._retry import RetryPolicy, parse_retry_after

MARK = "S3CR3T\u2603"
TOKEN = "00DSAFETY!" + MARK + "access-token"
CLIENT_SECRET = MARK + "client-secret-value"
SECRET_KEYS = ("secret", "consumerSecret", "access_token", "refresh_token", "client_secret", "signature")
FIELD_KEYS = ("id", "key", "state", "consumerKey", "createdBy", "createdDate", "expirationDate", "url",
              "stagedCredentials", "stagedCredentialsUrl", "stagedCredentialsURL", "apps", "consumers", "identifier",
              "developerName", "label", "name", "nextPageUrl", "currentPageUrl", "errorCode", "message", "fields",
              "error", "error_description", "instance_url", "token_type", "issued_at")
STATES = st.sampled_from(["Active", "Rotated", "Expired", "Pending", "", "active"])

plain_text = st.text(max_size=30).filter(lambda s: "S3CR3T" not in s)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40),
                    st.floats(allow_nan=False, allow_infinity=False), plain_text, STATES)
secret_values = st.builds(lambda s: MARK + s, st.text(alphabet="abcdefXYZ0123456789", min_size=4, max_size=12))


def _dicts(children):
    normal = st.dictionaries(st.one_of(st.sampled_from(FIELD_KEYS), plain_text), children, max_size=6)
    secret = st.dictionaries(st.sampled_from(SECRET_KEYS), secret_values, max_size=2)
    return st.builds(lambda a, b: dict(a, **b), normal, secret)


json_values = st.recursive(scalars, lambda children: st.one_of(st.lists(children, max_size=4), _dicts(children)),
                           max_leaves=25)


def staged_item():
    return st.fixed_dictionaries({"id": st.one_of(st.none(), plain_text), "state": STATES},
                                 optional={"key": plain_text, "consumerKey": plain_text, "secret": secret_values,
                                           "consumerSecret": secret_values, "createdBy": scalars,
                                           "expirationDate": scalars, "createdDate": scalars})


staged_bodies = st.one_of(
    st.builds(lambda items: {"stagedCredentials": items}, st.lists(st.one_of(staged_item(), json_values), max_size=3)),
    staged_item(),
    st.lists(staged_item(), max_size=3),
    json_values,
)
error_bodies = st.one_of(
    st.lists(st.fixed_dictionaries({}, optional={"errorCode": scalars, "message": scalars, "fields": json_values}), max_size=2),
    st.fixed_dictionaries({}, optional={"errorCode": scalars, "message": scalars, "error": scalars,
                                        "error_description": scalars}),
    json_values,
)
page_bodies = st.one_of(
    st.fixed_dictionaries({"apps": st.lists(st.one_of(
        st.fixed_dictionaries({}, optional={"identifier": scalars, "developerName": scalars, "label": scalars}),
        json_values), max_size=3)}, optional={"nextPageUrl": st.one_of(st.none(), plain_text, json_values)}),
    st.fixed_dictionaries({"consumers": st.lists(st.one_of(
        st.fixed_dictionaries({}, optional={"id": scalars, "key": scalars, "name": scalars,
                                            "stagedCredentialsUrl": scalars, "stagedCredentialsURL": scalars}),
        json_values), max_size=3)}, optional={"nextPageUrl": st.one_of(st.none(), plain_text, json_values)}),
    json_values,
)
raw_bodies = st.one_of(st.binary(max_size=60), st.sampled_from([b"", b"{", b"[", b"null", b"<html>x</html>", b"\xff\xfe"]))
statuses = st.sampled_from([200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 409, 429, 500, 503])
headers = st.fixed_dictionaries({}, optional={
    "Sforce-Limit-Info": st.one_of(plain_text, st.just("api-usage=18/5000"), st.just("api-usage=")),
    "Retry-After": st.one_of(plain_text, st.integers(-5, 10 ** 6).map(str), st.just("Wed, 21 Oct 2015 07:28:00 GMT")),
})


def answer(body_strategy):
    return st.tuples(statuses, st.one_of(body_strategy.map(lambda b: json.dumps(b).encode()), raw_bodies), headers)


class FakeHttp:
    """Serves the drawn answers in turn (the last one again when they run out)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = 0

    def request(self, method, url, host, verify, timeout, **kwargs):
        status, body, hdrs = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if self.calls > 50:
            raise AssertionError("more than 50 requests for one call")
        return Response(status, HTTPHeaderDict(dict(hdrs, **{"Content-Type": "application/json"})), body)


def client(answers, auth=None):
    return EcaClient("https://org.example.test", auth or AccessTokenAuth(TOKEN),
                     retry=RetryPolicy(max_retries=1, backoff=0, max_delay=0, sleep=lambda s: None),
                     http=FakeHttp(answers))


def check(call):
    """Run call(); anything raised must be an EcaError whose message and fields hold no secret value."""
    try:
        call()
    except EcaError as exc:
        text = str(exc) + json.dumps(exc.to_result(), default=str)
        assert MARK not in text, text
        assert TOKEN not in text and CLIENT_SECRET not in text


# derandomize: the same examples every run, so a strict xfail of an open finding cannot turn flaky.
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
# The explicit @example rows are regressions of findings F3 and F3b (odd JSON shapes escaping as
# AttributeError/TypeError instead of an EcaError that names the odd field).


@SETTINGS
@given(json_values)
def test_normalize_staged_any_json(value):
    result = normalize_staged(value)
    assert result is None or set(result) <= {"id", "key", "secret", "state", "created_by", "created_date", "expiration_date"}


@SETTINGS
@given(staged_bodies)
@example({"stagedCredentials": True})
def test_staged_from_body_any_shape(body):
    try:
        result = staged_from_body(body)
    except EcaError as exc:
        assert "stagedCredentials" in str(exc)
        return
    assert result is None or isinstance(result, dict)


@SETTINGS
@given(st.one_of(plain_text, st.none()))
def test_retry_after_any_text(value):
    result = parse_retry_after(value)
    assert result is None or result >= 0


@SETTINGS
@given(st.lists(answer(staged_bodies), min_size=1, max_size=3))
@example([(200, b'{"stagedCredentials": 1}', {})])
def test_staged_calls_any_answer(answers):
    check(lambda: client(answers).get_staged("0xI000000000001AAA", "888000000000001AAA"))
    check(lambda: client(answers).stage("0xI000000000001AAA", "888000000000001AAA"))
    check(lambda: client(answers).rotate("0xI000000000001AAA", "888000000000001AAA", "0Xs000000000001AAA"))
    check(lambda: client(answers).delete_staged("0xI000000000001AAA", "888000000000001AAA", "0Xs000000000001AAA"))


@SETTINGS
@given(st.lists(answer(error_bodies), min_size=1, max_size=2))
@example([(400, b'[{"errorCode": 7, "message": "x"}]', {})])
@example([(400, b'{"message": 12}', {})])
def test_error_bodies_any_shape(answers):
    answers = [(400 if s < 300 else s, b, h) for s, b, h in answers]
    check(lambda: client(answers).get_main("0xI000000000001AAA", "888000000000001AAA"))
    check(lambda: client(answers).stage("0xI000000000001AAA", "888000000000001AAA"))


@SETTINGS
@given(st.lists(answer(st.lists(st.fixed_dictionaries({}, optional={
    "errorCode": st.one_of(plain_text, st.sampled_from(["REQUEST_LIMIT_EXCEEDED", "NOT_FOUND", "INVALID_SESSION_ID"])),
    "message": st.one_of(plain_text, st.just("Access ... is not enabled for this org"))}), min_size=1, max_size=2)),
    min_size=1, max_size=2))
def test_documented_error_arrays(answers):
    """Error arrays with string fields (the documented shape) never escape as anything but EcaError."""
    answers = [(400 if s < 300 else s, b, h) for s, b, h in answers]
    check(lambda: client(answers).get_main("0xI000000000001AAA", "888000000000001AAA"))


@SETTINGS
@given(st.lists(answer(page_bodies), min_size=1, max_size=4))
@example([(200, b'{"apps": [null]}', {})])
@example([(200, b'{"consumers": ["x"], "nextPageUrl": {"a": 1}}', {})])
def test_pages_any_shape(answers):
    check(lambda: client(answers).list_apps())
    check(lambda: client(answers).list_consumers("0xI000000000001AAA"))


@SETTINGS
@given(st.lists(answer(st.fixed_dictionaries({"apps": st.lists(st.fixed_dictionaries(
    {"identifier": plain_text, "developerName": plain_text}), max_size=3)},
    optional={"nextPageUrl": st.one_of(st.none(), plain_text)})), min_size=1, max_size=4))
def test_documented_usage_pages(answers):
    """Usage pages of the documented shape (strings, any paging URL) never escape as anything but EcaError."""
    check(lambda: client(answers).list_apps())


@SETTINGS
@given(st.lists(answer(json_values), min_size=1, max_size=2))
def test_token_answers_any_shape(answers):
    auth = ClientCredentialsAuth("https://org.example.test/services/oauth2/token", "3MVGkey", CLIENT_SECRET)
    check(lambda: client(answers, auth).authenticate())


@SETTINGS
@given(st.lists(answer(json_values), min_size=1, max_size=3))
@example([(302, b'{"errorCode": true}', {"Sforce-Limit-Info": "api-usage=1/2"})])
def test_limit_info_and_usage_any_answer(answers):
    c = client(answers)
    check(c.check_token)
    assert c.api_usage is None or isinstance(c.api_usage, str)
