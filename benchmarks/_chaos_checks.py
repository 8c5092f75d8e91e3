"""The checks of ``benchmarks/chaos.py``: outcomes and the summary line, the base read
from the local server's storage (no HTTP), its invariants, and ``sync`` convergence.

Invariants of a converged base (:func:`check_invariants`): one row per Run ID in both
tables; no row ``Running``; every terminal job's aggregates equal to what its client rows add
up to (recomputed here, independently of the library's ``aggregate``); no client rows whose
job row is missing.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from benchmarks._chaos_procs import Target
from examples.lead_scoring_worker import COUNT_METRICS, JOB_SUM_METRICS
from jobtrack_airtable import Status
from jobtrack_airtable.admin.sync import apply_plan, plan_sync
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.schema import load_schema

log = logging.getLogger("chaos")

#: The summary line's counters, in order (``429s`` is ``rate_limited``).
COUNTERS = ("lost", "duplicates", "stuck_running", "wrong_aggregates", "rate_limited")
SUMMARY_RE = re.compile(
    r"^scenarios=(?P<scenarios>\d+) held=(?P<held>\d+) broke=(?P<broke>\d+) "
    r"lost=(?P<lost>\d+) duplicates=(?P<duplicates>\d+) stuck_running=(?P<stuck_running>\d+) "
    r"wrong_aggregates=(?P<wrong_aggregates>\d+) 429s=(?P<rate_limited>\d+)$"
)


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What one scenario measured.  It *held* when it ran to the end and every counter --
    the five of the summary line and every scenario-specific one in ``breaks`` -- is 0."""

    number: int
    name: str
    lost: int = 0
    duplicates: int = 0
    stuck_running: int = 0
    wrong_aggregates: int = 0
    rate_limited: int = 0
    #: Scenario-specific breaks (422s, erased notes lines, live runs marked stale, …).
    breaks: Counter[str] = field(default_factory=Counter)
    #: Figures that do not judge (jobs run, requests, seconds in penalty…).
    info: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def held(self) -> bool:
        return (
            self.error is None
            and not any(getattr(self, c) for c in COUNTERS)
            and not any(self.breaks.values())
        )

    def add(self, **counts: int) -> None:
        for name, n in counts.items():
            if name in COUNTERS:
                setattr(self, name, getattr(self, name) + n)
            else:
                self.breaks[name] += n

    def line(self) -> str:
        verdict = "HELD" if self.held else ("ERROR" if self.error else "BROKE")
        parts = [f"{c if c != 'rate_limited' else '429s'}={getattr(self, c)}" for c in COUNTERS]
        parts += [f"{k}={v}" for k, v in sorted(self.breaks.items())]
        info = " ".join(f"{k}={v}" for k, v in self.info.items())
        return (
            f"scenario {self.number} {self.name}: {verdict} {' '.join(parts)}"
            f"{' | ' + info if info else ''} ({self.seconds:.1f} s)"
        )


def summary_line(outcomes: Sequence[Outcome]) -> str:
    held = sum(o.held for o in outcomes)
    totals = {c: sum(getattr(o, c) for o in outcomes) for c in COUNTERS}
    return (
        f"scenarios={len(outcomes)} held={held} broke={len(outcomes) - held} "
        f"lost={totals['lost']} duplicates={totals['duplicates']} "
        f"stuck_running={totals['stuck_running']} "
        f"wrong_aggregates={totals['wrong_aggregates']} 429s={totals['rate_limited']}"
    )


def parse_summary(text: str) -> dict[str, int]:
    """The counters of the summary line (the last line of ``text`` that is one).

    >>> parse_summary("x\\nscenarios=2 held=1 broke=1 lost=0 duplicates=3 stuck_running=0 "
    ...               "wrong_aggregates=0 429s=0\\n")["duplicates"]
    3
    """
    for line in reversed(text.strip().splitlines()):
        if m := SUMMARY_RE.match(line.strip()):
            return {k: int(v) for k, v in m.groupdict().items()}
    raise ValueError("no summary line found")


# --------------------------------------------------------------------------- the base


SCHEMA = load_schema()
JOBS, CRR = SCHEMA.jobs, SCHEMA.client_runs
TERMINAL = {s.value for s in Status if s is not Status.RUNNING}


def rows(srv: LocalAirtable, table: str) -> list[dict[str, Any]]:
    """The stored rows of ``table`` (``"jobs"``/``"client_runs"``), oldest first, as
    ``{"id", "created", "fields"}``: read from storage, no HTTP."""
    spec = SCHEMA.table(table)
    _, records = srv.store.snapshot(None, spec.name)
    return [{"id": r.id, "created": r.created, "fields": dict(r.fields)} for r in records]


