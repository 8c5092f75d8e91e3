"""Workloads on a simulated clock (issue 19): the request cost of the outbox's cadence.

A tracker built with ``wall=`` has no background thread; the workload advances the clock and
calls ``tracker.poll()`` every 5 simulated seconds, as the group commit's thread would, so a
simulated day runs in seconds and its request count does not depend on timing.  Requests
are counted from the local server's request log.

* :func:`busy_worker` -- one client at a time, 10 minutes each with a chunk every 30 s,
  jobs of 50 clients back to back;
* :func:`big_job` -- one job of N quick clients (open, one chunk, close; 20 a second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jobtrack_airtable.testing import TrackingServer
from jobtrack_airtable.transport.client import Connection
from jobtrack_airtable.transport.recovery import DEFAULT_POLICY
from jobtrack_airtable.worker.tracker import Tracker

#: Seconds between the commit thread's wake-ups in the simulation.
TICK = 5.0


@dataclass
class CadenceReport:
    requests: int
    clients: int
    #: The longest an open or a close of a client run took to show in Airtable (s).
    slowest_visible: float
    simulated_seconds: float

    @property
    def per_day(self) -> float:
        return self.requests * 86_400 / self.simulated_seconds


class _Sim:
    def __init__(self, srv: TrackingServer, **settings: Any) -> None:
        self.now = 1_000_000.0
        options: dict[str, Any] = {"rate_limit": 0, **settings}
        conn = Connection.from_settings(srv.settings(**options), policy=DEFAULT_POLICY.scaled(0.01))
        self.tracker = Tracker(conn, wall=lambda: self.now)
        self.waiting: list[tuple[Any, float]] = []  # (run, since): an open/close not yet shown
        self.slowest = 0.0

    def tick(self, seconds: float = TICK) -> None:
        self.now += seconds
        self.tracker.poll()
        for run, since in list(self.waiting):
            if not run.urgent():
                self.waiting.remove((run, since))
                self.slowest = max(self.slowest, self.now - since)


def busy_worker(
    srv: TrackingServer, *, hours: float = 24.0, budget: int = 10_000, flush_interval: float = 5.0
) -> CadenceReport:
    """A continuously busy worker for ``hours`` simulated hours (SPEC §4)."""
    sim = _Sim(srv, request_budget=budget, flush_interval=flush_interval)
    tracker = sim.tracker
    start = sim.now
    end = start + hours * 3600
    mark = srv.request_log.total
    clients = 0
    while sim.now < end:
        with tracker.job() as job:
            for i in range(50):
                run = job.client(f"C{i}")
                sim.waiting.append((run, sim.now))
                for _ in range(20):  # 10 minutes, a chunk every 30 s
                    for _ in range(6):
                        sim.tick()
                    run.add(profiles_examined=1, profile_tokens=100)
                run.close()
                sim.waiting.append((run, sim.now))
                clients += 1
                if sim.now >= end:
                    break
        sim.waiting.clear()  # the completion wrote them
    requests = srv.request_log.total - mark
    tracker.close()
    return CadenceReport(requests, clients, sim.slowest, sim.now - start)


def big_job(
    srv: TrackingServer,
    *,
    clients: int = 5000,
    per_second: int = 20,
    flush_interval: float = 5.0,
    exclusive: bool = False,
) -> tuple[CadenceReport, int]:
    """One job of ``clients`` quick clients; also the requests of its completion
    (``exclusive``: the job is started with ``tracker.job(exclusive=True)``)."""
    sim = _Sim(srv, flush_interval=flush_interval)
    tracker = sim.tracker
    start = sim.now
    mark = srv.request_log.total
    job = tracker.job(exclusive=exclusive)
    for i in range(clients):
        run = job.client(f"C{i:05d}")
        sim.waiting.append((run, sim.now))
        run.add(profiles_examined=2, profile_tokens=100)
        run.close()
        if (i + 1) % per_second == 0:
            sim.tick(1.0)
    while tracker._commit.pending:
        sim.tick()
    before_completion = srv.request_log.total - mark
    job.complete()
    completion = srv.request_log.total - mark - before_completion
    tracker.close()
    return CadenceReport(before_completion, clients, sim.slowest, sim.now - start), completion


def big_job_floor(clients: int) -> int:
    """The fewest requests a job of ``clients`` can cost before completion: its start (2)
    and each client's final state once, 10 per request."""
    return 2 + math.ceil(clients / 10)


def big_job_completion(clients: int, *, exclusive: bool) -> int:
    """What the completion of that job costs: a read of the job row and its write, plus
    the read-back of the client rows (100 a page) unless the job is exclusive and every
    row's acknowledged state is known."""
    return 2 + (0 if exclusive else math.ceil(clients / 100))
