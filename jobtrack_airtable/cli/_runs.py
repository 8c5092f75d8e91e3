"""``runs list`` and ``runs show``: tables over :mod:`jobtrack_airtable.admin.views`."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..metrics import AGGREGATE_KEYS
from ..statuses import Status, map_status
from ._core import (
    Reads,
    complete_from,
    errors_to_exit,
    open_base,
    out_console,
    print_json,
    runs_app,
    state_of,
)
from ._mirror import FullOption, whole_table_reads
from .tables import Column, print_table

if TYPE_CHECKING:
    from ..rows import ClientRunRow, JobRow

_STATUS_STYLE = {
    Status.RUNNING: "cyan",
    Status.COMPLETED: "green",
    Status.FAILED: "red",
    Status.NO_LEADS: "yellow",
}


def _status_cell(raw: str | None) -> str:
    if raw is None:
        return "[dim]—[/dim]"
    status = map_status(raw).status
    if status is None:
        return f"[magenta]{escape(raw)}[/magenta] [dim](unknown)[/dim]"
    style = _STATUS_STYLE[status]
    if raw != status.value:
        return f"[{style}]{escape(raw)}[/{style}] [dim]→ {status.value}[/dim]"
    return f"[{style}]{escape(raw)}[/{style}]"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = int((end - start).total_seconds())
    if seconds < 0:
        return "negative"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | Decimal):
        return f"{value:,.2f}"
    return f"{value:,}"


ArchiveOption = Annotated[
    Path | None,
    typer.Option(
        "--archive",
        metavar="FILE",
        dir_okay=False,
        help="Read an archive written by `archive` instead of the base.",
    ),
]


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            autocompletion=complete_from(*(s.value for s in Status)),
            help="Only runs with this status (Running, Completed, Failed, "
            "'No Leads To Score'; legacy spellings match too).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only runs started since: a duration (12h, 7d, 2w), a "
            "date (2025-09-30) or an ISO datetime (UTC).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Show at most this many runs.")
    ] = 20,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            autocompletion=complete_from("table", "json", "csv"),
            help="Output format: table (for humans), json or csv (for machines).",
        ),
    ] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    archive: ArchiveOption = None,
    full: FullOption = False,
) -> None:
    """List job runs, newest first (from the base, or from an archive with --archive)."""
    from ..admin import views

    state = state_of(ctx)
    with errors_to_exit(state):
        if output not in _FORMATS:
            raise typer.BadParameter(
                f"{output!r} is not one of {', '.join(_FORMATS)}", param_hint="'--format'"
            )
        if as_json:
            output = "json"
        moment = views.parse_since(since) if since is not None else None
        if archive is not None:
            from ..admin.archive import archived_runs
            from ..schema import load_schema

            jobs, _ = archived_runs(archive, load_schema(state.settings.schema_file))
            rows = views.select_runs(jobs, status=status, since=moment, limit=limit)
        else:
            with (
                open_base(state) as backend,
                whole_table_reads(backend, full=full) as repo,
                Reads(f"Reading {repo.schema.jobs.name}") as reads,
            ):
                rows = views.list_runs(
                    repo, status=status, since=moment, limit=limit, on_page=reads.on_page
                )
        if output == "json":
            filters = {
                "status": status,
                "since": moment.isoformat() if moment else None,
                "limit": limit,
            }
            print_json(views.runs_to_json(rows, filters=filters))
            return
        if output == "csv":
            _print_csv([views.job_to_json(r) for r in rows])
            return
        _print_runs(rows, limit)


_FORMATS = ("table", "json", "csv")
_CSV_FIELDS = (
    "run_id",
    "status",
    "standard_status",
    "stream",
    "start_time",
    "end_time",
    "duration_seconds",
    "last_updated",
    "created_time",
    "record_id",
)


def _print_csv(runs: list[dict[str, Any]]) -> None:
    """One row per run: the JSON fields, aggregates flattened (empty cell = no value)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([*_CSV_FIELDS, *AGGREGATE_KEYS, "problems"])
    for run in runs:
        aggregates = run.get("aggregates") or {}
        writer.writerow(
            [
                *("" if run.get(k) is None else run[k] for k in _CSV_FIELDS),
                *("" if aggregates.get(k) is None else aggregates[k] for k in AGGREGATE_KEYS),
                "; ".join(run.get("problems") or []),
            ]
        )


_RUN_COLUMNS = (
    # A legacy Run ID can be 40 characters: it folds onto more lines rather than pushing the
    # numbers off the screen (a base run ID is 13 and never folds).
    Column("Run ID", wrap=True, min_width=13),
    # Wraps (at 9, "Completed"): one long legacy status must not hide Stream and Duration.
    Column("Status", wrap=True, min_width=9),
    Column("Stream", justify="right", drop=1),
    Column("Started (UTC)"),
    Column("Duration", justify="right", drop=2),
    Column("Clients", justify="right"),
    Column("Errors", justify="right"),
)


def _print_runs(rows: list[JobRow], limit: int | None) -> None:
    console = out_console()
    if not rows:
        console.print("No runs match.")
        return
    cells = [
        [
            escape(row.run_id or "—"),
            _status_cell(row.status_raw),
            _num(row.stream),
            _when(row.start_time or row.created_time),
            _duration(row.start_time, row.end_time),
            _num(row.aggregates.get("clients_processed")),
            _num(row.aggregates.get("clients_with_errors")),
        ]
        for row in rows
    ]
    print_table(console, _RUN_COLUMNS, cells)
    more = " (use --limit for more)" if limit is not None and len(rows) == limit else ""
    console.print(f"[dim]{len(rows)} run(s), newest first{more}.[/dim]")


