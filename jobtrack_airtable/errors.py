"""The exception hierarchy of jobtrack-airtable.

Two families, so callers can tell "you gave me something wrong" from "Airtable said no":

* :class:`InvalidInputError` and its subclasses are raised *before any request* for bad input
  (malformed run IDs, unknown metric names, writes the schema forbids...).  They also subclass
  :class:`ValueError` or :class:`TypeError` so generic handlers keep working.
* :class:`AirtableError` and its subclasses classify a failed HTTP exchange from the status code
  and the parsed Airtable error body (never from message substrings); :mod:`.recovery` decides
  which of them are retried.

Every message quotes the offending value with :func:`show`, which truncates long values and
makes control characters visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

_MAX_SHOWN = 80


def listing(items: Sequence[object], limit: int = 20) -> str:
    """The first ``limit`` items joined by ``"; "``, and how many more there are.

    >>> listing(["a", "b", "c"], 2)
    'a; b; and 1 more'
    """
    shown = "; ".join(str(i) for i in items[:limit])
    more = len(items) - limit
    return f"{shown}; and {more} more" if more > 0 else shown


def show(value: Any) -> str:
    """Render ``value`` for an error message: ``repr`` (so quotes and control characters are
    visible), truncated so a 100,000-character value cannot flood a log.

    >>> show("[object Object]")
    "'[object Object]'"
    """
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = f"{text[: _MAX_SHOWN - 1]}…(len={len(value) if isinstance(value, str) else '?'})"
    return text


class JobtrackError(Exception):
    """Base of every error this library raises on purpose."""


# --- bad input, refused before any request -------------------------------------------------


class InvalidInputError(JobtrackError, ValueError):
    """A value was refused locally, before any request was made."""


class InvalidRunIdError(InvalidInputError):
    """A run ID is malformed, of the wrong type, or of the wrong kind (base vs client)."""

    def __init__(self, value: Any, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid run ID {show(value)}: {reason}")


class RunIdTypeError(InvalidRunIdError, TypeError):
    """A value that is not a string (or is the wrong run-ID type) was passed as a run ID."""


class InvalidClientIdError(InvalidInputError):
    """A client ID is empty, too long, padded with whitespace or holds control characters."""

    def __init__(self, value: Any, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid client ID {show(value)}: {reason}")


class InvalidStatusError(InvalidInputError):
    """A status is not one of the four standard values and no legacy alias maps it."""

    def __init__(self, value: Any, reason: str = "not a known status") -> None:
        self.value = value
        super().__init__(f"invalid status {show(value)}: {reason}")


class StatusTransitionError(InvalidInputError):
    """A terminal status would be changed without ``force=True``."""

    def __init__(self, current: str, new: str) -> None:
        self.current = current
        self.new = new
        super().__init__(
            f"refusing to change terminal status {current!r} to {new!r}: pass force=True"
        )


class TerminalRunError(StatusTransitionError):
    """Re-opening a client run whose row already ended (``Completed``, ``Failed``,
    ``No Leads To Score``) without ``force=True``: the stored row is left as it was."""

    def __init__(self, run_id: str, current: str) -> None:
        self.run_id = run_id
        self.current = current
        self.new = "Running"
        InvalidInputError.__init__(
            self,
            f"client run {run_id!r} already ended as {current!r}; refusing to reopen it "
            "(pass force=True to continue it from its stored totals)",
        )


class InvalidMetricError(InvalidInputError):
    """A metric value failed validation; names the field and the value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid value {show(value)} for metric {field!r}: {reason}")


class UnknownMetricError(InvalidInputError):
    """One or more metric names are not known; lists the allowed names."""

    def __init__(self, names: Iterable[str], allowed: Iterable[str]) -> None:
        self.names = sorted(names)
        self.allowed = sorted(allowed)
        super().__init__(
            f"unknown metric name(s) {', '.join(map(show, self.names))}; "
            f"allowed: {', '.join(self.allowed)}"
        )


