"""The outbox's small storage protocol: one entry per row, the newest state of that row.

An entry is keyed by ``base/table/run ID`` and holds the row's newest state as this machine
knows it (absolute totals, status, note lines not yet on Airtable) with a *version* that only
grows.  Every write of an entry is stored, at a version above the stored one whatever version
it brings (the store raises it in the same transaction and returns it): a process whose clock
went back, or another host's with a skewed clock, re-opening a run can neither have its
changes silently ignored nor leave an older entry that a replay would write over its newer
state.  The last change made to a row is the one kept, as on Airtable.  An entry leaves
the store only when Airtable holds that version (``retire``), or when an admin drops it.

Implementations: :class:`~.sqlite.SqliteOutbox` (one machine, WAL) and
:class:`~.redis.RedisOutbox` (a fleet without durable disks).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "LIVE_OWNERS",
    "RELEASED",
    "Entry",
    "OutboxStore",
    "entry_key",
    "new_owner",
    "owner_alive",
    "split_key",
]


@dataclass(frozen=True)
class Entry:
    """One row's pending state.

    ``payload`` is the state as JSON (see ``client_run.ClientRun.snapshot``); ``owner`` the
    process holding it (``host:pid:nonce``); ``error`` the last refusal, if any;
    ``verify_after`` (epoch seconds, 0 = none) when a write whose answer timed out has had
    time to land, so that a read can tell whether it overwrote newer state.
    """

    key: str
    version: int
    payload: str
    owner: str
    updated: float
    error: str | None = None
    verify_after: float = 0.0

    @property
    def base_id(self) -> str:
        return split_key(self.key)[0]

    @property
    def table(self) -> str:
        return split_key(self.key)[1]

    @property
    def run_id(self) -> str:
        return split_key(self.key)[2]


def entry_key(base_id: str, table: str, run_id: str) -> str:
    """``base/table/run ID``: run IDs may hold ``/``; base IDs and table keys never do."""
    return f"{base_id}/{table}/{run_id}"


def split_key(key: str) -> tuple[str, str, str]:
    base_id, table, run_id = key.split("/", 2)
    return base_id, table, run_id


def new_owner() -> str:
    """This process's owner tag: host, pid and a nonce (a reused pid is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


#: The owner of entries a closed tracker left: any process may replay them.
RELEASED = ""

#: Owner tags of this process's open trackers (a closed tracker's entries are orphans).
LIVE_OWNERS: set[str] = set()


def owner_alive(owner: str) -> bool:
    """Whether ``owner`` may still be running: another host's process is assumed alive
    (only an admin replay with ``--all`` takes its entries); on this host, whether its pid
    exists (and, for this very process, whether that tracker is still open)."""
    if owner == RELEASED:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return owner in LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_process(owner: str) -> bool:
    """Whether ``owner`` is a tracker of this very process (host and pid)."""
    host, _, rest = owner.partition(":")
    return host == socket.gethostname() and rest.partition(":")[0] == str(os.getpid())


def now() -> float:
    return time.time()


class OutboxStore(Protocol):
    """What the tracker and the admin commands need of a store."""

    def put(self, key: str, version: int, payload: str, owner: str) -> int:
        """Store ``payload`` as the row's state at ``version``, or just above the stored
        version if that is not lower: the version stored (the caller continues from it)."""
        ...

    def retire(self, key: str, version: int, *, verify_after: float = 0.0) -> None:
        """Airtable acknowledged ``version``: drop the entry if it holds no newer version.
        With ``verify_after``, keep it until then (a timed-out write may still land)."""
        ...

    def refused(self, key: str, version: int, error: str) -> None:
        """Airtable refused the write of ``version``: keep the entry, noting why."""
        ...

    def get(self, key: str) -> Entry | None: ...

    def entries(self, prefix: str = "") -> list[Entry]:
        """Every entry whose key starts with ``prefix``, oldest change first."""
        ...

    def claim(self, keys: Sequence[str], owner: str, *, expected: dict[str, str]) -> list[str]:
        """Move the entries of ``keys`` to ``owner`` where they still belong to
        ``expected[key]`` (compare and swap): the keys claimed.  Two replays racing claim
        disjoint sets."""
        ...

    def drop(self, keys: Sequence[str], *, versions: dict[str, int] | None = None) -> int:
        """Delete entries (only at the given versions, when given): how many went."""
        ...

    def spend(self, n: float, *, rate: float, burst: float, at: float) -> float:
        """Debit ``n`` requests from the machine's request budget (tokens accrue at ``rate``
        per second, up to ``burst``) and return the balance after it."""
        ...

    def hold(self, key: str, owner: str) -> str | None:
        """Take the lease of the run ``key`` for ``owner``: ``None`` when ``owner`` holds it
        now, else the live holder (left as it is).  One process at a time, since each writes
        its own absolute totals; a holder that died (:func:`owner_alive`) loses it, and so
        does another tracker of the calling process (a tracker left unclosed must not lock
        its runs away from the process that dropped it)."""
        ...

    def unhold(self, owner: str, keys: Sequence[str] | None = None) -> None:
        """Give up ``owner``'s leases of ``keys`` (every one of them when ``None``)."""
        ...

    def close(self) -> None: ...
