"""Helpers shared by the test modules (no tests here); each section names its users.

Fixtures used by one group of modules live here too (``base_fixture``, ``archive_base``,
``clean_env``): a module imports the one it uses, so ``base`` means what that module needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyairtable
import pytest
import vcr
from typer.testing import CliRunner, Result

from jobtrack_airtable.admin.mirror.store import MirrorFile
from jobtrack_airtable.admin.sync import (
    Action,
    ApplyResult,
    Plan,
    apply_plan,
    plan_sync,
)
from jobtrack_airtable.cli import app, embedded
from jobtrack_airtable.errors import (
    AuthenticationError,
)
from jobtrack_airtable.limiter.base import DEFAULT_QUIET
from jobtrack_airtable.limiter.redis import (
    DEFAULT_RETRY_INTERVAL,
)
from jobtrack_airtable.limiter.usage import counted_as
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.metrics import AGGREGATE_KEYS
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.timeutil import to_airtable
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Job, Tracker

from .conftest import TEST_BASE_ID, TEST_TOKEN

# ------------------------------------------------------------------ the server's connections


def open_connections(srv: LocalAirtable) -> set[socket.socket]:
    """The server's open client connections now."""
    server = srv._server
    assert server is not None, "the server is not running"
    with server._lock:
        return set(server.connections)


def wait_for_connections(
    srv: LocalAirtable, *, at_most: set[socket.socket], timeout: float = 60.0
) -> None:
    """Wait until the server's open connections are among ``at_most``: every other client's
    requests have been served (a killed client's connection ends once its last request has)."""
    deadline = time.monotonic() + timeout
    while not open_connections(srv) <= at_most:
        assert time.monotonic() < deadline, "connections still open after the client ended"
        time.sleep(0.01)


# ------------------------------------------------------------------ tracker tables (stored rows)


#: Table names of the default schema (what the server's storage and request paths use).
CRR_TABLE = "Client Run Results"
JOB_TABLE = "Job Tracking"


def make_conn(srv: LocalAirtable, **settings: object) -> Connection:
    options: dict[str, object] = {"rate_limit": 0, "flush_interval": 3600.0}
    options.update(settings)
    # Waits scaled to the local server's, but not the 300 s overall deadline: at 3 s a loaded
    # machine's slow retries ran out of time before attempts (a seeded 503 then failed a
    # start); the attempt limit is what these tests rely on.
    policy = replace(
        DEFAULT_POLICY.scaled(0.01), max_total_seconds=DEFAULT_POLICY.max_total_seconds
    )
    return Connection.from_settings(srv.settings(**options), policy=policy)


def rows(srv: LocalAirtable, table: str) -> list[dict]:
    """The stored rows, read from the server's storage: no request, no rate-limit budget.
    (Stored values only: computed fields are not included.)"""
    _, records = srv.store.snapshot(None, table)
    return [{"id": r.id, "createdTime": r.created_time, "fields": dict(r.fields)} for r in records]


