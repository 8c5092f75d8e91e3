"""Rendering a plan for humans, Terraform style; separate from detection.

One symbol per row (``+`` create, ``~`` update, ``-`` delete, ``!`` needs attention), each
changed field as ``old → new`` under its Airtable name (plans speak logical keys; the plan's
``field_names`` map them to the names shown), rows grouped by table, then one summary
line.  Strings are shown ``repr``-quoted, so quotes, trailing spaces and newlines are visible
and exact; empty cells show as ``(empty)``.

:func:`render_rich` returns a rich renderable (the CLI prints it with colour);
:func:`render_text` returns the same content as a plain string.

>>> from jobtrack_airtable.admin.sync.model import FieldChange
>>> plan = Plan(base_id="appAAAAAAAAAAAAAA", generated_at="2025-10-01T00:00:00.000Z",
...             stale_after_seconds=60, table_names={"jobs": "Job Tracking"},
...             field_names={"jobs": {"status": "Status"}},
...             records=[RecordChange(table="jobs", action=Action.UPDATE,
...                      record_id="recAAAAAAAAAAAAAA", key="250930-141522",
...                      changes=[FieldChange(field="status", old="Success", new="Completed")],
...                      reasons=["legacy status 'Success' mapped to 'Completed'"])])
>>> print(render_text(plan))
Job Tracking
  ~ recAAAAAAAAAAAAAA '250930-141522'
      Status: 'Success' → 'Completed'
      # legacy status 'Success' mapped to 'Completed'
<BLANKLINE>
Plan: 0 to create, 1 to update, 0 to delete, 0 need attention.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text

from ..admin.sync.model import TABLE_ORDER, Action, Plan, RecordChange

__all__ = ["format_value", "render_rich", "render_text", "summary_line"]

_STYLES = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.DELETE: "red",
    Action.ATTENTION: "magenta",
}
EMPTY = "(empty)"


def format_value(value: Any) -> str:
    """A value as shown in a plan: strings ``repr``-quoted (exact, escapes visible), numbers
    as they are, ``None`` as ``(empty)``.

    >>> format_value('say "hi"\\n'), format_value(3), format_value(None)
    ('\\'say "hi"\\\\n\\'', '3', '(empty)')
    """
    if value is None:
        return EMPTY
    return repr(value)


def summary_line(plan: Plan) -> str:
    """``Plan: 2 to create, 14 to update, 3 to delete, 5 need attention.``, or
    ``No changes. The base is consistent.`` when there is nothing at all.

    >>> summary_line(Plan(base_id="appAAAAAAAAAAAAAA", generated_at="x",
    ...                   stale_after_seconds=60, table_names={}))
    'No changes. The base is consistent.'
    """
    s = plan.summary
    if not plan.records:
        return "No changes. The base is consistent."
    return (
        f"Plan: {s.create} to create, {s.update} to update, {s.delete} to delete, "
        f"{s.attention} need attention."
    )


def _record_lines(plan: Plan, record: RecordChange) -> list[Text]:
    style = _STYLES[record.action]
    head = Text("  ")
    head.append(record.symbol, style=f"bold {style}")
    head.append(" ")
    head.append(record.record_id or "(new row)", style="bold")
    head.append(" ")
    head.append(format_value(record.key), style="cyan")
    if record.merged_into:
        head.append(f"  (merged into {record.merged_into})", style="dim")
    lines = [head]
    for change in record.changes:
        line = Text(f"      {plan.field_name(record.table, change.field)}: ")
        line.append(format_value(change.old), style="red" if change.old is not None else "dim")
        line.append(" → ")
        line.append(format_value(change.new), style="green" if change.new is not None else "dim")
        lines.append(line)
    lines.extend(Text(f"      # {reason}", style="dim") for reason in record.reasons)
    for problem in record.attention:
        line = Text("      ")
        line.append("!", style="bold magenta")
        line.append(f" {problem}")
        lines.append(line)
    return lines


def _lines(plan: Plan) -> list[Text]:
    out: list[Text] = []
    for table in TABLE_ORDER:
        records = plan.of_table(table)
        if not records:
            continue
        out.append(Text(plan.table_names.get(table, table), style="bold underline"))
        for record in records:
            out.extend(_record_lines(plan, record))
        out.append(Text(""))
    out.append(Text(summary_line(plan), style="bold"))
    return out


def render_rich(plan: Plan) -> Group:
    """The plan as a rich renderable (print it with a ``rich.console.Console``)."""
    return Group(*_lines(plan))


def render_text(plan: Plan) -> str:
    """The plan as plain text, the same content as :func:`render_rich` without styles."""
    return "\n".join(line.plain for line in _lines(plan))
