"""The bad-input corpus (tests/corpus.py) through the public worker API, over real HTTP.

For every hostile value the outcome is one of (SPEC §5):

* **refused** with its typed error (an ``InvalidInputError`` subclass) whose message quotes the
  value, before any request (the server's request log stays empty), with nothing already
  recorded changed (the server's store is compared before and after);
* **stored** and read back byte for byte -- through the library (``repo.client_runs.find``,
  ``repo.client_runs.of_job``, ``attach_*``) and from the server's store directly -- without ever
  matching another client's rows: decoy clients whose IDs are prefixes, suffixes, doublings,
  case and normalisation variants of the value are seeded in the same job and in another job,
  and every read must return exactly the right rows.

Each value is its own test (``pytest -k 'client_id:formula-break-single'``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from jobtrack_airtable.errors import (
    InvalidClientIdError,
    InvalidInputError,
    NotFoundError,
    SchemaViolationError,
    UnknownMetricError,
    show,
)
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.run_ids import validate_client_id
from jobtrack_airtable.statuses import Status
from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.repository import Repository
from jobtrack_airtable.worker.runs import CUT_MARKER
from jobtrack_airtable.worker.tracker import Job, Tracker

from . import corpus
from .conftest import TEST_BASE_ID, TEST_TOKEN
from .corpus import ABSENT, DEFAULTED, Case, Kind
from .helpers import CRR_TABLE, JOB_TABLE, make_conn, rows

FIXED = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
#: How every note line starts under the fixed clock.
STAMP = "[2025-09-30 14:15:22Z] "


def _params(kind: Kind) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in corpus.by_kind(kind)]


@dataclass
class Env:
    srv: LocalAirtable
    tracker: Tracker

    @property
    def repo(self) -> Repository:
        return self.tracker.repo

    def store(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Both tables as stored: record ID → fields (no request)."""
        return {
            t: {r["id"]: r["fields"] for r in rows(self.srv, t)} for t in (JOB_TABLE, CRR_TABLE)
        }

    def crr_fields(self, run_id: str) -> dict[str, Any]:
        [row] = [r for r in rows(self.srv, CRR_TABLE) if r["fields"].get("Run ID") == run_id]
        return row["fields"]

    def job_fields(self, run_id: str) -> dict[str, Any]:
        [row] = [r for r in rows(self.srv, JOB_TABLE) if r["fields"].get("Run ID") == run_id]
        return row["fields"]

    def refuse(
        self,
        call: Callable[[], object],
        error: type[Exception],
        value: Any,
        *,
        quoted: str | None = None,
    ) -> Exception:
        """``call()`` raises ``error`` quoting ``value``, sends nothing and changes nothing."""
        before = self.store()
        self.srv.request_log.clear()
        with pytest.raises(error) as info:
            call()
        assert isinstance(info.value, InvalidInputError)
        assert self.srv.request_log.total == 0, "a request was sent for a refused value"
        message = str(info.value)
        assert (quoted or show(value)) in message, message[:300]
        assert len(message) < 2_000  # long values are truncated in messages
        assert self.store() == before
        return info.value


@pytest.fixture(scope="module")
def server() -> Iterator[LocalAirtable]:
    """One server for the module (stopping a server costs ~50 ms; there are ~400 tests),
    emptied before each test by :func:`env`."""
    srv = TrackingServer(token=TEST_TOKEN, base_id=TEST_BASE_ID, rate_limit=None).start()
    yield srv
    srv.stop()


def _empty(srv: LocalAirtable) -> None:
    """Delete every record through the store (no HTTP), so each test starts from an empty
    base, and forget the requests and faults of the previous test."""
    for table in (JOB_TABLE, CRR_TABLE):
        ids = [r["id"] for r in rows(srv, table)]
        for start in range(0, len(ids), 10):
            srv.store.delete_records(None, table, ids[start : start + 10])
    srv.faults.clear()
    srv.request_log.clear()


@pytest.fixture
def env(server: LocalAirtable) -> Iterator[Env]:
    _empty(server)
    conn = make_conn(server)
    yield Env(server, Tracker(conn, clock=lambda: FIXED))
    conn.close()


