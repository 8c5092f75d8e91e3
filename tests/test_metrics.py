"""Tests of jobtrack_airtable.metrics: SPEC §1.4 validation, rows read back, aggregation and
completion status."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from jobtrack_airtable.errors import InvalidInputError, InvalidMetricError, UnknownMetricError
from jobtrack_airtable.metrics import (
    AGGREGATE_KEYS,
    COUNT_KEYS,
    JOB_SUM_KEYS,
    MAX_COUNT,
    METRIC_KEYS,
    ClientMetrics,
    ClientRunRow,
    JobAggregate,
    JobRow,
    aggregate,
    completion_status,
    format_time,
    validate_metrics,
)
from jobtrack_airtable.schema import TableSpec, load_schema
from jobtrack_airtable.statuses import Status

SCHEMA = load_schema()
CRR = SCHEMA.client_runs
JOBS = SCHEMA.jobs
CREATED = "2025-09-30T14:15:22.000Z"


def record(fields: dict[str, Any], rec_id: str = "recAAAAAAAAAAAAAA") -> dict[str, Any]:
    return {"id": rec_id, "createdTime": CREATED, "fields": fields}


def table_with(table: TableSpec, **enabled: bool) -> TableSpec:
    """A copy of ``table`` with some fields enabled/disabled (a base lacking them)."""
    data = table.model_dump()
    for key, on in enabled.items():
        data["fields"][key]["enabled"] = on
    return TableSpec.model_validate(data)


# --- counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (3, 3),
        (3.0, 3),
        (0.0, 0),
        (-0.0, 0),
        ("55", 55),
        (" 55\n", 55),  # surrounding whitespace is stripped (documented decision)
        ("007", 7),
        (Decimal("4"), 4),
        (Decimal("4.000"), 4),
        (2**53, 2**53),
        (float(2**53), 2**53),
        (str(2**53), 2**53),
    ],
)
def test_count_accepts(value: Any, expected: int) -> None:
    m = ClientMetrics.of(profiles_examined=value)
    assert m.profiles_examined == expected
    assert type(m.profiles_examined) is int


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "bool"),
        (False, "bool"),
        (-1, "negative"),
        (-1.0, "negative"),
        (1.5, "whole number"),
        (Decimal("1.5"), "whole number"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (2**53 + 1, "2**53"),
        (float(2**54), "2**53"),
        (str(2**53 + 1), "2**53"),
        ("9" * 5000, "2**53"),  # must not trip int()'s 4300-digit limit
        ("abc", "digits only"),
        ("", "digits only"),
        ("   ", "digits only"),
        ("1e3", "digits only"),
        ("3.0", "digits only"),
        ("-5", "digits only"),
        ("+5", "digits only"),
        ("1_000", "digits only"),
        ("٥٥", "digits only"),  # Arabic-Indic digits: int() would accept them
        ("5 5", "digits only"),
        (None, "None"),
        ([3], "list"),
        ({"n": 3}, "dict"),
        (b"3", "bytes"),
        (3 + 0j, "complex"),
    ],
)
def test_count_rejects(value: Any, reason: str) -> None:
    with pytest.raises(InvalidMetricError) as info:
        ClientMetrics.of(posts_scored=value)
    err = info.value
    assert err.field == "posts_scored"
    assert err.value is value
    assert reason in err.reason
    message = str(err)
    assert "'posts_scored'" in message
    assert repr(value)[:40] in message


@pytest.mark.parametrize("key", COUNT_KEYS)
def test_every_count_field_is_validated(key: str) -> None:
    assert getattr(ClientMetrics.of(**{key: "12"}), key) == 12
    with pytest.raises(InvalidMetricError, match=key):
        ClientMetrics.of(**{key: -1})


def test_first_bad_value_in_schema_order_is_reported() -> None:
    with pytest.raises(InvalidMetricError) as info:
        validate_metrics({"posts_scored": -1, "profiles_examined": "x"})
    assert info.value.field == "profiles_examined"


# --- costs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0.00"),
        (2, "2.00"),
        (1.005, "1.01"),  # decimal intent, not binary 1.00499…
        (2.675, "2.68"),
        (0.125, "0.13"),  # ROUND_HALF_UP, not banker's rounding
        (0.135, "0.14"),
        (0.004, "0.00"),
        ("12.345", "12.35"),
        (" 3.5 ", "3.50"),
        ("1e2", "100.00"),
        (".5", "0.50"),
        ("-0", "0.00"),
        (-0.0, "0.00"),
        (Decimal("9.999"), "10.00"),
    ],
)
def test_cost_accepts_and_rounds(value: Any, expected: str) -> None:
    m = ClientMetrics.of(apify_costs=value)
    assert m.apify_costs == Decimal(expected)
    assert str(m.apify_costs) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "bool"),
        (False, "bool"),
        (-0.01, "negative"),
        (-1, "negative"),
        ("-0.004", "negative"),  # refused before rounding could turn it into 0
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("-Infinity"), "finite"),
        ("nan", "decimal number"),
        ("inf", "decimal number"),
        ("abc", "decimal number"),
        ("", "decimal number"),
        ("1_000", "decimal number"),
        ("$3", "decimal number"),
        ("1e999999", "larger than"),
        (10**20, "larger than"),
        (None, "None"),
        ([1], "list"),
    ],
)
def test_cost_rejects(value: Any, reason: str) -> None:
    with pytest.raises(InvalidMetricError) as info:
        ClientMetrics.of(apify_costs=value)
    assert info.value.field == "apify_costs"
    assert reason in info.value.reason
    assert "'apify_costs'" in str(info.value)


def test_cost_is_a_json_number_never_a_string() -> None:
    m = ClientMetrics.of(apify_costs="1.005", profiles_examined=3)
    fields = m.to_fields(CRR)
    assert fields == {"Apify API Costs": 1.01, "Profiles Examined for Scoring": 3}
    assert type(fields["Apify API Costs"]) is float
    dumped = json.dumps(fields)
    assert '"Apify API Costs": 1.01' in dumped
    assert json.loads(dumped)["Apify API Costs"] == 1.01
    # pydantic's own JSON dump also writes a number, not "1.01"
    assert json.loads(m.model_dump_json())["apify_costs"] == 1.01
    assert m.model_dump(mode="json")["apify_costs"] == 1.01
    # what we send passes the schema's own write check
    CRR.check_fields(fields)


# --- unknown names and the pydantic entry points ----------------------------------------------


def test_unknown_names_list_allowed_names() -> None:
    with pytest.raises(UnknownMetricError) as info:
        ClientMetrics.of(profiles_examined=1, success_rate=0.5, Status="Running")
    err = info.value
    assert err.names == ["Status", "success_rate"]
    assert err.allowed == sorted(METRIC_KEYS)
    message = str(err)
    for name in METRIC_KEYS:
        assert name in message
    assert "'success_rate'" in message


def test_unknown_names_win_over_bad_values() -> None:
    with pytest.raises(UnknownMetricError):
        validate_metrics({"profiles_examined": -1, "bogus": 1})


def test_airtable_names_are_not_metric_names() -> None:
    with pytest.raises(UnknownMetricError):
        validate_metrics({"Profiles Examined for Scoring": 1})


def test_validate_metrics_refuses_non_mapping() -> None:
    with pytest.raises(InvalidInputError):
        validate_metrics([("profiles_examined", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ClientMetrics(profiles_examined=-1),
        lambda: ClientMetrics.model_validate({"profiles_examined": -1}),
        lambda: ClientMetrics.model_validate_json('{"profiles_examined": -1}'),
        lambda: ClientMetrics(apify_costs="nan"),
    ],
)
def test_pydantic_entry_points_raise_our_errors(build: Any) -> None:
    with pytest.raises(InvalidMetricError) as info:
        build()
    assert not isinstance(info.value, ValidationError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ClientMetrics(bogus=1),
        lambda: ClientMetrics.model_validate({"bogus": 1, "profiles_examined": 1}),
        lambda: ClientMetrics.model_validate_json('{"bogus": 1}'),
    ],
)
def test_pydantic_entry_points_raise_unknown_metric(build: Any) -> None:
    with pytest.raises(UnknownMetricError) as info:
        build()
    assert info.value.names == ["bogus"]


def test_model_validate_non_mapping_is_typed_error() -> None:
    with pytest.raises(InvalidInputError):
        ClientMetrics.model_validate(5)
    with pytest.raises(InvalidInputError):
        ClientMetrics.model_validate_json("not json")


def test_pydantic_none_means_unset_and_dump_round_trips() -> None:
    m = ClientMetrics.of(profiles_examined=3, apify_costs="1.5")
    assert ClientMetrics(**m.model_dump()) == m
    assert ClientMetrics.model_validate_json(m.model_dump_json()) == m
    assert ClientMetrics(profiles_examined=None).is_empty


def test_metrics_are_immutable() -> None:
    m = ClientMetrics.of(profiles_examined=1)
    with pytest.raises(ValidationError):
        m.profiles_examined = 5  # type: ignore[misc]


# --- to_fields / plus / merged / is_empty / sanity ---------------------------------------------


def test_to_fields_only_set_values_with_airtable_names() -> None:
    assert ClientMetrics().to_fields(CRR) == {}
    m = ClientMetrics.of(profiles_examined=0, post_tokens="12")
    fields = m.to_fields(CRR)
    assert fields == {"Profiles Examined for Scoring": 0, "Post Scoring Tokens": 12}
    assert all(type(v) is int for v in fields.values())


def test_to_fields_follows_renamed_and_disabled_fields() -> None:
    data = CRR.model_dump()
    data["fields"]["profiles_examined"]["name"] = "Profiles Looked At"
    data["fields"]["post_tokens"]["enabled"] = False
    table = TableSpec.model_validate(data)
    m = ClientMetrics.of(profiles_examined=1, post_tokens=2)
    assert m.to_fields(table) == {"Profiles Looked At": 1}


def test_plus_adds_and_keeps_unset_unset() -> None:
    a = ClientMetrics.of(profiles_examined=2, apify_costs="0.10")
    b = ClientMetrics.of(profiles_examined=3, posts_scored=0, apify_costs=0.2)
    total = a.plus(b)
    assert total.values() == {
        "profiles_examined": 5,
        "posts_scored": 0,
        "apify_costs": Decimal("0.30"),
    }
    assert total.post_tokens is None
    assert a.plus(ClientMetrics()) == a
    assert ClientMetrics().plus(ClientMetrics()).is_empty


def test_plus_overflow_is_refused() -> None:
    big = ClientMetrics.of(post_tokens=MAX_COUNT)
    with pytest.raises(InvalidMetricError, match="post_tokens"):
        big.plus(ClientMetrics.of(post_tokens=1))


def test_merged_overrides_with_set_values_only() -> None:
    a = ClientMetrics.of(profiles_examined=2, posts_scored=1, apify_costs=1)
    b = ClientMetrics.of(profiles_examined=0, apify_costs="2.5")
    merged = a.merged(b)
    assert merged.values() == {
        "profiles_examined": 0,
        "posts_scored": 1,
        "apify_costs": Decimal("2.50"),
    }
    assert a.merged(ClientMetrics()) == a


def test_is_empty() -> None:
    assert ClientMetrics().is_empty
    assert ClientMetrics.of().is_empty
    assert not ClientMetrics.of(apify_costs=0).is_empty


def test_sanity_warnings_are_warnings_not_errors() -> None:
    m = ClientMetrics.of(profiles_examined=10, profiles_scored=12, posts_examined=1, posts_scored=2)
    warnings = m.sanity_warnings()
    assert warnings == [
        "profiles_scored (12) is greater than profiles_examined (10)",
        "posts_scored (2) is greater than posts_examined (1)",
    ]
    named = m.sanity_warnings(CRR)
    assert "Profiles Successfully Scored (12)" in named[0]
    assert ClientMetrics.of(profiles_examined=5, profiles_scored=5).sanity_warnings() == []
    assert ClientMetrics.of(profiles_scored=5).sanity_warnings() == []  # nothing to compare


# --- times -------------------------------------------------------------------------------------


def test_format_time_aware_to_utc_z() -> None:
    moment = datetime(2025, 9, 30, 9, 15, 22, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert format_time("start_time", moment) == "2025-09-30T14:15:22.123Z"


def test_format_time_refuses_naive_naming_the_field() -> None:
    naive = datetime(2025, 9, 30, 14, 15, 22)
    with pytest.raises(InvalidMetricError) as info:
        format_time("end_time", naive)
    assert info.value.field == "end_time"
    assert "naive" in str(info.value)
    assert format_time("end_time", naive, assume_utc=True) == "2025-09-30T14:15:22.000Z"


@pytest.mark.parametrize("value", ["2025-09-30T14:15:22Z", 1727705722, None])
def test_format_time_refuses_non_datetimes(value: Any) -> None:
    with pytest.raises(InvalidMetricError):
        format_time("last_updated", value)


def test_client_row_full_parse() -> None:
    row = ClientRunRow.from_record(
        record(
            {
                "Run ID": "250930-141522-Guy-Wilson",
                "Client ID": "Guy-Wilson",
                "Client Name": "Guy Wilson",
                "Status": "Completed",
                "Start Time": "2025-09-30T14:15:22.000Z",
                "End Time": "2025-09-30T16:20:00.000+02:00",
                "Last Updated": "2025-09-30T14:20:00.000Z",
                "Duration": 278,
                "Profiles Examined for Scoring": 10,
                "Profiles Successfully Scored": 9.0,
                "Apify API Costs": 0.5,
                "Apify Run ID": "8MSTBAfqMzuXPvgB3",
                "Profile Scoring Success Rate": 0.9,
                "System Notes": "ok",
                "Error Details": "1 profile timed out",
                "Some Field Not In Schema": "x",
            }
        ),
        CRR,
    )
    assert row.problems == []
    assert row.record_id == "recAAAAAAAAAAAAAA"
    assert row.created_time == datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    assert row.run_id == "250930-141522-Guy-Wilson"
    assert row.client_id == "Guy-Wilson"
    assert row.client_name == "Guy Wilson"
    assert row.status is Status.COMPLETED
    assert row.status_raw == "Completed"
    assert row.end_time == datetime(2025, 9, 30, 14, 20, tzinfo=UTC)
    assert row.metrics.values() == {
        "profiles_examined": 10,
        "profiles_scored": 9,
        "apify_costs": Decimal("0.50"),
    }
    assert row.apify_run_id == "8MSTBAfqMzuXPvgB3"
    assert row.system_notes == "ok"
    assert row.error_details == "1 profile timed out"
    assert row.fields["Duration"] == 278


def test_client_row_tolerates_omitted_fields() -> None:
    row = ClientRunRow.from_record(record({}), CRR)
    assert row.problems == []
    assert row.run_id is None
    assert row.status is None
    assert row.status_raw is None
    assert row.start_time is None
    assert row.metrics.is_empty
    no_fields = ClientRunRow.from_record({"id": "recX", "createdTime": CREATED}, CRR)
    assert no_fields.problems == []
    assert no_fields.metrics.is_empty


def test_client_row_legacy_run_id_and_status_kept_raw() -> None:
    row = ClientRunRow.from_record(
        record({"Run ID": "job_post_scoring_stream1_20250929094802", "Status": "Success"}), CRR
    )
    assert row.run_id == "job_post_scoring_stream1_20250929094802"
    assert row.status_raw == "Success"
    assert row.status is None
    assert row.problems == []  # legacy statuses are the statuses module's business


def test_client_row_bad_values_become_problems() -> None:
    row = ClientRunRow.from_record(
        record(
            {
                "Run ID": "250930-141522-Guy-Wilson",
                "Client ID": 42,
                "Status": ["Completed"],
                "Start Time": "yesterday",
                "End Time": 5,
                "Profiles Examined for Scoring": -3,
                "Profiles Successfully Scored": "-3",
                "Posts Examined for Scoring": 1.5,
                "Posts Successfully Scored": 7,
                "Post Scoring Tokens": float(2**60),
                "Apify API Costs": "12.50",
                "Total Posts Harvested": True,
            }
        ),
        CRR,
    )
    assert row.client_id is None
    assert row.status_raw is None
    assert row.status is None
    assert row.start_time is None
    assert row.end_time is None
    assert row.metrics.values() == {"posts_scored": 7}  # only the valid value survives
    problems = "\n".join(row.problems)
    assert len(row.problems) == 10
    for expected in [
        "'Client ID' holds 42",
        "'Status' holds ['Completed']",
        "'Start Time' holds 'yesterday'",
        "'End Time' holds 5",
        "'Profiles Examined for Scoring' holds -3: negative",
        "'Profiles Successfully Scored' holds '-3': stored as text",
        "'Posts Examined for Scoring' holds 1.5",
        "'Post Scoring Tokens' holds",
        "'Apify API Costs' holds '12.50': stored as text",
        "'Total Posts Harvested' holds True",
    ]:
        assert expected in problems


def test_row_bad_created_time_and_bad_fields_object() -> None:
    row = ClientRunRow.from_record(
        {"id": "recX", "createdTime": "garbage", "fields": "oops"},
        CRR,
    )
    assert row.created_time is None
    assert len(row.problems) == 2


@pytest.mark.parametrize("bad", [None, "rec", {"fields": {}}, {"id": 5}])
def test_row_refuses_what_is_not_a_record(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        ClientRunRow.from_record(bad, CRR)


def test_row_ignores_disabled_fields() -> None:
    table = table_with(CRR, apify_costs=False)
    row = ClientRunRow.from_record(record({"Apify API Costs": "junk"}), table)
    assert row.problems == []
    assert row.metrics.apify_costs is None


def test_job_row_parse() -> None:
    job = JobRow.from_record(
        record(
            {
                "Run ID": "250930-141522",
                "Status": "Running",
                "Stream": 2,
                "Start Time": "2025-09-30T14:15:22.000Z",
                "Last Updated": "2025-09-30T14:16:00.000Z",
                "System Notes": "started",
                "Clients Processed": 3,
                "Clients With Errors": 0,
                "Total Tokens Used": 99,
            }
        ),
        JOBS,
    )
    assert job.problems == []
    assert job.run_id == "250930-141522"
    assert job.status is Status.RUNNING
    assert job.stream == 2
    assert job.start_time == datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    assert job.end_time is None
    assert job.system_notes == "started"
    assert set(job.aggregates) == set(AGGREGATE_KEYS)
    assert job.aggregates["clients_processed"] == 3
    assert job.aggregates["clients_with_errors"] == 0
    assert job.aggregates["profiles_examined"] is None


def test_job_row_problems_and_missing_aggregate_fields() -> None:
    table = table_with(JOBS, posts_scored=False, total_tokens=False)
    job = JobRow.from_record(
        record({"Stream": 0, "Clients Processed": -1, "Successful Profiles": "4"}), table
    )
    assert job.stream is None
    assert job.aggregates["clients_processed"] is None
    assert job.aggregates["profiles_scored"] is None
    assert "posts_scored" not in job.aggregates
    assert len(job.problems) == 3
    assert "'Stream' holds 0: less than 1" in job.problems[0]


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
    fields = agg.to_fields(JOBS)
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
    JOBS.check_fields(fields)  # nothing computed, nothing unknown
    assert "Start Time" not in agg.to_fields(JOBS, times=False)
    json.dumps(fields)


def test_aggregate_to_fields_skips_fields_the_base_lacks() -> None:
    table = table_with(JOBS, **{key: False for key in AGGREGATE_KEYS if key != "clients_processed"})
    assert JobAggregate(clients_processed=3, post_tokens=9).to_fields(table) == {
        "Clients Processed": 3
    }
    table.check_fields(JobAggregate().to_fields(table))


def test_job_aggregate_comparable_with_job_row() -> None:
    rows = [crr(profiles_examined=2), crr(Status.FAILED)]
    agg = aggregate(rows)
    job = JobRow.from_record(record(agg.to_fields(JOBS, times=False)), JOBS)
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
    JOBS.check_fields(agg.to_fields(JOBS))
