"""moment.js-style formats (DATETIME_FORMAT / DATETIME_PARSE)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from .dates import to_dt, weeknum
from .registry import Function, fn
from .values import EvalFailure, iso, to_str

_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MOMENT_TOKEN_RE: Final = re.compile(
    r"\[[^\]]*\]|LTS|LT|LLLL|LLL|LL|L|YYYY|YY|Q|MMMM|MMM|MM|M|Do|DDDD|DDD|DD|D|dddd|ddd|dd|d|E|e"
    r"|HH|H|hh|h|kk|k|mm|m|ss|s|SSS|SS|S|A|a|ZZ|Z|X|x|WW|W|ww|w|.",
    re.DOTALL,
)
_LOCALIZED: Final = {
    "LT": "h:mm A",
    "LTS": "h:mm:ss A",
    "L": "MM/DD/YYYY",
    "LL": "MMMM D, YYYY",
    "LLL": "MMMM D, YYYY h:mm A",
    "LLLL": "dddd, MMMM D, YYYY h:mm A",
}
_DEFAULT_FORMAT: Final = "YYYY-MM-DDTHH:mm:ss.SSSZ"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _offset(dt: datetime, colon: bool) -> str:
    off = dt.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}" if colon else f"{sign}{h:02d}{m:02d}"


_FORMATTERS: Final[dict[str, Callable[[datetime], str]]] = {
    "YYYY": lambda d: f"{d.year:04d}",
    "YY": lambda d: f"{d.year % 100:02d}",
    "Q": lambda d: str((d.month - 1) // 3 + 1),
    "MMMM": lambda d: _MONTHS[d.month - 1],
    "MMM": lambda d: _MONTHS[d.month - 1][:3],
    "MM": lambda d: f"{d.month:02d}",
    "M": lambda d: str(d.month),
    "Do": lambda d: _ordinal(d.day),
    "DDDD": lambda d: f"{d.timetuple().tm_yday:03d}",
    "DDD": lambda d: str(d.timetuple().tm_yday),
    "DD": lambda d: f"{d.day:02d}",
    "D": lambda d: str(d.day),
    "dddd": lambda d: _DAYS[d.weekday()],
    "ddd": lambda d: _DAYS[d.weekday()][:3],
    "dd": lambda d: _DAYS[d.weekday()][:2],
    "d": lambda d: str((d.weekday() + 1) % 7),
    "e": lambda d: str((d.weekday() + 1) % 7),
    "E": lambda d: str(d.isoweekday()),
    "HH": lambda d: f"{d.hour:02d}",
    "H": lambda d: str(d.hour),
    "hh": lambda d: f"{(d.hour % 12) or 12:02d}",
    "h": lambda d: str((d.hour % 12) or 12),
    "kk": lambda d: f"{d.hour or 24:02d}",
    "k": lambda d: str(d.hour or 24),
    "mm": lambda d: f"{d.minute:02d}",
    "m": lambda d: str(d.minute),
    "ss": lambda d: f"{d.second:02d}",
    "s": lambda d: str(d.second),
    "SSS": lambda d: f"{d.microsecond // 1000:03d}",
    "SS": lambda d: f"{d.microsecond // 10000:02d}",
    "S": lambda d: str(d.microsecond // 100000),
    "A": lambda d: "AM" if d.hour < 12 else "PM",
    "a": lambda d: "am" if d.hour < 12 else "pm",
    "ZZ": lambda d: _offset(d, colon=False),
    "Z": lambda d: _offset(d, colon=True),
    "X": lambda d: str(int(d.timestamp())),
    "x": lambda d: str(int(d.timestamp() * 1000)),
    "WW": lambda d: f"{d.isocalendar()[1]:02d}",
    "W": lambda d: str(d.isocalendar()[1]),
    "ww": lambda d: f"{weeknum(d) or 0:02d}",
    "w": lambda d: str(weeknum(d) or 0),
}


def _moment_tokens(fmt: str) -> list[str]:
    """Tokens of a moment.js format, localized shorthands (``LL``…) expanded."""
    tokens: list[str] = []
    for token in _MOMENT_TOKEN_RE.findall(fmt):
        if token in _LOCALIZED:
            tokens.extend(_MOMENT_TOKEN_RE.findall(_LOCALIZED[token]))
        else:
            tokens.append(token)
    return tokens


def _format_moment(dt: datetime, fmt: str) -> str:
    out: list[str] = []
    for token in _moment_tokens(fmt):
        if token.startswith("[") and token.endswith("]") and len(token) >= 2:
            out.append(token[1:-1])
        else:
            formatter = _FORMATTERS.get(token)
            out.append(formatter(dt) if formatter else token)
    return "".join(out)


def _datetime_format(v: Any, fmt: Any = None) -> str | None:
    dt = to_dt(v)
    if dt is None:
        return None
    text = to_str(fmt) if fmt is not None else ""
    if not text or text == _DEFAULT_FORMAT:
        return iso(dt)  # Airtable's default output: 2025-09-30T14:15:22.000Z
    # Formatting happens in the value's own zone: UTC unless SET_TIMEZONE() moved it.
    return _format_moment(dt, text)


_MONTH_PATTERN: Final = "|".join([*_MONTHS, *(m[:3] for m in _MONTHS)])
_DAY_PATTERN: Final = "|".join([*_DAYS, *(d[:3] for d in _DAYS), *(d[:2] for d in _DAYS)])
_PARSE_PATTERNS: Final = {
    "YYYY": r"[+-]?\d{4,6}",
    "YY": r"\d{2}",
    "Q": r"[1-4]",
    "MMMM": _MONTH_PATTERN,
    "MMM": _MONTH_PATTERN,
    "MM": r"\d{1,2}",
    "M": r"\d{1,2}",
    "Do": r"\d{1,2}(?:st|nd|rd|th)",
    "DDDD": r"\d{1,3}",
    "DDD": r"\d{1,3}",
    "DD": r"\d{1,2}",
    "D": r"\d{1,2}",
    "dddd": _DAY_PATTERN,
    "ddd": _DAY_PATTERN,
    "dd": _DAY_PATTERN,
    "d": r"\d",
    "e": r"\d",
    "E": r"\d",
    "HH": r"\d{1,2}",
    "H": r"\d{1,2}",
    "hh": r"\d{1,2}",
    "h": r"\d{1,2}",
    "kk": r"\d{1,2}",
    "k": r"\d{1,2}",
    "mm": r"\d{1,2}",
    "m": r"\d{1,2}",
    "ss": r"\d{1,2}",
    "s": r"\d{1,2}",
    "SSS": r"\d+",
    "SS": r"\d+",
    "S": r"\d+",
    "A": r"[AaPp]\.?[Mm]\.?",
    "a": r"[AaPp]\.?[Mm]\.?",
    "ZZ": r"Z|[+-]\d{2}:?\d{2}",
    "Z": r"Z|[+-]\d{2}:?\d{2}",
    "X": r"-?\d+(?:\.\d+)?",
    "x": r"-?\d+",
    "WW": r"\d{1,2}",
    "W": r"\d{1,2}",
    "ww": r"\d{1,2}",
    "w": r"\d{1,2}",
}


@lru_cache(maxsize=256)
def _moment_parser(fmt: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    parts: list[str] = []
    names: list[str] = []
    for token in _moment_tokens(fmt):
        if token in _PARSE_PATTERNS:
            parts.append(f"(?P<g{len(names)}>{_PARSE_PATTERNS[token]})")
            names.append(token)
        elif token.startswith("[") and token.endswith("]") and len(token) >= 2:
            parts.append(re.escape(token[1:-1]))
        elif token.isalnum():
            parts.append(re.escape(token))
        else:
            # moment's forgiving parser: any run of separators stands for any other.
            parts.append(r"[^0-9A-Za-z]*")
    return re.compile("".join(parts), re.IGNORECASE), tuple(names)


def _parse_moment(text: str, fmt: str) -> datetime:
    pattern, names = _moment_parser(fmt)
    m = pattern.match(text.strip())
    if m is None:
        raise EvalFailure(f"{text!r} does not match format {fmt!r}")
    year, month, day, hour, minute, second, micro = 1970, 1, 1, 0, 0, 0, 0
    pm: bool | None = None
    tz: timedelta | None = None
    for i, token in enumerate(names):
        raw = m.group(f"g{i}")
        if token == "YYYY":
            year = int(raw)
        elif token == "YY":
            year = 2000 + int(raw) if int(raw) < 69 else 1900 + int(raw)  # moment's pivot
        elif token in ("MM", "M"):
            month = int(raw)
        elif token in ("MMMM", "MMM"):
            month = [n[:3].lower() for n in _MONTHS].index(raw[:3].lower()) + 1
        elif token in ("DD", "D", "Do"):
            day = int(re.sub(r"\D", "", raw))
        elif token in ("HH", "H", "hh", "h", "kk", "k"):
            hour = int(raw) % 24
        elif token in ("mm", "m"):
            minute = int(raw)
        elif token in ("ss", "s"):
            second = int(raw)
        elif token in ("SSS", "SS", "S"):
            micro = int((raw + "000000")[:6])
        elif token in ("A", "a"):
            pm = raw[0].lower() == "p"
        elif token in ("ZZ", "Z"):
            if raw.upper() == "Z":
                tz = timedelta(0)
            else:
                digits = raw[1:].replace(":", "")
                tz = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                tz = -tz if raw[0] == "-" else tz
        elif token == "X":
            return datetime.fromtimestamp(float(raw), UTC)
        elif token == "x":
            return datetime.fromtimestamp(int(raw) / 1000, UTC)
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    try:
        naive = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise EvalFailure(f"{text!r} is not a valid date: {exc}") from None
    # Without an explicit offset the text is read as UTC (the API evaluates in GMT).
    return (naive - (tz or timedelta(0))).replace(tzinfo=UTC)


def _datetime_parse(v: Any, fmt: Any = None, locale: Any = None) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if v is None or v == "":
        return None
    text = to_str(v)
    if fmt is not None and to_str(fmt).strip() and to_str(fmt).strip().upper() != "ISO":
        return _parse_moment(text, to_str(fmt))
    return to_dt(text)


FUNCTIONS: Final[tuple[Function, ...]] = (
    fn("DATETIME_PARSE", _datetime_parse, 1, 3),
    fn("DATETIME_FORMAT", _datetime_format, 1, 2),
    fn("DATESTR", lambda v: _datetime_format(v, "YYYY-MM-DD"), 1),
    fn("TIMESTR", lambda v: _datetime_format(v, "HH:mm:ss"), 1),
)
