"""Logic and context functions: the lazy ones (AND, OR, IF, SWITCH, ISERROR, ERROR) that
choose which arguments to evaluate, NOT and XOR, and the clock (TODAY, TONOW/FROMNOW)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from .dates import datetime_diff
from .registry import Function, fn
from .values import ErrorValue, EvalContext, Evaluator, equals, is_truthy


def _and(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    for f in args:
        v = f(ctx)
        if type(v) is ErrorValue:
            return v
        if not is_truthy(v):
            return False
    return True


def _or(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    for f in args:
        v = f(ctx)
        if type(v) is ErrorValue:
            return v
        if is_truthy(v):
            return True
    return False


def _if(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    cond = args[0](ctx)
    if type(cond) is ErrorValue:
        return cond
    if is_truthy(cond):
        return args[1](ctx)
    return args[2](ctx) if len(args) > 2 else None


def _switch(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    subject = args[0](ctx)
    if type(subject) is ErrorValue:
        return subject
    rest = args[1:]
    pairs, default = (rest[:-1], rest[-1]) if len(rest) % 2 else (rest, None)
    for i in range(0, len(pairs), 2):
        pattern = pairs[i](ctx)
        if type(pattern) is ErrorValue:
            return pattern
        if equals(subject, pattern) is True:
            return pairs[i + 1](ctx)
    return default(ctx) if default is not None else None


def _iserror(ctx: EvalContext, args: Sequence[Evaluator]) -> bool:
    return type(args[0](ctx)) is ErrorValue


def _error(ctx: EvalContext, args: Sequence[Evaluator]) -> ErrorValue:
    return ErrorValue("ERROR()")


def _not(v: Any) -> bool:
    return not is_truthy(v)


def _xor(*values: Any) -> bool:
    return sum(1 for v in values if is_truthy(v)) % 2 == 1


def _today(ctx: EvalContext) -> datetime:
    now = ctx.now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _days_from_now(ctx: EvalContext, v: Any) -> int | None:
    # TONOW/FROMNOW: whole days between now and the date, whichever comes first.
    diff = datetime_diff(ctx.now, v, "days")
    return None if diff is None else abs(diff)


FUNCTIONS: Final[tuple[Function, ...]] = (
    fn("AND", _and, 1, None, "lazy"),
    fn("OR", _or, 1, None, "lazy"),
    fn("IF", _if, 2, 3, "lazy"),
    fn("SWITCH", _switch, 2, None, "lazy"),
    fn("ISERROR", _iserror, 1, 1, "lazy"),
    fn("ERROR", _error, 0, None, "lazy"),
    fn("NOT", _not, 1),
    fn("XOR", _xor, 1, None),
    fn("TRUE", lambda: True, 0),
    fn("FALSE", lambda: False, 0),
    fn("BLANK", lambda: None, 0),
    fn("RECORD_ID", lambda ctx: ctx.record_id, 0, 0, "ctx"),
    fn("CREATED_TIME", lambda ctx: ctx.created_time, 0, 0, "ctx"),
    fn(
        "LAST_MODIFIED_TIME",
        lambda ctx, *fields: ctx.last_modified_time or ctx.created_time,
        0,
        None,
        "ctx",
    ),
    fn("NOW", lambda ctx: ctx.now, 0, 0, "ctx"),
    fn("TODAY", _today, 0, 0, "ctx"),
    fn("TONOW", _days_from_now, 1, 1, "ctx"),
    fn("FROMNOW", _days_from_now, 1, 1, "ctx"),
)
