"""Tests of jobtrack_airtable.aggregation: job aggregates and completion status (SPEC §1.4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtrack_airtable.aggregation import JobAggregate, aggregate, completion_status
from jobtrack_airtable.metrics import (
    AGGREGATE_KEYS,
    COUNT_KEYS,
    JOB_SUM_KEYS,
    ClientMetrics,
)
from jobtrack_airtable.rows import ClientRunRow, JobRow
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.transport.codec import codec_for

from .schema_rows import CRR, JOBS, record, table_with

# --- aggregation -------------------------------------------------------------------------------


def crr(
    status: Status | None = Status.COMPLETED,
    start: datetime | None = None,
    end: datetime | None = None,
    **metrics: Any,
) -> ClientRunRow:
    return ClientRunRow(
        status=status,
        status_raw=None if status is None else status.value,
        start_time=start,
        end_time=end,
        metrics=ClientMetrics.of(**metrics),
    )


def test_aggregate_of_nothing() -> None:
    agg = aggregate([])
    assert agg.counts() == dict.fromkeys(AGGREGATE_KEYS, 0)
    assert agg.start_time is None
    assert agg.end_time is None
    assert agg.profile_success_rate == 0.0
    assert agg.post_success_rate == 0.0
    assert agg.total_tokens == 0


def test_aggregate_sums_counts_and_rates() -> None:
    rows = [
        crr(
            Status.COMPLETED,
            profiles_examined=10,
            profiles_scored=8,
            posts_harvested=30,
            posts_examined=20,
            posts_scored=15,
            profile_tokens=1000,
            post_tokens=500,
            profiles_submitted=5,
            apify_costs="1.25",
        ),
        crr(Status.FAILED, profiles_examined=5, profiles_scored=0),
        crr(Status.NO_LEADS),
        crr(Status.RUNNING, posts_examined=4, posts_scored=1),
        crr(None, profile_tokens=1),
    ]
    agg = aggregate(rows)
    assert agg.clients_processed == 5
    assert agg.clients_with_errors == 1
    assert agg.profiles_examined == 15
    assert agg.profiles_scored == 8
    assert agg.posts_harvested == 30
    assert agg.posts_examined == 24
    assert agg.posts_scored == 16
    assert agg.profile_tokens == 1001
    assert agg.post_tokens == 500
    assert agg.total_tokens == 1501
    assert agg.profile_success_rate == pytest.approx(8 / 15)
    assert agg.post_success_rate == pytest.approx(16 / 24)


def test_aggregate_success_rate_zero_when_nothing_examined() -> None:
    agg = aggregate([crr(profiles_scored=3, posts_scored=2)])  # inconsistent, but no /0
    assert agg.profile_success_rate == 0.0
    assert agg.post_success_rate == 0.0


def test_aggregate_times_compare_as_instants_with_mixed_offsets() -> None:
    plus5 = timezone(timedelta(hours=5))
    minus7 = timezone(timedelta(hours=-7))
    rows = [
        # 09:30Z written as 14:30+05:00: string-wise the "latest" start, really the earliest
        crr(
            start=datetime(2025, 9, 30, 14, 30, tzinfo=plus5),
            end=datetime(2025, 9, 30, 10, 0, tzinfo=UTC),
        ),
        crr(
            start=datetime(2025, 9, 30, 10, 0, tzinfo=UTC),
            end=datetime(2025, 9, 30, 5, 0, tzinfo=minus7),
        ),
        crr(start=None, end=None),  # a row without times does not hide the others
    ]
    agg = aggregate(rows)
    assert agg.start_time == datetime(2025, 9, 30, 9, 30, tzinfo=UTC)
    assert agg.start_time.utcoffset() == timedelta(0)
    assert agg.end_time == datetime(2025, 9, 30, 12, 0, tzinfo=UTC)
    assert agg.end_time.utcoffset() == timedelta(0)


def test_aggregate_from_parsed_records_and_is_idempotent() -> None:
    records = [
        record(
            {
                "Run ID": "250930-141522-A",
                "Status": "Completed",
                "Start Time": "2025-09-30T14:15:22.000Z",
                "End Time": "2025-09-30T14:20:00.000Z",
                "Profiles Examined for Scoring": 4,
                "Profiles Successfully Scored": "4",  # bad: text, so not counted
            },
            "recA",
        ),
        record({"Run ID": "250930-141522-B", "Status": "Failed"}, "recB"),
    ]
    rows = [ClientRunRow.from_record(r, CRR) for r in records]
    first = aggregate(rows)
    assert first == aggregate(rows) == aggregate(reversed(rows))
    assert first.clients_processed == 2
    assert first.clients_with_errors == 1
    assert first.profiles_examined == 4
    assert first.profiles_scored == 0
    assert aggregate(iter(rows)) == first  # any iterable, consumed once


def test_aggregate_to_fields_all_enabled() -> None:
    agg = JobAggregate(
        clients_processed=2,
        clients_with_errors=1,
        profiles_examined=3,
        post_tokens=4,
        start_time=datetime(2025, 9, 30, 14, 0, tzinfo=UTC),
    )
    fields = codec_for(JOBS).names(agg.to_values(JOBS))
    assert fields == {
        "Clients Processed": 2,
        "Clients With Errors": 1,
        "Total Profiles Examined": 3,
        "Successful Profiles": 0,
        "Total Posts Harvested": 0,
        "Posts Examined for Scoring": 0,
        "Posts Successfully Scored": 0,
        "Profile Scoring Tokens": 0,
        "Post Scoring Tokens": 4,
        "Start Time": "2025-09-30T14:00:00.000Z",
    }
    codec_for(JOBS).check_names(fields)  # nothing computed, nothing unknown
    assert "Start Time" not in codec_for(JOBS).names(agg.to_values(JOBS, times=False))
    json.dumps(fields)


def test_aggregate_to_fields_skips_fields_the_base_lacks() -> None:
    table = table_with(JOBS, **{key: False for key in AGGREGATE_KEYS if key != "clients_processed"})
    assert codec_for(table).names(
        JobAggregate(clients_processed=3, post_tokens=9).to_values(table)
    ) == {"Clients Processed": 3}
    codec_for(table).check_names(codec_for(table).names(JobAggregate().to_values(table)))


def test_job_aggregate_comparable_with_job_row() -> None:
    rows = [crr(profiles_examined=2), crr(Status.FAILED)]
    agg = aggregate(rows)
    job = JobRow.from_record(record(codec_for(JOBS).names(agg.to_values(JOBS, times=False))), JOBS)
    assert job.problems == []
    assert job.aggregates == agg.counts()


# --- completion status -------------------------------------------------------------------------

C, F, N, R = Status.COMPLETED, Status.FAILED, Status.NO_LEADS, Status.RUNNING


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], N),
        ([crr(N)], N),
        ([crr(N), crr(N)], N),
        ([crr(C)], C),
        ([crr(C, profiles_examined=0)], C),  # Completed with zero metrics still counts
        ([crr(C), crr(N)], C),
        ([crr(F)], F),
        ([crr(F), crr(F)], F),
        ([crr(F), crr(N)], F),
        ([crr(F, profiles_examined=5)], F),
        ([crr(F), crr(C)], C),  # Completed even with some clients failed
        ([crr(F), crr(N), crr(C)], C),
        ([crr(N, profiles_examined=5)], N),  # status wins over inconsistent metrics
        ([crr(R)], N),  # open run that did nothing
        ([crr(R, posts_scored=0)], N),
        ([crr(R, posts_scored=1)], C),  # open run that did work
        ([crr(R), crr(F)], F),
        ([crr(R, posts_scored=1), crr(F)], F),
        ([crr(None)], N),
        ([crr(None, profile_tokens=9)], C),
        ([crr(N, apify_costs=1)], N),  # costs are not work done
        ([crr(R, apify_costs=1)], N),
    ],
)
def test_completion_status(rows: list[ClientRunRow], expected: Status) -> None:
    assert completion_status(rows) is expected
    assert completion_status(reversed(rows)) is expected


def test_completion_status_legacy_status_rows_count_only_by_work() -> None:
    rows = [ClientRunRow.from_record(record({"Status": "Success"}), CRR)]
    assert completion_status(rows) is N
    rows = [
        ClientRunRow.from_record(record({"Status": "Success", "Total Posts Harvested": 3}), CRR)
    ]
    assert completion_status(rows) is C


# --- property: aggregate() == a straightforward recomputation ---------------------------------

_instants = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2030, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
_metrics = st.fixed_dictionaries(
    {},
    optional={key: st.integers(min_value=0, max_value=10**9) for key in COUNT_KEYS}
    | {"apify_costs": st.decimals(min_value=0, max_value=1000, places=2)},
).map(lambda d: ClientMetrics.of(**d))
_rows = st.builds(
    ClientRunRow,
    status=st.none() | st.sampled_from(list(Status)),
    start_time=st.none() | _instants,
    end_time=st.none() | _instants,
    metrics=_metrics,
)


@given(st.lists(_rows, max_size=25))
def test_aggregate_matches_recomputation(rows: list[ClientRunRow]) -> None:
    agg = aggregate(rows)

    expected_sums = {key: sum(getattr(r.metrics, key) or 0 for r in rows) for key in JOB_SUM_KEYS}
    assert agg.clients_processed == len(rows)
    assert agg.clients_with_errors == sum(1 for r in rows if r.status == Status.FAILED)
    for key, total in expected_sums.items():
        assert getattr(agg, key) == total

    starts = sorted(r.start_time.timestamp() for r in rows if r.start_time)
    ends = sorted(r.end_time.timestamp() for r in rows if r.end_time)
    assert (agg.start_time.timestamp() if agg.start_time else None) == (
        starts[0] if starts else None
    )
    assert (agg.end_time.timestamp() if agg.end_time else None) == (ends[-1] if ends else None)

    pe, ps = expected_sums["profiles_examined"], expected_sums["profiles_scored"]
    assert agg.profile_success_rate == (ps / pe if pe else 0)
    qe, qs = expected_sums["posts_examined"], expected_sums["posts_scored"]
    assert agg.post_success_rate == (qs / qe if qe else 0)
    assert agg.total_tokens == expected_sums["profile_tokens"] + expected_sums["post_tokens"]

    # idempotent and order-independent: recomputed from scratch every time
    assert aggregate(rows) == agg
    assert aggregate(list(reversed(rows))) == agg
    # what it writes is always acceptable to the base
    codec_for(JOBS).check_names(codec_for(JOBS).names(agg.to_values(JOBS)))
