"""The asyncio worker API and threads sharing one tracker (issue 21).

Real event loops, the real path (pyairtable → HTTP → the local server), a real 429 from the
server's fault injector.  "Never blocks the loop" is asserted by events, not by timings: the
429's wait is released *by a coroutine*, which can only run if the loop is free while the
request that got the 429 waits.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from jobtrack_airtable import AsyncTracker
from jobtrack_airtable.errors import RunClosedError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows


class Penalty:
    """The retry policy's sleep after the 429: it lasts until the loop releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.released_by_the_loop: list[bool] = []

    def __call__(self, seconds: float) -> None:
        self.started.set()
        self.released_by_the_loop.append(self.release.wait(60))


async def _until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.005)


def _fields(srv: LocalAirtable) -> dict[str, dict]:
    return {r["fields"]["Client ID"]: r["fields"] for r in rows(srv, CRR_TABLE)}


def test_thirty_client_coroutines_and_a_429_never_block_the_loop(
    local_airtable: LocalAirtable,
) -> None:
    penalty = Penalty()
    settings = local_airtable.settings(rate_limit=0, flush_interval=3600)
    conn = Connection.from_settings(settings, policy=DEFAULT_POLICY.with_sleep(penalty))
    ticks_in_penalty = 0

    async def probe(done: asyncio.Event) -> None:
        nonlocal ticks_in_penalty
        while not done.is_set():
            await asyncio.sleep(0.001)
            if penalty.started.is_set() and not penalty.release.is_set():
                ticks_in_penalty += 1

    async def client(job, i: int) -> None:  # type: ignore[no-untyped-def]
        async with job.client(f"Client-{i}") as run:
            for _ in range(5):
                run.add(profiles_examined=1, profile_tokens=10)
                await asyncio.sleep(0)  # the AI call

    async def main() -> None:
        done = asyncio.Event()
        prober = asyncio.create_task(probe(done))
        async with AsyncTracker(Tracker(conn)) as tracker:
            async with tracker.job(stream=2) as job:
                await asyncio.gather(*(client(job, i) for i in range(30)))
                local_airtable.faults.add("429", method="PATCH", times=1)
                flush = asyncio.create_task(tracker.flush())  # its write gets the 429
                await _until(penalty.started)
                await asyncio.sleep(0.01)  # the probe ticks meanwhile
                penalty.release.set()  # only possible while the loop is free
                await flush
            assert job.status.value == "Completed"
        done.set()
        await prober

    asyncio.run(main())
    assert penalty.released_by_the_loop == [True]
    assert ticks_in_penalty > 0
    stored = _fields(local_airtable)
    assert len(stored) == 30
    assert all(f["Status"] == "Completed" for f in stored.values())
    assert all(f["Profiles Examined for Scoring"] == 5 for f in stored.values())
    [job_row] = rows(local_airtable, JOB_TABLE)
    assert job_row["fields"]["Total Profiles Examined"] == 150
    assert job_row["fields"]["Stream"] == 2


def test_async_api_awaitables_and_plain_calls(local_airtable: LocalAirtable) -> None:
    async def main() -> None:
        tracker = AsyncTracker(Tracker(make_conn(local_airtable)))
        job = await tracker.job()
        attached = await tracker.attach_job(job.run_id)
        run = await attached.client("Guy-Wilson")  # an attached job's open is written at once
        run.add(profiles_examined=3)
        run.set(apify_costs=0.5)
        run.note("scored")
        assert await run.flush() is True
        row = await run.close(wait=True)
        assert row is not None and row.metrics.profiles_examined == 3
        with pytest.raises(RunClosedError):
            run.add(profiles_examined=1)
        other = await tracker.client(job.run_id, "Ana-Jones")
        async with other:
            other.add(posts_examined=2)
        await tracker.flush()
        done = await job.complete()
        assert done.aggregates["clients_processed"] == 2
        assert (await tracker.find_job(job.run_id)) is not None
        await tracker.close()

    asyncio.run(main())
    stored = _fields(local_airtable)
    assert stored["Guy-Wilson"]["Status"] == "Completed"
    assert "scored" in stored["Guy-Wilson"]["System Notes"]
    assert stored["Ana-Jones"]["Posts Examined for Scoring"] == 2


def test_an_exception_in_an_async_client_block_fails_that_run_only(
    local_airtable: LocalAirtable,
) -> None:
    async def main() -> None:
        tracker = AsyncTracker(Tracker(make_conn(local_airtable)))
        async with tracker, tracker.job() as job:
            for cid in ("Ok-Client", "Bad-Client"):
                try:
                    async with job.client(cid) as run:
                        run.add(profiles_examined=1)
                        if cid == "Bad-Client":
                            raise TimeoutError("AI provider timed out")
                except TimeoutError:
                    continue

    asyncio.run(main())
    stored = _fields(local_airtable)
    assert stored["Ok-Client"]["Status"] == "Completed"
    assert stored["Bad-Client"]["Status"] == "Failed"
    assert stored["Bad-Client"]["Error Details"] == "TimeoutError: AI provider timed out"
    assert rows(local_airtable, JOB_TABLE)[0]["fields"]["Status"] == "Completed"


def test_sixteen_threads_share_one_tracker(local_airtable: LocalAirtable) -> None:
    """A Tracker is thread-safe: 16 threads open, count and close 5 clients each of one job;
    the group commit batches them all (exact rows, exact requests)."""
    tracker = Tracker(make_conn(local_airtable))
    job = tracker.job()
    local_airtable.request_log.clear()
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for c in range(5):
                with job.client(f"T{t}-C{c}") as run:
                    for _ in range(t + 1):
                        run.add(profiles_examined=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    row = job.complete()
    tracker.close()
    stored = _fields(local_airtable)
    assert len(stored) == 80
    for t in range(16):
        for c in range(5):
            assert stored[f"T{t}-C{c}"]["Profiles Examined for Scoring"] == t + 1
            assert stored[f"T{t}-C{c}"]["Status"] == "Completed"
    assert row.aggregates["profiles_examined"] == 5 * sum(range(1, 17))
    # 80 runs opened and closed: 8 batches of 10; completion: 1 page, the job row, the write.
    assert local_airtable.request_log.total == 8 + 3
