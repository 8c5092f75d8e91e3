"""Chaos scenarios of issue 19 (the durable outbox), for ``benchmarks/chaos.py``:

10. **refusals** -- mid-run, Airtable refuses the client-run writes (token revoked: 401;
   permission removed: 403; a metric field deleted -- renamed away, later recreated empty --;
   a metric field renamed without ``schema pin``, later renamed back): the refusal must reach
   the caller at ``flush()``, and once the cause is gone the job must complete with every
   total exact (lost), no run left ``Running``, the aggregates right.
11. **late application** -- the server holds a write (the job start's create, a client
   run's open, an increment flush, a close, a job note) longer than the client's timeout and
   applies it after the newer write landed: after ``complete()`` and once the held request
   is answered, the rows, the job's single row and notes, and the aggregates must be the
   truth.
12. **SIGKILL** -- worker processes add 1 at a time to one client run (flush interval of an
    hour: kills land in the first interval) and log each total ``add()`` returned for; each is
    SIGKILLed at a random point; a fresh tracker then replays: the row must hold the last
    logged total (or one more, stored but not yet logged).
13. **two replays racing** -- the entries a refused tracker left are replayed by two
    processes at once: exact totals, one row per run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._chaos_checks import Outcome, by_key, count, field_of
from benchmarks._chaos_procs import Target
from benchmarks._harness import BENCH_BASE_ID, BENCH_TOKEN, start_server
from jobtrack_airtable.errors import JobtrackError
from jobtrack_airtable.local import LocalAirtable

CLIENTS = ("A", "B", "C", "D")
EXAMINED = "Profiles Examined for Scoring"
CRR = "Client Run Results"


@contextlib.contextmanager
def _server_and_target(tmp: str, **options: Any) -> Any:
    srv = start_server()
    try:
        yield (
            srv,
            Target(
                url=srv.url,
                token=BENCH_TOKEN,
                base_id=BENCH_BASE_ID,
                outbox_url=f"sqlite:///{tmp}/outbox.sqlite",
                flush_interval=3600.0,
                **options,
            ),
        )
    finally:
        srv.stop()


def _rename(srv: LocalAirtable, old: str, new: str) -> None:
    field = srv.api().base(srv.base_id).table(CRR).schema().field(old)
    field.name = new
    field.save()


def _judge_job(out: Outcome, srv: LocalAirtable, base: str, per_client: int) -> None:
    rows = {k: v for k, v in by_key(srv, "client_runs").items() if k.startswith(base)}
    out.add(duplicates=sum(len(v) - 1 for v in rows.values()))
    for key, group in rows.items():
        row = group[0]
        if count(field_of(row, "client_runs", "profiles_examined")) != per_client:
            out.add(lost=1)
            out.details.append(f"{key}: {field_of(row, 'client_runs', 'profiles_examined')}")
        if field_of(row, "client_runs", "status") == "Running":
            out.add(stuck_running=1)
    [job] = by_key(srv, "jobs")[base]
    total = count(field_of(job, "jobs", "profiles_examined"))
    if total != per_client * len(CLIENTS):
        out.add(wrong_aggregates=1)
        out.details.append(f"job {base}: total {total}")


def scenario_refusals(cfg: Any, out: Outcome) -> None:
    cases = ("401", "403", "field_deleted", "field_renamed")
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp, _server_and_target(tmp) as (srv, target):
            tracker = target.tracker()
            job = tracker.job()
            runs = job.open_clients(list(CLIENTS))
            for run in runs:
                run.add(profiles_examined=10)
            tracker.flush()
            for run in runs:
                run.add(profiles_examined=5)
                run.close()
            token = srv.token
            if case == "401":
                srv.set_token("revoked")
            elif case == "403":
                srv.faults.add("403", method="PATCH", path="Client", times=10_000)
            else:
                _rename(srv, EXAMINED, "Gone" if case == "field_deleted" else "Renamed")
            try:
                tracker.flush()
                out.add(refusal_not_raised=1)
            except JobtrackError:
                pass
            if case == "401":
                srv.set_token(token)
            elif case == "403":
                srv.faults.clear()
            elif case == "field_deleted":
                srv.api().base(srv.base_id).table(CRR).create_field(
                    EXAMINED, "number", options={"precision": 0}
                )
            else:
                _rename(srv, "Renamed", EXAMINED)
            job.complete()
            tracker.close()
            _judge_job(out, srv, str(job.run_id), 15)
    out.info["refusals"] = len(cases)


def scenario_late(cfg: Any, out: Outcome) -> None:
    rng = random.Random(cfg.seed * 17 + 3)
    kinds = ("job_start", "open", "increment", "close", "job_note")
    for kind in kinds:
        with (
            tempfile.TemporaryDirectory() as tmp,
            _server_and_target(tmp, timeout=1.0) as (
                srv,
                target,
            ),
        ):
            settings = target.settings().model_copy(update={"outbox_settle": 4.0})
            from jobtrack_airtable.transport.client import Connection
            from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
            from jobtrack_airtable.worker.tracker import Tracker

            tracker = Tracker(
                Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01))
            )
            hold = {"delay": 2.5, "method": "PATCH", "path": "Client", "times": 1}
            if kind == "job_start":
                srv.faults.add("delay", **{**hold, "method": "POST", "path": "Job"})
            job = tracker.job()
            if kind == "open":
                srv.faults.add("delay", **hold)
            runs = job.open_clients(list(CLIENTS))
            tracker.flush()
            for run in runs:
                run.add(profiles_examined=10)
            if kind == "increment":
                srv.faults.add("delay", **hold)
            tracker.flush()
            for run in runs:
                run.add(profiles_examined=rng.randint(0, 0) + 5)
            if kind == "close":
                for run in runs[:2]:
                    run.close()
                srv.faults.add("delay", **hold)
                tracker.flush()
                for run in runs[2:]:
                    run.add(profiles_examined=0)
            for run in runs:
                run.close()
            tracker.flush()
            if kind == "job_note":
                srv.faults.add("delay", **{**hold, "path": "Job"})
                job.note("all clients closed")
            job.complete(note="completed")
            tracker.close()
            _held_requests_applied(srv)
            [row] = by_key(srv, "jobs")[str(job.run_id)]
            notes = str(field_of(row, "jobs", "system_notes"))
            if kind == "job_note" and not ("all clients closed" in notes and "completed" in notes):
                out.add(notes_erased=1)
            out.info[f"delay_{kind}"] = srv.faults.counts.get("delay", 0)
            _judge_job(out, srv, str(job.run_id), 15)


def _held_requests_applied(srv: LocalAirtable) -> None:
    """Wait until the server answered every request it held: the late writes have landed."""
    deadline = time.monotonic() + 60
    while any(e.fault == "delay" and e.status is None for e in srv.request_log.entries):
        if time.monotonic() > deadline:
            raise RuntimeError("a held request never finished")
        time.sleep(0.05)


def counting_worker(target: Target, base: str, log_path: str) -> None:
    """Adds 1 at a time to client A, logging each total after ``add()`` returned."""
    tracker = target.tracker()
    run = tracker.client(base, "A")
    with open(log_path, "a", buffering=1) as log:
        n = 0
        while True:
            run.add(profiles_examined=1)
            n += 1
            log.write(f"{n}\n")


def scenario_sigkill(cfg: Any, out: Outcome) -> None:
    rng = random.Random(cfg.seed * 41 + 5)
    ctx = multiprocessing.get_context("spawn")
    rounds = 3 if cfg.quick else 8
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as tmp, _server_and_target(tmp) as (srv, target):
            base = str(target.tracker().job().run_id)
            log_path = Path(tmp) / "log"
            log_path.touch()
            p = ctx.Process(target=counting_worker, args=(target, base, str(log_path)))
            p.start()
            # From before the first add to well into the run.
            deadline = time.monotonic() + 60
            want = rng.choice([0, 1, rng.randint(2, 50), rng.randint(50, 2000)])
            while time.monotonic() < deadline:
                if len(log_path.read_text().split()) >= want:
                    break
                time.sleep(0.01)
            p.kill()
            p.join(10)
            logged = log_path.read_text().split()
            last = int(logged[-1]) if logged else 0
            later = target.tracker()
            later.flush()
            later.close()
            rows = by_key(srv, "client_runs").get(f"{base}-A", [])
            out.add(duplicates=max(0, len(rows) - 1))
            stored = count(field_of(rows[0], "client_runs", "profiles_examined")) if rows else 0
            status = field_of(rows[0], "client_runs", "status") if rows else None
            if not rows and last == 0:
                continue  # killed before the open was recorded: nothing was promised
            if stored not in (last, last + 1):
                out.add(lost=1)
                out.details.append(f"round {i}: logged {last}, stored {stored}")
            if rows and status is None:
                out.add(empty_status=1)
        out.info["killed"] = rounds


def replayer(target: Target, queue: Any, barrier: Any) -> None:
    from jobtrack_airtable.admin.outbox import replay_outbox

    conn = target.connection()
    barrier.wait(60)  # both ready: the replays start together
    queue.put(len(replay_outbox(conn)))


def scenario_replays(cfg: Any, out: Outcome) -> None:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, _server_and_target(tmp) as (srv, target):
        tracker = target.tracker()
        job = tracker.job()
        runs = job.open_clients([f"C{i:03d}" for i in range(40)])
        tracker.flush()
        for run in runs:
            run.add(profiles_examined=15)
            run.close()
        token = srv.token
        srv.set_token("revoked")
        with contextlib.suppress(JobtrackError):
            tracker.close()
        srv.set_token(token)
        queue = ctx.Queue()
        barrier = ctx.Barrier(2)
        ps = [ctx.Process(target=replayer, args=(target, queue, barrier)) for _ in range(2)]
        for p in ps:
            p.start()
        counts = [queue.get(timeout=120) for _ in ps]
        for p in ps:
            p.join(10)
        out.info["replayed"] = "+".join(map(str, sorted(counts)))
        if sum(counts) != len(runs):
            out.add(replayed_twice_or_never=abs(sum(counts) - len(runs)))
        rows = {
            k: v for k, v in by_key(srv, "client_runs").items() if k.startswith(str(job.run_id))
        }
        out.add(duplicates=sum(len(v) - 1 for v in rows.values()))
        for group in rows.values():
            if count(field_of(group[0], "client_runs", "profiles_examined")) != 15:
                out.add(lost=1)
            if field_of(group[0], "client_runs", "status") != "Completed":
                out.add(stuck_running=1)
