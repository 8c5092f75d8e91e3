"""The processes of ``benchmarks/chaos.py``: workers and admins, each a top-level function a
``multiprocessing`` spawn context can start (``benchmarks.chaos`` imports them from here).

Every process builds its tracker or repository the way a worker or an admin does
(``Settings`` → ``Connection.from_settings`` → ``Tracker`` / ``Repository``) and talks to the
parent's local server over real HTTP.  Results go back through a queue as plain data
(dicts, lists, the example worker's :class:`~examples.lead_scoring_worker.JobTruth`); a
process that a scenario kills writes what it did, line by line, to a JSON-lines file
instead, since a SIGKILLed process sends nothing.

Only the public API is used (``Tracker``, ``job.client``, ``run.add/set/note/flush/close``,
``job.complete``, ``tracker.attach_job`` / ``attach_client_run`` / ``client_run``,
``jobtrack_airtable.admin.sync.plan_sync`` / ``apply_plan``), so the harness keeps measuring while
the internals change.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # examples/ is imported as a package from the repository root
    sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from examples.lead_scoring_worker import JobTruth, make_plan, run_job  # noqa: E402

# The top-level exports are what every branch keeps; the rest by module (the package's
# public surface is being trimmed while this harness measures it).
from jobtrack_airtable import Connection, Settings, Tracker  # noqa: E402
from jobtrack_airtable.errors import JobtrackError, RunHeldError  # noqa: E402
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY  # noqa: E402
from jobtrack_airtable.transport.repository import Repository  # noqa: E402

__all__ = [
    "Target",
    "admin_apply",
    "busy_loop",
    "full_notes_worker",
    "killable_worker",
    "limited_worker",
    "notes_other_writer",
    "notes_worker",
    "quota_worker",
    "reopen_first",
    "reopen_second",
    "skewed_worker",
    "starter",
]


@dataclass(frozen=True)
class Target:
    """Where and how a child process talks to the parent's local server."""

    url: str
    token: str
    base_id: str
    #: Client-side limiter rate (0 = off) and its shared store (``sqlite:///…``).
    rate_limit: float = 0.0
    limiter_url: str | None = None
    flush_interval: float = 0.0
    #: Retry waits scaled from Airtable's (30 s penalty → ``30 × penalty_scale``).
    penalty_scale: float = 0.01
    timeout: float = 10.0
    #: The outbox every process of the run shares (``sqlite:///…``; else the per-user file).
    outbox_url: str | None = None
    on_tracking_error: str = "raise"

    def settings(self) -> Settings:
        options: dict[str, Any] = {}
        if self.limiter_url is not None:
            options["limiter_url"] = self.limiter_url
        if self.outbox_url is not None:
            options["outbox_url"] = self.outbox_url
        return Settings(
            _env_file=None,
            api_key=SecretStr(self.token),
            base_id=self.base_id,
            endpoint_url=self.url,
            rate_limit=self.rate_limit,
            flush_interval=self.flush_interval,
            timeout=self.timeout,
            on_tracking_error=self.on_tracking_error,
            **options,
        )

    def connection(self) -> Connection:
        return Connection.from_settings(
            self.settings(), policy=DEFAULT_POLICY.scaled(self.penalty_scale)
        )

    def tracker(self) -> Tracker:
        """A worker's tracker, built as a worker builds one (the library's own clock)."""
        return Tracker(self.connection())

    def repository(self) -> Repository:
        return Repository(self.connection())


def _quiet() -> None:
    # Retries log a warning before every sleep; thousands of them are expected here.
    logging.basicConfig(level=logging.CRITICAL)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _drain(tracker: Tracker) -> None:
    """Write whatever the tracker still holds, as a worker that finishes normally does.

    A tracker that group-commits holds client-run writes for up to a flush interval and
    drains them at exit; these processes end with ``os._exit`` (forkserver) and some are
    SIGKILLed on purpose right after, so what they meant to have written is drained here.
    """
    flush = getattr(tracker, "flush", None)
    if callable(flush):
        flush()


def _open_client_run(tracker: Tracker, job_run_id: str, client_id: str) -> Any:
    """A client run of a job started elsewhere (``tracker.client_run``; ``tracker.client``
    in trackers that renamed it)."""
    opener = getattr(tracker, "client_run", None) or getattr(tracker, "client")  # noqa: B009
    return opener(job_run_id, client_id)


