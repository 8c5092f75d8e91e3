"""Run IDs (SPEC §1.2): generation, strict parsing, client suffixing and legacy conversion.

Two distinct types, so that a base run ID can never be passed where a client run ID is expected
(the original mixed them up and got "record not found"):

* :class:`BaseRunId` -- ``YYMMDD-HHMMSS``, one per job, e.g. ``250930-141522``;
* :class:`ClientRunId` -- ``<base>-<clientId>``, one per (job, client), e.g.
  ``250930-141522-Guy-Wilson``.

Both are immutable ``str`` subclasses validated on construction: they can be written to Airtable
and quoted into formulas as they are, yet ``isinstance`` tells them apart, and neither accepts a
value of the other kind.

>>> base = generate_base_run_id(clock=lambda: datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC))
>>> base
BaseRunId('250930-141522')
>>> run = with_client(base, "Guy-Wilson")
>>> run, run.base, run.client_id
(ClientRunId('250930-141522-Guy-Wilson'), BaseRunId('250930-141522'), 'Guy-Wilson')
>>> with_client(run, "Guy-Wilson") is run      # idempotent, never ...-Guy-Wilson-Guy-Wilson
True
>>> as_base_run_id(run)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
jobtrack_airtable.errors.RunIdTypeError: invalid run ID ClientRunId('...'): is a ClientRunId; ...

The strict parsers accept only the standard forms.  Legacy forms found in old bases are the
admin library's business (:mod:`jobtrack_airtable.admin.legacy`), since workers never write them.

Two-digit years are read as 2000-2099: IDs outside that century cannot be written or read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final, Self

from .errors import (
    InvalidClientIdError,
    InvalidInputError,
    InvalidRunIdError,
    RunIdTypeError,
    show,
)
from .timeutil import utcnow

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

__all__ = [
    "CLIENT_ID_MAX_LENGTH",
    "BaseRunId",
    "ClientRunId",
    "as_base_run_id",
    "as_client_run_id",
    "format_base_run_id",
    "generate_base_run_id",
    "parse_base_run_id",
    "parse_run_id",
    "validate_client_id",
    "with_client",
]

CLIENT_ID_MAX_LENGTH: Final = 100

# [0-9] rather than \d: \d also matches Arabic-Indic and other Unicode digits.
_BASE_RE: Final = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})-([0-9]{2})([0-9]{2})([0-9]{2})")
_BASE_LEN: Final = 13  # len("YYMMDD-HHMMSS")
_BASE_FORMAT: Final = "%y%m%d-%H%M%S"

# What JavaScript and Python print for missing values; the original wrote them as run IDs.
# Compared case-sensitively so that a client really called "Nan" is not refused.
_PLACEHOLDERS: Final = frozenset({"undefined", "null", "NULL", "None", "NaN", "nan"})
_OBJECT_RE: Final = re.compile(r"\[object [A-Za-z]+\]")

# Line and paragraph separators act as newlines in many tools; lone surrogates cannot be
# encoded as UTF-8 JSON.  Neither may reach a formula or a request body.
_FORBIDDEN_CATEGORIES: Final = {
    "Cc": "control",
    "Zl": "line separator",
    "Zp": "paragraph separator",
    "Cs": "unpaired surrogate",
}


# --- shared checks -------------------------------------------------------------------------


def _placeholder_reason(value: str) -> str | None:
    """Why ``value`` is a stringified missing value (``'[object Object]'``...), or None."""
    if value in _PLACEHOLDERS or _OBJECT_RE.fullmatch(value):
        return "looks like a stringified missing value or object, not an ID"
    return None


def _require_text(value: Any) -> str:
    """Refuse non-strings and empty or placeholder strings as run IDs."""
    if not isinstance(value, str):
        raise RunIdTypeError(value, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidRunIdError(value, "empty or whitespace only")
    if reason := _placeholder_reason(value):
        raise InvalidRunIdError(value, reason)
    return str(value)  # drop any subclass so slicing below yields plain str


def _base_datetime(text: str) -> datetime | None:
    """The naive wall-clock time of a ``YYMMDD-HHMMSS`` text, or None if it is no real time."""
    match = _BASE_RE.fullmatch(text)
    if match is None:
        return None
    yy, mo, dd, hh, mi, ss = map(int, match.groups())
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss)
    except ValueError:
        return None


def _check_base_text(value: Any, text: str) -> None:
    """Raise unless ``text`` is a well-formed real ``YYMMDD-HHMMSS``; ``value`` is quoted."""
    if _BASE_RE.fullmatch(text) is None:
        raise InvalidRunIdError(value, "expected YYMMDD-HHMMSS (e.g. '250930-141522')")
    if _base_datetime(text) is None:
        raise InvalidRunIdError(value, "not a real calendar date and time")


def _legacy_hint(text: str) -> str:
    """A suffix for strict-parse errors: old bases hold legacy forms, which the admin library
    recognises (the worker core only ever writes standard IDs, so it does not carry them)."""
    return "; legacy IDs of old bases are converted by jobtrack_airtable.admin.legacy.recognise()"


# --- the two types -------------------------------------------------------------------------


class BaseRunId(str):
    """A job's run ID, ``YYMMDD-HHMMSS``, validated on construction.

    >>> BaseRunId("250930-141522").to_datetime().isoformat()
    '2025-09-30T14:15:22+00:00'
    >>> BaseRunId("991399-996199")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidRunIdError: ...'991399-996199': not a real calendar date ...
    """

    __slots__ = ()

    def __new__(cls, value: Any) -> Self:
        if isinstance(value, cls):
            return value
        if isinstance(value, ClientRunId):
            raise RunIdTypeError(value, "is a ClientRunId; expected a base run ID (use .base)")
        text = _require_text(value)
        if _BASE_RE.fullmatch(text) is None:
            if (
                len(text) > _BASE_LEN + 1
                and text[_BASE_LEN] == "-"
                and _base_datetime(text[:_BASE_LEN])
            ):
                raise InvalidRunIdError(value, "is a client run ID; expected a base run ID")
            raise InvalidRunIdError(
                value, "expected YYMMDD-HHMMSS (e.g. '250930-141522')" + _legacy_hint(text)
            )
        _check_base_text(value, text)
        return super().__new__(cls, text)

    @classmethod
    def from_datetime(cls, value: datetime, tz: tzinfo = UTC) -> BaseRunId:
        """The run ID of an aware instant, written as wall-clock time in ``tz``."""
        return format_base_run_id(value, tz)

    def to_datetime(self, tz: tzinfo = UTC) -> datetime:
        """The instant this ID names, reading its digits as wall-clock time in ``tz`` (the zone
        it was generated in; UTC unless configured otherwise).

        >>> from zoneinfo import ZoneInfo
        >>> BaseRunId("250930-141522").to_datetime(ZoneInfo("Europe/London")).isoformat()
        '2025-09-30T14:15:22+01:00'
        """
        naive = _base_datetime(str(self))
        assert naive is not None  # guaranteed by __new__
        return naive.replace(tzinfo=tz)

    def next_second(self) -> BaseRunId:
        """The ID one second later (wall-clock arithmetic on the digits).

        >>> BaseRunId("251231-235959").next_second()
        BaseRunId('260101-000000')
        """
        naive = _base_datetime(str(self))
        assert naive is not None
        later = naive + timedelta(seconds=1)
        if later.year > 2099:
            raise InvalidRunIdError(str(self), "no later run ID exists in the 2000-2099 range")
        return BaseRunId(later.strftime(_BASE_FORMAT))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _pydantic_schema(as_base_run_id)


class ClientRunId(str):
    """A client's run ID within a job, ``<base>-<clientId>``, validated on construction.

    Everything after the second hyphen is the client ID, so hyphenated IDs are fine:

    >>> run = ClientRunId("250930-141522-Mary-Ann O'Brien")
    >>> run.base, run.client_id
    (BaseRunId('250930-141522'), "Mary-Ann O'Brien")
    >>> ClientRunId("250930-141522")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidRunIdError: ...'250930-141522': is a base run ID; ...
    """

    __slots__ = ()

    def __new__(cls, value: Any) -> Self:
        if isinstance(value, cls):
            return value
        if isinstance(value, BaseRunId):
            raise RunIdTypeError(
                value, "is a BaseRunId; expected a client run ID (use with_client)"
            )
        text = _require_text(value)
        if _BASE_RE.fullmatch(text) is not None:
            _check_base_text(value, text)
            raise InvalidRunIdError(value, "is a base run ID; expected a client run ID")
        if (
            len(text) <= _BASE_LEN + 1
            or text[_BASE_LEN] != "-"
            or _BASE_RE.fullmatch(text[:_BASE_LEN]) is None
        ):
            raise InvalidRunIdError(
                value,
                "expected YYMMDD-HHMMSS-<clientId> (e.g. '250930-141522-Guy-Wilson')"
                + _legacy_hint(text),
            )
        _check_base_text(value, text[:_BASE_LEN])
        try:
            validate_client_id(text[_BASE_LEN + 1 :])
        except InvalidClientIdError as exc:
            raise InvalidRunIdError(value, f"bad client ID part: {exc.reason}") from None
        return super().__new__(cls, text)

    @classmethod
    def from_parts(cls, base: BaseRunId | str, client_id: str) -> ClientRunId:
        """Join a base run ID and a client ID (prefer :func:`with_client`, which is idempotent).

        >>> ClientRunId.from_parts("250930-141522", 'The "Quote" Co')
        ClientRunId('250930-141522-The "Quote" Co')
        """
        return cls(f"{as_base_run_id(base)}-{validate_client_id(client_id)}")

    @property
    def base(self) -> BaseRunId:
        """The job's run ID."""
        return BaseRunId(str(self)[:_BASE_LEN])

    @property
    def client_id(self) -> str:
        """The client ID: everything after the second hyphen."""
        return str(self)[_BASE_LEN + 1 :]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return _pydantic_schema(as_client_run_id)


