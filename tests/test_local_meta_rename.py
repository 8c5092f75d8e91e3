"""Renaming fields and tables through the meta API of the local server, over real HTTP,
through pyairtable's own schema models (``FieldSchema.save()``, ``TableSchema.save()``): the
IDs stay, the records' values follow the field, formulas that reference it keep working."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from pyairtable.api.types import RecordDict

from jobtrack_airtable.testing import TrackingServer

from .helpers import rename_field


def test_renaming_a_field_keeps_its_id_values_and_formulas(local_airtable: TrackingServer) -> None:
    api = local_airtable.api()
    jobs = local_airtable.table("jobs")
    jobs.create(
        {
            "Run ID": "250930-141522",
            "Start Time": "2025-09-30T14:15:22.000Z",
            "End Time": "2025-09-30T14:16:22.000Z",
        }
    )
    fid = rename_field(api, local_airtable.base_id, "Job Tracking", "Start Time", "Began")
    local_airtable.request_log.clear()

    [record] = jobs.all()
    assert record["fields"]["Began"] == "2025-09-30T14:15:22.000Z"
    assert "Start Time" not in record["fields"]
    assert record["fields"]["Duration"] == 60  # the formula follows the rename
    [by_id] = jobs.all(use_field_ids=True)
    assert by_id["fields"][fid] == "2025-09-30T14:15:22.000Z"
    # The old name is unknown now, in formulas and writes alike; the new one works.
    with pytest.raises(Exception, match="Unknown field names"):
        jobs.all(formula="{Start Time}")
    assert [r["id"] for r in jobs.all(formula="{Began}")] == [record["id"]]
    meta = api.base(local_airtable.base_id).schema(force=True).table("Job Tracking")
    duration = meta.field("Duration")
    assert "{Began}" in duration.options.formula  # type: ignore[union-attr]
    assert fid in duration.options.referenced_field_ids  # type: ignore[union-attr]
    # 1 list + 1 list by ID + 2 formula lists + 1 meta read.
    assert local_airtable.request_log.count() == 5


def test_renaming_a_table_keeps_its_id(local_airtable: TrackingServer) -> None:
    api = local_airtable.api()
    base = api.base(local_airtable.base_id)
    schema = base.table("Job Tracking").schema()
    schema.name = "Worker Jobs"
    schema.save()
    created: RecordDict = api.table(local_airtable.base_id, schema.id).create({"Run ID": "x"})
    assert api.table(local_airtable.base_id, "Worker Jobs").get(created["id"])["id"]
    with pytest.raises(requests.HTTPError, match="404"):
        api.table(local_airtable.base_id, "Job Tracking").all()
    names = [t.name for t in base.schema(force=True).tables]
    assert names == ["Worker Jobs", "Client Run Results"]


def test_rename_refusals(local_airtable: TrackingServer) -> None:
    api = local_airtable.api()
    base_id = local_airtable.base_id
    fid = api.base(base_id).table("Job Tracking").schema().field("Stream").id
    url = f"meta/bases/{base_id}/tables/Job%20Tracking/fields/{fid}"
    with pytest.raises(Exception, match="DUPLICATE_OR_EMPTY_FIELD_NAME"):
        api.request("PATCH", api.build_url(url), json={"name": "Status"})
    with pytest.raises(Exception, match="INVALID_REQUEST_UNKNOWN"):
        api.request("PATCH", api.build_url(url), json={"type": "number"})
    with pytest.raises(Exception, match="404"):
        api.request("PATCH", api.build_url(url[:-17] + "fldAAAAAAAAAAAAAA"), json={"name": "x"})
    with pytest.raises(Exception, match="DUPLICATE_TABLE_NAME"):
        api.request(
            "PATCH",
            api.build_url(f"meta/bases/{base_id}/tables/Job%20Tracking"),
            json={"name": "Client Run Results"},
        )
    # Nothing changed.
    assert api.base(base_id).schema(force=True).table("Job Tracking").field(fid).name == "Stream"


def test_a_renamed_field_survives_a_restart(
    tmp_path: Path, make_local_airtable: Callable[..., TrackingServer]
) -> None:
    path = tmp_path / "base.sqlite"
    srv = make_local_airtable(data_path=path)
    srv.table("jobs").create({"Run ID": "250930-141522", "Stream": 2})
    rename_field(srv.api(), srv.base_id, "Job Tracking", "Stream", "Worker Stream")
    srv.stop()
    again = make_local_airtable(data_path=path)
    [record] = again.table("Job Tracking").all(formula="{Worker Stream} = 2")
    assert record["fields"]["Worker Stream"] == 2
    assert "Stream" not in record["fields"]
