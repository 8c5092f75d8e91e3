"""``sync``, ``apply`` and ``show``: plan, save, show and apply fixes (:mod:`..sync`).

Exit codes (SPEC §3.6, README): ``sync`` 0 nothing to change, 2 changes planned, 1 error --
including a declined confirmation (like Terraform's cancelled apply: the changes were wanted
and did not happen) and a refused stale plan.  ``apply`` 0 applied or already applied, 1
error.  ``show`` 0.
"""

from __future__ import annotations

import json
import os
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
    complete_from,
    errors_to_exit,
    notice,
    open_base,
    out_console,
    outcome,
    print_json,
    redact,
    state_of,
)
from .interrupts import Interruptible, finish_command

if TYPE_CHECKING:
    from ..admin.mirror import Mirror

    # The sync machinery (and pyairtable under it) is imported when a command runs, so
    # `--help` and completion start fast.
    from ..admin.sync import ApplyResult, Plan, StalePlanError
    from ..transport.repository import Repository
    from ._plans import Target

NoPagerOption = Annotated[
    bool,
    typer.Option("--no-pager", help="Never page a long plan (a pager is used on a terminal)."),
]


def _print_plan(plan: Plan, *, pager: bool) -> None:
    """The plan, Terraform style, on stdout (coloured on a terminal; lines never re-wrapped,
    so values stay exact).  Longer than the terminal → through the pager ($PAGER, else
    ``less``; ``-FRX`` unless $LESS says otherwise: quits when it fits, keeps colours), and
    the summary line again once the pager exits (quitting ``less`` early must not hide it); a
    pager that cannot start → the plan straight to stdout."""
    from .render import render_rich, summary_line

    console = out_console()
    console.soft_wrap = True
    renderable = render_rich(plan)
    lines = len(renderable.renderables)
    if pager and console.is_terminal and lines > console.height - 2:
        with console.capture() as captured:
            console.print(renderable)
        if _page(captured.get()):
            console.print(summary_line(plan), style="bold", markup=False, highlight=False)
            return
    console.print(renderable)


#: Exit statuses of ``sh -c`` when the command is missing or not executable.
_SHELL_CANNOT_RUN = (126, 127)