def _pydantic_schema(validator: Callable[[Any], str]) -> CoreSchema:
    """Let pydantic models declare fields of either run-ID type (validated, serialised as str)."""
    from pydantic_core import core_schema

    return core_schema.no_info_plain_validator_function(
        validator,
        json_schema_input_schema=core_schema.str_schema(),
        serialization=core_schema.plain_serializer_function_ser_schema(str),
    )


# --- validation and coercion ---------------------------------------------------------------


def validate_client_id(value: Any) -> str:
    """Return ``value`` if it is a valid client ID, else raise :class:`InvalidClientIdError`.

    1-100 characters; no control characters (C0, DEL, C1), line/paragraph separators or lone
    surrogates; no leading or trailing whitespace.  Hyphens, spaces, apostrophes, quotes and
    non-ASCII letters are fine.  Stringified missing values (``'[object Object]'``,
    ``'undefined'``, ``'null'``, ``'None'``, ``'NaN'``) are refused, and so is anything starting
    with a base run ID, which is a run ID passed where a client ID belongs.

    >>> validate_client_id("Zoë O'Brien-Smith")
    "Zoë O'Brien-Smith"
    >>> validate_client_id("Guy\\nWilson")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidClientIdError: ...'Guy\\nWilson': contains a control ...
    """
    if not isinstance(value, str):
        raise InvalidClientIdError(value, f"expected a string, got {type(value).__name__}")
    if not value:
        raise InvalidClientIdError(value, "empty")
    if len(value) > CLIENT_ID_MAX_LENGTH:
        raise InvalidClientIdError(
            value, f"{len(value)} characters; at most {CLIENT_ID_MAX_LENGTH} allowed"
        )
    for index, char in enumerate(value):
        if kind := _FORBIDDEN_CATEGORIES.get(unicodedata.category(char)):
            raise InvalidClientIdError(
                value, f"contains a {kind} character (U+{ord(char):04X}) at index {index}"
            )
    if value != value.strip():
        raise InvalidClientIdError(value, "has leading or trailing whitespace")
    if reason := _placeholder_reason(value):
        raise InvalidClientIdError(value, reason)
    if _base_datetime(value[:_BASE_LEN]) is not None:
        raise InvalidClientIdError(value, "starts with a run ID; pass the client ID alone")
    return str(value)


