"""Attacks on the mirror (issue 23): faults from the local server's injector during refreshes,
two refreshes of one file at once, and a refreshing process killed with SIGKILL.  Whatever
happened, the next plan from the mirror is the plan a full read makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.admin.sync import plan_sync, plan_to_json
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from tests.helpers import CRR, NOW, STALE, SyncBase, base_fixture  # noqa: F401
from tests.test_mirror import _delete, _seed, _update

FAULTS = ("500", "502", "503", "429", "drop", "lost_response")


def _repo(b: SyncBase) -> Repository:
    """Another connection to ``b``'s server, retrying on the local server's short scale."""
    return Repository(
        Connection.from_settings(
            b.conn.settings, schema=b.schema, policy=DEFAULT_POLICY.scaled(0.01)
        )
    )


def _agrees(repo: Repository, mirror: Mirror) -> None:
    planned = plan_sync(repo, now=NOW, stale_after=STALE, mirror=mirror)
    assert plan_to_json(planned) == plan_to_json(plan_sync(repo, now=NOW, stale_after=STALE))


def test_faulty_refreshes_never_leave_a_wrong_mirror(base: SyncBase, tmp_path: Path) -> None:
    _seed(base, clients=400)
    repo = _repo(base)
    mirror = Mirror(tmp_path / "m.sqlite", base.srv.base_id)
    _agrees(repo, mirror)
    faults = base.srv.faults
    faults.seed(11)
    failures = 0
    for round_ in range(6):
        ids = list(base.rows(CRR))
        _update(base, ids[round_ * 20 : round_ * 20 + 30], {"Status": "Failed"})
        _delete(base, ids[-(round_ + 1) * 3 :])
        for kind in FAULTS:
            faults.add(kind, probability=0.12)
        try:
            plan_sync(repo, now=NOW, stale_after=STALE, mirror=mirror)
        except Exception:  # the retry policy may give up: the next refresh must recover
            failures += 1
        faults.clear()
        _agrees(repo, mirror)
    assert sum(faults.counts.values()) > 0  # faults did fire
    mirror.close()
    repo.conn.close()


def test_two_refreshes_of_one_file_at_once(base: SyncBase, tmp_path: Path) -> None:
    _seed(base, clients=300)
    path = tmp_path / "m.sqlite"
    with Mirror(path, base.srv.base_id) as first:
        first.refresh(base.repo)
    _update(base, list(base.rows(CRR))[:150], {"Status": "Failed"})
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def refresh() -> None:
        repo = _repo(base)
        try:
            with Mirror(path, base.srv.base_id) as mine:
                start.wait()
                mine.refresh(repo)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            repo.conn.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Mirror(path, base.srv.base_id) as after:
        assert after.notice is None
        _agrees(base.repo, after)


_REFRESHER = """
import sys
from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.testing import TrackingServer  # noqa: F401
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.schema import load_schema

url, token, base_id, path = sys.argv[1:5]
settings = Settings(_env_file=None, api_key=token, base_id=base_id, endpoint_url=url, rate_limit=0)
repo = Repository(Connection.from_settings(settings, schema=load_schema()))
mirror = Mirror(path, base_id)
print("ready", flush=True)
while True:
    mirror.refresh(repo, full=True)
    print("refreshed", flush=True)
"""


def test_a_refresh_killed_with_sigkill_leaves_a_mirror_that_plans_right(
    base: SyncBase, tmp_path: Path
) -> None:
    _seed(base, clients=1500)
    path = tmp_path / "m.sqlite"
    srv = base.srv
    for kills in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _REFRESHER, srv.url, srv.token, srv.base_id, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # Killed during its (kills + 1)-th full refresh: reads, or the write that follows.
        for _ in range(kills):
            assert proc.stdout.readline().strip() == "refreshed"
        _update(base, list(base.rows(CRR))[kills * 10 : kills * 10 + 10], {"Status": "Failed"})
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Mirror(path, base.srv.base_id) as after:
            _agrees(base.repo, after)