def by_key(srv: LocalAirtable, table: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows(srv, table):
        out.setdefault(r["fields"]["Run ID"], []).append(r["fields"])
    return out


# ------------------------------------------------------------------ sync: a base to plan and apply


NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
STALE = timedelta(hours=2)
JOBS = "jobs"
CRR = "client_runs"
WRITES = ("PATCH", "POST", "DELETE", "PUT")


def at(**delta: float) -> str:
    """``NOW - delta`` as Airtable text, e.g. ``at(hours=3)``."""
    return to_airtable(NOW - timedelta(**delta))


def zero_aggregates(**overrides: int) -> dict[str, int]:
    """Job aggregate fields (Airtable names, default schema) all 0, with overrides by name."""
    from jobtrack_airtable.schema import load_schema

    spec = load_schema().jobs
    values = {spec.name_of(k): 0 for k in AGGREGATE_KEYS}
    values.update(overrides)
    return values


def fresh_running_job(run_id: str) -> dict[str, Any]:
    """A job still running and recently updated: never stale, aggregates left to its worker."""
    return {
        "Run ID": run_id,
        "Status": "Running",
        "Start Time": at(minutes=30),
        "Last Updated": at(minutes=1),
    }


class SyncBase:
    """A local Airtable base for one test, with a :class:`Repository` talking to it."""

    def __init__(self, srv: LocalAirtable) -> None:
        self.srv = srv
        self.schema = srv.schema
        settings = Settings(
            _env_file=None,
            api_key=srv.token,
            base_id=srv.base_id,
            endpoint_url=srv.url,
            rate_limit=0,
        )
        self.conn = Connection.from_settings(settings, schema=srv.schema)
        self.repo = Repository(self.conn)
        self.log = srv.request_log

    def table_name(self, table: str) -> str:
        return self.schema.table(table).name

    def add(self, table: str, fields: Mapping[str, Any], *, created: datetime | None = None) -> str:
        """Insert one row straight into storage (no HTTP, not logged); returns its ID."""
        (record,) = self.srv.store.create_records(
            self.srv.base_id,
            self.table_name(table),
            [dict(fields)],
            typecast=True,  # legacy select values exist in old bases as options
            created_time=created or NOW - timedelta(days=1),
            limit=None,
        )
        return record.id

    def add_many(self, table: str, rows: list[Mapping[str, Any]], *, created: datetime) -> None:
        self.srv.store.create_records(
            self.srv.base_id,
            self.table_name(table),
            [dict(r) for r in rows],
            typecast=True,
            created_time=created,
            limit=None,
        )

    def get(self, table: str, record_id: str) -> dict[str, Any]:
        return dict(
            self.srv.store.get_record(self.srv.base_id, self.table_name(table), record_id).fields
        )

    def rows(self, table: str) -> dict[str, dict[str, Any]]:
        """Every row of ``table`` as ``{record_id: fields}`` (stored fields only)."""
        _, records = self.srv.store.snapshot(self.srv.base_id, self.table_name(table))
        return {r.id: dict(r.fields) for r in records}

    def by_key(self, table: str) -> dict[str, dict[str, Any]]:
        return {f["Run ID"]: f for f in self.rows(table).values()}

    def plan(self, **kwargs: Any) -> Plan:
        kwargs.setdefault("now", NOW)
        kwargs.setdefault("stale_after", STALE)
        return plan_sync(self.repo, **kwargs)

    def apply(self, plan: Plan) -> ApplyResult:
        return apply_plan(self.repo, plan)

    def writes(self) -> int:
        return sum(self.log.count(method=m) for m in WRITES)

    def converge(self, plan: Plan) -> Plan:
        """Apply ``plan``, re-plan, and check the new plan writes nothing; returns it."""
        self.apply(plan)
        again = self.plan()
        assert not again.has_changes, [r for r in again.records if r.action != Action.ATTENTION]
        return again


def changes(
    plan: Plan,
    table: str,
    record_id: str | None = None,
    *,
    key: str | None = None,
    action: Action | None = None,
) -> dict[str, tuple[Any, Any]]:
    """``{Airtable name: (old, new)}`` of the one plan entry for a record (or a created key).
    Plans speak logical keys; the names (as a renderer shows them) keep assertions readable."""
    (entry,) = entries(plan, table, record_id, key=key, action=action)
    return {plan.field_name(table, c.field): (c.old, c.new) for c in entry.changes}


def entries(
    plan: Plan,
    table: str,
    record_id: str | None = None,
    *,
    key: str | None = None,
    action: Action | None = None,
) -> list[Any]:
    return [
        r
        for r in plan.records
        if r.table == table
        and (record_id is None or r.record_id == record_id)
        and (key is None or r.key == key)
        and (action is None or r.action is action)
    ]


@pytest.fixture(name="base")
def base_fixture(local_airtable: LocalAirtable) -> Iterator[SyncBase]:
    """A :class:`SyncBase` on a fresh local server (import this into a test module to use
    the ``base`` fixture)."""
    b = SyncBase(local_airtable)
    yield b
    b.conn.close()


# ------------------------------------------------------------------ archive


ARCHIVE_NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def archive_conn(srv: LocalAirtable) -> Connection:
    settings = srv.settings(rate_limit=0, flush_interval=3600.0)
    return Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01))


def record_job(srv: LocalAirtable, clock: datetime, clients: int, *, finish: bool = True) -> str:
    tracker = Tracker(archive_conn(srv), clock=lambda: clock)
    job = tracker.job(stream=1)
    for i in range(clients):
        run = job.client(f"Client-{i}")
        run.add(profiles_examined=i + 1, profiles_scored=i)
        if finish:
            run.close()
    if finish:
        job.complete()
    tracker.close()  # writes what is pending (the unfinished runs' rows too)
    return str(job.run_id)


@pytest.fixture(name="base")
def archive_base(local_airtable: LocalAirtable) -> dict[str, object]:
    """Two old finished jobs (3 and 12 clients), one old job still running, one recent
    (import this into a test module to use the ``base`` fixture)."""
    old = ARCHIVE_NOW - timedelta(days=120)
    keys = {
        "old_a": record_job(local_airtable, old, 3),
        "old_b": record_job(local_airtable, old + timedelta(hours=1), 12),
        "old_running": record_job(local_airtable, old + timedelta(hours=2), 2, finish=False),
        "recent": record_job(local_airtable, ARCHIVE_NOW - timedelta(days=10), 2),
    }
    return {"srv": local_airtable, "keys": keys, "repo": Repository(archive_conn(local_airtable))}