_AGGREGATE_LABELS = {
    "clients_processed": "Clients processed",
    "clients_with_errors": "Clients with errors",
    "profiles_examined": "Profiles examined",
    "profiles_scored": "Profiles scored",
    "posts_harvested": "Posts harvested",
    "posts_examined": "Posts examined",
    "posts_scored": "Posts scored",
    "profile_tokens": "Profile tokens",
    "post_tokens": "Post tokens",
}


_AGGREGATE_COLUMNS = (
    Column("Metric", wrap=True, min_width=10),
    Column("Computed", justify="right"),
    Column("Stored", justify="right"),
)
_CLIENT_COLUMNS = (
    # The error text wraps (every character kept); low-value columns go first when narrow.
    Column("Client", wrap=True, min_width=16),
    Column("Status"),
    Column("Started (UTC)", drop=1),
    Column("Duration", justify="right", drop=2),
    Column("Profiles", justify="right"),
    Column("Posts", justify="right", drop=5),
    Column("Tokens", justify="right", drop=4),
    Column("Cost", justify="right", drop=3),
    Column("Error", wrap=True, min_width=12),
)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID",
            help="A base run ID, e.g. 250930-141522 (client or legacy IDs work too).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    archive: ArchiveOption = None,
    full: FullOption = False,
) -> None:
    """Show one job: its row, its client runs, and aggregates computed from them."""
    from ..admin import views

    state = state_of(ctx)
    with errors_to_exit(state):
        if archive is not None:
            from ..admin.archive import archived_runs
            from ..schema import load_schema

            schema = load_schema(state.settings.schema_file)
            jobs, clients = archived_runs(archive, schema)
            where = (f"{archive} ({schema.jobs.name})", schema.client_runs.name)
            detail = views.find_run(run_id, jobs, clients, where=where)
        else:
            with (
                open_base(state) as backend,
                whole_table_reads(backend, full=full) as repo,
                Reads("Reading the run") as reads,
            ):
                detail = views.show_run(repo, run_id, on_page=reads.on_page)
        if as_json:
            print_json(views.detail_to_json(detail))
            return
        _print_detail(detail)


def _print_detail(detail: Any) -> None:
    console = out_console()
    job: JobRow | None = detail.job
    title = detail.base_run_id or detail.query
    if job is None:
        console.print(
            f"[bold]Run {escape(title)}[/bold]  [red]no job row[/red] "
            "(orphan client rows; `sync` proposes a fix)"
        )
    else:
        console.print(
            f"[bold]Run {escape(job.run_id or title)}[/bold]  {_status_cell(job.status_raw)}"
        )
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column(overflow="fold")
        facts.add_row("Stream", _num(job.stream))
        facts.add_row("Started (UTC)", _when(job.start_time))
        facts.add_row("Ended (UTC)", _when(job.end_time))
        facts.add_row("Duration", _duration(job.start_time, job.end_time))
        facts.add_row("Last updated", _when(job.last_updated))
        facts.add_row("Record", job.record_id)
        if job.system_notes:
            facts.add_row("Notes", escape(job.system_notes))
        for problem in job.problems:
            facts.add_row("[yellow]Problem[/yellow]", escape(problem))
        console.print(facts)
    for dup in detail.duplicates:
        console.print(
            f"[yellow]Duplicate job row {dup.record_id}[/yellow] shares this Run ID "
            "(`sync` merges it)."
        )
    current = map_status(job.status_raw).status if job is not None else None
    # Only a finished job can disagree with its client rows; a running one is not done yet.
    if current not in (None, Status.RUNNING) and current is not detail.suggested_status:
        console.print(
            f"[yellow]Its client rows imply {detail.suggested_status.value}, "
            f"not {current}.[/yellow]"
        )
    console.print()
    _print_clients(detail.clients)
    console.print()
    console.print("[bold]Aggregates[/bold] [dim](computed from the client rows)[/dim]")
    cells: list[list[str]] = []
    counts = detail.computed.counts()
    for key in AGGREGATE_KEYS:
        if key in detail.stored:
            stored = _num(detail.stored[key])
            if key in detail.drift:
                stored = f"[red]{stored}[/red]"
        else:
            stored = "[dim]no field[/dim]"
        cells.append([_AGGREGATE_LABELS.get(key, key), _num(counts[key]), stored])
    cells.append(["Total tokens", _num(detail.computed.total_tokens), ""])
    cells.append(["Profile success rate", f"{detail.computed.profile_success_rate:.1%}", ""])
    cells.append(["Post success rate", f"{detail.computed.post_success_rate:.1%}", ""])
    print_table(console, _AGGREGATE_COLUMNS, cells)
    if detail.drift:
        console.print(
            f"[red]{len(detail.drift)} stored aggregate(s) differ from the client "
            "rows[/red] (`sync` recomputes them)."
        )


def _print_clients(clients: Sequence[ClientRunRow]) -> None:
    console = out_console()
    if not clients:
        console.print("No client runs.")
        return
    console.print(f"[bold]Client runs[/bold] ({len(clients)})")
    cells = []
    for c in clients:
        m = c.metrics
        tokens = (m.profile_tokens or 0) + (m.post_tokens or 0)
        error = c.error_details or ("; ".join(c.problems) if c.problems else "")
        cells.append(
            [
                escape(c.client_id or c.run_id or "—"),
                _status_cell(c.status_raw),
                _when(c.start_time),
                _duration(c.start_time, c.end_time),
                f"{_num(m.profiles_scored)}/{_num(m.profiles_examined)}",
                f"{_num(m.posts_scored)}/{_num(m.posts_examined)}",
                _num(tokens),
                _num(m.apify_costs),
                escape(error),
            ]
        )
    print_table(console, _CLIENT_COLUMNS, cells)
    console.print("[dim]Profiles and Posts: scored/examined. Tokens: profile + post.[/dim]")
