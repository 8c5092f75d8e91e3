"""Real Prometheus servers for the tests: Debian's ``prometheus`` (scrapes a target, answers
its HTTP API) and ``prometheus-pushgateway``, each on a free loopback port with its own data
directory, stopped (by its own process ID) on exit.  :func:`find` returns ``None`` when the
binary is missing, and the tests skip saying so (``.ci/prometheus.sh`` installs both)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

#: Deadlines for something to happen on a loaded machine, never assertions about speed.
START_TIMEOUT = 60.0
_T = TypeVar("_T")


def find(name: str) -> str | None:
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def wait_for(what: str, probe: Callable[[], _T | None], timeout: float = START_TIMEOUT) -> _T:
    """Poll ``probe`` until it returns something (exceptions count as "not yet")."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if (found := probe()) is not None:
                return found
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector through the HTTP API."""
        q = urllib.parse.urlencode({"query": expr})
        doc = json.loads(get(f"{self.url}/api/v1/query?{q}"))
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])


@contextlib.contextmanager
def _process(args: list[str], ready: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(ready, lambda: True if get(ready) is not None else None)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


@contextlib.contextmanager
def running_prometheus(target: str, data_dir: Path, binary: str) -> Iterator[Prometheus]:
    """Prometheus scraping ``host:port`` every second."""
    port = free_port()
    config = data_dir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: jobtrack\n    static_configs:\n"
        f"      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with _process(args, f"{url}/-/ready"):
        yield Prometheus(url)


@contextlib.contextmanager
def running_pushgateway(binary: str) -> Iterator[str]:
    """A Pushgateway; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _process([binary, f"--web.listen-address=127.0.0.1:{port}"], f"{url}/-/ready"):
        yield url
