"""Run statuses (SPEC §1.3): the four standard values, the legacy map, transitions, staleness.

>>> map_status(" completed_with_errors ").status
<Status.COMPLETED: 'Completed'>
>>> map_status("Recovery").unmappable
True
>>> parse_status("In Progress")
<Status.RUNNING: 'Running'>
>>> check_transition(Status.RUNNING, Status.COMPLETED) is None
True
>>> check_transition(Status.COMPLETED, Status.RUNNING, force=True)
"Status forced from 'Completed' to 'Running' (terminal status overridden with force=True)"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from .errors import InvalidInputError, InvalidStatusError, StatusTransitionError, show
from .timeutil import to_airtable

__all__ = [
    "CLOCK_TOLERANCE",
    "LEGACY_STATUS_ALIASES",
    "Staleness",
    "Status",
    "StatusMapping",
    "check_transition",
    "map_status",
    "parse_status",
    "staleness",
    "verdict_until",
]


class Status(StrEnum):
    """A run status; each value is the exact Airtable select-option name."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    NO_LEADS = "No Leads To Score"

    @property
    def is_terminal(self) -> bool:
        return self is not Status.RUNNING


#: Legacy spellings (SPEC §1.3 table) and the standard status each one means.  Keys are compared
#: after :func:`_normalise`, so ``completed_with_errors`` and ``Completed with errors`` are one key.
LEGACY_STATUS_ALIASES: Final[dict[str, Status]] = {
    "Success": Status.COMPLETED,
    "Completed with errors": Status.COMPLETED,
    "Partial": Status.COMPLETED,
    "Done": Status.COMPLETED,
    "Finished": Status.COMPLETED,
    "Error": Status.FAILED,
    "Errored": Status.FAILED,
    "Failure": Status.FAILED,
    "Skipped": Status.NO_LEADS,
    "No leads to process": Status.NO_LEADS,
    "No leads": Status.NO_LEADS,
    "Nothing to process": Status.NO_LEADS,
    "In Progress": Status.RUNNING,
    "Started": Status.RUNNING,
    "Processing": Status.RUNNING,
    "Pending": Status.RUNNING,
}

_SEPARATORS: Final = re.compile(r"[\s_]+")


def _normalise(text: str) -> str:
    """Case-fold, trim, and treat runs of ``_`` and whitespace as one space."""
    return _SEPARATORS.sub(" ", text).strip().casefold()


_LOOKUP: Final[dict[str, Status]] = {
    **{_normalise(alias): status for alias, status in LEGACY_STATUS_ALIASES.items()},
    **{_normalise(status.value): status for status in Status},
}


@dataclass(frozen=True, slots=True)
class StatusMapping:
    """What :func:`map_status` made of a stored value.

    ``status`` is None exactly when the value is unmappable; ``reason`` then says why.
    """

    original: Any
    status: Status | None
    reason: str | None = None

    @property
    def unmappable(self) -> bool:
        return self.status is None

    @property
    def is_legacy(self) -> bool:
        """True when the value maps to a status but is not spelled exactly as its option name
        (a legacy alias, or a standard value in another case or spacing): ``sync`` rewrites it.
        """
        return self.status is not None and self.original != self.status.value


def map_status(value: Any) -> StatusMapping:
    """Map a stored status, standard or legacy, to :class:`Status`; never guess.

    >>> map_status("No_Leads  to  PROCESS").status
    <Status.NO_LEADS: 'No Leads To Score'>
    >>> map_status("Completed").is_legacy, map_status("Done").is_legacy
    (False, True)
    >>> found = map_status("Pending review")
    >>> found.unmappable, found.reason
    (True, 'not a known status or legacy alias')
    """
    if isinstance(value, Status):
        return StatusMapping(value, value)
    if not isinstance(value, str):
        return StatusMapping(value, None, f"not a string: {type(value).__name__}")
    key = _normalise(value)
    if not key:
        return StatusMapping(value, None, "empty")
    status = _LOOKUP.get(key)
    if status is None:
        return StatusMapping(value, None, "not a known status or legacy alias")
    return StatusMapping(value, status)


