"""Shared harness of the benchmarks and of their fast versions in the test suite.

* :func:`start_server` -- a :class:`~jobtrack_airtable.local.LocalAirtable` with a request log
  big enough to keep every request and a rate limiter that records its penalties;
* :func:`make_tracker` -- a :class:`~jobtrack_airtable.Tracker` for it, built the way a worker
  builds one (``Settings`` → ``Connection.from_settings``);
* :func:`classify_ours` / :func:`spec_budget` -- requests per operation, from the server's
  request log, and the SPEC §4 budget of the same workload;
* :func:`measure_request_cost` -- the request-cost comparison with the naive baseline;
* :func:`compare` -- the base (read from the server's storage, no HTTP) against the workers'
  ground truth: lost or double-counted metrics, duplicate rows, wrong aggregates, stuck runs;
* :func:`run_soak` -- workers × jobs × clients under injected faults, then :func:`compare`.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # examples/ is imported as a package from the repository root
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from examples.lead_scoring_worker import (  # noqa: E402
    COUNT_METRICS,
    ClientPlan,
    JobTruth,
    make_plan,
    run_job,
)
from jobtrack_airtable import (  # noqa: E402
    Connection,
    Settings,
    Status,
    Tracker,
)
from jobtrack_airtable.local import LocalAirtable  # noqa: E402
from jobtrack_airtable.local.ratelimit import RateLimiter  # noqa: E402
from jobtrack_airtable.schema import load_schema  # noqa: E402
from jobtrack_airtable.testing import TrackingServer  # noqa: E402
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY, RetryPolicy  # noqa: E402

from .naive_baseline import NaiveTracker, naive_api, run_naive_job  # noqa: E402

__all__ = [
    "BENCH_BASE_ID",
    "BENCH_TOKEN",
    "PHASES",
    "CostReport",
    "Discrepancies",
    "RecordingRateLimiter",
    "SoakConfig",
    "SoakReport",
    "classify_ours",
    "compare",
    "make_tracker",
    "measure_request_cost",
    "run_soak",
    "spec_budget",
    "start_server",
]

BENCH_TOKEN = "benchmark-token-not-secret"
BENCH_BASE_ID = "appJobtrackBench1"
#: Operations requests are attributed to, in table order.
PHASES: tuple[str, ...] = ("start", "open", "increments", "close", "complete", "other")
PHASE_LABELS = {
    "start": "start a job",
    "open": "open client runs",
    "increments": "metric flushes",
    "close": "close client runs",
    "complete": "complete the job",
    "other": "other",
}
TERMINAL = {s.value for s in Status if s is not Status.RUNNING}


# --------------------------------------------------------------------------- server & tracker


class RecordingRateLimiter(RateLimiter):
    """The local server's rate limiter, also recording every penalty it starts, as
    ``(start, end)`` in ``time.monotonic()`` seconds, so benchmarks can add up the seconds a
    base was locked out."""

    def __init__(self, rate: int | None, *, penalty_seconds: float = 30.0) -> None:
        super().__init__(rate, penalty_seconds=penalty_seconds)
        self.penalties: list[tuple[float, float]] = []
        self._record_lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._record_lock:
            before = self._penalty_until.get(key)
            allowed = super().allow(key)
            after = self._penalty_until.get(key)
            if after is not None and after != before:
                self.penalties.append((after - self.penalty_seconds, after))
            return allowed

    def seconds_in_penalty(self, start: float, end: float) -> float:
        """Seconds of ``[start, end]`` (monotonic) during which the base was locked out."""
        with self._record_lock:
            spans = list(self.penalties)
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


def start_server(
    *,
    rate_limit: int | None = None,
    penalty_seconds: float = 30.0,
    fault_seed: int | None = None,
    log_size: int = 2_000_000,
) -> LocalAirtable:
    """A started local server (caller stops it) keeping every request in its log, with a
    :class:`RecordingRateLimiter` (``srv.rate_limiter``)."""
    srv = TrackingServer(
        token=BENCH_TOKEN,
        base_id=BENCH_BASE_ID,
        rate_limit=rate_limit,
        penalty_seconds=penalty_seconds,
        fault_seed=fault_seed,
        log_size=log_size,
        log_bytes=1 << 34,  # every request kept: the cost analysis reads them all
    )
    recorder = RecordingRateLimiter(rate_limit, penalty_seconds=penalty_seconds)
    srv.rate_limiter = recorder
    srv.app.rate_limiter = recorder
    return srv.start()


_OUTBOXES: tempfile.TemporaryDirectory[str] | None = None


def _outbox_dir() -> str:
    """This process's outboxes (one per server): never the user's own file."""
    global _OUTBOXES
    if _OUTBOXES is None:
        _OUTBOXES = tempfile.TemporaryDirectory(prefix="jobtrack-bench-outbox-")
    return _OUTBOXES.name


def make_tracker(
    url: str,
    *,
    token: str = BENCH_TOKEN,
    base_id: str = BENCH_BASE_ID,
    rate_limit: float = 0.0,
    limiter_url: str | None = None,
    limiter_fallback: str | None = None,
    flush_interval: float | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    timeout: float = 10.0,
) -> Tracker:
    """A tracker built the way a worker builds one.  ``rate_limit=0`` turns the client-side
    limiter off; ``flush_interval=None`` keeps the library default (5 s);
    ``limiter_fallback="fail"`` refuses to fall back to a local limiter when Redis is down."""
    options: dict[str, Any] = {
        "rate_limit": rate_limit,
        "timeout": timeout,
        "outbox_url": f"sqlite:///{_outbox_dir()}/outbox-{urlsplit(url).port}.sqlite",
    }
    if limiter_url is not None:
        options["limiter_url"] = limiter_url
    if limiter_fallback is not None:
        options["limiter_fallback"] = limiter_fallback
    if flush_interval is not None:
        options["flush_interval"] = flush_interval
    settings = Settings(_env_file=None, api_key=token, base_id=base_id, endpoint_url=url, **options)
    return Tracker(Connection.from_settings(settings, policy=policy))


def default_flush_interval() -> float:
    """The library's default flush interval (``JOBTRACK_FLUSH_INTERVAL`` unset)."""
    return float(Settings.model_fields["flush_interval"].default)


