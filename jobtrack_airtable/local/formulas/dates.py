"""Date functions: date arguments and units, DATETIME_DIFF/DATEADD, IS_SAME/IS_BEFORE/
IS_AFTER, date parts, WEEKDAY/WEEKNUM, WORKDAY/WORKDAY_DIFF and SET_TIMEZONE."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .registry import Function, fn
from .values import EvalFailure, int_arg, num, parse_datetime_text, to_str


def to_dt(v: Any) -> datetime | None:
    """A date argument: ``None`` for blank, an error for anything that is not a date."""
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    if isinstance(v, list) and len(v) == 1:
        return to_dt(v[0])
    if isinstance(v, str):
        parsed = parse_datetime_text(v)
        if parsed is not None:
            return parsed
    raise EvalFailure(f"{to_str(v)!r} is not a date")


_UNIT_ALIASES: Final = {
    "ms": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "s": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "week": "w",
    "weeks": "w",
    "M": "M",
    "month": "M",
    "months": "M",
    "Q": "Q",
    "quarter": "Q",
    "quarters": "Q",
    "y": "y",
    "year": "y",
    "years": "y",
}
_UNIT_MICROSECONDS: Final = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}


def _unit(v: Any) -> str:
    text = to_str(v).strip()
    # 'M' (months) and 'm' (minutes) differ only by case, so exact spellings win first.
    unit = _UNIT_ALIASES.get(text) or _UNIT_ALIASES.get(text.lower())
    if unit is None:
        raise EvalFailure(f"unknown unit {text!r}")
    return unit


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    # Clamp the day (Jan 31 + 1 month = Feb 28/29), like moment.js.
    next_month = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return dt.replace(year=year, month=month, day=min(dt.day, last_day))


def _month_diff(d1: datetime, d2: datetime) -> int:
    """Whole months from d2 to d1, truncated toward zero (moment's ``diff(…, 'months')``)."""
    months = (d1.year - d2.year) * 12 + (d1.month - d2.month)
    if months > 0 and _add_months(d2, months) > d1:
        months -= 1
    elif months < 0 and _add_months(d2, months) < d1:
        months += 1
    elif months == 0:
        return 0
    return months


def datetime_diff(a: Any, b: Any, unit: Any = "seconds") -> int | None:
    d1, d2 = to_dt(a), to_dt(b)
    if d1 is None or d2 is None:
        return None
    u = _unit(unit)
    if u in _UNIT_MICROSECONDS:
        delta = d1 - d2
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return _trunc_div(micros, _UNIT_MICROSECONDS[u])
    months = _month_diff(d1, d2)
    return {"M": months, "Q": int(months / 3), "y": int(months / 12)}[u]


def _dateadd(v: Any, count: Any, unit: Any) -> datetime | None:
    dt = to_dt(v)
    if dt is None:
        return None
    n = num(count)
    u = _unit(unit)
    if u in _UNIT_MICROSECONDS:
        return dt + timedelta(microseconds=n * _UNIT_MICROSECONDS[u])
    months = round(n) * {"M": 1, "Q": 3, "y": 12}[u]
    return _add_months(dt, months)


def _truncate(dt: datetime, unit: str) -> tuple[int, ...]:
    dt = dt.astimezone(UTC)
    if unit == "w":
        start = dt.date() - timedelta(days=(dt.weekday() + 1) % 7)  # weeks start on Sunday
        return (start.toordinal(),)
    if unit == "Q":
        return (dt.year, (dt.month - 1) // 3)
    fields = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond // 1000)
    depth = {"y": 1, "M": 2, "d": 3, "h": 4, "m": 5, "s": 6, "ms": 7}[unit]
    return fields[:depth]


def _is_same(a: Any, b: Any, unit: Any = None) -> bool | None:
    d1, d2 = to_dt(a), to_dt(b)
    if d1 is None or d2 is None:
        return None
    if unit is None or unit == "":
        return d1 == d2
    u = _unit(unit)
    return _truncate(d1, u) == _truncate(d2, u)


def _is_before(a: Any, b: Any) -> bool | None:
    d1, d2 = to_dt(a), to_dt(b)
    return None if d1 is None or d2 is None else d1 < d2


def _is_after(a: Any, b: Any) -> bool | None:
    d1, d2 = to_dt(a), to_dt(b)
    return None if d1 is None or d2 is None else d1 > d2


def _date_part(getter: Callable[[datetime], int]) -> Callable[[Any], int | None]:
    def part(v: Any) -> int | None:
        dt = to_dt(v)
        return None if dt is None else getter(dt)

    return part


def _week_start_offset(start_day: Any) -> int:
    text = to_str(start_day).strip().lower() if start_day is not None else "sunday"
    if text in ("", "sunday"):
        return 1
    if text == "monday":
        return 0
    raise EvalFailure(f"week start must be 'Sunday' or 'Monday', not {text!r}")


def _weekday(v: Any, start_day: Any = None) -> int | None:
    dt = to_dt(v)
    if dt is None:
        return None
    return (dt.weekday() + _week_start_offset(start_day)) % 7  # 0 = the week's first day


def weeknum(v: Any, start_day: Any = None) -> int | None:
    dt = to_dt(v)
    if dt is None:
        return None
    offset = _week_start_offset(start_day)
    jan1 = date(dt.year, 1, 1)
    first_weekday = (jan1.weekday() + offset) % 7
    return (dt.timetuple().tm_yday - 1 + first_weekday) // 7 + 1


def _holidays(v: Any) -> set[date]:
    if v is None or v == "":
        return set()
    days: set[date] = set()
    for part in to_str(v).split(","):
        dt = to_dt(part.strip())
        if dt is not None:
            days.add(dt.date())
    return days


def _workday(start: Any, count: Any, holidays: Any = None) -> datetime | None:
    dt = to_dt(start)
    if dt is None:
        return None
    n, skip = int_arg(count), _holidays(holidays)
    step = 1 if n >= 0 else -1
    day = dt.date()
    remaining = abs(n)
    while remaining:
        day += timedelta(days=step)
        if day.weekday() < 5 and day not in skip:
            remaining -= 1
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _workday_diff(start: Any, end: Any, holidays: Any = None) -> int | None:
    d1, d2 = to_dt(start), to_dt(end)
    if d1 is None or d2 is None:
        return None
    skip = _holidays(holidays)
    a, b = sorted((d1.date(), d2.date()))
    count = sum(
        1
        for i in range((b - a).days + 1)
        if (day := a + timedelta(days=i)).weekday() < 5 and day not in skip
    )  # inclusive of both ends, like NETWORKDAYS
    return count if d2 >= d1 else -count


def _set_timezone(v: Any, tz: Any) -> datetime | None:
    dt = to_dt(v)
    if dt is None:
        return None
    try:
        return dt.astimezone(ZoneInfo(to_str(tz).strip()))
    except (ZoneInfoNotFoundError, ValueError):
        raise EvalFailure(f"unknown time zone {to_str(tz)!r}") from None


FUNCTIONS: Final[tuple[Function, ...]] = (
    fn("DATETIME_DIFF", datetime_diff, 2, 3),
    fn("DATEADD", _dateadd, 3),
    fn("IS_BEFORE", _is_before, 2),
    fn("IS_AFTER", _is_after, 2),
    fn("IS_SAME", _is_same, 2, 3),
    fn("SET_TIMEZONE", _set_timezone, 2),
    fn("SET_LOCALE", lambda v, locale: to_dt(v), 2),  # English output only
    fn("YEAR", _date_part(lambda d: d.year), 1),
    fn("MONTH", _date_part(lambda d: d.month), 1),
    fn("DAY", _date_part(lambda d: d.day), 1),
    fn("HOUR", _date_part(lambda d: d.hour), 1),
    fn("MINUTE", _date_part(lambda d: d.minute), 1),
    fn("SECOND", _date_part(lambda d: d.second), 1),
    fn("WEEKDAY", _weekday, 1, 2),
    fn("WEEKNUM", weeknum, 1, 2),
    fn("WORKDAY", _workday, 2, 3),
    fn("WORKDAY_DIFF", _workday_diff, 2, 3),
)
