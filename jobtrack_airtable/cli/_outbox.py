"""``outbox status | replay | drop``: what this machine's outbox still holds for the base
(:mod:`jobtrack_airtable.admin.outbox`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._core import (
    EXIT_CHANGES,
    EXIT_OK,
    _Typer,
    app,
    errors_to_exit,
    open_base,
    out_console,
    print_json,
    redact,
    state_of,
)

if TYPE_CHECKING:
    from ..admin.outbox import OutboxItem

outbox_app = _Typer(
    help="Changes recorded on this machine and not yet on Airtable.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _line(item: OutboxItem) -> str:
    totals = ", ".join(f"{k} {v}" for k, v in item.totals.items()) or "no totals"
    owner = "live" if item.owner_alive else "gone"
    error = f"; refused: {item.error}" if item.error else ""
    return redact(
        f"  {item.run_id}  {item.status or '-'}  {totals}; {item.notes} note line(s); "
        f"{item.age_seconds:,.0f} s old; owner {item.owner} ({owner}){error}"
    )


@outbox_app.command("status")
def status(ctx: typer.Context, as_json: _JSON = False) -> None:
    """Entries waiting for Airtable.  Exit 2 when there are some (for cron), else 0."""
    from ..admin.outbox import outbox_status
    from ..outbox import open_outbox

    state = state_of(ctx)
    with errors_to_exit(state), open_base(state) as backend:
        store = open_outbox(backend.conn.settings)
        try:
            items = outbox_status(store, backend.conn.base_id)
        finally:
            store.close()
    if as_json:
        print_json({"pending": [i.to_json() for i in items]})
    else:
        console = out_console()
        for item in items:
            console.print(_line(item), markup=False, highlight=False)
        console.print(f"{len(items)} entry(ies) waiting for Airtable.", markup=False)
    raise typer.Exit(EXIT_CHANGES if items else EXIT_OK)


@outbox_app.command("replay")
def replay(
    ctx: typer.Context,
    every_owner: Annotated[
        bool,
        typer.Option("--all", help="Also entries of processes that may be alive (another host's)."),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Write the entries no live process owns now (idempotent: absolute totals)."""
    from ..admin.outbox import replay_outbox

    state = state_of(ctx)
    with errors_to_exit(state), open_base(state, effect="replay the outbox") as backend:
        replayed = replay_outbox(backend.conn, every_owner=every_owner)
    if as_json:
        print_json({"replayed": replayed})
    else:
        out_console().print(f"Replayed {len(replayed)} entry(ies).", markup=False)


@outbox_app.command("drop")
def drop(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[RUN_ID]...", help="Entries to discard.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every entry of the base.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Discard them (else: plan).")] = False,
    as_json: _JSON = False,
) -> None:
    """Plan (or, with --apply, make) the discarding of entries: what they would still have
    written is lost.  Exit 2 for a plan with entries, 0 when applied or nothing to drop."""
    from ..admin.outbox import apply_drop, plan_drop
    from ..errors import InvalidInputError
    from ..outbox import open_outbox

    state = state_of(ctx)
    with errors_to_exit(state):
        if not run_ids and not every:
            raise InvalidInputError("name the run IDs to drop, or pass --all")
        with open_base(state) as backend:
            store = open_outbox(backend.conn.settings)
            try:
                plan = plan_drop(store, backend.conn.base_id, None if every else run_ids)
                dropped = apply_drop(store, plan) if apply else 0
            finally:
                store.close()
    if as_json:
        print_json({**plan.to_json(), "applied": apply, "dropped": dropped})
    else:
        console = out_console()
        for item in plan.items:
            console.print("  - " + _line(item).lstrip(), markup=False, highlight=False)
        verb = "Dropped" if apply else "Would drop"
        console.print(f"{verb} {dropped if apply else len(plan.items)} entry(ies).", markup=False)
    raise typer.Exit(EXIT_CHANGES if plan.items and not apply else EXIT_OK)
