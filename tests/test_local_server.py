"""The local Airtable server's HTTP API, driven through pyairtable (and raw ``requests`` where
pyairtable cannot express the request).  One test per SPEC §2 fact; see docs/local-server.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyairtable
import pytest
import requests
from pyairtable.formulas import EQ, Field

from jobtrack_airtable.local import LocalAirtable

from .helpers import ManualClock

TEST_BASE_ID = "appJobtrackTest01"  # as in conftest.py
TEST_TOKEN = "test-token-not-secret"
JOBS = "Job Tracking"
CRR = "Client Run Results"
REC_ID = re.compile(r"^rec[A-Za-z0-9]{14}$")
CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def stored(record: dict[str, Any]) -> dict[str, Any]:
    """The record's fields without computed ones (``Total Tokens Used`` is 0 for blanks)."""
    computed = {"Duration", "Total Tokens Used"}
    return {k: v for k, v in record["fields"].items() if k not in computed}


def raw(srv: LocalAirtable, token: str | None = TEST_TOKEN) -> requests.Session:
    s = requests.Session()
    if token is not None:
        s.headers["Authorization"] = f"Bearer {token}"
    return s


def url(srv: LocalAirtable, *parts: str) -> str:
    return "/".join([srv.url, "v0", *(requests.utils.quote(p, safe="") for p in parts)])


def error_of(exc: requests.HTTPError) -> tuple[int, Any]:
    assert exc.response is not None
    return exc.response.status_code, exc.response.json()


@pytest.fixture
def jobs(api: pyairtable.Api) -> pyairtable.Table:
    return api.table(TEST_BASE_ID, JOBS)


@pytest.fixture
def crr(api: pyairtable.Api) -> pyairtable.Table:
    return api.table(TEST_BASE_ID, CRR)


# -- record shapes (SPEC §2.3) ----------------------------------------------------------------


def test_create_returns_record_shape_and_omits_empty_values(jobs: pyairtable.Table) -> None:
    rec = jobs.create(
        {"Run ID": "250930-141522", "Status": "Running", "System Notes": "", "Stream": None}
    )
    assert set(rec) == {"id", "createdTime", "fields"}
    assert REC_ID.match(rec["id"])
    assert CREATED.match(rec["createdTime"])
    assert stored(rec) == {"Run ID": "250930-141522", "Status": "Running"}
    # A formula over blank numbers is 0, and 0 is not empty (Airtable does the same).
    assert rec["fields"]["Total Tokens Used"] == 0
    assert jobs.get(rec["id"]) == rec


def test_zero_is_not_empty(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "a", "Clients Processed": 0})
    assert rec["fields"]["Clients Processed"] == 0


def test_datetime_is_normalised_to_milliseconds_z(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "a", "Start Time": "2025-09-30T16:15:22+02:00"})
    assert rec["fields"]["Start Time"] == "2025-09-30T14:15:22.000Z"


def test_number_precision_is_applied(crr: pyairtable.Table) -> None:
    rec = crr.create({"Run ID": "a", "Apify API Costs": 1.234, "Profile Scoring Tokens": 3.0})
    assert rec["fields"]["Apify API Costs"] == 1.23
    assert rec["fields"]["Profile Scoring Tokens"] == 3
    assert isinstance(rec["fields"]["Profile Scoring Tokens"], int)


def test_null_clears_a_field(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "a", "System Notes": "x"})
    updated = jobs.update(rec["id"], {"System Notes": None})
    assert "System Notes" not in updated["fields"]
    assert "System Notes" not in jobs.get(rec["id"])["fields"]


