"""Our own stack frames between a worker's call and the HTTP adapter's ``send``.

    .venv/bin/python benchmarks/frames.py

One job with one client run against a local server (rate limit off): the run records
metrics and is closed, which writes its row once.  A profile hook sees every call of
``requests``' ``HTTPAdapter.send`` in any thread and counts the frames of the stack below it
that live in ``jobtrack_airtable`` (pyairtable's, requests' and the standard library's are not
ours).  A group-committed write goes out from the tracker's flush thread, so the count starts
at that thread's entry.  Prints one line per request and ends with
``client_run_write_frames=N`` for the write of the client row.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests.adapters

import jobtrack_airtable
from jobtrack_airtable import Tracker
from jobtrack_airtable.testing import TrackingServer

PACKAGE = str(Path(jobtrack_airtable.__file__).resolve().parent)
SEND = requests.adapters.HTTPAdapter.send.__code__


def ours(frame: FrameType | None) -> list[str]:
    """The names of the frames below ``frame`` that are in the package, innermost first."""
    names = []
    while frame is not None:
        if frame.f_code.co_filename.startswith(PACKAGE):
            names.append(f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}")
        frame = frame.f_back
    return names


def main() -> int:
    seen: list[tuple[str, str, list[str]]] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is SEND:
            request = frame.f_locals.get("request")
            method = getattr(request, "method", "?")
            url = getattr(request, "url", "?")
            seen.append((method, url.split("?")[0].rsplit("/", 1)[-1], ours(frame.f_back)))

    with TrackingServer(rate_limit=None) as server:
        tracker = Tracker.from_settings(server.settings(), flush_interval=60.0)
        with tracker, tracker.job(stream=1) as job:
            run = job.client("Guy-Wilson")
            run.add(profiles_examined=10, profiles_scored=8, profile_tokens=4200)
            threading.setprofile(profile)
            sys.setprofile(profile)
            try:
                run.close(wait=True)
            finally:
                sys.setprofile(None)
                threading.setprofile(None)  # type: ignore[arg-type]
    for method, table, names in seen:
        print(f"{method} {table}: {len(names)} frames: {' <- '.join(names)}")
    writes = [names for method, _, names in seen if method in ("POST", "PATCH")]
    print(f"client_run_write_frames={len(writes[0]) if writes else 0}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
