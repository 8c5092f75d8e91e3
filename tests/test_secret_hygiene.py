"""The API token never shows (SPEC §5): not in logs, exception messages, tracebacks, reprs,
saved plans, ``--json`` output, CLI stdout/stderr (``--debug`` included) or cassettes.

A recognisable fake token is configured on a local server and the library and the CLI are driven
through every kind of failure -- 401 (wrong token, both ways round), 422 (unknown field through
raw pyairtable on our connection, bad formula), 429 (server limiter and injected faults),
5xx, dropped connections, lost responses, timeouts and a stopped server -- with DEBUG logging on
for ``jobtrack_airtable``, ``urllib3``, ``requests``, ``pyairtable`` and the root logger.
Everything that comes out is collected into a :class:`Haystack` and searched for the token, its
two halves, its URL-quoted and base64 forms, and any ``Bearer <credential>``.  Each test also
checks that its haystack holds what the scenario should produce (the 401 in the error, the
retry lines in the log...), so a capture that silently caught nothing would fail.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from jobtrack_airtable.cli.embedded import seed_store
from jobtrack_airtable.errors import (
    AirtableError,
    AuthenticationError,
    InvalidRequestError,
    JobtrackError,
    NetworkError,
    RateLimitedError,
    TransientServerError,
    UnknownFieldError,
)
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.timeutil import utcnow
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import RetryPolicy, call_with_retry, classify
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID, MakeLocalAirtable
from .helpers import cassette_vcr

SECRET = "patSECRETSECRET12.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
OTHER = "patOTHERTOKEN0000.fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

#: Retries in milliseconds: the scenarios fail many times on purpose.
FAST = RetryPolicy(
    rate_limit_wait=0.06,
    rate_limit_jitter=0.01,
    transient_initial=0.01,
    transient_max=0.05,
    max_attempts=4,
    max_total_seconds=5.0,
)
LOGGERS = ("", "jobtrack_airtable", "urllib3", "requests", "pyairtable", "werkzeug", "vcr")
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9]")


def _forms(token: str) -> list[str]:
    head, _, tail = token.partition(".")
    return [
        token,
        head,
        tail,
        quote(token, safe=""),
        base64.b64encode(token.encode()).decode(),
        f"Bearer {token}",
    ]


FORBIDDEN = [*_forms(SECRET), *_forms(OTHER)]


class Haystack:
    """Everything a scenario let out, labelled by where it came from."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, text: object) -> None:
        self.items.append((where, text if isinstance(text, str) else repr(text)))

    def obj(self, where: str, value: object) -> None:
        self.add(f"repr({where})", repr(value))
        self.add(f"str({where})", str(value))
        dump = getattr(value, "model_dump_json", None)
        if callable(dump):
            self.add(f"{where}.model_dump_json()", dump())

    def error(self, where: str, exc: BaseException) -> None:
        """The error, its whole chain (causes and contexts) and its formatted traceback."""
        self.add(f"traceback({where})", "".join(traceback.format_exception(exc)))
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            self.obj(f"{where}:{type(current).__name__}", current)
            self.add(f"{where}.args", repr(current.args))
            if isinstance(current, JobtrackError):
                self.add(f"vars({where})", repr(vars(current)))
            current = current.__cause__ or current.__context__

    def text(self) -> str:
        return "\n".join(text for _, text in self.items)

    def assert_clean(self) -> None:
        assert self.items, "nothing was collected"
        for where, text in self.items:
            for fragment in FORBIDDEN:
                assert fragment not in text, f"token fragment {fragment[:12]}… found in {where}"
            match = BEARER.search(text)
            assert match is None, f"a bearer credential in {where}: {text[match.start() :][:40]}"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with the traceback when there is one
        self.lines.append(repr(record.__dict__))  # args, extra and exc_info as objects


