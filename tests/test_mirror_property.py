"""Property (issue 23): whatever happens to the base between refreshes -- worker writes, edits
made outside the library, deletions, duplicate rows, fields renamed in the base (the schema
pins field IDs) -- and however the plan's clock moves between plans (forward across staleness
thresholds and skewed stamps, or back), the plan made from the incrementally refreshed mirror
*and incrementally planned* (only the groups a change or the clock touched re-planned, the
others taken from the mirror's kept plans) is byte-for-byte the plan a full read makes; and
``runs show``, ``runs list --since``, ``report`` and ``check`` answer from it what they answer
from full reads.

Each example gets a fresh base on one local server (so no webhook, rename or row leaks from one
example into the next), seeded with a history written an hour before the mirror's first
refresh; then a random sequence of changes and refreshes runs over HTTP.  Writes go straight
into the server's storage (they are not what is under test), but every refresh and every full
read is a real pyairtable request against it.  The overlap of the last-modified filter is
short (3 s, against a server-clock error of ½ s + ½ round trip here), so an incremental
refresh really leaves out the rows that did not change.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jobtrack_airtable.admin import views
from jobtrack_airtable.admin.mirror import Mirror
from jobtrack_airtable.admin.mirror.reads import MirroredRepository
from jobtrack_airtable.admin.ops.config import CheckConfig
from jobtrack_airtable.admin.ops.health import health_to_json, run_check
from jobtrack_airtable.admin.ops.report_data import collect_report, report_to_json
from jobtrack_airtable.admin.ops.state import CheckState
from jobtrack_airtable.admin.schema_pin import pin_schema_file
from jobtrack_airtable.admin.sync import plan_sync, plan_to_json
from jobtrack_airtable.errors import NotFoundError
from jobtrack_airtable.local.storage import new_id
from jobtrack_airtable.schema import default_schema_path, load_schema
from jobtrack_airtable.testing import TrackingServer, tracking_tables
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.meta import fetch_meta
from jobtrack_airtable.transport.repository import Repository
from tests.helpers import NOW, STALE, at

TABLES = {"jobs": "Job Tracking", "client_runs": "Client Run Results"}
BASES = ["250930-100000", "250930-110000", "250930-120000"]
CLIENTS = ["Acme", "Bolt", "Cargo"]
STATUSES = ["Running", "Completed", "Failed", "Success", "In Progress", "Recovery", None]
#: Fields renamed in the base (Airtable names of the default schema), per table.
RENAMABLE = [
    ("client_runs", "Status"),
    ("client_runs", "Run ID"),
    ("client_runs", "Profiles Examined for Scoring"),
    ("jobs", "Status"),
    ("jobs", "Run ID"),
]
OVERLAP = timedelta(seconds=3)
_names = itertools.count()


def run_ids(table: str) -> st.SearchStrategy[Any]:
    base = st.sampled_from(BASES)
    if table == "jobs":
        legacy = base.map(lambda b: f"job_post_scoring_stream1_20{b.replace('-', '')}")
        return st.one_of(base, legacy, st.just(""))
    standard = st.tuples(base, st.sampled_from(CLIENTS)).map(lambda p: f"{p[0]}-{p[1]}")
    prefixed = st.tuples(base, st.sampled_from(CLIENTS)).map(lambda p: f"{p[0]}-C{p[1]}")
    return st.one_of(standard, standard, prefixed, base)


def rows(table: str) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "Run ID": run_ids(table),
        "Status": st.sampled_from(STATUSES),
        # Stale, fresh, about to go stale, and from a clock ahead (set aside until it is not).
        "Last Updated": st.sampled_from(
            [at(hours=3), at(minutes=1), at(minutes=110), at(minutes=-30), None]
        ),
    }
    if table == "client_runs":
        fields["Client ID"] = st.sampled_from([*CLIENTS, None])
        fields["Profiles Examined for Scoring"] = st.integers(0, 5)
    return st.fixed_dictionaries(fields).map(
        lambda f: {k: v for k, v in f.items() if v is not None}
    )


TABLE = st.sampled_from(list(TABLES))
WRITE = TABLE.flatmap(lambda t: st.tuples(st.just("write"), st.just(t), rows(t)))
EDIT = TABLE.flatmap(lambda t: st.tuples(st.just("edit"), st.just(t), st.integers(0, 40), rows(t)))
STEP = st.one_of(
    WRITE,
    EDIT,
    st.tuples(st.just("delete"), TABLE, st.integers(0, 40)),
    st.tuples(st.just("duplicate"), TABLE, st.integers(0, 40)),
    st.tuples(st.just("rename"), st.sampled_from(RENAMABLE)),
    st.just(("refresh",)),
    # The plan's clock: unchanged, a little on, across the stale threshold, a day, back.
    st.tuples(st.just("tick"), st.sampled_from([0, 1, 29, 31, 121, 24 * 60, -61])),
)
SEED = st.tuples(st.lists(rows("jobs"), max_size=4), st.lists(rows("client_runs"), max_size=12))


class World:
    """One fresh base on the shared server, a pinned schema for it, and its mirror."""

    def __init__(
        self, srv: TrackingServer, folder: Path, compare: Callable[[World], None] | None = None
    ) -> None:
        self.srv = srv
        #: What each refresh step checks (default: the sync plans).
        self.compare = compare or World.check
        self.base_id = new_id("app")
        srv.store.ensure_tables(self.base_id, tracking_tables())
        settings = srv.settings(base_id=self.base_id, rate_limit=0)
        schema_file = folder / f"{self.base_id}.toml"
        shutil.copyfile(default_schema_path(), schema_file)
        probe = Connection.from_settings(settings, schema=load_schema())
        pin_schema_file(schema_file, fetch_meta(probe))
        probe.close()
        self.conn = Connection.from_settings(settings, schema=load_schema(schema_file))
        self.repo = Repository(self.conn)
        self.mirror = Mirror(folder / f"{self.base_id}.sqlite", self.base_id, overlap=OVERLAP)
        self.now = NOW
        self.kinds: list[str] = []

    def close(self) -> None:
        self.mirror.close()
        self.conn.close()

    def ids(self, table: str) -> list[str]:
        return [r.id for r in self.srv.store.snapshot(self.base_id, TABLES[table])[1]]

    def field_name(self, table: str, field_id: str) -> str:
        (tdef,) = [t for t in self.srv.store.tables(self.base_id) if t.name == TABLES[table]]
        return next(f.name for f in tdef.fields if f.id == field_id)

    def pinned_id(self, table: str, name: str) -> str:
        spec = load_schema().table(table)
        key = next(f.key for f in spec.fields.values() if f.name == name)
        field_id = self.repo.schema.table(table).field(key).id
        assert field_id is not None
        return field_id

    def write(self, table: str, fields: dict[str, Any], **extra: Any) -> None:
        store = self.srv.store
        names = {self.pinned_id(table, k): v for k, v in fields.items()}
        current = {self.field_name(table, fid): v for fid, v in names.items()}
        store.create_records(self.base_id, TABLES[table], [current], typecast=True, **extra)

    def step(self, step: tuple[Any, ...]) -> None:
        store = self.srv.store
        kind = step[0]
        if kind == "refresh":
            self.compare(self)
            return
        if kind == "tick":
            self.now += timedelta(minutes=step[1])
            return
        if kind == "rename":
            table, name = step[1]
            field_id = self.pinned_id(table, name)
            store.update_field(
                self.base_id, TABLES[table], field_id, {"name": f"{name} {next(_names)}"}
            )
            return
        table = step[1]
        if kind == "write":
            self.write(table, step[2], created_time=self.now - timedelta(hours=1))
            return
        ids = self.ids(table)
        if not ids:
            return
        target = ids[step[2] % len(ids)]
        if kind == "delete":
            store.delete_records(self.base_id, TABLES[table], [target])
        elif kind == "duplicate":
            record = store.get_record(self.base_id, TABLES[table], target)
            store.create_records(self.base_id, TABLES[table], [dict(record.fields)], typecast=True)
        else:  # edit: new values for some fields (None empties one)
            values = {
                self.field_name(table, self.pinned_id(table, k)): v for k, v in step[3].items()
            }
            store.update_records(self.base_id, TABLES[table], [(target, values)], typecast=True)

    def check(self) -> None:
        incremental = plan_sync(self.repo, now=self.now, stale_after=STALE, mirror=self.mirror)
        full = plan_sync(self.repo, now=self.now, stale_after=STALE)
        assert plan_to_json(incremental) == plan_to_json(full)
        ran = self.mirror.plans.last
        assert ran is not None
        self.kinds.append(ran.kind)


#: Run IDs ``runs show`` is asked for: each base, a client run, a legacy form, none.
QUERIES = [*BASES, f"{BASES[0]}-Acme", "job_post_scoring_stream1_20250930110000", "240101-000000"]
#: Periods of ``report``/``runs list --since`` around the rows' times (seeded a day before
#: NOW, Last Updated 3 h and 1 min before it, later writes now).
WINDOWS = [
    (NOW - timedelta(days=2), NOW),
    (NOW - timedelta(hours=3), NOW + timedelta(days=3650)),
    (NOW - timedelta(days=1), NOW - timedelta(days=1)),
]


def _shown(repo: Repository, run_id: str) -> object:
    try:
        return views.detail_to_json(views.show_run(repo, run_id))
    except NotFoundError as exc:
        return str(exc)


def same_answers(world: World) -> None:
    """The commands that read a run, a period or the base's health, from the refreshed
    mirror and from full reads."""
    world.mirror.refresh(world.repo)
    mirrored = MirroredRepository(world.conn, world.mirror)
    for run_id in QUERIES:
        assert _shown(mirrored, run_id) == _shown(world.repo, run_id), run_id
    for since, until in WINDOWS:
        assert views.list_runs(mirrored, since=since) == views.list_runs(world.repo, since=since)
        assert report_to_json(
            collect_report(mirrored, since=since, until=until, now=NOW)
        ) == report_to_json(collect_report(world.repo, since=since, until=until, now=NOW))
    reports = [
        health_to_json(
            run_check(repo, CheckConfig(), CheckState(world.base_id), stuck_after=STALE, now=NOW)
        )
        for repo in (mirrored, world.repo)
    ]
    assert reports[0] == reports[1]


@pytest.fixture(scope="module")
def server() -> Iterator[TrackingServer]:
    srv = TrackingServer(rate_limit=None).start()
    yield srv
    srv.stop()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=SEED, steps=st.lists(STEP, min_size=1, max_size=14))
def test_the_incremental_plan_is_always_the_full_read_plan(
    server: TrackingServer,
    seed: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    steps: list[Any],
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mirror-property-"))
    world = World(server, folder)
    try:
        # A history written an hour before the mirror's first refresh.
        past = datetime.now(UTC) - timedelta(hours=1)
        server.store.clock = lambda: past
        for table, table_rows in zip(TABLES, seed, strict=True):
            for fields in table_rows:
                world.write(table, fields, created_time=NOW - timedelta(days=1))
        server.store.clock = lambda: datetime.now(UTC)
        world.check()  # the first refresh: a full read, and a full plan
        for step in steps:
            world.step(step)
        world.check()
        assert world.kinds[0] == "full"
        event(f"plans after the first: {sorted(set(world.kinds[1:]))}")
    finally:
        server.store.clock = lambda: datetime.now(UTC)
        world.close()
        shutil.rmtree(folder, ignore_errors=True)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=SEED, steps=st.lists(STEP, min_size=1, max_size=10))
def test_runs_reports_and_checks_from_the_mirror_are_the_full_reads(
    server: TrackingServer,
    seed: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    steps: list[Any],
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mirror-property-"))
    world = World(server, folder, compare=same_answers)
    try:
        past = datetime.now(UTC) - timedelta(hours=1)
        server.store.clock = lambda: past
        for table, table_rows in zip(TABLES, seed, strict=True):
            for fields in table_rows:
                world.write(table, fields, created_time=NOW - timedelta(days=1))
        server.store.clock = lambda: datetime.now(UTC)
        same_answers(world)  # the first refresh: a full read
        for step in steps:
            world.step(step)
        same_answers(world)
    finally:
        server.store.clock = lambda: datetime.now(UTC)
        world.close()
        shutil.rmtree(folder, ignore_errors=True)