def skew_wall_clock(seconds: float) -> None:
    """Shift this process's wall clock, as the library reads it, by ``seconds``: a machine
    whose clock is off.

    Every reading of the current time in the library goes through
    ``jobtrack_airtable.timeutil.utcnow``, which default arguments hold by reference, so the
    function's code is swapped rather than its name rebound.  A tracker built normally then
    meets the skew as it would on a skewed machine, and a fix that corrects its clock (from
    the server's ``Date`` header, say) is measured as a user would get it.  (Injecting a
    skewed ``Tracker(clock=...)`` instead would bypass such a correction.)
    """
    from jobtrack_airtable import timeutil

    setattr(timeutil, "_chaos_skew", timedelta(seconds=seconds))  # noqa: B010

    def skewed_utcnow() -> datetime:  # runs as timeutil.utcnow, with its module globals
        return datetime.now(UTC) + _chaos_skew  # type: ignore[name-defined] # noqa: F821

    timeutil.utcnow.__code__ = skewed_utcnow.__code__


def _die() -> None:
    """SIGKILL this process: no ``finally``, no ``__exit__``, no flush -- a crash."""
    os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- 1. starters


def starter(
    target: Target,
    index: int,
    rounds: int,
    clients: int,
    chunks: int,
    seed: int,
    barrier: Any,
    out: Any,
) -> None:
    """``rounds`` small jobs; every round starts behind a barrier shared by all starters, so
    they all start jobs in the same second."""
    _quiet()
    truths: list[JobTruth] = []
    crash = None
    try:
        tracker = target.tracker()
        rng = random.Random(seed * 7919 + index)
        for r in range(rounds):
            plans = make_plan(
                rng, clients, chunks, prefix=f"S{index}R{r}-", no_leads_share=0, failing_share=0
            )
            barrier.wait(timeout=120)
            truths.append(run_job(tracker, plans, stream=index + 1))
        _drain(tracker)
        tracker.conn.close()
    except Exception as exc:
        crash = traceback.format_exc(limit=3) or _error(exc)
    out.put({"index": index, "truths": truths, "crash": crash})


# --------------------------------------------------------------------------- 2. re-opening


def reopen_first(target: Target, values: dict[str, int], out: Any) -> None:
    """The first life of a worker: a job, a client run left ``Running`` with ``values``
    flushed, another closed ``Completed`` with the same ``values``; then SIGKILL."""
    _quiet()
    tracker = target.tracker()
    job = tracker.job(stream=1)
    running = job.client("Reopen-Running")
    running.add(**values)
    running.flush()
    done = job.client("Reopen-Done")
    done.add(**values)
    done.close()
    _drain(tracker)
    out.put({"job": str(job.run_id), "running": str(running.run_id), "done": str(done.run_id)})
    time.sleep(0.2)  # let the queue's feeder thread send the message
    _die()


def reopen_second(target: Target, job_run_id: str, values: dict[str, int], out: Any) -> None:
    """The restarted worker: re-opens both client runs the first life left, adds ``values``
    and closes them.  Reports, per client, the error raised (a refusal), if any."""
    _quiet()
    tracker = target.tracker()
    result: dict[str, str | None] = {}
    for client_id, opener in (
        ("Reopen-Running", lambda cid: tracker.attach_job(job_run_id).client(cid)),
        ("Reopen-Done", lambda cid: _open_client_run(tracker, job_run_id, cid)),
    ):
        try:
            run = opener(client_id)
            run.add(**values)
            run.close()
            _drain(tracker)
            result[client_id] = None
        except JobtrackError as exc:
            result[client_id] = _error(exc)
        except Exception as exc:  # not a typed refusal: say so
            result[client_id] = f"UNTYPED {_error(exc)}"
    out.put(result)


# --------------------------------------------------------------------------- 3. notes


def notes_worker(target: Target, go: Any, out: Any, tag: str) -> None:
    """A worker writing notes: a job and a client run, a first note on each, then (after
    ``go``) a second note on each, a metric, the close and the completion."""
    _quiet()
    try:
        tracker = target.tracker()
        job = tracker.job(stream=1)
        run = job.client(f"Notes-{tag}")
        run.note(f"{tag}-worker-client-1")
        run.add(profiles_examined=5, profiles_scored=5)
        run.flush()
        job.note(f"{tag}-worker-job-1")
        out.put({"job": str(job.run_id), "client": str(run.run_id)})
        go.wait(timeout=120)
        job.note(f"{tag}-worker-job-2")
        run.note(f"{tag}-worker-client-2")
        run.add(profiles_examined=5, profiles_scored=5)
        run.close()
        job.complete()
        _drain(tracker)
        out.put({"done": True, "error": None})
    except Exception as exc:
        out.put({"done": False, "error": _error(exc)})


