"""Number functions: rounding, MOD/POWER/SQRT/LOG, aggregates (SUM, MAX, COUNT…) and
VALUE."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_UP, Decimal
from typing import Any, Final

from .registry import Function, fn
from .values import EvalFailure, flatten, int_arg, norm_num, num, text_number, to_str


def _decimal(v: Any) -> Decimal:
    x = num(v)
    if isinstance(x, float) and not math.isfinite(x):
        raise EvalFailure("not a finite number")
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _from_decimal(d: Decimal) -> int | float:
    return norm_num(float(d)) if d != d.to_integral_value() else int(d)


def _round(v: Any, precision: Any = 0) -> int | float:
    # Airtable breaks ties toward +infinity (ROUND(-2.5, 0) = -2), not away from zero.
    p = int_arg(precision)
    shifted = _decimal(v).scaleb(p) + Decimal("0.5")
    return _from_decimal(shifted.to_integral_value(rounding=ROUND_FLOOR).scaleb(-p))


def _round_mode(mode: str) -> Callable[[Any, Any], int | float]:
    def rounder(v: Any, precision: Any = 0) -> int | float:
        p = int_arg(precision)
        shifted = _decimal(v).scaleb(p)
        return _from_decimal(shifted.to_integral_value(rounding=mode).scaleb(-p))

    return rounder


def _multiple(v: Any, significance: Any, rounding: Callable[[float], int]) -> int | float:
    x, sig = num(v), num(significance) if significance is not None else 1
    if sig == 0:
        return 0
    return norm_num(rounding(x / sig) * sig)


def _even_odd(v: Any, odd: bool) -> int:
    x = num(v)
    sign = -1 if x < 0 else 1
    n = math.ceil(abs(x))  # away from zero
    if (n % 2 == 1) != odd:
        n += 1
    return sign * n


def _mod(a: Any, b: Any) -> int | float:
    x, y = num(a), num(b)
    if y == 0:
        raise EvalFailure("division by zero")
    return norm_num(math.fmod(x, y))  # sign of the dividend, like JavaScript's %


def _power(a: Any, b: Any) -> int | float:
    result = num(a) ** num(b)
    if isinstance(result, complex):
        raise EvalFailure("result is not a real number")
    return norm_num(result)


def _sqrt(v: Any) -> int | float:
    x = num(v)
    if x < 0:
        raise EvalFailure("square root of a negative number")
    return norm_num(math.sqrt(x))


def _log(v: Any, base: Any = 10) -> int | float:
    x, b = num(v), num(base)
    if x <= 0 or b <= 0 or b == 1:
        raise EvalFailure("logarithm of a non-positive number or base")
    return norm_num(math.log(x, b))


def _numbers(values: Sequence[Any]) -> list[int | float]:
    """The numeric items of (flattened) arguments; blanks and non-numeric text are skipped."""
    nums: list[int | float] = []
    for v in flatten(values):
        if isinstance(v, bool):
            nums.append(int(v))
        elif isinstance(v, int | float):
            nums.append(v)
        elif isinstance(v, str) and (n := text_number(v)) is not None:
            nums.append(n)
    return nums


def _sum(*values: Any) -> int | float:
    return norm_num(sum(_numbers(values)))


def _max(*values: Any) -> int | float:
    nums = _numbers(values)
    return max(nums) if nums else 0


def _min(*values: Any) -> int | float:
    nums = _numbers(values)
    return min(nums) if nums else 0


def _average(*values: Any) -> int | float:
    nums = _numbers(values)
    if not nums:
        raise EvalFailure("division by zero")
    return norm_num(sum(nums) / len(nums))


def _count(*values: Any) -> int:
    return sum(1 for v in flatten(values) if isinstance(v, int | float) and not isinstance(v, bool))


def _counta(*values: Any) -> int:
    return sum(1 for v in flatten(values) if v is not None and v != "")


def _countall(*values: Any) -> int:
    return len(flatten(values))


def _value(v: Any) -> int | float:
    if isinstance(v, int | float):
        return num(v)
    text = to_str(v).strip()
    percent = text.endswith("%")
    # VALUE('$1,000') = 1000: currency symbols, grouping and spaces are ignored.
    cleaned = re.sub(r"[^0-9.eE+-]", "", text)
    n = text_number(cleaned) if cleaned else None
    if n is None:
        raise EvalFailure(f"{text!r} is not a number")
    return norm_num(n / 100) if percent else n


FUNCTIONS: Final[tuple[Function, ...]] = (
    fn("VALUE", _value, 1),
    fn("ABS", lambda v: abs(num(v)), 1),
    fn("ROUND", _round, 1, 2),
    fn("ROUNDUP", _round_mode(ROUND_UP), 1, 2),
    fn("ROUNDDOWN", _round_mode(ROUND_DOWN), 1, 2),
    fn("CEILING", lambda v, s=None: _multiple(v, s, math.ceil), 1, 2),
    fn("FLOOR", lambda v, s=None: _multiple(v, s, math.floor), 1, 2),
    fn("INT", lambda v: math.floor(num(v)), 1),
    fn("EVEN", lambda v: _even_odd(v, odd=False), 1),
    fn("ODD", lambda v: _even_odd(v, odd=True), 1),
    fn("MOD", _mod, 2),
    fn("POWER", _power, 2),
    fn("SQRT", _sqrt, 1),
    fn("EXP", lambda v: norm_num(math.exp(num(v))), 1),
    fn("LOG", _log, 1, 2),
    fn("SUM", _sum, 1, None),
    fn("MAX", _max, 1, None),
    fn("MIN", _min, 1, None),
    fn("AVERAGE", _average, 1, None),
    fn("COUNT", _count, 1, None),
    fn("COUNTA", _counta, 1, None),
    fn("COUNTALL", _countall, 1, None),
)
