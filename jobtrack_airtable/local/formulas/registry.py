"""What a formula function is: its name, implementation, arity and calling mode.  Each kind
module (``logic``, ``numeric``, ``text``, ``dates``, ``date_formats``) lists its own functions
with :func:`fn`; :mod:`.functions` gathers them into one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

FunctionMode = Literal["pure", "ctx", "lazy"]


@dataclass(frozen=True)
class Function:
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


def fn(
    name: str,
    impl: Callable[..., Any],
    min_args: int,
    max_args: int | None = -1,
    mode: FunctionMode = "pure",
) -> Function:
    """A function taking ``min_args`` to ``max_args`` arguments (``None``: any number;
    omitted: exactly ``min_args``)."""
    return Function(name, impl, min_args, min_args if max_args == -1 else max_args, mode)
