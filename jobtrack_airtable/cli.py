"""``jobtrack-airtable``: the admin command line, a thin shell over the library.

Commands::

    jobtrack-airtable [--local PATH] [--debug] COMMAND ...

    sync [--stale-after MIN] [--json] [--out FILE] [--apply [--yes]]
    apply FILE [--json]
    runs list [--status S] [--since 7d|2025-09-30] [--limit N] [--json]
    runs show RUN_ID [--json]
    schema check [--json]
    schema init [--json]
    local serve [--host] [--port] [--token] [--base-id] [--data FILE] [--schema FILE]
    local seed [--reset]

Exit codes: 0 success / nothing to change; 2 ``sync`` found changes (plan mode); 1 any error,
including a refused stale plan and a failed ``schema check``.  Errors are one line on stderr
(``--debug`` adds the traceback); the API token is never printed, even inside an error.

Without ``AIRTABLE_API_KEY``/``AIRTABLE_BASE_ID`` every command runs against the embedded local
base (see :mod:`.embedded`), and says so on stderr.  Human output (tables, progress) is rich;
``--json`` prints one JSON document on stdout and nothing else there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .embedded import (
    Backend,
    count_records,
    default_local_path,
    lock_local_base,
    open_backend,
)
from .embedded import seed_file as _seed_file
from .errors import ConfigError, JobtrackError
from .metrics import AGGREGATE_KEYS, ClientRunRow, JobRow
from .repository import Repository
from .schema import load_schema
from .settings import Settings
from .statuses import Status, map_status
from .timeutil import utcnow

__all__ = ["app", "main"]

#: Exit codes (SPEC §3.6).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

# Click (vendored by recent typer, a dependency of older ones) exits 2 on usage errors, which a
# script would read as "sync found changes".  Usage errors are errors: exit 1.  The class is
# found through typer's public BadParameter so this works whichever click typer ships with.
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class _Group(TyperGroup):
    """The root command group: usage errors exit 1, like every other error."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as exc:
            exc.exit_code = EXIT_ERROR  # type: ignore[attr-defined]
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            exc.exit_code = EXIT_ERROR  # type: ignore[attr-defined]
            raise


