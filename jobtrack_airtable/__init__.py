"""jobtrack-airtable: record batch job runs of a multi-tenant lead-scoring service in Airtable,
correctly, idempotently and within Airtable's rate limits.

The top level holds what a worker needs; everything else lives in its module (exceptions in
:mod:`jobtrack_airtable.errors`, the repository in
:mod:`jobtrack_airtable.transport.repository`, run ID helpers in
:mod:`jobtrack_airtable.run_ids`, the local server in :mod:`jobtrack_airtable.local`).  Each
public name, with an example:

:class:`Tracker` — the entry point: starts jobs, opens client runs of propagated jobs, writes
what is pending and closes its HTTP session when it is closed.

>>> from jobtrack_airtable import Tracker                         # doctest: +SKIP
>>> with Tracker.from_env() as tracker:                           # doctest: +SKIP
...     with tracker.job(stream=1) as job:
...         with job.client("Guy-Wilson") as run:
...             run.add(profiles_examined=10, profiles_scored=8, profile_tokens=4200)

:class:`AsyncTracker` — the same for asyncio programs: every call that may send a request
is awaited (run on the tracker's own threads), ``run.add/set/note`` stay plain calls.

>>> async with AsyncTracker.from_env() as tracker:                # doctest: +SKIP
...     async with tracker.job(stream=1) as job:
...         async with job.client("Guy-Wilson") as run:
...             run.add(profiles_examined=10)

:class:`Job` — a started or attached job (``tracker.job()``, ``tracker.attach_job(run_id)``);
leaving its ``with`` block aggregates the client rows and completes it.

>>> job = tracker.attach_job("250930-141522")                     # doctest: +SKIP
>>> job.complete().status                                         # doctest: +SKIP
<Status.COMPLETED: 'Completed'>

:class:`ClientRun` — one client's run (``job.client(cid)``, ``tracker.client(run_id, cid)``);
``add``/``set``/``note``/``close``, group-committed with the tracker's other runs.

>>> run = job.client("Guy-Wilson")                                # doctest: +SKIP
>>> run.add(posts_examined=4); run.close(wait=True).status        # doctest: +SKIP
<Status.COMPLETED: 'Completed'>

:class:`Status` — the four statuses.

>>> Status("No Leads To Score").is_terminal
True

:class:`BaseRunId` / :class:`ClientRunId` — the two kinds of run ID, distinct types.

>>> ClientRunId("250930-141522-Guy-Wilson").base
BaseRunId('250930-141522')

:class:`ClientMetrics` — validated metric values of a client run.

>>> ClientMetrics.of(profiles_examined="12").profiles_examined
12

:class:`JobRow` / :class:`ClientRunRow` — rows as read back (``tracker.find_job(run_id)``,
``tracker.client_runs(run_id)``, ``job.refresh()``), tolerant of bad stored data.

>>> tracker.find_job("250930-141522").aggregates["clients_processed"]  # doctest: +SKIP
3

:class:`Settings` — configuration from the environment and ``.env``.

>>> Settings(_env_file=None, flush_interval=2).flush_interval
2.0

:class:`Connection` — the pyairtable ``Api``, base, schema, limiter and retry policy a
tracker talks through.

>>> tracker = Tracker(Connection.from_env(), flush_interval=1.0)  # doctest: +SKIP

``__version__`` — the package version.

>>> isinstance(__version__, str)
True
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .metrics import ClientMetrics
    from .rows import ClientRunRow, JobRow
    from .run_ids import BaseRunId, ClientRunId
    from .settings import Settings
    from .statuses import Status
    from .transport.client import Connection
    from .worker.aio import AsyncTracker
    from .worker.tracker import ClientRun, Job, Tracker

# Lazy (PEP 562): importing the package, or a light submodule such as the CLI's, must not pull
# in pyairtable and requests until a name that needs them is used (``--help`` stays fast).
_LAZY: dict[str, str] = {
    "Connection": "transport.client",
    "ClientMetrics": "metrics",
    "ClientRunRow": "rows",
    "JobRow": "rows",
    "BaseRunId": "run_ids",
    "ClientRunId": "run_ids",
    "Settings": "settings",
    "Status": "statuses",
    "ClientRun": "worker.tracker",
    "Job": "worker.tracker",
    "Tracker": "worker.tracker",
    "AsyncTracker": "worker.aio",
}

__version__ = "0.1.0"

__all__ = [
    "AsyncTracker",
    "BaseRunId",
    "ClientMetrics",
    "ClientRun",
    "ClientRunId",
    "ClientRunRow",
    "Connection",
    "Job",
    "JobRow",
    "Settings",
    "Status",
    "Tracker",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