# --------------------------------------------------------------------------- request cost


def classify_ours(entries: Iterable[Any]) -> Counter[str]:
    """Requests per operation, from the server's request log entries of a run of the worker.

    Job table: create/read/delete = job start, update = completion.  Client table: a read is
    the completion's aggregation read; an upsert whose records carry ``Status: Running`` opens
    runs, one with a terminal status closes a run, one without a status is a metric flush.
    """
    schema = load_schema()
    jobs, crr = schema.jobs.name, schema.client_runs.name
    status_name = schema.client_runs.name_of("status")
    out: Counter[str] = Counter()
    for e in entries:
        segments = e.decoded_path.rstrip("/").split("/")
        table = segments[-1]
        if len(segments) >= 2 and segments[-2] == jobs and table.startswith("rec"):
            # A job row read or written by record ID: the completion's (or a note's).
            out["complete"] += 1
        elif table == jobs:
            out["complete" if e.method == "PATCH" else "start"] += 1
        elif table == crr and e.method == "GET":
            out["complete"] += 1
        elif table == crr and e.method == "PATCH" and isinstance(e.body, dict):
            statuses = {r.get("fields", {}).get(status_name) for r in e.body.get("records", [])}
            if statuses & TERMINAL:
                out["close"] += 1
            elif Status.RUNNING.value in statuses:
                out["open"] += 1
            else:
                out["increments"] += 1
        else:
            out["other"] += 1
    return out


