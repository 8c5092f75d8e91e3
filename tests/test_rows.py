"""Tests of jobtrack_airtable.rows: tolerant parsing of rows read back from the base."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from jobtrack_airtable.errors import InvalidInputError
from jobtrack_airtable.metrics import (
    AGGREGATE_KEYS,
)
from jobtrack_airtable.rows import ClientRunRow, JobRow
from jobtrack_airtable.statuses import Status

from .schema_rows import CREATED, CRR, JOBS, record, table_with


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
