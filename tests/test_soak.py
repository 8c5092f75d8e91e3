"""A small, fast version of ``benchmarks/soak.py``: worker threads run the example worker's
jobs under random 429s, 5xx, dropped connections and lost responses; afterwards the base
holds exactly what the workers meant to record.  Plus the example worker end to end, and the
behaviour behind the soak's zero-loss result when the retry policy gives up on a flush."""

from __future__ import annotations

import logging
import random

import pytest

from benchmarks._harness import (
    BENCH_TOKEN,
    SoakConfig,
    compare,
    make_tracker,
    run_soak,
    start_server,
)
from examples import lead_scoring_worker
from examples.lead_scoring_worker import make_plan, run_job
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY

CRR = "Client%20Run%20Results"


@pytest.mark.slow
def test_small_soak_loses_nothing_under_faults() -> None:
    # The soak's default fault rates (10% 429, 5% 5xx, 3% dropped, 3% response lost; ~20% of
    # requests fail) and retry policy scaled to a 0.3 s penalty.  10 attempts instead of the
    # default 6: at this failure rate 6 attempts give up once in ~18,000 requests, which is
    # the retry budget (covered below), not what this test is about.
    config = SoakConfig(
        workers=2, jobs=2, clients=8, chunks=5, seed=5, processes=False, max_attempts=10
    )
    report = run_soak(config)
    d = report.discrepancies
    assert not report.worker_crashes
    assert sum(report.faults.values()) > 20  # the faults did fire
    assert d.tracking_errors == 0
    assert d.summary() == "lost=0 duplicates=0 wrong_aggregates=0 stuck_running=0", d.details
    assert d.wrong_status == 0, d.details
    assert len(report.truths) == 4
    assert report.increments > 100


def test_a_flush_the_retry_policy_gives_up_on_is_kept_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # With the library's default attempts, six 503s in a row exhaust the policy on a deferred
    # flush.  add() must not raise (the increment was applied in the process: a caller
    # retrying add() would count it twice) and the close must still write the exact totals.
    srv = start_server()
    try:
        policy = DEFAULT_POLICY.scaled(0.001)
        tracker = make_tracker(srv.url, flush_interval=0.0, policy=policy)
        with tracker.job() as job, job.client("Guy-Wilson") as run:
            srv.faults.add(
                "503", method="PATCH", path=CRR, times=policy.max_attempts, retry_after=None
            )
            with caplog.at_level(logging.WARNING, logger="jobtrack_airtable.worker.tracker"):
                run.add(profiles_examined=5, profile_tokens=50)  # every attempt fails
            assert "stay pending" in caplog.text
            run.add(profiles_examined=2)
        assert srv.faults.counts == {"503": policy.max_attempts}
        [row] = [dict(r.fields) for r in srv.store.snapshot(None, "Client Run Results")[1]]
        assert row["Profiles Examined for Scoring"] == 7
        assert row["Profile Scoring Tokens"] == 50
        assert row["Status"] == "Completed"
    finally:
        srv.stop()


def test_the_example_worker_records_its_truth() -> None:
    srv = start_server()
    try:
        tracker = make_tracker(srv.url)
        truth = run_job(tracker, make_plan(random.Random(2), clients=12, chunks=4))
        assert truth.run_id is not None
        assert {c.status.value for c in truth.clients} == {
            "Completed",
            "Failed",
            "No Leads To Score",
        }
        assert compare(srv, [truth]).ok
    finally:
        srv.stop()


def test_the_example_runs_with_one_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "JOBTRACK_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    code = lead_scoring_worker.main(["--clients", "3", "--chunks", "3", "--chunk-seconds", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "local Airtable-compatible server" in out
    assert "NO" not in out.split()
    assert BENCH_TOKEN not in out
