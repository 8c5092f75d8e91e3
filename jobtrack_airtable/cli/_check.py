"""``check``: the cron-friendly health check, over :mod:`jobtrack_airtable.admin.ops.health`.

Exit codes: 0 healthy, 2 unhealthy (problems found), 1 error (the check could not run, or a
notification could not be delivered: it is retried by the next check).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ._core import (
    Reads,
    app,
    check_readable,
    errors_to_exit,
    open_base,
    out_console,
    print_json,
    redact,
    state_of,
)
from ._mirror import FullOption, whole_table_reads
from ._usage import uncounted_note

if TYPE_CHECKING:
    # The library (pyairtable, requests) loads only when the command runs: --help stays fast.
    from ..admin.ops import health
    from ..admin.outbox import OutboxItem
    from ..transport.client import Connection


def _kind_style(kind: health.ProblemKind) -> str:
    from ..admin.ops import health

    k = health.ProblemKind
    red = {
        k.FAILED_RUN,
        k.FAILED_CLIENT,
        k.FAILING_STREAM,
        k.FAILURE_STREAK,
        k.QUOTA_CALLS,
        k.QUOTA_EXHAUSTED,
        k.OUTBOX_BACKLOG,
    }
    magenta = {k.MISSED_RUN, k.TOO_FREQUENT, k.RECORDS_CAP}
    return "red" if kind in red else "magenta" if kind in magenta else "yellow"


@app.command("check")
def check(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Check configuration (TOML): stuck threshold, lookback, error-rate rule, "
            "expected runs per stream, alert rules. See config/check.example.toml.",
            dir_okay=False,
        ),
    ] = None,
    stuck_after: Annotated[
        str | None,
        typer.Option(
            "--stuck-after",
            help="A Running job with no update for this long is stuck (30m, 2h); default: "
            "the config file, else JOBTRACK_STALE_AFTER_MINUTES.",
        ),
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="State file remembering the last check and the problems reported "
            "(default: one per base in the per-user state directory).",
            dir_okay=False,
        ),
    ] = None,
    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            metavar="URL",
            help="Send one message per new problem to this apprise URL (slack://…, "
            "mailto://…, json://host:port/…); repeatable. Never repeats a problem.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    full: FullOption = False,
) -> None:
    """Check the base's health: stuck, failed, missing, too long and too frequent runs,
    failing streams, client error rates and streaks, quota; "resolved" when a problem clears."""
    from ..admin.ops import health
    from ..admin.ops.config import CheckConfig, load_check_config
    from ..admin.ops.notify import build_targets
    from ..admin.ops.quota import usage_report
    from ..admin.ops.state import default_state_path, locked_state
    from ..durations import parse_duration

    state = state_of(ctx)
    with errors_to_exit(state):
        # A FIFO or a device given as a file must be refused, not read forever.
        check_readable(config_file, "check configuration", max_bytes=1024 * 1024)
        if state_file is not None and state_file.exists():
            check_readable(state_file, "check state")
        config = load_check_config(config_file) if config_file is not None else CheckConfig()
        threshold = (
            parse_duration(stuck_after, what="--stuck-after")
            if stuck_after is not None
            else config.stuck_after or state.settings.stale_after
        )
        # Every URL is validated before the base is read or anything is sent.
        targets = build_targets(notify or [])
        with open_base(state, effect="send notifications" if targets else None) as backend:
            path = state_file or default_state_path(backend.conn.base_id)
            # The state is locked before any read, as without the mirror: a second check of
            # the base waits for the first instead of judging the same rows again.
            with (
                locked_state(path, backend.conn.base_id) as memory,
                whole_table_reads(backend, full=full) as repo,
                Reads("Checking the base") as reads,
            ):
                usage = (
                    usage_report(
                        repo,
                        state.settings,
                        on_page=reads.on_page,
                        uncounted=uncounted_note(backend.embedded is not None),
                        tool_share=config.quota.tool_share,
                    )
                    if config.quota.enabled
                    else None
                )
                outbox = _outbox_items(backend.conn) if config.outbox.enabled else None
                report = health.run_check(
                    repo,
                    config,
                    memory,
                    stuck_after=threshold,
                    targets=targets,
                    on_page=reads.on_page,
                    usage=usage,
                    outbox=outbox,
                )
        if as_json:
            print_json(health.health_to_json(report))
        else:
            _print_report(report)
        if report.notify_failed:
            why = "; ".join(f"{t.id}: {t.last_error}" for t in targets if t.last_error is not None)
            sys.stderr.write(
                redact(
                    f"error: {report.notify_failed} notification(s) could not be delivered "
                    f"({why or 'no reason given'}); the next check retries them"
                )
                + "\n"
            )
    raise typer.Exit(report.exit_code)


def _outbox_items(conn: Connection) -> list[OutboxItem]:
    """The outbox's entries for this base (this machine's file, or the fleet's store)."""
    from ..admin.outbox import outbox_status
    from ..outbox import open_outbox

    store = open_outbox(conn.settings)
    try:
        return outbox_status(store, conn.base_id)
    finally:
        store.close()


def _print_report(report: health.HealthReport) -> None:
    console = out_console()
    since = report.events_since.strftime("%Y-%m-%d %H:%M UTC")
    if report.problems or report.resolved:
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("", no_wrap=True)
        table.add_column("Problem", no_wrap=True)
        table.add_column("Details", overflow="fold")
        for p in report.problems:
            style = _kind_style(p.kind)
            table.add_row(
                "[bold]new[/bold]" if p.new else "[dim]seen[/dim]",
                f"[{style}]{p.kind.label}[/{style}]",
                escape(p.message),
            )
        for p in report.resolved:
            table.add_row("[green]resolved[/green]", p.kind.label, escape(p.message))
        console.print(table)
        console.print()
    met = sum(1 for d in report.deadlines if d.met_by is not None)
    if report.deadlines:
        console.print(f"[dim]Expected runs: {met} of {len(report.deadlines)} deadlines met.[/dim]")
    if report.error_rates:
        worst = report.error_rates[0]
        console.print(
            f"[dim]Client error rates: {len(report.error_rates)} clients; highest "
            f"{escape(worst.client_id)} {worst.failed}/{worst.runs} ({worst.rate:.0%}).[/dim]"
        )
    sent = f" {report.notified} notification(s) sent." if report.notified else ""
    if report.healthy:
        console.print(f"[green]Healthy[/green]: no problems since {since}.{sent}")
    else:
        new = len(report.new_problems)
        console.print(
            f"[red]Unhealthy[/red]: {len(report.problems)} problem(s), {new} new "
            f"(events since {since}).{sent}"
        )
