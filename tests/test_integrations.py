"""``@tracked_job``, ``record_command`` and ``jobtrack-airtable run`` (issue 21), through the
real path: the local server, real subprocesses for commands and the CLI."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from jobtrack_airtable.errors import InvalidInputError, JobtrackError
from jobtrack_airtable.integrations import record_command, tracked_job
from jobtrack_airtable.integrations.decorators import current_async_job, current_job
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_TOKEN
from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows

CLI = Path(sys.executable).with_name("jobtrack-airtable")


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


def _jobs(srv: LocalAirtable) -> list[dict]:
    return [r["fields"] for r in rows(srv, JOB_TABLE)]


def _clients(srv: LocalAirtable) -> dict[str, dict]:
    return {r["fields"]["Client ID"]: r["fields"] for r in rows(srv, CRR_TABLE)}


# ------------------------------------------------------------------------- @tracked_job


def test_tracked_job_records_a_sync_function(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))

    @tracked_job(stream=4, tracker=tracker, note="nightly")
    def nightly(clients: list[str]) -> int:
        job = current_job()
        for cid in clients:
            with job.client(cid) as run:
                run.add(profiles_examined=len(cid))
        return len(clients)

    assert nightly(["Guy-Wilson", "Ana"]) == 2
    [job] = _jobs(local_airtable)
    assert job["Status"] == "Completed"
    assert job["Stream"] == 4
    assert job["Total Profiles Examined"] == len("Guy-Wilson") + len("Ana")
    assert "nightly" in job["System Notes"]
    assert nightly.__name__ == "nightly"
    tracker.close()


def test_tracked_job_fails_the_job_and_propagates(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))

    @tracked_job(tracker=lambda: tracker)
    def broken() -> None:
        run = current_job().client("Guy-Wilson")
        run.add(profiles_examined=1)
        raise RuntimeError("scraper down")

    with pytest.raises(RuntimeError, match="scraper down"):
        broken()
    [job] = _jobs(local_airtable)
    assert job["Status"] == "Failed"
    assert "RuntimeError: scraper down" in job["System Notes"]
    assert _clients(local_airtable)["Guy-Wilson"]["Status"] == "Failed"  # closed with the job
    tracker.close()


def test_tracked_job_records_a_coroutine_function(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))

    @tracked_job(stream=2, tracker=tracker)
    async def scrape(clients: list[str]) -> str:
        job = current_async_job()

        async def one(cid: str) -> None:
            async with job.client(cid) as run:
                await asyncio.sleep(0)
                run.add(posts_examined=3)

        await asyncio.gather(*(one(c) for c in clients))
        return str(job.run_id)

    run_id = asyncio.run(scrape(["A", "B", "C"]))
    [job] = _jobs(local_airtable)
    assert job["Run ID"] == run_id
    assert job["Status"] == "Completed"
    assert job["Posts Examined for Scoring"] == 9
    tracker.close()


def test_tracked_job_refuses_a_bad_stream_when_decorating() -> None:
    with pytest.raises(InvalidInputError, match="stream must be an integer ≥ 1, got 0"):
        tracked_job(stream=0)


def test_current_job_outside_a_tracked_function_says_so() -> None:
    with pytest.raises(JobtrackError, match="inside a @tracked_job function"):
        current_job()


# ------------------------------------------------------------------ recording a command


def test_record_command_success_with_client_runs(
    local_airtable: LocalAirtable, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in worker_env(local_airtable).items():
        monkeypatch.setenv(key, value)
    script = (
        "import os\n"
        "from jobtrack_airtable import Tracker\n"
        "with Tracker.from_env() as t, t.client(os.environ['JOBTRACK_RUN_ID'], 'Guy') as run:\n"
        "    run.add(profiles_examined=7)\n"
    )
    tracker = Tracker(make_conn(local_airtable))
    result = record_command(tracker, [sys.executable, "-c", script], stream=5)
    assert result.exit_code == 0
    [job] = _jobs(local_airtable)
    assert job["Status"] == "Completed"
    assert job["Stream"] == 5
    assert job["Total Profiles Examined"] == 7
    assert f"exited 0 after {result.seconds:.1f} s" in job["System Notes"]
    tracker.close()


def test_record_command_failure_keeps_the_stderr_tail(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))
    script = "import sys\nfor i in range(30): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    result = record_command(tracker, [sys.executable, "-c", script])
    assert result.exit_code == 3
    [job] = _jobs(local_airtable)
    assert job["Status"] == "Failed"
    notes = job["System Notes"]
    assert "exited 3" in notes
    assert "line 29" in notes and "line 10" in notes
    assert "line 9\n" not in notes  # only the last 20 lines
    tracker.close()


def test_record_command_that_cannot_start(local_airtable: LocalAirtable) -> None:
    tracker = Tracker(make_conn(local_airtable))
    result = record_command(tracker, ["/nonexistent/command"])
    assert result.exit_code == 127
    assert _jobs(local_airtable)[0]["Status"] == "Failed"
    with pytest.raises(InvalidInputError, match="non-empty list of strings"):
        record_command(tracker, "echo hi")  # type: ignore[arg-type]
    tracker.close()


def test_cli_run_records_a_command_and_passes_its_exit_code(
    local_airtable: LocalAirtable,
) -> None:
    proc = subprocess.run(
        [str(CLI), "run", "--stream", "3", "--", sys.executable, "-c", "import sys; sys.exit(4)"],
        env=worker_env(local_airtable),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stderr
    [job] = _jobs(local_airtable)
    assert job["Status"] == "Failed"
    assert job["Stream"] == 3
    assert f"as job {job['Run ID']} (Failed, exit 4" in proc.stderr
    assert TEST_TOKEN not in proc.stderr + proc.stdout


def test_the_readme_run_example_runs(local_airtable: LocalAirtable) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index("<!-- run-example -->") :]
    line = block.split("$ ", 1)[1].splitlines()[0]
    argv = shlex.split(line)
    assert argv[0] == "jobtrack-airtable"
    argv = [str(CLI), *argv[1:]]
    argv[argv.index("python")] = sys.executable
    proc = subprocess.run(
        argv, env=worker_env(local_airtable), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "scored\n"
    [job] = _jobs(local_airtable)
    assert job["Stream"] == 3
    assert job["Status"] == "No Leads To Score"