_HELP = (
    "Record and repair lead-scoring job runs in Airtable. Without AIRTABLE_API_KEY and "
    "AIRTABLE_BASE_ID, commands use an embedded local base seeded with demo data."
)
app = typer.Typer(
    cls=_Group,
    help=_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Read-only views of job runs.", no_args_is_help=True)
schema_app = typer.Typer(help="Compare the base with the configured schema.", no_args_is_help=True)
local_app = typer.Typer(help="The local Airtable-compatible server.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(schema_app, name="schema")
app.add_typer(local_app, name="local")


# -- state, output, errors -----------------------------------------------------------------


@dataclass
class State:
    """Per-invocation state from the global options."""

    local: Path | None = None
    debug: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Settings from the environment, read once; a bad value is a one-line error."""
        if self._settings is None:
            try:
                self._settings = Settings()
            except ValidationError as exc:
                raise ConfigError(_settings_problem(exc)) from None
        return self._settings


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        parts.append(f"{where}: {err.get('msg')}")
    return "invalid configuration: " + "; ".join(parts)


def _state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


def _width() -> int | None:
    # Piped output gets a wide console so tables are not squeezed into 80 columns.
    return None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))


def _out() -> Console:
    """Console on the current stdout (resolved per call: test runners swap the streams)."""
    return Console(file=sys.stdout, width=_width(), highlight=False, soft_wrap=False)


def _err() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _secrets() -> list[str]:
    """Values that must never be shown: the API token as set in the environment."""
    values = [os.environ.get("AIRTABLE_API_KEY", "")]
    return [v for v in values if len(v) >= 4]


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``***`` (a last line of defence: the
    library already keeps the token out of messages)."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(exc: BaseException, state: State) -> NoReturn:
    """Report ``exc`` as one line (plus the traceback with ``--debug``) and exit 1."""
    if state.debug:
        tb = "".join(traceback.format_exception(exc))
        sys.stderr.write(redact(tb))
    message = _one_line(str(exc)) or type(exc).__name__
    if not isinstance(exc, JobtrackError | OSError):
        # Not one of ours: the type helps a bug report.
        message = f"{type(exc).__name__}: {message}"
    hint = "" if state.debug else " (run with --debug for details)"
    if isinstance(exc, JobtrackError):
        hint = ""
    sys.stderr.write(redact(f"error: {message}{hint}") + "\n")
    raise typer.Exit(EXIT_ERROR)


@contextlib.contextmanager
def _errors(state: State) -> Iterator[None]:
    """Turn every failure inside a command into the one-line error and exit 1."""
    try:
        yield
    except (typer.Exit, typer.Abort, _UsageError):
        raise
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise typer.Exit(130) from None
    except Exception as exc:
        _fail(exc, state)


class _StderrHandler(logging.Handler):
    """Library log lines (retries, duplicate-row warnings) on the *current* stderr, redacted,
    so they never mix into ``--json`` output on stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # pragma: no cover - logging must never raise
            return
        sys.stderr.write(redact(text) + "\n")


def _configure_logging(debug: bool) -> None:
    logger = logging.getLogger("jobtrack_airtable")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextlib.contextmanager
def _backend(state: State) -> Iterator[Backend]:
    """Open the base the settings (or ``--local``) name, telling the user on stderr when it
    is the embedded local base."""
    with open_backend(state.settings, local=state.local) as backend:
        if backend.notice:
            sys.stderr.write(backend.notice + "\n")
        yield backend


class _Reads:
    """A transient spinner on stderr counting rows read, fed by ``on_page`` callbacks.

    Silent when stderr is not a terminal (pipes, CI, tests): progress is for humans.
    """

    def __init__(self, label: str) -> None:
        console = _err()
        self.enabled = console.is_terminal
        self.rows = 0
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("[dim]{task.completed} rows"),
            console=console,
            transient=True,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task(label, total=None)

    def on_page(self, count: int) -> None:
        self.rows += count
        self.progress.update(self.task, completed=self.rows)

    def on_progress(self, *args: Any, **kwargs: Any) -> None:
        """Accept whatever a library progress callback reports: a description, a row count,
        or ``(done, total)``."""
        numbers = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        texts = [a for a in args if isinstance(a, str)]
        if texts:
            self.progress.update(self.task, description=texts[0])
        if len(numbers) >= 2:
            self.progress.update(self.task, completed=numbers[0], total=numbers[1] or None)
        elif numbers:
            self.on_page(numbers[0])

    def __enter__(self) -> _Reads:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


class _Writes:
    """A transient progress bar on stderr for writes with a known total."""

    def __init__(self, label: str, total: int | None = None) -> None:
        console = _err()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total)

    def on_progress(self, *args: Any, **kwargs: Any) -> None:
        numbers = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        texts = [a for a in args if isinstance(a, str)]
        if texts:
            self.progress.update(self.task, description=texts[0])
        if len(numbers) >= 2:
            self.progress.update(self.task, completed=numbers[0], total=numbers[1] or None)
        elif numbers:
            self.progress.update(self.task, advance=numbers[0])

    def __enter__(self) -> _Writes:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


def _stdin_is_tty() -> bool:
    """Whether a human can answer a confirmation prompt (patched in tests)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


# -- root ---------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"jobtrack-airtable {__version__}\n")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    ctx: typer.Context,
    local: Annotated[
        Path | None,
        typer.Option(
            "--local",
            help="Use the local base persisted in this JSON file (created and seeded with "
            "demo data if absent), even when Airtable credentials are set.",
            dir_okay=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logs on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Record and repair lead-scoring job runs in Airtable."""
    ctx.obj = State(local=local, debug=debug)
    _configure_logging(debug)


# -- sync and apply ------------------------------------------------------------------------


def _sync_api() -> Any:
    """The sync package, imported when a sync command runs (keeps ``runs``/``schema`` fast
    and independent of it)."""
    from . import sync

    return sync


def _print_plan(plan: Any) -> None:
    """The plan, Terraform style, on stdout (coloured on a terminal; lines never re-wrapped,
    so values stay exact)."""
    from .sync.render import render_rich

    console = _out()
    console.soft_wrap = True
    console.print(render_rich(plan))


def _plan_json(plan: Any) -> Any:
    sync = _sync_api()
    return json.loads(sync.plan_to_json(plan))


def _summary_line(plan: Any) -> str:
    s = plan.summary
    return (
        f"Plan: {s.create} to create, {s.update} to update, {s.delete} to delete, "
        f"{s.attention} need attention."
    )


def _make_plan(repo: Repository, stale_after: timedelta) -> Any:
    sync = _sync_api()
    with _Reads("Reading the base") as reads:
        return sync.plan_sync(
            repo, now=utcnow(), stale_after=stale_after, on_progress=reads.on_progress
        )


def _apply(repo: Repository, plan: Any) -> Any:
    sync = _sync_api()
    total = sum(1 for r in plan.records if r.action.value != "attention")
    with _Writes("Applying the plan", total=total) as writes:
        try:
            return sync.apply_plan(repo, plan, on_progress=writes.on_progress)
        except TypeError as exc:
            if "on_progress" not in str(exc):
                raise
            return sync.apply_plan(repo, plan)


def _applied_line(result: Any, plan: Any) -> str:
    s = plan.summary
    return f"Applied: {s.create} created, {s.update} updated, {s.delete} deleted."


def _stale_error_types() -> tuple[type[BaseException], ...]:
    sync = _sync_api()
    found = [
        getattr(sync, n)
        for n in ("StalePlanError", "PlanStaleError", "StalePlan")
        if isinstance(getattr(sync, n, None), type)
    ]
    return tuple(found)


def _report_stale(exc: BaseException) -> NoReturn:
    """A refused plan: the one error line, then the rows that changed (if the error lists
    them), then exit 1."""
    sys.stderr.write(redact(f"error: {_one_line(str(exc))}") + "\n")
    rows = getattr(exc, "changed", None) or getattr(exc, "rows", None) or []
    for row in rows:
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
            "(default JOBTRACK_STALE_AFTER_MINUTES, 120).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Save the plan to this file (apply it later with `apply`).",
            dir_okay=False,
        ),
    ] = None,
    do_apply: Annotated[
        bool, typer.Option("--apply", help="Apply the plan after showing it.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply without asking for confirmation.")
    ] = False,
) -> None:
    """Show what is inconsistent in the base and how it would be fixed (changes nothing).

    Exit 0 when there is nothing to change, 2 when the plan has changes, 1 on error.
    With --apply, apply the plan (asking first on a terminal, unless --yes).
    """
    state = _state(ctx)
    with _errors(state):
        if do_apply and not yes and not _stdin_is_tty():
            raise ConfigError(
                "refusing to apply without confirmation: stdin is not a terminal "
                "(pass --yes to apply non-interactively)"
            )
        minutes = stale_after if stale_after is not None else state.settings.stale_after_minutes
        with _backend(state) as backend:
            repo = Repository(backend.conn)
            plan = _make_plan(repo, timedelta(minutes=minutes))
            if out is not None:
                _sync_api().save_plan(plan, out)
            if as_json:
                _print_json(_plan_json(plan))
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
                f"{_summary_line(plan)} Apply it to {backend.description}?",
                default=False,
                err=True,
            ):
                sys.stderr.write("Not applied.\n")
                raise typer.Exit(EXIT_CHANGES)
            try:
                result = _apply(repo, plan)
            except _stale_error_types() as exc:
                _report_stale(exc)
            sys.stderr.write(_applied_line(result, plan) + "\n")


