"""Classify failed requests into :mod:`.errors` and retry the ones worth retrying.

Two halves:

* :func:`classify` turns whatever pyairtable/requests raised into one of the
  :class:`~jobtrack_airtable.errors.AirtableError` subclasses, from the HTTP status and the
  parsed Airtable error *type* -- never from a substring of the message (the original system
  called ``"Unknown field name: Success Rate"`` a rate limit because it contains "rate").
* :class:`RetryPolicy` describes, as plain data, how long to wait for each kind of failure and
  when to give up; :func:`retrying` runs it through tenacity.  The library runs it in one
  place, per HTTP request: :class:`~.adapter.AirtableAdapter`.

>>> from jobtrack_airtable.errors import RateLimitedError
>>> policy = RetryPolicy(max_attempts=3)
>>> is_retryable(RateLimitedError("Rate limit exceeded", status=429))
True

Above the adapter, pyairtable's exceptions become these errors with :func:`classified`::

    with classified():
        record = table.get(record_id)
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3.exceptions
from tenacity.wait import (
    wait_base,
    wait_exception,
    wait_fixed,
    wait_random,
    wait_random_exponential,
)

from ..airtable import RATE_LIMIT_PENALTY
from ..errors import (
    QUOTA_ERROR_TYPE,
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
    QuotaExhaustedError,
    RateLimitedError,
    TransientServerError,
    UnknownFieldError,
)

__all__ = [
    "DEFAULT_POLICY",
    "RETRYABLE",
    "RetryPolicy",
    "call_with_retry",
    "classified",
    "classify",
    "is_retryable",
    "redact",
    "retrying",
]

logger = logging.getLogger("jobtrack_airtable.transport.recovery")

T = TypeVar("T")

#: Errors worth another attempt.  Everything else (invalid request, not found, permission,
#: validation) fails the same way every time, so retrying only burns the rate budget.
RETRYABLE: tuple[type[AirtableError], ...] = (RateLimitedError, TransientServerError, NetworkError)

# --- redaction -----------------------------------------------------------------------------

# Personal access tokens (pat<14>.<64 hex>) and the credential of any bearer header (8+
# token characters, so prose such as "missing bearer token" survives).
_TOKEN_PATTERNS = (
    re.compile(r"\bpat[A-Za-z0-9]{14}\.[A-Za-z0-9]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)
_REDACTED = "***"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove tokens from ``text``: each of ``secrets`` verbatim, plus anything shaped like an
    Airtable token or a ``Bearer`` credential.

    >>> redact("Authorization: Bearer patABCDEFGHIJKLMN.0123456789abcdef0123")
    'Authorization: Bearer ***'
    >>> redact("token is s3cr3t-value", ["s3cr3t-value"])
    'token is ***'
    """
    for secret in secrets:
        # Very short "secrets" would shred ordinary words; real tokens are long.
        if secret and len(secret) >= 8:
            text = text.replace(secret, _REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.groups() else "") + _REDACTED,
            text,
        )
    return text


# --- classification ------------------------------------------------------------------------

# Airtable error type -> class, for the statuses whose meaning depends on the type (400/422).
_TYPE_CLASSES: dict[str, type[InvalidRequestError]] = {
    "UNKNOWN_FIELD_NAME": UnknownFieldError,
    "INVALID_VALUE_FOR_COLUMN": ComputedFieldError,
    "INVALID_MULTIPLE_CHOICE_OPTIONS": InvalidSelectOptionError,
    "INVALID_FILTER_BY_FORMULA": InvalidFormulaError,
    "LIST_RECORDS_ITERATOR_NOT_AVAILABLE": IteratorExpiredError,
}

# Status -> class when the status alone decides.
_STATUS_CLASSES: dict[int, type[AirtableError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    429: RateLimitedError,
}

# 501 Not Implemented and 505 HTTP Version Not Supported will not get better by waiting.
_PERMANENT_5XX = frozenset({501, 505})

# urllib3's ResponseError.SPECIFIC_ERROR is "too many {status_code} error responses"; this is
# urllib3's own structured text (not Airtable's message), the only place the status survives.
_RETRY_STATUS_RE = re.compile(r"too many (\d{3}) error responses")

_NETWORK_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,  # includes ConnectTimeout, ProxyError, SSLError
    requests.exceptions.Timeout,  # ReadTimeout
    requests.exceptions.ChunkedEncodingError,  # body cut off mid-stream
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,  # RemoteDisconnected, IncompleteRead, reset
    urllib3.exceptions.TimeoutError,
    ConnectionError,  # builtin: reset/refused/aborted raised below requests
)

