"""Classification and retry policies (SPEC §2.2, §2.8, §3.3), from real exceptions.

Every HTTP failure here comes out of pyairtable's own code path: a tiny scripted HTTP server
on 127.0.0.1 answers each request with the next scripted reply, and a real
``pyairtable.Api(endpoint_url=..., retry_strategy=None)`` talks to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyairtable
import pytest
import requests
import tenacity

from jobtrack_airtable.errors import (
    AirtableError,
    AuthenticationError,
    ComputedFieldError,
    EndpointUnreachableError,
    InvalidFormulaError,
    InvalidRequestError,
    InvalidSelectOptionError,
    IteratorExpiredError,
    NetworkError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    TransientServerError,
    UnknownFieldError,
)
from jobtrack_airtable.transport.recovery import (
    DEFAULT_POLICY,
    RetryPolicy,
    call_with_retry,
    classify,
    is_retryable,
    redact,
    retrying,
)

TOKEN = "patFAKEt0kenABCDE.f00dfeedcafe0123456789abcdef0123456789abcdef0123456789abcdef"
BASE = "appAAAAAAAAAAAAAA"
TABLE_PATH = f"/v0/{BASE}/Job%20Tracking"


# --- a scripted Airtable stand-in ----------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer: a status and body, or a misbehaviour (``action``)."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"records": []})
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "reply"  # reply | drop | delay | truncate
    delay: float = 0.0


class ScriptedServer:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, self.headers.get("Authorization")))
                reply = server.script.popleft() if server.script else server.default
                if reply.action == "drop":
                    return  # close without answering
                if reply.action == "delay":
                    time.sleep(reply.delay)
                body = reply.body
                if isinstance(body, dict | list):
                    raw = json.dumps(body).encode()
                    ctype = "application/json"
                else:
                    raw = (
                        str(body).replace("{auth}", self.headers.get("Authorization", "")).encode()
                    )
                    ctype = "text/html"
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.action == "truncate":
                    self.send_header("Content-Length", str(len(raw) + 100))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (timeout test)
                    self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # broken pipes after client timeouts are expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        # A short poll interval so that shutdown() returns at once (the default waits 0.5 s).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def table(server: ScriptedServer) -> pyairtable.Table:
    api = pyairtable.Api(TOKEN, endpoint_url=server.url, retry_strategy=None, timeout=(1, 1))
    return api.table(BASE, "Job Tracking")


def failure_of(fn: Any, *args: Any, **kwargs: Any) -> BaseException:
    with pytest.raises(Exception) as info:  # noqa: PT011 - any raw exception is the input here
        fn(*args, **kwargs)
    return info.value


def assert_no_token(*texts: object) -> None:
    for text in texts:
        assert TOKEN not in str(text)
        assert "f00dfeedcafe" not in str(text)
        assert "patFAKEt0ken" not in str(text)


# --- classification of every SPEC §2.2 status/type, in all three body shapes ---------------

CASES = [
    (401, "AUTHENTICATION_REQUIRED", "Authentication required", AuthenticationError),
    (403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", "Invalid permissions", PermissionDeniedError),
    (403, "INVALID_PERMISSIONS", "You are not permitted to do this", PermissionDeniedError),
    (404, "NOT_FOUND", "Could not find what you are looking for", NotFoundError),
    (404, "TABLE_NOT_FOUND", "Could not find table Nope", NotFoundError),
    (404, "MODEL_ID_NOT_FOUND", "Record not found", NotFoundError),
    (413, "REQUEST_TOO_LARGE", "Request body too large", PayloadTooLargeError),
    (422, "UNKNOWN_FIELD_NAME", 'Unknown field name: "Success Rate"', UnknownFieldError),
    (
        422,
        "INVALID_VALUE_FOR_COLUMN",
        'Field "Duration" cannot accept a value because the field is computed',
        ComputedFieldError,
    ),
    (
        422,
        "INVALID_MULTIPLE_CHOICE_OPTIONS",
        'Insufficient permissions to create new select option ""Recovery""',
        InvalidSelectOptionError,
    ),
    (422, "INVALID_FILTER_BY_FORMULA", "The formula for filtering is invalid", InvalidFormulaError),
    (
        422,
        "INVALID_RECORDS",
        "A maximum of 10 records can be created per request but you have provided 11.",
        InvalidRequestError,
    ),
    (
        422,
        "INVALID_REQUEST_UNKNOWN",
        "Invalid request: parameter validation failed",
        InvalidRequestError,
    ),
    (422, "INVALID_REQUEST_BODY", "Could not parse request body", InvalidRequestError),
    (
        422,
        "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
        "Pagination offset expired",
        IteratorExpiredError,
    ),
    (429, "RATE_LIMIT_REACHED", "Rate limit exceeded. Please try again later", RateLimitedError),
    (500, "SERVER_ERROR", "Server error", TransientServerError),
    (502, "BAD_GATEWAY", "Bad gateway", TransientServerError),
    (503, "RETRIABLE_ERROR", "Try again", TransientServerError),
]
SHAPES = ["type+message", "type only", "bare string"]


def body_for(shape: str, etype: str, message: str) -> dict[str, Any]:
    if shape == "type+message":
        return {"error": {"type": etype, "message": message}}
    if shape == "type only":
        return {"error": {"type": etype}}
    return {"error": etype}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("status", "etype", "message", "expected"), CASES)
def test_classifies_every_status_and_type(
    server: ScriptedServer,
    table: pyairtable.Table,
    shape: str,
    status: int,
    etype: str,
    message: str,
    expected: type[AirtableError],
) -> None:
    server.add(Reply(status, body_for(shape, etype, message)))
    raw = failure_of(table.all, formula="{Run ID}='250930-141522'")
    assert isinstance(raw, requests.HTTPError)  # what pyairtable really raises

    err = classify(raw)

    assert type(err) is expected
    assert isinstance(err, AirtableError)
    assert err.status == status
    assert err.error_type == etype
    assert err.method == "GET"
    assert err.path == TABLE_PATH  # no query string: formulas may hold data
    if shape == "type+message":
        assert err.message == message
    else:
        assert err.message  # falls back to the HTTP reason phrase
    assert is_retryable(err) is (expected in (RateLimitedError, TransientServerError))
    assert_no_token(err, repr(err))


def test_caller_method_and_path_override(server: ScriptedServer, table: pyairtable.Table) -> None:
    server.add(Reply(404, {"error": "NOT_FOUND"}))
    err = classify(failure_of(table.get, "recAAAAAAAAAAAAAA"), method="GET", path="/custom")
    assert isinstance(err, NotFoundError)
    assert err.path == "/custom"
    assert "(GET /custom)" in str(err)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", TransientServerError),
        (504, "upstream request timeout", TransientServerError),
        (404, "404 page not found", NotFoundError),
        (429, "", RateLimitedError),
        (500, "Internal Server Error", TransientServerError),
        (401, "Unauthorized", AuthenticationError),
        (400, "Bad Request", InvalidRequestError),
        (418, "I'm a teapot", InvalidRequestError),
        (501, "Not Implemented", AirtableError),
    ],
)
def test_non_json_bodies(
    server: ScriptedServer,
    table: pyairtable.Table,
    status: int,
    body: str,
    expected: type[AirtableError],
) -> None:
    server.add(Reply(status, body))
    err = classify(failure_of(table.all))
    assert type(err) is expected
    assert err.status == status
    assert err.error_type is None
    assert err.message


def test_unknown_field_success_rate_is_not_a_rate_limit(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    # The original system matched "rate" in this message and waited 30 s, forever.
    server.add(
        Reply(
            422,
            {
                "error": {
                    "type": "UNKNOWN_FIELD_NAME",
                    "message": "Unknown field name: Success Rate",
                }
            },
        )
    )
    err = classify(failure_of(table.create, {"Success Rate": 1}))
    assert isinstance(err, UnknownFieldError)
    assert not isinstance(err, RateLimitedError)
    assert err.method == "POST"
    assert not is_retryable(err)


def test_rate_words_in_a_422_message_do_not_make_it_a_rate_limit(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    msg = "Rate limit exceeded. Please try again later"
    server.add(Reply(422, {"error": {"type": "INVALID_REQUEST_UNKNOWN", "message": msg}}))
    err = classify(failure_of(table.all))
    assert type(err) is InvalidRequestError


def test_503_retry_after_is_parsed(server: ScriptedServer, table: pyairtable.Table) -> None:
    server.add(Reply(503, {"error": {"type": "RETRIABLE_ERROR"}}, headers={"Retry-After": "7"}))
    err = classify(failure_of(table.all))
    assert isinstance(err, TransientServerError)
    assert err.retry_after == 7.0
    # The wait honours Retry-After when it is longer than the backoff.
    policy = RetryPolicy(transient_initial=0.01, transient_max=0.02)
    assert all(policy.wait_for(err, 1) >= 7.0 for _ in range(20))


def test_503_without_or_with_garbage_retry_after(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    server.add(Reply(503, {"error": "RETRIABLE_ERROR"}, headers={"Retry-After": "soon"}))
    err = classify(failure_of(table.all))
    assert isinstance(err, TransientServerError)
    assert err.retry_after is None


def test_pyairtable_retry_error_is_a_rate_limit(server: ScriptedServer) -> None:
    # pyairtable's own retry (which we never enable) gives up with RetryError, no response.
    server.default = Reply(429, {"error": {"type": "RATE_LIMIT_REACHED"}})
    api = pyairtable.Api(
        TOKEN,
        endpoint_url=server.url,
        retry_strategy=pyairtable.retry_strategy(total=2, backoff_factor=0),
        timeout=(1, 1),
    )
    raw = failure_of(api.table(BASE, "Job Tracking").all)
    assert isinstance(raw, requests.exceptions.RetryError)
    err = classify(raw)
    assert isinstance(err, RateLimitedError)
    assert err.status == 429
    assert is_retryable(err)


def test_pyairtable_retry_error_on_5xx_is_transient(server: ScriptedServer) -> None:
    server.default = Reply(502, "bad gateway")
    api = pyairtable.Api(
        TOKEN,
        endpoint_url=server.url,
        retry_strategy=pyairtable.retry_strategy(
            total=1, backoff_factor=0, status_forcelist=(502,)
        ),
        timeout=(1, 1),
    )
    err = classify(failure_of(api.table(BASE, "Job Tracking").all))
    assert isinstance(err, TransientServerError)
    assert err.status == 502


# --- network failures ----------------------------------------------------------------------


def test_dropped_connection_is_a_network_error(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    server.add(Reply(action="drop"))
    raw = failure_of(table.all)
    assert isinstance(raw, requests.ConnectionError)
    err = classify(raw)
    assert type(err) is NetworkError
    assert err.status is None
    assert err.method == "GET"
    assert err.path == TABLE_PATH
    assert is_retryable(err)


def _dead_endpoint() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_one_clear_line(err: BaseException, endpoint: str) -> None:
    text = str(err)
    assert "\n" not in text
    assert endpoint in text
    assert "JOBTRACK_ENDPOINT_URL" in text
    # None of urllib3's dump ("HTTPConnectionPool(host=...): Max retries exceeded with url:
    # ... (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x...>")
    for noise in ("urllib3", "Max retries", "HTTPConnection", "object at 0x", "Caused by"):
        assert noise not in text, text


def test_connection_refused_is_an_unreachable_endpoint() -> None:
    endpoint = _dead_endpoint()
    api = pyairtable.Api(TOKEN, endpoint_url=endpoint, retry_strategy=None)
    err = classify(failure_of(api.table(BASE, "Job Tracking").all, formula="{Run ID}='x'"))
    assert type(err) is EndpointUnreachableError
    assert isinstance(err, NetworkError)  # still a network failure for callers that catch it
    assert err.endpoint == endpoint
    assert err.reason == "connection refused"
    assert str(err) == (
        f"cannot reach {endpoint} (connection refused): is the server running and listening "
        "on that port? (check JOBTRACK_ENDPOINT_URL)"
    )
    assert_one_clear_line(err, endpoint)
    assert "filterByFormula" not in str(err)
    assert_no_token(err)


def test_unknown_host_is_an_unreachable_endpoint() -> None:
    # .invalid never resolves (RFC 2606); without any DNS the lookup fails the same way.
    endpoint = "https://no-such-host.invalid"
    api = pyairtable.Api(TOKEN, endpoint_url=endpoint, retry_strategy=None, timeout=(2, 2))
    err = classify(failure_of(api.table(BASE, "Job Tracking").all))
    assert type(err) is EndpointUnreachableError
    assert err.reason == "host name 'no-such-host.invalid' not found"
    assert_one_clear_line(err, endpoint)


@pytest.mark.parametrize("endpoint", ["dead-port", "https://no-such-host.invalid"])
def test_a_dead_endpoint_fails_fast(endpoint: str) -> None:
    # Before: 6 attempts over 11-21 s of backoff, then a urllib3 dump.  Now: retried only
    # while the next attempt starts within unreachable_seconds (2 s) of the first.
    import random

    url = _dead_endpoint() if endpoint == "dead-port" else endpoint
    api = pyairtable.Api(TOKEN, endpoint_url=url, retry_strategy=None, timeout=(2, 2))
    waits = SleepRecorder()
    attempts = []

    def list_jobs() -> object:
        attempts.append(1)
        return api.table(BASE, "Job Tracking").all()

    random.seed(3)  # tenacity's jitter draws from the global generator
    started = time.monotonic()
    with pytest.raises(EndpointUnreachableError) as info:
        call_with_retry(list_jobs, op="list jobs", policy=DEFAULT_POLICY.with_sleep(waits))
    elapsed = time.monotonic() - started
    print(
        f"\ndead endpoint {endpoint}: {len(attempts)} attempts, {sum(waits.waits):.2f} s of "
        f"backoff, {elapsed:.2f} s of requests: {info.value}"
    )
    assert 1 <= len(attempts) < DEFAULT_POLICY.max_attempts
    assert len(waits.waits) == len(attempts) - 1
    assert sum(waits.waits) <= DEFAULT_POLICY.unreachable_seconds
    assert_one_clear_line(info.value, url)


def test_a_dropped_connection_is_still_retried_in_full() -> None:
    # The fail-fast rule is for endpoints that cannot be reached at all: a connection that
    # was made and then dropped keeps the normal backoff and attempts.
    policy = DEFAULT_POLICY.with_sleep(SleepRecorder())
    dropped = NetworkError("connection failed (ConnectionError): reset")
    attempts = []

    def flaky() -> None:
        attempts.append(1)
        raise dropped

    with pytest.raises(NetworkError):
        call_with_retry(flaky, op="flaky", policy=policy)
    assert len(attempts) == DEFAULT_POLICY.max_attempts


def test_read_timeout_is_a_network_error(server: ScriptedServer) -> None:
    server.add(Reply(action="delay", delay=1.0))
    api = pyairtable.Api(TOKEN, endpoint_url=server.url, retry_strategy=None, timeout=(1, 0.2))
    raw = failure_of(api.table(BASE, "Job Tracking").all)
    assert isinstance(raw, requests.Timeout)
    err = classify(raw)
    assert type(err) is NetworkError
    assert "timed out" in err.message
    assert err.path == TABLE_PATH


def test_truncated_body_is_a_network_error(server: ScriptedServer, table: pyairtable.Table) -> None:
    server.add(Reply(action="truncate"))
    raw = failure_of(table.all)
    assert isinstance(raw, requests.exceptions.ChunkedEncodingError | requests.ConnectionError)
    assert type(classify(raw)) is NetworkError


def test_unrelated_and_already_classified_pass_through() -> None:
    key_error = KeyError("x")
    assert classify(key_error) is key_error
    already = NotFoundError("Record not found", status=404)
    assert classify(already) is already
    assert not is_retryable(ValueError("bad"))


# --- no token anywhere ---------------------------------------------------------------------


def test_token_echoed_by_a_server_is_redacted(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    # A verbose proxy echoing the Authorization header must not leak it into our errors.
    server.add(Reply(401, "denied for header {auth}"))
    err = classify(failure_of(table.all))
    assert isinstance(err, AuthenticationError)
    assert "***" in err.message
    assert_no_token(err, repr(err), err.message)


def test_token_echoed_is_redacted_when_the_header_is_bytes(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    # requests accepts header values as bytes; classifying must not fail with a TypeError.
    table.api.session.headers["Authorization"] = f"Bearer {TOKEN}".encode()
    server.add(Reply(401, "denied for header {auth}"))
    err = classify(failure_of(table.all))
    assert isinstance(err, AuthenticationError)
    assert "***" in err.message
    assert_no_token(err, repr(err), err.message)


def test_redact_helper() -> None:
    assert redact(f"Authorization: Bearer {TOKEN}") == "Authorization: Bearer ***"
    assert redact("missing bearer token") == "missing bearer token"
    assert redact("x my-secret-value y", ["my-secret-value"]) == "x *** y"


# --- policies ------------------------------------------------------------------------------


def test_policy_validation_and_scaling() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="rate_limit_wait"):
        RetryPolicy(rate_limit_wait=-1)
    fast = DEFAULT_POLICY.scaled(0.01)
    assert fast.rate_limit_wait == pytest.approx(0.3)
    assert fast.transient_max == pytest.approx(0.3)
    assert fast.max_attempts == DEFAULT_POLICY.max_attempts
    assert DEFAULT_POLICY.rate_limit_wait >= 30.0


def test_wait_per_error_type() -> None:
    policy = RetryPolicy(
        rate_limit_wait=0.3, rate_limit_jitter=0.05, transient_initial=0.01, transient_max=0.04
    )
    limited = RateLimitedError("Rate limit exceeded", status=429)
    transient = TransientServerError("oops", status=500)
    network = NetworkError("reset")
    for _ in range(200):
        assert 0.3 <= policy.wait_for(limited, 1) <= 0.35
        for attempt in range(1, 6):
            ceiling = min(0.04, 0.01 * 2 ** (attempt - 1))
            assert 0 <= policy.wait_for(transient, attempt) <= ceiling
            assert 0 <= policy.wait_for(network, attempt) <= ceiling
    # Full jitter: the waits really spread over the interval.
    samples = [policy.wait_for(transient, 3) for _ in range(200)]
    assert min(samples) < 0.01 < max(samples)


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


FAST = RetryPolicy(
    rate_limit_wait=0.3,
    rate_limit_jitter=0.05,
    transient_initial=0.01,
    transient_max=0.04,
    max_attempts=4,
    max_total_seconds=60,
)


def test_rate_limit_retried_with_penalty_waits(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    limited = Reply(
        429, {"error": {"type": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded"}}
    )
    server.add(limited, limited)
    sleep = SleepRecorder()

    records = call_with_retry(table.all, op="list jobs", policy=FAST.with_sleep(sleep))

    assert records == []
    assert len(server.requests) == 3
    assert len(sleep.waits) == 2
    assert all(0.3 <= w <= 0.35 for w in sleep.waits)


def test_transient_retried_until_max_attempts_then_raises_classified(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    server.default = Reply(500, {"error": {"type": "SERVER_ERROR", "message": "boom"}})
    sleep = SleepRecorder()

    with pytest.raises(TransientServerError) as info:
        call_with_retry(table.all, op="list jobs", policy=FAST.with_sleep(sleep))

    assert len(server.requests) == FAST.max_attempts
    assert len(sleep.waits) == FAST.max_attempts - 1
    for attempt, wait in enumerate(sleep.waits, start=1):
        assert 0 <= wait <= min(0.04, 0.01 * 2 ** (attempt - 1))
    assert not isinstance(info.value, tenacity.RetryError)
    assert isinstance(info.value.__cause__, requests.HTTPError)


def test_network_error_retried_then_succeeds(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    server.add(Reply(action="drop"), Reply(503, {"error": "RETRIABLE_ERROR"}))
    sleep = SleepRecorder()
    assert call_with_retry(table.all, op="list", policy=FAST.with_sleep(sleep)) == []
    assert len(server.requests) == 3
    assert len(sleep.waits) == 2


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(
                422,
                {
                    "error": {
                        "type": "UNKNOWN_FIELD_NAME",
                        "message": "Unknown field name: Success Rate",
                    }
                },
            ),
            UnknownFieldError,
        ),
        (Reply(404, {"error": "NOT_FOUND"}), NotFoundError),
        (Reply(403, {"error": {"type": "INVALID_PERMISSIONS"}}), PermissionDeniedError),
        (Reply(401, {"error": {"type": "AUTHENTICATION_REQUIRED"}}), AuthenticationError),
        (Reply(422, {"error": {"type": "INVALID_RECORDS"}}), InvalidRequestError),
        (Reply(413, "too large"), PayloadTooLargeError),
    ],
)
def test_non_retryable_are_not_retried(
    server: ScriptedServer, table: pyairtable.Table, reply: Reply, expected: type[AirtableError]
) -> None:
    server.default = reply
    sleep = SleepRecorder()
    with pytest.raises(expected):
        call_with_retry(table.all, op="list", policy=FAST.with_sleep(sleep))
    assert len(server.requests) == 1
    assert sleep.waits == []


def test_unrelated_exceptions_propagate_unchanged() -> None:
    calls = []

    def boom() -> None:
        calls.append(1)
        raise KeyError("not an HTTP problem")

    with pytest.raises(KeyError):
        call_with_retry(boom, op="boom", policy=FAST.with_sleep(SleepRecorder()))
    assert calls == [1]


def test_total_time_budget_stops_before_a_sleep_that_would_overrun(
    server: ScriptedServer, table: pyairtable.Table
) -> None:
    server.default = Reply(429, {"error": {"type": "RATE_LIMIT_REACHED"}})
    sleep = SleepRecorder()
    policy = RetryPolicy(
        rate_limit_wait=1.0, rate_limit_jitter=0, max_attempts=10, max_total_seconds=0.5
    )
    with pytest.raises(RateLimitedError):
        call_with_retry(table.all, op="list", policy=policy.with_sleep(sleep))
    assert len(server.requests) == 1
    assert sleep.waits == []


def test_args_and_kwargs_reach_the_function() -> None:
    def add(a: int, b: int, *, c: int = 0) -> int:
        return a + b + c

    assert call_with_retry(add, 1, 2, op="add", c=3) == 6


def test_log_line_before_every_sleep(
    server: ScriptedServer, table: pyairtable.Table, caplog: pytest.LogCaptureFixture
) -> None:
    server.add(
        Reply(429, {"error": {"type": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded"}}),
        Reply(503, {"error": "RETRIABLE_ERROR"}, headers={"Retry-After": "0"}),
    )
    sleep = SleepRecorder()
    context = {"run_id": "250930-141522-Guy-Wilson", "client_id": "Guy-Wilson"}
    with caplog.at_level(logging.WARNING, logger="jobtrack_airtable.transport.recovery"):
        call_with_retry(
            table.all, op="list client runs", policy=FAST.with_sleep(sleep), context=context
        )

    records = [r for r in caplog.records if r.name == "jobtrack_airtable.transport.recovery"]
    assert len(records) == len(sleep.waits) == 2
    first, second = records
    assert first.levelno == logging.WARNING
    text = first.getMessage()
    assert "list client runs" in text
    assert "attempt 1" in text
    assert "RateLimitedError 429 RATE_LIMIT_REACHED" in text
    assert f"{sleep.waits[0]:.2f} s" in text
    assert "250930-141522-Guy-Wilson" in text
    assert first.run_id == "250930-141522-Guy-Wilson"  # type: ignore[attr-defined]
    assert first.client_id == "Guy-Wilson"  # type: ignore[attr-defined]
    assert "attempt 2" in second.getMessage()
    assert "TransientServerError 503 RETRIABLE_ERROR" in second.getMessage()
    for record in records:
        assert_no_token(record.getMessage(), record.__dict__)


def test_context_keys_that_clash_with_log_record_attributes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = iter([NetworkError("reset"), None])

    def flaky() -> str:
        exc = next(attempts)
        if exc:
            raise exc
        return "ok"

    with caplog.at_level(logging.WARNING, logger="jobtrack_airtable.transport.recovery"):
        result = call_with_retry(
            flaky, op="x", policy=FAST.with_sleep(SleepRecorder()), context={"name": "n"}
        )
    assert result == "ok"
    assert caplog.records[0].ctx_name == "n"  # type: ignore[attr-defined]


def test_retrying_iterator_form(server: ScriptedServer, table: pyairtable.Table) -> None:
    server.add(Reply(502, "bad gateway"))
    sleep = SleepRecorder()
    results = []
    for attempt in retrying(FAST.with_sleep(sleep), op="iterate"):
        with attempt:
            results.append(table.all())
    assert results == [[]]
    assert len(server.requests) == 2
    assert len(sleep.waits) == 1

    # Non-retryable raw errors are raised as they are, at once.
    server.default = Reply(404, {"error": "NOT_FOUND"})

    def iterate() -> None:
        for attempt in retrying(FAST.with_sleep(sleep), op="iterate"):
            with attempt:
                table.all()

    with pytest.raises(requests.HTTPError):
        iterate()
    assert len(sleep.waits) == 1


# --- a meta answer our readers cannot use is one clear error ------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"bases": []}, "no list of tables"),
        ({"tables": [{"id": "tblA", "fields": []}]}, "'id': 'tblA'"),
        (
            {"tables": [{"id": "tblA", "name": "T", "fields": [{"id": "fldB", "name": "F"}]}]},
            "'id': 'fldB'",
        ),
    ],
    ids=["no-tables", "table-without-name", "field-without-type"],
)
def test_a_meta_answer_without_the_shape_we_read_is_refused_naming_the_part(
    server: ScriptedServer, tmp_path: Any, body: Any, named: str
) -> None:
    from jobtrack_airtable.schema import load_schema
    from jobtrack_airtable.settings import Settings
    from jobtrack_airtable.transport.client import Connection
    from jobtrack_airtable.transport.meta import fetch_meta

    server.add(Reply(body=body))
    settings = Settings(
        _env_file=None,
        api_key=TOKEN,
        base_id=BASE,
        endpoint_url=server.url,
        rate_limit=0,
        outbox_url=f"sqlite:///{tmp_path / 'outbox.sqlite'}",
    )
    conn = Connection.from_settings(settings, schema=load_schema())
    with pytest.raises(InvalidRequestError, match="cannot read") as info:
        fetch_meta(conn)
    assert named in str(info.value)
    assert_no_token(info.value)
    assert [m for m, path, _ in server.requests if "/meta/" in path] == ["GET"]
