"""``jobtrack-airtable check``: exit codes, JSON, and notifications through apprise to a real
local HTTP receiver — never twice for the same problem, retried when delivery failed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from jobtrack_airtable.cli import app
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.timeutil import utcnow
from jobtrack_airtable.transport.repository import Repository

from .conftest import MakeLocalAirtable
from .ops_rows import CLI_ENV_VARS, client, connect, job, put, subprocess_env
from .webhook import Webhook, running_webhook

SECRET = "SECRETwebhookTOKEN0123456789"


@pytest.fixture
def srv(make_local_airtable: MakeLocalAirtable, monkeypatch: pytest.MonkeyPatch) -> LocalAirtable:
    """A local server the CLI reaches through the ordinary credentials."""
    server = make_local_airtable()
    for var in CLI_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRTABLE_API_KEY", server.token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", server.base_id)
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", server.url)
    monkeypatch.setenv("JOBTRACK_RATE_LIMIT", "0")
    return server


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with running_webhook() as hook:
        yield hook


@pytest.fixture
def repo(srv: LocalAirtable) -> Repository:
    return connect(srv)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "check-state.json"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def check(state_file: Path, *args: str) -> Result:
    return run("check", "--state", str(state_file), *args)


def _two_failures(repo: Repository, ago: timedelta = timedelta(hours=2)) -> None:
    """A failed job with one failed client, finished a minute after it started ``ago``."""
    start = (utcnow() - ago).replace(microsecond=0)
    put(
        repo,
        [job(start, "Failed", minutes=1, notes="scoring API down")],
        [
            client(start, "Guy-Wilson", "Failed", error="TimeoutError: no answer"),
            client(start, "Carl-Jones", "Completed"),
        ],
    )


def test_exit_0_when_healthy(srv: LocalAirtable, repo: Repository, state_file: Path) -> None:
    start = utcnow() - timedelta(hours=1)
    put(repo, [job(start, "Completed")], [client(start, "Guy-Wilson", "Completed")])
    result = check(state_file)
    assert result.exit_code == 0, result.output
    assert "Healthy" in result.stdout


def test_exit_2_when_unhealthy_and_json(
    srv: LocalAirtable, repo: Repository, state_file: Path
) -> None:
    _two_failures(repo)
    result = check(state_file, "--json")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["healthy"] is False and doc["exit_code"] == 2
    assert [p["kind"] for p in doc["problems"]] == ["failed_run", "failed_client"]
    assert doc["new_problems"] == 2
    assert doc["problems"][1]["client_id"] == "Guy-Wilson"
    assert doc["rows_read"] == {"jobs": 1, "client_runs": 2}
    # The failures were reported: the next check is healthy again.
    again = check(state_file, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["problems"] == []


def test_exit_1_on_errors_before_any_request(
    srv: LocalAirtable, state_file: Path, tmp_path: Path, webhook: Webhook
) -> None:
    bad = tmp_path / "check.toml"
    bad.write_text('[[schedule]]\nstream = 1\nby = "7am"\n', encoding="utf-8")
    srv.request_log.clear()
    result = check(state_file, "--config", str(bad))
    assert result.exit_code == 1
    assert "'7am'" in result.stderr
    result = check(state_file, "--notify", f"nosuchservice://{SECRET}")
    assert result.exit_code == 1
    assert "notification URL #1 (scheme 'nosuchservice')" in result.stderr
    assert SECRET not in result.output
    result = check(state_file, "--stuck-after", "soon")
    assert result.exit_code == 1 and "'soon'" in result.stderr
    assert srv.request_log.total == 0
    assert webhook.received == []
    assert not state_file.exists()


def test_notify_without_apprise_says_what_to_install(
    srv: LocalAirtable, state_file: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "apprise" or m.startswith("apprise.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "apprise", None)  # `import apprise` now fails
    srv.request_log.clear()
    result = check(state_file, "--notify", webhook.url())
    assert result.exit_code == 1
    assert "pip install 'jobtrack-airtable[ops]'" in result.stderr
    assert srv.request_log.total == 0 and webhook.received == []


def test_one_message_per_new_problem_never_repeated(
    srv: LocalAirtable, repo: Repository, state_file: Path, webhook: Webhook
) -> None:
    stuck = (utcnow() - timedelta(hours=6)).replace(microsecond=0)
    put(repo, [job(stuck, "Running", minutes=None, stream=2)])
    _two_failures(repo)
    url = webhook.url()

    first = check(state_file, "--notify", url)
    assert first.exit_code == 2
    assert len(webhook.received) == 3
    assert sorted(t.split(": ", 1)[1] for t in webhook.titles()) == [
        "client run failed",
        "run failed",
        "run stuck",
    ]
    assert all(srv.base_id in t for t in webhook.titles())
    assert {r.body["type"] for r in webhook.received} == {"warning"}
    assert any("Guy-Wilson" in m and "TimeoutError" in m for m in webhook.messages())

    # Again, and again: the stuck run is still a problem (exit 2) but nobody hears twice.
    for _ in range(2):
        again = check(state_file, "--notify", url)
        assert again.exit_code == 2
        assert "seen" in again.stdout
    assert len(webhook.received) == 3

    # A new failure: exactly one more message, about it.
    new_start = utcnow().replace(microsecond=0) - timedelta(minutes=3)
    put(repo, [job(new_start, "Completed", minutes=1)], [client(new_start, "Eva-Novak", "Failed")])
    check(state_file, "--notify", url)
    assert len(webhook.received) == 4
    assert "Eva-Novak" in webhook.messages()[-1]


def test_failed_delivery_is_an_error_and_is_retried_once_it_works(
    srv: LocalAirtable, repo: Repository, state_file: Path, webhook: Webhook
) -> None:
    _two_failures(repo)
    webhook.status_by_path["/hook"] = 500
    url = webhook.url()
    failed = check(state_file, "--notify", url, "--json")
    assert failed.exit_code == 1
    assert "2 notification(s) could not be delivered" in failed.stderr
    # ... saying why (the service's answer), with the URL masked.
    assert "500" in failed.stderr and url not in failed.stderr
    doc = json.loads(failed.stdout)
    assert doc["notifications"]["failed"] == 2 and len(doc["notifications"]["pending"]) == 2
    attempts = len(webhook.received)
    assert attempts >= 2

    webhook.status_by_path["/hook"] = 200
    retried = check(state_file, "--notify", url)
    # Nothing new happened (exit 0), but the two pending messages went out now...
    assert retried.exit_code == 0
    assert len(webhook.received) == attempts + 2
    # ... and only now.
    check(state_file, "--notify", url)
    assert len(webhook.received) == attempts + 2


def test_each_target_gets_each_problem_once(
    srv: LocalAirtable, repo: Repository, state_file: Path, webhook: Webhook
) -> None:
    _two_failures(repo)
    webhook.status_by_path["/down"] = 503
    good, down = webhook.url("/up"), webhook.url("/down")
    assert check(state_file, "--notify", good, "--notify", down).exit_code == 1
    webhook.status_by_path["/down"] = 200
    assert check(state_file, "--notify", good, "--notify", down).exit_code == 0
    assert check(state_file, "--notify", good, "--notify", down).exit_code == 0
    assert len(webhook.messages("/up")) == 2  # never repeated while /down was retried
    assert len(webhook.messages("/down")) >= 4  # 2 failed tries, then 2 delivered
    delivered = json.loads(state_file.read_text(encoding="utf-8"))["problems"]
    assert all(len(p["delivered"]) == 2 for p in delivered.values())


def test_webhook_url_never_shown_or_stored(
    srv: LocalAirtable, repo: Repository, state_file: Path, webhook: Webhook
) -> None:
    _two_failures(repo)
    webhook.status_by_path[f"/hook/{SECRET}"] = 500
    url = webhook.url(f"/hook/{SECRET}")
    result = check(state_file, "--notify", url, "--json")
    assert result.exit_code == 1
    assert webhook.received and webhook.received[0].path == f"/hook/{SECRET}"
    assert SECRET not in result.output
    assert SECRET not in state_file.read_text(encoding="utf-8")


def test_the_configured_schedule_from_a_file(
    srv: LocalAirtable, repo: Repository, state_file: Path, tmp_path: Path, webhook: Webhook
) -> None:
    now = utcnow()
    deadline = (now - timedelta(hours=1)).strftime("%H:%M")
    config = tmp_path / "check.toml"
    config.write_text(
        f'[[schedule]]\nstream = 1\nevery = "day"\nby = "{deadline}"\n'
        f'[[schedule]]\nstream = 2\nevery = "day"\nby = "{deadline}"\n',
        encoding="utf-8",
    )
    # Stream 2 ran 3 hours ago (inside its 24 h window); stream 1 did not run at all.
    put(repo, [job((now - timedelta(hours=3)).replace(microsecond=0), "Completed", stream=2)])
    result = check(state_file, "--config", str(config), "--json", "--notify", webhook.url())
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert [p["kind"] for p in doc["problems"]] == ["missed_run"]
    assert doc["problems"][0]["stream"] == 1
    assert [(d["stream"], d["met_by"] is not None) for d in doc["schedule"]] == [
        (1, False),
        (2, True),
    ]
    assert len(webhook.received) == 1 and "No run of stream 1" in webhook.messages()[0]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobtrack_airtable.cli", *args]


def test_exit_codes_of_the_real_process(
    srv: LocalAirtable, repo: Repository, state_file: Path
) -> None:
    env = subprocess_env(srv)
    healthy = subprocess.run(
        _cli("check", "--state", str(state_file)), env=env, capture_output=True, timeout=120
    )
    assert healthy.returncode == 0, healthy.stderr
    _two_failures(repo, ago=timedelta(minutes=3))
    unhealthy = subprocess.run(
        _cli("check", "--state", str(state_file), "--json"),
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert unhealthy.returncode == 2, unhealthy.stderr
    assert len(json.loads(unhealthy.stdout)["problems"]) == 2


@pytest.mark.slow
def test_overlapping_cron_runs_notify_once(
    srv: LocalAirtable, repo: Repository, state_file: Path, webhook: Webhook
) -> None:
    """Two checks started at once (overlapping cron entries) share the state file's lock:
    each problem reaches the receiver once, not once per process."""
    _two_failures(repo)
    env = subprocess_env(srv)
    args = _cli("check", "--state", str(state_file), "--notify", webhook.url())
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    codes = sorted(p.wait(timeout=120) for p in procs)
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        p.stderr.close()
    # One process saw the failures (exit 2); the others found them already reported.
    assert codes == [0, 0, 0, 2]
    assert len(webhook.received) == 2


@pytest.mark.slow
def test_overlapping_cron_runs_send_one_resolved_message(
    srv: LocalAirtable, repo: Repository, state_file: Path, tmp_path: Path, webhook: Webhook
) -> None:
    """A condition that clears is announced resolved once, however many checks overlap."""
    config = tmp_path / "check.toml"
    config.write_text(
        "[clients]\nfailure_streak = 2\n[error_rate]\nmin_runs = 1000\n", encoding="utf-8"
    )
    first = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    put(
        repo,
        [],
        [
            client(first, "Dana-Li", "Failed"),
            client(first + timedelta(hours=1), "Dana-Li", "Failed"),
        ],
    )
    url = webhook.url()
    assert check(state_file, "--config", str(config), "--notify", url).exit_code == 2
    assert "client failure streak" in "".join(webhook.titles())
    before = len(webhook.received)
    put(repo, [], [client(first + timedelta(hours=2), "Dana-Li", "Completed")])
    args = _cli("check", "--config", str(config), "--state", str(state_file), "--notify", url)
    procs = [
        subprocess.Popen(args, env=subprocess_env(srv), stdout=subprocess.DEVNULL) for _ in range(4)
    ]
    assert sorted(p.wait(timeout=120) for p in procs) == [0, 0, 0, 0]
    resolved = [t for t in webhook.titles()[before:] if "resolved" in t]
    assert len(resolved) == 1 and resolved[0].endswith("resolved: client failure streak")
    assert len(webhook.received) == before + 1


def test_a_cleared_condition_is_shown_resolved(
    srv: LocalAirtable, repo: Repository, state_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "check.toml"
    config.write_text("[clients]\nfailure_streak = 2\n", encoding="utf-8")
    first = (utcnow() - timedelta(hours=3)).replace(microsecond=0)
    put(
        repo,
        [],
        [
            client(first, "Dana-Li", "Failed"),
            client(first + timedelta(hours=1), "Dana-Li", "Failed"),
        ],
    )
    assert check(state_file, "--config", str(config)).exit_code == 2
    put(repo, [], [client(first + timedelta(hours=2), "Dana-Li", "Completed")])
    cleared = check(state_file, "--config", str(config))
    resolved = [line for line in cleared.stdout.splitlines() if line.startswith("resolved")]
    assert len(resolved) == 1 and "client failure streak" in resolved[0]
    # The table may wrap the message: compare it with whitespace folded.
    assert "Client Dana-Li failed in each of its last 2 runs" in " ".join(cleared.stdout.split())
    doc = json.loads(check(state_file, "--config", str(config), "--json").stdout)
    assert doc["resolved"] == []  # announced once
    assert [p["kind"] for p in doc["problems"]] == ["error_rate"]  # 2 of 3 still failed


def test_check_reads_the_outbox_its_settings_name(
    srv: LocalAirtable,
    state_file: Path,
    tmp_path: Path,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobtrack_airtable.outbox import SqliteOutbox
    from jobtrack_airtable.outbox.store import entry_key

    path = tmp_path / "outbox.sqlite"
    monkeypatch.setenv("JOBTRACK_OUTBOX_URL", f"sqlite:///{path}")
    config = tmp_path / "check.toml"
    config.write_text("[outbox]\nmax_entries = 0\n", encoding="utf-8")
    assert check(state_file, "--config", str(config)).exit_code == 0
    store = SqliteOutbox(path)
    store.put(entry_key(srv.base_id, "jobs", "251001-070000"), 1, "{}", "otherhost:1:x")
    store.close()
    result = check(state_file, "--config", str(config), "--json", "--notify", webhook.url())
    assert result.exit_code == 2
    assert [p["kind"] for p in json.loads(result.stdout)["problems"]] == ["outbox_backlog"]
    assert webhook.titles()[0].endswith(": outbox backlog")
