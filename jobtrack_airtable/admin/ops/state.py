"""The small local state file of ``check``: when it last ran and which problems it reported.

One JSON document per base (the default lives in the per-user state directory, named after
the base ID; ``--state FILE`` picks another)::

    {"format_version": 1, "base_id": "app…", "last_check": "2025-10-01T07:05:00.000Z",
     "problems": {"failed_run:250930-141522": {"kind": "failed_run", "message": "…",
                  "at": "2025-09-30T14:20:00.000Z", "event": true,
                  "delivered": ["json-3f2a9c0d1e4b"]}}}

``delivered`` lists the notification targets (by :attr:`~.notify.Target.id`, a digest that
reveals nothing of the URL) the problem has been sent to, so a failed delivery is retried to
that target only.  A condition that cleared keeps its entry, with ``resolved_at`` and
``resolved_delivered``, until each of those targets has had one "resolved" message.

It is read and written under a file lock held for the whole check (:func:`locked_state`), so
two checks started by overlapping cron jobs never both announce the same problem.  Writes go
to a temporary file renamed over the old one: a crash leaves the old state or the new one,
never half of either.  A corrupt file is a :class:`~jobtrack_airtable.errors.ConfigError`
(never silently reset: that would announce every problem again).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import filelock
import platformdirs

from ...errors import ConfigError
from ...files import write_atomically
from ...timeutil import parse_airtable, to_airtable

__all__ = [
    "STATE_FORMAT_VERSION",
    "CheckState",
    "SeenProblem",
    "default_state_path",
    "locked_state",
]

STATE_FORMAT_VERSION = 1
LOCK_TIMEOUT_SECONDS = 60.0


def default_state_path(base_id: str) -> Path:
    """``<user state dir>/check-<base id>.json``."""
    return Path(platformdirs.user_state_dir("jobtrack-airtable")) / f"check-{base_id}.json"


@dataclass
class SeenProblem:
    """A problem a check has reported: what it said, when it happened (events) or was first
    seen (conditions), and the notification targets it was delivered to."""

    kind: str
    message: str
    at: datetime
    event: bool
    delivered: set[str] = field(default_factory=set)
    #: When a condition cleared; it is kept until every target that had the problem has
    #: had its one "resolved" message (``resolved_delivered``).
    resolved_at: datetime | None = None
    resolved_delivered: set[str] = field(default_factory=set)

    @property
    def resolution_pending(self) -> set[str]:
        """The targets still owed a "resolved" message."""
        return self.delivered - self.resolved_delivered if self.resolved_at else set()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "message": self.message,
            "at": to_airtable(self.at),
            "event": self.event,
            "delivered": sorted(self.delivered),
        }
        if self.resolved_at is not None:
            doc["resolved_at"] = to_airtable(self.resolved_at)
            doc["resolved_delivered"] = sorted(self.resolved_delivered)
        return doc

    @classmethod
    def from_json(cls, raw: Any) -> SeenProblem:
        resolved = raw.get("resolved_at")
        return cls(
            kind=str(raw["kind"]),
            message=str(raw["message"]),
            at=parse_airtable(raw["at"]),
            event=bool(raw["event"]),
            delivered={str(t) for t in raw["delivered"]},
            resolved_at=parse_airtable(resolved) if resolved else None,
            resolved_delivered={str(t) for t in raw.get("resolved_delivered", [])},
        )


@dataclass
class CheckState:
    """What the previous check left: ``last_check`` (``None`` before the first) and the
    problems reported, by problem key."""

    base_id: str
    last_check: datetime | None = None
    problems: dict[str, SeenProblem] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": STATE_FORMAT_VERSION,
            "base_id": self.base_id,
            "last_check": to_airtable(self.last_check) if self.last_check else None,
            "problems": {k: p.to_json() for k, p in sorted(self.problems.items())},
        }

    @classmethod
    def load(cls, path: Path, base_id: str) -> CheckState:
        """The state in ``path``, or a fresh one if the file does not exist."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(base_id=base_id)
        except OSError as exc:
            raise ConfigError(f"cannot read the check state {str(path)!r}: {exc}") from None
        try:
            raw = json.loads(text)
            if raw.get("format_version") != STATE_FORMAT_VERSION:
                raise ValueError(f"unknown format_version {raw.get('format_version')!r}")
            if raw.get("base_id") != base_id:
                raise ValueError(
                    f"it belongs to base {raw.get('base_id')!r}, not {base_id!r} "
                    "(give each base its own --state file)"
                )
            last = raw.get("last_check")
            return cls(
                base_id=base_id,
                last_check=parse_airtable(last) if last else None,
                problems={k: SeenProblem.from_json(v) for k, v in raw["problems"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"the check state {str(path)!r} is unreadable: {exc}; move it away to start "
                "afresh (every current problem is then reported as new)"
            ) from None

    def save(self, path: Path) -> None:
        """Write atomically (temporary file in the same directory, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def locked_state(path: Path, base_id: str) -> Iterator[CheckState]:
    """Hold the state file's lock, yield its state, and save it when the block succeeds
    (an exception leaves the previous state untouched)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ConfigError(
            f"another check holds {str(path)!r} for more than {LOCK_TIMEOUT_SECONDS:.0f} s"
        ) from None
    try:
        state = CheckState.load(path, base_id)
        yield state
        state.save(path)
    finally:
        lock.release()
