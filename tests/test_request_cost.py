"""The request-cost comparison of ``benchmarks/request_cost.py``, small and fast: the library
stays within the SPEC §4 budgets and spends at most a third of the naive baseline's requests
on the same workload (the example worker's job), counted from the server's request log."""

from __future__ import annotations

import pytest

from benchmarks._harness import measure_request_cost


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
