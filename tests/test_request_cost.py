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
    # 1 job start (create + verify), 20 runs opened in 2 batches, 20 closes, completion
    # (1 page read + 1 write); with the default 5 s flush interval a sub-second run of
    # increments costs nothing until the close.
    assert ours["start"] == 2
    assert ours["open"] == 2
    assert ours["close"] == 20
    assert ours["complete"] == 2
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
