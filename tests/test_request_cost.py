"""The request-cost comparison of ``benchmarks/request_cost.py``, small and fast: the library
stays within the SPEC §4 budgets and spends at most a third of the naive baseline's requests
on the same workload (the example worker's job), counted from the server's request log."""

from __future__ import annotations

import pytest

from benchmarks._cadence import big_job, big_job_completion, big_job_floor
from benchmarks._harness import measure_request_cost
from jobtrack_airtable.testing import TrackingServer


@pytest.fixture(scope="module")
def report():
    return measure_request_cost(clients=20, chunks=10, seed=3)


def test_ours_is_within_the_spec_budget(report) -> None:
    ours = report.ours.phases
    # 1 job start (create + verify); the 20 runs' opens, increments and closes are
    # group-committed within one flush interval (the default 5 s; this run takes well under
    # it): each run's open coalesces with its close, 10 runs a request -- 2 requests; the
    # completion reads the job row and the client rows and writes the job.
    assert ours["start"] == 2
    assert ours.get("open", 0) == 0
    assert ours["close"] == 2
    assert ours["complete"] == 3
    assert ours.get("other", 0) == 0
    for phase, n in ours.items():
        assert n <= report.budget[phase], (phase, n, report.budget)
    assert report.ours.total <= sum(report.budget.values())


def test_flushing_every_chunk_costs_one_request_per_update(report) -> None:
    eager = report.ours_eager
    truth = eager.truth
    assert eager.phases["increments"] == sum(c.increments + c.sets for c in truth.clients)
    assert eager.total <= sum(report.budget_eager.values())


def test_ours_costs_at_most_a_third_of_the_naive_baseline(report) -> None:
    assert report.ours.total * 3 <= report.naive.total
    assert report.ratio >= 3


def test_every_run_recorded_the_truth(report) -> None:
    for run in (report.ours, report.ours_eager, report.naive):
        assert run.discrepancies.ok, (run.name, run.discrepancies.details)


@pytest.mark.parametrize("exclusive", [True, False])
def test_a_big_job_with_its_completion_costs_exactly_the_formula(
    local_airtable: TrackingServer, exclusive: bool
) -> None:
    # benchmarks/request_cost.py's 5,000-client job at N=300: the start (2) + each client's
    # final state once (⌈N/10⌉) + the completion: the job row read and written, plus the
    # client rows read back (⌈N/100⌉) unless the job is exclusive.
    n = 300
    report, completion = big_job(local_airtable, clients=n, exclusive=exclusive)
    assert report.requests == big_job_floor(n) == 2 + 30
    assert completion == big_job_completion(n, exclusive=exclusive) == (2 if exclusive else 5)
    total = report.requests + completion
    if exclusive:
        # 34 ≤ 1.1 × 32: at 5,000 clients, 504 ≤ 552.
        assert total <= 1.1 * big_job_floor(n)
    # The aggregates are the truth either way (each client examined 2 profiles).
    [row] = local_airtable.table("jobs").all()
    assert row["fields"]["Status"] == "Completed"
    assert row["fields"]["Total Profiles Examined"] == 2 * n
    assert row["fields"]["Clients Processed"] == n
