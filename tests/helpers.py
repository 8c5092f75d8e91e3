"""Helpers shared by several test modules (fixtures stay in conftest.py)."""

from __future__ import annotations

import socket
import time

from jobtrack_airtable.local import LocalAirtable


def open_connections(srv: LocalAirtable) -> set[socket.socket]:
    """The server's open client connections now."""
    server = srv._server
    assert server is not None, "the server is not running"
    with server._lock:
        return set(server.connections)


def wait_for_connections(
    srv: LocalAirtable, *, at_most: set[socket.socket], timeout: float = 60.0
) -> None:
    """Wait until the server's open connections are among ``at_most``: every other client's
    requests have been served (a killed client's connection ends once its last request has)."""
    deadline = time.monotonic() + timeout
    while not open_connections(srv) <= at_most:
        assert time.monotonic() < deadline, "connections still open after the client ended"
        time.sleep(0.01)
