"""The function table: every supported function by upper-case name, with its arity and how
it is called (pure, with the context, or lazily)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP
from typing import Any, Final, Literal

from .date_formats import _datetime_format, _datetime_parse
from .dates import (
    _date_part,
    _dateadd,
    _datetime_diff,
    _is_after,
    _is_before,
    _is_same,
    _set_timezone,
    _to_dt,
    _weekday,
    _weeknum,
    _workday,
    _workday_diff,
)
from .logic import _and, _days_from_now, _error, _if, _iserror, _not, _or, _switch, _today, _xor
from .numeric import (
    _average,
    _count,
    _counta,
    _countall,
    _even_odd,
    _log,
    _max,
    _min,
    _mod,
    _multiple,
    _power,
    _round,
    _round_mode,
    _sqrt,
    _sum,
    _value,
)
from .text import (
    _array_unique,
    _encode_url_component,
    _find,
    _left,
    _mid,
    _regex_extract,
    _regex_match,
    _regex_replace,
    _replace,
    _rept,
    _right,
    _search,
    _substitute,
    _t,
)
from .values import _flatten, _norm_num, _num, _to_str

FunctionMode = Literal["pure", "ctx", "lazy"]


@dataclass(frozen=True)
class _Function:
    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    mode: FunctionMode = "pure"
    """pure: ``impl(*values)``, folded at compile time on constants; ctx: ``impl(ctx,
    *values)``; lazy: ``impl(ctx, arg_evaluators)`` (decides what to evaluate)."""

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"takes at least {self.min_args} argument(s)"
        if self.min_args == self.max_args:
            return f"takes {self.min_args} argument(s)"
        return f"takes {self.min_args} to {self.max_args} arguments"


def _fn(
    name: str,
    impl: Callable[..., Any],
    min_args: int,
    max_args: int | None = -1,
    mode: FunctionMode = "pure",
) -> tuple[str, _Function]:
    return name, _Function(name, impl, min_args, min_args if max_args == -1 else max_args, mode)


FUNCTIONS: Final[dict[str, _Function]] = dict(
    [
        # logic
        _fn("AND", _and, 1, None, "lazy"),
        _fn("OR", _or, 1, None, "lazy"),
        _fn("IF", _if, 2, 3, "lazy"),
        _fn("SWITCH", _switch, 2, None, "lazy"),
        _fn("ISERROR", _iserror, 1, 1, "lazy"),
        _fn("ERROR", _error, 0, None, "lazy"),
        _fn("NOT", _not, 1),
        _fn("XOR", _xor, 1, None),
        _fn("TRUE", lambda: True, 0),
        _fn("FALSE", lambda: False, 0),
        _fn("BLANK", lambda: None, 0),
        # record and clock
        _fn("RECORD_ID", lambda ctx: ctx.record_id, 0, 0, "ctx"),
        _fn("CREATED_TIME", lambda ctx: ctx.created_time, 0, 0, "ctx"),
        _fn(
            "LAST_MODIFIED_TIME",
            lambda ctx, *fields: ctx.last_modified_time or ctx.created_time,
            0,
            None,
            "ctx",
        ),
        _fn("NOW", lambda ctx: ctx.now, 0, 0, "ctx"),
        _fn("TODAY", _today, 0, 0, "ctx"),
        _fn("TONOW", _days_from_now, 1, 1, "ctx"),
        _fn("FROMNOW", _days_from_now, 1, 1, "ctx"),
        # text
        _fn("FIND", _find, 2, 3),
        _fn("SEARCH", _search, 2, 3),
        _fn("LOWER", lambda s: _to_str(s).lower(), 1),
        _fn("UPPER", lambda s: _to_str(s).upper(), 1),
        _fn("LEN", lambda s: len(_to_str(s)), 1),
        _fn("TRIM", lambda s: _to_str(s).strip(), 1),
        _fn("LEFT", _left, 2),
        _fn("RIGHT", _right, 2),
        _fn("MID", _mid, 3),
        _fn("REPLACE", _replace, 4),
        _fn("SUBSTITUTE", _substitute, 3, 4),
        _fn("REPT", _rept, 2),
        _fn("CONCATENATE", lambda *parts: "".join(_to_str(p) for p in parts), 1, None),
        _fn("T", _t, 1),
        _fn("ENCODE_URL_COMPONENT", _encode_url_component, 1),
        _fn("REGEX_MATCH", _regex_match, 2),
        _fn("REGEX_EXTRACT", _regex_extract, 2),
        _fn("REGEX_REPLACE", _regex_replace, 3),
        _fn("ARRAYJOIN", lambda a, sep=", ": _to_str(sep).join(map(_to_str, _flatten([a]))), 1, 2),
        _fn("ARRAYCOMPACT", lambda a: [v for v in _flatten([a]) if v is not None and v != ""], 1),
        _fn("ARRAYFLATTEN", lambda a: _flatten([a]), 1),
        _fn("ARRAYUNIQUE", _array_unique, 1),
        # numbers
        _fn("VALUE", _value, 1),
        _fn("ABS", lambda v: abs(_num(v)), 1),
        _fn("ROUND", _round, 1, 2),
        _fn("ROUNDUP", _round_mode(ROUND_UP), 1, 2),
        _fn("ROUNDDOWN", _round_mode(ROUND_DOWN), 1, 2),
        _fn("CEILING", lambda v, s=None: _multiple(v, s, math.ceil), 1, 2),
        _fn("FLOOR", lambda v, s=None: _multiple(v, s, math.floor), 1, 2),
        _fn("INT", lambda v: math.floor(_num(v)), 1),
        _fn("EVEN", lambda v: _even_odd(v, odd=False), 1),
        _fn("ODD", lambda v: _even_odd(v, odd=True), 1),
        _fn("MOD", _mod, 2),
        _fn("POWER", _power, 2),
        _fn("SQRT", _sqrt, 1),
        _fn("EXP", lambda v: _norm_num(math.exp(_num(v))), 1),
        _fn("LOG", _log, 1, 2),
        _fn("SUM", _sum, 1, None),
        _fn("MAX", _max, 1, None),
        _fn("MIN", _min, 1, None),
        _fn("AVERAGE", _average, 1, None),
        _fn("COUNT", _count, 1, None),
        _fn("COUNTA", _counta, 1, None),
        _fn("COUNTALL", _countall, 1, None),
        # dates
        _fn("DATETIME_PARSE", _datetime_parse, 1, 3),
        _fn("DATETIME_FORMAT", _datetime_format, 1, 2),
        _fn("DATETIME_DIFF", _datetime_diff, 2, 3),
        _fn("DATEADD", _dateadd, 3),
        _fn("IS_BEFORE", _is_before, 2),
        _fn("IS_AFTER", _is_after, 2),
        _fn("IS_SAME", _is_same, 2, 3),
        _fn("SET_TIMEZONE", _set_timezone, 2),
        _fn("SET_LOCALE", lambda v, locale: _to_dt(v), 2),  # English output only
        _fn("DATESTR", lambda v: _datetime_format(v, "YYYY-MM-DD"), 1),
        _fn("TIMESTR", lambda v: _datetime_format(v, "HH:mm:ss"), 1),
        _fn("YEAR", _date_part(lambda d: d.year), 1),
        _fn("MONTH", _date_part(lambda d: d.month), 1),
        _fn("DAY", _date_part(lambda d: d.day), 1),
        _fn("HOUR", _date_part(lambda d: d.hour), 1),
        _fn("MINUTE", _date_part(lambda d: d.minute), 1),
        _fn("SECOND", _date_part(lambda d: d.second), 1),
        _fn("WEEKDAY", _weekday, 1, 2),
        _fn("WEEKNUM", _weeknum, 1, 2),
        _fn("WORKDAY", _workday, 2, 3),
        _fn("WORKDAY_DIFF", _workday_diff, 2, 3),
    ]
)
"""Every supported function by upper-case name (arity checked at compile time)."""