def spec_budget(
    truth: JobTruth, *, flush_interval: float, batch_open: bool = True
) -> dict[str, int]:
    """SPEC §4 budgets for the job ``truth`` describes.

    * start ≤ 2; open N at once ⌈N/10⌉ (one by one: N); close N, group-committed ⌈N/10⌉
      (issue 11; flush interval 0 writes every close on its own); complete ⌈N/100⌉ + 2;
    * increments: a client run writes its totals at most once per flush interval, so a run
      open for ``d`` seconds may flush ⌊d / interval⌋ times before its close (with interval
      0 every ``add`` or ``set`` is a flush: one request per update).  This is the "+1 per
      flush interval" of the SPEC's "1,000 increments ≤ 3 + 1 per flush interval" (the 3 =
      open, close, margin).
    """
    n = len(truth.clients)
    if flush_interval > 0:
        flushes = sum(math.floor(c.seconds_open / flush_interval) for c in truth.clients)
    else:
        flushes = sum(c.increments + c.sets for c in truth.clients)
    return {
        "start": 2,
        "open": math.ceil(n / 10) if batch_open else n,
        "increments": flushes,
        "close": math.ceil(n / 10) if flush_interval > 0 else n,
        "complete": math.ceil(n / 100) + 2,
        "other": 0,
    }


@dataclass
class CostRun:
    """Requests per operation of one implementation on the workload."""

    name: str
    phases: Counter[str]
    truth: JobTruth
    discrepancies: Discrepancies
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.phases.values())


@dataclass
class CostReport:
    """The request-cost comparison: ours (library defaults), ours flushing every chunk (the
    worst case of the coalescing), the naive baseline, and the SPEC §4 budgets."""

    clients: int
    chunks: int
    increments: int
    flush_interval: float
    ours: CostRun
    ours_eager: CostRun | None
    naive: CostRun
    budget: dict[str, int]
    budget_eager: dict[str, int] | None

    @property
    def ratio(self) -> float:
        return self.naive.total / max(1, self.ours.total)


def _run_ours_cost(
    plans: Sequence[ClientPlan], flush_interval: float, name: str
) -> tuple[CostRun, LocalAirtable]:
    srv = start_server()
    try:
        # A write whose answer timed out is verified by a read once it has settled, which is
        # right but would make the count depend on the machine's load: the cost is measured
        # with a timeout no local answer reaches (the late-write reads have their own tests).
        tracker = make_tracker(srv.url, flush_interval=flush_interval, timeout=120.0)
        started = time.perf_counter()
        truth = run_job(tracker, plans)
        seconds = time.perf_counter() - started
        tracker.close()
        phases = classify_ours(srv.request_log.entries)
        assert sum(phases.values()) == srv.request_log.total, "request log overflowed"
        return CostRun(name, phases, truth, compare(srv, [truth]), seconds), srv
    finally:
        srv.stop()


def _run_naive_cost(plans: Sequence[ClientPlan]) -> CostRun:
    srv = start_server()
    try:
        phases: Counter[str] = Counter()
        state = {"phase": "other", "mark": 0}

        def on_phase(name: str) -> None:
            now = srv.request_log.total
            phases[state["phase"]] += now - int(state["mark"])
            state.update(phase=name, mark=now)

        naive = NaiveTracker(naive_api(BENCH_TOKEN, srv.url), BENCH_BASE_ID, on_phase=on_phase)
        started = time.perf_counter()
        truth = run_naive_job(naive, plans)
        seconds = time.perf_counter() - started
        on_phase("other")
        phases = +phases  # drop zero counts
        return CostRun("naive baseline", phases, truth, compare(srv, [truth]), seconds)
    finally:
        srv.stop()