def by_key(srv: LocalAirtable, table: str) -> dict[str, list[dict[str, Any]]]:
    spec = SCHEMA.table(table)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows(srv, table):
        out.setdefault(str(r["fields"].get(spec.key_name, "")), []).append(r)
    return out


def field_of(row: dict[str, Any] | None, table: str, key: str) -> Any:
    if row is None:
        return None
    return row["fields"].get(SCHEMA.table(table).name_of(key))


def count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def duplicates(srv: LocalAirtable) -> int:
    """Rows beyond the first of every Run ID, both tables."""
    return sum(
        len(group) - 1 for table in ("jobs", "client_runs") for group in by_key(srv, table).values()
    )


@dataclass
class Invariants:
    """The base's invariants after ``sync`` converged it."""

    duplicates: int = 0
    stuck_running: int = 0
    wrong_aggregates: int = 0
    details: list[str] = field(default_factory=list)


def aggregate_fields() -> list[str]:
    keys = ["clients_processed", "clients_with_errors", *JOB_SUM_METRICS]
    return [k for k in keys if JOBS.has(k)]


def check_invariants(srv: LocalAirtable) -> Invariants:
    """One row per Run ID; no row ``Running``; every terminal job's aggregates recomputed
    here from its client rows (sums, count, count of ``Failed``); no client rows whose job
    row is missing (each such job counts once in ``wrong_aggregates``)."""
    inv = Invariants()
    jobs, crr = by_key(srv, "jobs"), by_key(srv, "client_runs")
    for table, groups in (("jobs", jobs), ("client_runs", crr)):
        for key, group in groups.items():
            if len(group) > 1:
                inv.duplicates += len(group) - 1
                inv.details.append(f"{table}: {len(group)} rows for {key}")
            for r in group:
                if field_of(r, table, "status") == Status.RUNNING.value:
                    inv.stuck_running += 1
                    inv.details.append(f"{table}: {key} still Running")
    children: dict[str, list[dict[str, Any]]] = {}
    for key, group in crr.items():
        children.setdefault(key[:13], []).append(group[0])
    for base in children:
        if base not in jobs:
            inv.wrong_aggregates += 1
            inv.details.append(f"client rows of {base} have no job row")
    for key, group in jobs.items():
        job = group[0]
        if field_of(job, "jobs", "status") not in TERMINAL:
            continue
        kids = children.get(key, [])
        want = {
            "clients_processed": len(kids),
            "clients_with_errors": sum(
                field_of(k, "client_runs", "status") == Status.FAILED.value for k in kids
            ),
        }
        for metric in JOB_SUM_METRICS:
            want[metric] = sum(count(field_of(k, "client_runs", metric)) for k in kids)
        for agg in aggregate_fields():
            got = count(field_of(job, "jobs", agg))
            if got != want[agg]:
                inv.wrong_aggregates += 1
                inv.details.append(f"job {key}: {agg} {got} != {want[agg]} (from client rows)")
    return inv


@dataclass
class Convergence:
    applied: int = 0
    second_pass: int = 0
    error: str | None = None


def plan_changes(plan: Any) -> int:
    s = plan.summary
    return int(s.create + s.update + s.delete)


def converge(target: Target, *, stale_after: float = 1.0, attempts: int = 3) -> Convergence:
    """``sync``: plan and apply once (again if the plan went stale under a concurrent
    write), then plan a second time to see whether one pass was enough."""
    repo = target.repository()
    result = Convergence()
    try:
        for attempt in range(attempts):
            plan = plan_sync(repo, stale_after=timedelta(seconds=stale_after))
            try:
                result.applied += apply_plan(repo, plan).total
                break
            except Exception as exc:  # StalePlanError: someone wrote in between
                if attempt == attempts - 1:
                    raise
                log.info("apply refused (%s); planning again", type(exc).__name__)
        second = plan_sync(repo, stale_after=timedelta(seconds=stale_after))
        result.second_pass = plan_changes(second)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        repo.conn.close()
    return result


def settle(out: Outcome, srv: LocalAirtable, target: Target, *, judge_second_pass: bool) -> None:
    """Converge with ``sync`` and add the base's invariant violations to ``out``.  Every
    worker is done or dead by now: after the 1 s threshold + 1 s (the worker's stamp and
    sync's clock are each the server's clock to within ±0.5 s: ``Date`` has whole seconds)
    + 0.2 s, anything still ``Running`` is stale."""
    time.sleep(2.2)
    conv = converge(target)
    inv = check_invariants(srv)
    out.info["sync_applied"] = out.info.get("sync_applied", 0) + conv.applied
    seen = out.info.get("after_sync", "dup=0/running=0/aggs=0")
    prior = [int(part.split("=")[1]) for part in seen.split("/")]
    now = [inv.duplicates + prior[0], inv.stuck_running + prior[1], inv.wrong_aggregates + prior[2]]
    out.info["after_sync"] = "dup={}/running={}/aggs={}".format(*now)
    out.add(
        duplicates=inv.duplicates,
        stuck_running=inv.stuck_running,
        wrong_aggregates=inv.wrong_aggregates,
    )
    out.details += [f"after sync: {d}" for d in inv.details]
    if conv.error:
        out.add(sync_errors=1)
        out.details.append(f"sync failed: {conv.error}")
    if judge_second_pass:
        out.add(second_pass=conv.second_pass)
    else:
        out.info["second_pass"] = out.info.get("second_pass", 0) + conv.second_pass


