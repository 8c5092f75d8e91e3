"""``schema check``, ``schema init`` and ``schema pin`` over
:mod:`jobtrack_airtable.admin.schema_check` and :mod:`jobtrack_airtable.admin.schema_pin`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ._core import (
    EXIT_ERROR,
    Reads,
    errors_to_exit,
    open_base,
    out_console,
    print_json,
    schema_app,
    state_of,
)
from .tables import Column, print_table

_PROBLEM_COLUMNS = (
    Column("Problem", wrap=True, min_width=8),
    Column("Table", wrap=True, min_width=8),
    Column("Field", wrap=True, min_width=8),
    Column("Detail", wrap=True, min_width=20),
)


@schema_app.command("check")
def schema_check_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare the configured schema with the base (exit 1 on any difference)."""
    from ..admin import schema_check

    state = state_of(ctx)
    with errors_to_exit(state):
        with open_base(state) as backend:
            report = schema_check.check_schema(backend.conn)
        if as_json:
            print_json(report.to_json())
        else:
            _print_renames(report.renames)
            _print_schema_report(report)
        if not report.ok:
            raise typer.Exit(EXIT_ERROR)


def _print_renames(renames: list[Any]) -> None:
    console = out_console()
    for r in renames:
        console.print(
            f"[cyan]~[/cyan] renamed: {escape(str(r))} [dim](pinned by ID: nothing breaks)[/dim]"
        )


def _print_schema_report(report: Any) -> None:
    console = out_console()
    if report.ok:
        console.print(
            f"[green]Schema OK[/green]: {report.tables_checked} tables and "
            f"{report.fields_checked} fields match the configuration."
        )
        return
    cells = [
        [
            p.kind.replace("_", " "),
            escape(p.table),
            escape(p.field or ""),
            escape(p.message + (f" — {p.hint}" if p.hint else "")),
        ]
        for p in report.problems
    ]
    print_table(console, _PROBLEM_COLUMNS, cells)
    renamed = any(p.kind == "missing_table" and p.hint for p in report.problems)
    advice = (
        "A table looks renamed in Airtable: fix its name in the schema file and run "
        "`jobtrack-airtable schema pin` (not `schema init`)."
        if renamed
        else "`jobtrack-airtable schema init` creates missing tables and fields."
    )
    console.print(f"[red]{len(report.problems)} schema problem(s).[/red] {advice}")


@schema_app.command("init")
def schema_init_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create the tables and fields the base lacks (never converts or deletes anything).

    Formula fields are created only on the local server: Airtable's API cannot create them,
    so against Airtable they are listed as manual steps with the formula to paste.  Exit 0
    when the base then matches the schema, 1 when manual steps remain.
    """
    from ..admin import schema_check

    state = state_of(ctx)
    with errors_to_exit(state):
        with (
            open_base(state) as backend,
            Reads("Creating missing tables and fields", count_rows=False) as p,
        ):
            result = schema_check.init_schema(
                backend.conn,
                create_formulas=backend.is_local,
                on_step=p.describe,
            )
        if as_json:
            print_json(result.to_json())
        else:
            console = out_console()
            for name in result.created_tables:
                console.print(f"[green]+[/green] created table {escape(name)!s}")
            for table_name, field_name in result.created_fields:
                console.print(
                    f"[green]+[/green] created field {escape(table_name)}.{escape(field_name)}"
                )
            for step in result.manual:
                console.print(
                    f"[yellow]![/yellow] manual: {escape(step.action)} "
                    f"[dim]({escape(step.reason)})[/dim]"
                )
            if result.after.ok:
                what = "Schema initialised" if result.changed else "Nothing to create"
                console.print(f"[green]{what}[/green]: the base matches the configuration.")
            else:
                console.print(
                    f"[red]{len(result.after.problems)} problem(s) remain[/red] "
                    "(see the manual steps above)."
                )
        if not result.after.ok:
            raise typer.Exit(EXIT_ERROR)


@schema_app.command("pin")
def schema_pin_cmd(
    ctx: typer.Context,
    schema_file: Annotated[
        Path | None,
        typer.Option(
            "--schema-file",
            metavar="PATH",
            dir_okay=False,
            help="The schema file to pin (default: JOBTRACK_SCHEMA_FILE).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Record the base's table and field IDs in the schema file (comments kept), so that
    renaming a table or field in Airtable breaks nothing.  1 request (the meta API)."""
    from ..admin import schema_check, schema_pin

    state = state_of(ctx)
    with errors_to_exit(state):
        path = schema_pin.refuse_default_schema(schema_file or state.settings.schema_file)
        if schema_file is not None:
            # The base is read with the file being pinned, whatever the environment says.
            state._settings = state.settings.model_copy(update={"schema_file": schema_file})
        with open_base(state) as backend:
            meta = schema_check.fetch_meta(backend.conn)
        result = schema_pin.pin_schema_file(path, meta)
        if as_json:
            print_json(result.to_json())
            return
        console = out_console()
        for table_key in dict.fromkeys(t for t, _, _ in result.pinned):
            new = [(f, i) for t, f, i in result.pinned if t == table_key]
            ident = next((i for f, i in new if f is None), None)
            fields = sum(1 for f, _ in new if f is not None)
            what = f"table {table_key} = {ident}, " if ident else f"table {table_key}: "
            console.print(f"[green]+[/green] pinned {what}{fields} field ID(s)")
        for table, field, name in result.missing:
            what = f"field {table}.{field}" if field else f"table {table}"
            console.print(
                f"[yellow]![/yellow] {escape(what)} ({escape(name)!r}) is not in the base: "
                "left unpinned"
            )
        done = len(result.pinned) + len(result.already)
        verb = f"Pinned {len(result.pinned)} new ID(s)" if result.changed else "Nothing new to pin"
        console.print(f"[green]{verb}[/green]: {done} ID(s) pinned in {escape(str(path))}.")
