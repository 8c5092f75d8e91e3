"""The local mirror (issue 23) against the local server over HTTP: request counts from its
request log, plans byte-for-byte equal to a full read's, deletions found through a webhook or
a key-only scan, and mirror files that cannot be trusted rebuilt with a one-line notice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.admin.sync import plan_to_json
from jobtrack_airtable.local.webhooks import MAX_WEBHOOKS_PER_BASE
from jobtrack_airtable.timeutil import to_airtable
from tests.helpers import CRR, JOBS, NOW, SyncBase, at, base_fixture  # noqa: F401

from .helpers import MIRROR_SPOILERS, mirror_delete, mirror_seed, mirror_update

PAYLOADS = "payloads"


@pytest.fixture
def mirror(base: SyncBase, tmp_path: Path) -> Iterator[Mirror]:
    m = Mirror(tmp_path / "mirror.sqlite", base.srv.base_id)
    yield m
    m.close()


def mirrored(b: SyncBase, m: Mirror) -> int:
    """Plan from the mirror and by a full read, which must be byte-for-byte the same; returns
    the requests the mirror's plan made."""
    b.log.clear()
    plan = plan_to_json(b.plan(mirror=m))
    made = b.log.total
    assert plan == plan_to_json(b.plan())
    return made


def _requests(b: SyncBase) -> list[tuple[str, str]]:
    return [(e.method, e.decoded_path.rsplit("/", 1)[-1]) for e in b.log.entries]


def test_first_sync_reads_everything_then_an_unchanged_one_costs_four_requests(
    base: SyncBase, mirror: Mirror
) -> None:
    mirror_seed(base)
    base.log.clear()
    first = base.plan(mirror=mirror)
    assert mirror.last is not None and mirror.last.kind == "full"
    assert mirror.last.notice is not None and "is missing" in mirror.last.notice
    # The schema, the webhooks (none to share: one is made), then both tables: 1 + 3 pages.
    assert _requests(base) == [
        ("GET", "tables"),
        ("GET", "webhooks"),
        ("POST", "webhooks"),
        ("GET", "Job Tracking"),
        *[("GET", "Client Run Results")] * 3,
    ]
    base.log.clear()
    again = base.plan(mirror=mirror)
    assert mirror.last.kind == "incremental" and mirror.last.notice is None
    assert _requests(base) == [
        ("GET", "tables"),
        ("GET", PAYLOADS),
        ("GET", "Job Tracking"),
        ("GET", "Client Run Results"),
    ]
    assert plan_to_json(first) == plan_to_json(again) == plan_to_json(base.plan())
    assert first.has_changes


def test_changed_rows_cost_one_page_per_hundred(base: SyncBase, mirror: Mirror) -> None:
    mirror_seed(base)
    base.plan(mirror=mirror)
    mirror_update(base, list(base.rows(CRR))[:150], {"Status": "Failed"})
    # 1 schema + 1 payloads + 1 jobs + 2 client pages: within 3 + 2⌈K/100⌉ = 7.
    assert mirrored(base, mirror) == 5
    assert mirror.last is not None and mirror.last.changed == {"jobs": 0, "client_runs": 150}


def test_deletions_made_outside_are_found_in_the_webhook_payloads(
    base: SyncBase, mirror: Mirror
) -> None:
    mirror_seed(base)
    base.plan(mirror=mirror)
    gone = list(base.rows(CRR))[10:60]
    mirror_delete(base, gone)
    assert mirrored(base, mirror) == 4  # five payloads, one page of them
    assert mirror.last is not None and mirror.last.deleted == 50
    assert mirror.status().deletions == "webhook"
    assert mirror.status().rows == {"jobs": 5, "client_runs": 200}


def _fill_webhooks(b: SyncBase) -> None:
    """Other integrations' webhooks (watching something else: none can be shared)."""
    api_base = b.srv.api().base(b.srv.base_id)
    theirs = {"options": {"filters": {"dataTypes": ["tableData"], "changeTypes": ["add"]}}}
    for _ in range(MAX_WEBHOOKS_PER_BASE):
        api_base.add_webhook(None, theirs)  # type: ignore[arg-type]


