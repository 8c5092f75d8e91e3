"""Computed fields and record values as Airtable fills them (issue 22, items 1 and 2), each
through pyairtable over real HTTP against the ``local_airtable_server`` fixture: auto numbers,
links and their inverse fields, count, lookup, rollup, created/modified by, buttons, epoch
milliseconds in date-times, rich text normalisation."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from jobtrack_airtable.local import LocalAirtable

TASKS: dict[str, Any] = {
    "name": "Tasks",
    "fields": [
        {"name": "Title", "type": "singleLineText"},
        {"name": "Points", "type": "number", "options": {"precision": 0}},
        {"name": "Ratio", "type": "formula", "options": {"formula": "{Points} / 2"}},
        {"name": "Broken", "type": "formula", "options": {"formula": "ERROR()"}},
        {"name": "Notes", "type": "richText"},
        {"name": "Due", "type": "dateTime"},
        {"name": "No", "type": "autoNumber"},
    ],
}
PROJECTS: dict[str, Any] = {
    "name": "Projects",
    "fields": [
        {"name": "Name", "type": "singleLineText"},
        # Seeding may name the linked table; the server stores its ID.
        {"name": "Tasks", "type": "multipleRecordLinks", "options": {"linkedTableId": "Tasks"}},
    ],
}


def _add(srv: LocalAirtable, table: str, name: str, ftype: str, **options: Any) -> str:
    spec = {"name": name, "type": ftype, "options": options or None}
    return srv.store.create_field(srv.base_id, table, spec).id


def _field_id(srv: LocalAirtable, table: str, name: str) -> str:
    fdef = srv.store.table(srv.base_id, table).field_named(name)
    assert fdef is not None
    return fdef.id


@pytest.fixture
def projects(local_airtable_server: LocalAirtable) -> LocalAirtable:
    srv = local_airtable_server
    srv.store.ensure_tables(srv.base_id, [TASKS, PROJECTS])
    link = _field_id(srv, "Projects", "Tasks")
    points = _field_id(srv, "Tasks", "Points")
    _add(srv, "Projects", "Task count", "count", recordLinkFieldId=link)
    _add(srv, "Projects", "Task points", "multipleLookupValues", **_via(link, points))
    _add(srv, "Projects", "Task errors", "multipleLookupValues", **_via(link, "Broken", srv))
    _add(srv, "Projects", "Total", "rollup", formula="SUM(values)", **_via(link, points))
    _add(srv, "Projects", "Created by", "createdBy")
    _add(srv, "Projects", "Modified by", "lastModifiedBy")
    _add(
        srv,
        "Projects",
        "Open",
        "button",
        label="Open",
        url="'https://example.com/' & RECORD_ID()",
    )
    return srv


def _via(link: str, field: str, srv: LocalAirtable | None = None) -> dict[str, str]:
    if srv is not None:
        field = _field_id(srv, "Tasks", field)
    return {"recordLinkFieldId": link, "fieldIdInLinkedTable": field}


def test_count_lookup_and_rollup_follow_the_links(projects: LocalAirtable) -> None:
    tasks, projs = projects.table("Tasks"), projects.table("Projects")
    a, b = tasks.batch_create([{"Title": "a", "Points": 3}, {"Title": "b", "Points": 5}])
    p = projs.create({"Name": "P", "Tasks": [a["id"], b["id"]]})
    fields = projs.get(p["id"])["fields"]
    assert fields["Task count"] == 2
    assert fields["Task points"] == [3, 5]
    assert fields["Task errors"] == [{"error": "#ERROR!"}, {"error": "#ERROR!"}]
    assert fields["Total"] == 8
    # The computed fields follow a change of the linked records, and of the link.
    tasks.update(a["id"], {"Points": 10})
    projs.update(p["id"], {"Tasks": [a["id"]]})
    fields = projs.get(p["id"])["fields"]
    assert (fields["Task count"], fields["Task points"], fields["Total"]) == (1, [10], 10)
    assert projs.create({"Name": "empty"})["fields"]["Task count"] == 0
    # The meta API shows what a lookup holds: the looked-up field's model.
    lookup = projs.schema().field("Task points").model_dump(by_alias=True)["options"]
    assert lookup["isValid"] is True
    assert lookup["result"] == {"type": "number", "options": {"precision": 0}}


def test_a_link_keeps_its_inverse_field_in_step(projects: LocalAirtable) -> None:
    tasks, projs = projects.table("Tasks"), projects.table("Projects")
    # Airtable adds the inverse field, named after the linking table, to the linked table.
    inverse = tasks.schema(force=True).field("Projects")
    assert inverse.type == "multipleRecordLinks"
    link = projs.schema().field("Tasks")
    assert link.options.inverse_link_field_id == inverse.id  # type: ignore[union-attr]
    assert inverse.options.inverse_link_field_id == link.id  # type: ignore[union-attr]
    [a, b] = tasks.batch_create([{"Title": "a"}, {"Title": "b"}])
    p = projs.create({"Name": "P", "Tasks": [a["id"], b["id"]]})
    assert tasks.get(a["id"])["fields"]["Projects"] == [p["id"]]
    # Written from the other side, the link changes on this side too.
    tasks.update(b["id"], {"Projects": []})
    assert projs.get(p["id"])["fields"]["Tasks"] == [a["id"]]
    projs.delete(p["id"])
    assert "Projects" not in tasks.get(a["id"])["fields"]
    with pytest.raises(requests.HTTPError) as exc:
        projs.create({"Name": "Q", "Tasks": ["recNoSuchRecord01"]})
    assert exc.value.response is not None
    assert exc.value.response.json()["error"]["type"] == "ROW_DOES_NOT_EXIST"


def test_created_by_last_modified_by_and_buttons(projects: LocalAirtable) -> None:
    projs = projects.table("Projects")
    p = projs.create({"Name": "P"})
    me = projects.api().whoami()["id"]
    fields = projs.get(p["id"])["fields"]
    assert fields["Created by"]["id"] == fields["Modified by"]["id"] == me
    assert set(fields["Created by"]) == {"id", "email", "name"}
    assert fields["Open"] == {"label": "Open", "url": f"https://example.com/{p['id']}"}
    with pytest.raises(requests.HTTPError):  # computed: never written by a client
        projs.update(p["id"], {"Created by": {"id": me}})


@pytest.mark.local_airtable(tables=[TASKS])
def test_auto_numbers_count_up_and_stay(local_airtable_server: LocalAirtable) -> None:
    tasks = local_airtable_server.table("Tasks")
    first = tasks.batch_create([{"Title": "a"}, {"Title": "b"}])
    assert [r["fields"]["No"] for r in first] == [1, 2]
    tasks.delete(first[0]["id"])
    third = tasks.create({"Title": "c"})
    assert third["fields"]["No"] == 3  # never reused
    # A replacing write keeps the number (clients never write it).
    assert tasks.update(third["id"], {"Title": "c2"}, replace=True)["fields"]["No"] == 3
    upserted = tasks.batch_upsert([{"fields": {"Title": "d"}}], key_fields=["Title"])
    assert upserted["records"][0]["fields"]["No"] == 4


def test_auto_numbers_survive_a_restart(tmp_path: Path) -> None:
    with LocalAirtable(tables=[TASKS], rate_limit=None, data_path=tmp_path / "b.db") as srv:
        srv.table("Tasks").batch_create([{"Title": "a"}, {"Title": "b"}])
    with LocalAirtable(tables=[TASKS], rate_limit=None, data_path=tmp_path / "b.db") as srv:
        tasks = srv.table("Tasks")
        assert sorted(r["fields"]["No"] for r in tasks.all()) == [1, 2]
        assert tasks.create({"Title": "c"})["fields"]["No"] == 3


@pytest.mark.local_airtable(tables=[TASKS])
def test_a_date_time_takes_epoch_milliseconds(local_airtable_server: LocalAirtable) -> None:
    tasks = local_airtable_server.table("Tasks")
    rec = tasks.create({"Due": 1_700_000_000_123})
    assert rec["fields"]["Due"] == "2023-11-14T22:13:20.123Z"
    with pytest.raises(requests.HTTPError):
        tasks.create({"Due": True})


@pytest.mark.local_airtable(tables=[TASKS])
def test_rich_text_is_normalised(local_airtable_server: LocalAirtable) -> None:
    tasks = local_airtable_server.table("Tasks")
    rec = tasks.create({"Notes": "**Plan**\n* one\n  * two"})
    assert rec["fields"]["Notes"] == "**Plan**\n- one\n  - two\n"
    assert tasks.get(rec["id"])["fields"]["Notes"] == "**Plan**\n- one\n  - two\n"


def test_a_link_to_its_own_table_forgets_deleted_records(projects: LocalAirtable) -> None:
    srv = projects
    srv.store.create_field(
        srv.base_id,
        "Tasks",
        {"name": "Blocks", "type": "multipleRecordLinks", "options": {"linkedTableId": "Tasks"}},
    )
    tasks = srv.table("Tasks")
    a, b = tasks.batch_create([{"Title": "a"}, {"Title": "b"}])
    tasks.update(a["id"], {"Blocks": [b["id"]]})
    assert tasks.schema(force=True).field("Blocks").options.inverse_link_field_id is None  # type: ignore[union-attr]
    tasks.delete(b["id"])
    assert "Blocks" not in tasks.get(a["id"])["fields"]


def test_links_stay_symmetric_under_concurrent_writers(projects: LocalAirtable) -> None:
    srv = projects
    tasks = srv.table("Tasks").batch_create([{"Title": str(i)} for i in range(10)])
    projs = srv.table("Projects").batch_create([{"Name": str(i)} for i in range(4)])
    task_ids, proj_ids = [t["id"] for t in tasks], [p["id"] for p in projs]

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        api = srv.api()
        for _ in range(25):
            if rng.random() < 0.5:
                pick = rng.sample(task_ids, rng.randint(0, 4))
                api.table(srv.base_id, "Projects").update(rng.choice(proj_ids), {"Tasks": pick})
            else:
                pick = rng.sample(proj_ids, rng.randint(0, 2))
                api.table(srv.base_id, "Tasks").update(rng.choice(task_ids), {"Projects": pick})

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    forward = {
        (p["id"], t) for p in srv.table("Projects").all() for t in p["fields"].get("Tasks", [])
    }
    backward = {
        (p, t["id"]) for t in srv.table("Tasks").all() for p in t["fields"].get("Projects", [])
    }
    assert forward == backward
    assert srv.request_log.count(method="PATCH") == 6 * 25