@app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    plan_file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A plan saved by `sync --out FILE`.", dir_okay=False),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Apply a saved plan exactly as it was reviewed, or refuse (exit 1) if any row it
    touches changed since it was made."""
    state = _state(ctx)
    with _errors(state):
        plan = _sync_api().load_plan(plan_file)
        with _backend(state) as backend:
            if getattr(plan, "base_id", backend.conn.base_id) != backend.conn.base_id:
                raise ConfigError(
                    f"the plan was made for base {plan.base_id}, not {backend.conn.base_id}"
                )
            repo = Repository(backend.conn)
            if not plan.has_changes:
                line = "Nothing to apply: the plan has no changes."
            else:
                try:
                    _apply(repo, plan)
                except _stale_error_types() as exc:
                    _report_stale(exc)
                line = _applied_line(None, plan)
            if as_json:
                _print_json({"applied": plan.has_changes, "summary": plan.summary.model_dump()})
            sys.stderr.write(line + "\n")


# -- runs ----------------------------------------------------------------------------------


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
        return f"[{style}]{escape(raw)}[/{style}] [dim](→ {status.value})[/dim]"
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


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List job runs, newest first."""
    from . import views

    state = _state(ctx)
    with _errors(state):
        moment = views.parse_since(since) if since is not None else None
        with _backend(state) as backend:
            repo = Repository(backend.conn)
            with _Reads(f"Reading {repo.schema.jobs.name}") as reads:
                rows = views.list_runs(
                    repo, status=status, since=moment, limit=limit, on_page=reads.on_page
                )
        if as_json:
            filters = {
                "status": status,
                "since": moment.isoformat() if moment else None,
                "limit": limit,
            }
            _print_json(views.runs_to_json(rows, filters=filters))
            return
        _print_runs(rows, limit)