def _page(text: str) -> bool:
    """Show ``text`` through $PAGER (a shell command, like git's), else ``less``; False when
    the pager could not be started (the caller prints the text itself)."""
    import subprocess

    command = os.environ.get("PAGER") or "less"
    env = {**os.environ, "LESS": os.environ.get("LESS", "-FRX")}
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        return False
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode("utf-8", errors="replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit early (q in less): what it showed is what the admin wanted
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C in less belongs to less; wait for it to leave the terminal clean.
        status = proc.wait()
    if status in _SHELL_CANNOT_RUN:
        sys.stderr.write(f"Warning: the pager {command!r} could not start; printing the plan.\n")
        return False
    return True


def _make_plan(
    repo: Repository, stale_after: timedelta, mirror: Mirror | None = None, full: bool = False
) -> Plan:
    """Read both tables (a spinner counting rows), or refresh the ``mirror`` and read it, and
    plan; writes nothing."""
    from ..admin.sync import plan_sync
    from ..timeutil import utcnow
    from ._mirror import refreshed_line

    names = {t: repo.schema.table(t).name for t in ("jobs", "client_runs")}
    with Reads("Reading the base") as reads:

        def progress(stage: str, rows: int) -> None:
            table = stage.removeprefix("read ")
            label = f"Reading {names.get(table, table)}"
            if reads.progress.tasks[0].description != label:
                # The count is per table, like its label (not the rows of both so far).
                reads.rows = 0
                reads.describe(label)
            reads.on_page(rows)

        plan = plan_sync(
            repo,
            now=utcnow(),
            stale_after=stale_after,
            on_progress=progress,
            mirror=mirror,
            full=full,
        )
    if mirror is not None and mirror.last is not None:
        notice(refreshed_line(mirror.last))
    return plan


def _apply(repo: Repository, plan: Plan, *, finish: str) -> ApplyResult:
    """Apply ``plan`` with a progress bar over the rows written; :class:`StalePlanError`
    (nothing written) when the base changed since the plan.  Ctrl-C stops between two
    batches and says what was written and the command (``finish``) that completes the job."""
    from ..admin.sync import apply_plan

    total = plan.summary.create + plan.summary.update + plan.summary.delete
    with (
        Interruptible(total, finish) as stop,
        Writes("Verifying the plan against the base", total=total) as writes,
    ):

        def progress(stage: str, rows: int) -> None:
            verb, _, table = stage.partition(" ")
            if verb == "verify":
                writes.progress.update(writes.task, description=f"Verifying {table}")
                stop.check()
            else:
                writes.progress.update(
                    writes.task, description=f"Applying ({verb} {table})", advance=rows
                )
                stop.written(rows)

        return apply_plan(repo, plan, on_progress=progress)


def _check_run_targets(repo: Repository, plan: Plan, targets: list[Target]) -> None:
    """A ``--target run:ID`` that matches nothing planned must name a run the base holds
    (one request each): ``run:nope`` is a typo, not a consistent run."""
    for target in targets:
        if target.kind != "run" or any(r.key == target.value for r in plan.records):
            continue
        if repo.find("jobs", target.value) is None:
            raise ConfigError(
                f"--target run:{target.value}: no run {target.value!r} in "
                f"{repo.schema.table('jobs').name!r}; check the Run ID (`jobtrack-airtable "
                "runs list`)"
            )


def _applied_line(result: ApplyResult) -> str:
    def count(part: dict[str, list[str]]) -> int:
        return sum(len(ids) for ids in part.values())

    return (
        f"Applied: {count(result.created)} created, {count(result.updated)} updated, "
        f"{count(result.deleted)} deleted."
    )


_SYMBOL = {"create": "+", "update": "~", "delete": "-"}


def _report_written(plan: Plan, result: ApplyResult) -> None:
    """Which rows were written, one line each (stdout), e.g. ``~ Job Tracking recX '250930-…'``."""
    from ._plans import written_rows

    console = out_console()
    for row in written_rows(plan, result):
        name = plan.table_names.get(row.table, row.table)  # type: ignore[call-overload]
        key = f" {row.key!r}" if row.key is not None else ""
        console.print(f"{_SYMBOL[row.action]} {name} {row.record_id}{key}", markup=False)


def _result_json(plan: Plan, result: ApplyResult) -> dict[str, Any]:
    from ._plans import written_rows

    return {
        "created": result.created,
        "updated": result.updated,
        "deleted": result.deleted,
        "total": result.total,
        "rows": [
            {"table": r.table, "action": r.action, "record_id": r.record_id, "key": r.key}
            for r in written_rows(plan, result)
        ],
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


def _check_out(out: Path | None) -> None:
    """``--out``'s directory must exist: found before reading the base, not after."""
    if out is not None and not out.parent.is_dir():
        raise typer.BadParameter(
            f"the directory {str(out.parent)!r} does not exist; create it or fix the path",
            param_hint="'--out'",
        )


def _targets(texts: list[str] | None, state: _core.State) -> list[Target]:
    """``--target`` values, checked against the configured schema before any request."""
    if not texts:
        return []
    from ..schema import load_schema
    from ._plans import parse_target

    schema = load_schema(state.settings.schema_file)
    return [parse_target(t, schema) for t in texts]


def load_plan_file(path: Path) -> Plan:
    """A saved plan, read bounded and checked whole, or one error line naming the file and
    what is wrong (never pydantic's multi-line text)."""
    from pydantic import ValidationError

    from ..admin.sync import Plan, PlanFormatError, check_plan, load_plan
    from ..files import load_json_file

    try:
        plan = load_plan(path)
    except PlanFormatError as exc:
        if "malformed" not in str(exc):
            raise
        try:
            data = load_json_file(path, what="plan file")
            for key in ("summary", "checksum", "base_kind"):
                data.pop(key, None)
            Plan.model_validate(data)
        except ValidationError as v:
            raise PlanFormatError(
                f"{str(path)!r} is not a valid plan ({_core.validation_summary(v)}); make a "
                "new one with `jobtrack-airtable sync --out FILE`"
            ) from None
        raise
    try:
        check_plan(plan)
    except PlanFormatError as exc:
        raise PlanFormatError(f"{str(path)!r}: {exc}") from None
    return plan


@app.command()
def sync(
    ctx: typer.Context,
    stale_after: Annotated[
        str | None,
        typer.Option(
            "--stale-after",
            metavar="DURATION",
            show_default=False,
            help="A Running row without an update for this long is stale (90m, 2h; a bare "
            "number is minutes; default: JOBTRACK_STALE_AFTER_MINUTES, 120).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            show_default=False,
            help="Save the plan to this file (apply it later with `apply FILE`).",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="TARGET",
            autocompletion=complete_from(
                "jobs", "client_runs", "create", "update", "delete", "attention", "run:"
            ),
            show_default=False,
            help="Plan only this table (jobs, client_runs), run (run:250930-141522) or kind "
            "of fix (create, update, delete, attention); repeatable. The rest is not planned.",
        ),
    ] = None,
    do_apply: Annotated[
        bool, typer.Option("--apply", help="Apply the plan after showing it.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --apply: do not ask for confirmation.")
    ] = False,
    no_pager: NoPagerOption = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Read both tables in full instead of refreshing the local mirror "
            "incrementally (the mirror is refreshed from that read).",
        ),
    ] = False,
) -> None:
    """Show what is inconsistent in the base and how it would be fixed (changes nothing).

    Exit 0 when there is nothing to change, 2 when the plan has changes, 1 on error.
    With --apply, apply the plan (asking first on a terminal, unless --yes); declining
    exits 1.
    """
    from ..admin.sync import StalePlanError, plan_to_json, save_plan
    from ..durations import parse_duration
    from ..transport.repository import Repository
    from ._mirror import open_mirror
    from ._plans import target_plan
    from .render import summary_line

    state = state_of(ctx)
    with errors_to_exit(state):
        if yes and not do_apply:
            raise typer.BadParameter(
                "--yes only confirms --apply; add --apply, or drop --yes to plan only",
                param_hint="'--yes'",
            )
        _check_out(out)
        if do_apply and not yes and not _core.stdin_is_tty():
            # Refuse before reading anything: a cron job needs --yes every time, not only on
            # the day the plan happens to be non-empty.
            raise ConfigError(
                "refusing to apply without confirmation: stdin is not a terminal "
                "(pass --yes to apply non-interactively)"
            )
        threshold = (
            parse_duration(stale_after, what="--stale-after", bare_unit="m")
            if stale_after is not None
            else timedelta(minutes=state.settings.stale_after_minutes)
        )
        targets = _targets(target, state)
        with open_base(state, effect="apply changes" if do_apply else None) as backend:
            repo = Repository(backend.conn)
            mirror = open_mirror(backend, repo)
            try:
                made = _make_plan(repo, threshold, mirror, full)
            finally:
                if mirror is not None:
                    mirror.close()
            plan, left_out = target_plan(made, targets)
            shown = ", ".join(str(t) for t in targets)
            if targets:
                sys.stderr.write(
                    f"Warning: the plan is limited to --target {shown}; {left_out} other "
                    "planned row(s) are not in it and will not be applied. Run without "
                    "--target to see everything.\n"
                )
            if out is not None:
                save_plan(plan, out)
            _check_run_targets(repo, plan, targets)
            if as_json and not do_apply:
                print_json(json.loads(plan_to_json(plan)))
            elif not as_json and targets and not plan.records:
                out_console().print(
                    f"No changes in the targeted rows (--target {shown}); the rest of the base "
                    "was not planned.",
                    markup=False,
                )
            elif not as_json:
                _print_plan(plan, pager=not no_pager and not do_apply)
            if out is not None:
                notice(f"Plan saved to {out}; apply it with: jobtrack-airtable apply {out}")
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
                sys.stderr.write("Apply cancelled: nothing was written.\n")
                raise typer.Exit(EXIT_ERROR)
            try:
                result = _apply(repo, plan, finish=finish_command(state, "sync", "--apply"))
            except StalePlanError as exc:
                _refused(exc)
            if as_json:
                print_json(
                    {"plan": json.loads(plan_to_json(plan)), "applied": _result_json(plan, result)}
                )
            elif not state.quiet:
                _report_written(plan, result)
            outcome(_applied_line(result), as_json=as_json)