def stored_by_id(srv: LocalAirtable, table: str) -> dict[str, dict]:
    _, records = srv.store.snapshot(None, table)
    return {r.id: {"id": r.id, "fields": dict(r.fields)} for r in records}


# ------------------------------------------------------------------ the CLI in-process


SUMMARY_RE = re.compile(
    r"^Plan: (\d+) to create, (\d+) to update, (\d+) to delete, (\d+) need attention\.$"
)
FAKE_TOKEN = "patRECOGNISABLEfake.0123456789abcdefTOKEN"


def clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or settings from the developer's environment (``JOBTRACK_TEST_*``, the
    test suite's own, stay)."""
    for var in list(os.environ):
        if var.startswith(("AIRTABLE_", "JOBTRACK_")) and not var.startswith("JOBTRACK_TEST_"):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_settings_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    # Never touch the developer's real per-user base.
    default = tmp_path / "user-data" / "local-base.sqlite"
    monkeypatch.setattr(embedded, "default_local_path", lambda: default)


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def local(base: Path, *args: str, input: str | None = None) -> Result:
    return run("--local", str(base), *args, input=input)


def summary(result: Result) -> tuple[int, ...]:
    last = result.stdout.strip().splitlines()[-1]
    match = SUMMARY_RE.match(last)
    assert match, f"no summary line in: {last!r}"
    return tuple(int(n) for n in match.groups())


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("Using the ")]


def drop_field(base: Path, table: str, field: str) -> None:
    """Remove ``field`` from ``table`` of a (closed) local base file, values included, as an
    admin deleting it in the Airtable UI would (the meta API cannot delete fields)."""
    db = sqlite3.connect(base, isolation_level=None)
    try:
        db.execute("BEGIN")
        for table_id, text in db.execute("SELECT id, model FROM tables").fetchall():
            model = json.loads(text)
            if model["name"] != table:
                continue
            model["fields"] = [f for f in model["fields"] if f["name"] != field]
            db.execute("UPDATE tables SET model = ? WHERE id = ?", (json.dumps(model), table_id))
            rows = db.execute("SELECT id, fields FROM records WHERE table_id = ?", (table_id,))
            for record_id, values in rows.fetchall():
                fields = json.loads(values)
                fields.pop(field, None)
                db.execute(
                    "UPDATE records SET fields = ? WHERE id = ?", (json.dumps(fields), record_id)
                )
        db.execute("COMMIT")
    finally:
        db.close()


# ------------------------------------------------------------------ usage counting


def usage_work(srv: LocalAirtable, settings: Settings) -> None:
    """A worker's job with two clients, one retried 503 and one 429, then a sync-style read."""
    srv.faults.add("503", method="PATCH", path="Client", times=1, retry_after=0)
    srv.faults.add("429", method="PATCH", path="Job", times=1)
    with Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.01)) as conn:
        tracker = Tracker(conn)
        job = tracker.job()
        for cid in ("Guy-Wilson", "Dana-Li"):
            with job.client(cid) as run:
                run.add(profiles_examined=3)
        job.complete()
        with counted_as("sync"):
            conn.table("jobs").all()
            conn.table("client_runs").all()


def usage_expected(srv: LocalAirtable) -> dict[str, int]:
    entries = srv.request_log.entries
    reads = [e for e in entries if e.method == "GET" or e.path.endswith("/listRecords")]
    return {
        "total": len(entries),
        "reads": len(reads),
        "writes": len(entries) - len(reads),
        "rate_limited": sum(e.status == 429 for e in entries),
        # Each injected fault was retried once.
        "retries": srv.faults.total(),
    }


# ------------------------------------------------------------------ cassettes


#: Where recordings go: a re-record writes into JOBTRACK_CASSETTE_DIR (never the clone's
#: tracked cassettes unless asked), replays read the clone's.
CASSETTES = Path(
    os.environ.get("JOBTRACK_CASSETTE_DIR") or Path(__file__).resolve().parent.parent / "cassettes"
)
MODE = os.environ.get("JOBTRACK_RECORD_CASSETTES", "")  # "", "local" or "airtable"


