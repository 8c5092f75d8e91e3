"""Quota and record-cap budgeting: will this month's API calls or the base's records run out?

Airtable's plans (SPEC §2.9) cap two things a tracking base consumes: API calls per workspace
and calendar month (Free 1,000, Team 100,000, Business and above unlimited) and records per
base (Free 1,000, Team 50,000, Business 125,000, Enterprise Scale 500,000).  Every request the
library sends is counted in the limiter's shared store (:func:`~jobtrack_airtable.limiter.
usage_counts`: the SQLite file of one machine, or the fleet's Redis); :func:`usage_report`
reads those counters (no request), counts the base's rows (⌈J/100⌉ + ⌈C/100⌉ requests, reading
only the key field) and projects both to the end of the month at the current rate.

>>> report = usage_report(repo, settings, now=now)                  # doctest: +SKIP
>>> report.requests.projected, report.requests.limit                # doctest: +SKIP
(41230, 100000)
>>> report.over_limit                                               # doctest: +SKIP
False
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from ...errors import (
    ConfigError,
    InvalidInputError,
    LimiterUnavailableError,
    QuotaExhaustedError,
    show,
)
from ...limiter import UsageCounts, usage_counts
from ...limiter.usage import counted_as
from ...settings import Settings
from ...timeutil import parse_airtable, to_airtable, utcnow
from ...transport.repository import Repository

__all__ = [
    "PLANS",
    "PlanLimits",
    "RecordBudget",
    "RequestBudget",
    "UsageReport",
    "WorkspaceBudget",
    "usage_report",
]

Plan = Literal["free", "team", "business", "enterprise"]


@dataclass(frozen=True)
class PlanLimits:
    """What one Airtable plan allows (``None``: no limit)."""

    name: str
    monthly_requests: int | None
    records_per_base: int


#: SPEC §2.9, from Airtable's workspace settings documentation.
PLANS: Final[dict[str, PlanLimits]] = {
    "free": PlanLimits("Free", 1_000, 1_000),
    "team": PlanLimits("Team", 100_000, 50_000),
    "business": PlanLimits("Business", None, 125_000),
    "enterprise": PlanLimits("Enterprise Scale", None, 500_000),
}
#: Growth is measured over the rows created in this window before now.
GROWTH_WINDOW: Final = timedelta(days=30)


@dataclass(frozen=True)
class RequestBudget:
    """This month's API calls: counted so far, projected to the month's end at the rate of
    the month so far, against the plan's quota.  ``counted`` is ``None`` when nothing counts
    them (``note`` says why)."""

    month: str
    counted: int | None
    projected: int | None
    limit: int | None
    counts: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.projected is not None and self.projected > self.limit


@dataclass(frozen=True)
class RecordBudget:
    """The base's rows against the plan's record cap, and when they reach it at the growth of
    the last :data:`GROWTH_WINDOW` (``days_until_full`` is ``None`` when the base does not
    grow).  ``by_table`` counts the tracking tables; other tables of the base are not seen."""

    total: int
    by_table: dict[str, int]
    limit: int
    per_day: float
    days_until_full: float | None
    projected_at_month_end: int

    @property
    def over_limit(self) -> bool:
        return self.projected_at_month_end > self.limit


@dataclass(frozen=True)
class WorkspaceBudget:
    """The workspace's API calls, which the plan's quota is really about: Airtable counts
    every integration in the workspace (Softr, Zapier, scripts), not only this tool.

    ``basis`` says where the figure comes from: ``"share"`` (this tool makes ``tool_share``
    of the workspace's calls, so the workspace is this tool's count divided by it) or
    ``"observed"`` (a total read from Airtable's workspace usage page, ``counted`` as given).
    """

    basis: Literal["share", "observed"]
    counted: int
    projected: int
    limit: int | None
    #: ``None`` when this tool's calls are not counted (an observed total only).
    tool_share: float | None

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.projected > self.limit


@dataclass(frozen=True)
class UsageReport:
    """Requests and records against the plan; ``over_limit`` when either projection crosses
    its limit by the end of the month, or when Airtable already refuses data requests because
    the month's quota is spent (``quota_exhausted``: the rows could not be counted, so
    ``records`` is ``None``; ``usage`` exits 1 then, for cron)."""

    base_id: str
    plan: PlanLimits
    generated_at: str
    days_left_in_month: float
    requests: RequestBudget
    records: RecordBudget | None
    quota_exhausted: bool = False
    workspace: WorkspaceBudget | None = None

    @property
    def over_limit(self) -> bool:
        records_over = self.records is not None and self.records.over_limit
        workspace = self.workspace is not None and self.workspace.over_limit
        return self.quota_exhausted or self.requests.over_limit or records_over or workspace


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(now.year, now.month)[1]
    return start, start + timedelta(days=days)


def _requests(
    settings: Settings, base_id: str, now: datetime, limit: int | None, uncounted: str | None
) -> RequestBudget:
    month = f"{now.year:04d}-{now.month:02d}"
    if uncounted is not None:
        return RequestBudget(month, None, None, limit, note=uncounted)
    try:
        counts: UsageCounts | None = usage_counts(settings, month, base_id=base_id)
        note = None
    except ConfigError as exc:
        counts, note = None, str(exc)
    except LimiterUnavailableError as exc:
        counts, note = None, f"the request counters are unavailable: {exc}"
    if counts is None:
        return RequestBudget(month, None, None, limit, note=note)
    start, end = _month_bounds(now)
    elapsed = max((now - start).total_seconds(), 3600.0)  # an hour in: no wild projection
    projected = math.ceil(counts.total * (end - start).total_seconds() / elapsed)
    return RequestBudget(month, counts.total, projected, limit, dict(counts.counts))


def _records(
    repo: Repository, now: datetime, limit: int, on_page: Callable[[int], None] | None
) -> RecordBudget:
    by_table: dict[str, int] = {}
    recent = 0
    since = now - GROWTH_WINDOW
    with counted_as("admin"):
        for key in ("jobs", "client_runs"):
            spec = repo.schema.table(key)
            records = repo.list_records(key, fields=[spec.key_name], on_page=on_page)
            by_table[spec.name] = len(records)
            recent += sum(1 for r in records if parse_airtable(r["createdTime"]) >= since)
    total = sum(by_table.values())
    per_day = recent / GROWTH_WINDOW.days
    _, end = _month_bounds(now)
    days_left = (end - now).total_seconds() / 86_400
    return RecordBudget(
        total=total,
        by_table=by_table,
        limit=limit,
        per_day=per_day,
        days_until_full=(max(limit - total, 0) / per_day) if per_day > 0 else None,
        projected_at_month_end=math.ceil(total + per_day * days_left),
    )


def _workspace(
    requests: RequestBudget,
    now: datetime,
    *,
    tool_share: float | None,
    workspace_calls: int | None,
) -> WorkspaceBudget | None:
    if tool_share is not None and workspace_calls is not None:
        raise InvalidInputError("give this tool's share of the workspace or its total, not both")
    if tool_share is not None:
        if isinstance(tool_share, bool) or not 0 < tool_share <= 1:
            raise InvalidInputError(f"the tool's share must be in (0, 1], not {show(tool_share)}")
        if requests.counted is None or requests.projected is None:
            return None
        return WorkspaceBudget(
            "share",
            math.ceil(requests.counted / tool_share),
            math.ceil(requests.projected / tool_share),
            requests.limit,
            tool_share,
        )
    if workspace_calls is not None:
        if isinstance(workspace_calls, bool) or workspace_calls < 0:
            raise InvalidInputError(
                f"the workspace's calls must be a count ≥ 0, not {show(workspace_calls)}"
            )
        counted = max(workspace_calls, requests.counted or 0)
        start, end = _month_bounds(now)
        elapsed = max((now - start).total_seconds(), 3600.0)
        projected = math.ceil(counted * (end - start).total_seconds() / elapsed)
        share = None if requests.counted is None else requests.counted / counted if counted else 1.0
        return WorkspaceBudget("observed", counted, projected, requests.limit, share)
    return None


def usage_report(
    repo: Repository,
    settings: Settings,
    *,
    plan: Plan | None = None,
    now: datetime | None = None,
    on_page: Callable[[int], None] | None = None,
    uncounted: str | None = None,
    tool_share: float | None = None,
    workspace_calls: int | None = None,
) -> UsageReport:
    """Requests this month and the base's records, each projected to the end of the month,
    against ``plan`` (default ``settings.airtable_plan``).  Costs ⌈J/100⌉ + ⌈C/100⌉ requests
    (counted under ``admin_reads``).  ``uncounted`` says why a base's requests are not
    counted at all (the CLI's embedded local base), instead of reading the counters.

    The quota is the workspace's: with ``tool_share`` (this tool's share of the workspace's
    calls) or ``workspace_calls`` (the workspace's total so far this month, as Airtable's
    usage page shows it) the report adds the workspace's projection (:class:`WorkspaceBudget`),
    and crossing the quota there counts as over the limit.  Bad values are refused before any
    request."""
    limits = PLANS[plan or settings.airtable_plan]
    now = (now or utcnow()).astimezone(UTC)
    _, end = _month_bounds(now)
    base_id = repo.conn.base_id
    # Validate the workspace inputs before reading anything.
    _workspace(
        RequestBudget("", None, None, None),
        now,
        tool_share=tool_share,
        workspace_calls=workspace_calls,
    )
    # The counters first: the report's own reads below are not part of "so far".
    requests = _requests(settings, base_id, now, limits.monthly_requests, uncounted)
    try:
        records: RecordBudget | None = _records(repo, now, limits.records_per_base, on_page)
    except QuotaExhaustedError:
        # The one thing a report must say then: nothing reaches the base until the month resets.
        records = None
    return UsageReport(
        base_id=base_id,
        plan=limits,
        generated_at=to_airtable(now),
        days_left_in_month=(end - now).total_seconds() / 86_400,
        requests=requests,
        records=records,
        quota_exhausted=records is None,
        workspace=_workspace(requests, now, tool_share=tool_share, workspace_calls=workspace_calls),
    )


def usage_to_json(report: UsageReport) -> dict[str, Any]:
    """The report as JSON (``usage --json``)."""
    r, c = report.requests, report.records
    return {
        "base_id": report.base_id,
        "plan": report.plan.name,
        "generated_at": report.generated_at,
        "days_left_in_month": round(report.days_left_in_month, 2),
        "requests": {
            "month": r.month,
            "counted": r.counted,
            "projected": r.projected,
            "limit": r.limit,
            "by_kind": r.counts,
            "note": r.note,
            "over_limit": r.over_limit,
        },
        "records": None
        if c is None
        else {
            "total": c.total,
            "by_table": c.by_table,
            "limit": c.limit,
            "per_day": round(c.per_day, 2),
            "days_until_full": None if c.days_until_full is None else round(c.days_until_full, 1),
            "projected_at_month_end": c.projected_at_month_end,
            "over_limit": c.over_limit,
        },
        "workspace": _workspace_json(report.workspace),
        "quota_exhausted": report.quota_exhausted,
        "over_limit": report.over_limit,
    }


def _workspace_json(w: WorkspaceBudget | None) -> dict[str, Any] | None:
    if w is None:
        return None
    return {
        "basis": w.basis,
        "counted": w.counted,
        "projected": w.projected,
        "limit": w.limit,
        "this_tool_share": round(w.tool_share, 4) if w.tool_share is not None else None,
        "over_limit": w.over_limit,
    }
