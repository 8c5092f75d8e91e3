"""``sync`` and ``apply``: plan, show, save and apply fixes (:mod:`jobtrack_airtable.sync`)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ..errors import ConfigError
from . import _core
from ._core import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    Reads,
    Writes,
    app,
    errors_to_exit,
    open_base,
    out_console,
    print_json,
    redact,
    state_of,
)

if TYPE_CHECKING:
    # The sync machinery (and pyairtable under it) is imported when a command runs, so
    # `--help` and completion start fast.
    from ..repository import Repository
    from ..sync import ApplyResult, Plan, StalePlanError


def _print_plan(plan: Plan) -> None:
    """The plan, Terraform style, on stdout (coloured on a terminal; lines never re-wrapped,
    so values stay exact)."""
    from .render import render_rich

    console = out_console()
    console.soft_wrap = True
    console.print(render_rich(plan))


def _make_plan(repo: Repository, stale_after: timedelta) -> Plan:
    """Read both tables (a spinner counting rows) and plan; writes nothing."""
    from ..sync import plan_sync
    from ..timeutil import utcnow

    names = {t: repo.schema.table(t).name for t in ("jobs", "client_runs")}
    with Reads("Reading the base") as reads:

        def progress(stage: str, rows: int) -> None:
            table = stage.removeprefix("read ")
            reads.progress.update(reads.task, description=f"Reading {names.get(table, table)}")
            reads.on_page(rows)

        return plan_sync(repo, now=utcnow(), stale_after=stale_after, on_progress=progress)


def _apply(repo: Repository, plan: Plan) -> ApplyResult:
    """Apply ``plan`` with a progress bar over the rows written; :class:`StalePlanError`
    (nothing written) when the base changed since the plan."""
    from ..sync import apply_plan

    total = plan.summary.create + plan.summary.update + plan.summary.delete
    with Writes("Verifying the plan against the base", total=total) as writes:

        def progress(stage: str, rows: int) -> None:
            verb, _, table = stage.partition(" ")
            if verb == "verify":
                writes.progress.update(writes.task, description=f"Verifying {table}")
            else:
                writes.progress.update(
                    writes.task, description=f"Applying ({verb} {table})", advance=rows
                )

        return apply_plan(repo, plan, on_progress=progress)


def _applied_line(result: ApplyResult) -> str:
    def count(part: dict[str, list[str]]) -> int:
        return sum(len(ids) for ids in part.values())

    return (
        f"Applied: {count(result.created)} created, {count(result.updated)} updated, "
        f"{count(result.deleted)} deleted."
    )


def _result_json(result: ApplyResult) -> dict[str, Any]:
    return {
        "created": result.created,
        "updated": result.updated,
        "deleted": result.deleted,
        "total": result.total,
    }


def _refused(exc: StalePlanError) -> NoReturn:
    """A stale plan: one error line, then every row that changed; exit 1."""
    sys.stderr.write(
        f"error: the base changed since the plan was made ({len(exc.rows)} row(s)); nothing "
        "was written. Run `jobtrack-airtable sync --out FILE` again to make a new plan.\n"
    )
    for row in exc.rows:
        sys.stderr.write(redact(f"  {row}") + "\n")
    raise typer.Exit(EXIT_ERROR)


@app.command()
def sync(
    ctx: typer.Context,
    stale_after: Annotated[
        float | None,
        typer.Option(
            "--stale-after",
            metavar="MINUTES",
            min=0.001,
            help="A Running row without an update for this long is stale "
            "(default: JOBTRACK_STALE_AFTER_MINUTES, 120).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            help="Save the plan to this file (apply it later with `apply FILE`).",
        ),
    ] = None,
    do_apply: Annotated[
        bool, typer.Option("--apply", help="Apply the plan after showing it.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --apply: do not ask for confirmation.")
    ] = False,
) -> None:
    """Show what is inconsistent in the base and how it would be fixed (changes nothing).

    Exit 0 when there is nothing to change, 2 when the plan has changes, 1 on error.
    With --apply, apply the plan (asking first on a terminal, unless --yes).
    """
    from ..repository import Repository
    from ..sync import StalePlanError, plan_to_json, save_plan
    from .render import summary_line

    state = state_of(ctx)
    with errors_to_exit(state):
        if do_apply and not yes and not _core.stdin_is_tty():
            # Refuse before reading anything: a cron job needs --yes every time, not only on
            # the day the plan happens to be non-empty.
            raise ConfigError(
                "refusing to apply without confirmation: stdin is not a terminal "
                "(pass --yes to apply non-interactively)"
            )
        minutes = stale_after if stale_after is not None else state.settings.stale_after_minutes
        with open_base(state) as backend:
            repo = Repository(backend.conn)
            plan = _make_plan(repo, timedelta(minutes=minutes))
            if out is not None:
                save_plan(plan, out)
            if as_json and not do_apply:
                sys.stdout.write(plan_to_json(plan) + "\n")
            elif not as_json:
                _print_plan(plan)
            if out is not None:
                sys.stderr.write(
                    f"Plan saved to {out}; apply it with: jobtrack-airtable apply {out}\n"
                )
            if not plan.has_changes:
                if as_json and do_apply:
                    print_json({"plan": json.loads(plan_to_json(plan)), "applied": None})
                raise typer.Exit(EXIT_OK)
            if not do_apply:
                raise typer.Exit(EXIT_CHANGES)
            if not yes and not typer.confirm(
                f"{summary_line(plan)} Apply it to {backend.description}?",
                default=False,
                err=True,
            ):
                sys.stderr.write("Not applied.\n")
                raise typer.Exit(EXIT_CHANGES)
            try:
                result = _apply(repo, plan)
            except StalePlanError as exc:
                _refused(exc)
            if as_json:
                print_json(
                    {"plan": json.loads(plan_to_json(plan)), "applied": _result_json(result)}
                )
            sys.stderr.write(_applied_line(result) + "\n")


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    plan_file: Annotated[
        Path,
        typer.Argument(metavar="FILE", dir_okay=False, help="A plan saved by `sync --out FILE`."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON.")
    ] = False,
) -> None:
    """Apply a saved plan exactly, or refuse if the base changed since it was made.

    The rows the plan depends on are re-read first: if any changed, vanished or appeared,
    nothing is written and the command exits 1, listing them.
    """
    from ..repository import Repository
    from ..sync import StalePlanError, load_plan

    state = state_of(ctx)
    with errors_to_exit(state):
        plan = load_plan(plan_file)
        with open_base(state) as backend:
            repo = Repository(backend.conn)
            try:
                result = _apply(repo, plan)
            except StalePlanError as exc:
                _refused(exc)
        if as_json:
            print_json(_result_json(result))
        if plan.has_changes:
            sys.stderr.write(_applied_line(result) + "\n")
        else:
            sys.stderr.write("Nothing to apply: the plan has no changes.\n")
