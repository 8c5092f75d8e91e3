"""Record comments and attachments as Airtable serves them (issue 22, item 6), through
pyairtable over real HTTP: comments with mentions (list, create, update, delete), URL
attachments normalised to attachment objects (bytes read from ``file://`` and loopback URLs
only), and the upload endpoint."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from jobtrack_airtable.local import LocalAirtable

NOTES: dict[str, Any] = {
    "name": "Notes",
    "fields": [
        {"name": "Title", "type": "singleLineText"},
        {"name": "Files", "type": "multipleAttachments"},
    ],
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def files(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server of ``tmp_path`` (what a test's fixture files look like)."""
    (tmp_path / "logo.png").write_bytes(PNG)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.local_airtable(tables=[NOTES])
def test_comments_with_mentions(local_airtable_server: LocalAirtable) -> None:
    srv = local_airtable_server
    notes = srv.table("Notes")
    me = srv.api().whoami()["id"]
    rec = notes.create({"Title": "t"})
    notes.add_comment(rec["id"], f"For @[{me}], see above")
    notes.add_comment(rec["id"], "second")
    comments = notes.comments(rec["id"])
    assert [c.text for c in comments] == ["second", f"For @[{me}], see above"]  # newest first
    mentioned = comments[1]
    assert mentioned.author.id == me and mentioned.last_updated_time is None
    assert mentioned.mentioned[me].display_name and mentioned.mentioned[me].type == "user"
    mentioned.text = "Never mind"
    mentioned.save()
    again = notes.comments(rec["id"])[1]
    assert (again.text, again.mentioned, again.last_updated_time is not None) == (
        "Never mind",
        {},
        True,
    )
    again.delete()
    assert [c.text for c in notes.comments(rec["id"])] == ["second"]
    # 2 adds, 3 listings, 1 update, 1 delete
    assert srv.request_log.count(path="comments") == 7
    with pytest.raises(requests.HTTPError):  # an unknown record has no comments
        notes.comments("recNoSuchRecord01")


@pytest.mark.local_airtable(tables=[NOTES])
def test_comments_come_in_pages(local_airtable_server: LocalAirtable) -> None:
    srv = local_airtable_server
    notes = srv.table("Notes")
    rec = notes.create({"Title": "t"})
    for i in range(5):
        notes.add_comment(rec["id"], f"c{i}")
    url = notes.urls.record_comments(rec["id"])
    pages = list(srv.api().iterate_requests("GET", url, params={"pageSize": 2}))
    assert [[c["text"] for c in p["comments"]] for p in pages] == [
        ["c4", "c3"],
        ["c2", "c1"],
        ["c0"],
    ]
    assert [c.text for c in notes.comments(rec["id"])] == ["c4", "c3", "c2", "c1", "c0"]


@pytest.mark.local_airtable(tables=[NOTES])
def test_url_attachments_become_attachment_objects(
    local_airtable_server: LocalAirtable, files: str, tmp_path: Path
) -> None:
    notes = local_airtable_server.table("Notes")
    (tmp_path / "notes.txt").write_text("hello")
    rec = notes.create(
        {
            "Files": [
                {"url": f"{files}/logo.png"},
                {"url": (tmp_path / "notes.txt").as_uri(), "filename": "n.txt"},
                {"url": "https://example.com/far/away.pdf"},
            ]
        }
    )
    logo, text, far = notes.get(rec["id"])["fields"]["Files"]
    assert logo["id"].startswith("att") and logo["url"] == f"{files}/logo.png"
    assert (logo["filename"], logo["size"], logo["type"]) == ("logo.png", len(PNG), "image/png")
    assert requests.get(logo["url"], timeout=5).content == PNG
    assert (text["filename"], text["size"], text["type"]) == ("n.txt", 5, "text/plain")
    # Beyond the machine nothing is read: the type from the name, no size.
    assert (far["filename"], far["type"], "size" in far) == ("away.pdf", "application/pdf", False)
    # Items given by ID keep their attachment; the others are dropped.
    kept = notes.update(rec["id"], {"Files": [{"id": text["id"]}]})["fields"]["Files"]
    assert kept == [text]
    with pytest.raises(requests.HTTPError):
        notes.update(rec["id"], {"Files": [{"filename": "no url"}]})


@pytest.mark.local_airtable(tables=[NOTES])
def test_the_upload_endpoint(local_airtable_server: LocalAirtable, files: str) -> None:
    srv = local_airtable_server
    notes = srv.table("Notes")
    rec = notes.create({"Files": [{"url": f"{files}/logo.png", "filename": "a.png"}]})
    field_id = notes.schema().field("Files").id
    # pyairtable sends this to content.airtable.com; srv.api() sends that to the server.
    answer = notes.upload_attachment(rec["id"], "Files", "b.txt", b"hi!")
    assert answer["id"] == rec["id"] and list(answer["fields"]) == [field_id]
    first, second = answer["fields"][field_id]
    assert (first["filename"], first["size"]) == ("a.png", len(PNG))
    assert (second["filename"], second["size"], second["type"]) == ("b.txt", 3, "text/plain")
    assert notes.get(rec["id"])["fields"]["Files"] == [first, second]
    # The uploaded file is served at its signed URL, without the token; a forged one is not.
    assert requests.get(second["url"], timeout=5).content == b"hi!"
    head, att_id, _signature, name = second["url"].rsplit("/", 3)
    forged = f"{head}/{att_id}/{'0' * 32}/{name}"
    assert requests.get(forged, timeout=5).status_code == 404
