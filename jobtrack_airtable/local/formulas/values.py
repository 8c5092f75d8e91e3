"""Values during evaluation: the :class:`EvalContext` a formula reads, blank and
:class:`ErrorValue`, coercions, comparisons, arithmetic operators, truthiness and JSON
conversion.  The rules are set out in the docstring of :mod:`jobtrack_airtable.local.formulas`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from ...airtable import MAX_LONG_TEXT


class ErrorValue:
    """A runtime error inside a formula (Airtable shows ``#ERROR!``).

    It is a *value*, not an exception, because Airtable keeps evaluating: the error propagates
    through operators and functions, a filter treats it as false, and a formula field shows it.
    """

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorValue) and other.message == self.message

    def __hash__(self) -> int:
        return hash(("ErrorValue", self.message))

    def __repr__(self) -> str:
        return f"ErrorValue({self.message!r})"

    def __str__(self) -> str:
        return "#ERROR!"

    def to_json(self) -> dict[str, str]:
        """How Airtable returns an errored formula field in a record."""
        return {"error": "#ERROR!"}


@dataclass(frozen=True)
class EvalContext:
    """Everything a formula may look at while evaluating against one record."""

    fields: Mapping[str, Any]
    """Field name → stored JSON value; a missing name is blank."""
    record_id: str
    created_time: datetime
    """Aware UTC."""
    now: datetime
    """Aware UTC; ``NOW()``/``TODAY()`` read it so a listing sees one instant."""
    field_types: Mapping[str, str] = field(default_factory=dict)
    """Field name → Airtable type; ``dateTime``/``date`` values are read as datetimes."""
    last_modified_time: datetime | None = None
    computed: Mapping[str, Callable[[EvalContext], Any]] = field(default_factory=dict)
    """Formula fields evaluated lazily by name when a formula references them."""


Evaluator = Callable[[EvalContext], Any]


def is_truthy(value: Any) -> bool:
    """Airtable's truthiness in a filter: blank, 0, ``""``, FALSE, empty list, NaN and errors
    are false; everything else (any other text, number, datetime, non-empty list) is true."""
    if value is None or value is False or type(value) is ErrorValue:
        return False
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN (x != x) is false
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def to_json_value(value: Any) -> Any:
    """Render an evaluation result as Airtable returns a formula field in JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)  # Airtable shows TRUE()/FALSE() results as 1/0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"specialValue": "NaN"}
        if math.isinf(value):
            return {"specialValue": "Infinity" if value > 0 else "-Infinity"}
        return norm_num(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, ErrorValue):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


# =============================================================================================
# Coercions and operators
# =============================================================================================


class EvalFailure(Exception):
    """Raised inside operators/functions; turned into an :class:`ErrorValue`."""


# No formula value may grow beyond Airtable's long-text cap either, so one request cannot
# build gigabytes (``REPT('x', 1e9)``).


def check_text(text: str) -> str:
    """``text``, or an evaluation failure if it is longer than :data:`MAX_LONG_TEXT`."""
    if len(text) > MAX_LONG_TEXT:
        raise EvalFailure(f"text longer than {MAX_LONG_TEXT:,} characters")
    return text


_NUMERIC_TEXT_RE: Final = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")


def norm_num(x: float | int) -> float | int:
    """Integral floats become ints, so ``4 / 2`` is ``2`` (JSON ``2``, text ``"2"``)."""
    if type(x) is float and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def text_number(text: str) -> int | float | None:
    if not _NUMERIC_TEXT_RE.fullmatch(text):
        return None
    value = float(text)
    return norm_num(value)


def num(v: Any) -> int | float:
    """Coerce to a number for arithmetic: blank and ``""`` are 0, booleans 1/0."""
    if v is None:
        return 0
    if isinstance(v, int | float):  # bool is an int: TRUE() is 1
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, str):
        if not v.strip():
            return 0
        n = text_number(v)
        if n is None:
            raise EvalFailure(f"{v!r} is not a number")
        return n
    if isinstance(v, list) and len(v) <= 1:
        return num(v[0]) if v else 0
    raise EvalFailure(f"{to_str(v)!r} is not a number")


