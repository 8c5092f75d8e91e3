"""Building the pyairtable client and the connection object (SPEC §2.8, §5)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyairtable
import pytest
import requests

from jobtrack_airtable.errors import AuthenticationError, ConfigError
from jobtrack_airtable.limiter import LocalLimiter, NullLimiter, Slot
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.adapter import AirtableAdapter
from jobtrack_airtable.transport.client import Connection, build_api
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY, RetryPolicy, call_with_retry

from .helpers import clear_settings_env

TOKEN = "patFAKEt0kenABCDE.f00dfeedcafe0123456789abcdef0123456789abcdef0123456789abcdef"
TOKEN_PIECES = (TOKEN, "patFAKEt0ken", "f00dfeedcafe")
BASE = "appAAAAAAAAAAAAAA"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No credentials from the developer's environment or .env file leak into these tests.
    clear_settings_env(monkeypatch)
    monkeypatch.chdir(tmp_path)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": TOKEN, "base_id": BASE, "rate_limit": 0}
    values.update(overrides)
    return Settings(**values)


def assert_no_token(*texts: object) -> None:
    for text in texts:
        for piece in TOKEN_PIECES:
            assert piece not in str(text)


class MiniServer:
    """Answers each request with the next scripted (status, JSON body); records headers."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, Any]] = deque()
        self.seen: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                auth = self.headers.get("Authorization")
                server.seen.append((self.command, self.path, auth))
                status, body = server.script.popleft() if server.script else (200, {"records": []})
                raw = json.dumps(body).replace("{auth}", auth or "").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[MiniServer]:
    srv = MiniServer()
    yield srv
    srv.close()


class RecordingLimiter(NullLimiter):
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.released: list[tuple[Slot, float, tuple[str, ...]]] = []
        self.closed = False

    def reserve(self, key: str) -> Slot:
        self.keys.append(key)
        return Slot(key, f"t{len(self.keys)}")

    def release(self, slot: Slot, *, penalty: float = 0.0, usage: Sequence[str] = ()) -> None:
        self.released.append((slot, penalty, tuple(usage)))

    def close(self) -> None:
        self.closed = True


# --- build_api -----------------------------------------------------------------------------


def test_timeout_is_explicit_connect_and_read() -> None:
    assert build_api(settings(timeout=30)).timeout == (10.0, 30.0)
    assert build_api(settings(timeout=4)).timeout == (4.0, 4.0)
    assert build_api(settings(), timeout=2.5).timeout == (2.5, 2.5)


def test_no_retry_adapter_and_limiter_mounted() -> None:
    limiter = RecordingLimiter()
    api = build_api(settings(), limiter=limiter)
    # pyairtable's _RetryingSession is what retry_strategy would have installed.
    assert type(api.session) is requests.Session
    for prefix in ("http://", "https://"):
        adapter = api.session.get_adapter(f"{prefix}api.airtable.com/v0/{BASE}/T")
        assert isinstance(adapter, AirtableAdapter)
        assert adapter.limiter is limiter
    for adapter in api.session.adapters.values():
        assert adapter.max_retries.total == 0  # type: ignore[attr-defined]


def test_endpoint_url_defaults_and_overrides(server: MiniServer) -> None:
    assert str(build_api(settings()).endpoint_url) == "https://api.airtable.com"
    assert str(build_api(settings(endpoint_url=server.url)).endpoint_url) == server.url
    api = build_api(settings(endpoint_url="https://elsewhere.example"), endpoint_url=server.url)
    assert api.table(BASE, "Job Tracking").all() == []
    assert server.seen == [("GET", f"/v0/{BASE}/Job%20Tracking", f"Bearer {TOKEN}")]


def test_token_argument_overrides_settings(server: MiniServer) -> None:
    api = build_api(
        settings(api_key=None), token="patOTHERotherOTHER.1234567890abcdef", endpoint_url=server.url
    )
    api.table(BASE, "Job Tracking").all()
    assert server.seen[0][2] == "Bearer patOTHERotherOTHER.1234567890abcdef"


def test_every_request_and_page_passes_the_limiter(server: MiniServer) -> None:
    limiter = RecordingLimiter()
    server.script.extend(
        [
            (200, {"records": [], "offset": "itrPAGE2/recX"}),
            (200, {"records": []}),
            (200, {"tables": []}),
        ]
    )
    api = build_api(settings(endpoint_url=server.url), limiter=limiter)
    api.table(BASE, "Job Tracking").all()
    api.request("GET", f"{server.url}/v0/meta/bases/{BASE}/tables")
    assert len(server.seen) == 3
    assert limiter.keys == [BASE, BASE, BASE]