@pytest.fixture
def logs() -> Iterator[_Capture]:
    """DEBUG on every relevant logger, all of it captured; logger state restored after (the
    in-process CLI reconfigures ``jobtrack_airtable``)."""
    capture = _Capture()
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, logger.propagate, list(logger.handlers), logger.disabled)
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    logging.getLogger().addHandler(capture)
    yield capture
    for name, (level, propagate, handlers, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers
        logger.disabled = disabled


@pytest.fixture
def hay(logs: _Capture) -> Iterator[Haystack]:
    """A haystack that also holds every log line; checked clean after the test."""
    stack = Haystack()
    yield stack
    stack.add("logs", "\n".join(logs.lines))
    stack.assert_clean()


def _settings(srv: LocalAirtable, token: str, **options: Any) -> Settings:
    values: dict[str, Any] = {"rate_limit": 0, "flush_interval": 3600.0}
    values.update(options)
    return Settings(
        _env_file=None, api_key=token, base_id=TEST_BASE_ID, endpoint_url=srv.url, **values
    )


def _connect(srv: LocalAirtable, token: str, policy: RetryPolicy = FAST, **options: Any) -> Any:
    return Connection.from_settings(_settings(srv, token, **options), policy=policy)


def _raises(hay: Haystack, where: str, error: type[BaseException], call: Callable[[], Any]) -> Any:
    with pytest.raises(error) as info:
        call()
    hay.error(where, info.value)
    return info.value


def _public_objects(hay: Haystack, srv: LocalAirtable, conn: Connection, tracker: Tracker) -> None:
    hay.obj("settings", conn.settings)
    hay.add("settings.model_dump()", conn.settings.model_dump())
    hay.obj("connection", conn)
    hay.obj("api", conn.api)
    hay.obj("jobs table", conn.table("jobs"))
    hay.obj("limiter", conn.limiter)
    hay.obj("policy", conn.policy)
    hay.obj("tracker", tracker)
    hay.obj("repository", tracker.repo)
    hay.obj("repository(conn)", Repository(conn))
    hay.obj("local server", srv)
    hay.obj("request log", srv.request_log.entries)
    hay.obj("faults", srv.faults)


# --- the library -----------------------------------------------------------------------------


def test_library_objects_rows_and_logs_on_the_happy_path(
    make_local_airtable: MakeLocalAirtable, hay: Haystack, logs: _Capture
) -> None:
    srv = make_local_airtable(token=SECRET)
    with _connect(srv, SECRET) as conn:
        tracker = Tracker(conn)
        with tracker.job(stream=2, note="hygiene") as job:
            with job.client("Guy-Wilson", name="Guy Wilson") as run:
                run.add(profiles_examined=3, profile_tokens=900)
                run.set(apify_costs=0.5, apify_run_id="8MSTBAfqMzuXPvgB3")
                run.note("half way")
                run.flush()
                hay.obj("client run", run)
            hay.obj("job", job)
            hay.obj("job rows", tracker.repo.client_runs.of_job(job.run_id))
        hay.obj("attached job", tracker.attach_job(str(job.run_id)))
        hay.obj("attached run", tracker.attach_client_run(str(run.run_id)))
        hay.obj("job row", tracker.repo.jobs.find(job.run_id))
        hay.obj("client row", tracker.repo.client_runs.find(run.run_id))
        _public_objects(hay, srv, conn, tracker)
    assert any("Starting new HTTP connection" in line for line in logs.lines)  # urllib3 DEBUG
    assert any("completed as" in line for line in logs.lines)  # jobtrack_airtable INFO


def test_settings_and_tracker_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hay: Haystack
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("AIRTABLE_API_KEY", SECRET)
    monkeypatch.setenv("AIRTABLE_BASE_ID", TEST_BASE_ID)
    monkeypatch.setenv("JOBTRACK_RATE_LIMIT", "0")
    settings = Settings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == SECRET
    hay.obj("Settings()", settings)
    hay.add("Settings().model_dump()", settings.model_dump())
    tracker = Tracker.from_env()
    hay.obj("Tracker.from_env()", tracker)
    hay.obj("Tracker.from_env().conn", tracker.conn)
    tracker.conn.close()


@pytest.mark.parametrize(
    ("client_token", "server_token"),
    [
        pytest.param(SECRET, OTHER, id="secret-sent"),
        pytest.param(OTHER, SECRET, id="secret-expected"),
    ],
)
def test_401_wrong_token(
    make_local_airtable: MakeLocalAirtable, hay: Haystack, client_token: str, server_token: str
) -> None:
    srv = make_local_airtable(token=server_token)
    with _connect(srv, client_token) as conn:
        tracker = Tracker(conn)
        error = _raises(hay, "start_job", AuthenticationError, tracker.job)
        assert error.status == 401 and error.error_type == "AUTHENTICATION_REQUIRED"
        _raises(hay, "attach_job", AuthenticationError, lambda: tracker.attach_job("250930-141522"))
        _raises(
            hay,
            "client_run",
            AuthenticationError,
            lambda: tracker.client("250930-141522", "Guy-Wilson"),
        )
        _raises(hay, "list_records", AuthenticationError, lambda: tracker.repo.list_records("jobs"))
        raw = _raises(hay, "raw pyairtable", requests.HTTPError, conn.table("jobs").all)
        hay.error("classify(raw)", classify(raw))
        _public_objects(hay, srv, conn, tracker)
    assert "401" in hay.text()


def test_422_through_raw_pyairtable_and_the_repository(
    make_local_airtable: MakeLocalAirtable, hay: Haystack
) -> None:
    srv = make_local_airtable(token=SECRET)
    with _connect(srv, SECRET) as conn:
        table = conn.table("jobs")
        raw = _raises(
            hay, "raw create", requests.HTTPError, lambda: table.create({"Bogus Field": 1})
        )
        assert raw.response is not None and raw.response.status_code == 422
        hay.add("raw response body", raw.response.text)
        hay.error("classify(raw)", classify(raw))
        error = _raises(
            hay,
            "call_with_retry",
            UnknownFieldError,
            lambda: call_with_retry(table.create, {"Bogus Field": 1}, op="create", policy=FAST),
        )
        assert error.status == 422
        repo = Repository(conn)
        _raises(
            hay, "bad formula", InvalidRequestError, lambda: repo.list_records("jobs", formula="{")
        )
        _raises(
            hay,
            "raw batch upsert",
            requests.HTTPError,
            lambda: table.batch_upsert([{"fields": {"Nope": 1}}], key_fields=["Nope"]),
        )
    assert "UNKNOWN_FIELD_NAME" in hay.text()


def test_429_from_the_server_limiter_and_injected_faults(
    make_local_airtable: MakeLocalAirtable, hay: Haystack, logs: _Capture
) -> None:
    srv = make_local_airtable(token=SECRET, rate_limit=1, penalty_seconds=0.05)
    with _connect(srv, SECRET, policy=RetryPolicy(max_attempts=1)) as conn:
        table = conn.table("jobs")

        def burst() -> None:
            for _ in range(3):
                call_with_retry(table.all, op="burst", policy=conn.policy)

        error = _raises(hay, "limiter burst", RateLimitedError, burst)
        assert error.status == 429 and error.error_type == "RATE_LIMIT_REACHED"

    faulty = make_local_airtable(token=SECRET)
    with _connect(faulty, SECRET) as conn:
        tracker = Tracker(conn)
        faulty.faults.add("429", times=2)  # retried, then fine
        job = tracker.job()
        faulty.faults.add("429", times=FAST.max_attempts)  # never fine
        _raises(hay, "persistent 429", RateLimitedError, lambda: job.client("Guy-Wilson").flush())
        hay.obj("faults", faulty.faults)
        _public_objects(hay, faulty, conn, tracker)
    assert any("RateLimitedError 429" in line and "retrying" in line for line in logs.lines)


def test_5xx_drops_lost_responses_timeouts_and_a_stopped_server(
    make_local_airtable: MakeLocalAirtable, hay: Haystack, logs: _Capture
) -> None:
    srv = make_local_airtable(token=SECRET)
    with _connect(srv, SECRET, timeout=0.3) as conn:
        tracker = Tracker(conn)
        # Each fault followed by a success, so every operation gets through on a retry.
        srv.faults.script(
            ["500", None, "502", None, "503", None, "drop", None, "lost_response"],
            retry_after=None,
        )
        with tracker.job() as job, job.client("Guy-Wilson") as run:
            run.add(posts_examined=2)
        srv.faults.add("503", times=FAST.max_attempts, retry_after=None)
        _raises(hay, "persistent 503", TransientServerError, lambda: tracker.attach_job(job.run_id))
        srv.faults.add("drop", times=FAST.max_attempts)
        _raises(hay, "persistent drop", NetworkError, lambda: tracker.attach_job(job.run_id))
        srv.faults.add("delay", times=FAST.max_attempts, delay=0.6)
        _raises(hay, "timeouts", NetworkError, lambda: tracker.attach_job(job.run_id))
        # The server's own error log (an unexpected error while answering a raw request).
        try:
            conn.table("jobs").create({"Run ID": "x", "System Notes": "\ud800"})
        except requests.RequestException as exc:
            hay.error("raw unsendable", exc)
        srv.stop()
        error = _raises(hay, "stopped server", NetworkError, tracker.job)
        assert error.status is None
        _public_objects(hay, srv, conn, tracker)
    text = "\n".join(logs.lines)
    assert "TransientServerError 503" in text and "NetworkError" in text


def test_cassette_recording_keeps_no_token(
    make_local_airtable: MakeLocalAirtable, tmp_path: Path, hay: Haystack
) -> None:
    """Recorded with the project's cassette configuration (tests/test_cassettes.py)."""
    srv = make_local_airtable(token=SECRET)
    recorder = cassette_vcr()
    cassettes = [tmp_path / "worker.yaml", tmp_path / "unauthorised.yaml"]
    with _connect(srv, SECRET) as conn:
        tracker = Tracker(conn)
        with recorder.use_cassette(str(cassettes[0]), record_mode="all"):
            srv.faults.add("429", times=1)
            with tracker.job() as job, job.client("Guy-Wilson") as run:
                run.add(profiles_examined=1)
    with (
        _connect(srv, OTHER) as conn,
        recorder.use_cassette(str(cassettes[1]), record_mode="all"),
    ):
        _raises(hay, "recorded 401", AuthenticationError, Tracker(conn).job)
    for path in cassettes:
        text = path.read_text(encoding="utf-8")
        assert "interactions" in text and "/v0/" in text
        assert "authorization" not in text.lower()
        hay.add(f"cassette {path.name}", text)
    assert "AUTHENTICATION_REQUIRED" in hay.text() and "RATE_LIMIT_REACHED" in hay.text()


# --- the CLI ---------------------------------------------------------------------------------


def _cli_env(tmp_path: Path, srv: LocalAirtable, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRTABLE_", "JOBTRACK_"))}
    env.update(
        {
            "AIRTABLE_API_KEY": token,
            "AIRTABLE_BASE_ID": TEST_BASE_ID,
            "JOBTRACK_ENDPOINT_URL": srv.url,
            "JOBTRACK_RATE_LIMIT": "0",
            "XDG_DATA_HOME": str(tmp_path / "xdg"),
            "HOME": str(tmp_path / "home"),
            "COLUMNS": "200",
        }
    )
    return env


def _cli(
    hay: Haystack, tmp_path: Path, srv: LocalAirtable, token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "jobtrack_airtable.cli", *args],
        capture_output=True,
        text=True,
        env=_cli_env(tmp_path, srv, token),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    hay.add(f"stdout of {args}", done.stdout)
    hay.add(f"stderr of {args}", done.stderr)
    return done


@pytest.mark.slow
def test_cli_outputs_plans_and_debug_logs(
    make_local_airtable: MakeLocalAirtable, tmp_path: Path, hay: Haystack
) -> None:
    srv = make_local_airtable(token=SECRET)
    seed_store(srv.store, srv.base_id, srv.schema, now=utcnow())
    plan = tmp_path / "plan.json"
    planned = _cli(hay, tmp_path, srv, SECRET, "--debug", "sync", "--json", "--out", str(plan))
    assert planned.returncode == 2, planned.stderr
    assert json.loads(planned.stdout)["base_id"] == TEST_BASE_ID
    hay.add("saved plan", plan.read_text(encoding="utf-8"))
    human = _cli(hay, tmp_path, srv, SECRET, "--debug", "sync")
    assert human.returncode == 2 and "Plan:" in human.stdout
    runs = _cli(hay, tmp_path, srv, SECRET, "--debug", "runs", "list", "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout)
    applied = _cli(hay, tmp_path, srv, SECRET, "--debug", "apply", str(plan), "--json")
    assert applied.returncode == 0, applied.stderr
    again = _cli(hay, tmp_path, srv, SECRET, "--debug", "apply", str(plan), "--json")
    assert again.returncode == 0 and "Already applied" in again.stderr  # issue 14 item 8
    # A row the plan wrote, edited since: refused, with the rows listed.
    doc = json.loads(plan.read_text(encoding="utf-8"))
    edited = next(
        r["record_id"]
        for r in doc["records"]
        if r["table"] == "jobs"
        and r["action"] == "update"
        and any(c["field"] in ("System Notes", "system_notes") for c in r["changes"])
    )
    srv.table("jobs").update(edited, {"System Notes": "edited by hand"})
    refused = _cli(hay, tmp_path, srv, SECRET, "--debug", "apply", str(plan), "--json")
    assert refused.returncode == 1 and edited in refused.stderr
    srv.faults.add("drop", times=1)  # retried after a short backoff, with a log line
    retried = _cli(hay, tmp_path, srv, SECRET, "--debug", "runs", "list", "--json")
    assert retried.returncode == 0 and "retrying" in retried.stderr


@pytest.mark.parametrize(
    ("client_token", "server_token"),
    [
        pytest.param(SECRET, OTHER, id="secret-sent"),
        pytest.param(OTHER, SECRET, id="secret-expected"),
    ],
)
@pytest.mark.parametrize("debug", [True, False], ids=["debug", "plain"])
def test_cli_401(
    make_local_airtable: MakeLocalAirtable,
    tmp_path: Path,
    hay: Haystack,
    client_token: str,
    server_token: str,
    debug: bool,
) -> None:
    srv = make_local_airtable(token=server_token)
    args = ["--debug"] if debug else []
    done = _cli(hay, tmp_path, srv, client_token, *args, "sync", "--json", "--out", "p.json")
    assert done.returncode == 1
    assert "AUTHENTICATION_REQUIRED" in done.stderr
    assert ("Traceback" in done.stderr) is debug
    assert not (tmp_path / "p.json").exists()


def _main(capsys: pytest.CaptureFixture[str], hay: Haystack, *args: str) -> int:
    from jobtrack_airtable.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    hay.add(f"in-process stdout of {args}", out)
    hay.add(f"in-process stderr of {args}", err)
    return code


def test_cli_in_process_through_429_5xx_and_a_stopped_server(
    make_local_airtable: MakeLocalAirtable,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    hay: Haystack,
) -> None:
    """In process, so the retry policy can be made fast (the CLI waits Airtable's real 30 s
    after a 429)."""
    srv = make_local_airtable(token=SECRET)
    seed_store(srv.store, srv.base_id, srv.schema, now=utcnow())
    for name, value in _cli_env(tmp_path, srv, SECRET).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    from_settings = Connection.from_settings.__func__  # type: ignore[attr-defined]

    def fast(cls: type[Connection], settings: Settings, **kwargs: Any) -> Connection:
        kwargs["policy"] = FAST
        return from_settings(cls, settings, **kwargs)

    monkeypatch.setattr(Connection, "from_settings", classmethod(fast))

    srv.faults.add("429", times=1)
    srv.faults.add("502", times=1)
    assert _main(capsys, hay, "--debug", "sync", "--json", "--out", "plan.json") == 2
    hay.add("saved plan", (tmp_path / "plan.json").read_text(encoding="utf-8"))
    srv.faults.add("429", times=FAST.max_attempts)
    assert _main(capsys, hay, "--debug", "runs", "list", "--json") == 1
    srv.faults.add("lost_response", times=1)
    assert _main(capsys, hay, "--debug", "apply", "plan.json", "--json") == 0
    srv.stop()
    assert _main(capsys, hay, "--debug", "sync", "--json") == 1
    assert _main(capsys, hay, "runs", "list") == 1
    text = hay.text()
    assert "RATE_LIMIT_REACHED" in text and "Traceback" in text
    assert "NetworkError" in text or "connection failed" in text


def test_the_checks_would_catch_a_leak() -> None:
    """The haystack is not blind: a token in any of its forms is caught."""
    for leaked in (SECRET, f"Authorization: Bearer {SECRET}", quote(SECRET, safe=""), "Bearer x1"):
        stack = Haystack()
        stack.add("planted", f"... {leaked} ...")
        with pytest.raises(AssertionError):
            stack.assert_clean()
    assert isinstance(AirtableError("x"), JobtrackError)