def _print_runs(rows: list[JobRow], limit: int | None) -> None:
    console = _out()
    if not rows:
        console.print("No runs match.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col, justify in (
        ("Run ID", "left"),
        ("Status", "left"),
        ("Stream", "right"),
        ("Started (UTC)", "left"),
        ("Duration", "right"),
        ("Clients", "right"),
        ("Errors", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "Status")  # type: ignore[arg-type]
    for row in rows:
        started = row.start_time or row.created_time
        table.add_row(
            escape(row.run_id or "—"),
            _status_cell(row.status_raw),
            _num(row.stream),
            _when(started),
            _duration(row.start_time, row.end_time),
            _num(row.aggregates.get("clients_processed")),
            _num(row.aggregates.get("clients_with_errors")),
        )
    console.print(table)
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
) -> None:
    """Show one job: its row, its client runs, and aggregates computed from them."""
    from . import views

    state = _state(ctx)
    with _errors(state):
        with _backend(state) as backend:
            repo = Repository(backend.conn)
            with _Reads("Reading the run") as reads:
                detail = views.show_run(repo, run_id, on_page=reads.on_page)
        if as_json:
            _print_json(views.detail_to_json(detail))
            return
        _print_detail(detail)


def _print_detail(detail: Any) -> None:
    console = _out()
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
        facts.add_column(style="dim")
        facts.add_column()
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
    agg = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    agg.add_column("Metric")
    agg.add_column("Computed", justify="right")
    agg.add_column("Stored", justify="right")
    counts = detail.computed.counts()
    for key in AGGREGATE_KEYS:
        if key in detail.stored:
            stored = _num(detail.stored[key])
            if key in detail.drift:
                stored = f"[red]{stored}[/red]"
        else:
            stored = "[dim]no field[/dim]"
        agg.add_row(_AGGREGATE_LABELS.get(key, key), _num(counts[key]), stored)
    agg.add_row("Total tokens", _num(detail.computed.total_tokens), "")
    agg.add_row("Profile success rate", f"{detail.computed.profile_success_rate:.1%}", "")
    agg.add_row("Post success rate", f"{detail.computed.post_success_rate:.1%}", "")
    console.print(agg)
    if detail.drift:
        console.print(
            f"[red]{len(detail.drift)} stored aggregate(s) differ from the client "
            "rows[/red] (`sync` recomputes them)."
        )