def test_formula_fields_are_computed_on_read(jobs: pyairtable.Table, crr: pyairtable.Table) -> None:
    job = jobs.create(
        {
            "Run ID": "a",
            "Start Time": "2025-09-30T14:15:22.000Z",
            "End Time": "2025-09-30T14:20:52.000Z",
            "Profile Scoring Tokens": 100,
            "Post Scoring Tokens": 23,
        }
    )
    assert job["fields"]["Duration"] == 330
    assert job["fields"]["Total Tokens Used"] == 123
    run = crr.create(
        {"Run ID": "a-c", "Profiles Examined for Scoring": 4, "Profiles Successfully Scored": 3}
    )
    assert run["fields"]["Profile Scoring Success Rate"] == 0.75
    assert run["fields"]["Post Scoring Success Rate"] == 0
    # Blank computed values are omitted like any empty value (no End Time → no Duration).
    assert "Duration" not in run["fields"]


# -- listing (SPEC §2.4) ----------------------------------------------------------------------


def _seed(srv: LocalAirtable, n: int, table: str = JOBS) -> None:
    srv.store.create_records(
        None,
        table,
        [{"Run ID": f"r{i:05d}", "Stream": i % 7, "Status": "Running"} for i in range(n)],
        limit=None,
    )


def test_list_pages_of_at_most_100_with_offset(
    local_airtable: LocalAirtable, jobs: pyairtable.Table
) -> None:
    _seed(local_airtable, 250)
    pages = list(jobs.iterate())
    assert [len(p) for p in pages] == [100, 100, 50]
    assert len({r["id"] for p in pages for r in p}) == 250
    entries = local_airtable.request_log.entries
    assert "offset" not in entries[0].query
    assert all(e.query["offset"][0].startswith("itr") for e in entries[1:])


