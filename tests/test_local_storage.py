"""The local server's SQLite base file: durability (SIGKILL mid-burst), one process per file
(symlinks included), and the field indexes behind upserts
and simple filters — all through pyairtable over real HTTP where a client is involved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pyairtable
import pytest

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.local.formulas import compile_formula
from jobtrack_airtable.local.persistence import SQLITE_MAGIC, BaseFileInUseError
from jobtrack_airtable.local.storage import Store

from .conftest import TEST_BASE_ID, TEST_TOKEN, tracking_tables_file

JOBS = "Job Tracking"
Make = Callable[..., LocalAirtable]


def _serve(data: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobtrack_airtable.local",
            "serve",
            "--port",
            "0",
            "--token",
            TEST_TOKEN,
            "--base-id",
            TEST_BASE_ID,
            "--rate-limit",
            "off",
            "--data",
            str(data),
            "--tables",
            tracking_tables_file(),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=60)
        raise AssertionError(f"server did not start: {err!r}")
    return proc, json.loads(line)["url"]


def _api(url: str) -> pyairtable.Api:
    return pyairtable.Api(TEST_TOKEN, endpoint_url=url, retry_strategy=None, timeout=(5, 30))


@pytest.mark.slow
def test_sigkill_during_a_burst_of_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "base.db"
    proc, url = _serve(data)
    table = _api(url).table(TEST_BASE_ID, JOBS)
    acknowledged: list[str] = []
    enough = threading.Event()
    stop = threading.Event()

    def burst(worker: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{worker}-{i}"
            try:
                table.batch_upsert([{"fields": {"Run ID": key}}], key_fields=["Run ID"])
            except Exception:
                return  # the server died under us: this write was never acknowledged
            acknowledged.append(key)
            if len(acknowledged) >= 150:
                enough.set()
            i += 1

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    enough.wait(timeout=60)
    proc.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
    proc.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acknowledged) >= 150

    proc, url = _serve(data)
    try:
        stored = {r["fields"]["Run ID"] for r in _api(url).table(TEST_BASE_ID, JOBS).all()}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert set(acknowledged) <= stored
    # The -wal file a kill leaves is replayed and removed by the next clean open and close.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.db"]


def test_a_second_server_on_one_file_is_refused_even_through_a_symlink(tmp_path: Path) -> None:
    data = tmp_path / "base.db"
    link = tmp_path / "link.db"
    link.symlink_to(data)
    proc, url = _serve(data)
    try:
        _api(url).table(TEST_BASE_ID, JOBS).create({"Run ID": "first"})
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "jobtrack_airtable.local",
                "serve",
                "--port",
                "0",
                "--token",
                TEST_TOKEN,
                "--base-id",
                TEST_BASE_ID,
                "--data",
                str(link),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert "is open in another process" in second.stderr
        assert str(data.resolve()) in second.stderr  # the resolved path, not the link
        # The first server is untouched and keeps serving.
        table = _api(url).table(TEST_BASE_ID, JOBS)
        table.create({"Run ID": "second"})
        assert sorted(r["fields"]["Run ID"] for r in table.all()) == ["first", "second"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_a_second_store_in_one_process_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    data = tmp_path / "base.db"
    first = Store(data)
    with pytest.raises(BaseFileInUseError, match="open in another process"):
        Store(data)
    first.close()
    with Store(data) as again:
        assert again.base_ids() == []


def test_stop_releases_the_file_and_start_reopens_it(
    make_local_airtable: Make, tmp_path: Path
) -> None:
    data = tmp_path / "base.db"
    srv = make_local_airtable(data_path=data)
    srv.table("jobs").create({"Run ID": "a"})
    srv.stop()
    other = make_local_airtable(data_path=data)  # the file is free once the first stopped
    other.table("jobs").create({"Run ID": "b"})
    other.stop()
    srv.start()
    assert sorted(r["fields"]["Run ID"] for r in srv.table("jobs").all()) == ["a", "b"]


def test_a_json_base_file_is_refused_not_converted(tmp_path: Path) -> None:
    # 0.1.0 was never released with the JSON format: no converter, a clear refusal.
    old = tmp_path / "local-base.json"
    old.write_text('{"version": 1, "bases": {}}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"local-base\.json.*not a base file"):
        Store(old)


def test_a_corrupt_file_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"{not json")
    with pytest.raises(ValueError, match=r"bad\.db"):
        Store(bad)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(SQLITE_MAGIC + b"\x00" * 200)
    with pytest.raises(ValueError, match=r"garbage\.db"):
        Store(garbage)


def test_upsert_finds_its_match_through_the_index(local_airtable: LocalAirtable) -> None:
    jobs = local_airtable.table("jobs")
    jobs.batch_create([{"Run ID": f"r{i}"} for i in range(50)])
    first = jobs.batch_upsert(
        [{"fields": {"Run ID": "r7", "Stream": 1}}, {"fields": {"Run ID": "new", "Stream": 2}}],
        key_fields=["Run ID"],
    )
    assert len(first["updatedRecords"]) == 1 and len(first["createdRecords"]) == 1
    table = local_airtable.store.table(None, JOBS)
    assert sorted(table.indexes) == ["Run ID"]
    # The index follows every write: an update, a key change and a delete.
    rec = jobs.first(formula="{Run ID}='r7'")
    assert rec is not None
    jobs.update(rec["id"], {"Run ID": "r7-renamed"})
    assert jobs.first(formula="{Run ID}='r7'") is None
    assert jobs.first(formula="{Run ID}='r7-renamed'")["id"] == rec["id"]  # type: ignore[index]
    jobs.delete(rec["id"])
    assert jobs.all(formula="{Run ID}='r7-renamed'") == []


FILTERS = [
    "{Run ID}='r3'",
    "OR({Run ID}='r3', {Run ID}='r12', RECORD_ID()='recNoSuchRecord00')",
    "LEFT({Run ID}, 2)='r1'",
    "AND(LEFT({Run ID}, 2)='r1', {Stream}=3)",
    "OR({Run ID}='r3', {Stream}=5)",  # half not indexable: a full scan
    "{Run ID}=''",  # blank rows: never from the index
]


@pytest.mark.parametrize("formula", FILTERS)
def test_indexed_filters_return_exactly_what_a_full_scan_returns(
    local_airtable: LocalAirtable, formula: str
) -> None:
    jobs = local_airtable.table("jobs")
    jobs.batch_create([{"Run ID": f"r{i}", "Stream": i % 7} for i in range(30)] + [{"Stream": 5}])
    got = [r["id"] for r in jobs.all(formula=formula)]
    # IF(...) hides the shape from the planner, so this one is evaluated on every row.
    expected = [r["id"] for r in jobs.all(formula=f"IF({formula}, TRUE(), FALSE())")]
    assert got == expected


def test_the_planner_narrows_simple_filters_to_index_hits(local_airtable: LocalAirtable) -> None:
    local_airtable.table("jobs").batch_create([{"Run ID": f"r{i}"} for i in range(40)])
    table = local_airtable.store.table(None, JOBS)

    def narrowed(text: str) -> list[str] | None:
        found = table.candidates(compile_formula(text))
        return None if found is None else [r.fields["Run ID"] for r in found]

    assert narrowed("{Run ID}='r5'") == ["r5"]
    assert narrowed("OR({Run ID}='r5', {Run ID}=\"r30\")") == ["r5", "r30"]
    assert narrowed("LEFT({Run ID}, 2)='r3'") == ["r3", *[f"r{i}" for i in range(30, 40)]]
    assert narrowed("{Stream}=3") is None  # a number field: evaluated on every row
    assert narrowed("LEFT({Run ID}, 3)='r3'") is None  # n != len(prefix)