def parse_status(value: Any) -> Status:
    """A :class:`Status` from a Status, its value, or a legacy alias; else
    :class:`InvalidStatusError` quoting the value.

    >>> parse_status("failure")
    <Status.FAILED: 'Failed'>
    >>> parse_status("Unknown")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidStatusError: invalid status 'Unknown': not a known status ...
    """
    mapping = map_status(value)
    if mapping.status is None:
        expected = ", ".join(repr(s.value) for s in Status)
        raise InvalidStatusError(value, f"{mapping.reason}; expected one of {expected}")
    return mapping.status


def check_transition(
    current: Status | str | None,
    new: Status | str,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> str | None:
    """Check a status change; return a System Notes line when one must be recorded.

    * no current status (a new row), or ``Running`` -> anything: allowed, returns None;
    * terminal -> the same terminal status: allowed no-op, returns None, so a retried
      completion is harmless;
    * terminal -> anything else (including back to ``Running``): raises
      :class:`StatusTransitionError` unless ``force``; forced, returns the note to append
      (prefixed with ``now`` as UTC ISO-8601 when given).

    >>> check_transition("Completed", "Completed") is None
    True
    >>> check_transition(Status.FAILED, Status.COMPLETED)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.StatusTransitionError: refusing to change terminal status 'Failed' ...
    """
    new_status = parse_status(new)
    if current is None:
        return None
    current_status = parse_status(current)
    if not current_status.is_terminal or current_status is new_status:
        return None
    if not force:
        raise StatusTransitionError(current_status.value, new_status.value)
    note = (
        f"Status forced from {current_status.value!r} to {new_status.value!r} "
        "(terminal status overridden with force=True)"
    )
    return f"[{to_airtable(now)}] {note}" if now is not None else note


# --- staleness -----------------------------------------------------------------------------


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {show(value)}")
    if value.utcoffset() is None:
        raise InvalidInputError(f"{name} {value.isoformat()!r} is naive: give it a time zone")
    return value


#: How far a liveness stamp may disagree with the server-set created time (or the judge's
#: clock) before it is taken for a stamp written on a skewed clock.
CLOCK_TOLERANCE: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Staleness:
    """Why a ``Running`` run is stale: aged by ``label`` (``Last Updated``, ``Start Time`` or
    ``created time``) since ``since``, ``age`` ago against ``threshold``; ``distrusted`` names
    a stamp set aside as written on a skewed clock."""

    label: str
    since: datetime
    age: timedelta
    threshold: timedelta
    distrusted: str | None = None

    @property
    def reason(self) -> str:
        """The System Notes text ``sync`` writes when it marks the run ``Failed``."""
        source = self.label if self.distrusted is None else f"{self.label}; {self.distrusted}"
        return (
            f"Stale: still Running with no update since {to_airtable(self.since)} ({source}), "
            f"{_human(self.age)} ago (threshold {_human(self.threshold)})"
        )


def _reference(
    last_updated: datetime | None,
    start_time: datetime | None,
    created_time: datetime | None,
    now: datetime,
    labels: tuple[str, str] = ("Last Updated", "Start Time"),
) -> tuple[str, datetime, str | None] | None:
    """The liveness signal to age a run by, in SPEC order, with the field it came from, and
    why a worker-written stamp was set aside.

    ``Last Updated`` and ``Start Time`` are written on the worker's clock; the created time on
    the server's.  A row is written at least once at its created time, so a stamp older than
    it (beyond :data:`CLOCK_TOLERANCE`) came from a clock behind, and a stamp in the judge's
    future from a clock ahead: either way the created time is the better signal.
    """
    created = _aware("created time", created_time)
    for label, value in ((labels[0], last_updated), (labels[1], start_time)):
        if (checked := _aware(label, value)) is None:
            continue
        if created is None:
            return label, checked, None
        if checked > now + CLOCK_TOLERANCE:
            return "created time", created, f"{label} {to_airtable(checked)} is in the future"
        if checked < created - CLOCK_TOLERANCE:
            return (
                "created time",
                created,
                f"{label} {to_airtable(checked)} is older than the row",
            )
        return label, checked, None
    return ("created time", created, None) if created is not None else None


def staleness(
    status: Status | str | None,
    *,
    last_updated: datetime | None,
    start_time: datetime | None,
    created_time: datetime | None,
    threshold: timedelta,
    now: datetime,
    labels: tuple[str, str] = ("Last Updated", "Start Time"),
) -> Staleness | None:
    """Why a ``Running`` run is stale, or ``None`` when it is not.  ``labels`` are the base's
    names of the Last Updated and Start Time fields, for the reason's text.

    Stale: its liveness signal -- ``last_updated``, else ``start_time``, else
    ``created_time`` (the first that is set), the created time instead when the stamp is
    clearly from a skewed clock (see :func:`_reference`) -- is older than ``threshold`` at
    ``now``.  With none set the run is not called stale.  Only ``Running`` (or a legacy alias
    of it) can be stale.  Datetimes must be timezone-aware; ``now`` should be the server's
    clock (``conn.server_now()``), never a worker's.

    >>> from datetime import UTC
    >>> started = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    >>> print(staleness("Running", last_updated=None, start_time=started, created_time=None,
    ...                 threshold=timedelta(hours=2), now=started + timedelta(hours=3.5)).reason)
    ... # doctest: +NORMALIZE_WHITESPACE
    Stale: still Running with no update since 2025-09-30T14:15:22.000Z (Start Time), 3h 30m ago
    (threshold 2h)
    >>> staleness("Completed", last_updated=None, start_time=started, created_time=None,
    ...           threshold=timedelta(hours=2), now=started + timedelta(hours=3.5)) is None
    True
    """
    if not isinstance(threshold, timedelta) or threshold <= timedelta(0):
        raise InvalidInputError(f"threshold must be a positive timedelta, got {show(threshold)}")
    checked_now = _aware("now", now)
    if checked_now is None:
        raise InvalidInputError("now is required")
    # Inputs are checked whatever the status, so a bad call fails the same way every time.
    reference = _reference(last_updated, start_time, created_time, checked_now, labels)
    # A finished run is never stale; an unreadable status is sync's problem, not a guess here.
    if map_status(status).status is not Status.RUNNING or reference is None:
        return None  # with nothing to age it by, report nothing rather than guess
    label, since, distrusted = reference
    age = checked_now - since
    if age <= threshold:
        return None
    return Staleness(label, since, age, threshold, distrusted)


def verdict_until(
    *,
    last_updated: datetime | None,
    start_time: datetime | None,
    created_time: datetime | None,
    threshold: timedelta,
    now: datetime,
) -> datetime | None:
    """For a ``Running`` run judged at ``now``: an instant before which, from ``now`` on,
    :func:`staleness` keeps its verdict (stale or not) and the signal it ages the run by;
    ``None`` when nothing ahead changes them.  Two things move with time: a fresh run's age
    crosses the threshold, and a stamp set aside as in the judge's future stops being so
    (which may make a stale run fresh).  Incremental planning re-examines the run's job
    once ``now`` reaches it (or goes back before the time it was judged at).

    >>> from datetime import UTC
    >>> started = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    >>> verdict_until(last_updated=None, start_time=started, created_time=None,
    ...               threshold=timedelta(hours=2), now=started).isoformat()
    '2025-09-30T16:15:22+00:00'
    >>> verdict_until(last_updated=None, start_time=started, created_time=None,
    ...               threshold=timedelta(hours=2), now=started + timedelta(hours=3)) is None
    True
    """
    checked_now = _aware("now", now)
    if checked_now is None:
        raise InvalidInputError("now is required")
    reference = _reference(last_updated, start_time, created_time, checked_now)
    if reference is None:
        return None
    since = reference[1]
    until = since + threshold if checked_now - since <= threshold else None
    created = _aware("created time", created_time)
    for value in (last_updated, start_time):
        if (checked := _aware("stamp", value)) is None:
            continue
        if created is not None and checked > checked_now + CLOCK_TOLERANCE:
            flip = checked - CLOCK_TOLERANCE
            until = flip if until is None else min(until, flip)
        break
    return until


def _human(delta: timedelta) -> str:
    """``timedelta(days=1, hours=2, seconds=5)`` -> ``'1d 2h 0m 5s'`` (leading zeros dropped).

    >>> _human(timedelta(hours=2)), _human(timedelta(days=1, minutes=3)), _human(timedelta(0))
    ('2h', '1d 0h 3m', '0s')
    """
    total = int(delta.total_seconds())
    parts = [
        (total // 86400, "d"),
        (total % 86400 // 3600, "h"),
        (total % 3600 // 60, "m"),
        (total % 60, "s"),
    ]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    while len(parts) > 1 and parts[-1][0] == 0:
        parts.pop()
    return " ".join(f"{n}{unit}" for n, unit in parts)
