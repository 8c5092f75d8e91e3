"""Datetimes as Airtable stores them: UTC ISO-8601 with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InvalidInputError, show


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC (the default clock everywhere)."""
    return datetime.now(UTC)


def to_airtable(value: datetime, *, assume_utc: bool = False) -> str:
    """Format an aware datetime as Airtable's ``2025-09-30T14:15:22.000Z``.

    Naive datetimes are refused (their zone is a guess) unless ``assume_utc``.

    >>> from datetime import datetime, UTC
    >>> to_airtable(datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC))
    '2025-09-30T14:15:22.000Z'
    """
    if not isinstance(value, datetime):
        raise InvalidInputError(f"expected a datetime, got {show(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        if not assume_utc:
            raise InvalidInputError(
                f"naive datetime {value.isoformat()!r} refused: give it a time zone "
                "(or set JOBTRACK_ASSUME_UTC=true)"
            )
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_airtable(value: str) -> datetime:
    """Parse an Airtable datetime string (``…Z`` or with an offset) into an aware datetime.

    >>> parse_airtable("2025-09-30T14:15:22.000Z").isoformat()
    '2025-09-30T14:15:22+00:00'
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"expected an ISO-8601 string, got {show(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"not an ISO-8601 datetime: {show(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