_MAX_BODY_SNIPPET = 200
_QUERY_RE = re.compile(r"\?[^\s)'\"]*")


def classify(
    exc: BaseException, *, method: str | None = None, path: str | None = None
) -> BaseException:
    """Map an exception raised by pyairtable/requests to the :mod:`.errors` hierarchy.

    Returns an :class:`~jobtrack_airtable.errors.AirtableError` subclass for HTTP errors
    (chosen by status and Airtable error type), network failures and timeouts; the original
    exception when it is unrelated (a ``KeyError`` stays a ``KeyError``) or already classified.
    The caller sets ``__cause__`` (``raise classify(e) from e``).  ``method`` and ``path``
    default to those of the failed request; the path never carries the query string (it may
    hold formula values) and messages never carry the token.

    >>> import requests
    >>> classify(requests.ConnectionError("connection refused"), method="GET", path="/v0/app")
    NetworkError('connection failed (ConnectionError): connection refused (GET /v0/app)')
    >>> classify(KeyError("x"))
    KeyError('x')
    """
    if isinstance(exc, AirtableError):
        return exc
    if isinstance(exc, requests.exceptions.RetryError):
        return _classify_retry_error(exc, method=method, path=path)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _classify_response(exc.response, method=method, path=path)
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        # A 2xx whose body is not JSON: the response was mangled in transit (or by a proxy).
        # The request may have applied -- same situation as a dropped connection.
        return NetworkError(
            "response body is not valid JSON", method=method, path=_clean_path(path)
        )
    unreachable = _unreachable(exc, method=method)
    if unreachable is not None:
        return unreachable
    if isinstance(exc, _NETWORK_EXCEPTIONS):
        req = getattr(exc, "request", None)
        method = method or getattr(req, "method", None)
        path = path or _path_of(getattr(req, "url", None))
        kind = "timed out" if _is_timeout(exc) else "connection failed"
        # requests' text repeats the URL; drop its query (formula values, offsets).
        detail = _QUERY_RE.sub("", redact(str(exc)))[:_MAX_BODY_SNIPPET] or "no detail"
        return NetworkError(
            f"{kind} ({type(exc).__name__}): {detail}", method=method, path=_clean_path(path)
        )
    return exc


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc``, what it wraps (urllib3's ``MaxRetryError.reason``, ``args[0]``) and its
    ``__cause__``/``__context__`` chain, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested += list(current.args[:1])
        todo.extend(n for n in nested if isinstance(n, BaseException))


def _unreachable(exc: BaseException, *, method: str | None) -> EndpointUnreachableError | None:
    """An :class:`EndpointUnreachableError` when no connection could be made at all (refused,
    name not resolved, connect timeout), else ``None``.  A connection that was made and then
    dropped is an ordinary (retryable) :class:`NetworkError`."""
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(
        exc, requests.exceptions.SSLError | requests.exceptions.ProxyError
    ):
        return None
    req = getattr(exc, "request", None)
    url = urlsplit(getattr(req, "url", None) or "")
    host = url.hostname or "the endpoint"
    endpoint = f"{url.scheme}://{url.netloc.rpartition('@')[2]}" if url.scheme else host
    check = "check JOBTRACK_ENDPOINT_URL"
    for cause in _causes(exc):
        if isinstance(cause, urllib3.exceptions.NameResolutionError | socket.gaierror):
            return EndpointUnreachableError(
                endpoint,
                f"host name {host!r} not found",
                f"{check} for a typo, and the machine's DNS and network",
                method=method,
            )
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, urllib3.exceptions.NewConnectionError)
            and "refused" in str(cause).lower()
        ):
            return EndpointUnreachableError(
                endpoint,
                "connection refused",
                f"is the server running and listening on that port? ({check})",
                method=method,
            )
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
            return EndpointUnreachableError(
                endpoint,
                "no connection within the connect timeout",
                f"{check}, and any firewall or proxy between this machine and it "
                "(JOBTRACK_TIMEOUT sets the timeout)",
                method=method,
            )
    return None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(
        exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError | TimeoutError
    )


