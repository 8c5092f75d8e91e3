"""Shared fixtures: a real local Airtable-compatible server over HTTP.

* ``local_airtable`` — a fresh :class:`LocalAirtable` per test (default schema, rate limit
  off, base ``appJobtrackTest01``, token ``test-token-not-secret``).
* ``api`` — a ``pyairtable.Api`` bound to it (no pyairtable retries, explicit timeout).
* ``make_local_airtable`` — factory for servers with custom options
  (``make_local_airtable(rate_limit=5, penalty_seconds=0.3)``); all are stopped after the test.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyairtable
import pytest
from hypothesis import HealthCheck, settings

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.testing import TrackingServer, tracking_tables
from jobtrack_airtable.transport.repository import Repository

TEST_BASE_ID = "appJobtrackTest01"
TEST_TOKEN = "test-token-not-secret"

MakeLocalAirtable = Callable[..., TrackingServer]

# No property test may fail on wall time: hypothesis's deadline (200 ms an example) and its
# "input generation is slow" health check both fire on a loaded CPU, not on a bug.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")


@functools.cache
def tracking_tables_file() -> str:
    """A JSON file of the tracking tables, for ``python -m jobtrack_airtable.local serve
    --tables`` (the server itself knows no schema)."""
    path = Path(tempfile.mkdtemp(prefix="jobtrack-tables-")) / "tables.json"
    path.write_text(json.dumps(tracking_tables()), encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True, scope="session")
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Per-user cache, data and config dirs of this session's own: the default limiter file and the
    embedded base never touch (or share a budget with) the real user's, or another run's."""
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    # The per-user settings file (config.env) is read from here: never the developer's own.
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _private_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test its own per-user data dir: the default outbox (and mirror) live there, and a
    tracker replays what earlier trackers of its base left in the outbox -- every local server
    has the same base ID, so a shared outbox would carry one test's rows into another's server.
    Subprocesses inherit it (helpers strip only AIRTABLE_*/JOBTRACK_* variables)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


@pytest.fixture
def make_local_airtable() -> Iterator[MakeLocalAirtable]:
    """Start servers with custom options; every server started is stopped at teardown."""
    started: list[TrackingServer] = []

    def make(**options: Any) -> TrackingServer:
        options.setdefault("token", TEST_TOKEN)
        options.setdefault("base_id", TEST_BASE_ID)
        options.setdefault("rate_limit", None)
        srv = TrackingServer(**options).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def local_airtable(make_local_airtable: MakeLocalAirtable) -> TrackingServer:
    """A fresh local Airtable server (default schema, rate limit off)."""
    return make_local_airtable()


@pytest.fixture
def srv(local_airtable: TrackingServer) -> TrackingServer:
    """The server of the ops tests (tests/ops_rows.py puts their rows); a module may define
    its own."""
    return local_airtable


@pytest.fixture
def repo(srv: LocalAirtable) -> Repository:
    """A repository over ``srv``, as tests/ops_rows.py connects one."""
    from .ops_rows import connect

    return connect(srv)


@pytest.fixture
def api(local_airtable: LocalAirtable) -> pyairtable.Api:
    """A pyairtable Api bound to ``local_airtable``."""
    return local_airtable.api()


@pytest.fixture(autouse=True)
def _forget_pending_client_writes() -> Iterator[None]:
    """Client-run writes a test left pending (its trackers never closed) die with its server:
    drop them, or the interpreter's exit would retry them against servers long gone."""
    yield
    from jobtrack_airtable.worker import commit

    for group in list(commit._LIVE):
        with group._lock:
            group._pending.clear()
            group._refused.clear()
            group._settling.clear()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded base seeded with the demo dataset per test session (per worker); the CLI
    tests work on copies of it (``base``)."""
    from jobtrack_airtable.cli.embedded import seed_file
    from jobtrack_airtable.schema import load_schema

    path = tmp_path_factory.mktemp("template") / "base.json"
    seed_file(path, load_schema())
    return path


@pytest.fixture
def base(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the seeded demo base for one test."""
    path = tmp_path / "base.json"
    shutil.copyfile(template, path)
    return path


#: The airtable.js release the JavaScript examples and shape checks run against.
AIRTABLE_JS = "airtable@0.12.2"


@pytest.fixture(scope="session")
def airtable_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``node_modules`` with airtable.js, installed from the npm registry into a temp dir
    once per session (never into the clone); skipped when Node or npm is absent."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("Node.js and npm are needed for the airtable.js checks")
    where = tmp_path_factory.mktemp("airtable-js")
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", AIRTABLE_JS],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return where / "node_modules"
