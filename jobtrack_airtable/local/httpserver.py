"""A small threaded HTTP/1.1 WSGI server with working keep-alive and bounded resources.

Why not werkzeug's development server: it sends ``Connection: close`` on every response (by
design: ``http.server`` cannot drain a request body before the next request line), so each
pyairtable request paid a new TCP connection.  This server reads exactly ``Content-Length``
bytes, drains what the application left unread, and keeps the connection open.

Bounds: at most ``max_connections`` connections at once (one thread each; the next one gets a
503 in Airtable's JSON shape and is closed), an idle/read timeout per connection, request line
and headers capped by :mod:`http.server` (64 KiB a line, 100 headers), bodies capped by the
application (``Content-Length`` over the cap is refused unread), and no chunked request bodies
(411).  Every error this layer answers is Airtable's JSON error shape, never HTML.

The application may raise :class:`ConnectionAbortedError` to close the connection without
an answer (the fault injector's ``drop`` and ``lost_response``); ``environ["local.socket"]``
is the client socket.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote_to_bytes

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Unread request bodies up to this size are drained to keep the connection; larger: closed.
_DRAIN_LIMIT = 1024 * 1024
#: Before closing with an unread body: at most this many bytes read and dropped, this long.
_LINGER_LIMIT = 16 * 1024 * 1024
_LINGER_SECONDS = 2.0


class _Body(io.RawIOBase):
    """``wsgi.input``: at most ``length`` bytes of the connection, read only on demand (so an
    unauthenticated request's body is never read into memory)."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        data = self._rfile.read(min(len(buffer), self.remaining))
        n = len(data)
        buffer[:n] = data
        self.remaining -= n
        if n == 0:
            self.remaining = 0
        return n


def _error_body(status: int, error_type: str, message: str) -> bytes:
    return json.dumps({"error": {"type": error_type, "message": message}}).encode()


class Handler(BaseHTTPRequestHandler):
    """One connection: requests in a loop until the client closes, an error, or idle."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (~40 ms a response on Linux).
    disable_nagle_algorithm = True
    server_version = "LocalAirtable"
    sys_version = ""
    server: Server

    def setup(self) -> None:
        super().setup()
        # Bounds both an idle keep-alive connection and a stalled read of a request.
        self.connection.settimeout(self.server.idle_timeout)

    # Every method goes through the WSGI application.
    def do_GET(self) -> None:
        self._run()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, headers too long…) as Airtable's JSON,
        # with a status line and headers even when the request line was unreadable.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        with contextlib.suppress(OSError):
            body = _error_body(code, "INVALID_REQUEST_UNKNOWN", message or "Bad request")
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # the application's request log records what matters; never headers

    def _environ(self, body: _Body) -> dict[str, Any]:
        raw_path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            # WSGI's PATH_INFO is the decoded path as latin-1 text.
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "local.socket": self.connection,
        }
        for key, value in self.headers.items():
            name = key.upper().replace("-", "_")
            if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[name] = value
            else:
                name = "HTTP_" + name
                environ[name] = f"{environ[name]},{value}" if name in environ else value
        return environ

    def _run(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._simple(411, "INVALID_REQUEST_UNKNOWN", "Content-Length is required")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self._simple(400, "INVALID_REQUEST_UNKNOWN", "Invalid Content-Length")
            return
        body = _Body(self.rfile, length)
        environ = self._environ(body)
        status_headers: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status_headers[:] = [status, headers]
            return lambda data: None  # write() is not supported (the app returns its body)

        try:
            result = self.server.app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except ConnectionAbortedError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, headers = status_headers
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            self.send_header(name, value)
            if name.lower() == "connection" and value.lower() == "close":
                self.close_connection = True
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(payload)))
        if body.remaining > _DRAIN_LIMIT:
            self.close_connection = True  # not worth reading a large unread body to keep it
        if self.close_connection and "connection" not in names:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if not self.close_connection and body.remaining:
            while body.read(65536):
                pass
        elif body.remaining:
            self._linger(body)

    def _linger(self, body: _Body) -> None:
        """Close without losing the answer: closing with unread request bytes makes the
        kernel send a reset, which can destroy the response before the client reads it (a 401
        or 413 to a client still sending its body).  So stop writing, then read and discard
        what the client is still sending, bounded in bytes and time, before closing."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_LINGER_SECONDS)
            discarded = 0
            while discarded < _LINGER_LIMIT and (chunk := body.read(65536)):
                discarded += len(chunk)

    def _simple(self, status: int, error_type: str, message: str) -> None:
        body = _error_body(status, error_type, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Thread per connection, at most ``max_connections`` at once; tracks open connections
    (so :meth:`close_connections` can end idle keep-alive ones) and counts those opened."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        app: WSGIApp,
        *,
        max_connections: int = 32,
        idle_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        #: Connections accepted since start (keep-alive: one per client session).
        self.connections_opened = 0
        self.connections_refused = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    @property
    def server_port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.connections_refused += 1
            body = _error_body(503, "SERVICE_UNAVAILABLE", "Too many connections")
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
            self.shutdown_request(request)
            return
        with self._lock:
            self.connections.add(request)
            self.connections_opened += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: Any) -> None:
        with self._lock:
            if request not in self.connections:
                return
            self.connections.discard(request)
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that vanished mid-request is not the server's problem

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
