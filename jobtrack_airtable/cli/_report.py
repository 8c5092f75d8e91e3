"""``report``: the HTML report (and its numbers as JSON), over
:mod:`jobtrack_airtable.admin.ops`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InvalidInputError
from ._core import Reads, app, errors_to_exit, open_base, out_console, print_json, state_of
from ._mirror import FullOption, whole_table_reads


@app.command("report")
def report(
    ctx: typer.Context,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write a self-contained HTML page with charts (opens offline).",
            dir_okay=False,
        ),
    ] = None,
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="Start of the period: a duration back from now (7d, 2w), a date "
            "(2025-09-01) or an ISO datetime (UTC).",
        ),
    ] = "30d",
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="End of the period (same forms as --since; a date means its 00:00 UTC; "
            "default now).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report's numbers as JSON.")
    ] = False,
    full: FullOption = False,
) -> None:
    """Report on a period: runs per day, durations, errors, tokens and cost per client."""
    # The library (pyairtable, requests) loads only when the command runs: --help stays fast.
    from ..admin.ops.report_data import collect_report, report_to_json
    from ..admin.views import parse_since

    state = state_of(ctx)
    with errors_to_exit(state):
        if html_file is None and not as_json:
            raise InvalidInputError("report needs --html FILE, --json, or both")
        start = parse_since(since)
        end = parse_since(until) if until is not None else None
        with (
            open_base(state) as backend,
            whole_table_reads(backend, full=full) as repo,
            Reads("Reading the period") as reads,
        ):
            data = collect_report(
                repo,
                since=start,
                until=end,
                on_page=reads.on_page,
                stuck_after=state.settings.stale_after,
            )
        if html_file is not None:
            # Rendering first, writing second: a failed render leaves no half-written file.
            from ..admin.ops.report_html import render_html

            page = render_html(data)
            html_file.write_text(page, encoding="utf-8")
            message = (
                f"Wrote {html_file} ({len(page.encode()) / 1e6:.1f} MB): {data.jobs} jobs, "
                f"{data.client_runs} client runs, {data.since:%Y-%m-%d} to {data.until:%Y-%m-%d}."
            )
            # With --json, stdout holds the JSON document only.
            if as_json:
                sys.stderr.write(message + "\n")
            else:
                out_console().print(message, markup=False)
        if as_json:
            print_json(report_to_json(data))