def near_misses(client_id: str) -> list[str]:
    """Valid client IDs that differ from ``client_id`` only a little: prefixes, suffixes,
    doublings, case and Unicode-normalisation variants, swapped quotes."""
    candidates = [
        client_id + "x",
        "x" + client_id,
        client_id[:-1],
        client_id[1:],
        f"{client_id}-{client_id}",
        client_id.upper(),
        client_id.lower(),
        client_id.swapcase(),
        unicodedata.normalize("NFC", client_id),
        unicodedata.normalize("NFD", client_id),
        client_id.replace("'", '"').replace("\\", ""),
        client_id + "'",
        "Guy-Wilson",
        "Guy",
    ]
    found: list[str] = []
    for candidate in candidates:
        if candidate == client_id or candidate in found:
            continue
        try:
            validate_client_id(candidate)
        except InvalidClientIdError:
            continue
        found.append(candidate)
    return found


def test_corpus_is_big_and_varied() -> None:
    kinds = {c.kind for c in corpus.ALL}
    assert kinds == set(Kind)
    assert len(corpus.ALL) >= 100
    assert len({c.id for c in corpus.ALL}) == len(corpus.ALL)  # readable, unique test IDs
    assert any(c.rejected for c in corpus.ALL) and any(not c.rejected for c in corpus.ALL)


# --- client IDs ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(Kind.CLIENT_ID))
def test_client_id(env: Env, case: Case) -> None:
    value = case.value
    job = env.tracker.job()
    if case.rejected:
        assert case.error is not None
        env.refuse(lambda: job.client(value), case.error, value)
        env.refuse(lambda: env.tracker.client(str(job.run_id), value), case.error, value)
        env.refuse(lambda: job.open_clients(["Decoy-OK", value]), case.error, value)
        env.refuse(lambda: env.tracker.open_clients(job.run_id, [value]), case.error, value)
        return

    other = env.tracker.job()
    decoys = near_misses(value)
    job.open_clients(decoys)
    other.open_clients([(value, "in another job"), *decoys])
    env.tracker.flush()
    log = env.srv.request_log
    log.clear()
    run = job.client(value)
    run.add(profiles_examined=7)
    run.note(f"note of {value}")
    closed = run.close(wait=True)
    assert log.total == 1  # open and close, group-committed in one record
    key = f"{job.run_id}-{value}"
    assert str(run.run_id) == key
    assert run.client_id == value

    # Through the library: the one row, exactly.
    found = env.repo.client_runs.find(key)
    assert found is not None
    assert found.record_id == closed.record_id
    assert (found.run_id, found.client_id, found.client_name) == (key, value, value)
    assert found.metrics.profiles_examined == 7
    assert found.status is Status.COMPLETED
    assert found.system_notes == f"{STAMP}note of {value}"
    for decoy in decoys:
        near = env.repo.client_runs.find(f"{job.run_id}-{decoy}")
        assert near is not None and near.client_id == decoy
        assert near.metrics.profiles_examined is None
    of_job = env.repo.client_runs.of_job(job.run_id)
    assert sorted(r.client_id or "" for r in of_job) == sorted([value, *decoys])
    assert [r.client_id for r in of_job if r.metrics.profiles_examined] == [value]
    of_other = env.repo.client_runs.of_job(other.run_id)
    assert sorted(r.client_id or "" for r in of_other) == sorted([value, *decoys])
    assert not any(r.metrics.profiles_examined for r in of_other)

    # Attach by run ID from "another process": totals continue from the row.
    with make_conn(env.srv) as conn:
        resumed = Tracker(conn, clock=lambda: FIXED).attach_client_run(key)
    assert (resumed.client_id, resumed.totals.profiles_examined) == (value, 7)
    assert resumed.status is Status.COMPLETED
    absent = f"{value}\u200b"
    if len(absent) <= 100:
        assert env.repo.client_runs.find(f"{job.run_id}-{absent}") is None

    # Ground truth in the server's store.
    stored = [r for r in rows(env.srv, CRR_TABLE) if r["fields"].get("Client ID") == value]
    assert sorted(r["fields"]["Run ID"] for r in stored) == sorted([key, f"{other.run_id}-{value}"])
    mine = env.crr_fields(key)
    assert mine["Client ID"] == value and mine["Client Name"] == value
    assert mine["Profiles Examined for Scoring"] == 7
    [theirs] = [r["fields"] for r in stored if r["fields"]["Run ID"] != key]
    assert "Profiles Examined for Scoring" not in theirs
    completed = job.complete()
    assert completed.aggregates["clients_processed"] == 1 + len(decoys)
    assert completed.aggregates["profiles_examined"] == 7


# --- run IDs ---------------------------------------------------------------------------------