def measure_request_cost(
    clients: int = 50,
    chunks: int = 20,
    *,
    seed: int = 7,
    flush_interval: float | None = None,
    eager: bool = True,
) -> CostReport:
    """Run the fixed workload (one job, ``clients`` clients of ``chunks`` chunks, then
    completion) through the library and through the naive baseline, each against a fresh
    local server with the rate limit off (counting requests, not timing them).

    ``flush_interval`` defaults to the library default; ``eager`` adds a run flushing on
    every ``add`` (interval 0), the most a run can cost whatever the timing of the chunks.
    """
    interval = default_flush_interval() if flush_interval is None else flush_interval
    plans = make_plan(random.Random(seed), clients, chunks)
    ours, _ = _run_ours_cost(plans, interval, "ours")
    ours_eager = _run_ours_cost(plans, 0.0, "ours, flush every chunk")[0] if eager else None
    naive = _run_naive_cost(plans)
    return CostReport(
        clients=clients,
        chunks=chunks,
        increments=sum(c.increments for c in ours.truth.clients),
        flush_interval=interval,
        ours=ours,
        ours_eager=ours_eager,
        naive=naive,
        budget=spec_budget(ours.truth, flush_interval=interval),
        budget_eager=spec_budget(ours_eager.truth, flush_interval=0.0) if ours_eager else None,
    )


# --------------------------------------------------------------------------- ground truth


@dataclass
class Discrepancies:
    """The base compared with what the workers meant to record.

    * ``lost``: client metric values that did not land exactly once -- a missing row
      (counted once per non-zero metric, at least once), a value short of the truth
      (``short``, a lost write) or above it (``over``, a write applied twice);
    * ``duplicates``: extra rows -- several rows for one Run ID, or rows no worker meant to
      write (``stray``);
    * ``wrong_aggregates``: job fields (aggregates and the job's status) that differ from the
      SPEC's aggregation of the truth, counted per field; a missing job row counts once;
    * ``stuck_running``: rows of either table still ``Running`` after every worker finished;
    * ``wrong_status``: client rows closed with another terminal status than intended.
    """

    short: int = 0
    over: int = 0
    missing_rows: int = 0
    duplicates: int = 0
    stray: int = 0
    wrong_aggregates: int = 0
    stuck_running: int = 0
    wrong_status: int = 0
    tracking_errors: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.short + self.over + self.missing_rows

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates
            or self.wrong_aggregates
            or self.stuck_running
            or self.wrong_status
        )

    def summary(self) -> str:
        """The one-line verdict: ``lost=N duplicates=N wrong_aggregates=N stuck_running=N``."""
        return (
            f"lost={self.lost} duplicates={self.duplicates} "
            f"wrong_aggregates={self.wrong_aggregates} stuck_running={self.stuck_running}"
        )


def _stored_rows(srv: LocalAirtable, table_name: str) -> list[dict[str, Any]]:
    _, records = srv.store.snapshot(None, table_name)
    return [dict(r.fields) for r in records]