def test_without_webhooks_a_key_only_scan_finds_deletions_and_status_says_so(
    base: SyncBase, tmp_path: Path
) -> None:
    mirror_seed(base)
    _fill_webhooks(base)  # the base's 10 webhooks are used by others
    mirror = Mirror(tmp_path / "m.sqlite", base.srv.base_id, scan_interval=timedelta(hours=1))
    base.plan(mirror=mirror)
    status = mirror.status()
    assert status.deletions == "scan"
    assert "TOO_MANY_WEBHOOKS" in (status.deletions_reason or "")
    assert "key-only scan" in status.describe_deletions()

    mirror_delete(base, list(base.rows(CRR))[:20])
    base.log.clear()
    base.plan(mirror=mirror)
    # Not due yet: the deleted rows are still mirrored, and the refresh says it is incomplete.
    assert base.log.total == 3 and mirror.last is not None and not mirror.last.complete
    assert mirror.status().rows["client_runs"] == 250

    due = Mirror(tmp_path / "m.sqlite", base.srv.base_id, scan_interval=timedelta(microseconds=1))
    # Due: the webhook is tried again (listed, still refused), then both tables' keys.
    assert mirrored(base, due) == 1 + 2 + (1 + 3) + 2
    assert due.last is not None and due.last.deleted == 20 and due.last.complete
    scans = [e for e in base.log.entries if e.query.get("fields[]") == ["Run ID"]]
    assert len(scans) == 1 + 3  # key-only: the Run ID field alone


def test_a_lost_webhook_is_replaced_and_one_scan_covers_the_gap(
    base: SyncBase, mirror: Mirror
) -> None:
    mirror_seed(base)
    base.plan(mirror=mirror)
    api_base = base.srv.api().base(base.srv.base_id)
    for hook in api_base.webhooks():
        hook.delete()
    mirror_delete(base, list(base.rows(CRR))[:7])
    # Schema, the 404 on the payloads, a new webhook (listed, made), the key scan (1 + 3
    # pages), then the changed rows of both tables.
    assert mirrored(base, mirror) == 1 + 1 + 2 + 4 + 2
    assert mirror.last is not None and mirror.last.deleted == 7
    assert len(api_base.webhooks()) == 1


def test_mirrors_of_one_base_share_its_webhook(
    base: SyncBase, mirror: Mirror, tmp_path: Path
) -> None:
    mirror_seed(base, clients=30)
    base.plan(mirror=mirror)
    other = Mirror(tmp_path / "another-admin.sqlite", base.srv.base_id)
    base.log.clear()
    base.plan(mirror=other)
    assert base.log.count(method="POST") == 0  # the webhook there was shared, none made
    assert len(base.srv.api().base(base.srv.base_id).webhooks()) == 1
    mirror_delete(base, list(base.rows(CRR))[:3])
    for m in (mirror, other):  # each reads the payloads from its own cursor
        mirrored(base, m)
        assert m.last is not None and m.last.deleted == 3
    other.close()


def test_a_webhook_near_its_expiry_is_refreshed(base: SyncBase, mirror: Mirror) -> None:
    mirror_seed(base, clients=10)
    base.plan(mirror=mirror)
    soon = to_airtable(datetime.now(UTC) + timedelta(days=1))
    mirror.file.set_meta({"webhook_expires": soon})
    base.log.clear()
    base.plan(mirror=mirror)
    assert ("POST", "refresh") in _requests(base)
    assert mirror.status().webhook_expires != soon


@pytest.mark.parametrize("spoil", MIRROR_SPOILERS)
def test_a_mirror_that_cannot_be_trusted_is_rebuilt_with_a_one_line_notice(
    base: SyncBase, tmp_path: Path, spoil: Any
) -> None:
    mirror_seed(base, clients=30)
    path = tmp_path / "m.sqlite"
    why = spoil(path, base.srv.base_id)
    mirror = Mirror(path, base.srv.base_id)
    assert mirror.notice is not None and why in mirror.notice and "\n" not in mirror.notice
    assert "rebuilding it from a full read" in mirror.notice
    mirrored(base, mirror)
    assert mirror.last is not None and mirror.last.kind == "full"
    assert Mirror(path, base.srv.base_id).notice is None  # trusted from now on