def _seed_decoy_job(env: Env) -> Job:
    job = env.tracker.job()
    job.open_clients(["Guy-Wilson", "') , TRUE(), ('", "Guy"])
    env.tracker.flush()
    return job


@pytest.mark.parametrize("case", _params(Kind.BASE_RUN_ID))
def test_base_run_id(env: Env, case: Case) -> None:
    value = case.value
    job = _seed_decoy_job(env)
    tracker, repo = env.tracker, env.repo
    if case.rejected:
        assert case.error is not None
        env.refuse(lambda: tracker.attach_job(value), case.error, value)
        env.refuse(lambda: tracker.client(value, "Guy-Wilson"), case.error, value)
        env.refuse(lambda: tracker.open_clients(value, ["Guy-Wilson"]), case.error, value)
        env.refuse(lambda: repo.jobs.find(value), case.error, value)
        env.refuse(lambda: repo.client_runs.of_job(value), case.error, value)
        return
    assert case.stored is ABSENT
    env.srv.request_log.clear()
    with pytest.raises(NotFoundError, match=value):
        tracker.attach_job(value)
    assert env.srv.request_log.total == 1
    assert repo.jobs.find(value) is None
    assert repo.client_runs.of_job(value) == []
    assert len(repo.client_runs.of_job(job.run_id)) == 3
    assert tracker.attach_job(str(job.run_id)).run_id == job.run_id


@pytest.mark.parametrize("case", _params(Kind.CLIENT_RUN_ID))
def test_client_run_id(env: Env, case: Case) -> None:
    value = case.value
    job = _seed_decoy_job(env)
    if case.rejected:
        assert case.error is not None
        env.refuse(lambda: env.tracker.attach_client_run(value), case.error, value)
        env.refuse(lambda: env.repo.client_runs.find(value), case.error, value)
        return
    assert case.stored is ABSENT
    env.srv.request_log.clear()
    with pytest.raises(NotFoundError):
        env.tracker.attach_client_run(value)
    assert env.srv.request_log.total == 1
    assert env.repo.client_runs.find(value) is None
    same_client = f"{job.run_id}-{value.split('-', 2)[2]}"
    assert env.tracker.attach_client_run(same_client).run_id == same_client


# --- client names ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(Kind.CLIENT_NAME))
def test_client_name(env: Env, case: Case) -> None:
    value = case.value
    job = env.tracker.job()
    if case.rejected:
        assert case.error is not None
        env.refuse(lambda: job.client("Name-Probe", name=value), case.error, value)
        run = job.client("Name-Probe")
        env.refuse(lambda: run.set(client_name=value), case.error, value)
        run.close(wait=True)  # the refused value did not poison the run
        assert env.crr_fields(str(run.run_id))["Client Name"] == "Name-Probe"
        return
    if case.stored is DEFAULTED:
        run = job.client("Name-Probe", name=value)
        env.tracker.flush()
        assert env.crr_fields(str(run.run_id))["Client Name"] == "Name-Probe"
        env.refuse(lambda: run.set(client_name=value), InvalidInputError, value)
        return
    log = env.srv.request_log
    log.clear()
    run = job.client("Name-Probe", name=value)
    env.tracker.flush()
    assert log.total == 1
    assert env.crr_fields(str(run.run_id))["Client Name"] == value
    row = env.repo.client_runs.find(run.run_id)
    assert row is not None and row.client_name == value
    renamed = job.client("Name-Probe-2")
    renamed.set(client_name=value)
    renamed.close(wait=True)
    assert renamed.name == value
    assert env.crr_fields(str(renamed.run_id))["Client Name"] == value
    assert env.crr_fields(str(renamed.run_id))["Client ID"] == "Name-Probe-2"


# --- metric values ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(Kind.COUNT))
def test_count_value(env: Env, case: Case) -> None:
    value = case.value
    run = env.tracker.job().client("Metric-Probe")
    if case.rejected:
        assert case.error is not None
        run.add(profiles_examined=3)
        run.flush()
        env.refuse(lambda: run.add(profiles_examined=value), case.error, value)
        env.refuse(lambda: run.set(posts_harvested=value), case.error, value)
        assert run.totals.profiles_examined == 3
        assert run.totals.posts_harvested is None
        run.close(wait=True)
        fields = env.crr_fields(str(run.run_id))
        assert fields["Profiles Examined for Scoring"] == 3
        assert "Total Posts Harvested" not in fields
        return
    env.srv.request_log.clear()
    run.add(profiles_examined=value)
    run.set(posts_harvested=value)
    run.close(wait=True)
    assert env.srv.request_log.total == 1  # deferred: only the close is sent
    fields = env.crr_fields(str(run.run_id))
    for name in ("Profiles Examined for Scoring", "Total Posts Harvested"):
        assert fields[name] == case.expected
        assert type(fields[name]) is int
    row = env.repo.client_runs.find(run.run_id)
    assert row is not None and not row.problems
    assert row.metrics.profiles_examined == case.expected
    assert row.metrics.posts_harvested == case.expected


