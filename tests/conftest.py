"""Shared fixtures: a real local Airtable-compatible server over HTTP.

* ``local_airtable`` — a fresh :class:`LocalAirtable` per test (default schema, rate limit
  off, base ``appJobtrackTest01``, token ``test-token-not-secret``).
* ``api`` — a ``pyairtable.Api`` bound to it (no pyairtable retries, explicit timeout).
* ``make_local_airtable`` — factory for servers with custom options
  (``make_local_airtable(rate_limit=5, penalty_seconds=0.3)``); all are stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyairtable
import pytest

from jobtrack_airtable.local import LocalAirtable

TEST_BASE_ID = "appJobtrackTest01"
TEST_TOKEN = "test-token-not-secret"

MakeLocalAirtable = Callable[..., LocalAirtable]


@pytest.fixture
def make_local_airtable() -> Iterator[MakeLocalAirtable]:
    """Start servers with custom options; every server started is stopped at teardown."""
    started: list[LocalAirtable] = []

    def make(**options: Any) -> LocalAirtable:
        options.setdefault("token", TEST_TOKEN)
        options.setdefault("base_id", TEST_BASE_ID)
        options.setdefault("rate_limit", None)
        srv = LocalAirtable(**options).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def local_airtable(make_local_airtable: MakeLocalAirtable) -> LocalAirtable:
    """A fresh local Airtable server (default schema, rate limit off)."""
    return make_local_airtable()


@pytest.fixture
def api(local_airtable: LocalAirtable) -> pyairtable.Api:
    """A pyairtable Api bound to ``local_airtable``."""
    return local_airtable.api()