def test_page_size_and_max_records(local_airtable: LocalAirtable, jobs: pyairtable.Table) -> None:
    _seed(local_airtable, 30)
    assert [len(p) for p in jobs.iterate(page_size=7, max_records=20)] == [7, 7, 6]
    resp = raw(local_airtable).get(
        url(local_airtable, TEST_BASE_ID, JOBS), params={"pageSize": 101}
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


def test_sort_fields_and_filter(local_airtable: LocalAirtable, jobs: pyairtable.Table) -> None:
    _seed(local_airtable, 20)
    recs = jobs.all(
        sort=["-Stream", "Run ID"], fields=["Run ID", "Stream"], formula="{Stream} >= 5"
    )
    got = [(r["fields"]["Stream"], r["fields"]["Run ID"]) for r in recs]
    assert got == sorted(got, key=lambda t: (-t[0], t[1]))
    assert {s for s, _ in got} == {5, 6}
    assert all(set(r["fields"]) == {"Run ID", "Stream"} for r in recs)
    q = local_airtable.request_log.entries[-1].query
    assert q["sort[0][field]"] == ["Stream"]
    assert q["sort[0][direction]"] == ["desc"]
    assert q["fields[]"] == ["Run ID", "Stream"]


def test_sort_by_formula_field(jobs: pyairtable.Table) -> None:
    jobs.batch_create(
        [
            {"Run ID": f"r{i}", "Profile Scoring Tokens": i, "Post Scoring Tokens": 10 - 2 * i}
            for i in range(5)
        ]
    )
    recs = jobs.all(sort=["Total Tokens Used"])
    assert [r["fields"]["Run ID"] for r in recs] == ["r4", "r3", "r2", "r1", "r0"]


def test_filter_with_escaped_quotes_matches_exactly(crr: pyairtable.Table) -> None:
    crr.batch_create([{"Run ID": '250930-141522-O\'Neil "Jr"'}, {"Run ID": "250930-141522-O"}])
    formula = EQ(Field("Run ID"), '250930-141522-O\'Neil "Jr"')
    assert [r["fields"]["Run ID"] for r in crr.all(formula=formula)] == [
        '250930-141522-O\'Neil "Jr"'
    ]


def test_long_url_falls_back_to_post_list_records(
    local_airtable: LocalAirtable, jobs: pyairtable.Table
) -> None:
    _seed(local_airtable, 150)
    ids = [f"r{i:05d}" for i in range(0, 150, 2)] + [f"x{i:04d}" * 30 for i in range(200)]
    formula = "OR(" + ",".join(f"{{Run ID}}='{i}'" for i in ids) + ")"
    recs = jobs.all(formula=formula, page_size=50)
    assert len(recs) == 75
    posts = [e for e in local_airtable.request_log.entries if e.method == "POST"]
    assert len(posts) == 2
    assert all(e.path.endswith("/listRecords") for e in posts)
    assert isinstance(posts[1].body["offset"], str)


def test_bad_formula_is_422(jobs: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        jobs.all(formula="AND({Run ID} = 'x'")
    status, body = error_of(exc.value)
    assert status == 422
    assert body["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    with pytest.raises(requests.HTTPError) as exc:
        jobs.all(formula="{No Such Field} = 1")
    assert error_of(exc.value)[1]["error"]["type"] == "INVALID_FILTER_BY_FORMULA"


def test_unknown_field_in_fields_or_sort_is_422(jobs: pyairtable.Table) -> None:
    for options in ({"fields": ["Nope"]}, {"sort": ["Nope"]}):
        with pytest.raises(requests.HTTPError) as exc:
            jobs.all(**options)
        assert error_of(exc.value) == (
            422,
            {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Nope"'}},
        )


def test_offset_expires_after_idle_time(make_local_airtable: Callable[..., LocalAirtable]) -> None:
    clock = ManualClock()
    srv = make_local_airtable(iterator_idle_seconds=0.2, monotonic=clock)
    _seed(srv, 5)
    s = raw(srv)
    first = s.get(url(srv, TEST_BASE_ID, JOBS), params={"pageSize": 2}).json()
    clock.advance(0.15)  # used within its idle time: still valid
    second = s.get(url(srv, TEST_BASE_ID, JOBS), params={"pageSize": 2, "offset": first["offset"]})
    assert second.status_code == 200
    clock.advance(0.3)
    third = s.get(
        url(srv, TEST_BASE_ID, JOBS), params={"pageSize": 2, "offset": second.json()["offset"]}
    )
    assert third.status_code == 422
    assert third.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"
    bogus = s.get(url(srv, TEST_BASE_ID, JOBS), params={"offset": "itrNope/recNope"})
    assert bogus.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"


def test_return_fields_by_field_id(api: pyairtable.Api) -> None:
    crr = api.table(TEST_BASE_ID, CRR)
    rec = crr.create({"Run ID": "a"})
    field_id = api.base(TEST_BASE_ID).schema().table(CRR).field("Run ID").id
    for got in (crr.get(rec["id"], use_field_ids=True), crr.all(use_field_ids=True)[0]):
        assert got["fields"][field_id] == "a"
        assert all(key.startswith("fld") for key in got["fields"])


def test_listing_computes_the_result_once_per_listing(
    local_airtable: LocalAirtable, jobs: pyairtable.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobtrack_airtable.local import app as app_module

    calls = []
    real = app_module.select

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "select", counting)
    _seed(local_airtable, 5000)
    recs = jobs.all(formula="{Stream} > 0", sort=["-Run ID"])
    assert len(recs) == 5000 - len(range(0, 5000, 7))
    assert local_airtable.request_log.count(method="GET") == 43
    assert len(calls) == 1


# -- writes (SPEC §2.5) -----------------------------------------------------------------------


def test_batch_create_and_the_ten_record_limit(
    local_airtable: LocalAirtable, jobs: pyairtable.Table
) -> None:
    recs = jobs.batch_create([{"Run ID": f"r{i}"} for i in range(23)])
    assert len(recs) == 23
    assert local_airtable.request_log.count(method="POST") == 3
    body = {"records": [{"fields": {"Run ID": f"x{i}"}} for i in range(11)]}
    resp = raw(local_airtable).post(url(local_airtable, TEST_BASE_ID, JOBS), json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_RECORDS"
    assert "maximum of 10 records" in resp.json()["error"]["message"]
    for method in ("PATCH", "PUT"):
        body = {"records": [{"id": r["id"], "fields": {}} for r in recs[:11]]}
        resp = raw(local_airtable).request(
            method, url(local_airtable, TEST_BASE_ID, JOBS), json=body
        )
        assert resp.json()["error"]["type"] == "INVALID_RECORDS"
    resp = raw(local_airtable).delete(
        url(local_airtable, TEST_BASE_ID, JOBS), params={"records[]": [r["id"] for r in recs[:11]]}
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_RECORDS"
    assert len(jobs.all()) == 23


def test_one_bad_record_fails_the_whole_batch(jobs: pyairtable.Table) -> None:
    good = jobs.create({"Run ID": "keep", "Stream": 1})
    with pytest.raises(requests.HTTPError):
        jobs.batch_create([{"Run ID": "a"}, {"Run ID": "b", "Nope": 1}])
    with pytest.raises(requests.HTTPError):
        jobs.batch_update(
            [
                {"id": good["id"], "fields": {"Stream": 2}},
                {"id": good["id"], "fields": {"Stream": "x"}},
            ]
        )
    with pytest.raises(requests.HTTPError):
        jobs.batch_upsert(
            [{"fields": {"Run ID": "new"}}, {"fields": {"Run ID": "keep", "Status": "Bogus"}}],
            key_fields=["Run ID"],
        )
    assert [stored(r) for r in jobs.all()] == [{"Run ID": "keep", "Stream": 1}]


def test_patch_updates_sent_fields_put_clears_the_rest(jobs: pyairtable.Table) -> None:
    rec = jobs.create({"Run ID": "a", "Stream": 1, "System Notes": "n"})
    patched = jobs.update(rec["id"], {"Stream": 2})
    assert stored(patched) == {"Run ID": "a", "Stream": 2, "System Notes": "n"}
    put = jobs.update(rec["id"], {"Run ID": "a", "Status": "Completed"}, replace=True)
    assert stored(put) == {"Run ID": "a", "Status": "Completed"}
    assert put["createdTime"] == rec["createdTime"]
    [batch_put] = jobs.batch_update([{"id": rec["id"], "fields": {"Stream": 5}}], replace=True)
    assert stored(batch_put) == {"Stream": 5}


def test_batch_update(jobs: pyairtable.Table) -> None:
    recs = jobs.batch_create([{"Run ID": f"r{i}"} for i in range(12)])
    updated = jobs.batch_update([{"id": r["id"], "fields": {"Stream": 3}} for r in recs])
    assert [u["id"] for u in updated] == [r["id"] for r in recs]
    assert all(r["fields"]["Stream"] == 3 for r in jobs.all())


def test_upsert_creates_updates_and_reports(jobs: pyairtable.Table) -> None:
    first = jobs.batch_upsert([{"fields": {"Run ID": "a", "Stream": 1}}], key_fields=["Run ID"])
    assert set(first) == {"records", "createdRecords", "updatedRecords"}
    assert first["updatedRecords"] == []
    assert first["createdRecords"] == [first["records"][0]["id"]]
    second = jobs.batch_upsert(
        [{"fields": {"Run ID": "a", "Status": "Running"}}, {"fields": {"Run ID": "b"}}],
        key_fields=["Run ID"],
    )
    a_id = first["records"][0]["id"]
    assert second["updatedRecords"] == [a_id]
    assert len(second["createdRecords"]) == 1
    assert stored(second["records"][0]) == {"Run ID": "a", "Stream": 1, "Status": "Running"}
    assert len(jobs.all()) == 2


def test_upsert_with_replace_clears_unsent_fields(jobs: pyairtable.Table) -> None:
    jobs.create({"Run ID": "a", "Stream": 1, "System Notes": "n"})
    out = jobs.batch_upsert(
        [{"fields": {"Run ID": "a", "Stream": 2}}], key_fields=["Run ID"], replace=True
    )
    assert stored(out["records"][0]) == {"Run ID": "a", "Stream": 2}


def test_upsert_with_several_matches_fails(jobs: pyairtable.Table) -> None:
    jobs.batch_create([{"Run ID": "dup"}, {"Run ID": "dup"}])
    with pytest.raises(requests.HTTPError) as exc:
        jobs.batch_upsert([{"fields": {"Run ID": "dup", "Stream": 9}}], key_fields=["Run ID"])
    status, body = error_of(exc.value)
    assert status == 422
    assert body["error"]["type"] == "INVALID_RECORDS"
    assert "2 records match" in body["error"]["message"]
    assert all("Stream" not in r["fields"] for r in jobs.all())


def test_upsert_on_several_merge_fields(crr: pyairtable.Table) -> None:
    crr.create({"Run ID": "a", "Client ID": "c1"})
    out = crr.batch_upsert(
        [
            {"fields": {"Run ID": "a", "Client ID": "c1", "Status": "Completed"}},
            {"fields": {"Run ID": "a", "Client ID": "c2"}},
        ],
        key_fields=["Run ID", "Client ID"],
    )
    assert len(out["updatedRecords"]) == 1
    assert len(out["createdRecords"]) == 1


def test_upsert_on_a_computed_field_is_refused(local_airtable: LocalAirtable) -> None:
    body = {
        "records": [{"fields": {"Run ID": "a"}}],
        "performUpsert": {"fieldsToMergeOn": ["Duration"]},
    }
    resp = raw(local_airtable).patch(url(local_airtable, TEST_BASE_ID, JOBS), json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"


def test_delete_single_and_batch(local_airtable: LocalAirtable, jobs: pyairtable.Table) -> None:
    recs = jobs.batch_create([{"Run ID": f"r{i}"} for i in range(13)])
    assert jobs.delete(recs[0]["id"]) == {"id": recs[0]["id"], "deleted": True}
    local_airtable.request_log.clear()
    deleted = jobs.batch_delete([r["id"] for r in recs[1:]])
    assert deleted == [{"id": r["id"], "deleted": True} for r in recs[1:]]
    assert jobs.all() == []
    deletes = [e for e in local_airtable.request_log.entries if e.method == "DELETE"]
    assert [len(e.query["records[]"]) for e in deletes] == [10, 2]


# -- errors (SPEC §2.2) -----------------------------------------------------------------------


def test_unknown_field_is_422(jobs: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        jobs.create({"Run ID": "a", "Success Rate": 1})
    assert error_of(exc.value) == (
        422,
        {"error": {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Success Rate"'}},
    )


def test_writing_a_computed_field_is_422(jobs: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        jobs.create({"Run ID": "a", "Duration": 5})
    assert error_of(exc.value) == (
        422,
        {
            "error": {
                "type": "INVALID_VALUE_FOR_COLUMN",
                "message": 'Field "Duration" cannot accept a value because the field is computed',
            }
        },
    )


def test_unknown_select_option_and_typecast(api: pyairtable.Api, jobs: pyairtable.Table) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        jobs.create({"Run ID": "a", "Status": "Success"})
    status, body = error_of(exc.value)
    assert status == 422
    assert body["error"]["type"] == "INVALID_MULTIPLE_CHOICE_OPTIONS"
    rec = jobs.create({"Run ID": "a", "Status": "Success"}, typecast=True)
    assert rec["fields"]["Status"] == "Success"
    status_field = api.base(TEST_BASE_ID).schema(force=True).table(JOBS).field("Status")
    assert "Success" in [c.name for c in status_field.options.choices]


@pytest.mark.parametrize("value", ["55", True, [1], {"a": 1}])
def test_wrong_type_for_number_is_422(jobs: pyairtable.Table, value: Any) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        jobs.create({"Run ID": "a", "Stream": value})
    status, body = error_of(exc.value)
    assert status == 422
    assert body["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"


def test_typecast_converts_number_strings(jobs: pyairtable.Table) -> None:
    assert jobs.create({"Run ID": "a", "Stream": "55"}, typecast=True)["fields"]["Stream"] == 55


def test_wrong_type_for_text_and_date_is_422(jobs: pyairtable.Table) -> None:
    for fields in ({"Run ID": 5}, {"Run ID": "a", "Start Time": "yesterday"}):
        with pytest.raises(requests.HTTPError) as exc:
            jobs.create(fields)
        assert error_of(exc.value)[1]["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"


@pytest.mark.parametrize(
    "data", [b"{not json", b'{"fields": {"Stream": NaN}}', b'{"fields": {"Stream": Infinity}}']
)
def test_unparsable_body_is_422(local_airtable: LocalAirtable, data: bytes) -> None:
    resp = raw(local_airtable).post(
        url(local_airtable, TEST_BASE_ID, JOBS),
        data=data,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_REQUEST_BODY"


def test_unknown_record_is_404_model_id_not_found(jobs: pyairtable.Table) -> None:
    for call in (
        lambda: jobs.get("recAAAAAAAAAAAAAA"),
        lambda: jobs.update("recAAAAAAAAAAAAAA", {"Stream": 1}),
        lambda: jobs.delete("recAAAAAAAAAAAAAA"),
    ):
        with pytest.raises(requests.HTTPError) as exc:
            call()
        status, body = error_of(exc.value)
        assert status == 404
        assert body["error"]["type"] == "MODEL_ID_NOT_FOUND"


@pytest.mark.parametrize("record_id", ["recShort", "abcAAAAAAAAAAAAAA", "rec-AAAAAAAAAAAAA"])
def test_malformed_record_id_is_bare_not_found(jobs: pyairtable.Table, record_id: str) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        jobs.get(record_id)
    assert error_of(exc.value) == (404, {"error": "NOT_FOUND"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v0"),
        ("GET", "/v1/appJobtrackTest01/Job%20Tracking"),
        ("GET", "/v0/appJobtrackTest01/Job%20Tracking/recAAAAAAAAAAAAAA/extra"),
        ("POST", "/v0/appJobtrackTest01/Job%20Tracking/recAAAAAAAAAAAAAA"),
        ("GET", "/v0/notabase/Job%20Tracking"),
        ("GET", "/v0/meta/bases/appJobtrackTest01/nothing"),
    ],
)
def test_unknown_route_is_bare_not_found(
    local_airtable: LocalAirtable, method: str, path: str
) -> None:
    resp = raw(local_airtable).request(method, local_airtable.url + path, json={})
    assert (resp.status_code, resp.json()) == (404, {"error": "NOT_FOUND"})


def test_unknown_table_is_404_table_not_found(api: pyairtable.Api) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        api.table(TEST_BASE_ID, "No Such Table").all()
    status, body = error_of(exc.value)
    assert status == 404
    assert body["error"]["type"] == "TABLE_NOT_FOUND"


def test_unknown_base_is_403(api: pyairtable.Api) -> None:
    with pytest.raises(requests.HTTPError) as exc:
        api.table("appAAAAAAAAAAAAAA", JOBS).all()
    status, body = error_of(exc.value)
    assert status == 403
    assert body["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_tables_addressable_by_id(api: pyairtable.Api) -> None:
    table_id = api.base(TEST_BASE_ID).schema().table(JOBS).id
    assert table_id.startswith("tbl")
    assert len(table_id) == 17
    by_id = api.table(TEST_BASE_ID, table_id)
    rec = by_id.create({"Run ID": "a"})
    assert api.table(TEST_BASE_ID, JOBS).get(rec["id"]) == rec


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_authentication_required(local_airtable: LocalAirtable, token: str | None) -> None:
    expected = {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}
    for path in (
        url(local_airtable, TEST_BASE_ID, JOBS),
        url(local_airtable, "appAAAAAAAAAAAAAA", "Nope"),
        local_airtable.url + "/nothing/here",
    ):
        resp = raw(local_airtable, token=token).get(path)
        assert (resp.status_code, resp.json()) == (401, expected)
    assert local_airtable.store.snapshot(None, JOBS)[1] == []


def test_request_log_never_stores_the_token(
    local_airtable: LocalAirtable, jobs: pyairtable.Table
) -> None:
    jobs.create({"Run ID": "a"})
    jobs.all()
    entries = local_airtable.request_log.entries
    assert [(e.method, e.status) for e in entries] == [("POST", 200), ("GET", 200)]
    assert entries[0].body["fields"] == {"Run ID": "a"}
    assert TEST_TOKEN not in repr(entries)
    assert TEST_TOKEN not in repr(local_airtable)
    assert local_airtable.request_log.count(method="POST", path=JOBS) == 1
    assert local_airtable.request_log.count(path="Job%20Tracking") == 2
    local_airtable.request_log.clear()
    assert local_airtable.request_log.count() == 0


# -- schema API (SPEC §2.7) -------------------------------------------------------------------


def test_meta_tables_shape(local_airtable: LocalAirtable) -> None:
    resp = raw(local_airtable).get(f"{local_airtable.url}/v0/meta/bases/{TEST_BASE_ID}/tables")
    tables = resp.json()["tables"]
    assert {t["name"] for t in tables} == {JOBS, CRR}
    jt = next(t for t in tables if t["name"] == JOBS)
    assert set(jt) >= {"id", "name", "primaryFieldId", "fields", "views"}
    assert jt["primaryFieldId"] == jt["fields"][0]["id"]
    assert jt["fields"][0]["name"] == "Run ID"
    by_name = {f["name"]: f for f in jt["fields"]}
    assert by_name["Duration"]["type"] == "formula"
    assert by_name["Stream"]["options"] == {"precision": 0}
    assert [c["name"] for c in by_name["Status"]["options"]["choices"]] == [
        "Running",
        "Completed",
        "Failed",
        "No Leads To Score",
    ]


def test_meta_schema_parses_in_pyairtable(api: pyairtable.Api) -> None:
    schema = api.base(TEST_BASE_ID).schema()
    assert schema.table(CRR).field("Apify API Costs").options.precision == 2


def test_create_table_and_field(local_airtable: LocalAirtable, api: pyairtable.Api) -> None:
    base = api.base(TEST_BASE_ID)
    table = base.create_table(
        "Extra",
        [
            {"name": "Key", "type": "singleLineText"},
            {"name": "N", "type": "number", "options": {"precision": 1}},
        ],
    )
    assert table.id.startswith("tbl")
    field = table.create_field("Label", "singleSelect", options={"choices": [{"name": "x"}]})
    assert field.id.startswith("fld")
    rec = table.create({"Key": "k", "N": 1.26, "Label": "x"})
    assert rec["fields"] == {"Key": "k", "N": 1.3, "Label": "x"}
    # Airtable's meta API cannot create formula fields; seeding from Python can.
    with pytest.raises(requests.HTTPError) as exc:
        table.create_field("Twice", "formula", options={"formula": "{N} * 2"})
    status, body = error_of(exc.value)
    assert (status, body["error"]["type"]) == (422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE")
    local_airtable.store.create_field(
        None, "Extra", {"name": "Twice", "type": "formula", "options": {"formula": "{N} * 2"}}
    )
    assert table.get(rec["id"])["fields"]["Twice"] == 2.6
    with pytest.raises(requests.HTTPError) as exc:
        base.create_table("Extra", [{"name": "Key", "type": "singleLineText"}])
    assert error_of(exc.value)[0] == 422
    with pytest.raises(requests.HTTPError) as exc:
        table.create_field("Key", "singleLineText")
    assert error_of(exc.value)[0] == 422


def test_server_binds_loopback_by_default(local_airtable: LocalAirtable) -> None:
    assert local_airtable.url.startswith("http://127.0.0.1:")


def test_payload_too_large_is_413(make_local_airtable: Callable[..., LocalAirtable]) -> None:
    srv = make_local_airtable(max_body_bytes=1000)
    resp = raw(srv).post(url(srv, TEST_BASE_ID, JOBS), json={"fields": {"Run ID": "x" * 2000}})
    assert resp.status_code == 413
    assert srv.store.snapshot(None, JOBS)[1] == []


def test_view_parameter(local_airtable: LocalAirtable, jobs: pyairtable.Table) -> None:
    jobs.create({"Run ID": "a"})
    assert len(jobs.all(view="Grid view")) == 1
    with pytest.raises(requests.HTTPError) as exc:
        jobs.all(view="No such view")
    assert error_of(exc.value)[0] == 422
