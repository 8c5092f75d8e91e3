"""Monthly request counters (issue 15 item 1): every request the library sends is counted per
base and month, by kind, in the limiter's shared store -- exactly, checked against the local
server's request log."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobtrack_airtable.errors import ConfigError, InvalidInputError
from jobtrack_airtable.limiter import usage_counts
from jobtrack_airtable.limiter.usage import month_of
from jobtrack_airtable.settings import Settings

from .conftest import MakeLocalAirtable
from .helpers import usage_expected, usage_work


def test_usage_is_counted_exactly_in_the_sqlite_store(
    make_local_airtable: MakeLocalAirtable, tmp_path: Path
) -> None:
    srv = make_local_airtable(rate_limit=5, penalty_seconds=0.3)
    settings = srv.settings(limiter_url=f"sqlite:///{tmp_path / 'rl.sqlite'}", rate_limit=5)
    usage_work(srv, settings)
    usage = usage_counts(settings)
    expected = usage_expected(srv)
    print(f"\nusage {usage.month}: {dict(usage.counts)}; server saw {expected}")
    assert usage.month == month_of(time.time())
    assert usage.total == expected["total"]
    assert usage.reads == expected["reads"]
    assert usage.writes == expected["writes"]
    assert usage.get("rate_limited") == expected["rate_limited"] == 1
    assert usage.get("retries") == expected["retries"] == 2
    assert usage.get("sync_reads") == 2
    assert usage.get("sync_writes") == 0
    assert usage.get("worker_reads") + usage.get("worker_writes") == expected["total"] - 2
    assert usage.get("failed") == 0
    # Another month, another base: nothing.
    assert usage_counts(settings, "1999-01").total == 0
    assert usage_counts(settings, base_id="appOtherOtherOthe").total == 0


def test_usage_counts_refuses_bad_input_before_reading(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, base_id="appAAAAAAAAAAAAAA", limiter_url=f"sqlite:///{tmp_path}/rl"
    )
    for bad in ("2026-13", "26-01", "December", ""):
        with pytest.raises(InvalidInputError, match=repr(bad)):
            usage_counts(settings, bad)
    with pytest.raises(ConfigError, match="AIRTABLE_BASE_ID"):
        usage_counts(Settings(_env_file=None))
    with pytest.raises(ConfigError, match="JOBTRACK_RATE_LIMIT=0"):
        usage_counts(Settings(_env_file=None, base_id="appAAAAAAAAAAAAAA", rate_limit=0))
    assert not (tmp_path / "rl").exists()  # refused before the store was touched
