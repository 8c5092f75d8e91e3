"""Chaos: the guarantees of issue 10 tried as an attacker would, then ``sync``, then checked.

    .venv/bin/python benchmarks/chaos.py --quick            # ~1 min
    .venv/bin/python benchmarks/chaos.py                    # full, ~5 min
    .venv/bin/python benchmarks/chaos.py --only 1 4 --seed 3 -v

Every scenario gets a fresh local Airtable-compatible server (``LocalAirtable`` in this
process, real HTTP) and real worker and admin processes (``multiprocessing`` forkserver or
spawn: clean interpreters, never forks of this threaded process; the process bodies are in
``benchmarks/_chaos_procs.py``, the checks in ``_chaos_checks.py``), uses the library's
public API only, and ends by converging the base with ``sync``
(``plan_sync`` + ``apply_plan``, with a short stale threshold once every worker is done or
dead) and checking the base's invariants from the server's storage (no HTTP): one row per
Run ID, nothing left ``Running``, every job's aggregates equal to its client rows', no client
rows without a job row.

1. **concurrent starters** -- 12 (quick) / 16 processes start jobs behind a barrier, in the
   same seconds, round after round, each completing its job: stuck ``Running`` jobs,
   422s reaching the worker, duplicate rows, metrics vs the workers' ground truth.
2. **re-opened client run** -- a worker flushes 10 into one client run and closes another
   ``Completed`` with 10, is SIGKILLed; its restarted self re-opens both and adds 2: the
   stored totals must be 12 (continued) or 10 (refused with a typed error), and a
   ``Completed`` run must not be silently re-opened.
3. **notes** -- another process appends System Notes lines while a worker writes its own;
   ``sync`` marks a silent job ``Failed`` and the worker then finishes it: lines erased,
   status and notes contradicting each other.
4. **clock skew** -- workers with clocks 3 h behind, 3 h ahead and right, half of them
   heartbeating, half SIGKILLed after their first write; ``sync`` plans with a short stale
   threshold, at once and again after threshold + margin (1 min in the full run): live
   runs proposed stale, dead runs not found.
5. **sync apply** -- a base whose client rows lack their job rows (so ``apply`` creates):
   one apply under 30 % lost responses, two admin processes applying overlapping plans at
   once, an apply SIGKILLed at a random point and rerun: duplicate rows.
6. **limiter** -- 1/2/4/8/16 worker processes sharing the client-side limiter (one SQLite
   file) against a server enforcing Airtable's 5 requests/s with its penalty, the CPUs
   saturated by busy loops; then a run whose limiter file is deleted and later replaced
   mid-run: 429s from the server's request log.
7. **SIGKILLed workers** -- worker processes logging their ground truth, half of them
   SIGKILLed at random moments; then the machine's next tracker replays the outbox and one
   ``sync`` apply runs: metrics lost, doubled metrics, duplicates, wrong aggregates, a second
   pass still needed.
8. **quota exhausted then reset** -- worker processes flush, the server's monthly quota is
   spent mid-run (every data request gets 429 ``PUBLIC_API_BILLING_LIMIT_EXCEEDED``), they keep
   adding and flush, then the month resets and they close and complete: a flush that is not
   one request failing with ``QuotaExhaustedError`` (retried, waited out, untyped), metrics
   lost.  A quota 429 is not a rate-limit 429: the summary's ``429s`` counts rate limits only;
   the quota's refusals are shown apart (``quota_429s``).
9. **notes at the cap** -- another writer leaves the System Notes of a job and its two client
   runs 1-25 characters short of the 100,000-character cap while the worker is busy; the
   worker notes, adds, closes one run, fails the other and completes the job: a row left
   ``Running`` or with the wrong status, totals lost, notes over the cap or missing the
   worker's last line.

10-13. **the outbox** (issue 19; ``benchmarks/_chaos_outbox.py``) -- refusals mid-run then
   restored (401, 403, a field deleted, a field renamed without pin), late application of
   every kind of write (job start, client open, increment flush, close, job note), SIGKILL at
   random points including the first flush interval, two replays racing.

Every random choice comes from ``--seed``; every wait is bounded.  Output: one line per
scenario (``HELD``/``BROKE`` and its counts), then one summary line::

    scenarios=13 held=13 broke=0 lost=0 duplicates=0 stuck_running=0 wrong_aggregates=0 429s=0

Exit code 0 when every scenario held, 1 otherwise.  See docs/benchmarks.md, "Chaos".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _chaos_outbox as outbox
from benchmarks import _chaos_procs as procs
from benchmarks._chaos_checks import (
    CRR,
    JOBS,
    Outcome,
    by_key,
    check_logged_run,
    count,
    duplicates,
    field_of,
    proposed_failed,
    read_worker_log,
    settle,
    summary_line,
)
from benchmarks._chaos_procs import Target
from benchmarks._harness import BENCH_BASE_ID, BENCH_TOKEN, compare, start_server
from examples.lead_scoring_worker import JobTruth
from jobtrack_airtable import Status
from jobtrack_airtable.admin.sync import apply_plan, plan_sync
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.codec import codec_for

log = logging.getLogger("chaos")

HOURS_3 = 3 * 3600.0
AIRTABLE_PENALTY = 30.0


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    """Sizes and timings of one chaos run (``--quick`` shrinks them, never the checks)."""

    seed: int = 1
    quick: bool = False
    #: 1. starter processes and rounds of simultaneous starts.
    starters: int = 16
    rounds: int = 4
    #: 4. stale threshold of the skew scenario's plans, and the margin after it (Issue 10:
    #: "no dead run hidden past threshold + 1 minute").
    skew_threshold: float = 20.0
    skew_margin: float = 60.0
    #: 5. client rows without job rows seeded for sync to create from; killed applies.
    orphan_jobs: int = 40
    apply_kills: int = 3
    #: 6. process counts, window per count, server penalty, busy-loop processes.
    processes: tuple[int, ...] = (1, 2, 4, 8, 16)
    window: float = 15.0
    penalty: float = AIRTABLE_PENALTY
    busy: int = 0
    swap_processes: int = 8
    #: 7. workers (half are killed), jobs each, and the flush interval they run with.
    kill_workers: int = 8
    kill_jobs: int = 2
    kill_rounds: int = 2
    flush_interval: float = 0.25

    @classmethod
    def quick_config(cls, seed: int) -> Config:
        return cls(
            seed=seed,
            quick=True,
            starters=12,
            rounds=2,
            skew_threshold=4.0,
            skew_margin=2.0,
            orphan_jobs=20,
            apply_kills=1,
            processes=(16,),
            window=4.0,
            penalty=3.0,
            swap_processes=4,
            kill_workers=4,
            kill_jobs=1,
            kill_rounds=1,
            busy=os.cpu_count() or 1,
        )

    @property
    def busy_processes(self) -> int:
        return self.busy or 2 * (os.cpu_count() or 1)


# --------------------------------------------------------------------------- processes


#: How child processes start (``--start-method``).  Both start clean interpreters, never a
#: fork of this threaded process (it runs the servers); ``forkserver`` forks them from one
#: that has the library imported already, so 16 workers start in well under a second.
CTX: Any = multiprocessing.get_context("spawn")


def use_start_method(name: str) -> None:
    global CTX
    CTX = multiprocessing.get_context(name)
    if name == "forkserver":
        CTX.set_forkserver_preload(["benchmarks._chaos_procs"])


#: The outboxes of the run's servers (one file per server: their base IDs are the same).
_OUTBOXES: tempfile.TemporaryDirectory[str] | None = None


def target_of(srv: LocalAirtable, **options: Any) -> Target:
    global _OUTBOXES
    if _OUTBOXES is None:
        _OUTBOXES = tempfile.TemporaryDirectory(prefix="jobtrack-chaos-outbox-")
    options.setdefault("outbox_url", f"sqlite:///{_OUTBOXES.name}/outbox-{srv.port}.sqlite")
    return Target(url=srv.url, token=BENCH_TOKEN, base_id=BENCH_BASE_ID, **options)


def spawn(fn: Callable[..., None], *args: Any) -> Any:
    p = CTX.Process(target=fn, args=args, daemon=True)
    p.start()
    return p


def reap(processes: Sequence[Any], timeout: float) -> int:
    """Join ``processes`` within ``timeout`` seconds in all; SIGKILL the rest.  Returns how
    many had to be killed (a hung worker is a finding, not a hang of the benchmark)."""
    deadline = time.monotonic() + timeout
    killed = 0
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            killed += 1
            kill(p)
    return killed


def kill(p: Any) -> None:
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(p.pid, signal.SIGKILL)
    p.join(5)


def get(queue: Any, timeout: float) -> Any:
    return queue.get(timeout=max(0.1, timeout))


@contextlib.contextmanager
def server(**options: Any) -> Iterator[LocalAirtable]:
    srv = start_server(**options)
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------- 1. starters


def scenario_starters(cfg: Config, out: Outcome) -> None:
    with server() as srv:
        target = target_of(srv)
        barrier = CTX.Barrier(cfg.starters)
        queue = CTX.Queue()
        ps = [
            spawn(procs.starter, target, i, cfg.rounds, 2, 3, cfg.seed, barrier, queue)
            for i in range(cfg.starters)
        ]
        truths: list[JobTruth] = []
        deadline = time.monotonic() + 60 + 15 * cfg.rounds
        for _ in ps:
            try:
                msg = get(queue, deadline - time.monotonic())
            except Exception:
                out.add(hung=1)
                break
            truths.extend(msg["truths"])
            if msg["crash"]:
                out.add(worker_crashes=1)
                out.details.append(f"starter {msg['index']} crashed: {msg['crash']}")
        out.add(hung=reap(ps, 10))
        d = compare(srv, truths)
        errors = [e for t in truths for e in t.all_tracking_errors]
        out.add(
            lost=d.lost,
            duplicates=d.duplicates,
            stuck_running=d.stuck_running,
            wrong_aggregates=d.wrong_aggregates + d.wrong_status,
            errors_422=sum("422" in e or "fieldsToMergeOn" in e for e in errors),
            tracking_errors=len(errors),
        )
        out.details += d.details[:20] + errors[:5]
        out.info["jobs"] = len(truths)
        settle(out, srv, target, judge_second_pass=False)


# --------------------------------------------------------------------------- 2. re-opening


def scenario_reopen(cfg: Config, out: Outcome) -> None:
    first = {"profiles_examined": 10, "profiles_scored": 10}
    again = {"profiles_examined": 2, "profiles_scored": 2}
    with server() as srv:
        target = target_of(srv)
        queue = CTX.Queue()
        p = spawn(procs.reopen_first, target, first, queue)
        ids = get(queue, 60)
        reap([p], 10)
        done_before = by_key(srv, "client_runs")[ids["done"]][0]
        p = spawn(procs.reopen_second, target, ids["job"], again, queue)
        refusals = get(queue, 60)
        reap([p], 10)
        stored = by_key(srv, "client_runs")
        for client_id, key, short in (
            ("Reopen-Running", ids["running"], "R"),
            ("Reopen-Done", ids["done"], "D"),
        ):
            row = stored[key][0]
            refused = refusals.get(client_id)
            if refused and refused.startswith("UNTYPED"):
                out.add(untyped_errors=1)
            for metric, value in first.items():
                got = count(field_of(row, "client_runs", metric))
                want = value if refused else value + again[metric]
                if got < want:
                    out.add(lost=1)
                    out.details.append(f"{key}: {metric} {got} < {want} (saved totals lost)")
                elif got > want:
                    out.add(lost=1)
                    out.details.append(f"{key}: {metric} {got} > {want} (counted twice)")
            if short == "D" and not refused:
                old_notes = str(field_of(done_before, "client_runs", "system_notes") or "")
                new_notes = str(field_of(row, "client_runs", "system_notes") or "")
                if new_notes == old_notes:
                    out.add(silent_reopen=1)
                    out.details.append(
                        f"{key}: a Completed run was re-opened without force and without a "
                        f"note (status now {field_of(row, 'client_runs', 'status')})"
                    )
            out.info[f"{short}_reopen"] = "refused" if refused else "accepted"
        out.details += [f"{k}: {v}" for k, v in refusals.items() if v]
        settle(out, srv, target, judge_second_pass=False)


# --------------------------------------------------------------------------- 3. notes


def _lines(text: Any) -> list[str]:
    return [line for line in str(text or "").splitlines() if line.strip()]


def scenario_notes(cfg: Config, out: Outcome) -> None:
    stale = 2.0
    with server() as srv:
        target = target_of(srv)
        queue, other_q = CTX.Queue(), CTX.Queue()

        # a) another process appends lines while the worker writes its own.
        go = CTX.Event()
        w = spawn(procs.notes_worker, target, go, queue, "A")
        ids = get(queue, 60)
        o = spawn(procs.notes_other_writer, target, ids["job"], ids["client"], other_q)
        other_error = get(other_q, 60)
        go.set()
        done = get(queue, 60)
        reap([w, o], 10)
        if other_error or done["error"]:
            out.details.append(f"writers: other={other_error} worker={done['error']}")
        expected = {
            "jobs": (ids["job"], ["A-worker-job-1", "A-worker-job-2", "other-process-job-line"]),
            "client_runs": (
                ids["client"],
                ["A-worker-client-1", "A-worker-client-2", "other-process-client-line"],
            ),
        }
        for table, (key, wanted) in expected.items():
            notes = str(field_of(by_key(srv, table)[key][0], table, "system_notes") or "")
            missing = [line for line in wanted if line not in notes]
            out.add(notes_erased=len(missing))
            out.details += [f"{table} {key}: line {m!r} erased" for m in missing]

        # b) sync marks a silent job Failed; the worker then finishes it.
        go = CTX.Event()
        w = spawn(procs.notes_worker, target, go, queue, "B")
        ids = get(queue, 60)
        time.sleep(stale + 1.0)
        repo = target.repository()
        plan = plan_sync(repo, stale_after=timedelta(seconds=stale))
        pre = {t: by_key(srv, t) for t in ("jobs", "client_runs")}
        apply_plan(repo, plan)
        repo.conn.close()
        post = {t: by_key(srv, t) for t in ("jobs", "client_runs")}
        sync_lines: dict[str, list[str]] = {}
        for table, key in (("jobs", ids["job"]), ("client_runs", ids["client"])):
            old = set(_lines(field_of(pre[table][key][0], table, "system_notes")))
            new = _lines(field_of(post[table][key][0], table, "system_notes"))
            sync_lines[table] = [line for line in new if line not in old]
            if field_of(post[table][key][0], table, "status") != Status.FAILED.value:
                out.add(harness_precondition=1)
                out.details.append(f"{table} {key}: sync did not mark the silent run Failed")
        go.set()
        done = get(queue, 60)
        reap([w], 10)
        out.info["worker_B"] = "ok" if not done["error"] else done["error"][:80]
        for table, key in (("jobs", ids["job"]), ("client_runs", ids["client"])):
            row = by_key(srv, table)[key][0]
            final = _lines(field_of(row, table, "system_notes"))
            status = field_of(row, table, "status")
            erased = [line for line in sync_lines[table] if line not in final]
            out.add(notes_erased=len(erased))
            out.details += [f"{table} {key}: sync's line erased: {e[:90]!r}" for e in erased]
            last_sync = max((final.index(s) for s in sync_lines[table] if s in final), default=-1)
            # Set back from Failed with nothing after sync's line (or sync's line gone): the
            # row's status and its notes contradict each other, or the change left no trace.
            if status != Status.FAILED.value and last_sync in (-1, len(final) - 1):
                out.add(contradictions=1)
                out.details.append(
                    f"{table} {key}: sync marked it Failed, now {status} with no note saying so"
                )
        settle(out, srv, target, judge_second_pass=False)


# --------------------------------------------------------------------------- 4. clock skew


def scenario_skew(cfg: Config, out: Outcome) -> None:
    skews = {"behind": -HOURS_3, "right": 0.0, "ahead": HOURS_3}
    with server() as srv:
        target = target_of(srv)
        queue = CTX.Queue()
        stop = CTX.Event()
        workers = []
        for name, skew in skews.items():
            for live in (True, False):
                label = f"{name}-{'live' if live else 'dead'}"
                workers.append(
                    (label, spawn(procs.skewed_worker, target, label, skew, live, 1.0, stop, queue))
                )
        runs: dict[str, tuple[str, str]] = {}
        for _ in workers:
            msg = get(queue, 60)
            if "error" in msg:
                out.add(worker_errors=1)
                out.details.append(f"{msg['name']}: {msg['error']}")
                continue
            runs[msg["name"]] = (msg["job"], msg["client"])
        ready = time.monotonic()
        repo = target.repository()
        threshold = timedelta(seconds=cfg.skew_threshold)
        first = proposed_failed(plan_sync(repo, stale_after=threshold))
        time.sleep(max(0.0, ready + cfg.skew_threshold + cfg.skew_margin - time.monotonic()))
        second = proposed_failed(plan_sync(repo, stale_after=threshold))
        repo.conn.close()
        for label, (job, client) in runs.items():
            for key in (job, client):
                if label.endswith("live") and key in first | second:
                    out.add(live_marked_stale=1)
                    out.details.append(f"{label} {key}: live run proposed Failed as stale")
                if label.endswith("dead") and key not in second:
                    out.add(dead_missed=1)
                    out.details.append(
                        f"{label} {key}: dead run not found stale {cfg.skew_margin:.0f} s past "
                        f"the {cfg.skew_threshold:.0f} s threshold"
                    )
        out.info["threshold_s"] = cfg.skew_threshold
        out.info["margin_s"] = cfg.skew_margin
        stop.set()
        out.add(hung=reap([p for _, p in workers], 30))
        settle(out, srv, target, judge_second_pass=False)


# --------------------------------------------------------------------------- 5. sync apply


def seed_orphans(srv: LocalAirtable, groups: int, rng: random.Random) -> None:
    """``groups`` jobs' client rows (2 each, ``Completed``, two days old) without their job
    rows: sync's plan creates the job rows (plain creates today), aggregating the clients."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    items = []
    for g in range(groups):
        t = start + timedelta(minutes=g)
        base = t.strftime("%y%m%d-%H%M%S")
        for client in ("Seed-Ann", "Seed-Bob"):
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            items.append(
                codec_for(CRR).names(
                    {
                        "run_id": f"{base}-{client}",
                        "client_id": client,
                        "client_name": client,
                        "status": Status.COMPLETED.value,
                        "start_time": stamp,
                        "end_time": stamp,
                        "last_updated": stamp,
                        "profiles_examined": rng.randint(1, 50),
                        "profiles_scored": 1,
                    }
                )
            )
    srv.store.create_records(None, CRR.name, items, limit=None)