@pytest.mark.parametrize("case", _params(Kind.COST))
def test_cost_value(env: Env, case: Case) -> None:
    value = case.value
    run = env.tracker.job().client("Cost-Probe")
    if case.rejected:
        assert case.error is not None
        run.set(apify_costs=1.25)
        env.refuse(lambda: run.set(apify_costs=value), case.error, value)
        env.refuse(lambda: run.add(apify_costs=value), case.error, value)
        run.close(wait=True)
        assert env.crr_fields(str(run.run_id))["Apify API Costs"] == 1.25
        return
    run.set(apify_costs=value)
    run.close(wait=True)
    stored = env.crr_fields(str(run.run_id))["Apify API Costs"]
    assert stored == case.expected
    assert isinstance(stored, int | float) and not isinstance(stored, bool)
    row = env.repo.client_runs.find(run.run_id)
    assert row is not None and row.metrics.apify_costs is not None
    assert float(row.metrics.apify_costs) == case.expected


# --- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(Kind.STATUS))
def test_status(env: Env, case: Case) -> None:
    value = case.value
    job = env.tracker.job()
    run = job.client("Status-Probe")
    run.add(profiles_examined=1)
    if case.rejected:
        assert case.error is not None
        env.refuse(lambda: run.close(value), case.error, value)
        env.refuse(lambda: job.complete(value), case.error, value)
        assert run.status is Status.RUNNING and job.status is Status.RUNNING
        run.close(wait=True)
        assert env.crr_fields(str(run.run_id))["Status"] == "Completed"
        return
    env.srv.request_log.clear()
    closed = run.close(value, wait=True)
    assert env.srv.request_log.total == 1
    assert closed.status_raw == case.expected
    assert env.crr_fields(str(run.run_id))["Status"] == case.expected
    job.complete(value)
    assert env.job_fields(str(job.run_id))["Status"] == case.expected
    attached = env.tracker.attach_job(str(job.run_id))
    assert attached.status.value == case.expected


# --- notes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(Kind.NOTE))
def test_note(env: Env, case: Case) -> None:
    value = case.value
    job = env.tracker.job()
    run = job.client("Note-Probe")
    env.tracker.flush()
    job_notes = env.job_fields(str(job.run_id))["System Notes"]
    if case.rejected:
        assert case.error is not None
        env.refuse(lambda: run.note(value), case.error, value)
        assert run.flush() is False  # nothing pending: the note was not kept
        env.refuse(lambda: job.note(value), case.error, value)
        if value is not None:  # complete(note=None) is "no note"
            env.refuse(lambda: job.complete(note=value), case.error, value)
        run.close(wait=True)
        assert "System Notes" not in env.crr_fields(str(run.run_id))
        job.complete()
        assert env.job_fields(str(job.run_id))["System Notes"] == job_notes
        return
    log = env.srv.request_log
    log.clear()
    run.note(value)
    assert run.flush() is True
    assert log.total == 2  # the row's notes are read first, so other writers' lines stay
    assert env.crr_fields(str(run.run_id))["System Notes"] == STAMP + value
    row = env.repo.client_runs.find(run.run_id)
    assert row is not None and row.system_notes == STAMP + value
    log.clear()
    job.note(value)
    assert log.total == 2  # the row's current notes are read, then written with the line
    expected = f"{job_notes}\n{STAMP}{value}"
    assert env.job_fields(str(job.run_id))["System Notes"] == expected
    found = env.repo.jobs.find(job.run_id)
    assert found is not None and found.system_notes == expected


