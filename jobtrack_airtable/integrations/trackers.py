"""The process's default tracker for integrations: built from the environment on first use,
in the process that uses it.

A prefork worker (Celery's default pool, RQ's fork-per-job, gunicorn ``--preload``) imports
the task module in the parent and forks the children that run tasks: a tracker built at
import time would be shared by every child.  It would still work (see
:mod:`jobtrack_airtable.forks`), but each child has its own connections, threads and group
commit anyway, so the default tracker is built lazily, once per process id.
"""

from __future__ import annotations

import os
import threading

from .. import forks
from ..worker.aio import AsyncTracker
from ..worker.tracker import Tracker

__all__ = ["default_async_tracker", "default_tracker"]

_lock = threading.Lock()
_trackers: dict[int, Tracker] = {}
_async: dict[int, AsyncTracker] = {}


def _fresh_lock() -> None:
    global _lock
    _lock = threading.Lock()


forks.at_fork(_fresh_lock)


def default_tracker() -> Tracker:
    """This process's tracker, ``Tracker.from_env()`` on first use."""
    pid = os.getpid()
    with _lock:
        tracker = _trackers.get(pid)
        if tracker is None:
            _trackers.clear()  # a parent's, inherited through fork: not ours to use
            tracker = _trackers[pid] = Tracker.from_env()
        return tracker


def default_async_tracker() -> AsyncTracker:
    """This process's :class:`AsyncTracker`, around :func:`default_tracker`."""
    tracker = default_tracker()
    pid = os.getpid()
    with _lock:
        wrapper = _async.get(pid)
        if wrapper is None or wrapper.sync is not tracker:
            _async.clear()
            wrapper = _async[pid] = AsyncTracker(tracker)
        return wrapper