def scenario_apply(cfg: Config, out: Outcome) -> None:
    rng = random.Random(cfg.seed)
    fault_seed = rng.randrange(1 << 30)

    # a) one apply under 30 % lost responses (every kind of request).
    with server(fault_seed=fault_seed) as srv:
        seed_orphans(srv, cfg.orphan_jobs, rng)
        target = target_of(srv)
        srv.faults.add("lost_response", probability=0.3)
        repo = target.repository()
        try:
            apply_plan(repo, plan_sync(repo, stale_after=timedelta(hours=1)))
            reported = "success"
        except Exception as exc:
            reported = type(exc).__name__
        repo.conn.close()
        srv.faults.clear()
        dups = duplicates(srv)
        out.add(duplicates=dups)
        out.info["lost_responses"] = f"{dups} dup, apply={reported}"
        settle(out, srv, target, judge_second_pass=True)

    # b) two admins applying overlapping plans at once.
    with server() as srv:
        seed_orphans(srv, cfg.orphan_jobs, rng)
        target = target_of(srv)
        barrier, queue = CTX.Barrier(2), CTX.Queue()
        admins = [spawn(procs.admin_apply, target, n, 3600.0, barrier, queue) for n in "AB"]
        results: list[str] = []
        deadline = time.monotonic() + 90
        while len(results) < 2 and time.monotonic() < deadline:
            msg = get(queue, deadline - time.monotonic())
            if msg["stage"] != "planned":
                results.append(msg["error"] or "applied")
        out.add(hung=reap(admins, 10))
        dups = duplicates(srv)
        out.add(duplicates=dups)
        out.info["two_admins"] = f"{dups} dup, " + "/".join(r.split(":")[0] for r in results)
        settle(out, srv, target, judge_second_pass=True)

    # c) an apply SIGKILLed at a random point, then sync again.
    killed_dups = 0
    for k in range(cfg.apply_kills):
        with server() as srv:
            seed_orphans(srv, cfg.orphan_jobs, rng)
            target = target_of(srv)
            for method in ("POST", "PATCH", "DELETE"):
                srv.faults.add("delay", method=method, probability=1.0, delay=0.25)
            queue = CTX.Queue()
            p = spawn(procs.admin_apply, target, f"kill{k}", 3600.0, None, queue)
            get(queue, 60)  # planned
            time.sleep(rng.uniform(0.0, 0.25 * (cfg.orphan_jobs / 10 + 1)))
            kill(p)
            srv.faults.clear()
            before_rerun = duplicates(srv)
            settle(out, srv, target, judge_second_pass=True)
            killed_dups += before_rerun
    out.add(duplicates=killed_dups)
    out.info["killed_applies"] = f"{cfg.apply_kills}, {killed_dups} dup before the rerun"


