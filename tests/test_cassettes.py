"""Recorded HTTP contracts: the exact exchange of each public worker operation.

By default the cassettes under ``cassettes/`` are *replayed* with ``record_mode="none"``: no
server, no network, and any request the library sends that is not in the cassette (a changed
body, an extra request) fails the test.  Re-record them:

* against the local server::

    JOBTRACK_RECORD_CASSETTES=local .venv/bin/pytest tests/test_cassettes.py

* against a real Airtable sandbox base (its tables created from ``config/schema.toml``)::

    JOBTRACK_RECORD_CASSETTES=airtable AIRTABLE_API_KEY=… AIRTABLE_BASE_ID=app… \
      .venv/bin/pytest tests/test_cassettes.py

The Authorization header is filtered out of every recording, and a real base ID is rewritten
to the test base ID so the paths match on replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import vcr
from vcr.cassette import Cassette

from jobtrack_airtable.settings import Settings
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID, TEST_TOKEN
from .helpers import CASSETTES, MODE, cassette_vcr

FIXED = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
# Nothing listens on the discard port: on replay every request must come from the cassette.
REPLAY_ENDPOINT = "http://127.0.0.1:9"


@dataclass
class Recorder:
    tracker: Tracker
    cassette_name: str
    vcr: vcr.VCR

    def cassette(self) -> Any:
        name = f"{self.cassette_name}.yaml"
        if MODE:
            # A recording replaces the cassette: vcrpy appends to an existing one, and the
            # exact request counts asserted below would see every interaction twice.
            (CASSETTES / name).unlink(missing_ok=True)
        return self.vcr.use_cassette(name)


@pytest.fixture
def recorder(request: pytest.FixtureRequest, make_local_airtable: Any) -> Iterator[Recorder]:
    name = request.node.name.removeprefix("test_")
    real_base: str | None = None
    if MODE == "local":
        srv = make_local_airtable()
        endpoint, token, base = srv.url, TEST_TOKEN, TEST_BASE_ID
    elif MODE == "airtable":
        env = Settings()
        if not env.has_credentials:
            pytest.fail("JOBTRACK_RECORD_CASSETTES=airtable needs AIRTABLE_API_KEY/BASE_ID")
        assert env.api_key is not None and env.base_id is not None
        endpoint, token, base = None, env.api_key.get_secret_value(), env.base_id
        real_base = base
        _clean_sandbox(env)
    else:
        endpoint, token, base = REPLAY_ENDPOINT, TEST_TOKEN, TEST_BASE_ID
    settings = Settings(
        _env_file=None,
        api_key=token,
        base_id=base,
        endpoint_url=endpoint,
        rate_limit=0 if MODE != "airtable" else 5,
        flush_interval=3600,
    )
    conn = Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01))
    tracker = Tracker(
        conn, clock=lambda: FIXED, origin="cassette-host pid 1", claim_marker=lambda: "c1a1m0000001"
    )
    yield Recorder(tracker, name, cassette_vcr(real_base))
    conn.close()


def _clean_sandbox(settings: Settings) -> None:  # pragma: no cover - needs real Airtable
    conn = Connection.from_settings(settings)
    for key in ("jobs", "client_runs"):
        table = conn.table(key)
        stale = [r["id"] for r in table.all(formula="LEFT({Run ID}, 9)='250930-14'")]
        if stale:
            table.batch_delete(stale)


def _played(cassette: Cassette) -> int:
    return int(cassette.play_count) if not MODE else len(cassette.requests)


def test_start_job(recorder: Recorder) -> None:
    with recorder.cassette() as cassette:
        job = recorder.tracker.job(stream=2)
        assert str(job.run_id) == "250930-141522"
        assert _played(cassette) == 2


def test_client_run_open_update_close(recorder: Recorder) -> None:
    with recorder.cassette() as cassette:
        job = recorder.tracker.job()
        before = _played(cassette)
        run = job.client("Guy-Wilson", name="Guy Wilson")
        run.add(profiles_examined=10, profiles_scored=7, profile_tokens=4200)
        run.flush()
        run.set(apify_run_id="8MSTBAfqMzuXPvgB3", apify_costs=0.42)
        row = run.close(wait=True)
        assert _played(cassette) - before == 2  # open + first totals coalesced, then close
        assert row is not None
        assert row.status is Status.COMPLETED
        assert row.metrics.profiles_examined == 10
        assert str(row.metrics.apify_costs) == "0.42"


def test_batch_open(recorder: Recorder) -> None:
    with recorder.cassette() as cassette:
        job = recorder.tracker.job()
        before = _played(cassette)
        runs = job.open_clients([f"Client-{i:02d}" for i in range(12)] + ['O\'Brien "Q"'])
        recorder.tracker.flush()
        assert _played(cassette) - before == 2
        assert [r.client_id for r in runs][-1] == 'O\'Brien "Q"'


def test_complete_job_with_aggregation(recorder: Recorder) -> None:
    with recorder.cassette() as cassette:
        job = recorder.tracker.job()
        a, b, c = job.open_clients(["Guy-Wilson", "Carl-Jones", "Empty-Co"])
        a.add(profiles_examined=10, profiles_scored=9, post_tokens=100)
        a.close()
        b.add(posts_examined=4)
        b.close(error=RuntimeError("scoring API down"))
        c.close()
        before = _played(cassette)
        row = job.complete()
        # the three pending closes (one request), the job row, the client rows, the job write
        assert _played(cassette) - before == 4
        assert row.status is Status.COMPLETED
        assert row.aggregates["clients_processed"] == 3
        assert row.aggregates["clients_with_errors"] == 1
        assert row.aggregates["profiles_examined"] == 10


def test_attach_by_run_id(recorder: Recorder) -> None:
    with recorder.cassette() as cassette:
        job = recorder.tracker.job()
        with job.client("Guy-Wilson") as run:
            run.add(profiles_examined=3)
        recorder.tracker.flush()
        before = _played(cassette)
        attached = recorder.tracker.attach_job("250930-141522")
        resumed = recorder.tracker.attach_client_run("250930-141522-Guy-Wilson")
        assert _played(cassette) - before == 2
        assert attached.status is Status.RUNNING
        assert resumed.totals.profiles_examined == 3


def test_cassettes_hold_no_token() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        text = path.read_text()
        assert TEST_TOKEN not in text
        assert "Bearer" not in text
