"""The function table: every supported function by upper-case name, with its arity and how
it is called (pure, with the context, or lazily).  Each kind module lists its own functions
(:mod:`.registry`); this module only gathers them."""

from __future__ import annotations

from typing import Final

from . import date_formats, dates, logic, numeric, text
from .registry import Function, FunctionMode

__all__ = ["FUNCTIONS", "Function", "FunctionMode"]

FUNCTIONS: Final[dict[str, Function]] = {
    f.name: f
    for group in (
        logic.FUNCTIONS,
        text.FUNCTIONS,
        numeric.FUNCTIONS,
        date_formats.FUNCTIONS,
        dates.FUNCTIONS,
    )
    for f in group
}
"""Every supported function by upper-case name (arity checked at compile time)."""