def _as_int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def compare(srv: LocalAirtable, truths: Sequence[JobTruth]) -> Discrepancies:
    """Compare the base held by ``srv`` (read from its storage: no HTTP, no rate budget) with
    the ground truth of every job the workers ran."""
    schema = load_schema()
    jobs_spec, crr_spec = schema.jobs, schema.client_runs
    d = Discrepancies(tracking_errors=sum(len(t.all_tracking_errors) for t in truths))
    tables = {
        "jobs": (jobs_spec, _stored_rows(srv, jobs_spec.name)),
        "client_runs": (crr_spec, _stored_rows(srv, crr_spec.name)),
    }
    by_key: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, (spec, rows) in tables.items():
        groups: dict[str, list[dict[str, Any]]] = {}
        status_name = spec.name_of("status")
        for fields in rows:
            groups.setdefault(str(fields.get(spec.key_name, "")), []).append(fields)
            if fields.get(status_name) == Status.RUNNING.value:
                d.stuck_running += 1
                d.details.append(f"{spec.name}: {fields.get(spec.key_name)} left Running")
        by_key[key] = groups
        for run_id, group in groups.items():
            if len(group) > 1:
                d.duplicates += len(group) - 1
                d.details.append(f"{spec.name}: {len(group)} rows for {run_id}")

    expected_jobs = {t.run_id for t in truths if t.run_id}
    expected_clients = {c.run_id for t in truths if t.run_id for c in t.clients}
    for key, expected in (("jobs", expected_jobs), ("client_runs", expected_clients)):
        spec = tables[key][0]
        for run_id, group in by_key[key].items():
            if run_id not in expected:
                d.stray += len(group)
                d.duplicates += len(group)
                d.details.append(f"{spec.name}: stray row {run_id!r} (no worker wrote it)")

    costs_name = crr_spec.name_of("apify_costs")
    for truth in truths:
        if not truth.run_id:
            continue
        for ct in truth.clients:
            group = by_key["client_runs"].get(ct.run_id)
            if not group:
                d.missing_rows += max(1, sum(1 for v in ct.totals.values() if v))
                d.details.append(f"missing client row {ct.run_id}")
                continue
            fields = group[0]
            for metric in COUNT_METRICS:
                stored = _as_int(fields.get(crr_spec.name_of(metric)))
                wanted = ct.totals.get(metric, 0)
                if stored < wanted:
                    d.short += 1
                    d.details.append(f"{ct.run_id}: {metric} {stored} < {wanted} (lost)")
                elif stored > wanted:
                    d.over += 1
                    d.details.append(f"{ct.run_id}: {metric} {stored} > {wanted} (doubled)")
            stored_cost = fields.get(costs_name)
            wanted_cost = ct.apify_costs
            if (Decimal(str(stored_cost)) if stored_cost is not None else None) != (
                wanted_cost.quantize(Decimal("0.01")) if wanted_cost is not None else None
            ):
                d.short += 1
                d.details.append(f"{ct.run_id}: apify costs {stored_cost} != {wanted_cost}")
            status = fields.get(crr_spec.name_of("status"))
            if status != Status.RUNNING.value and status != ct.status.value:
                d.wrong_status += 1
                d.details.append(f"{ct.run_id}: status {status} (meant {ct.status.value})")
        group = by_key["jobs"].get(truth.run_id)
        if not group:
            d.wrong_aggregates += 1
            d.details.append(f"missing job row {truth.run_id}")
            continue
        fields = group[0]
        expected = {k: v for k, v in truth.aggregates().items() if k in jobs_spec.fields}
        for key, wanted in expected.items():
            stored = fields.get(jobs_spec.name_of(key))
            if stored != wanted:
                d.wrong_aggregates += 1
                d.details.append(f"job {truth.run_id}: {key} {stored} != {wanted}")
        status = fields.get(jobs_spec.name_of("status"))
        if status != Status.RUNNING.value and status != truth.status.value:
            d.wrong_aggregates += 1
            d.details.append(f"job {truth.run_id}: status {status} (meant {truth.status.value})")
    return d


# --------------------------------------------------------------------------- soak


@dataclass(frozen=True)
class SoakConfig:
    """A soak: ``workers`` × ``jobs`` × ``clients`` (× ``chunks``) under random faults.

    Fault probabilities apply to every request: ``p429`` (rate limited), ``p5xx`` (split
    evenly over 500, 502 and 503), ``p_drop`` (connection closed before the request is
    processed), ``p_lost`` (request applied, response lost).  Injected 429s carry no server
    penalty; the retry policy is ``DEFAULT_POLICY.scaled(penalty_scale)``, so it waits
    ``30 s × penalty_scale`` (plus jitter) after each one instead of 30 s, with the library's
    default number of attempts unless ``max_attempts`` is given.
    """

    workers: int = 4
    jobs: int = 3
    clients: int = 20
    chunks: int = 10
    p429: float = 0.10
    p5xx: float = 0.05
    p_drop: float = 0.03
    p_lost: float = 0.03
    penalty_scale: float = 0.01
    flush_interval: float = 0.0
    seed: int = 1
    processes: bool = True
    #: Attempts per request; ``None`` = the library default (6).
    max_attempts: int | None = None

    @property
    def policy(self) -> RetryPolicy:
        policy = DEFAULT_POLICY.scaled(self.penalty_scale)
        if self.max_attempts is not None:
            policy = replace(policy, max_attempts=self.max_attempts)
        return policy


