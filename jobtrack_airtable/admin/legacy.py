"""Legacy run IDs of old bases (SPEC §1.2, legacy table): what :func:`recognise` saw and
what it converts to.  ``sync`` rewrites them; ``check`` and the report read them.  The worker
core never writes them, so this lives in the admin library.

>>> recognise("job_post_scoring_stream1_20250929094802").converted
'250929-094802'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from ..errors import show
from ..run_ids import (
    _BASE_FORMAT,
    _BASE_LEN,
    _BASE_RE,
    BaseRunId,
    ClientRunId,
    _base_datetime,
    _client_problem,
    _placeholder_reason,
    _repeated_unit,
)

__all__ = ["LegacyFormat", "Recognised", "recognise"]


# --- legacy forms --------------------------------------------------------------------------


class LegacyFormat(StrEnum):
    """What :func:`recognise` saw (SPEC §1.2, legacy table)."""

    STANDARD = "standard"
    CLIENT = "client"
    DOUBLED_SUFFIX = "doubled suffix"
    JOB_PROCESS = "job process ID"
    BYPASS = "bypass ID"
    APIFY = "Apify-tagged"
    STRUCTURED_SR = "structured SR"
    NUMERIC_ARTEFACT = "numeric artefact"
    UNCONVERTIBLE = "unconvertible"


_CURRENT_FORMATS: Final = frozenset({LegacyFormat.STANDARD, LegacyFormat.CLIENT})


@dataclass(frozen=True, slots=True)
class Recognised:
    """The result of :func:`recognise`: what a run ID was, and what it converts to.

    ``base`` and ``client_id`` are set when the value is convertible; ``reason`` explains an
    UNCONVERTIBLE result (or an adjustment made while converting).
    """

    format: LegacyFormat
    original: Any
    base: BaseRunId | None = None
    client_id: str | None = None
    apify_run_id: str | None = None
    needs_start_time: bool = False
    reason: str | None = None
    job_name: str | None = None
    stream: int | None = None

    @property
    def run_id(self) -> BaseRunId | ClientRunId | None:
        """The converted ID as the right type, or None when unconvertible."""
        if self.base is None:
            return None
        return (
            self.base
            if self.client_id is None
            else ClientRunId.from_parts(self.base, self.client_id)
        )

    @property
    def converted(self) -> str | None:
        """The standard string (``base`` or ``base-client``), or None when unconvertible."""
        run_id = self.run_id
        return None if run_id is None else str(run_id)

    @property
    def is_legacy(self) -> bool:
        """True for every value not in a current form (standard or client), including
        unconvertible ones."""
        return self.format not in _CURRENT_FORMATS

    @property
    def needs_rewrite(self) -> bool:
        """True when the stored value differs from its conversion (what ``sync`` rewrites)."""
        return self.converted is not None and self.converted != self.original


_JOB_PROCESS_RE: Final = re.compile(
    r"job_(?P<name>[A-Za-z0-9_]+?)_stream(?P<stream>[0-9]+)_(?P<ts>[0-9]{14})"
)
_BYPASS_RE: Final = re.compile(r"job_(?P<name>[A-Za-z0-9_]+?)_bypass_(?P<ms>[0-9]{1,16})")
_APIFY_RE: Final = re.compile(r"(?P<base>[0-9]{6}-[0-9]{6})-(?P<tag>apify-(?P<run>[A-Za-z0-9]+))")
_SR_RE: Final = re.compile(
    r"SR-(?P<date>[0-9]{6})-(?P<seq>[0-9]+)-T(?P<task>[0-9]+)-S(?P<stream>[0-9]+)-(?P<client>.+)",
    re.DOTALL,
)
_NUMERIC_RE: Final = re.compile(r"(?P<base>[0-9]{6}-[0-9]{6})\.0+")


def _unconvertible(original: Any, reason: str, **extra: Any) -> Recognised:
    return Recognised(LegacyFormat.UNCONVERTIBLE, original, reason=reason, **extra)


def recognise(
    value: Any, *, start_time: datetime | None = None, known_client_ids: Collection[str] = ()
) -> Recognised:
    """Say which run-ID form ``value`` has and convert it to the standard form.

    Never raises for bad input: a value that cannot be converted comes back UNCONVERTIBLE with
    a ``reason``.  Surrounding whitespace is ignored (a rewrite then removes it).

    ``start_time`` is the row's Start Time (or created time); only the structured SR form needs
    it, because its ID holds the date but not the time of day.  It is converted to UTC.  The SR
    date was written in an unknown zone (the original mixed server-local time and UTC), so when
    the UTC date of ``start_time`` is the day before or after the ID's date, the start time wins
    (it is the true instant) and ``reason`` says so; further apart, the start time is taken to
    belong to another run and the ID is unconvertible.

    A client suffix made of one client ID repeated (``Guy-Wilson-Guy-Wilson``, also
    ``Acme-Acme``) is read as doubled, keeping the shortest repeating unit.

    ``known_client_ids`` resolves ambiguities that no rule can: the old ``C`` client prefix is
    stripped only when the remainder is a known client ID (and the whole is not), and a suffix
    that is itself a known client ID is never read as doubled or Apify-tagged.

    >>> recognise("251007-070457-Guy-Wilson-Guy-Wilson").converted
    '251007-070457-Guy-Wilson'
    >>> found = recognise("250930-141522-apify-8MSTBAfqMzuXPvgB3")
    >>> found.format, found.converted, found.apify_run_id
    (<LegacyFormat.APIFY: 'Apify-tagged'>, '250930-141522', '8MSTBAfqMzuXPvgB3')
    >>> start = datetime(2025, 9, 24, 9, 30, 5, tzinfo=UTC)
    >>> recognise("SR-250924-001-T3304-S1-CGuy-Wilson", start_time=start,
    ...           known_client_ids={"Guy-Wilson"}).converted
    '250924-093005-Guy-Wilson'
    >>> recognise("SR-250924-001-T3304-S1-Guy-Wilson").reason
    'structured SR ID holds the date but not the time; no start time given'
    """
    if not isinstance(value, str):
        return _unconvertible(value, f"not a string: {type(value).__name__}")
    text = value.strip()
    if not text:
        return _unconvertible(value, "empty or whitespace only")
    if reason := _placeholder_reason(text):
        return _unconvertible(value, reason)
    found = _recognise_text(value, text, start_time, frozenset(known_client_ids))
    if text != value and found.base is not None and found.reason is None:
        found = replace(found, reason="surrounding whitespace removed")
    return found


def _recognise_text(
    value: Any, text: str, start_time: datetime | None, known: frozenset[str]
) -> Recognised:
    if (match := _BASE_RE.fullmatch(text[:_BASE_LEN])) and (
        len(text) == _BASE_LEN or text[_BASE_LEN] == "-"
    ):
        return _recognise_current(value, text, known)
    if match := _NUMERIC_RE.fullmatch(text):
        return _with_base(value, LegacyFormat.NUMERIC_ARTEFACT, match["base"])
    if match := _BYPASS_RE.fullmatch(text):
        return _recognise_bypass(value, match)
    if match := _JOB_PROCESS_RE.fullmatch(text):
        naive = _parse_compact(match["ts"])
        extra = {"job_name": match["name"], "stream": int(match["stream"])}
        if naive is None:
            return _unconvertible(
                value, f"job process timestamp {match['ts']!r} is not a real date", **extra
            )
        return _with_base(value, LegacyFormat.JOB_PROCESS, naive.strftime(_BASE_FORMAT), **extra)
    if match := _SR_RE.fullmatch(text):
        return _recognise_sr(value, match, start_time, known)
    return _unconvertible(value, "matches no known run-ID form")


@functools.lru_cache(maxsize=1 << 12)
def _base_run_id(base_text: str) -> BaseRunId | None:
    # Every client row of a job shares its base, and sync recognises every row of a base:
    # validated once per base (a BaseRunId is an immutable str, safe to share).
    return None if _base_datetime(base_text) is None else BaseRunId(base_text)


def _with_base(value: Any, fmt: LegacyFormat, base_text: str, **extra: Any) -> Recognised:
    """A result for ``base_text`` if it is a real date and time, else UNCONVERTIBLE."""
    base = _base_run_id(base_text)
    if base is None:
        return _unconvertible(value, f"{base_text!r} is not a real calendar date and time")
    return Recognised(fmt, value, base=base, **extra)


_APIFY_SUFFIX_RE: Final = re.compile(r"apify-[A-Za-z0-9]+")


@functools.lru_cache(maxsize=1 << 12)
def _suffix_facts(suffix: str) -> tuple[bool, str | None, str | None]:
    """What a run ID's client part says whatever its base: whether it may be an Apify tag,
    its repeated unit, why it is no client ID.  The same few clients recur on every run, so
    each is examined once (the planner's costliest per-row step before this)."""
    return (
        _APIFY_SUFFIX_RE.fullmatch(suffix) is not None,
        _repeated_unit(suffix),
        _client_problem(suffix),
    )


def _recognise_current(value: Any, text: str, known: frozenset[str]) -> Recognised:
    """Standard, client, doubled-suffix and Apify-tagged forms (all start with a base)."""
    base_text = text[:_BASE_LEN]
    if len(text) == _BASE_LEN:
        return _with_base(value, LegacyFormat.STANDARD, base_text)
    suffix = text[_BASE_LEN + 1 :]
    maybe_apify, unit, problem = _suffix_facts(suffix)
    if suffix not in known:
        # The whole text is matched as before: the suffix test only skips texts it cannot match.
        if maybe_apify and (apify := _APIFY_RE.fullmatch(text)):
            return _with_base(value, LegacyFormat.APIFY, base_text, apify_run_id=apify["run"])
        if unit is not None:
            return _with_base(value, LegacyFormat.DOUBLED_SUFFIX, base_text, client_id=unit)
    if problem:
        return _unconvertible(value, problem)
    return _with_base(value, LegacyFormat.CLIENT, base_text, client_id=suffix)


def _parse_compact(ts: str) -> datetime | None:
    """``YYYYMMDDHHMMSS`` (UTC) as a naive datetime, or None if no real time or not 20YY."""
    try:
        parsed = datetime.strptime(ts, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return parsed if 2000 <= parsed.year <= 2099 else None


def _recognise_bypass(value: Any, match: re.Match[str]) -> Recognised:
    extra = {"job_name": match["name"]}
    try:
        instant = datetime.fromtimestamp(int(match["ms"]) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return _unconvertible(value, f"epoch milliseconds {match['ms']} out of range", **extra)
    if not 2000 <= instant.year <= 2099:
        return _unconvertible(
            value, f"epoch milliseconds {match['ms']} fall outside 2000-2099", **extra
        )
    return _with_base(value, LegacyFormat.BYPASS, instant.strftime(_BASE_FORMAT), **extra)


def _recognise_sr(
    value: Any, match: re.Match[str], start_time: datetime | None, known: frozenset[str]
) -> Recognised:
    client = match["client"]
    # "Carl-Jones" starts with C too: only the data can say the C is a prefix.
    if (
        client not in known
        and client.startswith("C")
        and client[1:] in known
        and _client_problem(client[1:]) is None
    ):
        client = client[1:]
    extra: dict[str, Any] = {"stream": int(match["stream"])}
    if problem := _client_problem(client):
        return _unconvertible(value, problem, **extra)
    extra["client_id"] = client
    try:
        id_date = datetime.strptime("20" + match["date"], "%Y%m%d").date()
    except ValueError:
        return _unconvertible(value, f"SR date {match['date']!r} is not a real date", **extra)
    if start_time is None:
        return _unconvertible(
            value,
            "structured SR ID holds the date but not the time; no start time given",
            needs_start_time=True,
            **extra,
        )
    if not isinstance(start_time, datetime) or start_time.utcoffset() is None:
        return _unconvertible(
            value, f"start time {show(start_time)} is not an aware datetime", **extra
        )
    start = start_time.astimezone(UTC)
    skew = (start.date() - id_date).days
    if abs(skew) > 1:
        return _unconvertible(
            value,
            f"start time {start.isoformat()} is {abs(skew)} days from the ID's date {id_date}",
            **extra,
        )
    note = None
    if skew:
        note = (
            f"UTC start date {start.date()} differs from the ID's date {id_date}; start time used"
        )
    if not 2000 <= start.year <= 2099:
        return _unconvertible(
            value, f"start time {start.isoformat()} is outside 2000-2099", **extra
        )
    found = _with_base(value, LegacyFormat.STRUCTURED_SR, start.strftime(_BASE_FORMAT), **extra)
    return replace(found, reason=note) if note and found.base is not None else found
