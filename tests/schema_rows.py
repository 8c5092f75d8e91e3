"""Records and schema variants shared by the metrics, rows and aggregation tests."""

from __future__ import annotations

from typing import Any

from jobtrack_airtable.schema import TableSpec, load_schema

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
