"""Apply is idempotent (issue 10 item 5): lost responses, retries, two admins applying at once
and a SIGKILLed apply run again all end with one row per Run ID, and one apply converges.

Every write of apply is an upsert on the natural key, a delete (a row already gone counts as
deleted) or an absolute update by record ID, so repeating any of them changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from jobtrack_airtable.admin.sync import Action, StalePlanError, apply_plan, plan_sync
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from tests.conftest import MakeLocalAirtable
from tests.helpers import (
    CRR,
    JOBS,
    NOW,
    STALE,
    SyncBase,
    at,
    open_connections,
    wait_for_connections,
)

FAST = DEFAULT_POLICY.scaled(0.01)
ORPHAN_BASES = 25


def _seed(b: SyncBase) -> None:
    """25 orphan client-run bases (25 job rows to create), 12 legacy statuses (updates) and
    6 duplicated client runs (merges: updates and deletes)."""
    for i in range(ORPHAN_BASES):
        run = f"250930-1{i // 60:01d}{i % 60:02d}00"
        for c in range(2):
            b.add(CRR, {"Run ID": f"{run}-C{c}", "Client ID": f"C{c}", "Status": "Completed"})
    for i in range(12):
        b.add(CRR, {"Run ID": f"250930-100000-L{i}", "Client ID": f"L{i}", "Status": "Done"})
    for i in range(6):
        for n in range(2):
            b.add(
                CRR,
                {"Run ID": f"250930-100000-D{i}", "Client ID": f"D{i}", "Status": "Completed"},
                created=NOW - timedelta(days=1, seconds=-n),
            )


def _connect(srv: LocalAirtable) -> Repository:
    settings = srv.settings(rate_limit=0)
    return Repository(Connection.from_settings(settings, schema=srv.schema, policy=FAST))


def _duplicates(b: SyncBase, table: str) -> dict[str, int]:
    keys = Counter(f.get("Run ID") for f in b.rows(table).values())
    return {k: n for k, n in keys.items() if n > 1}


def _assert_converged(b: SyncBase) -> None:
    assert _duplicates(b, JOBS) == {}
    assert _duplicates(b, CRR) == {}
    again = b.plan()
    assert not again.has_changes, [r for r in again.records if r.action is not Action.ATTENTION]


def test_apply_under_lost_responses_makes_no_duplicates(
    make_local_airtable: MakeLocalAirtable,
) -> None:
    srv = make_local_airtable(fault_seed=7)
    b = SyncBase(srv)
    _seed(b)
    plan = b.plan()
    assert plan.summary.create == ORPHAN_BASES
    srv.faults.add("lost_response", probability=0.3)
    apply_plan(_connect(srv), plan)
    assert srv.faults.counts.get("lost_response", 0) >= 3  # the faults did fire
    srv.faults.clear()
    assert len(b.rows(JOBS)) == ORPHAN_BASES  # one per orphan base
    _assert_converged(b)


def test_two_admins_applying_the_same_plan_at_once_make_no_duplicates(
    local_airtable: LocalAirtable,
) -> None:
    b = SyncBase(local_airtable)
    _seed(b)
    # Both admins pass their re-read before either writes: the race a guard cannot see.
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def admin() -> None:
        repo = _connect(local_airtable)
        waited = False

        def on_progress(stage: str, _n: int) -> None:
            nonlocal waited
            if stage == "verify client_runs" and not waited:
                waited = True
                barrier.wait()

        try:
            plan = plan_sync(repo, now=NOW, stale_after=STALE)
            apply_plan(repo, plan, on_progress=on_progress)
        except StalePlanError:  # refusing is fine too; writing twice is not
            pass
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=admin) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(b.rows(JOBS)) == ORPHAN_BASES
    _assert_converged(b)


_APPLY_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timedelta
    from jobtrack_airtable.transport.client import Connection
    from jobtrack_airtable.transport.repository import Repository
    from jobtrack_airtable.schema import load_schema
    from jobtrack_airtable.settings import Settings
    from jobtrack_airtable.admin.sync import sync_and_apply

    url, token, base, now = sys.argv[1:5]
    settings = Settings(_env_file=None, api_key=token, base_id=base, endpoint_url=url,
                        rate_limit=0)
    repo = Repository(Connection.from_settings(settings, schema=load_schema()))
    sync_and_apply(repo, now=datetime.fromisoformat(now), stale_after=timedelta(hours=2))
    """
)


def _writes(srv: LocalAirtable) -> int:
    return sum(srv.request_log.count(method=m) for m in ("PATCH", "POST", "DELETE"))


def test_sigkilled_apply_then_one_apply_converges(
    local_airtable: LocalAirtable, tmp_path: Path
) -> None:
    srv = local_airtable
    b = SyncBase(srv)
    _seed(b)
    # Slow writes, so the kill lands in the middle of the apply.
    srv.faults.add("delay", method="PATCH", probability=1.0, delay=0.3)
    srv.faults.add("delay", method="POST", probability=1.0, delay=0.3)
    script = tmp_path / "apply.py"
    script.write_text(_APPLY_SCRIPT, encoding="utf-8")
    srv.request_log.clear()
    ours = open_connections(srv)
    proc = subprocess.Popen(
        [sys.executable, str(script), srv.url, srv.token, srv.base_id, NOW.isoformat()],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        deadline = time.monotonic() + 60
        while _writes(srv) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "apply finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # What the killed process had sent is still being served (the delay, then the write):
    # the plan below must see it, so wait until its connections have ended.
    wait_for_connections(srv, at_most=ours)
    srv.faults.clear()
    assert b.plan().has_changes  # the kill left work undone
    # One apply finishes it: nothing duplicated, nothing left to do.
    apply_plan(_connect(srv), b.plan())
    assert len(b.rows(JOBS)) == ORPHAN_BASES
    _assert_converged(b)


def test_one_apply_after_a_killed_worker_converges(local_airtable: LocalAirtable) -> None:
    """A worker killed mid-run leaves its job and client rows Running: one apply fails them
    all (the job too, though its own row is fresher than its client rows), then nothing."""
    b = SyncBase(local_airtable)
    run = "250930-090000"
    b.add(JOBS, {"Run ID": run, "Status": "Running", "Start Time": at(hours=4)})
    for c in range(15):
        b.add(
            CRR,
            {
                "Run ID": f"{run}-K{c}",
                "Client ID": f"K{c}",
                "Status": "Running" if c % 3 else "Completed",
                "Start Time": at(hours=4),
                "Last Updated": at(hours=3, minutes=c),
            },
        )
    plan = b.plan()
    apply_plan(_connect(local_airtable), plan)
    statuses: dict[str, Any] = {f["Run ID"]: f["Status"] for f in b.rows(CRR).values()}
    assert set(statuses.values()) == {"Completed", "Failed"}
    assert b.by_key(JOBS)[run]["Status"] == "Failed"
    _assert_converged(b)
