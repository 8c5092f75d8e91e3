"""What a JavaScript client sees (issue 22): airtable.js 0.12.2, from the npm registry, against
the local server: computed fields (count, lookup, rollup, auto number, created by, button),
epoch-millisecond date-times, rich text, ``{"specialValue": "Infinity"}``, URL attachments as
attachment objects, and a view's filter and order."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobtrack_airtable.local import LocalAirtable

SCRIPT = Path(__file__).parent / "js" / "shapes.js"

TASKS: dict[str, Any] = {
    "name": "Tasks",
    "fields": [
        {"name": "Title", "type": "singleLineText"},
        {"name": "Points", "type": "number", "options": {"precision": 0}},
        {"name": "Per zero", "type": "formula", "options": {"formula": "{Points} / 0"}},
        {"name": "Notes", "type": "richText"},
        {"name": "Due", "type": "dateTime"},
        {"name": "No", "type": "autoNumber"},
        {"name": "Files", "type": "multipleAttachments"},
    ],
    "views": [{"name": "Grid view"}, {"name": "Hot", "filterByFormula": "{Points} > 1"}],
}
PROJECTS: dict[str, Any] = {
    "name": "Projects",
    "fields": [
        {"name": "Name", "type": "singleLineText"},
        {"name": "Tasks", "type": "multipleRecordLinks", "options": {"linkedTableId": "Tasks"}},
    ],
}


def run_node(script: Path, node_modules: Path, env: dict[str, str]) -> str:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(node_modules), **env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.local_airtable(tables=[TASKS, PROJECTS])
def test_airtable_js_sees_airtables_shapes(
    local_airtable_server: LocalAirtable, airtable_js: Path, tmp_path: Path
) -> None:
    srv = local_airtable_server
    store = srv.store
    link = store.table(srv.base_id, "Projects").fields[1].id
    points = store.table(srv.base_id, "Tasks").fields[1].id
    via = {"recordLinkFieldId": link, "fieldIdInLinkedTable": points}
    for name, ftype, options in (
        ("Count", "count", {"recordLinkFieldId": link}),
        ("Points seen", "multipleLookupValues", via),
        ("Total", "rollup", {**via, "formula": "SUM(values)"}),
        ("By", "createdBy", None),
        ("Go", "button", {"label": "Go", "url": "'https://example.com/' & {Name}"}),
    ):
        store.create_field(
            srv.base_id, "Projects", {"name": name, "type": ftype, "options": options}
        )
    (tmp_path / "a.txt").write_text("abc")
    srv.table("Tasks").create({"Title": "file", "Files": [{"url": (tmp_path / "a.txt").as_uri()}]})
    started = {"url": srv.url, "token": srv.token, "baseId": srv.base_id}
    seen = json.loads(run_node(SCRIPT, airtable_js, {"LOCAL_AIRTABLE": json.dumps(started)}))
    project, task = seen["project"], seen["task"]
    assert project["Tasks"] == [seen["taskId"]]
    assert (project["Count"], project["Points seen"], project["Total"]) == (1, [3], 3)
    assert project["By"]["id"] == srv.api().whoami()["id"]
    assert project["Go"] == {"label": "Go", "url": "https://example.com/P"}
    assert task["Projects"] == [seen["projectId"]]  # the inverse link
    assert task["Per zero"] == {"specialValue": "Infinity"}
    assert task["Due"] == "2023-11-14T22:13:20.123Z"
    assert task["Notes"] == "- x\n"
    assert task["No"] == 2
    assert seen["hot"] == ["a"]
    [attached] = seen["files"]
    assert attached["id"].startswith("att")
    assert (attached["filename"], attached["size"], attached["type"]) == ("a.txt", 3, "text/plain")


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_airtable_js_example_runs(airtable_js: Path, tmp_path: Path) -> None:
    [example] = re.findall(r"```js\n(.*?)```", README.read_text(), flags=re.S)
    script = tmp_path / "leads.test.js"
    script.write_text(example)
    out = run_node(script, airtable_js, {"PYTHON": sys.executable})
    assert out.strip() == "airtable.js against the local server: ok"
