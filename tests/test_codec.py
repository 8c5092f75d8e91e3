"""The codec (``transport/codec.py``): logical keys ⇄ the wire, in one place.

Round trips go pyairtable → HTTP → the local server and back: with configured names, with
pinned field IDs (the request bodies carry IDs, the rows come back by key), through a field
renamed in the base; fields the schema does not know are kept out of the logical view as
before; a metric is validated once, where it enters.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable import metrics
from jobtrack_airtable.admin.schema_pin import pin_schema_file
from jobtrack_airtable.errors import SchemaViolationError
from jobtrack_airtable.rows import ClientRunRow
from jobtrack_airtable.schema import Schema, TableSpec, default_schema_path, load_schema
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport import renames
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.codec import Codec, codec_for
from jobtrack_airtable.transport.meta import fetch_meta
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker

from .helpers import rename_field

RUN = "250930-141522-Guy-Wilson"
VALUES: dict[str, Any] = {
    "run_id": RUN,
    "client_id": "Guy-Wilson",
    "status": "Running",
    "profiles_examined": 12,
    "apify_costs": 1.25,
}


@pytest.fixture(autouse=True)
def _fresh_process() -> Iterator[None]:
    """Nothing learnt about renames leaks between tests."""
    renames.forget()
    yield
    renames.forget()


def _connect(srv: TrackingServer, schema: Schema | None = None) -> Repository:
    settings = srv.settings(rate_limit=0, flush_interval=3600.0)
    return Repository(
        Connection.from_settings(settings, schema=schema, policy=DEFAULT_POLICY.scaled(0.01))
    )


def _pinned(srv: TrackingServer, tmp_path: Path) -> Schema:
    path = tmp_path / "schema.toml"
    shutil.copyfile(default_schema_path(), path)
    pin_schema_file(path, fetch_meta(_connect(srv).conn))
    return load_schema(path)


def _written_fields(srv: TrackingServer) -> list[dict[str, Any]]:
    """The ``fields`` of every record the writes sent, as they went over the wire."""
    return [
        record["fields"]
        for e in srv.request_log.entries
        if e.method in ("POST", "PATCH") and isinstance(e.body, dict)
        for record in e.body.get("records", [])
    ]


# --- the codec alone ------------------------------------------------------------------------


def test_encode_is_one_map_from_keys_to_names() -> None:
    codec = codec_for(load_schema().client_runs)
    assert codec.encode(VALUES) == {
        "Run ID": RUN,
        "Client ID": "Guy-Wilson",
        "Status": "Running",
        "Profiles Examined for Scoring": 12,
        "Apify API Costs": 1.25,
    }
    assert codec.keys(codec.names(VALUES)) == VALUES
    assert not codec.uses_ids and codec.options == {}


def test_encode_lists_every_problem_and_refuses_an_airtable_name_as_a_key() -> None:
    codec = codec_for(load_schema().client_runs)
    with pytest.raises(SchemaViolationError) as info:
        codec.encode(
            {
                "Run ID": "x",  # a name where a key belongs would write another field
                "no_such_key": 1,
                "duration": 3,  # computed
                "status": "Done",
                "profiles_examined": True,
            }
        )
    problems = info.value.problems
    assert problems[:2] == [
        "unknown field 'Run ID' (an Airtable name; the logical key is 'run_id')",
        "unknown field 'no_such_key'",
    ]
    assert len(problems) == 5
    assert "'Duration' is computed" in problems[2]
    assert "'Done' is not an option of 'Status'" in problems[3]


def test_a_disabled_field_is_dropped_and_unknown_in_names(tmp_path: Path) -> None:
    data = load_schema().client_runs.model_dump()
    data["fields"]["apify_costs"]["enabled"] = False
    codec = Codec(TableSpec.model_validate(data))
    assert "Apify API Costs" not in codec.encode(VALUES)
    assert codec.keys({"Apify API Costs": 2, "Run ID": RUN}) == {"run_id": RUN}


def test_a_renamed_field_is_written_and_read_under_its_configured_name() -> None:
    data = load_schema().client_runs.model_dump()
    data["fields"]["profiles_examined"]["name"] = "Profiles Seen"
    codec = codec_for(TableSpec.model_validate(data))
    assert codec.encode({"profiles_examined": 4}) == {"Profiles Seen": 4}
    assert codec.keys({"Profiles Seen": 4, "Profiles Examined for Scoring": 9}) == {
        "profiles_examined": 4
    }


def test_one_codec_per_spec_object() -> None:
    spec = load_schema().jobs
    assert codec_for(spec) is codec_for(spec)
    again = TableSpec.model_validate(spec.model_dump())
    assert codec_for(again) is not codec_for(spec) and codec_for(again).spec is again


# --- round trips over HTTP ------------------------------------------------------------------


def test_round_trip_by_names(local_airtable: TrackingServer) -> None:
    repo = _connect(local_airtable)
    local_airtable.request_log.clear()
    [row] = repo.client_runs.upsert([VALUES])
    assert _written_fields(local_airtable) == [codec_for(repo.schema.client_runs).encode(VALUES)]
    again = repo.client_runs.find(RUN)
    for row_read in (row, again):
        assert row_read is not None and row_read.problems == []
        assert row_read.run_id == RUN and row_read.status_raw == "Running"
        assert row_read.metrics.profiles_examined == 12
        assert row_read.metrics.apify_costs == Decimal("1.25")


def test_round_trip_by_pinned_ids(local_airtable: TrackingServer, tmp_path: Path) -> None:
    schema = _pinned(local_airtable, tmp_path)
    spec = schema.client_runs
    codec = codec_for(spec)
    assert codec.uses_ids and codec.options == {"use_field_ids": True}
    repo = _connect(local_airtable, schema)
    local_airtable.request_log.clear()
    [row] = repo.client_runs.upsert([VALUES])
    [sent] = _written_fields(local_airtable)
    # Every field went out by its pinned ID, and the answer (by ID) came back by key.
    assert sent == {spec.field(k).id: v for k, v in VALUES.items()}
    assert row.run_id == RUN and row.metrics.profiles_examined == 12
    # Raw records (what sync and the mirror read) are keyed by configured name.
    [record] = repo.list_records("client_runs")
    assert record["fields"]["Profiles Examined for Scoring"] == 12


def test_a_field_renamed_in_the_base_round_trips_by_its_pinned_id(
    local_airtable: TrackingServer, tmp_path: Path
) -> None:
    schema = _pinned(local_airtable, tmp_path)
    api = local_airtable.api()
    rename_field(
        api, local_airtable.base_id, "Client Run Results", "Profiles Examined for Scoring", "Seen"
    )
    repo = _connect(local_airtable, schema)
    repo.client_runs.upsert([VALUES])
    # The base answers by ID; the record comes back under the configured name.
    row = repo.client_runs.find(RUN)
    assert row is not None and row.metrics.profiles_examined == 12
    stored = api.table(local_airtable.base_id, "Client Run Results").all()
    assert stored[0]["fields"]["Seen"] == 12


def test_unknown_wire_fields_stay_out_of_the_logical_view(
    local_airtable: TrackingServer,
) -> None:
    # A field the base has and the schema does not: kept in the raw record (sync and the
    # renderers see it), never a logical key, never a problem.
    api = local_airtable.api()
    table = api.table(local_airtable.base_id, "Client Run Results")
    table.create_field("Analyst Comment", "singleLineText")
    table.create({"Run ID": RUN, "Analyst Comment": "looks fine", "Status": "Running"})
    repo = _connect(local_airtable)
    [record] = repo.list_records("client_runs")
    assert record["fields"]["Analyst Comment"] == "looks fine"
    row = ClientRunRow.from_record(record, repo.schema.client_runs)
    assert row.fields["Analyst Comment"] == "looks fine" and row.problems == []
    logical = codec_for(repo.schema.client_runs).keys(record["fields"])
    assert logical["run_id"] == RUN and logical["status"] == "Running"
    assert "Analyst Comment" not in logical and "analyst_comment" not in logical
    assert len(logical) == len(record["fields"]) - 1


# --- a metric is validated once -------------------------------------------------------------


def test_a_metric_is_validated_once_where_it_enters(
    local_airtable: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered: list[str] = []
    validate = metrics._count

    def counting(field: str, value: Any, *, stored: bool = False) -> int:
        if not stored:  # values read back are parsed tolerantly: not an entry
            entered.append(field)
        return validate(field, value, stored=stored)

    monkeypatch.setattr(metrics, "_count", counting)
    tracker = Tracker.from_settings(local_airtable.settings(), flush_interval=3600.0)
    with tracker, tracker.job(stream=1) as job:
        run = job.client("Guy-Wilson")
        for _ in range(3):
            run.add(profiles_examined=2, profile_tokens=100)
        tracker.flush()
        run.add(profiles_examined=1)
        run.close()
    # One validation per value given to add(): none for the sums, the totals or the write.
    assert entered == ["profiles_examined", "profile_tokens"] * 3 + ["profiles_examined"]
    [row] = tracker.client_runs(str(job.run_id))
    assert row.metrics.profiles_examined == 7 and row.metrics.profile_tokens == 300