# --------------------------------------------------------------------------- 6. limiter


@contextlib.contextmanager
def busy_cpus(n: int) -> Iterator[None]:
    stop = CTX.Event()
    ps = [spawn(procs.busy_loop, stop) for _ in range(n)]
    try:
        yield
    finally:
        stop.set()
        reap(ps, 5)


def _limiter_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("", "-wal", "-shm", "-journal")]


def delete_limiter_file(path: Path) -> None:
    for f in _limiter_files(path):
        f.unlink(missing_ok=True)


def replace_limiter_file(path: Path) -> None:
    fresh = path.with_name(path.name + ".new")
    conn = sqlite3.connect(fresh)
    conn.execute("CREATE TABLE IF NOT EXISTS unrelated (x INTEGER)")
    conn.commit()
    conn.close()
    os.replace(fresh, path)


def limited_run(
    cfg: Config,
    out: Outcome,
    processes: int,
    *,
    mid_run: Sequence[tuple[float, Callable[[Path], None], int]] = (),
) -> int:
    """``processes`` limited workers for one window against a fresh rate-limited server,
    the CPUs busy; returns the 429s the server sent in the window.  ``mid_run`` holds
    ``(fraction of the window, action on the limiter file, workers started right after)``:
    the workers of a fleet keep starting (cron) while someone deletes or replaces the file."""
    with (
        tempfile.TemporaryDirectory(prefix="jobtrack-chaos-") as tmp,
        server(rate_limit=5, penalty_seconds=cfg.penalty) as srv,
    ):
        path = Path(tmp) / "ratelimit.sqlite"
        target = target_of(
            srv,
            rate_limit=5,
            limiter_url=f"sqlite:///{path}",
            flush_interval=5.0,
            penalty_scale=cfg.penalty / AIRTABLE_PENALTY,
        )
        with busy_cpus(cfg.busy_processes):
            barrier = CTX.Barrier(processes + 1)
            ps = [
                spawn(procs.limited_worker, target, i, cfg.window, 3, 3, cfg.seed, barrier)
                for i in range(processes)
            ]
            barrier.wait(timeout=120)
            t0 = time.monotonic()
            for fraction, action, more in mid_run:
                time.sleep(max(0.0, t0 + fraction * cfg.window - time.monotonic()))
                action(path)
                left = t0 + cfg.window - time.monotonic()
                for _ in range(more):
                    i = len(ps)
                    ps.append(spawn(procs.limited_worker, target, i, left, 3, 3, cfg.seed, None))
            time.sleep(max(0.0, t0 + cfg.window - time.monotonic()))
            entries = srv.request_log.entries
            t1 = time.monotonic()
            for p in ps:
                kill(p)
        rate_limited = sum(1 for e in entries if e.status == 429)
        penalty = srv.rate_limiter.seconds_in_penalty(t0, t1)  # type: ignore[attr-defined]
        label = f"p{len(ps)}{'_swap' if mid_run else ''}"
        out.info[label] = f"{len(entries)}req/{rate_limited}x429/{penalty:.0f}s_penalty"
        srv.rate_limiter.rate = None  # the window is over: let sync converge at full speed
        settle(out, srv, target_of(srv), judge_second_pass=False)
        return rate_limited