def _classify_response(
    response: requests.Response, *, method: str | None, path: str | None
) -> AirtableError:
    status = response.status_code
    request = response.request
    method = method or (request.method if request is not None else None)
    path = _clean_path(path or _path_of(response.url or (request.url if request else None)))
    error_type, message = _parse_error_body(response)
    auth = request.headers.get("Authorization") if request is not None else None
    if isinstance(auth, bytes):
        # requests accepts header values as bytes too; redact() works on text.
        auth = auth.decode("latin-1")
    message = redact(message or response.reason or f"HTTP {status}", [auth])
    kw: dict[str, Any] = {
        "status": status,
        "error_type": error_type,
        "method": method,
        "path": path,
    }

    if status == 429:
        # Same status, opposite remedy: a spent monthly quota is not fixed by waiting 30 s.
        if error_type == QUOTA_ERROR_TYPE:
            return QuotaExhaustedError(message, **kw)
        return RateLimitedError(message, **kw)
    if status >= 500 and status not in _PERMANENT_5XX:
        return TransientServerError(
            message, retry_after=_parse_retry_after(response.headers.get("Retry-After")), **kw
        )
    if status in (400, 422):
        cls = _TYPE_CLASSES.get(error_type or "", InvalidRequestError)
        return cls(message, **kw)
    cls_by_status = _STATUS_CLASSES.get(status)
    if cls_by_status is not None:
        return cls_by_status(message, **kw)
    if 400 <= status < 500:
        return InvalidRequestError(message, **kw)
    return AirtableError(message, **kw)


def _parse_error_body(response: requests.Response) -> tuple[str | None, str | None]:
    """(type, message) from the three Airtable error shapes; (None, snippet) otherwise."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return None, (text[:_MAX_BODY_SNIPPET] if text else None)
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, str):  # {"error": "NOT_FOUND"}
        return error, None
    if isinstance(error, dict):  # {"error": {"type": T}} or {"error": {"type": T, "message": M}}
        etype = error.get("type")
        emsg = error.get("message")
        return (
            etype if isinstance(etype, str) else None,
            emsg if isinstance(emsg, str) else None,
        )
    return None, None


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _classify_retry_error(
    exc: requests.exceptions.RetryError, *, method: str | None, path: str | None
) -> AirtableError:
    # pyairtable's own urllib3 retry gave up (we build Api with retry_strategy=None, so this
    # only happens with a foreign Api).  The response is gone; urllib3 keeps the status in
    # its reason text.  pyairtable's default strategy retries only 429, hence the fallback.
    req = getattr(exc, "request", None)
    method = method or getattr(req, "method", None)
    path = _clean_path(path or _path_of(getattr(req, "url", None)))
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", None)
    match = _RETRY_STATUS_RE.search(str(inner if inner is not None else reason))
    status = int(match.group(1)) if match else 429
    message = f"gave up after pyairtable's own retries (HTTP {status})"
    if status >= 500:
        return TransientServerError(message, status=status, method=method, path=path)
    return RateLimitedError(
        message,
        status=status,
        error_type="RATE_LIMIT_REACHED" if status == 429 else None,
        method=method,
        path=path,
    )


def _path_of(url: str | None) -> str | None:
    return (urlsplit(url).path or None) if url else None


def _clean_path(path: str | None) -> str | None:
    """Drop the query string (formula values, offsets) and any token-looking text."""
    if not path:
        return path
    return redact(path.split("?", 1)[0])


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` (classified first if needed) deserves another attempt.

    Rate limits, 5xx and network failures: yes.  Invalid requests, not found, permission and
    validation errors: no -- they would fail identically.

    >>> from jobtrack_airtable.errors import UnknownFieldError
    >>> is_retryable(UnknownFieldError("Unknown field name: Success Rate", status=422))
    False
    """
    # NetworkError is retried for writes too, although a write may have applied before the
    # connection dropped: every write this library makes is an upsert on the natural key
    # (SPEC §3.1), so applying it twice leaves the same row -- retrying is safe.
    return isinstance(classify(exc), RETRYABLE)


# --- policies ------------------------------------------------------------------------------


def _retry_after(exc: BaseException) -> float:
    error = classify(exc)
    if isinstance(error, TransientServerError) and error.retry_after is not None:
        return error.retry_after
    return 0.0


