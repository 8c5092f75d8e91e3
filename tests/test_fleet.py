"""Fleet mode (SPEC §3.4): one rate limit per base shared through Redis by workers that do not
share a machine.

Every test here talks to a real Redis server: ``JOBTRACK_TEST_REDIS_URL`` when set (``.ci/run``
sets it), else a ``redis-server`` binary started on a free loopback port.  When neither exists
the tests are *skipped with a reason* (shown by ``-ra``), never silently passed.  The tests that
kill Redis mid-run always start their own ``redis-server`` (the shared one must survive), so
they need the binary.

"Separate machines" are spawned processes that share nothing but Redis and the Airtable
server: each builds its own Connection/Tracker from Settings, and each gets its own
``XDG_CACHE_HOME``, so its local (fallback) limiter file is its own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable.errors import ConfigError, LimiterUnavailableError
from jobtrack_airtable.limiter import LocalLimiter, build_limiter, usage_counts
from jobtrack_airtable.limiter.redis import (
    INSTALL_HINT,
    RedisLimiter,
    redis_key,
)
from jobtrack_airtable.limiter.usage import month_of
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.local.requestlog import LoggedRequest
from jobtrack_airtable.settings import Settings
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY, RetryPolicy
from jobtrack_airtable.worker.tracker import Tracker

from .conftest import TEST_BASE_ID, TEST_TOKEN
from .helpers import (
    PASSWORD,
    RedisServer,
    free_port,
    usage_expected,
    usage_work,
)

CRR = "Client Run Results"
JOBS = "Job Tracking"
BASE_B = "appJobtrackTest02"
JOB_RUN_ID = "250930-141522"
STEADY_RATE = 5 / 1.1  # what the 0.1 s margin leaves of Airtable's 5 requests/s

# ------------------------------------------------------------------ Redis servers


@pytest.fixture
def redis_url(shared_redis_url: str) -> str:
    """The shared Redis, with this suite's keys removed so no test inherits slots or holds."""
    import redis

    client = redis.Redis.from_url(shared_redis_url)
    try:
        bases = (TEST_BASE_ID, BASE_B)
        client.delete(
            *(redis_key(b) for b in bases),
            *(redis_key(f"hold:{b}") for b in (*bases, "*")),
            *(redis_key(f"usage:{b}:{month_of(time.time())}") for b in bases),
        )
    finally:
        client.close()
    return shared_redis_url


# ------------------------------------------------------------------ helpers


@dataclass
class Arrival:
    at: float
    entry: LoggedRequest

    @property
    def base(self) -> str:
        return self.entry.path.split("/")[2]


def record_arrivals(srv: LocalAirtable) -> list[Arrival]:
    """Timestamp every request as the server receives it (the log itself has no times)."""
    arrivals: list[Arrival] = []
    start = srv.request_log.start

    def timed(*args: Any, **kwargs: Any) -> LoggedRequest:
        entry = start(*args, **kwargs)
        arrivals.append(Arrival(time.monotonic(), entry))
        return entry

    srv.request_log.start = timed  # type: ignore[method-assign]
    return arrivals


def busy_rate(arrivals: list[Arrival]) -> tuple[int, float, float]:
    """(requests, busy seconds from first to last arrival, requests/s)."""
    busy = arrivals[-1].at - arrivals[0].at
    return len(arrivals), busy, len(arrivals) / busy


def max_in_one_second(arrivals: list[Arrival]) -> int:
    times = [a.at for a in arrivals]
    return max(sum(1 for t in times if s <= t < s + 1.0) for s in times)


def stored(srv: LocalAirtable, base: str, table: str) -> list[dict[str, Any]]:
    """Rows straight from the server's storage: no request, no budget."""
    _, records = srv.store.snapshot(base, table)
    return [dict(r.fields) for r in records]


def metrics_for(client_id: str) -> dict[str, int]:
    """The exact totals a worker records for ``client_id`` (three ``add`` calls)."""
    n = int(client_id.rsplit("C", 1)[1]) + 1
    return {"profiles_examined": 3 * 2 * n, "profiles_scored": 3 * n, "post_tokens": 3 * 7 * n}


EXPECTED_FIELDS = {
    "profiles_examined": "Profiles Examined for Scoring",
    "profiles_scored": "Profiles Successfully Scored",
    "post_tokens": "Post Scoring Tokens",
}


def assert_client_rows(
    srv: LocalAirtable, base: str, completed: set[str], started: set[str]
) -> None:
    """Every completed client has exactly one Completed row with exact metrics; a client
    whose close was refused has at most one row, still Running, with no metrics; nothing else."""
    by_client: dict[str, list[dict[str, Any]]] = {}
    for fields in stored(srv, base, CRR):
        by_client.setdefault(fields["Client ID"], []).append(fields)
    dupes = {c: len(v) for c, v in by_client.items() if len(v) > 1}
    assert not dupes, f"duplicated rows: {dupes}"
    assert set(by_client) <= started
    assert completed <= set(by_client), f"lost rows: {completed - set(by_client)}"
    for cid, [fields] in by_client.items():
        if cid in completed:
            assert fields["Status"] == "Completed", cid
            for key, value in metrics_for(cid).items():
                assert fields[EXPECTED_FIELDS[key]] == value, (cid, key)
        else:
            # Opened (a propagated job's open writes no Status: it cannot know whether the row
            # ended already) or Running, never closed.
            assert fields.get("Status") in (None, "Running"), cid
            assert not fields.get("Profiles Examined for Scoring"), cid


