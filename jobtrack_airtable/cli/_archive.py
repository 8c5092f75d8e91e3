"""``archive``: retention as a planned change (:mod:`jobtrack_airtable.admin.archive`)."""

from __future__ import annotations

import json
import sys
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
    outcome,
    print_json,
    redact,
    state_of,
)
from ._mirror import FullOption, whole_table_reads
from .interrupts import Interruptible, finish_command

if TYPE_CHECKING:
    # The library (pyairtable, requests) loads only when a command runs: --help stays fast.
    from ..admin.archive import ArchivePlan, ArchiveResult
    from ..errors import StaleArchivePlanError
    from ..transport.repository import Repository

DEFAULT_ARCHIVE = Path("jobtrack-archive.sqlite")


def summary_line(plan: ArchivePlan) -> str:
    clients = plan.row_count - len(plan.jobs)
    return (
        f"Archive plan: {len(plan.jobs)} job(s) and {clients} client row(s) to move to "
        f"{plan.archive_path}, {len(plan.skipped)} old job(s) left in place."
    )


def _print_plan(plan: ArchivePlan) -> None:
    console = out_console()
    console.soft_wrap = True
    from rich.text import Text

    for job in plan.jobs:
        line = Text("  - ", style="red")
        line.append(f"{job.job.key}", style="bold")
        line.append(f"  {job.status}, ended {job.ended}, {len(job.clients)} client row(s)")
        console.print(line)
    for skip in plan.skipped:
        line = Text("  ! ", style="yellow")
        line.append(skip.key, style="bold")
        line.append(f"  left in place: {skip.reason}")
        console.print(line)
    console.print(summary_line(plan), markup=False, highlight=False)


def _result_json(result: ArchiveResult) -> dict[str, Any]:
    return {
        "archived": result.archived,
        "deleted": result.deleted,
        "already_archived": result.already_archived,
    }


def _refused(exc: StaleArchivePlanError) -> NoReturn:
    sys.stderr.write(
        f"error: {len(exc.problems)} row(s) of the archive plan changed since it was made; "
        "nothing was archived or deleted. Run `jobtrack-airtable archive --out FILE` again.\n"
    )
    for problem in exc.problems:
        sys.stderr.write(redact(f"  {problem}") + "\n")
    raise typer.Exit(EXIT_ERROR)


def run_apply(repo: Repository, plan: ArchivePlan, *, as_json: bool, finish: str) -> None:
    """Apply an archive plan with a progress bar (archiving, then deleting: both move it);
    shared by ``archive --apply`` and ``apply FILE``.  Ctrl-C stops between two delete
    batches and says how many rows were deleted and the command (``finish``) that completes
    the job (rows archived and not yet deleted are found in the archive again)."""
    from ..admin.archive import apply_archive
    from ..errors import StaleArchivePlanError

    with (
        Interruptible(plan.row_count, finish) as stop,
        Writes("Archiving", total=plan.row_count * 2) as writes,
    ):

        def progress(stage: str, rows: int) -> None:
            writes.progress.update(writes.task, description=stage.capitalize(), advance=rows)
            if stage.startswith("deleted"):
                stop.written(rows)
            else:
                stop.check()

        try:
            result = apply_archive(repo, plan, on_progress=progress)
        except StaleArchivePlanError as exc:
            _refused(exc)
    if as_json:
        print_json(_result_json(result))
    if result.deleted_count == 0 and result.already_archived:
        outcome(
            f"Already applied: all {len(result.already_archived)} row(s) are in the archive "
            "and gone from the base.",
            as_json=as_json,
        )
        return
    jobs, clients = result.deleted["jobs"], result.deleted["client_runs"]
    more = f" ({len(result.already_archived)} already archived)" if result.already_archived else ""
    outcome(
        f"Archived and deleted {len(jobs)} job(s) and {len(clients)} client row(s){more}; "
        f"archive: {plan.archive_path}",
        as_json=as_json,
    )


def apply_file(ctx: typer.Context, plan_file: Path, *, as_json: bool) -> None:
    """``apply FILE`` for an archive plan."""
    from ..admin.archive import load_archive_plan
    from ..transport.repository import Repository

    state = state_of(ctx)
    with errors_to_exit(state):
        plan = load_archive_plan(plan_file)
        with open_base(state, effect="apply an archive plan") as backend:
            finish = finish_command(state, "apply", str(plan_file))
            run_apply(Repository(backend.conn), plan, as_json=as_json, finish=finish)


@app.command()
def archive(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Archive finished jobs that ended longer ago than this (90d, 12w, 36h, 90m).",
        ),
    ],
    to: Annotated[
        Path,
        typer.Option(
            "--to",
            dir_okay=False,
            help="The archive file: SQLite (default) or JSON Lines (.jsonl).",
        ),
    ] = DEFAULT_ARCHIVE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", dir_okay=False, help="Save the plan (apply it with `apply FILE`)."
        ),
    ] = None,
    do_apply: Annotated[bool, typer.Option("--apply", help="Apply the plan now.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --apply: do not ask for confirmation.")
    ] = False,
    full: FullOption = False,
) -> None:
    """Plan moving old finished jobs (with all their client rows) to a local archive.

    Changes nothing unless --apply: exit 0 when nothing is old enough, 2 when there is
    something to archive, 1 on error.  Rows are deleted from the base only after the archive
    has been read back and holds an exact copy of each.
    """
    from ..admin.archive import parse_age, plan_archive, save_archive_plan
    from ..transport.repository import Repository

    state = state_of(ctx)
    with errors_to_exit(state):
        age = parse_age(older_than)
        if yes and not do_apply:
            raise ConfigError("--yes only makes sense with --apply")
        if do_apply and not yes and not _core.stdin_is_tty():
            raise ConfigError(
                "refusing to apply without confirmation: stdin is not a terminal "
                "(pass --yes to apply non-interactively)"
            )
        with open_base(state, effect="archive and delete rows" if do_apply else None) as backend:
            # Planned from the mirror; applied against the base, which apply re-reads.
            with (
                whole_table_reads(backend, full=full) as reader,
                Reads("Reading the base") as reads,
            ):
                plan = plan_archive(reader, older_than=age, archive_path=to, on_page=reads.on_page)
            repo = Repository(backend.conn)
            if out is not None:
                save_archive_plan(plan, out)
            if as_json:
                print_json(json.loads(plan.model_dump_json()))
            else:
                _print_plan(plan)
            if out is not None:
                sys.stderr.write(
                    f"Plan saved to {out}; apply it with: jobtrack-airtable apply {out}\n"
                )
            if not plan.has_changes:
                raise typer.Exit(EXIT_OK)
            if not do_apply:
                raise typer.Exit(EXIT_CHANGES)
            if not yes and not typer.confirm(
                f"{summary_line(plan)} Apply it to {backend.description}?", default=False, err=True
            ):
                sys.stderr.write("Not applied.\n")
                raise typer.Exit(EXIT_ERROR)
            finish = finish_command(
                state, "archive", "--older-than", older_than, "--to", str(to), "--apply", "--yes"
            )
            run_apply(repo, plan, as_json=False, finish=finish)