def as_base_run_id(value: Any) -> BaseRunId:
    """Coerce to :class:`BaseRunId`: accepts one, or a valid ``YYMMDD-HHMMSS`` string.

    A :class:`ClientRunId` (or any non-string) raises :class:`RunIdTypeError`; a malformed string,
    or one holding a client run ID, raises :class:`InvalidRunIdError`.

    >>> as_base_run_id("250930-141522")
    BaseRunId('250930-141522')
    >>> as_base_run_id(None)
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.RunIdTypeError: invalid run ID None: expected a string, got NoneType
    """
    return BaseRunId(value)


def as_client_run_id(value: Any) -> ClientRunId:
    """Coerce to :class:`ClientRunId`: accepts one, or a valid ``<base>-<clientId>`` string.

    >>> as_client_run_id("250930-141522-Guy-Wilson").client_id
    'Guy-Wilson'
    >>> as_client_run_id("[object Object]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidRunIdError: invalid run ID '[object Object]': looks like a ...
    """
    return ClientRunId(value)


# --- generation and parsing ----------------------------------------------------------------


def format_base_run_id(dt: datetime, tz: tzinfo = UTC) -> BaseRunId:
    """The run ID of the aware instant ``dt`` as wall-clock time in ``tz`` (sub-seconds dropped).

    >>> from datetime import timezone, timedelta
    >>> plus_two = timezone(timedelta(hours=2))
    >>> format_base_run_id(datetime(2025, 9, 30, 16, 15, 22, 999, tzinfo=plus_two))
    BaseRunId('250930-141522')
    """
    if not isinstance(dt, datetime):
        raise InvalidInputError(f"expected a datetime, got {show(dt)}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        # A naive time's zone is a guess; guessing is how the original's IDs stopped matching.
        raise InvalidInputError(f"naive datetime {dt.isoformat()!r} refused: give it a time zone")
    local = dt.astimezone(tz)
    if not 2000 <= local.year <= 2099:
        raise InvalidInputError(f"{dt.isoformat()!r} is outside 2000-2099; run IDs use YY")
    return BaseRunId(local.strftime(_BASE_FORMAT))


def generate_base_run_id(*, clock: Callable[[], datetime] = utcnow, tz: tzinfo = UTC) -> BaseRunId:
    """A new base run ID for "now" in ``tz`` (UTC unless configured otherwise).

    This does not check uniqueness: ``Tracker.job()`` claims it (see the tracker).

    >>> from zoneinfo import ZoneInfo
    >>> clock = lambda: datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    >>> generate_base_run_id(clock=clock)
    BaseRunId('250930-141522')
    >>> generate_base_run_id(clock=clock, tz=ZoneInfo("Asia/Tokyo"))
    BaseRunId('250930-231522')
    """
    return format_base_run_id(clock(), tz)


def parse_base_run_id(s: Any) -> BaseRunId:
    """Strictly parse a base run ID (no legacy forms); same as :func:`as_base_run_id`.

    >>> parse_base_run_id("250930-141522.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidRunIdError: ...legacy IDs of old bases are converted by ...
    """
    return BaseRunId(s)


def parse_run_id(s: Any) -> BaseRunId | ClientRunId:
    """Strictly parse either kind, telling which by shape.

    >>> parse_run_id("250930-141522"), parse_run_id("250930-141522-Guy-Wilson")
    (BaseRunId('250930-141522'), ClientRunId('250930-141522-Guy-Wilson'))
    """
    if isinstance(s, BaseRunId | ClientRunId):
        return s
    text = _require_text(s)
    if len(text) > _BASE_LEN and text[_BASE_LEN] == "-" and _BASE_RE.fullmatch(text[:_BASE_LEN]):
        return ClientRunId(s)
    return BaseRunId(s)


def with_client(run_id: BaseRunId | ClientRunId | str, client_id: str) -> ClientRunId:
    """Add a client suffix, idempotently.

    Adding the client a client run ID already has returns it unchanged; adding a different one
    is an error (it is a run ID of another client, not a base).

    >>> with_client("250930-141522-Guy-Wilson", "Guy-Wilson")
    ClientRunId('250930-141522-Guy-Wilson')
    >>> with_client("250930-141522-Guy-Wilson", "Carl-Jones")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidRunIdError: ...: already belongs to client 'Guy-Wilson'; ...
    """
    client_id = validate_client_id(client_id)
    parsed = parse_run_id(run_id)
    if isinstance(parsed, BaseRunId):
        return ClientRunId.from_parts(parsed, client_id)
    if parsed.client_id == client_id:
        return parsed
    reason = f"already belongs to client {parsed.client_id!r}; cannot add client {client_id!r}"
    if _repeated_unit(parsed.client_id) == client_id:
        reason += " (it has a doubled legacy suffix; `jobtrack-airtable sync` repairs it)"
    raise InvalidRunIdError(str(parsed), reason)


def _repeated_unit(suffix: str) -> str | None:
    """The shortest valid client ID ``X`` such that ``suffix`` is ``X-X`` (or ``X-X-X``...).

    >>> _repeated_unit("Guy-Wilson-Guy-Wilson"), _repeated_unit("Guy-Wilson")
    ('Guy-Wilson', None)
    """
    parts = suffix.split("-")
    for size in range(1, len(parts) // 2 + 1):
        if len(parts) % size:
            continue
        unit = parts[:size]
        if all(parts[i : i + size] == unit for i in range(size, len(parts), size)):
            joined = "-".join(unit)
            if _client_problem(joined) is None:
                return joined
    return None


def _client_problem(client_id: str) -> str | None:
    try:
        validate_client_id(client_id)
    except InvalidClientIdError as exc:
        return f"client ID part {client_id!r} is invalid: {exc.reason}"
    return None