# ------------------------------------------------------------------ the "machines"


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    url: str
    token: str
    base: str
    redis_url: str
    fallback: str
    cache_dir: str
    clients: tuple[str, ...]
    policy: RetryPolicy
    job_run_id: str = JOB_RUN_ID
    #: The limiter's grace (seconds a failing Redis is retried); None keeps the default.
    grace: float | None = None


def _fleet_worker(spec: WorkerSpec, barrier: Any, results: Any) -> None:
    """One machine of the fleet: its own settings, Connection, Tracker and local limiter
    file; only Redis (and the Airtable server) is shared.  Reports what it completed, the
    error that stopped it (if any) and what it logged."""
    # A per-"machine" user cache dir: the fallback LocalLimiter's file is not shared.
    os.environ["XDG_CACHE_HOME"] = spec.cache_dir
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger("jobtrack_airtable")
    root.setLevel(logging.INFO)
    root.addHandler(Keep())
    completed: list[str] = []
    started: list[str] = []
    error: tuple[str, str] | None = None
    fallback_path = ""
    try:
        settings = Settings(
            _env_file=None,
            api_key=spec.token,
            base_id=spec.base,
            endpoint_url=spec.url,
            limiter_url=spec.redis_url,
            limiter_fallback=spec.fallback,
            flush_interval=3600,
        )
        conn = Connection.from_settings(settings, policy=spec.policy)
        limiter = conn.limiter
        assert isinstance(limiter, RedisLimiter), limiter
        if spec.grace is not None:
            limiter.grace = spec.grace
        if isinstance(limiter.fallback, LocalLimiter):
            fallback_path = str(limiter.fallback.path)
        tracker = Tracker(conn)
        # Start together: spawn start-up times differ by up to seconds.
        barrier.wait(timeout=60)
        for cid in spec.clients:
            started.append(cid)
            with tracker.client(spec.job_run_id, cid) as run:
                for _ in range(3):
                    run.add(**{k: v // 3 for k, v in metrics_for(cid).items()})
                # On the wire before the client counts as completed (group commit would
                # otherwise send it with the next client's open).
                run.close(wait=True)
            completed.append(cid)
        tracker.close()
    except Exception as exc:  # reported to the parent, which asserts on it
        error = (type(exc).__name__, str(exc))
    results.put(
        {
            "index": spec.index,
            "completed": completed,
            "started": started,
            "error": error,
            "fallback_path": fallback_path,
            "limiter_warnings": [
                r.getMessage()
                for r in records
                if r.name == "jobtrack_airtable.limiter.redis" and r.levelno >= logging.WARNING
            ],
            "log_text": "\n".join(r.getMessage() for r in records),
        }
    )


def run_fleet(
    specs: list[WorkerSpec],
    *,
    while_running: Callable[[], None] | None = None,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Run one spawned process per spec (spawn: nothing inherited but the arguments), call
    ``while_running`` meanwhile, and return the workers' reports."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(len(specs))
    procs = [ctx.Process(target=_fleet_worker, args=(spec, barrier, results)) for spec in specs]
    for p in procs:
        p.start()
    try:
        if while_running is not None:
            while_running()
        reports = [results.get(timeout=timeout) for _ in procs]
    except BaseException:
        for p in procs:  # the run failed: leave no machine behind
            p.kill()
            p.join()
        raise
    for p in procs:
        # Reported, so only its exit is left: wait for it (a loaded machine takes seconds to
        # tear an interpreter down; a fixed 10 s was scheduling luck).
        p.join(timeout=timeout)
        assert p.exitcode == 0
    return sorted(reports, key=lambda r: r["index"])


def make_specs(
    srv: LocalAirtable,
    redis_url: str,
    tmp_path: Path,
    *,
    workers: int,
    clients_each: int,
    fallback: str,
    policy: RetryPolicy,
    job_run_id: str = JOB_RUN_ID,
    grace: float | None = None,
) -> list[WorkerSpec]:
    return [
        WorkerSpec(
            index=w,
            url=srv.url,
            token=srv.token,
            base=TEST_BASE_ID,
            redis_url=redis_url,
            fallback=fallback,
            cache_dir=str(tmp_path / f"machine-{w}"),
            clients=tuple(f"M{w}-C{i}" for i in range(clients_each)),
            policy=policy,
            job_run_id=job_run_id,
            grace=grace,
        )
        for w in range(workers)
    ]


# ------------------------------------------------------------------ configuration


def test_redis_url_without_the_package_names_the_extra() -> None:
    # A fresh interpreter where `import redis` fails, as for a user without the extra:
    # the library imports, and only selecting redis:// is refused.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import jobtrack_airtable, jobtrack_airtable.limiter.redis\n"
        "from jobtrack_airtable.errors import ConfigError\n"
        "from jobtrack_airtable.limiter import build_limiter\n"
        "from jobtrack_airtable.settings import Settings\n"
        "try:\n"
        "    build_limiter(Settings(_env_file=None, limiter_url='redis://:pw1@127.0.0.1:6379/0'))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert INSTALL_HINT in out
    assert "pip install 'jobtrack-airtable[redis]'" in out
    assert "pw1" not in out


def test_settings_select_the_redis_limiter_and_never_show_the_password() -> None:
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e '.[test]'")
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
    assert PASSWORD not in repr(Settings(_env_file=None, limiter_url=url))
    local = build_limiter(Settings(_env_file=None, limiter_url=url))
    assert isinstance(local, RedisLimiter)
    assert isinstance(local.fallback, LocalLimiter)  # JOBTRACK_LIMITER_FALLBACK defaults to local
    strict = build_limiter(Settings(_env_file=None, limiter_url=url, limiter_fallback="fail"))
    assert isinstance(strict, RedisLimiter)
    assert strict.fallback is None
    for limiter in (local, strict):
        assert PASSWORD not in repr(limiter)
        assert "redis://:***@127.0.0.1:6379/0" in repr(limiter)
        limiter.close()
    for bad in (f"redis://:{PASSWORD}@127.0.0.1:6379/zero", f"redis://:{PASSWORD}@h:99999/0"):
        with pytest.raises(ConfigError, match="not a valid Redis URL") as info:
            build_limiter(Settings(_env_file=None, limiter_url=bad))
        assert PASSWORD not in str(info.value)


def test_unreachable_redis_fails_closed_or_falls_back_warning_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("redis", reason="the redis package is missing: pip install -e '.[test]'")
    # Nothing listens on this port: no server needed to test the outage paths.
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.INFO, logger="jobtrack_airtable")
    strict = RedisLimiter(url, 5, retry_interval=60, grace=0)
    with pytest.raises(LimiterUnavailableError, match="JOBTRACK_LIMITER_FALLBACK") as info:
        strict.acquire(TEST_BASE_ID)
    assert "redis://:***@127.0.0.1" in str(info.value)
    assert PASSWORD not in str(info.value)
    # Within the retry interval no new connection is attempted: the error says when it will be
    # (no wall-clock bound here: timed assertions flake on a loaded machine).
    with pytest.raises(LimiterUnavailableError, match="next attempt in"):
        strict.acquire(TEST_BASE_ID)
    strict.close()

    caplog.clear()
    fallback = LocalLimiter(5, tmp_path / "fallback.sqlite")
    lenient = RedisLimiter(url, 5, fallback=fallback, retry_interval=60, grace=0)
    for _ in range(5):
        lenient.acquire(TEST_BASE_ID)  # served by the fallback, which has room for all five
    assert not lenient.available
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "falling back to LocalLimiter" in warnings[0].getMessage()
    assert PASSWORD not in caplog.text
    lenient.close()


# ------------------------------------------------------------------ with a real Redis


def test_grants_are_per_base_and_follow_the_window(redis_url: str) -> None:
    import redis

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    # A prefix of this test's own: grants left in the shared Redis by earlier tests (or by
    # another run on the same server) must not count against this window.
    prefix = f"jobtrack-test:{uuid.uuid4().hex}:"
    a = RedisLimiter(redis_url, 5, sleep=sleep, fallback=None, key_prefix=prefix)
    b = RedisLimiter(redis_url, 5, sleep=sleep, fallback=None, key_prefix=prefix)  # another host
    for limiter in (a, b, a, b, a):
        limiter.acquire(TEST_BASE_ID)
    assert waits == []
    for limiter in (a, b, a, b, a):
        limiter.acquire(BASE_B)  # another base: its own budget, no wait
    assert waits == []
    b.acquire(TEST_BASE_ID)  # the 6th on one base waits for the oldest to leave the window
    # It waits at most one 1.05 s window after the oldest release (possibly in two sleeps:
    # Redis measures with the wall clock, time.sleep with the monotonic one).  How much less
    # depends on how slowly this test ran, so no lower bound: the slot count below shows the
    # oldest slot had to be freed for the sixth.
    assert sum(waits) <= a.window + 0.05, waits
    client = redis.Redis.from_url(redis_url)
    try:
        # Never more than 5 in one window; fewer only when this test ran so slowly (a loaded
        # machine) that the oldest slots left the window before this read.
        assert 1 <= client.zcard(redis_key(TEST_BASE_ID, prefix)) <= 5
        assert client.zcard(redis_key(BASE_B, prefix)) <= 5
        ttl_ms = client.pttl(redis_key(TEST_BASE_ID, prefix))
        # Idle keys expire on their own (after the longest a slot can be held).
        assert 0 < ttl_ms <= (a.lease + a.window + 1) * 1000
    finally:
        client.close()
    a.close()
    b.close()


@pytest.mark.slow
def test_redis_is_used_again_when_it_comes_back(
    own_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobtrack_airtable")
    limiter = RedisLimiter(
        own_redis.url, 5, fallback=LocalLimiter(5, tmp_path / "fb.sqlite"), retry_interval=0.3
    )
    limiter.acquire(TEST_BASE_ID)
    assert limiter.available
    own_redis.kill()
    limiter.acquire(TEST_BASE_ID)
    limiter.acquire(TEST_BASE_ID)
    assert not limiter.available
    own_redis.start()  # same port, empty (no persistence): the script must be reloaded too
    time.sleep(0.35)
    limiter.acquire(TEST_BASE_ID)
    assert limiter.available
    import redis

    client = redis.Redis.from_url(own_redis.url)
    assert client.zcard(redis_key(TEST_BASE_ID)) == 1  # the grant went to the new server
    client.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1
    assert PASSWORD not in caplog.text
    limiter.close()


@pytest.mark.slow
def test_three_machines_share_one_base_without_429(
    make_local_airtable: Callable[..., LocalAirtable], redis_url: str, tmp_path: Path
) -> None:
    srv = make_local_airtable(rate_limit=5, penalty_seconds=2.0)
    # A 429 would cost 2 s (not 30) so a failure is reported quickly, not by a timeout.
    policy = DEFAULT_POLICY.scaled(0.07)
    parent = Tracker(
        Connection.from_settings(
            Settings(
                _env_file=None,
                api_key=srv.token,
                base_id=TEST_BASE_ID,
                endpoint_url=srv.url,
                limiter_url=redis_url,
                limiter_fallback="fail",
                flush_interval=3600,
            ),
            policy=policy,
        )
    )
    job = parent.job()
    arrivals = record_arrivals(srv)
    # The workers record client runs of the parent's job.
    specs = make_specs(
        srv,
        redis_url,
        tmp_path,
        workers=3,
        clients_each=8,
        fallback="local",
        policy=policy,
        job_run_id=str(job.run_id),
    )
    reports = run_fleet(specs)
    worker_arrivals = list(arrivals)
    job.complete()
    parent.conn.close()

    assert [r["error"] for r in reports] == [None, None, None]
    # Three separate local limiter files, never used: only Redis coordinated the machines.
    assert len({r["fallback_path"] for r in reports}) == 3
    assert all(str(tmp_path) in r["fallback_path"] for r in reports)
    assert [r["limiter_warnings"] for r in reports] == [[], [], []]
    statuses = [e.status for e in srv.request_log.entries]
    assert statuses.count(429) == 0
    n, busy, rate = busy_rate(worker_arrivals)
    print(
        f"\nfleet: 3 processes, 1 base: {n} requests in {busy:.2f} s = {rate:.2f} requests/s "
        f"(steady-state ceiling {STEADY_RATE:.2f}); max {max_in_one_second(worker_arrivals)} "
        f"in any 1 s; 429s: {statuses.count(429)}"
    )
    assert n == 3 * 8 * 2
    assert rate >= 4.0
    assert max_in_one_second(worker_arrivals) <= 5
    fields = stored(srv, TEST_BASE_ID, JOBS)[0]
    assert fields["Clients Processed"] == 24
    assert fields["Total Profiles Examined"] == sum(
        metrics_for(c)["profiles_examined"] for s in specs for c in s.clients
    )


@pytest.mark.slow
def test_two_bases_each_get_their_own_five_per_second(
    make_local_airtable: Callable[..., LocalAirtable], redis_url: str
) -> None:
    # One server, two bases: the server limits each base separately, as Airtable does.
    srv = make_local_airtable(rate_limit=5, penalty_seconds=2.0)
    srv.add_base(BASE_B)
    arrivals = record_arrivals(srv)
    errors: list[BaseException] = []

    def machine(base: str, clients: list[str]) -> None:
        settings = Settings(
            _env_file=None,
            api_key=TEST_TOKEN,
            base_id=base,
            endpoint_url=srv.url,
            limiter_url=redis_url,
            limiter_fallback="fail",
            flush_interval=3600,
        )
        try:
            conn = Connection.from_settings(settings, policy=DEFAULT_POLICY.scaled(0.07))
            with Tracker(conn) as tracker:  # leaving it writes the last close, closes conn
                for cid in clients:
                    with tracker.client(JOB_RUN_ID, cid) as run:
                        run.add(profiles_examined=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=machine, args=(base, [f"T{t}-C{i}" for i in range(6)]))
        for base in (TEST_BASE_ID, BASE_B)
        for t in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    assert [e.status for e in srv.request_log.entries].count(429) == 0
    total = busy_rate(arrivals)
    report = [f"\nfleet: 2 bases together {total[0]} requests, {total[2]:.2f} requests/s"]
    for base in (TEST_BASE_ID, BASE_B):
        mine = [a for a in arrivals if a.base == base]
        n, busy, rate = busy_rate(mine)
        report.append(f"  {base}: {n} requests in {busy:.2f} s = {rate:.2f} requests/s")
        assert n == 2 * 6 * 2
        assert rate >= 4.0
        assert max_in_one_second(mine) <= 5
        assert len(stored(srv, base, CRR)) == 12
    print("\n".join(report))
    # Together well above one base's limit: the two bases do not share a budget.
    assert total[2] > 7.0


def test_a_429_holds_the_base_for_the_whole_fleet(redis_url: str) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    prefix = f"jobtrack-test:{uuid.uuid4().hex}:"
    throttled = RedisLimiter(redis_url, 5, fallback=None, key_prefix=prefix, sleep=sleep)
    other = RedisLimiter(redis_url, 5, fallback=None, key_prefix=prefix, sleep=sleep)
    slot = throttled.reserve(TEST_BASE_ID)
    penalised = time.time()  # the hold is counted from the release, which comes after
    throttled.release(slot, penalty=0.5)
    other.acquire(BASE_B)  # another base is not held
    assert waits == []
    other.acquire(TEST_BASE_ID)  # another machine waits the penalty out
    assert waits
    # Redis counts in whole microseconds: a hair of rounding, never a scheduling margin.
    assert time.time() - penalised >= 0.5 - 1e-3
    # One hold: once it is over, the base's next slot is not held again.
    waits.clear()
    other.acquire(TEST_BASE_ID)
    assert waits == []
    throttled.close()
    other.close()


@pytest.mark.slow
def test_a_redis_that_lost_its_state_holds_every_base_for_a_window(
    own_redis: RedisServer,
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    limiter = RedisLimiter(own_redis.url, 5, fallback=None, sleep=sleep)
    for _ in range(5):
        limiter.acquire(TEST_BASE_ID)
    waits.clear()  # a just-started Redis holds its first calls too
    own_redis.kill()
    restarted = time.time()
    own_redis.start()  # empty: the five slots are forgotten
    limiter.acquire(BASE_B)
    granted = time.time()
    # Served by Redis (no fallback exists), after the grace retries and the hold: the
    # forgotten grants may have been for any base, so every base waits one window + quiet
    # from Redis's start (which its uptime gives to the second: hence no quiet here).
    assert limiter.available
    assert granted - restarted >= limiter.window + limiter.retry_interval
    # One hold for every base: once over, the base whose grants were forgotten is free.
    waits.clear()
    limiter.acquire(TEST_BASE_ID)
    assert waits == []
    limiter.close()


#: A short fallback retry interval for tests of restart holds (the hold includes it), so each
#: does not wait the default 5 s on every fresh Redis.
QUICK_RETRY = 0.5


def test_a_newcomer_first_after_an_empty_restart_waits_the_forgotten_window(
    own_redis: RedisServer,
) -> None:
    # The worker that saw the old Redis is idle; one that starts after the restart makes the
    # first call.  It knows no earlier state, yet must not take the empty Redis for "no
    # grants": the hold is decided in Redis, not by what the caller remembers.
    old = RedisLimiter(own_redis.url, 5, fallback=None, retry_interval=QUICK_RETRY)
    for _ in range(5):
        old.acquire(TEST_BASE_ID)
    own_redis.kill()
    restarted = time.time()
    own_redis.start()
    newcomer = RedisLimiter(own_redis.url, 5, fallback=None, retry_interval=QUICK_RETRY)
    slot = newcomer.reserve(TEST_BASE_ID)
    granted = time.time()
    newcomer.release(slot)
    # Held from the restart for a window + quiet (counted from Redis's start, which the
    # uptime gives to the second): the forgotten grants have left the window first.
    assert granted - restarted >= newcomer.window + newcomer.retry_interval
    assert granted - restarted <= newcomer.window + newcomer.quiet + newcomer.retry_interval + 1.5
    old.close()
    newcomer.close()


def test_a_restart_that_loads_an_older_snapshot_holds_every_base(
    own_redis: RedisServer,
) -> None:
    # Persistence on: Redis comes back with the keys of its last snapshot -- the epoch among
    # them -- but without the grants made since.  The epoch names the run, so it is stale.
    import redis

    limiter = RedisLimiter(own_redis.url, 5, fallback=None, retry_interval=QUICK_RETRY)
    limiter.acquire(BASE_B)
    client = redis.Redis.from_url(own_redis.url)
    client.save()  # the snapshot: before the five grants below
    client.close()
    # The first call's own hold (a fresh Redis) is long over.
    time.sleep(limiter.window + limiter.quiet + limiter.retry_interval)
    for _ in range(5):
        limiter.acquire(TEST_BASE_ID)
    own_redis.kill()
    own_redis.start()  # loads dump.rdb from its working directory
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    newcomer = RedisLimiter(
        own_redis.url, 5, fallback=None, sleep=sleep, retry_interval=QUICK_RETRY
    )
    newcomer.acquire(TEST_BASE_ID)
    restart_hold = newcomer.window + newcomer.quiet + newcomer.retry_interval
    assert newcomer.window + newcomer.retry_interval < sum(waits) <= restart_hold + 0.1, waits
    limiter.close()
    newcomer.close()


def test_a_redis_user_without_info_is_warned_once(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    admin = redis.Redis.from_url(own_redis.url)
    admin.acl_setuser(
        "worker", enabled=True, passwords=["+w0rker-pass"], keys=["*"],
        commands=["+@all", "-info"],
    )  # fmt: skip
    admin.close()
    url = f"redis://worker:w0rker-pass@127.0.0.1:{own_redis.port}/0"
    caplog.set_level(logging.WARNING, logger="jobtrack_airtable")
    limiter = RedisLimiter(url, 5, fallback=None, retry_interval=QUICK_RETRY)
    for _ in range(3):
        limiter.acquire(TEST_BASE_ID)  # still limited; only snapshot restarts go unseen
    warnings = [r.getMessage() for r in caplog.records if "refuses INFO" in r.getMessage()]
    assert len(warnings) == 1
    assert "w0rker-pass" not in caplog.text
    limiter.close()


def test_the_earlier_versions_epoch_key_is_left_to_them(own_redis: RedisServer) -> None:
    # During a rolling upgrade, workers of the earlier version still run their script,
    # which does arithmetic on the "epoch" key: this version must not write it.
    import redis

    client = redis.Redis.from_url(own_redis.url)
    client.set(redis_key("epoch"), "1700000000000000")
    limiter = RedisLimiter(own_redis.url, 5, fallback=None, retry_interval=QUICK_RETRY)
    limiter.acquire(TEST_BASE_ID)
    assert client.get(redis_key("epoch")) == b"1700000000000000"
    assert client.get(redis_key("run")) == client.info("server")["run_id"].encode()
    client.close()
    limiter.close()


@pytest.mark.slow
def test_a_restart_longer_than_the_grace_waits_for_workers_on_their_fallback(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    # One machine.  An old worker falls back to the machine's file during an outage longer
    # than the grace and keeps granting there until its next probe (retry_interval); a
    # worker started after the restart knows nothing of that.  The restart hold must cover
    # it, or the two stores grant 5 each in one second.  (Found by attack: 11-17 x 429.)
    fallback = tmp_path / "fallback.sqlite"
    old = RedisLimiter(own_redis.url, 5, fallback=LocalLimiter(5, fallback))
    try:
        old.acquire(BASE_B)  # waits out the fresh Redis's own start hold
        own_redis.kill()
        old.acquire(BASE_B)  # the grace runs out: on the fallback, next probe in 5 s
        assert not old.available
        own_redis.start()
        newcomer = RedisLimiter(own_redis.url, 5, fallback=LocalLimiter(5, fallback))
        stamps: list[float] = []
        for limiter in [newcomer] * 5 + [old] * 5:
            limiter.acquire(TEST_BASE_ID)
            stamps.append(time.time())
        ordered = sorted(stamps)
        assert all(b - a >= 1.0 for a, b in zip(ordered, ordered[5:], strict=False)), [
            round(s - ordered[0], 3) for s in ordered
        ]
        newcomer.close()
    finally:
        old.close()


def test_a_redis_restart_mid_run_costs_no_429(
    make_local_airtable: Callable[..., LocalAirtable], own_redis: RedisServer, tmp_path: Path
) -> None:
    # A restart (no persistence: Redis comes back empty) while three machines share a base.
    # Before: each machine fell back to its own limiter (3 x 5/s), then Redis forgot the
    # window -- 429s and their penalty.  Now: the grace rides out the restart and the
    # restart hold waits out the forgotten window.  The grace is longer than any restart a
    # loaded machine takes (the default 2 s met a 1.5 s restart plus a slow start-up under
    # load); what a restart longer than the grace costs is the next tests' subject.
    srv = make_local_airtable(rate_limit=5, penalty_seconds=2.0)
    specs = make_specs(
        srv,
        own_redis.url,
        tmp_path,
        workers=3,
        clients_each=8,
        fallback="local",
        policy=DEFAULT_POLICY.scaled(0.07),
        grace=60.0,
    )
    kill = _kill_when_each_machine_has_completed_a_client(srv, own_redis, 3)

    def restart() -> None:
        kill()
        time.sleep(1.5)  # a real restart takes a moment (shutdown, start-up, loading)
        own_redis.start()

    reports = run_fleet(specs, while_running=restart)
    for r in reports:
        assert r["error"] is None, r["error"]
        assert r["limiter_warnings"] == []  # never fell back to a per-machine limiter
    all_clients = {c for s in specs for c in s.clients}
    assert_client_rows(srv, TEST_BASE_ID, completed=all_clients, started=all_clients)
    statuses = [e.status for e in srv.request_log.entries]
    print(f"\nfleet, Redis restarted mid-run: {len(statuses)} requests, {statuses.count(429)} 429s")
    assert statuses.count(429) == 0


def test_usage_is_counted_exactly_for_the_fleet_in_redis(
    make_local_airtable: Callable[..., LocalAirtable], redis_url: str
) -> None:
    srv = make_local_airtable(rate_limit=5, penalty_seconds=0.3)
    settings = srv.settings(limiter_url=redis_url, limiter_fallback="fail", rate_limit=5)
    usage_work(srv, settings)
    usage = usage_counts(settings)
    expected = usage_expected(srv)
    print(f"\nfleet usage {usage.month}: {dict(usage.counts)}; server saw {expected}")
    assert usage.total == expected["total"]
    assert (usage.reads, usage.writes) == (expected["reads"], expected["writes"])
    assert usage.get("rate_limited") == expected["rate_limited"] == 1
    assert usage.get("retries") == expected["retries"] == 2
    assert usage.get("sync_reads") == 2


# ------------------------------------------------------------------ Redis dies mid-run


def _kill_when_each_machine_has_completed_a_client(
    srv: LocalAirtable, server: RedisServer, machines: int
) -> Callable[[], None]:
    """Kill Redis once every machine has completed a client *and* has since reserved again, so
    each one's last call to Redis counted all ``machines`` sharing the base.

    The fair share a machine falls back to is what Redis told it at its last call; a machine
    whose calls all came before the others joined (or that never reached Redis) falls back at
    the full rate, as documented.  The kill used to follow a 30 s deadline whether or not the
    machines had got that far: the deadline ran from the spawn, and on a loaded machine (load
    20-40) three spawned interpreters took longer than that to start, so Redis died before
    they had reserved at all and 3 x 5/s earned 24-26 429s.  So this waits on the rows however
    long that takes; the bound only stops a hung run, and fails rather than killing early.
    """
    names = [f"M{w}" for w in range(machines)]

    def rows() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        opened: dict[str, set[str]] = {n: set() for n in names}
        completed: dict[str, set[str]] = {n: set() for n in names}
        for f in stored(srv, TEST_BASE_ID, CRR):
            cid = f["Client ID"]
            opened[cid.split("-")[0]].add(cid)
            if f.get("Status") == "Completed":
                completed[cid.split("-")[0]].add(cid)
        return opened, completed

    def wait(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 600
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"the fleet never got there: {what}; rows {rows()[0]}")
            time.sleep(0.02)

    def wait_then_kill() -> None:
        wait(lambda: all(rows()[1].values()), "every machine completed a client")
        # Every machine has reserved by now.  A machine's clients run one after another, so
        # its second row that is new from here was sent by a request reserved after this
        # point: that reserve, and every later one, saw all the machines.
        seen = rows()[0]
        wait(
            lambda: all(len(now - seen[n]) >= 2 for n, now in rows()[0].items()),
            "every machine opened two more clients",
        )
        server.kill()

    return wait_then_kill


@pytest.mark.parametrize("outage", ["for good", pytest.param("for 4 s", marks=pytest.mark.slow)])
def test_redis_killed_mid_run_fallback_keeps_workers_going_without_429(
    make_local_airtable: Callable[..., LocalAirtable],
    own_redis: RedisServer,
    tmp_path: Path,
    outage: str,
) -> None:
    # Before: during the outage each machine limited only itself (3 x 5/s) and the fleet
    # earned 13-18 429s.  Now each machine falls back to its fair share (5/s divided by the
    # 3 machines Redis saw sharing the base), and on Redis's return keeps to that share too
    # until every machine is back on Redis.
    srv = make_local_airtable(rate_limit=5, penalty_seconds=2.0)
    policy = replace(DEFAULT_POLICY.scaled(0.07), max_attempts=40, max_total_seconds=60)
    specs = make_specs(
        srv, own_redis.url, tmp_path, workers=3, clients_each=8, fallback="local", policy=policy
    )
    kill = _kill_when_each_machine_has_completed_a_client(srv, own_redis, 3)

    def kill_and_maybe_restart() -> None:
        kill()
        if outage == "for 4 s":
            time.sleep(4.0)
            own_redis.start()

    reports = run_fleet(specs, while_running=kill_and_maybe_restart, timeout=120)
    for r in reports:
        assert r["error"] is None, r["error"]
        assert r["completed"] == list(specs[r["index"]].clients)
        # Warned exactly once each, naming the masked URL and the fallback.
        assert len(r["limiter_warnings"]) == 1, r["limiter_warnings"]
        assert "unreachable" in r["limiter_warnings"][0]
        assert "falling back to LocalLimiter" in r["limiter_warnings"][0]
        assert "redis://:***@127.0.0.1" in r["limiter_warnings"][0]
        assert PASSWORD not in r["log_text"]
    all_clients = {c for s in specs for c in s.clients}
    assert_client_rows(srv, TEST_BASE_ID, completed=all_clients, started=all_clients)
    statuses = [e.status for e in srv.request_log.entries]
    print(
        f"\nfleet, Redis killed {outage}, fallback=local: {len(statuses)} requests, "
        f"{statuses.count(429)} 429s, all 24 client rows exact"
    )
    assert statuses.count(429) == 0


@pytest.mark.slow
def test_redis_killed_mid_run_fail_closed_stops_workers_clearly(
    make_local_airtable: Callable[..., LocalAirtable], own_redis: RedisServer, tmp_path: Path
) -> None:
    srv = make_local_airtable(rate_limit=5, penalty_seconds=2.0)
    specs = make_specs(
        srv,
        own_redis.url,
        tmp_path,
        workers=3,
        clients_each=10,
        fallback="fail",
        policy=DEFAULT_POLICY.scaled(0.07),
    )
    reports = run_fleet(
        specs, while_running=_kill_when_each_machine_has_completed_a_client(srv, own_redis, 3)
    )
    completed: set[str] = set()
    started: set[str] = set()
    for r in reports:
        # The error reaches the caller out of the `with tracker.client(...)` block.
        assert r["error"] is not None, "a worker finished although Redis was killed"
        kind, message = r["error"]
        assert kind == "LimiterUnavailableError"
        assert "redis://:***@127.0.0.1" in message
        assert "JOBTRACK_LIMITER_FALLBACK=fail" in message
        assert PASSWORD not in message
        assert PASSWORD not in r["log_text"]
        assert 1 <= len(r["completed"]) < len(specs[r["index"]].clients)
        completed |= set(r["completed"])
        started |= set(r["started"])
    assert [e.status for e in srv.request_log.entries].count(429) == 0
    # Nothing lost, nothing doubled: completed clients exact, the interrupted one (if its
    # open got through) still Running with no metrics, no row for clients never started.
    assert_client_rows(srv, TEST_BASE_ID, completed=completed, started=started)


@pytest.mark.slow
def test_fail_closed_surfaces_from_the_with_block_and_close_can_be_retried(
    local_airtable: LocalAirtable, own_redis: RedisServer, tmp_path: Path
) -> None:
    # The documented contract (docs/fleet.md): with JOBTRACK_LIMITER_FALLBACK=fail a refused
    # write raises out of the tracker call -- and out of a `with` block whose body succeeded
    # -- while the run keeps its totals, so closing it again once Redis is back loses nothing.
    limiter = RedisLimiter(own_redis.url, 5, fallback=None, retry_interval=0.2)
    settings = local_airtable.settings(flush_interval=3600)
    tracker = Tracker(Connection.from_settings(settings, limiter=limiter))
    with (
        pytest.raises(LimiterUnavailableError) as info,
        tracker.client(JOB_RUN_ID, "Guy-Wilson") as run,
    ):
        run.add(profiles_examined=10, profile_tokens=900)
        own_redis.kill()
        run.close(wait=True)  # on the wire now (else: with the next group commit)
    assert PASSWORD not in str(info.value)
    [row] = stored(local_airtable, TEST_BASE_ID, CRR)
    assert "Profiles Examined for Scoring" not in row  # opened before the outage; close refused
    own_redis.start()
    time.sleep(0.25)
    tracker.flush()  # the close is still pending: written now
    [row] = stored(local_airtable, TEST_BASE_ID, CRR)
    assert row["Status"] == "Completed"
    assert row["Profiles Examined for Scoring"] == 10
    assert row["Profile Scoring Tokens"] == 900
    tracker.conn.close()


@pytest.mark.slow
def test_fail_closed_timed_flush_in_add_does_not_raise_or_double_count(
    local_airtable: LocalAirtable, own_redis: RedisServer
) -> None:
    # add() triggers a timed flush; when the limiter refuses it, the increment is already in
    # the totals, so raising would invite a retry that counts it twice.  It stays pending.
    limiter = RedisLimiter(own_redis.url, 5, fallback=None, retry_interval=0.2)
    settings = local_airtable.settings(flush_interval=0)
    tracker = Tracker(Connection.from_settings(settings, limiter=limiter))
    run = tracker.client(JOB_RUN_ID, "Guy-Wilson")
    run.add(profiles_examined=1)
    own_redis.kill()
    run.add(profiles_examined=2)  # the timed flush is refused: no exception
    assert run.totals.profiles_examined == 3
    own_redis.start()
    time.sleep(0.25)
    run.close(wait=True)
    [row] = stored(local_airtable, TEST_BASE_ID, CRR)
    assert row["Profiles Examined for Scoring"] == 3
    assert row["Status"] == "Completed"
    tracker.conn.close()


def test_redis_locks_are_exclusive(redis_url: str) -> None:
    from jobtrack_airtable.limiter.redis import RedisLimiter

    prefix = f"jobtrack-test:{uuid.uuid4().hex}:"
    a = RedisLimiter(redis_url, 5, fallback=None, key_prefix=prefix)
    b = RedisLimiter(redis_url, 5, fallback=None, key_prefix=prefix)
    assert a.try_lock(["k1", "k2"], "tokA", 10)
    assert not b.try_lock(["k2"], "tokB", 10)
    a.unlock(["k1", "k2"], "tokA")
    assert b.try_lock(["k2"], "tokB", 10)
    a.close()
    b.close()
