"""The embedded local base (jobtrack_airtable.cli.embedded): seeding, lifecycle, backend choice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from jobtrack_airtable.cli import embedded
from jobtrack_airtable.cli.demo import demo_records
from jobtrack_airtable.cli.embedded import (
    EMBEDDED_BASE_ID,
    EmbeddedBase,
    count_records,
    default_local_path,
    lock_local_base,
    open_backend,
    seed_file,
)
from jobtrack_airtable.errors import ConfigError
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.local.storage import Store
from jobtrack_airtable.schema import load_schema
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.repository import Repository

from .conftest import TEST_BASE_ID, TEST_TOKEN

NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings with no credentials, whatever the developer's environment holds."""
    for var in ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "JOBTRACK_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return Settings(_env_file=None)


def test_default_path_is_per_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = default_local_path()
    assert path == tmp_path / "jobtrack-airtable" / "local-base.sqlite"


def test_seed_file_writes_the_demo_dataset_with_created_times(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    counts = seed_file(path, load_schema(), now=NOW)
    demo = demo_records(now=NOW)
    assert counts == {
        "jobs": sum(r.table == "jobs" for r in demo),
        "client_runs": sum(r.table == "client_runs" for r in demo),
    }
    assert count_records(path) == len(demo)
    with Store(path) as store:
        _, jobs = store.snapshot(EMBEDDED_BASE_ID, "Job Tracking")
    created = {r.created_time for r in jobs}
    oldest_job = min((r for r in demo if r.table == "jobs"), key=lambda r: r.created_time)
    assert oldest_job.created_time.strftime("%Y-%m-%dT%H:%M:%S.000Z") in created
    # Logical keys became Airtable names, legacy select values were kept as they are.
    statuses = {r.fields.get("Status") for r in jobs}
    assert "Success" in statuses


def test_count_records_of_missing_and_corrupt_files(tmp_path: Path) -> None:
    assert count_records(tmp_path / "absent.json") == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        count_records(bad)


def test_open_backend_seeds_once_and_persists_writes(no_env: Settings, tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    with open_backend(no_env, local=path, now=NOW) as backend:
        assert backend.embedded is not None
        assert backend.is_local
        assert backend.conn.base_id == EMBEDDED_BASE_ID
        assert backend.notice is not None
        assert str(path) in backend.notice and "seeded" in backend.notice
        assert "AIRTABLE_API_KEY" not in backend.notice  # --local was explicit
        repo = Repository(backend.conn)
        assert len(repo.list_records("jobs")) == 40
        repo.jobs.upsert([{"run_id": "250101-000000", "status": "Running", "stream": 1}])
        url = backend.embedded.server.url  # type: ignore[union-attr]
        token = backend.embedded.server.token  # type: ignore[union-attr]
    # Stopped: nothing listens any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
    with open_backend(no_env, local=path) as backend:
        assert "seeded" not in (backend.notice or "")
        assert Repository(backend.conn).jobs.find("250101-000000") is not None


def test_default_embedded_base_says_why(
    no_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data" / "local-base.json"
    monkeypatch.setattr(embedded, "default_local_path", lambda: target)
    with open_backend(no_env) as backend:
        assert backend.embedded is not None and backend.embedded.path == target
        assert backend.notice == (
            f"Using the embedded local base at {target}, seeded with the demo dataset "
            "(no AIRTABLE_API_KEY/AIRTABLE_BASE_ID set)."
        )
    assert target.exists()


def test_token_is_random_and_not_in_reprs(no_env: Settings, tmp_path: Path) -> None:
    base = EmbeddedBase(tmp_path / "b.json", settings=no_env, now=NOW)
    with base:
        token = base.server.token  # type: ignore[union-attr]
        assert len(token) >= 20
        assert token not in repr(base) and token not in repr(base.conn)
    with pytest.raises(RuntimeError):
        _ = base.conn


def test_credentials_select_airtable(local_airtable: LocalAirtable, no_env: Settings) -> None:
    settings = Settings(
        _env_file=None,
        api_key=TEST_TOKEN,
        base_id=TEST_BASE_ID,
        endpoint_url=local_airtable.url,
        rate_limit=0,
    )
    with open_backend(settings) as backend:
        assert backend.embedded is None and backend.notice is None
        assert backend.conn.base_id == TEST_BASE_ID
        assert backend.is_local  # not api.airtable.com
        assert TEST_TOKEN not in backend.description
        assert Repository(backend.conn).list_records("jobs") == []


def test_real_airtable_endpoint_is_not_local() -> None:
    settings = Settings(
        _env_file=None, api_key="patFAKEFAKEFAKE.0123", base_id="appAAAAAAAAAAAAAA", rate_limit=0
    )
    with open_backend(settings) as backend:  # no request is made
        assert not backend.is_local


def test_half_configured_credentials_are_an_error(no_env: Settings) -> None:
    settings = Settings(_env_file=None, api_key="patFAKEFAKEFAKE.0123")
    with pytest.raises(ConfigError, match="AIRTABLE_BASE_ID"), open_backend(settings):
        pass


def test_corrupt_local_file_is_a_config_error(no_env: Settings, tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text('{"bases": 3}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"base\.json"), open_backend(no_env, local=path):
        pass
    # The lock was released on the failure path.
    with lock_local_base(path, timeout=0):
        pass


def test_concurrent_users_of_one_file_take_turns(no_env: Settings, tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock_local_base(path):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(5)
        with (
            pytest.raises(ConfigError, match="in use"),
            EmbeddedBase(path, settings=no_env, lock_timeout=0.05),
        ):
            pass
        assert not path.exists()  # refused before seeding anything
    finally:
        release.set()
        thread.join()
    with EmbeddedBase(path, settings=no_env, lock_timeout=0):
        pass
