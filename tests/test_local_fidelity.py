"""Fidelity gaps found by running real clients against the local server, each through
pyairtable over real HTTP: upserts on blank merge values, empty offsets, bare field names in
formulas, NaN, what the meta API cannot create, the base list and whoami, default options."""

from __future__ import annotations

from collections.abc import Callable

import pyairtable
import pytest
import requests

from jobtrack_airtable.local import LocalAirtable

from .conftest import TEST_BASE_ID, TEST_TOKEN

JOBS = "Job Tracking"
Make = Callable[..., LocalAirtable]


def _error(exc: pytest.ExceptionInfo[requests.HTTPError]) -> tuple[int, str, str]:
    resp = exc.value.response
    assert resp is not None
    body = resp.json()["error"]
    return resp.status_code, body["type"], body.get("message", "")


def test_upsert_with_a_blank_merge_value_creates_a_record(
    local_airtable: LocalAirtable,
) -> None:
    jobs = local_airtable.table("jobs")
    blank = jobs.create({"Stream": 1})  # a row whose Run ID is blank
    first = jobs.batch_upsert(
        [{"fields": {"Run ID": "", "Stream": 2}}, {"fields": {"Run ID": None, "Stream": 3}}],
        key_fields=["Run ID"],
    )
    # Neither matched the blank row (nor each other): two new records.
    assert len(first["createdRecords"]) == 2 and first["updatedRecords"] == []
    assert blank["id"] not in first["createdRecords"]
    streams = sorted(r["fields"]["Stream"] for r in jobs.all())
    assert streams == [1, 2, 3]
    # A merge field left out altogether is refused (pyairtable checks this before sending).
    resp = requests.patch(
        f"{local_airtable.url}/v0/{TEST_BASE_ID}/Job%20Tracking",
        json={"performUpsert": {"fieldsToMergeOn": ["Run ID"]}, "records": [{"fields": {}}]},
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_RECORDS"


def test_an_upserted_record_is_listed_once(local_airtable: LocalAirtable) -> None:
    jobs = local_airtable.table("jobs")
    result = jobs.batch_upsert(
        [{"fields": {"Run ID": "k", "Stream": 1}}, {"fields": {"Run ID": "k", "Stream": 2}}],
        key_fields=["Run ID"],
    )
    assert len(result["records"]) == 1
    assert result["records"][0]["fields"]["Stream"] == 2
    assert len(result["createdRecords"]) == 1 and result["updatedRecords"] == []


def test_an_empty_offset_means_no_offset(local_airtable: LocalAirtable) -> None:
    local_airtable.table("jobs").batch_create([{"Run ID": f"r{i}"} for i in range(3)])
    resp = requests.get(
        f"{local_airtable.url}/v0/{TEST_BASE_ID}/Job%20Tracking",
        params={"offset": "", "pageSize": 2},
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert [r["fields"]["Run ID"] for r in body["records"]] == ["r0", "r1"]
    assert body["offset"]


def test_single_word_field_names_need_no_braces(local_airtable: LocalAirtable) -> None:
    jobs = local_airtable.table("jobs")
    jobs.batch_create([{"Run ID": "a", "Stream": 2}, {"Run ID": "b", "Stream": 3}])
    assert [r["fields"]["Run ID"] for r in jobs.all(formula="Stream = 3")] == ["b"]
    assert [r["fields"]["Run ID"] for r in jobs.all(formula="AND(Stream > 1, Stream < 3)")] == ["a"]
    with pytest.raises(requests.HTTPError) as exc:
        jobs.all(formula="Nonsense = 1")
    assert _error(exc)[:2] == (422, "INVALID_FILTER_BY_FORMULA")


def test_division_by_zero_reads_nan_and_infinity(local_airtable: LocalAirtable) -> None:
    local_airtable.store.create_table(
        None,
        "Ratios",
        [
            {"name": "Key", "type": "singleLineText"},
            {"name": "A", "type": "number", "options": {"precision": 0}},
            {"name": "B", "type": "number", "options": {"precision": 0}},
            {"name": "Ratio", "type": "formula", "options": {"formula": "{A} / {B}"}},
        ],
    )
    table = local_airtable.table("Ratios")
    nan = table.create({"Key": "nan", "A": 0, "B": 0})
    up = table.create({"Key": "inf", "A": 1, "B": 0})
    down = table.create({"Key": "-inf", "A": -3, "B": 0})
    half = table.create({"Key": "half", "A": 1, "B": 2})
    assert table.get(nan["id"])["fields"]["Ratio"] == {"specialValue": "NaN"}
    assert table.get(up["id"])["fields"]["Ratio"] == {"specialValue": "Infinity"}
    assert table.get(down["id"])["fields"]["Ratio"] == {"specialValue": "-Infinity"}
    assert table.get(half["id"])["fields"]["Ratio"] == 0.5


@pytest.mark.parametrize("ftype", ["formula", "createdTime", "rollup", "autoNumber", "count"])
def test_the_meta_api_refuses_field_types_airtable_cannot_create(
    api: pyairtable.Api, ftype: str
) -> None:
    table = api.table(TEST_BASE_ID, JOBS)
    with pytest.raises(requests.HTTPError) as exc:
        table.create_field("Computed", ftype, options={"formula": "1"})
    status, kind, message = _error(exc)
    assert (status, kind) == (422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE")
    assert f"Creating {ftype} fields is not supported" in message
    with pytest.raises(requests.HTTPError) as exc:
        api.base(TEST_BASE_ID).create_table(
            "T", [{"name": "K", "type": "singleLineText"}, {"name": "C", "type": ftype}]
        )
    assert _error(exc)[1] == "UNSUPPORTED_FIELD_TYPE_FOR_CREATE"


def test_the_meta_api_requires_format_options(api: pyairtable.Api) -> None:
    table = api.table(TEST_BASE_ID, JOBS)
    for ftype in ("number", "checkbox", "dateTime"):
        with pytest.raises(requests.HTTPError) as exc:
            table.create_field(f"New {ftype}", ftype)
        assert _error(exc)[:2] == (422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE")
    with pytest.raises(requests.HTTPError) as exc:
        table.create_field("Bad", "number", options={"precision": 9})
    assert _error(exc)[1] == "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE"
    assert table.create_field("Fine", "number", options={"precision": 3}).type == "number"


def test_fixtures_seed_any_field_type_from_python(local_airtable: LocalAirtable) -> None:
    local_airtable.store.create_field(None, JOBS, {"name": "Created", "type": "createdTime"})
    rec = local_airtable.table("jobs").create({"Run ID": "a"})
    assert rec["fields"]["Created"] == rec["createdTime"]


def test_formula_fields_through_the_meta_api_when_the_server_allows(
    make_local_airtable: Make,
) -> None:
    srv = make_local_airtable(formula_fields_via_api=True)
    table = srv.table("jobs")
    table.create_field("Twice", "formula", options={"formula": "{Stream} * 2"})
    assert table.create({"Run ID": "a", "Stream": 4})["fields"]["Twice"] == 8
    with pytest.raises(requests.HTTPError):  # other computed types stay refused
        table.create_field("When", "createdTime")


def test_meta_bases_and_whoami(make_local_airtable: Make) -> None:
    srv = make_local_airtable()
    srv.store.create_base("appSecondBase0001")
    api = srv.api()
    bases = api.bases()
    assert [b.id for b in bases] == [TEST_BASE_ID, "appSecondBase0001"]
    assert bases[0].name == TEST_BASE_ID
    who = api.whoami()
    assert who["id"].startswith("usr") and len(who["id"]) == 17
    assert "data.records:write" in who["scopes"]  # type: ignore[typeddict-item]
    assert requests.get(f"{srv.url}/v0/meta/whoami").status_code == 401


def test_default_options_are_airtables(local_airtable: LocalAirtable, api: pyairtable.Api) -> None:
    local_airtable.store.create_table(
        None,
        "Money",
        [
            {"name": "Key", "type": "singleLineText"},
            {"name": "Count", "type": "number"},
            {"name": "Price", "type": "currency"},
            {"name": "Share", "type": "percent"},
            {"name": "Done", "type": "checkbox"},
        ],
    )
    schema = api.base(TEST_BASE_ID).schema(force=True).table("Money")
    assert schema.field("Count").options.precision == 0  # type: ignore[union-attr]
    assert schema.field("Price").options.precision == 2  # type: ignore[union-attr]
    assert schema.field("Share").options.precision == 0  # type: ignore[union-attr]
    table = api.table(TEST_BASE_ID, "Money")
    rec = table.create({"Key": "k", "Count": 2.0, "Price": 1.234, "Done": True})
    assert rec["fields"] == {"Key": "k", "Count": 2, "Price": 1.23, "Done": True}