def _is_archive_plan(path: Path) -> bool:
    """Whether ``path`` holds an archive plan rather than a sync plan; an unreadable file is
    left to the sync plan loader to report."""
    from ..admin.archive import is_archive_plan
    from ..files import load_json_file

    try:
        data = load_json_file(path, what="plan file")
    except ValueError:
        return False
    return isinstance(data, dict) and is_archive_plan(data)


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    plan_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="A plan saved by `sync --out FILE` or `archive --out FILE`.",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON.")
    ] = False,
) -> None:
    """Apply a saved plan exactly, or refuse if the base changed since it was made.

    The rows the plan depends on are re-read first: if any changed, vanished or appeared,
    nothing is written and the command exits 1, listing them -- unless the base already
    holds everything the plan writes (it was applied before): then it says so and exits 0.
    """
    if _is_archive_plan(plan_file):
        from ._archive import apply_file

        apply_file(ctx, plan_file, as_json=as_json)
        return
    from ..admin.sync import StalePlanError
    from ..transport.repository import Repository
    from ._plans import already_applied

    state = state_of(ctx)
    with errors_to_exit(state):
        plan = load_plan_file(plan_file)
        with open_base(state, effect="apply a plan") as backend:
            repo = Repository(backend.conn)
            try:
                result = _apply(repo, plan, finish=finish_command(state, "sync", "--apply"))
            except StalePlanError as exc:
                if plan.has_changes and already_applied(repo, plan):
                    if as_json:
                        print_json({"already_applied": True, "total": 0, "rows": []})
                    outcome(
                        f"Already applied: {backend.description} already holds every change "
                        f"of {plan_file}; nothing was written.",
                        as_json=as_json,
                    )
                    raise typer.Exit(EXIT_OK) from None
                _refused(exc)
        if as_json:
            print_json({"already_applied": False, **_result_json(plan, result)})
        if plan.has_changes:
            if not as_json and not state.quiet:
                _report_written(plan, result)
            outcome(_applied_line(result), as_json=as_json)
        else:
            outcome("Nothing to apply: the plan has no changes.", as_json=as_json)


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    plan_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", exists=True, dir_okay=False, help="A plan saved by `sync --out FILE`."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    no_pager: NoPagerOption = False,
) -> None:
    """Show a saved plan without touching any base, and whether applying it changes anything.

    Reads only the file.  Exit 0 (the plan's validity is checked; a bad file exits 1).
    """
    from ..admin.sync import plan_to_json

    state = state_of(ctx)
    with errors_to_exit(state):
        plan = load_plan_file(plan_file)
        if as_json:
            doc = json.loads(plan_to_json(plan))
            print_json({"no_op": not plan.has_changes, "plan": doc})
            return
        header = (
            f"Plan for base {plan.base_id}, made {plan.generated_at} "
            f"(stale after {plan.stale_after_seconds / 60:g} min)."
        )
        out_console().print(header, markup=False, highlight=False)
        _print_plan(plan, pager=not no_pager)
        if plan.has_changes:
            s = plan.summary
            out_console().print(
                f"Applying it writes {s.create + s.update + s.delete} row(s): "
                f"`jobtrack-airtable apply {plan_file}`.",
                markup=False,
            )
        else:
            out_console().print("This plan is a no-op: applying it changes nothing.")
