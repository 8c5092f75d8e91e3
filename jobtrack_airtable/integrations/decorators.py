"""``@tracked_job``: any function, sync or async, recorded as a job.

>>> @tracked_job(stream=1)                                       # doctest: +SKIP
... def nightly(clients):
...     job = current_job()
...     for cid in clients:
...         with job.client(cid) as run:
...             run.add(profiles_examined=score(cid))

Each call starts a job (2 requests), runs the function with the job reachable through
:func:`current_job` (:func:`current_async_job` in a coroutine function), and completes it
when the function returns -- or fails it, with the error in System Notes, when it raises
(the exception propagates).  Client runs are opened inside, as usual; those still open when
the function ends are closed with the job.  The tracker is ``tracker`` (a tracker, or a
function returning one), else this process's default (:func:`default_tracker`).
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from ..errors import InvalidInputError, JobtrackError, show
from ..worker.aio import AsyncJob, AsyncTracker
from ..worker.tracker import Job, Tracker
from .trackers import default_async_tracker, default_tracker

__all__ = ["current_async_job", "current_job", "tracked_job"]

F = TypeVar("F", bound=Callable[..., Any])

_job: ContextVar[Job | None] = ContextVar("jobtrack_job", default=None)
_async_job: ContextVar[AsyncJob | None] = ContextVar("jobtrack_async_job", default=None)
_wrappers: weakref.WeakKeyDictionary[Tracker, AsyncTracker] = weakref.WeakKeyDictionary()


def current_job() -> Job:
    """The job of the ``@tracked_job`` function running in this context."""
    job = _job.get()
    if job is None:
        raise JobtrackError("no tracked job here: call this inside a @tracked_job function")
    return job


def current_async_job() -> AsyncJob:
    """The job of the ``@tracked_job`` coroutine function running in this context."""
    job = _async_job.get()
    if job is None:
        raise JobtrackError(
            "no tracked job here: call this inside a @tracked_job coroutine function"
        )
    return job


def _resolve(tracker: Tracker | Callable[[], Tracker] | None) -> Tracker:
    if tracker is None:
        return default_tracker()
    return tracker if isinstance(tracker, Tracker) else tracker()


def _async(tracker: Tracker | Callable[[], Tracker] | None) -> AsyncTracker:
    if tracker is None:
        return default_async_tracker()
    sync = _resolve(tracker)
    wrapper = _wrappers.get(sync)
    if wrapper is None:
        # One per tracker: each owns a thread pool.
        wrapper = _wrappers[sync] = AsyncTracker(sync)
    return wrapper


def tracked_job(
    stream: int = 1,
    *,
    note: str | None = None,
    tracker: Tracker | Callable[[], Tracker] | None = None,
) -> Callable[[F], F]:
    """Record every call of the decorated function as a job of ``stream``."""
    if isinstance(stream, bool) or not isinstance(stream, int) or stream < 1:
        # At decoration time, not at the first call hours later.
        raise InvalidInputError(f"stream must be an integer ≥ 1, got {show(stream)}")

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with _async(tracker).job(stream=stream, note=note) as job:
                    token = _async_job.set(job)
                    try:
                        return await fn(*args, **kwargs)
                    finally:
                        _async_job.reset(token)

            return cast(F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _resolve(tracker).job(stream=stream, note=note) as job:
                token = _job.set(job)
                try:
                    return fn(*args, **kwargs)
                finally:
                    _job.reset(token)

        return cast(F, run)

    return decorate
