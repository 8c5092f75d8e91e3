"""Rows for the ops tests (check, report), written through the real path: Repository upserts
over HTTP into a local server."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.timeutil import parse_airtable, to_airtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.codec import codec_for
from jobtrack_airtable.transport.repository import Repository

#: The server behind each repository ``connect`` made, so ``put`` can date rows' creation.
_SERVERS: dict[int, LocalAirtable] = {}


def connect(srv: LocalAirtable) -> Repository:
    repo = Repository(Connection.from_settings(srv.settings(), schema=srv.schema))
    _SERVERS[id(repo)] = srv
    return repo


def base_id_at(moment: datetime) -> str:
    return moment.strftime("%y%m%d-%H%M%S")


def job(
    start: datetime,
    status: str,
    *,
    stream: int = 1,
    minutes: float | None = 10,
    last_updated: datetime | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """A job row by logical key; ``minutes=None`` leaves it without an End Time."""
    fields: dict[str, Any] = {
        "run_id": base_id_at(start),
        "status": status,
        "stream": stream,
        "start_time": to_airtable(start),
    }
    end = start + timedelta(minutes=minutes) if minutes is not None else None
    if end is not None:
        fields["end_time"] = to_airtable(end)
    touched = last_updated or end or start
    fields["last_updated"] = to_airtable(touched)
    if notes:
        fields["system_notes"] = notes
    return fields


def client(
    job_start: datetime,
    client_id: str,
    status: str,
    *,
    seconds: float = 60,
    offset: float = 5,
    error: str | None = None,
    profile_tokens: int = 0,
    post_tokens: int = 0,
    cost: float = 0.0,
) -> dict[str, Any]:
    start = job_start + timedelta(seconds=offset)
    end = start + timedelta(seconds=seconds)
    fields: dict[str, Any] = {
        "run_id": f"{base_id_at(job_start)}-{client_id}",
        "client_id": client_id,
        "status": status,
        "start_time": to_airtable(start),
        "last_updated": to_airtable(end),
        "profile_tokens": profile_tokens,
        "post_tokens": post_tokens,
        "apify_costs": cost,
    }
    if status != "Running":
        fields["end_time"] = to_airtable(end)
    if error:
        fields["error_details"] = error
    return fields


def put(
    repo: Repository,
    jobs: list[dict[str, Any]] | None = None,
    clients: list[dict[str, Any]] | None = None,
) -> None:
    """Upsert the rows over HTTP, each created (by the server's clock) when it started, as a
    real row is: a row whose stamps predate its creation reads as written on a skewed clock.
    Its last-modified time is now, as a row written now has (the mirror's refresh reads the
    rows changed since its last one by that time)."""
    srv = _SERVERS.get(id(repo))
    for table, rows in (("jobs", jobs or []), ("client_runs", clients or [])):
        for row in rows:
            if srv is None:
                repo.upsert(table, [row])
                continue
            created = parse_airtable(row["start_time"])
            saved = srv.store.clock
            srv.store.clock = lambda created=created: created
            try:
                [record] = repo.upsert(table, [row])
            finally:
                srv.store.clock = saved
            srv.store.update_records(srv.base_id, repo.spec(table).name, [(record["id"], {})])


def put_legacy(srv: LocalAirtable, table: str, fields: dict[str, Any]) -> None:
    """Insert a row holding a legacy value (``In Progress``) the schema check would refuse,
    straight into the server's store with typecast, as a legacy base holds it."""
    spec = srv.schema.table(table)
    srv.store.create_records(
        srv.base_id,
        spec.name,
        [codec_for(spec).names(fields)],
        typecast=True,
        created_time=parse_airtable(fields["start_time"]),
    )


#: The variables that point the CLI at a base; a subprocess gets the test server's only.
CLI_ENV_VARS = (
    "AIRTABLE_API_KEY",
    "AIRTABLE_BASE_ID",
    "JOBTRACK_ENDPOINT_URL",
    "JOBTRACK_SCHEMA_FILE",
    "JOBTRACK_STALE_AFTER_MINUTES",
    "JOBTRACK_RATE_LIMIT",
    "JOBTRACK_LOCAL_TOKEN",
)


def subprocess_env(srv: LocalAirtable) -> dict[str, str]:
    """The environment of a CLI subprocess talking to ``srv`` (rate limiting off)."""
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV_VARS}
    env.update(
        AIRTABLE_API_KEY=srv.token,
        AIRTABLE_BASE_ID=srv.base_id,
        JOBTRACK_ENDPOINT_URL=srv.url,
        JOBTRACK_RATE_LIMIT="0",
    )
    return env