def notes_other_writer(target: Target, job_run_id: str, client_run_id: str, out: Any) -> None:
    """Another process appending one line to the job's and the client run's System Notes.

    The job through its own tracker (a job takes notes from any process).  The client run is
    held by the worker's process, so a second tracker's open is refused (``RunHeldError``,
    the outbox's lease: two holders would overwrite each other's totals); the line goes in
    as any other writer of the base would put it (an admin's script: read, append, write),
    and the worker's next write must not erase it."""
    _quiet()
    try:
        tracker = target.tracker()
        tracker.attach_job(job_run_id).note("other-process-job-line")
        try:
            tracker.attach_client_run(client_run_id)
        except RunHeldError:
            pass
        else:
            raise JobtrackError("a second process was let hold a held client run")
        _drain(tracker)
        repo = target.repository()
        row = repo.client_runs.find(client_run_id)
        assert row is not None
        assert row.record_id
        notes = f"{row.system_notes or ''}\nother-process-client-line".lstrip("\n")
        repo.update_by_id("client_runs", [(row.record_id, {"system_notes": notes})])
        repo.conn.close()
        out.put(None)
    except Exception as exc:
        out.put(_error(exc))


# --------------------------------------------------------------------------- 4. clock skew


def skewed_worker(
    target: Target,
    name: str,
    skew_seconds: float,
    live: bool,
    heartbeat_every: float,
    stop: Any,
    out: Any,
) -> None:
    """A worker on a machine whose clock is ``skew_seconds`` off (:func:`skew_wall_clock`):
    a job and a client run, one write each;
    then either dies (SIGKILL, ``live=False``) or heartbeats every ``heartbeat_every``
    seconds until ``stop``, and finishes."""
    _quiet()
    try:
        if skew_seconds:
            skew_wall_clock(skew_seconds)
        tracker = target.tracker()
        job = tracker.job(stream=1, note=f"chaos skew worker {name}")
        run = job.client(f"Skew-{name}")
        run.add(profiles_examined=1, profiles_scored=1)
        run.flush()
        out.put({"name": name, "job": str(job.run_id), "client": str(run.run_id)})
        if not live:
            time.sleep(0.2)
            _die()
        while not stop.wait(heartbeat_every):
            run.flush(heartbeat=True)
            job.heartbeat()
        run.close()
        job.complete()
        _drain(tracker)
    except Exception as exc:
        out.put({"name": name, "error": _error(exc)})


# --------------------------------------------------------------------------- 5. admins


def admin_apply(
    target: Target,
    name: str,
    stale_after_seconds: float,
    barrier: Any,
    out: Any,
) -> None:
    """An admin: plan, wait at ``barrier`` (if any: two admins then apply overlapping
    plans at once), apply.  Reports what it applied or the error."""
    _quiet()
    from jobtrack_airtable.admin.sync import apply_plan, plan_sync

    try:
        repo = target.repository()
        plan = plan_sync(repo, stale_after=timedelta(seconds=stale_after_seconds))
        out.put({"name": name, "stage": "planned"})
        if barrier is not None:
            barrier.wait(timeout=120)
        result = apply_plan(repo, plan)
        out.put({"name": name, "stage": "applied", "total": result.total, "error": None})
    except Exception as exc:
        out.put({"name": name, "stage": "failed", "error": _error(exc)})


# --------------------------------------------------------------------------- 6. limiter


def busy_loop(stop: Any) -> None:
    """Burn one CPU until ``stop`` is set (the "loaded machine" of the limiter scenario)."""
    x = 0
    while not stop.is_set():
        for _ in range(200_000):
            x = (x * 31 + 7) % 1_000_003


def limited_worker(
    target: Target,
    index: int,
    seconds: float,
    clients: int,
    chunks: int,
    seed: int,
    barrier: Any,
) -> None:
    """Jobs back to back for ``seconds`` (after ``barrier``, if any) through the shared
    client-side limiter.  The parent counts 429s from the server's log and SIGKILLs whatever
    is still running at the end of its window."""
    _quiet()
    tracker = target.tracker()
    rng = random.Random(seed * 104_729 + index)
    if barrier is not None:
        barrier.wait(timeout=120)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        plans = make_plan(rng, clients, chunks, prefix=f"L{index}N{n}-")
        run_job(tracker, plans, stream=index + 1)
        n += 1


# --------------------------------------------------------------------------- 7. SIGKILL