@dataclass
class SoakReport:
    config: SoakConfig
    truths: list[JobTruth]
    discrepancies: Discrepancies
    requests: int
    faults: dict[str, int]
    seconds: float
    worker_crashes: list[str]

    @property
    def increments(self) -> int:
        return sum(c.increments for t in self.truths for c in t.clients)


def soak_worker(url: str, worker: int, config: SoakConfig) -> list[JobTruth]:
    """One soak worker (thread or process): ``config.jobs`` jobs, one after the other, of the
    example worker, with stream number ``worker + 1`` and its own client IDs."""
    tracker = make_tracker(url, flush_interval=config.flush_interval, policy=config.policy)
    truths = []
    try:
        for j in range(config.jobs):
            rng = random.Random(config.seed * 1_000_003 + worker * 1009 + j)
            plans = make_plan(rng, config.clients, config.chunks, prefix=f"W{worker}J{j}-")
            truths.append(run_job(tracker, plans, stream=worker + 1))
    finally:
        tracker.close()
    return truths


def _child_logging(level: int) -> None:
    """Worker processes log at the parent's level (spawned children start unconfigured)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_soak(config: SoakConfig) -> SoakReport:
    """Start a server with the configured faults, run the workers, compare with the truth."""
    srv = start_server(fault_seed=config.seed)
    faults = srv.faults
    faults.add("429", probability=config.p429)
    for kind in ("500", "502", "503"):
        faults.add(kind, probability=config.p5xx / 3, retry_after=30.0 * config.penalty_scale)
    faults.add("drop", probability=config.p_drop)
    faults.add("lost_response", probability=config.p_lost)
    truths: list[JobTruth] = []
    crashes: list[str] = []
    started = time.perf_counter()
    try:
        if config.processes:
            ctx = multiprocessing.get_context("spawn")
            level = logging.getLogger().level
            with ctx.Pool(config.workers, initializer=_child_logging, initargs=(level,)) as pool:
                results = [
                    pool.apply_async(soak_worker, (srv.url, w, config))
                    for w in range(config.workers)
                ]
                for r in results:
                    try:
                        truths.extend(r.get())
                    except Exception as exc:
                        crashes.append(f"{type(exc).__name__}: {exc}")
        else:
            with ThreadPoolExecutor(config.workers) as pool:
                futures = [
                    pool.submit(soak_worker, srv.url, w, config) for w in range(config.workers)
                ]
                for f in futures:
                    try:
                        truths.extend(f.result())
                    except Exception as exc:
                        crashes.append(f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        return SoakReport(
            config=config,
            truths=truths,
            discrepancies=compare(srv, truths),
            requests=srv.request_log.total,
            faults=faults.counts,
            seconds=seconds,
            worker_crashes=crashes,
        )
    finally:
        srv.stop()


def with_overrides(config: SoakConfig, **changes: Any) -> SoakConfig:
    """``config`` with ``changes`` applied (``None`` values ignored)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


def phase_rows(
    budget: dict[str, int], *runs: Counter[str] | None
) -> list[tuple[str, str, list[int | None], int]]:
    """Rows ``(phase, label, [requests per run], budget)`` for the phases any run used."""
    rows = []
    for phase in PHASES:
        counts = [(r.get(phase, 0) if r is not None else None) for r in runs]
        if phase == "other" and not any(counts):
            continue
        rows.append((phase, PHASE_LABELS[phase], counts, budget.get(phase, 0)))
    return rows


def make_console() -> Console:
    """A rich console, 120 columns wide when the output is not a terminal (files, CI)."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def setup_logging(verbose: bool) -> None:
    """Warnings of the library and the worker (retries, scoring failures) only with
    ``--verbose``: a soak retries thousands of times by design."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fmt(n: float | None, digits: int = 0) -> str:
    """A number for a table cell (``—`` for none)."""
    if n is None:
        return "—"
    return f"{n:,.{digits}f}"
