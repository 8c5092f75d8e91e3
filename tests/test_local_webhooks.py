"""The local server's webhooks API (issue 23), through pyairtable's webhook methods over HTTP:
create with a specification, list, payloads by cursor in Airtable's documented shape (created,
changed and destroyed records), refresh, delete, expiry 7 days after creation or the last
refresh, and at most 10 webhooks per base."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyairtable
import pytest
import requests
from pyairtable.models.webhook import CreateWebhookResponse, WebhookPayload

from jobtrack_airtable.local.webhooks import LIFETIME, MAX_WEBHOOKS_PER_BASE
from jobtrack_airtable.testing import TrackingServer

CRR = "Client Run Results"
ALL_CHANGES: dict[str, Any] = {
    "options": {
        "filters": {"dataTypes": ["tableData"]},
        "includes": {"includePreviousCellValues": True, "includeCellValuesInFieldIds": "all"},
    }
}
REMOVALS: dict[str, Any] = {
    "options": {"filters": {"dataTypes": ["tableData"], "changeTypes": ["remove"]}}
}


def _base(srv: TrackingServer) -> pyairtable.Base:
    return srv.api().base(srv.base_id)


def add(base: pyairtable.Base, spec: dict[str, Any]) -> CreateWebhookResponse:
    """A webhook polled for payloads: Airtable's ``notificationUrl`` is optional (no public URL
    needed), though pyairtable's type hint asks for a string."""
    return base.add_webhook(None, spec)  # type: ignore[arg-type]


def _field_id(srv: TrackingServer, table: str, name: str) -> str:
    return str(_base(srv).table(table).schema().field(name).id)


def test_payloads_describe_created_changed_and_destroyed_records(
    local_airtable: TrackingServer,
) -> None:
    base = _base(local_airtable)
    table = base.table(CRR)
    made = add(base, ALL_CHANGES)
    assert made.id.startswith("ach") and made.mac_secret_base64
    assert made.expiration_time is not None

    record = table.create({"Run ID": "250930-120000-Acme", "Status": "Running"})
    table.update(record["id"], {"Status": "Completed"})
    table.delete(record["id"])

    hook = base.webhook(made.id)
    assert hook.cursor_for_next_payload == 4
    payloads = list(hook.payloads())
    assert [p.cursor for p in payloads] == [1, 2, 3]
    assert all(isinstance(p, WebhookPayload) and p.payload_format == "v0" for p in payloads)
    numbers = [p.base_transaction_number for p in payloads]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3

    table_id = table.schema().id
    run_id, status = (
        _field_id(local_airtable, CRR, "Run ID"),
        _field_id(local_airtable, CRR, "Status"),
    )
    created = payloads[0].changed_tables_by_id[table_id].created_records_by_id[record["id"]]
    assert created.cell_values_by_field_id == {run_id: "250930-120000-Acme", status: "Running"}
    changed = payloads[1].changed_tables_by_id[table_id].changed_records_by_id[record["id"]]
    assert changed.current.cell_values_by_field_id == {status: "Completed"}
    assert changed.previous is not None
    assert changed.previous.cell_values_by_field_id == {status: "Running"}
    assert changed.unchanged is not None
    assert changed.unchanged.cell_values_by_field_id == {run_id: "250930-120000-Acme"}
    destroyed = payloads[2].changed_tables_by_id[table_id]
    assert destroyed.destroyed_record_ids == [record["id"]]

    # Resuming from a cursor returns only what follows it.
    assert [p.cursor for p in hook.payloads(cursor=3)] == [3]
    assert list(hook.payloads(cursor=4)) == []


def test_a_removals_only_webhook_sees_only_deletions_and_pages_by_fifty(
    local_airtable: TrackingServer,
) -> None:
    base = _base(local_airtable)
    table = base.table(CRR)
    made = add(base, REMOVALS)
    records = table.batch_create([{"Run ID": f"250930-120000-C{i}"} for i in range(60)])
    table.batch_update([{"id": r["id"], "fields": {"Status": "Running"}} for r in records])
    for r in records:  # one payload per request: 60 of them
        table.delete(r["id"])
    local_airtable.request_log.clear()
    payloads = list(base.webhook(made.id).payloads())
    # The list of webhooks (pyairtable finds the webhook by listing), then two pages: 50 + 10.
    assert local_airtable.request_log.count(method="GET") == 3
    destroyed = [
        rid
        for p in payloads
        for t in p.changed_tables_by_id.values()
        for rid in t.destroyed_record_ids
    ]
    assert destroyed == [r["id"] for r in records]
    assert all(
        not t.created_records_by_id and not t.changed_records_by_id
        for p in payloads
        for t in p.changed_tables_by_id.values()
    )


def test_record_change_scope_limits_a_webhook_to_one_table(
    local_airtable: TrackingServer,
) -> None:
    base = _base(local_airtable)
    jobs = base.table("Job Tracking")
    scoped = {
        "options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": jobs.schema().id}}
    }
    made = add(base, scoped)
    base.table(CRR).create({"Run ID": "250930-120000-Acme"})
    jobs.create({"Run ID": "250930-120000"})
    payloads = list(base.webhook(made.id).payloads())
    assert [list(p.changed_tables_by_id) for p in payloads] == [[jobs.schema().id]]


def test_refresh_extends_and_expiry_removes_a_webhook(local_airtable: TrackingServer) -> None:
    base = _base(local_airtable)
    webhooks = local_airtable.app.webhooks
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [start]
    webhooks.clock = lambda: clock[0]
    made = add(base, REMOVALS)
    assert made.expiration_time == start + LIFETIME

    clock[0] = start + timedelta(days=6)
    hook = base.webhook(made.id)
    hook.extend_expiration()
    assert base.webhook(made.id).expiration_time == clock[0] + LIFETIME

    clock[0] = start + timedelta(days=12)  # within 7 days of the refresh: alive
    assert [h.id for h in base.webhooks()] == [made.id]
    clock[0] = start + timedelta(days=13, seconds=1)  # expired: gone
    assert base.webhooks() == []
    with pytest.raises(requests.HTTPError) as info:
        hook.extend_expiration()
    assert info.value.response is not None and info.value.response.status_code == 404


def test_at_most_ten_webhooks_per_base_and_delete_frees_a_slot(
    local_airtable: TrackingServer,
) -> None:
    base = _base(local_airtable)
    made = [add(base, REMOVALS) for _ in range(MAX_WEBHOOKS_PER_BASE)]
    with pytest.raises(requests.HTTPError) as info:
        add(base, REMOVALS)
    assert info.value.response is not None
    assert info.value.response.json()["error"]["type"] == "TOO_MANY_WEBHOOKS"
    base.webhook(made[0].id).delete()
    assert len(base.webhooks()) == MAX_WEBHOOKS_PER_BASE - 1
    add(base, REMOVALS)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"options": {"filters": {"dataTypes": []}}},
        {"options": {"filters": {"dataTypes": ["tableData"], "changeTypes": ["move"]}}},
        {"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": "tblNope"}}},
    ],
)
def test_a_bad_specification_is_refused_with_422(
    local_airtable: TrackingServer, spec: dict[str, Any]
) -> None:
    base = _base(local_airtable)
    # Straight to the endpoint: pyairtable would refuse some of these before sending.
    with pytest.raises(requests.HTTPError) as info:
        base.api.request("POST", base.urls.webhooks, json={"specification": spec})
    assert info.value.response is not None and info.value.response.status_code == 422
    assert base.webhooks() == []
