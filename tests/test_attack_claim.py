"""Attack: two job starts whose claim rows get the same ``createdTime`` (Airtable stamps
creation to the millisecond; two hosts can create in the same millisecond).

The claim rule "the oldest row wins, ties broken by record ID" is only safe when every
claimant sees every tied row: a host that listed before the other's create sees itself
alone and wins, and the other, seeing a tie it wins on record ID, wins as well.  Record
IDs are random, so a tie must never be won.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from jobtrack_airtable.local import LocalAirtable, storage
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import JOB_TABLE, by_key, make_conn


def test_two_starts_in_the_same_millisecond_never_both_win(
    local_airtable: LocalAirtable, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime(2025, 9, 30, 14, 15, 22, 123000, tzinfo=UTC)
    # The server stamps every create in the same millisecond ...
    monkeypatch.setattr(local_airtable.store, "clock", lambda: frozen)
    # ... and hands out record IDs in decreasing order (they are random on Airtable: the
    # later row has the smaller ID half of the time).
    counter = itertools.count(99_999, -1)
    monkeypatch.setattr(storage, "new_id", lambda prefix: f"{prefix}{next(counter):014d}")
    first = Tracker(make_conn(local_airtable), clock=lambda: frozen)
    second = Tracker(make_conn(local_airtable), clock=lambda: frozen)
    a = first.job()  # created, listed: alone, it wins
    b = second.job()  # created in the same ms with a smaller ID: it must not win too
    assert str(a.run_id) != str(b.run_id)
    assert {k: len(v) for k, v in by_key(local_airtable, JOB_TABLE).items()} == {
        str(a.run_id): 1,
        str(b.run_id): 1,
    }