class SchemaViolationError(InvalidInputError):
    """An outgoing write breaks the schema; ``problems`` lists every problem found."""

    def __init__(self, table: str, problems: Sequence[str]) -> None:
        self.table = table
        self.problems = list(problems)
        joined = "; ".join(self.problems)
        super().__init__(f"write to table {table!r} refused before sending: {joined}")


class ConfigError(JobtrackError, ValueError):
    """The configuration (settings or schema file) is invalid or inconsistent with the base."""


class SchemaMismatchError(ConfigError):
    """The base lacks tables or fields the configured schema needs (read through the meta API
    before anything is planned or written); ``problems`` names every one."""

    def __init__(self, message: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(message)


# --- failures reported by Airtable (or the network) ----------------------------------------


class AirtableError(JobtrackError):
    """A request failed.  ``status`` is the HTTP status (None for network failures),
    ``error_type`` the Airtable error type (``UNKNOWN_FIELD_NAME``...), ``message`` its text."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method and path else ""
        code = " ".join(str(p) for p in (status, error_type) if p is not None)
        super().__init__(f"{code + ': ' if code else ''}{message}{where}")


class RateLimitedError(AirtableError):
    """HTTP 429 ``RATE_LIMIT_REACHED``: Airtable refuses requests for the next 30 seconds."""


#: The error type of Airtable's 429 when the workspace's monthly API quota is spent (SPEC §2.2).
QUOTA_ERROR_TYPE = "PUBLIC_API_BILLING_LIMIT_EXCEEDED"


class QuotaExhaustedError(AirtableError):
    """HTTP 429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED``: the workspace's monthly API quota is
    spent.  Every data request fails the same way until the month resets or the plan is
    upgraded (the meta API still answers), so it is never retried and never starts the
    30-second rate-limit hold: waiting seconds cannot help."""


class TransientServerError(AirtableError):
    """HTTP 500, 502, 503 (``RETRIABLE_ERROR``) or 504: safe to retry."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class NetworkError(AirtableError):
    """Connection refused or dropped, or a timeout: the request may or may not have applied."""


class EndpointUnreachableError(NetworkError):
    """The endpoint cannot be reached at all: connection refused, host name not found, or no
    connection within the connect timeout.  Nothing was sent, so nothing applied; retried only
    briefly (``RetryPolicy.unreachable_seconds``), because waiting rarely fixes a wrong URL, a
    stopped server or a firewall.  ``endpoint`` is ``scheme://host:port``, ``reason`` a short
    cause, ``hint`` what to check.
    """

    def __init__(self, endpoint: str, reason: str, hint: str, *, method: str | None = None) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.hint = hint
        super().__init__(f"cannot reach {endpoint} ({reason}): {hint}", method=method)


class NotFoundError(AirtableError):
    """HTTP 404: record, table or route not found."""


class InvalidRequestError(AirtableError):
    """HTTP 422 (or 400/413): Airtable refused the request as invalid.  Not retried."""


class UnknownFieldError(InvalidRequestError):
    """422 ``UNKNOWN_FIELD_NAME``."""


class ComputedFieldError(InvalidRequestError):
    """422 ``INVALID_VALUE_FOR_COLUMN``: a computed field was written, or a value has the
    wrong type for its column."""


class InvalidSelectOptionError(InvalidRequestError):
    """422 ``INVALID_MULTIPLE_CHOICE_OPTIONS``."""


class InvalidFormulaError(InvalidRequestError):
    """422 ``INVALID_FILTER_BY_FORMULA``."""


class IteratorExpiredError(InvalidRequestError):
    """422 ``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``: the listing must restart from the top."""


class PayloadTooLargeError(InvalidRequestError):
    """HTTP 413."""


class PermissionDeniedError(AirtableError):
    """HTTP 403: the token may not do this, or the base/table does not exist."""


class AuthenticationError(PermissionDeniedError):
    """HTTP 401 ``AUTHENTICATION_REQUIRED``: missing or wrong token."""


class LimiterUnavailableError(JobtrackError):
    """The shared rate-limiter store (Redis, fleet mode) cannot be reached and
    ``JOBTRACK_LIMITER_FALLBACK=fail`` forbids sending requests without it.

    Raised before the request is sent, so nothing was written; not retried by the Airtable
    retry policy (it is not an :class:`AirtableError`).  ``store`` is the store's URL with any
    password masked.
    """

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(f"the shared rate limiter at {store} is unavailable: {reason}")


class StaleArchivePlanError(JobtrackError):
    """Rows of an archive plan changed or vanished since it was made; nothing was archived or
    deleted.  ``problems`` names each row."""

    MAX_LISTED = 20

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = listing(self.problems, self.MAX_LISTED)
        super().__init__(
            f"the base changed since the archive plan was made ({len(self.problems)} row(s)); "
            f"nothing was archived or deleted. Plan again. {shown}"
        )


class ArchivePlanFormatError(JobtrackError, ValueError):
    """A file is not an archive plan this version of the library can apply."""


class EndedError(JobtrackError):
    """A write to something that has ended: a closed client run, a completed job, a closed
    tracker.  Refused before any request: such a write would either be lost or change a row
    the library already called final (what ``sync`` would otherwise have to repair)."""


class TrackerClosedError(EndedError):
    """The tracker is closed: nothing more can be written through it."""

    def __init__(self, run_id: str = "", *, action: str | None = None) -> None:
        self.run_id = run_id
        what = "the tracker is closed"
        if run_id:
            what = f"client run {run_id!r}: its tracker is closed"
        super().__init__(f"{what}; {action or 'nothing more can be written'}")


class RunClosedError(EndedError):
    """``add``/``set``/``note`` on a client run that was closed (or ended by another writer)."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(
            f"client run {run_id!r} is closed ({status}); {action}() cannot change it "
            "(open the client again to continue a run)"
        )


class RunHeldError(JobtrackError):
    """Opening a client run that another live process of this machine holds open (the
    outbox's lease, :meth:`~jobtrack_airtable.outbox.OutboxStore.hold`): each holder writes
    its own absolute totals, so the later write would erase the other's increments.  Names
    the run and the holder; the run can be opened once that process closes it or dies."""

    def __init__(self, run_id: str, holder: str) -> None:
        self.run_id = run_id
        self.holder = holder
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        super().__init__(
            f"client run {run_id!r} is held open by another process (host {host!r}, pid "
            f"{pid or '?'}) of this machine: two holders would overwrite each other's "
            "totals; open it once that process has closed it or exited"
        )


class JobEndedError(EndedError):
    """A client opened on a job that has ended (``Completed``, ``Failed``…)."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"job {run_id!r} has ended ({status}); {action} is refused")


class OutboxUnavailableError(JobtrackError):
    """The outbox could not store a change (disk full, Redis down): the call that made the
    change raises, since the change would not survive the process."""


class PlanFormatError(JobtrackError, ValueError):
    """A plan file is not a plan this version of the library can apply (unknown
    ``format_version``, not JSON, or malformed)."""


class StalePlanError(JobtrackError):
    """The base changed since the plan was made; nothing was written.  ``rows`` lists every
    changed, vanished or new row found (:class:`jobtrack_airtable.admin.sync.StaleRow`)."""

    MAX_LISTED = 20

    def __init__(self, rows: Sequence[object]) -> None:
        self.rows = list(rows)
        shown = listing(self.rows, self.MAX_LISTED)
        super().__init__(
            f"the base changed since the plan was made ({len(self.rows)} row(s)); nothing was "
            f"written. Run sync again to make a new plan. {shown}"
        )


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message names the extra that brings it
    (``cli``, ``local``, ``ops``, ``redis``).

    >>> print(MissingExtraError.of("local", "the local server"))
    the local server needs the local extra: pip install 'jobtrack-airtable[local]'
    """

    @classmethod
    def of(cls, extra: str, what: str = "jobtrack-airtable") -> MissingExtraError:
        return cls(f"{what} needs the {extra} extra: pip install 'jobtrack-airtable[{extra}]'")