class wait_by_error(wait_base):
    """The wait strategy of the first ``(error class, strategy)`` pair whose class the
    (classified) exception is an instance of; ``default`` otherwise.  tenacity composes
    waits by sum and chain but has no per-exception dispatch, which a policy needs."""

    def __init__(
        self, table: Sequence[tuple[type[BaseException], wait_base]], default: wait_base
    ) -> None:
        self.table = tuple(table)
        self.default = default

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = classify(_exception_of(retry_state))
        for cls, strategy in self.table:
            if isinstance(error, cls):
                return strategy(retry_state)
        return self.default(retry_state)


@dataclass(frozen=True)
class RetryPolicy:
    """How to wait and when to give up, per kind of failure -- plain data, turned into
    tenacity strategies by :meth:`wait_strategy` and :meth:`stop_strategy`.

    * rate limited (429): ``wait_fixed(rate_limit_wait) + wait_random(0, rate_limit_jitter)``
      -- Airtable's 30 s penalty plus jitter, so that workers throttled together do not
      return together;
    * transient (5xx) and network failures: ``wait_random_exponential`` (full jitter: uniform
      in ``[0, min(transient_max, transient_initial * 2**(n-1))]``), plus the server's
      ``Retry-After`` (``wait_exception``) when it sent one -- never back earlier than asked,
      and not all at the same instant either;
    * an unreachable endpoint (:class:`~.errors.EndpointUnreachableError`: refused, unknown
      host, connect timeout): the same short backoff, but only while the next attempt would
      start within ``unreachable_seconds`` of the first -- a dead endpoint fails fast;
    * give up after ``max_attempts`` attempts, or before a sleep that would end past
      ``max_total_seconds`` since the first attempt.

    ``sleep`` is what tenacity calls to wait (tests pass a recorder instead of sleeping).

    >>> fast = DEFAULT_POLICY.scaled(0.01)
    >>> fast.rate_limit_wait
    0.3
    >>> RetryPolicy(rate_limit_wait=0.3, rate_limit_jitter=0.05, max_attempts=4).max_attempts
    4
    """

    rate_limit_wait: float = RATE_LIMIT_PENALTY
    rate_limit_jitter: float = 5.0
    transient_initial: float = 1.0
    transient_max: float = 30.0
    unreachable_seconds: float = 2.0
    max_attempts: int = 6
    max_total_seconds: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "rate_limit_wait",
            "rate_limit_jitter",
            "transient_initial",
            "transient_max",
            "unreachable_seconds",
            "max_total_seconds",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0, not {value!r}")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, not {self.max_attempts!r}")

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every duration multiplied by ``factor`` (attempts unchanged):
        ``DEFAULT_POLICY.scaled(0.01)`` matches a local server whose penalty is 0.3 s."""
        return replace(
            self,
            rate_limit_wait=self.rate_limit_wait * factor,
            rate_limit_jitter=self.rate_limit_jitter * factor,
            transient_initial=self.transient_initial * factor,
            transient_max=self.transient_max * factor,
            unreachable_seconds=self.unreachable_seconds * factor,
            max_total_seconds=self.max_total_seconds * factor,
        )

    def with_sleep(self, sleep: Callable[[float], None]) -> RetryPolicy:
        """The same policy waiting through ``sleep`` (e.g. a recorder in tests)."""
        return replace(self, sleep=sleep)

    def wait_strategy(self) -> wait_base:
        """The tenacity wait strategy of this policy (see the class docstring)."""
        backoff = wait_random_exponential(multiplier=self.transient_initial, max=self.transient_max)
        return wait_by_error(
            [
                (
                    RateLimitedError,
                    wait_fixed(self.rate_limit_wait) + wait_random(0, self.rate_limit_jitter),
                ),
                (TransientServerError, backoff + wait_exception(_retry_after)),
            ],
            default=backoff,
        )

    def stop_strategy(self) -> tenacity.stop.stop_base:
        """The tenacity stop strategy of this policy (see the class docstring)."""
        return (
            tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_before_delay(self.max_total_seconds)
            | _stop_unreachable(self.unreachable_seconds)
        )

    def wait_for(self, exc: BaseException, attempt: int) -> float:
        """Seconds :meth:`wait_strategy` waits after attempt ``attempt`` (1-based) failed
        with ``exc`` (for tests and for callers that schedule their own retries)."""
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        outcome: tenacity.Future = tenacity.Future(attempt)
        outcome.set_exception(exc)
        state.outcome = outcome
        return self.wait_strategy()(state)


class _stop_unreachable(tenacity.stop.stop_base):
    """Stop retrying an unreachable endpoint once the next attempt would start later than
    ``seconds`` after the first."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if exc is None or not isinstance(classify(exc), EndpointUnreachableError):
            return False
        # idle_for: the sleeps so far, also when a test's sleep does not really sleep.
        elapsed = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return elapsed + (retry_state.upcoming_sleep or 0.0) > self.seconds


