"""Tables that stay truthful at any width: nothing is ever cut.

rich shrinks a table that is wider than the terminal by cutting cells (``105,40`` for
``105,402``, ``St…`` for a status).  :func:`print_table` decides the layout itself instead,
from the width every cell needs:

1. numbers, statuses and times are never wrapped or cut (``no_wrap`` at their full width);
   free text (an error message) may wrap onto more lines, which keeps every character;
2. if that does not fit, low-value columns are dropped, lowest value first, and a note
   below the table names them;
3. if even the essential columns do not fit, the rows are printed vertically, one
   ``Header: value`` line per cell.

>>> from io import StringIO
>>> from rich.console import Console
>>> out = StringIO()
>>> cols = [Column("Run ID"), Column("Profiles", justify="right"),
...         Column("Stream", justify="right", drop=1)]
>>> print_table(Console(file=out, width=24), cols, [["250930-141522", "105,402", "3"]])
>>> print(out.getvalue().rstrip())  # doctest: +NORMALIZE_WHITESPACE
Run ID         Profiles
250930-141522   105,402
(hidden at this width: Stream; widen the terminal or use --json)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "print_table"]

#: Columns between two cells (rich's default padding, without edges).
_GAP = 2


@dataclass(frozen=True)
class Column:
    """One column: ``wrap`` for free text that may go onto several lines (at least
    ``min_width`` wide), ``drop`` for a column that may be left out when the terminal is narrow
    (lower numbers go first; ``None`` = essential)."""

    header: str
    justify: Literal["left", "right"] = "left"
    wrap: bool = False
    min_width: int = 12
    drop: int | None = None


def _cell_width(cell: str) -> int:
    text = Text.from_markup(cell)
    return max((Text(line).cell_len for line in text.plain.splitlines()), default=0)


def _needed(columns: Sequence[Column], natural: Sequence[int]) -> int:
    widths = [min(w, c.min_width) if c.wrap else w for c, w in zip(columns, natural, strict=True)]
    return sum(widths) + _GAP * (len(widths) - 1)


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """Print ``rows`` (rich markup strings, one per column) as a table that fits
    ``console.width`` without cutting any cell: see the module docstring."""
    keep = list(range(len(columns)))
    natural = [
        max([len(col.header), *(_cell_width(row[i]) for row in rows)])
        for i, col in enumerate(columns)
    ]

    def needed() -> int:
        return _needed([columns[i] for i in keep], [natural[i] for i in keep])

    droppable = sorted(
        (i for i, c in enumerate(columns) if c.drop is not None),
        key=lambda i: columns[i].drop or 0,
    )
    dropped: list[int] = []
    while needed() > console.width and droppable:
        i = droppable.pop(0)
        keep.remove(i)
        dropped.append(i)
    if needed() > console.width:
        _print_vertical(console, columns, rows)
        return
    widths = _wrap_widths(
        {i: natural[i] for i in keep if columns[i].wrap},
        {i: columns[i].min_width for i in keep},
        console.width
        - needed()
        + sum(min(natural[i], columns[i].min_width) for i in keep if columns[i].wrap),
    )
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    for i in keep:
        col = columns[i]
        if col.wrap:
            table.add_column(col.header, justify=col.justify, overflow="fold", width=widths[i])
        else:
            # Fits by construction, so rich never has to fold it; min_width makes sure.
            table.add_column(col.header, justify=col.justify, no_wrap=True, min_width=natural[i])
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    print_trimmed(console, table)
    if dropped:
        names = ", ".join(columns[i].header for i in sorted(dropped))
        console.print(
            f"[dim](hidden at this width: {names}; widen the terminal or use --json)[/dim]"
        )


def print_trimmed(console: Console, renderable: Any) -> None:
    """Print ``renderable``; piped, without the blanks rich pads each line with (a file or
    ``grep`` gets the text, not the layout's padding)."""
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("\n".join(line.rstrip() for line in captured.get().split("\n")))


def _wrap_widths(natural: dict[int, int], minimum: dict[int, int], room: int) -> dict[int, int]:
    """Share ``room`` columns among the wrapping columns: each gets its natural width if all
    fit, else at least its minimum and the rest one column at a time to the one that lacks
    the most (so a short name is not folded to give an empty column space)."""
    widths = {i: min(w, minimum[i]) for i, w in natural.items()}
    spare = room - sum(widths.values())
    while spare > 0:
        short = [i for i in widths if widths[i] < natural[i]]
        if not short:
            break
        neediest = max(short, key=lambda i: natural[i] - widths[i])
        widths[neediest] += 1
        spare -= 1
    return widths


def _print_vertical(
    console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    """One block per row, ``Header: value`` per line (values wrap, never cut)."""
    label = max(len(c.header) for c in columns)
    for n, row in enumerate(rows):
        if n:
            console.print()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True, min_width=label + 1)
        grid.add_column(overflow="fold")
        for col, cell in zip(columns, row, strict=True):
            grid.add_row(f"{col.header}:", cell)
        console.print(grid)