def int_arg(v: Any) -> int:
    return int(num(v))


def _format_number(x: float | int) -> str:
    x = norm_num(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def to_str(v: Any) -> str:
    """Text form of a value, as ``&`` and text functions see it."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int | float):
        return _format_number(v)
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, list | tuple):
        return ", ".join(to_str(x) for x in v)  # how Airtable shows a multi-select
    if isinstance(v, dict):
        # Collaborators, attachments, special values: their readable part.
        for key in ("name", "filename", "email", "url", "specialValue"):
            if key in v:
                return to_str(v[key])
        return ""
    return str(v)


def iso(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Bring two values to one kind for comparison, or ``None`` if they cannot be compared.
    See the package docstring for the rules."""
    if isinstance(a, bool):
        a = int(a)
    if isinstance(b, bool):
        b = int(b)
    if isinstance(a, list | tuple | dict):
        a = to_str(a)
    if isinstance(b, list | tuple | dict):
        b = to_str(b)
    ta, tb = type(a), type(b)
    if ta is tb or (ta in (int, float) and tb in (int, float)):
        return (a, b) if a is not None else ("", "")
    if a is None:
        a = _blank_like(b)
        return None if a is None else (a, b)
    if b is None:
        b = _blank_like(a)
        return None if b is None else (a, b)
    if ta is str and tb in (int, float):
        n = text_number(a)
        return (n, b) if n is not None else (a, _format_number(b))
    if tb is str and ta in (int, float):
        n = text_number(b)
        return (a, n) if n is not None else (_format_number(a), b)
    if ta is datetime and tb is str:
        parsed = parse_datetime_text(b)
        return (a, parsed) if parsed is not None else (iso(a), b)
    if tb is datetime and ta is str:
        parsed = parse_datetime_text(a)
        return (parsed, b) if parsed is not None else (a, iso(b))
    return None


def _blank_like(other: Any) -> Any:
    # Blank is "" next to text and 0 next to a number (Airtable: {Empty} = 0 is true);
    # it has no datetime form, so a blank date is neither equal to nor ordered with a date.
    if isinstance(other, str):
        return ""
    if isinstance(other, int | float):
        return 0
    return None


def equals(a: Any, b: Any) -> Any:
    if type(a) is ErrorValue:
        return a
    if type(b) is ErrorValue:
        return b
    pair = _comparable(a, b)
    return pair is not None and pair[0] == pair[1]


def ordered(cmp: Callable[[Any, Any], bool], a: Any, b: Any) -> Any:
    if type(a) is ErrorValue:
        return a
    if type(b) is ErrorValue:
        return b
    pair = _comparable(a, b)
    return pair is not None and cmp(pair[0], pair[1])


ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _divide(a: float | int, b: float | int) -> float | int:
    if b == 0:
        # Airtable: 0/0 is NaN ({"specialValue": "NaN"}), x/0 is ±Infinity
        # ({"specialValue": "Infinity"}), as public Airtable clients document it.
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return norm_num(a / b)


ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": lambda a, b: norm_num(a + b),
    "-": lambda a, b: norm_num(a - b),
    "*": lambda a, b: norm_num(a * b),
    "/": _divide,
}


# -- datetime text ----------------------------------------------------------------------------


_FALLBACK_DATE_FORMATS: Final = (
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
)


@lru_cache(maxsize=16384)
def parse_datetime_text(text: str) -> datetime | None:
    """ISO-8601 (``…Z``, offsets, date-only = midnight UTC, naive = UTC) plus a few common
    non-ISO shapes; ``None`` when the text is not a datetime.  Cached: a listing parses the
    same stored timestamps for every filter page."""
    s = text.strip()
    if not s or not s[0].isalnum():
        return None
    iso_text = s[:-1] + "+00:00" if s[-1] in "zZ" else s
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(iso_text)
    except ValueError:
        for fmt in _FALLBACK_DATE_FORMATS:
            try:
                parsed = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# -- lists ------------------------------------------------------------------------------------


def flatten(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list | tuple):
            out.extend(flatten(v))
        else:
            out.append(v)
    return out