def _rewrite_base(real_base: str | None) -> Any:
    def before_record_request(request: Any) -> Any:
        if real_base:
            request.uri = request.uri.replace(real_base, TEST_BASE_ID)
        return request

    return before_record_request


def cassette_vcr(real_base: str | None = None) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if MODE else "none",
        match_on=("method", "path", "query", "body"),
        filter_headers=["authorization"],
        before_record_request=_rewrite_base(real_base),
        decode_compressed_response=True,
    )


def mirror_seed(b: SyncBase, clients: int = 250) -> None:
    """Rows last modified an hour ago (well before any refresh's overlap)."""
    b.srv.store.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
    b.add_many(
        JOBS,
        [{"Run ID": f"250930-1{j:02d}000", "Status": "Success"} for j in range(5)],
        created=NOW,
    )
    b.add_many(
        CRR,
        [
            {
                "Run ID": f"250930-1{i % 5:02d}000-Client {i}",
                "Client ID": f"Client {i}",
                "Status": "Running" if i % 3 else "Completed",
                "Last Updated": at(hours=3),
                "Profiles Examined for Scoring": i % 7,
            }
            for i in range(clients)
        ],
        created=NOW,
    )
    b.srv.store.clock = lambda: datetime.now(UTC)


def mirror_update(b: SyncBase, ids: list[str], fields: dict[str, Any]) -> None:
    for start in range(0, len(ids), 10):
        b.srv.store.update_records(
            b.srv.base_id, b.table_name(CRR), [(rid, fields) for rid in ids[start : start + 10]]
        )


def mirror_delete(b: SyncBase, ids: list[str]) -> None:
    for start in range(0, len(ids), 10):
        b.srv.store.delete_records(b.srv.base_id, b.table_name(CRR), ids[start : start + 10])


# Each spoils a mirror file the way the mirror must not trust (and returns what its notice says).
def mirror_spoil_corrupt(path: Path, base_id: str) -> str:
    path.write_bytes(b"this is not a database" * 100)
    return "is corrupt"


def mirror_spoil_other_base(path: Path, base_id: str) -> str:
    MirrorFile(path, "appOtherBase00001").close()
    return "was made for base 'appOtherBase00001'"


def mirror_spoil_older_schema(path: Path, base_id: str) -> str:
    MirrorFile(path, base_id).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE mirror_meta SET value = '0' WHERE key = 'schema_version'")
    return "has schema version '0'"


def mirror_spoil_missing(path: Path, base_id: str) -> str:
    return "is missing"


MIRROR_SPOILERS = [
    mirror_spoil_missing,
    mirror_spoil_corrupt,
    mirror_spoil_other_base,
    mirror_spoil_older_schema,
]


