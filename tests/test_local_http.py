"""The local server's HTTP layer and its bounds: keep-alive through pyairtable, a connection
cap, loopback only, nothing kept of unauthenticated requests, a byte-capped request log,
Airtable's JSON error shape for every malformed input, and bounded formula evaluation
(text cap, RE2, CPU budget)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import requests

from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.local.formulas import EvalContext, compile_formula, is_truthy

from .conftest import TEST_BASE_ID, TEST_TOKEN

JOBS = "Job Tracking"
Make = Callable[..., LocalAirtable]


def _raw(srv: LocalAirtable, data: bytes) -> bytes:
    """Send ``data`` on a fresh socket and read the whole answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _json_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


# -- keep-alive and connections ---------------------------------------------------------------


def test_pyairtable_reuses_one_connection_for_100_requests(local_airtable: LocalAirtable) -> None:
    table = local_airtable.table("jobs")
    rec = table.create({"Run ID": "k"})
    for i in range(33):
        table.get(rec["id"])
        table.update(rec["id"], {"Stream": i})
        table.all(formula="{Run ID}='k'")
    assert local_airtable.request_log.count() == 100
    assert local_airtable.connections_opened == 1


def test_connections_beyond_the_cap_get_a_json_503(make_local_airtable: Make) -> None:
    srv = make_local_airtable(max_connections=2)
    held = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(2)]
    try:
        for sock in held:  # make sure both are accepted and being served
            sock.sendall(b"GET /v0/meta/whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 401")
        status, body = _json_body(_raw(srv, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert (status, body["error"]["type"]) == (503, "SERVICE_UNAVAILABLE")
    finally:
        for sock in held:
            sock.close()
    # A slot frees up once a held connection is closed (as soon as its thread sees the close).
    url = f"{srv.url}/v0/{TEST_BASE_ID}/Job%20Tracking"
    statuses = []
    for _ in range(200):
        resp = requests.get(url, headers={"Authorization": f"Bearer {TEST_TOKEN}"})
        statuses.append(resp.status_code)
        if resp.status_code == 200:
            break
        time.sleep(0.01)
    assert statuses[-1] == 200 and set(statuses) <= {200, 503}


def test_a_non_loopback_host_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        LocalAirtable(host="0.0.0.0")
    done = subprocess.run(
        [sys.executable, "-m", "jobtrack_airtable.local", "serve", "--host", "192.168.1.10"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"JOBTRACK_LOCAL_TOKEN": "t", "PATH": ""},
    )
    assert done.returncode == 1
    assert "loopback only" in done.stderr and "192.168.1.10" in done.stderr


# -- what is kept of requests -----------------------------------------------------------------


def test_unauthenticated_requests_leave_only_a_short_line(local_airtable: LocalAirtable) -> None:
    url = f"{local_airtable.url}/v0/{TEST_BASE_ID}/Job%20Tracking" + "x" * 5000
    body = json.dumps({"fields": {"Run ID": "y" * 4_000_000}})
    for _ in range(20):
        resp = requests.post(url, data=body, headers={"Authorization": "Bearer wrong"})
        assert resp.status_code == 401
    entries = local_airtable.request_log.entries
    assert len(entries) == 20
    assert all(e.body is None and e.query == {} and len(e.path) <= 200 for e in entries)
    assert local_airtable.request_log.bytes < 20 * 1000
    assert local_airtable.request_log.count() == 20  # still counted exactly


def test_the_request_log_has_a_byte_cap(make_local_airtable: Make) -> None:
    srv = make_local_airtable(log_bytes=1_000_000)
    table = srv.table("jobs")
    for i in range(12):
        table.batch_create([{"Run ID": f"{i}-{j}", "System Notes": "e" * 40_000} for j in range(5)])
    log = srv.request_log
    assert log.count(method="POST") == 12  # counts stay exact
    assert log.bytes <= 1_000_000
    assert 0 < len(log.entries) < 12  # the oldest entries went


# -- malformed input: always Airtable's JSON error shape --------------------------------------


def test_a_million_deep_json_body_is_a_json_422(local_airtable: LocalAirtable) -> None:
    deep = b"[" * 1_000_000 + b"]" * 1_000_000
    resp = requests.post(
        f"{local_airtable.url}/v0/{TEST_BASE_ID}/Job%20Tracking",
        data=deep,
        headers={"Authorization": f"Bearer {TEST_TOKEN}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "INVALID_REQUEST_BODY"
    # 65 levels is already too deep for any Airtable request; 60 inside a cell is fine to parse.
    resp = requests.post(
        f"{local_airtable.url}/v0/{TEST_BASE_ID}/Job%20Tracking",
        data=b'{"fields": {"Run ID": ' + b"[" * 70 + b"]" * 70 + b"}}",
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
    )
    assert resp.status_code == 422
    assert "nested deeper than 64" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"BLAH\r\n\r\n", 400),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    ],
)
def test_malformed_http_gets_a_json_error(
    local_airtable: LocalAirtable, request_bytes: bytes, status: int
) -> None:
    got, body = _json_body(_raw(local_airtable, request_bytes))
    assert got == status
    assert set(body["error"]) == {"type", "message"}


def test_an_unexpected_failure_is_a_json_500(
    local_airtable: LocalAirtable, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(local_airtable.store, "snapshot_for", boom)
    resp = requests.get(
        f"{local_airtable.url}/v0/{TEST_BASE_ID}/Job%20Tracking",
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
    )
    assert resp.status_code == 500
    assert resp.json() == {"error": {"type": "SERVER_ERROR", "message": "Unexpected server error"}}


# -- bounded formula evaluation ---------------------------------------------------------------


def test_text_is_capped_at_100000_characters(local_airtable: LocalAirtable) -> None:
    table = local_airtable.table("jobs")
    table.create({"Run ID": "ok", "System Notes": "e" * 100_000})
    with pytest.raises(requests.HTTPError) as exc:
        table.create({"Run ID": "long", "System Notes": "e" * 100_001})
    assert exc.value.response.json()["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"
    # Formulas cannot build longer text either: the value is #ERROR!, falsy in a filter.
    assert table.all(formula="LEN(REPT('x', 1000000000)) > 0") == []
    assert table.all(formula="LEN(REPT({System Notes}, 2)) > 0") == []
    assert table.all(formula="LEN(SUBSTITUTE({System Notes}, 'e', 'ee')) > 0") == []
    assert table.all(formula="LEN(REGEX_REPLACE({System Notes}, '', 'zz')) > 0") == []
    assert table.all(formula="LEN({System Notes} & {System Notes}) > 0") == []
    assert len(table.all(formula="LEN(REPT('x', 100000)) = 100000")) == 1


def test_regex_functions_use_re2(local_airtable: LocalAirtable) -> None:
    table = local_airtable.table("jobs")
    table.create({"Run ID": "a" * 40 + "!"})
    # Exponential with a backtracking engine (it would hang here); linear on RE2.
    assert table.all(formula="REGEX_MATCH({Run ID}, '^(a+)+$')") == []
    assert len(table.all(formula="REGEX_MATCH({Run ID}, '^(a|aa)+!$')")) == 1
    # RE2 syntax: no backreferences (an invalid pattern is #ERROR!, not a server error).
    assert table.all(formula="REGEX_MATCH({Run ID}, '(a)\\\\1')") == []
    now = datetime(2025, 9, 30, tzinfo=UTC)
    t = EvalContext(
        fields={"S": "joe@ex"}, record_id="rec00000000000001", created_time=now, now=now
    )
    out = compile_formula("REGEX_REPLACE({S}, '(\\\\w+)@(\\\\w+)', '$2:$1')").evaluate(t)
    assert out == "ex:joe"
    assert is_truthy(compile_formula("REGEX_EXTRACT({S}, '@.*') = '@ex'").evaluate(t))


def test_a_listing_over_its_cpu_budget_is_refused(make_local_airtable: Make) -> None:
    srv = make_local_airtable(cpu_budget_seconds=0)
    table = srv.table("jobs")
    table.create({"Run ID": "a"})
    with pytest.raises(requests.HTTPError) as exc:
        table.all(formula="LEN({Run ID}) > 0")
    assert exc.value.response.status_code == 422
    assert "CPU budget" in exc.value.response.json()["error"]["message"]
    assert table.all() != []  # no formula, no evaluation: nothing to budget


def test_listings_kept_for_paging_are_bounded(make_local_airtable: Make) -> None:
    srv = make_local_airtable()
    srv.iterators.max_records = 250
    table = srv.table("jobs")
    table.batch_create([{"Run ID": f"r{i}"} for i in range(150)])
    for _ in range(5):
        table.all(formula="{Run ID}='r1'")  # one page: nothing kept behind an offset
    assert len(srv.iterators) == 0
    for _ in range(5):  # 150 rows each, two pages: only the newest listing fits in 250
        next(table.iterate(page_size=100))
    assert len(srv.iterators) == 1


def test_requests_for_unknown_bases_share_one_rate_limit_key(make_local_airtable: Make) -> None:
    srv = make_local_airtable(rate_limit=1000)
    headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
    for i in range(30):
        resp = requests.get(f"{srv.url}/v0/appNoSuchBase{i:04d}/T", headers=headers)
        assert resp.status_code == 403
    srv.table("jobs").all()
    assert set(srv.rate_limiter._hits) == {"<unknown base>", TEST_BASE_ID}
