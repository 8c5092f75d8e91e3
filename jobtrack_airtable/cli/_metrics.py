"""``metrics``: the base's health in Prometheus' text format (:mod:`..ops.prometheus`), written
for node-exporter's textfile collector or served for scraping."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._core import _Typer, app, errors_to_exit, open_base, state_of

if TYPE_CHECKING:
    from ..admin.ops.prometheus import BaseMetrics
    from ..settings import Settings
    from ..transport.repository import Repository

metrics_app = _Typer(
    help="Prometheus metrics computed from the base (pip install 'jobtrack-airtable[prometheus]')."
)
app.add_typer(metrics_app, name="metrics")


def _read(repo: Repository, settings: Settings, embedded: bool) -> BaseMetrics:
    from ..admin.ops.prometheus import read_base_metrics
    from ..timeutil import utcnow

    return read_base_metrics(repo, settings, now=utcnow(), count_calls=not embedded)


@metrics_app.callback(invoke_without_command=True)
def metrics(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            help="Write to this file atomically (node-exporter's textfile collector: a "
            "*.prom file in its --collector.textfile.directory); default stdout.",
        ),
    ] = None,
) -> None:
    """Write the metrics once (⌈J/100⌉ + ⌈C/100⌉ requests)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..admin.ops.prometheus import exposition, write_textfile
    from ..transport.repository import Repository

    state = state_of(ctx)
    with errors_to_exit(state):
        with open_base(state) as backend:
            data = _read(Repository(backend.conn), state.settings, backend.embedded is not None)
        if out is not None:
            write_textfile(out, data)
        else:
            sys.stdout.write(exposition(data).decode("utf-8"))


class _Cached:
    """A collector computing the metrics at most once per ``interval``: every scrape costs
    ⌈J/100⌉ + ⌈C/100⌉ requests otherwise, and several Prometheus servers may scrape."""

    def __init__(self, compute: Any, interval: float) -> None:
        self._compute, self._interval = compute, interval
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._families: list[Any] = []

    def collect(self) -> Any:
        from ..admin.ops.prometheus import families

        with self._lock:
            if time.monotonic() - self._at >= self._interval:
                self._families = families(self._compute())
                self._at = time.monotonic()
            return list(self._families)


@metrics_app.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 9464,
    min_interval: Annotated[
        str,
        typer.Option(
            "--min-interval",
            help="Recompute at most this often (30s, 5m); scrapes in between get the last figures.",
        ),
    ] = "30s",
) -> None:
    """Serve /metrics on 127.0.0.1:PORT until interrupted."""
    from ..durations import parse_duration
    from ..transport.repository import Repository

    state = state_of(ctx)
    with errors_to_exit(state):
        # The extra's message (MissingExtraError) before anything starts.
        from prometheus_client import CollectorRegistry, start_http_server

        from ..admin.ops import prometheus  # noqa: F401

        interval = parse_duration(min_interval, what="--min-interval").total_seconds()
        with open_base(state) as backend:
            repo = Repository(backend.conn)
            embedded = backend.embedded is not None
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Cached(lambda: _read(repo, state.settings, embedded), interval))
            server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
            stop = threading.Event()

            def _stop(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            sys.stderr.write(f"Serving metrics on http://127.0.0.1:{port}/metrics\n")
            sys.stderr.flush()
            stop.wait()
            server.shutdown()
            thread.join(timeout=10)