def start_together(trackers: list[Tracker]) -> list[Job]:
    barrier = threading.Barrier(len(trackers))
    jobs: list[Job | None] = [None] * len(trackers)
    errors: list[BaseException] = []

    def start(i: int) -> None:
        barrier.wait()
        try:
            jobs[i] = trackers[i].job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(trackers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [j for j in jobs if j is not None]


def check_unique_starts(srv: LocalAirtable, jobs: list[Job]) -> None:
    ids = {str(j.run_id) for j in jobs}
    assert len(ids) == len(jobs)
    stored = by_key(srv, JOB_TABLE)
    assert {k: len(v) for k, v in stored.items()} == dict.fromkeys(ids, 1)


EXAMINED = "Profiles Examined for Scoring"


def client_rows(srv: TrackingServer, base: str) -> dict[str, dict[str, Any]]:
    keys = by_key(srv, CRR_TABLE)
    assert all(len(v) == 1 for v in keys.values()), keys  # nothing duplicated
    return {k.removeprefix(f"{base}-"): v[0] for k, v in keys.items() if k.startswith(base)}


def mid_run(srv: TrackingServer, **settings: Any) -> tuple[Tracker, Any, list[Any]]:
    """A job of four clients with 10 profiles each on Airtable and 5 more pending."""
    tracker = Tracker(make_conn(srv, **settings))
    job = tracker.job()
    runs = job.open_clients(["A", "B", "C", "D"])
    for run in runs:
        run.add(profiles_examined=10)
    tracker.flush()
    for run in runs:
        run.add(profiles_examined=5)
    return tracker, job, runs


def left_refused(srv: TrackingServer, **settings: Any) -> str:
    """Four closed runs left in the outbox by a tracker whose token was revoked: the job's
    run ID."""
    tracker, job, runs = mid_run(srv, **settings)
    for run in runs:
        run.close()
    token = srv.token
    srv.set_token("revoked-token")
    with pytest.raises(AuthenticationError):
        tracker.close()
    srv.set_token(token)
    return str(job.run_id)


def outbox_cli(srv: TrackingServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from typer.testing import CliRunner

    from jobtrack_airtable.cli import app

    for name, value in {
        "AIRTABLE_API_KEY": srv.token,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
        "JOBTRACK_OUTBOX_URL": f"sqlite:///{srv.outbox_path}",
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(app, list(args))


CLI_SCRIPT = Path(sys.executable).parent / "jobtrack-airtable"


def cli_command() -> list[str]:
    if CLI_SCRIPT.exists():
        return [str(CLI_SCRIPT)]
    return [sys.executable, "-m", "jobtrack_airtable.cli"]  # pragma: no cover


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "JOBTRACK_"))}
    # Keep the per-user data directory inside the test's tmp dir.
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def run_cli_process(
    tmp_path: Path, *args: str, module: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "jobtrack_airtable.cli"] if module else cli_command()
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path, **env),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``local serve --port 0 ARGS`` as a real process, and the URL its first line names."""
    proc = subprocess.Popen(
        [*cli_command(), "local", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
    assert match, line
    assert FAKE_TOKEN not in line
    return proc, match.group(1)


GROUP_COMMIT_WORKER = Path(__file__).with_name("group_commit_worker.py")


def spawn_worker(
    srv: LocalAirtable,
    mode: str,
    base: str,
    *,
    worker: Path = GROUP_COMMIT_WORKER,
    env: dict[str, str] | None = None,
    stdin: bool = False,
) -> subprocess.Popen[str]:
    """``worker`` run as a process with settings pointing at ``srv`` (and ``env``), once it
    printed ``ready`` (``stdin``: a pipe to talk to it)."""
    environ = {
        **os.environ,
        "AIRTABLE_API_KEY": srv.token,
        "AIRTABLE_BASE_ID": srv.base_id,
        "JOBTRACK_ENDPOINT_URL": srv.url,
        "JOBTRACK_RATE_LIMIT": "0",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, str(worker), mode, base],
        env=environ,
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


def rename_field(api: pyairtable.Api, base_id: str, table: str, field: str, new: str) -> str:
    schema = api.base(base_id).table(table).schema()
    fschema = schema.field(field)
    fschema.name = new
    fschema.save()
    return fschema.id


PASSWORD = "s3cretPW-do-not-log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_ping(url: str, timeout: float) -> bool:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        finally:
            client.close()


class RedisServer:
    """A throwaway ``redis-server`` process on a loopback port (killable, restartable)."""

    def __init__(self, binary: str, workdir: Path, password: str | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not redis_ping(self.url, timeout=5.0):
            self.kill()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: the abrupt outage a crashed or partitioned Redis looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


NO_REDIS = (
    "no Redis server for the fleet tests: set JOBTRACK_TEST_REDIS_URL=redis://host:port/db or "
    "install redis-server (e.g. apt-get install redis-server); .ci/run does both"
)


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def wait_out_the_start_hold(url: str) -> None:
    """A Redis that started less than a window + quiet ago holds every base on first use (it
    may have restarted and forgotten grants); tests that count waits start after that."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        uptime = int(client.info("server")["uptime_in_seconds"])
    finally:
        client.close()
    time.sleep(max(0.0, DEFAULT_QUIET + 1.05 + DEFAULT_RETRY_INTERVAL + 1.0 - uptime))


def worker_env(srv: LocalAirtable) -> dict[str, str]:
    """The environment a worker process on this machine would have, pointing at ``srv``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "JOBTRACK_"))}
    env.update(
        AIRTABLE_API_KEY=TEST_TOKEN,
        AIRTABLE_BASE_ID=srv.base_id,
        JOBTRACK_ENDPOINT_URL=srv.url,
        JOBTRACK_RATE_LIMIT="0",
    )
    return env


JT = "Job Tracking"


def job_row(srv: TrackingServer, base: str) -> dict[str, Any]:
    [row] = by_key(srv, JT)[base]
    return row


def held_requests_applied(srv: TrackingServer) -> None:
    """Wait until the server has answered every request it held (``delay`` fault): only
    then has a late write landed, or not."""
    deadline = time.monotonic() + 60
    while any(e.fault == "delay" and e.status is None for e in srv.request_log.entries):
        assert time.monotonic() < deadline, "a held request never finished"
        time.sleep(0.05)


class ManualClock:
    """A monotonic clock the test moves (``LocalAirtable(monotonic=clock)``): rate windows,
    penalties and offset expiry are then checked without sleeping, so a loaded machine's slow
    request cannot land on the wrong side of a deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
