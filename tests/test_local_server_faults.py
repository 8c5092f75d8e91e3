"""The local server under stress: rate limit and penalty, every injected fault kind,
persistence across restarts, concurrent writers, and the ``serve`` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyairtable
import pytest
import requests

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.local.faults import FaultInjector, parse_fault_option
from jobtrack_airtable.local.storage import Store

from .conftest import tracking_tables_file
from .helpers import ManualClock

TEST_BASE_ID = "appJobtrackTest01"  # as in conftest.py
TEST_TOKEN = "test-token-not-secret"
JOBS = "Job Tracking"
RATE_LIMIT_BODY = {
    "error": {
        "type": "RATE_LIMIT_REACHED",
        "message": "Rate limit exceeded. Please try again later",
    }
}
Make = Callable[..., LocalAirtable]


def session() -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TEST_TOKEN}"
    return s


def jobs_url(srv: LocalAirtable, base_id: str = TEST_BASE_ID) -> str:
    return f"{srv.url}/v0/{base_id}/Job%20Tracking"


# -- rate limit (SPEC §2.1) -------------------------------------------------------------------


def test_rate_limit_429_then_penalty_then_recovery(make_local_airtable: Make) -> None:
    clock = ManualClock()
    srv = make_local_airtable(rate_limit=5, penalty_seconds=0.4, monotonic=clock)
    s = session()
    statuses = [s.get(jobs_url(srv)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    over = s.get(jobs_url(srv))
    assert over.status_code == 429
    assert over.json() == RATE_LIMIT_BODY
    assert "Retry-After" not in over.headers
    # Slow requests during the penalty still fail: the penalty is a lock-out, not a window.
    clock.advance(0.15)
    assert s.get(jobs_url(srv)).status_code == 429
    clock.advance(0.25)  # 0.4 s after the breach
    assert s.get(jobs_url(srv)).status_code == 200


def test_rate_limit_is_a_sliding_window_per_base(make_local_airtable: Make) -> None:
    clock = ManualClock()
    srv = make_local_airtable(rate_limit=5, penalty_seconds=0.3, monotonic=clock)
    srv.add_base("appOtherBase00001")
    s = session()
    for _ in range(3):  # 3 now, then 5 more 1.05 s later: never more than 5 in any second
        assert s.get(jobs_url(srv)).status_code == 200
    clock.advance(1.05)
    for _ in range(5):
        assert s.get(jobs_url(srv)).status_code == 200
    assert s.get(jobs_url(srv)).status_code == 429
    # Another base has its own budget.
    assert s.get(jobs_url(srv, "appOtherBase00001")).status_code == 200


def test_rate_limit_through_pyairtable_raises_http_error(make_local_airtable: Make) -> None:
    srv = make_local_airtable(rate_limit=5, penalty_seconds=0.3)
    table = srv.api().table(TEST_BASE_ID, JOBS)
    for _ in range(5):
        table.all()
    with pytest.raises(requests.HTTPError) as exc:
        table.all()
    assert exc.value.response.status_code == 429
    assert exc.value.response.json() == RATE_LIMIT_BODY


def test_rate_limit_off(local_airtable: LocalAirtable) -> None:
    s = session()
    assert {s.get(jobs_url(local_airtable)).status_code for _ in range(30)} == {200}


def test_token_rate_limit(make_local_airtable: Make) -> None:
    srv = make_local_airtable(rate_limit=None, token_rate_limit=8, penalty_seconds=0.3)
    s = session()
    statuses = [s.get(jobs_url(srv)).status_code for _ in range(9)]
    assert statuses == [200] * 8 + [429]


# -- fault injection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [("429", 429, "RATE_LIMIT_REACHED"), ("500", 500, "SERVER_ERROR"), ("502", 502, None)],
)
def test_injected_http_errors(
    local_airtable: LocalAirtable, kind: str, status: int, error_type: str | None
) -> None:
    local_airtable.faults.add(kind, method="GET")
    s = session()
    resp = s.get(jobs_url(local_airtable))
    assert resp.status_code == status
    if error_type:
        assert resp.json()["error"]["type"] == error_type
    if kind == "429":
        assert resp.json() == RATE_LIMIT_BODY
        assert "Retry-After" not in resp.headers
    assert s.get(jobs_url(local_airtable)).status_code == 200
    assert local_airtable.faults.counts == {kind: 1}


def test_injected_503_carries_retry_after(local_airtable: LocalAirtable) -> None:
    local_airtable.faults.add("503", retry_after=2)
    resp = session().get(jobs_url(local_airtable))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "2"
    assert resp.json()["error"]["type"] == "RETRIABLE_ERROR"


def test_injected_delay(local_airtable: LocalAirtable) -> None:
    local_airtable.faults.add("delay", delay=0.3)
    start = time.monotonic()
    assert session().get(jobs_url(local_airtable)).status_code == 200
    assert time.monotonic() - start >= 0.3
    assert local_airtable.faults.counts == {"delay": 1}


def test_drop_closes_the_connection_before_processing(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    table = api.table(TEST_BASE_ID, JOBS)
    local_airtable.faults.add("drop", method="POST")
    with pytest.raises(requests.ConnectionError):
        table.create({"Run ID": "a"})
    assert table.all() == []  # not applied
    assert local_airtable.faults.counts == {"drop": 1}
    [post] = [e for e in local_airtable.request_log.entries if e.method == "POST"]
    assert post.status is None
    assert post.fault == "drop"


def test_lost_response_applies_the_write_then_drops(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    table = api.table(TEST_BASE_ID, JOBS)
    local_airtable.faults.add("lost_response", method="POST")
    with pytest.raises(requests.ConnectionError):
        table.create({"Run ID": "a"})
    # A naive retry duplicates the row: exactly what the client library must avoid.
    table.create({"Run ID": "a"})
    assert [r["fields"]["Run ID"] for r in table.all()] == ["a", "a"]
    assert local_airtable.faults.counts == {"lost_response": 1}


def test_lost_response_write_is_persisted(make_local_airtable: Make, tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    srv = make_local_airtable(data_path=data)
    srv.faults.add("lost_response", method="PATCH")
    table = srv.api().table(TEST_BASE_ID, JOBS)
    with pytest.raises(requests.ConnectionError):
        table.batch_upsert([{"fields": {"Run ID": "a", "Stream": 3}}], key_fields=["Run ID"])
    srv.stop()
    assert Store(data).snapshot(TEST_BASE_ID, JOBS)[1][0].fields == {"Run ID": "a", "Stream": 3}


def test_connection_is_usable_after_a_drop(
    local_airtable: LocalAirtable, api: pyairtable.Api
) -> None:
    table = api.table(TEST_BASE_ID, JOBS)
    table.all()  # open a keep-alive connection
    local_airtable.faults.add("drop")
    with pytest.raises(requests.ConnectionError):
        table.all()
    assert table.all() == []


def test_scripted_sequence_by_method_and_path(local_airtable: LocalAirtable) -> None:
    local_airtable.faults.script(["500", "ok", "503"], method="GET", path="Job%20Tracking")
    s = session()
    crr = f"{local_airtable.url}/v0/{TEST_BASE_ID}/Client%20Run%20Results"
    assert s.get(crr).status_code == 200  # other path: not matched
    got = [s.get(jobs_url(local_airtable)).status_code for _ in range(4)]
    assert got == [500, 200, 503, 200]
    assert local_airtable.faults.counts == {"500": 1, "503": 1}
    assert [f.kind for f in local_airtable.faults.history] == ["500", "503"]


def test_after_skips_matching_requests(local_airtable: LocalAirtable) -> None:
    local_airtable.faults.add("500", after=2, times=1)
    s = session()
    assert [s.get(jobs_url(local_airtable)).status_code for _ in range(4)] == [200, 200, 500, 200]


def test_probability_is_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        faults = FaultInjector(seed=seed)
        faults.add("500", probability=0.3)
        return [faults.pick("GET", "/v0/x") is not None for _ in range(200)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert 30 < sum(run(1)) < 90


def test_faults_from_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "faults.toml"
    toml.write_text(
        'seed = 3\n[[faults]]\nkind = "503"\nmethod = "PATCH"\nprobability = 1.0\n'
        'retry_after = 5\n[[faults]]\nsequence = ["ok", "lost_response"]\n',
        encoding="utf-8",
    )
    faults = FaultInjector.load(toml)
    fired = faults.pick("PATCH", "/v0/a/b")
    assert fired is not None
    assert (fired.kind, fired.retry_after) == ("503", 5)
    assert faults.pick("GET", "/x") is None
    assert getattr(faults.pick("GET", "/x"), "kind", None) == "lost_response"
    js = tmp_path / "faults.json"
    js.write_text(json.dumps({"faults": [{"kind": "drop", "times": 2}]}), encoding="utf-8")
    assert [getattr(FaultInjector.load(js).pick("GET", "/"), "kind", None)] == ["drop"]
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultInjector.from_config({"faults": [{"kind": "teapot"}]})
    assert parse_fault_option("drop:0.1@POST") == {
        "kind": "drop",
        "probability": 0.1,
        "method": "POST",
    }


# -- persistence ------------------------------------------------------------------------------


def test_persistence_across_restart(make_local_airtable: Make, tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    srv = make_local_airtable(data_path=data)
    table = srv.api().table(TEST_BASE_ID, JOBS)
    recs = table.batch_create([{"Run ID": f"r{i}", "Stream": i} for i in range(12)])
    table.update(recs[0]["id"], {"Status": "Completed"})
    table.delete(recs[1]["id"])
    srv.api().base(TEST_BASE_ID).create_table("Extra", [{"name": "K", "type": "singleLineText"}])
    before = table.all()
    srv.stop()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp files left

    again = make_local_airtable(data_path=data)
    table2 = again.api().table(TEST_BASE_ID, JOBS)
    assert table2.all() == before
    assert {t.name for t in again.api().base(TEST_BASE_ID).tables()} == {
        JOBS,
        "Client Run Results",
        "Extra",
    }


def test_memory_only_without_data_path(make_local_airtable: Make) -> None:
    srv = make_local_airtable()
    srv.api().table(TEST_BASE_ID, JOBS).create({"Run ID": "a"})
    srv.stop()
    assert make_local_airtable().api().table(TEST_BASE_ID, JOBS).all() == []


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_lose_nothing(local_airtable: LocalAirtable) -> None:
    table = local_airtable.api().table(TEST_BASE_ID, "Client Run Results")
    target = table.create({"Run ID": "shared"})
    metric_fields = [
        "Profiles Examined for Scoring",
        "Profiles Successfully Scored",
        "Profile Scoring Tokens",
        "Posts Examined for Scoring",
        "Posts Successfully Scored",
        "Post Scoring Tokens",
    ]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            t = local_airtable.api().table(TEST_BASE_ID, "Client Run Results")
            for i in range(10):
                t.batch_create(
                    [{"Run ID": f"w{n}-{i}-{k}", "Client ID": f"w{n}"} for k in range(5)]
                )
                # Each thread PATCHes its own field of one shared record.
                t.update(target["id"], {metric_fields[n]: i + 1})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    rows = table.all()
    assert len(rows) == 1 + 6 * 10 * 5
    assert len({r["fields"]["Run ID"] for r in rows}) == len(rows)
    shared = table.get(target["id"])["fields"]
    assert all(shared[f] == 10 for f in metric_fields)


def test_readers_never_see_a_partial_batch(local_airtable: LocalAirtable) -> None:
    stop = threading.Event()
    torn: list[dict[str, int]] = []

    def writer() -> None:
        t = local_airtable.api().table(TEST_BASE_ID, JOBS)
        for b in range(15):
            t.batch_create([{"Run ID": f"b{b}", "Stream": k + 1} for k in range(10)])
        stop.set()

    def reader() -> None:
        t = local_airtable.api().table(TEST_BASE_ID, JOBS)
        while not stop.is_set():
            counts: dict[str, int] = {}
            for r in t.all():
                counts[r["fields"]["Run ID"]] = counts.get(r["fields"]["Run ID"], 0) + 1
            if any(n != 10 for n in counts.values()):
                torn.append(counts)

    threads = [
        threading.Thread(target=writer),
        *(threading.Thread(target=reader) for _ in range(2)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert torn == []


def test_concurrent_upserts_of_one_key_make_one_row(local_airtable: LocalAirtable) -> None:
    def worker(n: int) -> None:
        t = local_airtable.api().table(TEST_BASE_ID, JOBS)
        for _ in range(5):
            t.batch_upsert([{"fields": {"Run ID": "same", "Stream": n + 1}}], key_fields=["Run ID"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(local_airtable.api().table(TEST_BASE_ID, JOBS).all()) == 1


# -- command line -----------------------------------------------------------------------------


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobtrack_airtable.local",
            "serve",
            "--port",
            "0",
            "--tables",
            tracking_tables_file(),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.poll() is not None else ""
    return proc, json.loads(line)["url"]


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    # A guard against a hang, not a speed claim: the server's own stop waits up to 5.5 s,
    # which a loaded machine stretches past 10.
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return out


def test_cli_serve_persists_across_restart(tmp_path: Path) -> None:
    data = tmp_path / "state.json"
    args = ("--token", "cli-token", "--base-id", "appCliBase0000001", "--data", str(data))
    proc, url = _serve(*args, "--rate-limit", "off")
    try:
        api = pyairtable.Api("cli-token", endpoint_url=url, retry_strategy=None, timeout=(5, 30))
        api.table("appCliBase0000001", JOBS).create({"Run ID": "from-cli"})
        assert requests.get(f"{url}/v0/appCliBase0000001/Job%20Tracking").status_code == 401
    finally:
        out = _stop(proc)
    assert "cli-token" not in out
    proc, url = _serve(*args)
    try:
        api = pyairtable.Api("cli-token", endpoint_url=url, retry_strategy=None, timeout=(5, 30))
        assert [r["fields"]["Run ID"] for r in api.table("appCliBase0000001", JOBS).all()] == [
            "from-cli"
        ]
    finally:
        _stop(proc)


def test_cli_without_a_token_makes_one_and_prints_url_token_and_base_as_json() -> None:
    # What a test in any language does: start it on port 0, read one JSON line, connect.
    env = {k: v for k, v in os.environ.items() if k != "JOBTRACK_LOCAL_TOKEN"}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "jobtrack_airtable.local", "serve", "--port", "0"),
            *("--base-id", "appJsonLine000001", "--base-name", "From the CLI"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert set(started) == {"url", "baseId", "token"}
        assert started["baseId"] == "appJsonLine000001"
        api = pyairtable.Api(started["token"], endpoint_url=started["url"], retry_strategy=None)
        assert [(b.id, b.name) for b in api.bases()] == [("appJsonLine000001", "From the CLI")]
        assert requests.get(f"{started['url']}/v0/meta/bases").status_code == 401
    finally:
        _stop(proc)


def test_a_403_fault_answers_as_a_removed_permission(local_airtable: LocalAirtable) -> None:
    local_airtable.faults.add("403", method="GET", times=1)
    url = f"{local_airtable.url}/v0/{local_airtable.base_id}/{JOBS}"
    headers = {"Authorization": f"Bearer {local_airtable.token}"}
    first = session().get(url, headers=headers)
    assert (first.status_code, first.json()["error"]["type"]) == (403, "INVALID_PERMISSIONS")
    assert session().get(url, headers=headers).status_code == 200


def test_a_token_revoked_then_restored(local_airtable: LocalAirtable) -> None:
    url = f"{local_airtable.url}/v0/{local_airtable.base_id}/{JOBS}"
    token = local_airtable.token
    local_airtable.set_token("another-token")
    refused = session().get(url, headers={"Authorization": f"Bearer {token}"})
    assert (refused.status_code, refused.json()["error"]["type"]) == (
        401,
        "AUTHENTICATION_REQUIRED",
    )
    local_airtable.set_token(token)
    assert session().get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
