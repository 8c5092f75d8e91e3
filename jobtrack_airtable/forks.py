"""Fork safety: what a child process must not inherit from its parent.

``os.fork()`` (multiprocessing's ``fork`` start method, Celery's prefork pool, gunicorn
``--preload``) copies the parent's memory into the child but only the thread that forked.  A
lock another thread held at that moment (the group commit flushing, the limiter in a
transaction) stays held for ever in the child, whose every write then blocks on it; a
keep-alive connection is shared by both processes, which then read each other's responses;
a background thread is simply gone.  So every component holding such things registers here
how to start afresh, and the child runs every reset before it returns from ``fork()``:

* :func:`register` -- an object and the function that resets it (``reset(obj)``); the object
  is held by weak reference, so registering costs it nothing when it dies;
* :func:`at_fork` -- a module-level reset (``reset()``).

Resets run in the child only, in registration order, with a single thread alive: they must
only replace state (new locks, new pools, no thread started), never wait.

>>> import threading
>>> class Worker:
...     def __init__(self) -> None:
...         self.lock = threading.Lock()
...         register(self, Worker.fresh_lock)
...     def fresh_lock(self) -> None:
...         self.lock = threading.Lock()
>>> w = Worker(); w.lock.acquire()
True
>>> run_resets()   # what the child does after a fork
>>> w.lock.locked()
False
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["at_fork", "register", "run_resets"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# No lock guards these: a lock taken by a registering thread at the moment of a fork would
# be held for ever in the child, the very bug this module exists for.  Appending to a list
# and adding to a WeakSet are atomic under the GIL, and the child iterates copies.
_object_resets: dict[Callable[[Any], None], weakref.WeakSet[Any]] = {}
_order: list[Callable[..., None]] = []


def register(obj: T, reset: Callable[[T], None]) -> None:
    """After a fork, call ``reset(obj)`` in the child while ``obj`` is alive."""
    objects = _object_resets.get(reset)
    if objects is None:
        objects = _object_resets.setdefault(reset, weakref.WeakSet())
        if reset not in _order:
            _order.append(reset)
    objects.add(obj)


def at_fork(reset: Callable[[], None]) -> None:
    """After a fork, call ``reset()`` in the child (once per registration)."""
    _order.append(reset)


def run_resets() -> None:
    """Run every reset, as the child does after a fork (also callable directly: tests)."""
    for reset in list(_order):
        objects = _object_resets.get(reset)
        targets: list[tuple[Any, ...]] = (
            [(obj,) for obj in list(objects)] if objects is not None else [()]
        )
        for args in targets:
            try:
                reset(*args)
            except Exception:  # one broken reset must not leave the others undone
                log.exception("after-fork reset %r failed", reset)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=run_resets)