# --- field names -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(Kind.FIELD_NAME))
def test_field_name(env: Env, case: Case) -> None:
    name = case.value
    job = env.tracker.job()
    run = job.client("Field-Probe")
    run.add(profiles_examined=2)
    schema = env.tracker.conn.schema
    if isinstance(name, str):
        assert case.error is UnknownMetricError
        env.refuse(lambda: run.add(**{name: 1}), UnknownMetricError, name)
        env.refuse(lambda: run.set(**{name: 1}), UnknownMetricError, name)

    def quoted(table: str) -> str:
        # A logical key of a computed field is refused under its Airtable name.
        spec = schema.table(table)
        return repr(spec.fields[name].name) if name in spec.fields else show(name)

    crr_row = {"run_id": str(run.run_id), name: "x"}
    env.refuse(
        lambda: env.repo.client_runs.upsert([crr_row]),
        SchemaViolationError,
        name,
        quoted=quoted("client_runs"),
    )
    job_row = {"run_id": str(job.run_id), name: "x"}
    env.refuse(
        lambda: env.repo.jobs.upsert([job_row]), SchemaViolationError, name, quoted=quoted("jobs")
    )
    run.close(wait=True)
    fields = env.crr_fields(str(run.run_id))
    assert fields["Profiles Examined for Scoring"] == 2
    assert fields["Client ID"] == "Field-Probe"


# --- regressions for the bugs the corpus found -------------------------------------------------


def test_an_airtable_name_never_redirects_a_write_to_another_row(env: Env) -> None:
    """``{"run_id": A, "Run ID": B}`` used to write the fields of A into B's row."""
    job = env.tracker.job()
    mine, theirs = job.open_clients(["Mine", "Theirs"])
    env.refuse(
        lambda: env.repo.client_runs.upsert(
            [{"run_id": str(mine.run_id), "Run ID": str(theirs.run_id), "profiles_examined": 9}],
        ),
        SchemaViolationError,
        "Run ID",
    )


def test_open_clients_refuses_a_single_string(env: Env) -> None:
    """A lone string used to open one client per character."""
    job = env.tracker.job()
    env.refuse(lambda: job.open_clients("Guy-Wilson"), InvalidClientIdError, "Guy-Wilson")  # type: ignore[arg-type]


def test_open_clients_never_unpacks_a_mapping(env: Env) -> None:
    """``{"id": …, "name": …}`` used to open the client "id", named "name"."""
    job = env.tracker.job()
    item = {"id": "Guy-Wilson", "name": "Guy Wilson"}
    env.refuse(lambda: job.open_clients([item]), InvalidClientIdError, item)  # type: ignore[list-item]


def test_a_note_that_cannot_fit_is_refused_and_one_that_fits_cuts_the_oldest_lines(
    env: Env,
) -> None:
    run = env.tracker.job().client("Long-Notes")
    run.add(posts_examined=5)
    run.note("a" * 60_000)
    # Too long even alone, its stamp counted: refused, nothing changed, nothing sent.
    env.refuse(lambda: run.note("c" * 99_950), InvalidInputError, "c" * 99_950)
    # Fits alone: the oldest lines make room, behind the cut marker (issue 19).
    run.note("b" * 60_000)
    run.close(wait=True)
    fields = env.crr_fields(str(run.run_id))
    assert fields["System Notes"].startswith(CUT_MARKER + "\n")
    assert fields["System Notes"].endswith(STAMP + "b" * 60_000)
    assert len(fields["System Notes"]) <= 100_000
    assert fields["Posts Examined for Scoring"] == 5
    assert fields["Status"] == "Completed"


def test_a_failure_with_unsendable_error_text_is_still_recorded(env: Env) -> None:
    job = env.tracker.job()
    with pytest.raises(RuntimeError), job.client("Crashes") as run:
        run.add(profiles_examined=1)
        raise RuntimeError("undecodable \udcff byte " + "z" * 200_000)
    env.tracker.flush()
    fields = env.crr_fields(str(run.run_id))
    assert fields["Status"] == "Failed"
    assert fields["Error Details"].startswith("RuntimeError: undecodable \\udcff byte zzz")
    assert len(fields["Error Details"]) <= 50_010
    assert fields["Profiles Examined for Scoring"] == 1


def test_a_job_failure_is_recorded_even_when_its_notes_are_nearly_full(env: Env) -> None:
    job = env.tracker.job()
    job.note("n" * 99_800)
    with pytest.raises(KeyError), job:
        raise KeyError("boom " * 1_000)
    fields = env.job_fields(str(job.run_id))
    assert fields["Status"] == "Failed"
    notes = fields["System Notes"]
    assert len(notes) == 100_000
    # The oldest characters make room for the failure (issue 19): marker, newest n's, failure.
    assert notes.startswith(CUT_MARKER + "\nnnnn")
    assert f"n\n{STAMP}failed: KeyError: 'boom boom" in notes
