"""A real local HTTP receiver standing in for a webhook (Slack, Teams, a generic JSON hook):
``check --notify json://127.0.0.1:PORT/path`` posts to it through apprise."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: dict[str, Any]


@dataclass
class Webhook:
    """Records every POST; answers ``status_by_path`` (default 200)."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    status_by_path: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def messages(self, path: str | None = None) -> list[str]:
        with self.lock:
            return [r.body["message"] for r in self.received if path is None or r.path == path]

    def titles(self) -> list[str]:
        with self.lock:
            return [r.body["title"] for r in self.received]


def _handler(hook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with hook.lock:
                hook.received.append(Received(self.path, json.loads(raw or b"{}")))
                status = hook.status_by_path.get(self.path, 200)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what matters

    return Handler


@contextlib.contextmanager
def running_webhook() -> Iterator[Webhook]:
    """Start a receiver on a free loopback port; stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    hook = Webhook(server)
    server.RequestHandlerClass = _handler(hook)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
