"""A lead-scoring worker recording its job in Airtable through jobtrack-airtable.

This is the shape of a real batch job of the lead-scoring service: one job over several
clients (tenants); for each client the worker scores the client's leads chunk by chunk and
records, per chunk, how many profiles it examined and scored and how many AI tokens it used.
Some clients have no leads at all; for some, scoring fails part-way (an AI or scraping API
error).  The library makes sure every run ends with the right status and that the job row
carries the aggregates of its client rows.

Run it with one command::

    python examples/lead_scoring_worker.py            # --help for the options

With ``AIRTABLE_API_KEY`` / ``AIRTABLE_BASE_ID`` (or ``JOBTRACK_ENDPOINT_URL``) set, in the
environment or a ``.env`` file, it records into that base.  Otherwise it starts a local
Airtable-compatible server in-process, with Airtable's real rate limit (5 requests/s per
base, 30 s penalty) and the library's client-side limiter on, records into it, and prints
what the base holds afterwards.

The worker is importable, so the benchmarks and the soak test drive this same code::

    from examples.lead_scoring_worker import make_plan, run_job

    plans = make_plan(random.Random(7), clients=50, chunks=20)
    truth = run_job(tracker, plans)      # what the worker meant to record, per client

Everything is deterministic given the seed: the plan (which clients have leads, which fail and
where, every chunk's numbers) is a pure function of the ``random.Random`` passed in.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from jobtrack_airtable import ClientRun, Connection, Settings, Status, Tracker
from jobtrack_airtable.errors import AirtableError

__all__ = [
    "COUNT_METRICS",
    "JOB_SUM_METRICS",
    "ClientPlan",
    "ClientTruth",
    "JobTruth",
    "ScoringError",
    "expected_job_status",
    "main",
    "make_plan",
    "run_job",
    "score_chunk",
]

log = logging.getLogger("lead_scoring_worker")

#: The count metrics a chunk of scoring produces (logical metric names of the library).
COUNT_METRICS: tuple[str, ...] = (
    "profiles_examined",
    "profiles_scored",
    "profile_tokens",
    "profiles_submitted",
    "posts_harvested",
    "posts_examined",
    "posts_scored",
    "post_tokens",
)
#: The client metrics the job row sums (SPEC §1.4).
JOB_SUM_METRICS: tuple[str, ...] = (
    "profiles_examined",
    "profiles_scored",
    "posts_harvested",
    "posts_examined",
    "posts_scored",
    "profile_tokens",
    "post_tokens",
)

_FIRST = ("Guy", "Ana", "Carl", "Dee", "Ola", "Ravi", "Mei", "Tom", "Ines", "Kofi", "Lena")
_LAST = ("Wilson", "Jones", "Okafor", "Silva", "Berg", "Patel", "Chen", "Moreau", "Kim")


class ScoringError(RuntimeError):
    """What scoring raises when a client's leads cannot be scored (AI or scraping API down)."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ClientPlan:
    """What the worker will do for one client: its chunks of leads, and whether (and before
    which chunk) scoring fails."""

    client_id: str
    name: str
    #: One mapping of metric increments per chunk; empty = the client has no leads.
    chunks: tuple[dict[str, int], ...]
    #: Scoring raises :class:`ScoringError` before this chunk index (``None`` = never).
    fail_before: int | None = None
    #: Apify costs and run ID, set once at the end of a successful client run.
    apify_costs: Decimal | None = None
    apify_run_id: str | None = None

    @property
    def has_leads(self) -> bool:
        return bool(self.chunks)