#: Production defaults: Airtable's 30 s penalty, up to 6 attempts within 5 minutes.
DEFAULT_POLICY = RetryPolicy()


# --- running a policy ----------------------------------------------------------------------

_RESERVED_LOG_KEYS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def _log_extra(context: Mapping[str, str] | None) -> dict[str, str]:
    # logging refuses ``extra`` keys that shadow LogRecord attributes; prefix those.
    if not context:
        return {}
    return {(f"ctx_{k}" if k in _RESERVED_LOG_KEYS else k): str(v) for k, v in context.items()}


def _before_sleep(op: str, context: Mapping[str, str] | None) -> Callable[..., None]:
    extra = _log_extra(context)
    where = " ".join(f"{k}={v}" for k, v in (context or {}).items())

    def log(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        error = classify(exc) if exc is not None else None
        if isinstance(error, AirtableError):
            what = " ".join(
                str(p) for p in (type(error).__name__, error.status, error.error_type) if p
            )
        else:
            what = type(error).__name__
        seconds = retry_state.upcoming_sleep
        logger.warning(
            "%s%s: attempt %d failed (%s); retrying in %.2f s",
            op,
            f" [{where}]" if where else "",
            retry_state.attempt_number,
            what,
            seconds,
            extra=extra,
        )

    return log


def retrying(
    policy: RetryPolicy = DEFAULT_POLICY,
    op: str = "airtable request",
    context: Mapping[str, str] | None = None,
) -> tenacity.Retrying:
    """A :class:`tenacity.Retrying` running ``policy`` -- for code that needs the iterator form.

    Exceptions raised inside the attempts may be raw (``requests.HTTPError``) or already
    classified; the predicate and the waits classify them.  When attempts run out, the last
    exception is re-raised as it was raised (not wrapped in ``tenacity.RetryError``), so raise
    classified errors inside the block if callers should see them.

    >>> attempts = []
    >>> for attempt in retrying(RetryPolicy(max_attempts=2), op="doc example"):
    ...     with attempt:
    ...         attempts.append(1)
    >>> len(attempts)
    1
    """
    return tenacity.Retrying(
        sleep=policy.sleep,
        stop=policy.stop_strategy(),
        wait=policy.wait_strategy(),
        retry=tenacity.retry_if_exception(is_retryable),
        before_sleep=_before_sleep(op, context),
        reraise=True,
    )


def _exception_of(retry_state: tenacity.RetryCallState) -> BaseException:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    assert exc is not None  # wait is only consulted after a failed attempt
    return exc


def call_with_retry(
    fn: Callable[..., T],
    /,
    *args: Any,
    op: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    context: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)``, classifying its failures and retrying per ``policy``:
    for code that talks through a plain pyairtable ``Api`` (the library's own requests are
    retried once, per request, by :class:`~.adapter.AirtableAdapter`).

    Every failure is re-raised as its classified error ``from`` the original; the final
    failure (non-retryable, or attempts/time exhausted) is that classified error, never
    ``tenacity.RetryError``.  ``op`` names the operation in log lines; ``context`` (e.g.
    ``{"run_id": ..., "client_id": ...}``) goes into the log message and ``extra``.
    ``op``, ``policy`` and ``context`` are reserved and never passed to ``fn``.

    >>> call_with_retry(int, "42", op="parse")
    42
    """

    def attempt() -> T:
        with classified():
            return fn(*args, **kwargs)

    return retrying(policy, op, context)(attempt)


@contextmanager
def classified() -> Iterator[None]:
    """Re-raise a failure of the block as its :func:`classify`'d error, ``from`` the original
    (what pyairtable raises above the adapter: ``requests.HTTPError``, network errors).

    >>> import requests
    >>> with classified():
    ...     raise requests.ConnectionError("connection reset")
    Traceback (most recent call last):
    jobtrack_airtable.errors.NetworkError: connection failed (ConnectionError): connection reset
    """
    try:
        yield
    except Exception as exc:
        error = classify(exc)
        if error is exc:
            raise
        raise error from exc