def killable_worker(
    target: Target,
    index: int,
    jobs: int,
    clients: int,
    chunks: int,
    chunk_seconds: float,
    seed: int,
    log_path: str,
) -> None:
    """Jobs of the example workload, logging its ground truth to ``log_path`` (one JSON
    line per event, written before the library is told, so a SIGKILL loses nothing of the
    log): ``open``, every ``add`` with the running totals, ``close``, ``job``/``done``."""
    _quiet()
    rng = random.Random(seed * 15_485_863 + index)
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:

        def emit(**event: Any) -> None:
            event["t"] = time.time()
            log.write(json.dumps(event) + "\n")

        tracker = target.tracker()
        for j in range(jobs):
            plans = make_plan(rng, clients, chunks, prefix=f"K{index}J{j}-")
            try:
                with tracker.job(stream=index + 1) as job:
                    emit(kind="job", job=str(job.run_id))
                    for plan in plans:
                        run = job.client(plan.client_id, name=plan.name)
                        emit(kind="open", crr=str(run.run_id))
                        totals: dict[str, int] = {}
                        failed = False
                        with run:
                            for i, increments in enumerate(plan.chunks):
                                if plan.fail_before == i:
                                    failed = True
                                    break
                                time.sleep(chunk_seconds)
                                for key, value in increments.items():
                                    totals[key] = totals.get(key, 0) + value
                                emit(kind="add", crr=str(run.run_id), totals=totals)
                                run.add(**increments)
                            if failed:
                                run.fail("chaos: scoring failed")
                        emit(kind="close", crr=str(run.run_id), totals=totals)
                emit(kind="done", job=str(job.run_id))
            except JobtrackError as exc:
                emit(kind="error", error=_error(exc))
        _drain(tracker)


# --------------------------------------------------------------------------- 8. quota


def quota_worker(
    target: Target, index: int, clients: int, chunk: int, spent: Any, reset: Any, out: Any
) -> None:
    """A job of ``clients`` runs, ``chunk`` profiles per client per phase: one phase before
    the monthly quota is spent (flushed), one while it is (each flush must fail with
    :class:`QuotaExhaustedError` in one request: no retry, no 30 s wait), one after the
    reset; then every run closes and the job completes.  Reports the typed errors seen."""
    from jobtrack_airtable.errors import QuotaExhaustedError

    _quiet()
    seen: dict[str, int] = {}
    try:
        tracker = target.tracker()
        job = tracker.job(stream=index + 1)
        runs = [job.client(f"Q{index}-C{c}") for c in range(clients)]
        for run in runs:
            run.add(profiles_examined=chunk, profiles_scored=chunk)
        tracker.flush()
        out.put({"job": str(job.run_id), "index": index})
        spent.wait(timeout=60)
        for run in runs:
            run.add(profiles_examined=chunk, profiles_scored=chunk)
        started = time.monotonic()
        try:
            tracker.flush()
        except JobtrackError as exc:
            seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
            if not isinstance(exc, QuotaExhaustedError):
                raise
        seen["flush_ms"] = round((time.monotonic() - started) * 1000)
        out.put({"flushed": True})
        reset.wait(timeout=60)
        for run in runs:
            run.add(profiles_examined=chunk, profiles_scored=chunk)
            run.close()
        job.complete()
        tracker.close()
        out.put({"done": True, "error": None, "seen": seen})
    except Exception as exc:
        out.put({"done": False, "error": _error(exc), "seen": seen})


# --------------------------------------------------------------------------- 9. notes at the cap


def full_notes_worker(target: Target, go: Any, out: Any) -> None:
    """A job with two client runs whose System Notes another writer fills to within 25
    characters of the 100,000-character cap while the worker is busy: then it notes, adds,
    closes one run ``Completed``, fails the other (an exception in its ``with``) and
    completes the job with a note."""
    _quiet()
    try:
        tracker = target.tracker()
        job = tracker.job(stream=1)
        ok, bad = job.client("Cap-Ok"), job.client("Cap-Bad")
        for run in (ok, bad):
            run.add(profiles_examined=10, profiles_scored=10)
            run.note("first chunk scored")
        tracker.flush()
        out.put({"job": str(job.run_id), "runs": [str(ok.run_id), str(bad.run_id)]})
        go.wait(timeout=120)
        with ok:
            ok.add(profiles_examined=20, profiles_scored=20)
            ok.note("last chunk scored")
        try:
            with bad:
                bad.add(profiles_examined=5)
                bad.note("scoring the last chunk")
                raise RuntimeError("chaos: the scorer crashed")
        except RuntimeError:
            pass
        job.complete(note="every client tried")
        tracker.close()
        out.put({"done": True, "error": None})
    except Exception as exc:
        out.put({"done": False, "error": _error(exc)})