def _print_clients(clients: Sequence[ClientRunRow]) -> None:
    console = _out()
    if not clients:
        console.print("No client runs.")
        return
    console.print(f"[bold]Client runs[/bold] ({len(clients)})")
    table = Table(
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for col, justify in (
        ("Client", "left"),
        ("Status", "left"),
        ("Started (UTC)", "left"),
        ("Duration", "right"),
        ("Profiles", "right"),
        ("Posts", "right"),
        ("Tokens", "right"),
        ("Cost", "right"),
        ("Error", "left"),
    ):
        # Only the error text gives way when the terminal is narrow: cut, never wrapped.
        error = col == "Error"
        table.add_column(
            col,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis" if error else "fold",
            max_width=40 if error else None,
            min_width=None if error else len(col),
        )
    for c in clients:
        m = c.metrics
        tokens = (m.profile_tokens or 0) + (m.post_tokens or 0)
        error = c.error_details or ("; ".join(c.problems) if c.problems else "")
        table.add_row(
            escape(c.client_id or c.run_id or "—"),
            _status_cell(c.status_raw),
            _when(c.start_time),
            _duration(c.start_time, c.end_time),
            f"{_num(m.profiles_scored)}/{_num(m.profiles_examined)}",
            f"{_num(m.posts_scored)}/{_num(m.posts_examined)}",
            _num(tokens),
            _num(m.apify_costs),
            escape(error),
        )
    console.print(table)
    console.print("[dim]Profiles and Posts: scored/examined. Tokens: profile + post.[/dim]")


# -- schema --------------------------------------------------------------------------------


@schema_app.command("check")
def schema_check_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare the configured schema with the base (exit 1 on any difference)."""
    from . import schema_check

    state = _state(ctx)
    with _errors(state):
        with _backend(state) as backend:
            report = schema_check.check_schema(backend.conn)
        if as_json:
            _print_json(report.to_json())
        else:
            _print_schema_report(report)
        if not report.ok:
            raise typer.Exit(EXIT_ERROR)


def _print_schema_report(report: Any) -> None:
    console = _out()
    if report.ok:
        console.print(
            f"[green]Schema OK[/green]: {report.tables_checked} tables and "
            f"{report.fields_checked} fields match the configuration."
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("Problem")
    table.add_column("Table")
    table.add_column("Field")
    table.add_column("Detail")
    for p in report.problems:
        detail = p.message + (f" — {p.hint}" if p.hint else "")
        table.add_row(
            p.kind.replace("_", " "), escape(p.table), escape(p.field or ""), escape(detail)
        )
    console.print(table)
    console.print(
        f"[red]{len(report.problems)} schema problem(s).[/red] "
        "`jobtrack-airtable schema init` creates missing tables and fields."
    )


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
    from . import schema_check

    state = _state(ctx)
    with _errors(state):
        with _backend(state) as backend, _Reads("Creating missing tables and fields") as p:
            result = schema_check.init_schema(
                backend.conn,
                create_formulas=backend.is_local,
                on_step=lambda text: p.on_progress(text),
            )
        if as_json:
            _print_json(result.to_json())
        else:
            console = _out()
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


# -- local ---------------------------------------------------------------------------------


@local_app.command("serve")
def local_serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="JOBTRACK_LOCAL_TOKEN",
            show_envvar=True,
            show_default=False,
            help="Bearer token clients must send (never printed).",
        ),
    ] = None,
    base_id: Annotated[
        str, typer.Option("--base-id", help="Base ID (app + 14 characters).")
    ] = "appJobtrackLocal1",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            dir_okay=False,
            help="Persist to this JSON file (default: --local if given, else memory).",
        ),
    ] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", dir_okay=False, help="Schema TOML file.")
    ] = None,
    rate_limit: Annotated[
        str, typer.Option("--rate-limit", help="Requests/s per base, or 'off'.")
    ] = "5",
) -> None:
    """Serve a local Airtable-compatible base until interrupted (Ctrl-C).

    Same as `python -m jobtrack_airtable.local serve`.  While it serves a file, CLI commands
    using that file as --local wait for it (they share a lock).
    """
    from .local.__main__ import main as local_main

    state = _state(ctx)
    with _errors(state):
        path = data if data is not None else state.local
        argv = [
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--base-id",
            base_id,
            "--rate-limit",
            rate_limit,
        ]
        if token:
            argv += ["--token", token]
        if path is not None:
            argv += ["--data", str(path)]
        if schema is not None:
            argv += ["--schema", str(schema)]
        # The embedded base loads the whole file per command: serving it at the same time
        # would let one overwrite the other's writes, so the server holds the file's lock.
        lock = lock_local_base(path, timeout=0) if path is not None else contextlib.nullcontext()
        with lock:
            code = local_main(argv)
        raise typer.Exit(code)


@local_app.command("seed")
def local_seed(
    ctx: typer.Context,
    reset: Annotated[
        bool, typer.Option("--reset", help="Replace an existing local base (its data is lost).")
    ] = False,
) -> None:
    """Fill the local base (--local PATH, or the embedded default) with the demo dataset."""
    state = _state(ctx)
    with _errors(state):
        path = state.local if state.local is not None else default_local_path()
        schema = load_schema(state.settings.schema_file)
        held = count_records(path)
        if held and not reset:
            raise ConfigError(
                f"the local base {str(path)!r} already holds {held} records; pass --reset to "
                "replace it with the demo dataset"
            )
        with lock_local_base(path):
            if count_records(path) and not reset:  # filled while we waited for the lock
                raise ConfigError(f"the local base {str(path)!r} was filled meanwhile")
            counts = _seed_file(path, schema)
        sys.stderr.write(
            f"Seeded the local base at {path}: {counts.get('jobs', 0)} job rows and "
            f"{counts.get('client_runs', 0)} client rows.\n"
        )


# -- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the exit code."""
    command = typer.main.get_command(app)
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="jobtrack-airtable")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{code}\n")
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
