"""Drain pending writes at exit and on SIGTERM, without making SIGTERM unreliable.

:func:`install` registers ``drain`` with :mod:`atexit` and, where nobody else handles
SIGTERM, as a SIGTERM handler that drains and then dies of SIGTERM as the process would have.

A Python signal handler only runs when the main thread is back in the interpreter.  A main
thread blocked inside C -- a SQLite busy wait, a semaphore (a ``multiprocessing.Pool`` worker
waiting for its next task), a signal landing just before a blocking call -- would leave the
process alive after SIGTERM, and ``Pool.terminate()`` or a supervisor waiting for it would
hang.  So the handler is backed by a watcher thread, woken through the signal wakeup fd: if
the main thread has not started the handler within :data:`GRACE` seconds, the watcher drains
(for at most :data:`DRAIN_LIMIT` seconds) and ends the process with SIGTERM itself.

A forked child starts with none of this (the pipe and the thread belong to the parent): it
gets SIGTERM's default action back until it installs its own.

>>> install(lambda reason: None)  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from .. import forks

__all__ = ["DRAIN_LIMIT", "GRACE", "install"]

log = logging.getLogger(__name__)

#: Seconds the main thread has to start the SIGTERM handler before the watcher takes over.
GRACE = 1.0
#: Seconds the watcher lets a drain run before the process dies anyway.
DRAIN_LIMIT = 5.0

_lock = threading.Lock()
_drains: list[Callable[[str], None]] = []
_atexit_registered = False
#: The process whose handler and watcher are installed (a forked child has none).
_installed_pid: int | None = None
_handler_started = threading.Event()
_pipe: tuple[int, int] | None = None


def install(drain: Callable[[str], None]) -> None:
    """Call ``drain(reason)`` at interpreter exit and on SIGTERM (once per process).

    The SIGTERM handler is installed only from the main thread and only where SIGTERM still
    has its default action: an application's own handler is never replaced.
    """
    global _atexit_registered, _installed_pid
    with _lock:
        if drain not in _drains:
            _drains.append(drain)
        if not _atexit_registered:  # atexit's list survives fork: once is enough
            _atexit_registered = True
            atexit.register(_drain_all, "exit")
        if _installed_pid == os.getpid():
            return
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return
            signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # pragma: no cover - not the main interpreter
            return
        _installed_pid = os.getpid()
        _handler_started.clear()
        _start_watcher()


def _drain_all(reason: str) -> None:
    for drain in list(_drains):
        try:
            drain(reason)
        except Exception as exc:  # a drain must never stop the others, nor the exit
            log.warning("draining at %s failed: %s", reason, exc)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _handler_started.set()
    _drain_all("SIGTERM")
    # Die of SIGTERM as the process would have without us (exit status, parent's view).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _start_watcher() -> None:
    global _pipe
    if os.name != "posix":  # pragma: no cover - the wakeup fd takes sockets elsewhere
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # pragma: no cover - not the main thread
        os.close(r)
        os.close(w)
        return
    if previous != -1:
        # Someone (an event loop) reads the wakeup fd: leave it theirs.  The handler alone
        # then covers SIGTERM, as it does for them.
        signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)
        return
    _pipe = (r, w)
    threading.Thread(target=_watch, args=(r,), name="jobtrack-sigterm", daemon=True).start()


def _watch(fd: int) -> None:
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return
        if signal.SIGTERM in data and not _handler_started.wait(GRACE):
            _die_of_sigterm()


def _die_of_sigterm() -> None:
    """The main thread is stuck in C: drain from here, bounded, then die of SIGTERM."""
    log.warning("SIGTERM: the main thread is blocked; draining from a helper thread")
    drainer = threading.Thread(target=_drain_all, args=("SIGTERM",), daemon=True)
    drainer.start()
    drainer.join(DRAIN_LIMIT)
    try:
        # signal.signal() is main-thread only; the C library's is not.  SIG_DFL is 0.
        libc = ctypes.CDLL(None)
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc.signal(signal.SIGTERM, None)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the default action ends the process meanwhile
    finally:
        os._exit(128 + signal.SIGTERM)  # only if the default action did not end us


def _after_fork_in_child() -> None:
    global _installed_pid, _pipe, _lock
    _lock = threading.Lock()  # a parent thread may have held it
    if _installed_pid is None:
        return
    _installed_pid = None
    if _pipe is not None:
        with contextlib.suppress(ValueError):  # forked from a thread that is not main
            signal.set_wakeup_fd(-1)
        for fd in _pipe:
            os.close(fd)
        _pipe = None
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # pragma: no cover
        pass


forks.at_fork(_after_fork_in_child)
