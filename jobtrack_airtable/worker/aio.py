"""The asyncio face of the worker API: the same engine, never blocking the event loop.

>>> async with AsyncTracker.from_env() as tracker:                # doctest: +SKIP
...     async with tracker.job(stream=1) as job:
...         async with job.client("Guy-Wilson") as run:
...             run.add(profiles_examined=10)   # a plain call: it only records

**Design.**  pyairtable, requests and the rate limiter are synchronous, and a request may
wait: for the limiter's slot (5 req/s per base), for a retry's back-off, for the 30 s
penalty after a 429.  An ``async`` rewrite of the engine would duplicate every guarantee
(claims, group commit, notes locks, retries) for a second transport.  Instead every
operation that may send a request runs the synchronous engine on this tracker's own small
thread pool (:data:`THREADS` threads), and the coroutine awaits it: the event loop only
ever waits on a future.  Its own pool, not the loop's default executor, so a 30 s penalty
occupies the tracker's threads and never the ones the application's ``to_thread`` calls and
DNS look-ups use.

What never sends a request stays a plain call and runs in the loop's thread:
``run.add/set/note`` record in the run's state and hand it to the group commit, whose own
thread writes it (at most one flush interval later); closing a run in ``async with``
records the close the same way.  Those calls take only locks that are never held across a
request, so they return in microseconds.  A cancelled coroutine stops waiting, but the
request already handed to a thread completes (it cannot be interrupted half-way); what it
wrote is as the synchronous API would have written it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Self, TypeVar, Unpack

from ..metrics import ClientMetrics, MetricValues, RunValues
from ..rows import ClientRunRow, JobRow
from ..run_ids import BaseRunId, ClientRunId
from ..settings import Settings
from ..statuses import Status
from .client_run import ClientRun
from .tracker import Job, Tracker

__all__ = ["AsyncClientRun", "AsyncJob", "AsyncTracker"]

#: Threads per tracker for calls that may send requests.
THREADS = 8
#: The shortest flush interval in asyncio: 0 ("write every change at once") would make
#: ``run.add`` send the request in the loop's thread; this writes it from the commit thread.
MIN_FLUSH_INTERVAL = 0.05

T = TypeVar("T")
W = TypeVar("W", "AsyncJob", "AsyncClientRun")
S = TypeVar("S", Job, ClientRun)


class _Opening(Generic[W]):
    """What ``tracker.job()`` / ``job.client()`` return: ``await`` it for the object, or use
    it in ``async with``, which also ends it on leaving."""

    def __init__(self, make: Callable[[], asyncio.Future[W]]) -> None:
        self._make: Callable[[], asyncio.Future[W]] = make
        self._value: W | None = None

    def __await__(self) -> Generator[Any, None, W]:
        return self._make().__await__()

    async def __aenter__(self) -> W:
        self._value = await self._make()
        return await self._value.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._value is not None
        await self._value.__aexit__(*exc_info)


class AsyncTracker:
    """:class:`~jobtrack_airtable.worker.tracker.Tracker` for asyncio programs (see the
    module's docstring for the design).  Build it with :meth:`from_env`,
    :meth:`from_settings` or around a tracker; use ``async with`` or ``await close()``.
    ``.sync`` is the tracker underneath, for code running in threads."""

    def __init__(self, tracker: Tracker) -> None:
        if tracker.flush_interval < MIN_FLUSH_INTERVAL:
            tracker.flush_interval = MIN_FLUSH_INTERVAL
        self.sync = tracker
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="jobtrack-async")

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncTracker:
        """An async tracker configured from the environment (and ``.env``)."""
        return cls(Tracker.from_env(**kwargs))

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AsyncTracker:
        """An async tracker for explicit settings (e.g. a local server's)."""
        return cls(Tracker.from_settings(settings, **kwargs))

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """``fn(*args, **kwargs)`` on the tracker's threads, as a future of the running loop."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    # ------------------------------------------------------------- lifecycle

    async def flush(self) -> None:
        """Write every pending client-run change now."""
        await self._call(self.sync.flush)

    async def close(self) -> None:
        """Write every pending change, close the HTTP session and the threads."""
        try:
            await self._call(self.sync.close)
        finally:
            self._pool.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ jobs

    def job(self, *, stream: int = 1, note: str | None = None) -> _Opening[AsyncJob]:
        """Start a job (see :meth:`Tracker.job`): ``job = await tracker.job()`` or
        ``async with tracker.job() as job:`` (leaving completes it)."""

        async def start() -> AsyncJob:
            return AsyncJob(self, await self._call(self.sync.job, stream=stream, note=note))

        return _Opening(lambda: asyncio.ensure_future(start()))

    async def attach_job(self, run_id: BaseRunId | str) -> AsyncJob:
        """Attach to a job started elsewhere (1 request)."""
        return AsyncJob(self, await self._call(self.sync.attach_job, run_id))

    async def find_job(self, run_id: BaseRunId | str) -> JobRow | None:
        """The job row of ``run_id`` as stored, or ``None``."""
        return await self._call(self.sync.find_job, run_id)

    def client(
        self,
        job_run_id: BaseRunId | str,
        client_id: str,
        *,
        name: str | None = None,
        force: bool = False,
    ) -> _Opening[AsyncClientRun]:
        """Open a client run of a job started elsewhere (see :meth:`Tracker.client`)."""

        async def open_() -> AsyncClientRun:
            run = await self._call(self.sync.client, job_run_id, client_id, name=name, force=force)
            return AsyncClientRun(self, run)

        return _Opening(lambda: asyncio.ensure_future(open_()))

    async def attach_client_run(self, run_id: ClientRunId | str) -> AsyncClientRun:
        """Resume a client run by its client run ID (1 read)."""
        return AsyncClientRun(self, await self._call(self.sync.attach_client_run, run_id))


class _Face(Generic[S]):
    """What the async job and client run share: the synchronous object underneath (``sync``),
    its tracker, its run ID and status."""

    def __init__(self, tracker: AsyncTracker, sync: S) -> None:
        self.tracker = tracker
        self.sync: S = sync

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    @property
    def run_id(self) -> str:
        return self.sync.run_id

    @property
    def status(self) -> Status:
        return self.sync.status

    async def __aenter__(self) -> Self:
        return self


class AsyncJob(_Face[Job]):
    """A started or attached job; ``async with`` completes it (or fails it on an exception)."""

    def client(
        self, client_id: str, *, name: str | None = None, force: bool = False
    ) -> _Opening[AsyncClientRun]:
        """Open one client run of this job: ``async with job.client(cid) as run:``."""

        async def open_() -> AsyncClientRun:
            return (await self.open_clients([(client_id, name)], force=force))[0]

        return _Opening(lambda: asyncio.ensure_future(open_()))

    async def open_clients(
        self, clients: Iterable[str | tuple[str, str | None]], *, force: bool = False
    ) -> list[AsyncClientRun]:
        """Open many client runs of this job at once (see :meth:`Job.open_clients`)."""
        runs = await self.tracker._call(self.sync.open_clients, list(clients), force=force)
        return [AsyncClientRun(self.tracker, r) for r in runs]

    async def complete(
        self, status: Status | str | None = None, *, force: bool = False, note: str | None = None
    ) -> JobRow | None:
        """Aggregate the client rows and close the job (see :meth:`Job.complete`)."""
        return await self.tracker._call(self.sync.complete, status, force=force, note=note)

    async def fail(self, error: BaseException | str, *, force: bool = False) -> JobRow | None:
        """Close the job as ``Failed`` with the error in System Notes."""
        return await self.tracker._call(self.sync.fail, error, force=force)

    async def note(self, text: str) -> None:
        """Append a line to the job's System Notes (2 requests)."""
        await self.tracker._call(self.sync.note, text)

    async def heartbeat(self) -> None:
        """Refresh the job's Last Updated (1 request)."""
        await self.tracker._call(self.sync.heartbeat)

    async def refresh(self) -> JobRow:
        """Read the job row as stored now (1 request)."""
        return await self.tracker._call(self.sync.refresh)

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.tracker._call(self.sync.__exit__, *exc_info)


class AsyncClientRun(_Face[ClientRun]):
    """One client's run.  ``add``, ``set`` and ``note`` are plain calls (they only record);
    ``async with`` closes it on leaving (``Failed`` on an exception), without waiting for
    the write, which the group commit's thread makes."""

    @property
    def totals(self) -> ClientMetrics:
        return self.sync.totals

    def add(self, **increments: Unpack[MetricValues]) -> None:
        """Add to metric totals (see :meth:`ClientRun.add`); never waits on a request."""
        self.sync.add(**increments)

    def set(self, **values: Unpack[RunValues]) -> None:
        """Set absolute values (see :meth:`ClientRun.set`); never waits on a request."""
        self.sync.set(**values)

    def note(self, text: str) -> None:
        """Append a line to System Notes, written with the next group commit."""
        self.sync.note(text)

    async def flush(self, *, heartbeat: bool = False) -> bool:
        """Write pending changes now (see :meth:`ClientRun.flush`)."""
        return await self.tracker._call(self.sync.flush, heartbeat=heartbeat)

    async def close(
        self,
        status: Status | str | None = None,
        *,
        error: BaseException | str | None = None,
        force: bool = False,
        wait: bool = False,
    ) -> ClientRunRow | None:
        """End the run (see :meth:`ClientRun.close`); ``wait=True`` awaits its write."""
        return await self.tracker._call(
            self.sync.close, status, error=error, force=force, wait=wait
        )

    async def fail(self, error: BaseException | str, *, force: bool = False) -> None:
        """Close as ``Failed`` with ``error`` in Error Details."""
        await self.close(Status.FAILED, error=error, force=force)

    async def __aexit__(self, *exc_info: Any) -> None:
        # Only records the close (the commit thread writes it): no request, no wait.
        self.sync.__exit__(*exc_info)
