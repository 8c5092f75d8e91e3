"""``usage``: API calls this month and the base's records against the plan's limits
(:mod:`jobtrack_airtable.admin.ops.quota`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._core import EXIT_ERROR, Reads, app, errors_to_exit, open_base, print_json, state_of
from ._mirror import FullOption, whole_table_reads

if TYPE_CHECKING:
    from ..admin.ops.quota import UsageReport


def uncounted_note(embedded: bool) -> str | None:
    """Why the API calls are not counted: the embedded local base costs none."""
    return "the embedded local base costs no API calls and is not counted" if embedded else None


def _days(value: float | None) -> str:
    if value is None:
        return "never at the current growth"
    return f"in {value:,.0f} day(s)" if value >= 1 else "within a day"


def _lines(report: UsageReport) -> list[str]:
    r, c = report.requests, report.records
    limit = f"{r.limit:,}" if r.limit is not None else "unlimited"
    w = report.workspace
    who = " (this tool)" if w is not None else ""
    if r.counted is None:
        requests = f"API calls {r.month}{who}: not counted ({r.note})"
    else:
        flag = "  OVER THE QUOTA" if r.over_limit else ""
        requests = (
            f"API calls {r.month}{who}: {r.counted:,} so far, {r.projected:,} projected by "
            f"month end, quota {limit}{flag}"
        )
    if w is not None:
        if w.tool_share is None:
            basis = "observed"
        elif w.basis == "share":
            basis = f"this tool ≈ {w.tool_share:.0%} of it, as configured"
        else:
            basis = f"observed; this tool {w.tool_share:.0%} of it"
        flag = "  OVER THE QUOTA" if w.over_limit else ""
        requests += (
            f"\nAPI calls {r.month} (workspace, {basis}): {w.counted:,} so far, "
            f"{w.projected:,} projected by month end, quota {limit}{flag}"
        )
    kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(r.counts.items()))
    if c is None:
        records = (
            "Records: not counted: QUOTA EXHAUSTED, Airtable refuses every data request "
            "(429 PUBLIC_API_BILLING_LIMIT_EXCEEDED) until the month resets or the plan "
            "is upgraded"
        )
    else:
        tables = ", ".join(f"{name} {n:,}" for name, n in c.by_table.items())
        flag = "  OVER THE CAP" if c.over_limit else ""
        records = (
            f"Records: {c.total:,} of {c.limit:,} ({tables}); +{c.per_day:,.1f}/day over 30 "
            f"days; full {_days(c.days_until_full)}; {c.projected_at_month_end:,} by month "
            f"end{flag}"
        )
    return [
        f"Base {report.base_id}, plan {report.plan.name} "
        f"({report.days_left_in_month:.1f} day(s) left this month)",
        requests,
        *([f"  by kind: {kinds}"] if kinds else []),
        records,
    ]


@app.command("usage")
def usage(
    ctx: typer.Context,
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            metavar="PLAN",
            help="free, team, business or enterprise (default JOBTRACK_AIRTABLE_PLAN, team).",
        ),
    ] = None,
    tool_share: Annotated[
        float | None,
        typer.Option(
            "--tool-share",
            metavar="SHARE",
            help="This tool's share of the workspace's API calls (0.4): the quota is per "
            "workspace, shared with every integration in it; projects the workspace too.",
        ),
    ] = None,
    workspace_calls: Annotated[
        int | None,
        typer.Option(
            "--workspace-calls",
            metavar="N",
            help="The workspace's API calls so far this month, as Airtable's usage page "
            "shows them (instead of --tool-share).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    full: FullOption = False,
) -> None:
    """API calls this month and records in the base, projected to the month's end against the
    plan's quota and record cap.  Exit 1 when a projection crosses a limit (for cron)."""
    from ..admin.ops.quota import PLANS, usage_report, usage_to_json
    from ..errors import ConfigError

    state = state_of(ctx)
    with errors_to_exit(state):
        if plan is not None and plan not in PLANS:
            raise ConfigError(f"unknown plan {plan!r}: use one of {', '.join(PLANS)}")
        with (
            open_base(state, effect="judge usage") as backend,
            whole_table_reads(backend, full=full) as repo,
            Reads("Counting records") as reads,
        ):
            report = usage_report(
                repo,
                state.settings,
                plan=plan,  # type: ignore[arg-type]
                on_page=reads.on_page,
                uncounted=uncounted_note(backend.embedded is not None),
                tool_share=tool_share,
                workspace_calls=workspace_calls,
            )
        if as_json:
            print_json(usage_to_json(report))
        else:
            typer.echo("\n".join(_lines(report)))
        if report.over_limit:
            raise typer.Exit(EXIT_ERROR)