def _chunk(rng: random.Random) -> dict[str, int]:
    examined = rng.randint(5, 40)
    scored = rng.randint(examined * 7 // 10, examined)
    submitted = rng.randint(0, scored)
    harvested = rng.randint(submitted, submitted * 4)
    posts_scored = rng.randint(harvested * 8 // 10, harvested)
    return {
        "profiles_examined": examined,
        "profiles_scored": scored,
        "profile_tokens": scored * rng.randint(350, 900),
        "profiles_submitted": submitted,
        "posts_harvested": harvested,
        "posts_examined": harvested,
        "posts_scored": posts_scored,
        "post_tokens": posts_scored * rng.randint(120, 400),
    }


def make_plan(
    rng: random.Random,
    clients: int,
    chunks: int,
    *,
    no_leads_share: float = 0.1,
    failing_share: float = 0.1,
    prefix: str = "",
) -> list[ClientPlan]:
    """A deterministic plan for ``clients`` clients of ``chunks`` chunks each.

    About ``no_leads_share`` of the clients have no leads and about ``failing_share`` fail
    before a random chunk (at least one of each when there are 5+ clients and the share is
    non-zero).  Client IDs look like ``Guy-Wilson-007`` (hyphens are normal in client IDs);
    ``prefix`` keeps the IDs of several workers apart.

    >>> plans = make_plan(random.Random(1), clients=10, chunks=3)
    >>> len(plans), sum(not p.has_leads for p in plans), sum(p.fail_before is not None
    ...                                                      for p in plans)
    (10, 1, 1)
    """
    if clients < 0 or chunks < 0:
        raise ValueError("clients and chunks must be >= 0")
    indices = list(range(clients))

    def share(fraction: float) -> int:
        if fraction <= 0 or clients == 0:
            return 0
        return max(1 if clients >= 5 else 0, round(clients * fraction))

    special = rng.sample(indices, min(clients, share(no_leads_share) + share(failing_share)))
    no_leads = set(special[: share(no_leads_share)])
    failing = set(special[share(no_leads_share) :])
    plans = []
    for i in indices:
        client_id = f"{prefix}{_FIRST[i % len(_FIRST)]}-{_LAST[(i * 5) % len(_LAST)]}-{i:03d}"
        name = client_id.rsplit("-", 1)[0].replace("-", " ")
        if i in no_leads:
            plans.append(ClientPlan(client_id, name, ()))
            continue
        client_chunks = tuple(_chunk(rng) for _ in range(chunks))
        fail_before = rng.randrange(chunks) if i in failing and chunks else None
        costs = Decimal(rng.randint(5, 900)) / 100
        plans.append(
            ClientPlan(
                client_id,
                name,
                client_chunks,
                fail_before=fail_before,
                apify_costs=costs if fail_before is None else None,
                apify_run_id=f"apify{rng.getrandbits(40):012x}" if fail_before is None else None,
            )
        )
    return plans


# --------------------------------------------------------------------------- ground truth


@dataclass
class ClientTruth:
    """What the worker meant to record for one client, and what happened to the tracking."""

    client_id: str
    run_id: str
    status: Status
    totals: dict[str, int]
    apify_costs: Decimal | None = None
    #: ``run.add`` calls made (each one a metric increment) and ``run.set`` calls made.
    increments: int = 0
    sets: int = 0
    #: ``time.monotonic()`` when the run was opened and when it was closed.
    opened_at: float = 0.0
    closed_at: float = 0.0
    #: Tracking errors that reached the worker (the library gave up retrying).
    tracking_errors: list[str] = field(default_factory=list)

    @property
    def seconds_open(self) -> float:
        return max(0.0, self.closed_at - self.opened_at)


@dataclass
class JobTruth:
    """What the worker meant to record for one job."""

    run_id: str | None
    stream: int
    clients: list[ClientTruth] = field(default_factory=list)
    tracking_errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return expected_job_status(c.status for c in self.clients)

    def aggregates(self) -> dict[str, int]:
        """The job row's aggregate fields as the SPEC defines them (logical keys)."""
        out = {
            "clients_processed": len(self.clients),
            "clients_with_errors": sum(c.status is Status.FAILED for c in self.clients),
        }
        for key in JOB_SUM_METRICS:
            out[key] = sum(c.totals.get(key, 0) for c in self.clients)
        return out

    @property
    def all_tracking_errors(self) -> list[str]:
        return [*self.tracking_errors, *(e for c in self.clients for e in c.tracking_errors)]


def expected_job_status(statuses: Iterator[Status] | Sequence[Status]) -> Status:
    """The job status SPEC §1.4 prescribes, from the client statuses: any ``Failed`` and
    none ``Completed`` → ``Failed``; nothing processed → ``No Leads To Score``; else
    ``Completed``."""
    seen = list(statuses)
    if Status.FAILED in seen and Status.COMPLETED not in seen:
        return Status.FAILED
    if Status.COMPLETED not in seen:
        return Status.NO_LEADS
    return Status.COMPLETED


# --------------------------------------------------------------------------- the worker


def score_chunk(plan: ClientPlan, index: int, *, chunk_seconds: float = 0.0) -> dict[str, int]:
    """Score one chunk of a client's leads; returns the chunk's metric increments.

    Stands in for the real work (scraping, AI scoring): sleeps ``chunk_seconds`` and raises
    :class:`ScoringError` where the plan says scoring fails.
    """
    if plan.fail_before is not None and index == plan.fail_before:
        raise ScoringError(f"AI scoring API failed for {plan.client_id} at chunk {index}")
    if chunk_seconds > 0:
        time.sleep(chunk_seconds)
    return plan.chunks[index]


def _intended_status(plan: ClientPlan) -> Status:
    """The status the plan leads to: ``Failed`` if scoring fails, ``No Leads To Score`` when
    there is nothing to score, else ``Completed``."""
    if plan.fail_before is not None:
        return Status.FAILED
    return Status.COMPLETED if plan.has_leads else Status.NO_LEADS


def _score_client(
    run: ClientRun, plan: ClientPlan, truth: ClientTruth, chunk_seconds: float
) -> None:
    """The body of one client run: score chunk by chunk, recording increments."""
    with run:
        for index in range(len(plan.chunks)):
            increments = score_chunk(plan, index, chunk_seconds=chunk_seconds)
            # Ground truth first: the worker did this work whatever happens to the write.
            for key, value in increments.items():
                truth.totals[key] = truth.totals.get(key, 0) + value
            truth.increments += 1
            run.add(**increments)
        if plan.apify_costs is not None:
            truth.apify_costs = plan.apify_costs
            run.set(apify_costs=plan.apify_costs, apify_run_id=plan.apify_run_id)
            truth.sets += 1


def run_job(
    tracker: Tracker,
    plans: Sequence[ClientPlan],
    *,
    stream: int = 1,
    chunk_seconds: float = 0.0,
    batch_open: bool = True,
) -> JobTruth:
    """Run one lead-scoring job over ``plans`` and record it through ``tracker``.

    The job row is started (and, on leaving, completed with aggregates); client runs are
    opened all at once (``batch_open``: ⌈N/10⌉ requests) or one by one; each client is scored
    chunk by chunk with ``run.add(...)`` per chunk; a client whose scoring raises is closed
    ``Failed`` by the library and the worker carries on with the next client.

    Returns the ground truth: what the worker meant to record.  Tracking errors that reach
    the worker (the library gave up after its retries) are logged and listed in the truth,
    never raised: a tracking outage must not stop scoring.
    """
    truth = JobTruth(run_id=None, stream=stream)
    try:
        with tracker.job(stream=stream, note=f"lead scoring, {len(plans)} clients") as job:
            truth.run_id = str(job.run_id)
            runs: list[ClientRun | None]
            if batch_open:
                opened_at = time.monotonic()
                runs = list(job.open_clients([(p.client_id, p.name) for p in plans]))
            else:
                runs = [None] * len(plans)
            for plan, maybe_run in zip(plans, runs, strict=True):
                ct = ClientTruth(
                    plan.client_id,
                    f"{job.run_id}-{plan.client_id}",
                    _intended_status(plan),
                    {},
                    opened_at=opened_at if batch_open else time.monotonic(),
                )
                truth.clients.append(ct)
                try:
                    run = (
                        maybe_run
                        if maybe_run is not None
                        else job.client(plan.client_id, name=plan.name)
                    )
                    _score_client(run, plan, ct, chunk_seconds)
                except ScoringError as exc:
                    log.warning("client %s failed: %s", plan.client_id, exc)
                except AirtableError as exc:
                    ct.tracking_errors.append(f"{type(exc).__name__}: {exc}")
                    log.error("tracking failed for client %s: %s", plan.client_id, exc)
                ct.closed_at = time.monotonic()
    except AirtableError as exc:
        truth.tracking_errors.append(f"{type(exc).__name__}: {exc}")
        log.error("tracking failed for job %s: %s", truth.run_id, exc)
    return truth


# --------------------------------------------------------------------------- the command


@contextlib.contextmanager
def _tracker_from_environment(flush_interval: float | None) -> Iterator[tuple[Tracker, str]]:
    """A tracker for the configured base, or for a local server started here."""
    settings = Settings()
    if settings.api_key is not None or settings.base_id is not None or settings.endpoint_url:
        # Configured (environment or .env): record there.  A half-configured environment
        # raises ConfigError naming what is missing rather than silently going local.
        conn = Connection.from_settings(settings)
        # Leaving the block writes what is pending and closes the connection.
        with Tracker(conn, flush_interval=flush_interval) as tracker:
            yield tracker, f"base {conn.base_id}"
        return
    from jobtrack_airtable.testing import TrackingServer

    with (
        tempfile.TemporaryDirectory(prefix="lead-scoring-") as tmp,
        TrackingServer(rate_limit=5, penalty_seconds=30.0) as srv,
    ):
        settings = Settings(
            _env_file=None,
            api_key=srv.token,
            base_id=srv.base_id,
            endpoint_url=srv.url,
            limiter_url=f"sqlite:///{Path(tmp) / 'ratelimit.sqlite'}",
        )
        conn = Connection.from_settings(settings)
        where = f"a local Airtable-compatible server at {srv.url} (5 requests/s, 30 s penalty)"
        with Tracker(conn, flush_interval=flush_interval) as tracker:
            yield tracker, where


def _report(tracker: Tracker, truth: JobTruth) -> None:
    if truth.run_id is None:
        print("the job could not be started:", *truth.tracking_errors, sep="\n  ")
        return
    job = tracker.find_job(truth.run_id)
    rows = {r.client_id: r for r in tracker.client_runs(truth.run_id)}
    status = job.status.value if job and job.status else "?"
    print(f"\njob {truth.run_id}: {status} (expected {truth.status.value})")
    header = f"{'client':<20} {'status':<18} {'examined':>9} {'scored':>7} {'tokens':>9}  ok"
    print(header)
    print("-" * len(header))
    for ct in truth.clients:
        row = rows.get(ct.client_id)
        stored = row.metrics.values() if row else {}
        got = (
            row.status.value if row and row.status else "missing",
            stored.get("profiles_examined", 0),
            stored.get("profiles_scored", 0),
            stored.get("profile_tokens", 0),
        )
        ok = (
            row is not None
            and row.status is ct.status
            and all(stored.get(k, 0) == ct.totals.get(k, 0) for k in COUNT_METRICS)
        )
        print(
            f"{ct.client_id:<20} {got[0]:<18} {got[1]:>9} {got[2]:>7} {got[3]:>9}  "
            f"{'yes' if ok else 'NO'}"
        )
    if job is not None:
        agg = job.aggregates
        print(
            f"job aggregates: {agg.get('clients_processed')} clients, "
            f"{agg.get('clients_with_errors')} with errors, "
            f"{agg.get('profiles_examined')} profiles examined, "
            f"{agg.get('profile_tokens')} profile tokens"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one job against the configured base (or a local one) and print what it holds."""
    parser = argparse.ArgumentParser(
        description="Run a lead-scoring job recorded through jobtrack-airtable. Without "
        "AIRTABLE_API_KEY/AIRTABLE_BASE_ID/JOBTRACK_ENDPOINT_URL it starts a local "
        "Airtable-compatible server (real 5 requests/s limit) and records into it.",
    )
    parser.add_argument("--clients", type=int, default=8, help="clients in the job (8)")
    parser.add_argument("--chunks", type=int, default=10, help="chunks per client (10)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the plan (7)")
    parser.add_argument("--stream", type=int, default=1, help="worker stream number (1)")
    parser.add_argument(
        "--chunk-seconds", type=float, default=0.02, help="simulated work per chunk (0.02)"
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=None,
        help="seconds between metric flushes (JOBTRACK_FLUSH_INTERVAL, default 5)",
    )
    parser.add_argument("--one-by-one", action="store_true", help="open client runs one by one")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    plans = make_plan(random.Random(args.seed), args.clients, args.chunks)
    with _tracker_from_environment(args.flush_interval) as (tracker, where):
        print(f"recording into {where}")
        started = time.monotonic()
        truth = run_job(
            tracker,
            plans,
            stream=args.stream,
            chunk_seconds=args.chunk_seconds,
            batch_open=not args.one_by_one,
        )
        print(f"job done in {time.monotonic() - started:.1f} s")
        _report(tracker, truth)
    return 1 if truth.all_tracking_errors else 0


if __name__ == "__main__":
    sys.exit(main())