#: How a plan names the Status field: its Airtable names, or the logical key (plans name
#: fields either way, depending on the version of ``sync``).
STATUS_FIELD_NAMES = frozenset({"status", JOBS.name_of("status"), CRR.name_of("status")})


def proposed_failed(plan: Any) -> set[str]:
    """Run IDs of the rows the plan moves to ``Failed`` (both tables)."""
    out = set()
    for change in plan.records:
        for fc in change.changes:
            if fc.field in STATUS_FIELD_NAMES and fc.new == Status.FAILED.value:
                out.add(str(change.key))
    return out


# --------------------------------------------------------------------------- worker logs


@dataclass
class LoggedRun:
    """One client run as its worker's log tells it: when it was opened, the running totals
    after every ``add`` (``(time.time(), totals)``), and when and with what it was closed."""

    opened: float
    adds: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    closed: dict[str, int] | None = None
    closed_at: float | None = None


def read_worker_log(events: Iterable[dict[str, Any]]) -> dict[str, LoggedRun]:
    """Client runs by Run ID from a worker's events (``open``, ``add``, ``close``)."""
    runs: dict[str, LoggedRun] = {}
    for e in events:
        if e["kind"] == "open":
            runs[e["crr"]] = LoggedRun(e["t"])
        elif e["kind"] == "add":
            runs[e["crr"]].adds.append((e["t"], e["totals"]))
        elif e["kind"] == "close":
            runs[e["crr"]].closed = e["totals"]
            runs[e["crr"]].closed_at = e["t"]
    return runs


def check_logged_run(
    key: str,
    run: LoggedRun,
    row: dict[str, Any] | None,
    killed_at: float | None,
    *,
    interval: float,
    slack: float,
) -> tuple[list[str], bool]:
    """What is wrong with client run ``key``'s stored ``row`` given its worker's log, and
    whether a lower bound from a kill applied.

    A run of a worker that ran to the end must hold exactly its closing totals.  In a worker
    SIGKILLed at ``killed_at`` (``time.time()``), a run owes only what was due to be written
    ``interval + slack`` seconds before the kill (a tracker may hold writes for one flush
    interval; ``slack`` covers request latency): its closing totals if it closed by then,
    else the totals logged by then, and its row if it was opened by then.  No run may hold
    more than its last logged totals (that is a doubled write).  A missing row that was due
    is one problem per non-zero metric (at least one).

    >>> run = LoggedRun(0.0, [(1.0, {"profiles_examined": 3}), (9.0, {"profiles_examined": 5})])
    >>> row = {"fields": {"Profiles Examined for Scoring": 0}}
    >>> check_logged_run("r", run, row, 10.0, interval=0.5, slack=2.0)
    (['r: profiles_examined 0 < 3 (lost beyond the flush interval)'], True)
    """
    bounded = False
    if killed_at is None:
        if run.closed is None:
            return [f"{key}: left open by a worker that was not killed"], False
        lower = upper = run.closed
        row_due = True
    else:
        cutoff = killed_at - interval - slack
        upper = run.closed if run.closed is not None else (run.adds[-1][1] if run.adds else {})
        if run.closed is not None and run.closed_at is not None and run.closed_at <= cutoff:
            lower = run.closed
        else:
            settled = [totals for t, totals in run.adds if t <= cutoff]
            lower = settled[-1] if settled else {}
        bounded = bool(lower)
        row_due = run.opened <= cutoff
    if row is None:
        if not row_due:
            return [], bounded
        missing = max(1, sum(1 for v in upper.values() if v))
        return [f"{key}: row missing"] * missing, bounded
    problems = []
    for metric in COUNT_METRICS:
        got = count(field_of(row, "client_runs", metric))
        if got < lower.get(metric, 0):
            problems.append(
                f"{key}: {metric} {got} < {lower.get(metric, 0)} (lost beyond the flush interval)"
            )
        elif got > upper.get(metric, 0):
            problems.append(f"{key}: {metric} {got} > {upper.get(metric, 0)} (counted twice)")
    return problems, bounded