def scenario_limiter(cfg: Config, out: Outcome) -> None:
    out.info["busy"] = cfg.busy_processes
    out.info["penalty_s"] = cfg.penalty
    for n in cfg.processes:
        out.add(rate_limited=limited_run(cfg, out, n))
    wave = max(1, cfg.swap_processes // 4)
    out.add(
        rate_limited=limited_run(
            cfg,
            out,
            cfg.swap_processes - 2 * wave,
            mid_run=((1 / 3, delete_limiter_file, wave), (2 / 3, replace_limiter_file, wave)),
        )
    )


# --------------------------------------------------------------------------- 7. SIGKILL


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by the kill
            out.append(json.loads(line))
    return out


def scenario_sigkill(cfg: Config, out: Outcome) -> None:
    rng = random.Random(cfg.seed * 31 + 7)
    for _ in range(cfg.kill_rounds):
        sigkill_round(cfg, out, rng)


def sigkill_round(cfg: Config, out: Outcome, rng: random.Random) -> None:
    """One round: workers on a fresh server, half of them SIGKILLed at random moments, one
    ``sync``, then every client run checked against its worker's log."""
    # Client runs of 50 chunks × 0.1 s stay open 5 s: long enough for a kill to land well
    # after several flush intervals, so the lower bound below has something to check.
    clients, chunks, chunk_seconds = 2, 50, 0.1
    # A flush starts on the first add after the interval and blocks the worker while it is
    # in flight; with slow requests on a loaded machine (load average 14 seen here) the
    # stored totals can trail the log by the interval + a couple of request latencies.
    slack = 2.0
    with tempfile.TemporaryDirectory(prefix="jobtrack-chaos-") as tmp, server() as srv:
        target = target_of(srv, flush_interval=cfg.flush_interval)
        logs = [Path(tmp) / f"worker{i}.jsonl" for i in range(cfg.kill_workers)]
        ps = [
            spawn(
                procs.killable_worker,
                target,
                i,
                cfg.kill_jobs,
                clients,
                chunks,
                chunk_seconds,
                cfg.seed,
                str(logs[i]),
            )
            for i in range(cfg.kill_workers)
        ]
        victims = sorted(rng.sample(range(cfg.kill_workers), (cfg.kill_workers * 3 + 3) // 4))
        # Kill anywhere in the work, job starts and completions included.
        horizon = 0.5 + cfg.kill_jobs * clients * chunks * chunk_seconds
        when = {i: rng.uniform(0.5, horizon) for i in victims}
        started = time.monotonic()
        killed_at: dict[int, float] = {}
        for i in sorted(victims, key=when.__getitem__):
            time.sleep(max(0.0, started + when[i] - time.monotonic()))
            killed_at[i] = time.time()
            kill(ps[i])
        out.add(hung=reap(ps, 120))
        # The machine's next tracker writes what the killed workers' outbox holds.
        replayer = target.tracker()
        out.info["replayed"] = out.info.get("replayed", 0) + len(replayer.replay())
        replayer.close()
        settle(out, srv, target, judge_second_pass=True)
        stored = by_key(srv, "client_runs")  # after sync: what the base ends with

        runs = bounded = 0
        for i, path in enumerate(logs):
            for key, run in read_worker_log(_events(path)).items():
                runs += 1
                row = stored.get(key, [None])[0]
                problems, has_bound = check_logged_run(
                    key, run, row, killed_at.get(i), interval=cfg.flush_interval, slack=slack
                )
                bounded += has_bound
                out.add(lost=len(problems))
                out.details += problems
        out.info["killed"] = out.info.get("killed", 0) + len(victims)
        out.info["client_runs"] = out.info.get("client_runs", 0) + runs
        # Killed open runs whose log had adds older than kill − interval − slack: the ones
        # where a lost flush would show.
        out.info["killed_runs_bounded"] = out.info.get("killed_runs_bounded", 0) + bounded


# --------------------------------------------------------------------------- 8. quota


def _messages(queue: Any, n: int, key: str, out: Outcome, timeout: float) -> list[dict[str, Any]]:
    """``n`` messages holding ``key``; a worker's error instead is a finding."""
    got = []
    for _ in range(n):
        message = get(queue, timeout)
        if key not in message:
            out.add(worker_errors=1)
            out.details.append(f"worker: {message.get('error')}")
        got.append(message)
    return got


def _stored(srv: LocalAirtable, table: str, key: str, field: str) -> Any:
    found = by_key(srv, table).get(key) or [None]
    return field_of(found[0], table, field)


def scenario_quota(cfg: Config, out: Outcome) -> None:
    workers, clients, chunk = (3, 3, 5) if cfg.quick else (6, 4, 5)
    with server() as srv:
        # Writes wait for an explicit flush: each flush of a worker is exactly one request.
        target = target_of(srv, flush_interval=3600.0)
        queue, spent, reset = CTX.Queue(), CTX.Event(), CTX.Event()
        ps = [
            spawn(procs.quota_worker, target, i, clients, chunk, spent, reset, queue)
            for i in range(workers)
        ]
        started = _messages(queue, workers, "job", out, 60)
        srv.quota.spend()  # another integration of the workspace spent the month's quota
        spent.set()
        _messages(queue, workers, "flushed", out, 60)
        refused_while_spent = srv.quota.refused
        srv.quota.reset()  # the month turns
        reset.set()
        done = _messages(queue, workers, "done", out, 120)
        reap(ps, 10)
        for result in done:
            seen = result.get("seen", {})
            if result.get("error") or seen.get("QuotaExhaustedError") != 1:
                out.add(untyped_quota_errors=1)
                out.details.append(f"worker saw {seen}, error {result.get('error')}")
        # One request per failing flush: a quota 429 is never retried (nor waited out).
        out.add(quota_retried=max(0, refused_while_spent - workers))
        truth = 3 * chunk
        for message in started:
            job = message.get("job")
            if job is None:
                continue
            for c in range(clients):
                key = f"{job}-Q{message['index']}-C{c}"
                stored = count(_stored(srv, "client_runs", key, "profiles_examined"))
                if stored < truth:
                    out.add(lost=truth - stored)
                    out.details.append(f"{key}: profiles_examined {stored} < {truth}")
        # Rate-limit 429s and quota 429s share the status; they are counted apart.
        all_429 = sum(1 for e in srv.request_log.entries if e.status == 429)
        out.add(rate_limited=all_429 - srv.quota.refused)
        out.info["quota_429s"] = f"{srv.quota.refused}(not_rate_limits)"
        flush_ms = [r.get("seen", {}).get("flush_ms", 0) for r in done]
        out.info["spent_flush_ms_max"] = max(flush_ms, default=0)
        settle(out, srv, target_of(srv), judge_second_pass=False)


# --------------------------------------------------------------------------- 9. notes at the cap


def _fill_notes(srv: LocalAirtable, table: str, key: str, left: int) -> None:
    """Another writer (over HTTP) leaves the row's System Notes ``left`` characters short of
    the 100,000-character cap."""
    from jobtrack_airtable.airtable import MAX_LONG_TEXT

    name = (JOBS if table == "jobs" else CRR).name
    [row] = by_key(srv, table)[key]
    line = "another writer's line, long enough to fill the notes quickly"
    text = "\n".join([line] * (MAX_LONG_TEXT // len(line) + 1))[: MAX_LONG_TEXT - left]
    srv.table(name).update(row["id"], {"System Notes": text})


def scenario_full_notes(cfg: Config, out: Outcome) -> None:
    from jobtrack_airtable.airtable import MAX_LONG_TEXT

    rng = random.Random(cfg.seed)
    with server() as srv:
        target = target_of(srv)
        queue, go = CTX.Queue(), CTX.Event()
        w = spawn(procs.full_notes_worker, target, go, queue)
        [ids] = _messages(queue, 1, "job", out, 60)
        keys = [("jobs", ids["job"]), *(("client_runs", r) for r in ids["runs"])]
        for table, key in keys:
            _fill_notes(srv, table, key, rng.randint(1, 25))
        go.set()
        _messages(queue, 1, "done", out, 120)
        reap([w], 10)
        expected = {
            ids["job"]: ("jobs", "Completed", 35, "] every client tried"),
            ids["runs"][0]: ("client_runs", "Completed", 30, "] last chunk scored"),
            ids["runs"][1]: ("client_runs", "Failed", 15, "] scoring the last chunk"),
        }
        for key, (table, status, examined, last) in expected.items():
            notes = str(_stored(srv, table, key, "system_notes") or "")
            got_status = _stored(srv, table, key, "status")
            stored = count(_stored(srv, table, key, "profiles_examined"))
            if got_status != status:
                out.add(wrong_status=1)
                out.details.append(f"{key}: {got_status}, expected {status}")
            if stored < examined:
                out.add(lost=examined - stored)
                out.details.append(f"{key}: {stored} profiles < {examined}")
            if len(notes) > MAX_LONG_TEXT or not notes.endswith(last):
                out.add(notes_lost=1)
                out.details.append(f"{key}: notes of {len(notes)} end {notes[-40:]!r}")
        settle(out, srv, target_of(srv), judge_second_pass=False)


# --------------------------------------------------------------------------- the command


SCENARIOS: dict[int, tuple[str, Callable[[Config, Outcome], None]]] = {
    1: ("concurrent_starters", scenario_starters),
    2: ("reopen_client_run", scenario_reopen),
    3: ("notes_and_terminal", scenario_notes),
    4: ("clock_skew_staleness", scenario_skew),
    5: ("sync_apply_idempotent", scenario_apply),
    6: ("limiter_under_load", scenario_limiter),
    7: ("sigkill_workers", scenario_sigkill),
    8: ("quota_exhausted_then_reset", scenario_quota),
    9: ("notes_at_the_cap", scenario_full_notes),
    10: ("outbox_refusals_restored", outbox.scenario_refusals),
    11: ("outbox_late_application", outbox.scenario_late),
    12: ("outbox_sigkill_any_point", outbox.scenario_sigkill),
    13: ("outbox_replays_racing", outbox.scenario_replays),
}


def run_scenario(number: int, cfg: Config) -> Outcome:
    name, fn = SCENARIOS[number]
    out = Outcome(number, name)
    started = time.monotonic()
    try:
        fn(cfg, out)
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        out.details.append(traceback.format_exc(limit=6))
    out.seconds = time.monotonic() - started
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Chaos run of issue 10's scenarios against local servers, real processes; "
        "ends with one summary line.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, short waits (~1 min)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (1)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="window of each limiter run (15; quick 4)"
    )
    parser.add_argument(
        "--penalty", type=float, default=None, help="server's 429 penalty, s (30; quick 3)"
    )
    parser.add_argument(
        "--processes", type=int, nargs="+", default=None, help="limiter runs (1 2 4 8 16)"
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="busy-loop processes in scenario 6 (2 per CPU; quick: 1 per CPU)",
    )
    parser.add_argument(
        "--only", type=int, nargs="+", choices=sorted(SCENARIOS), help="run only these"
    )
    parser.add_argument(
        "--start-method",
        choices=("forkserver", "spawn"),
        default="forkserver",
        help="how worker processes start (forkserver)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every detail")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The admin's retries under injected faults warn before every sleep, by design.
    logging.getLogger("jobtrack_airtable").setLevel(
        logging.WARNING if args.verbose else logging.CRITICAL
    )
    use_start_method(args.start_method)
    cfg = Config.quick_config(args.seed) if args.quick else Config(seed=args.seed)
    changes: dict[str, Any] = {"busy": args.busy} if args.busy else {}
    if args.seconds is not None:
        changes["window"] = args.seconds
    if args.penalty is not None:
        changes["penalty"] = args.penalty
    if args.processes:
        changes["processes"] = tuple(args.processes)
    from dataclasses import replace

    cfg = replace(cfg, **changes)
    print(
        f"chaos: {'quick' if cfg.quick else 'full'} run, seed {cfg.seed}, "
        f"{os.cpu_count()} CPUs, {cfg.busy_processes} busy loops in scenario 6",
        flush=True,
    )
    started = time.monotonic()
    outcomes = []
    for number in args.only or sorted(SCENARIOS):
        outcome = run_scenario(number, cfg)
        outcomes.append(outcome)
        print(outcome.line(), flush=True)
        shown = outcome.details if args.verbose else outcome.details[:3]
        for d in shown:
            print(f"    {d}", flush=True)
        if not args.verbose and len(outcome.details) > 3:
            print(f"    … {len(outcome.details) - 3} more (-v)", flush=True)
    print(f"chaos: {time.monotonic() - started:.0f} s in all", flush=True)
    print(summary_line(outcomes), flush=True)
    return 0 if all(o.held for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