def test_default_limiter_comes_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "rl.sqlite"
    api = build_api(settings(rate_limit=5, limiter_url=f"sqlite://{path}"))
    adapter = api.session.get_adapter("https://api.airtable.com/")
    assert isinstance(adapter, AirtableAdapter)
    assert isinstance(adapter.limiter, LocalLimiter)
    assert adapter.limiter.path == path
    off = build_api(settings(rate_limit=0)).session.get_adapter("https://api.airtable.com/")
    assert isinstance(off.limiter, NullLimiter)  # type: ignore[attr-defined]


def test_build_api_without_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="AIRTABLE_API_KEY"):
        build_api(Settings(rate_limit=0))
    with pytest.raises(ConfigError, match="AIRTABLE_API_KEY"):
        build_api(settings(api_key=""))
    with pytest.raises(ConfigError, match="AIRTABLE_API_KEY"):
        build_api(settings(), token="")


# --- Connection --------------------------------------------------------------------


def test_connection_from_settings() -> None:
    conn = Connection.from_settings(settings())
    assert conn.base_id == BASE
    assert conn.policy is DEFAULT_POLICY
    assert isinstance(conn.limiter, NullLimiter)
    jobs = conn.table("jobs")
    assert isinstance(jobs, pyairtable.Table)
    assert (jobs.base.id, jobs.name) == (BASE, "Job Tracking")
    assert conn.table("client_runs").name == "Client Run Results"
    with pytest.raises(ConfigError):
        conn.table("nope")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.base_id = "appBBBBBBBBBBBBBB"  # type: ignore[misc]


def test_connection_takes_policy_limiter_and_closes() -> None:
    limiter = RecordingLimiter()
    policy = RetryPolicy(max_attempts=2)
    with Connection.from_settings(settings(), limiter=limiter, policy=policy) as conn:
        assert conn.policy is policy
        assert conn.limiter is limiter
    assert limiter.closed


@pytest.mark.parametrize(
    ("overrides", "missing", "present"),
    [
        ({"api_key": None, "base_id": None}, ["AIRTABLE_API_KEY", "AIRTABLE_BASE_ID"], []),
        ({"api_key": None}, ["AIRTABLE_API_KEY"], ["AIRTABLE_BASE_ID"]),
        ({"base_id": None}, ["AIRTABLE_BASE_ID"], ["AIRTABLE_API_KEY"]),
    ],
)
def test_missing_credentials_are_refused_by_name(
    overrides: dict[str, Any], missing: list[str], present: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        Connection.from_settings(settings(**overrides))
    for name in missing:
        assert name in str(info.value)
    for name in present:
        assert name not in str(info.value)
    assert_no_token(info.value)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="AIRTABLE_API_KEY and AIRTABLE_BASE_ID"):
        Connection.from_env()
    monkeypatch.setenv("AIRTABLE_API_KEY", TOKEN)
    monkeypatch.setenv("AIRTABLE_BASE_ID", BASE)
    monkeypatch.setenv("JOBTRACK_RATE_LIMIT", "0")
    monkeypatch.setenv("JOBTRACK_TIMEOUT", "12")
    conn = Connection.from_env()
    assert conn.base_id == BASE
    assert conn.api.timeout == (10.0, 12.0)


# --- the token never shows -----------------------------------------------------------------


def test_reprs_never_show_the_token(tmp_path: Path) -> None:
    s = settings(rate_limit=5, limiter_url=f"sqlite://{tmp_path}/rl.sqlite")
    conn = Connection.from_settings(s)
    assert_no_token(
        repr(conn),
        str(conn),
        repr(conn.api),
        str(conn.api),
        repr(s),
        str(s),
        s.model_dump(),
        repr(conn.table("jobs")),
        repr(conn.limiter),
        repr(conn.policy),
    )
    assert BASE in repr(conn)


def test_http_errors_through_the_connection_carry_no_token(server: MiniServer) -> None:
    # A server that echoes the Authorization header in its error message.
    server.script.append(
        (401, {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "bad header {auth}"}})
    )
    conn = Connection.from_settings(settings(endpoint_url=server.url))
    with pytest.raises(AuthenticationError) as info:
        call_with_retry(conn.table("jobs").all, op="list jobs", policy=conn.policy)
    assert_no_token(info.value, repr(info.value), info.value.message)
    assert server.seen[0][2] == f"Bearer {TOKEN}"  # the real token was sent, though
