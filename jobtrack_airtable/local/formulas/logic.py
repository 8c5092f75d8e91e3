"""Logic and context functions: the lazy ones (AND, OR, IF, SWITCH, ISERROR, ERROR) that
choose which arguments to evaluate, NOT and XOR, and the clock (TODAY, TONOW/FROMNOW)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .dates import _datetime_diff
from .values import ErrorValue, EvalContext, Evaluator, _equals, is_truthy


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
        if _equals(subject, pattern) is True:
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
    diff = _datetime_diff(ctx.now, v, "days")
    return None if diff is None else abs(diff)
