"""Views and meta API shapes as Airtable has them (issue 22, items 2 to 4), through pyairtable
over real HTTP: several views per table, ``view=`` by name or ID with the view's filter and
order, formula ``options.result``, date formats, link options, choice IDs, base names and
the base-collaborators endpoint."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from jobtrack_airtable.local import LocalAirtable

LEADS: dict[str, Any] = {
    "name": "Leads",
    "fields": [
        {"name": "Email", "type": "email"},
        {"name": "Score", "type": "number", "options": {"precision": 0}},
    ],
    "views": [
        {"name": "Grid view"},
        {
            "name": "Hot",
            "filterByFormula": "{Score} >= 5",
            "sort": [{"field": "Score", "direction": "desc"}],
        },
        {"name": "By email", "sort": [{"field": "Email"}]},
    ],
}


@pytest.mark.local_airtable(tables=[LEADS])
def test_views_filter_and_order_a_listing(local_airtable_server: LocalAirtable) -> None:
    leads = local_airtable_server.table("Leads")
    leads.batch_create(
        [{"Email": "c@x", "Score": 5}, {"Email": "a@x", "Score": 9}, {"Email": "b@x", "Score": 1}]
    )
    emails = lambda **kw: [r["fields"]["Email"] for r in leads.all(**kw)]  # noqa: E731
    assert emails() == ["c@x", "a@x", "b@x"]  # no view: creation order
    assert emails(view="Hot") == ["a@x", "c@x"]  # the view's filter, then its order
    assert emails(view="By email") == ["a@x", "b@x", "c@x"]
    # By ID too, and a request's own sort and filter win over / add to the view's.
    hot = next(v for v in leads.schema().views if v.name == "Hot")
    assert emails(view=hot.id, sort=["Email"]) == ["a@x", "c@x"]
    assert emails(view="Hot", formula="{Score} < 9") == ["c@x"]
    assert [v.name for v in leads.schema().views] == ["Grid view", "Hot", "By email"]
    with pytest.raises(requests.HTTPError) as exc:
        leads.all(view="Cold")
    assert exc.value.response is not None
    assert exc.value.response.json()["error"]["type"] == "VIEW_NAME_NOT_FOUND"


def test_views_are_kept_in_the_base_file(tmp_path: Path) -> None:
    with LocalAirtable(tables=[LEADS], rate_limit=None, data_path=tmp_path / "b.db") as srv:
        view = srv.store.create_view(srv.base_id, "Leads", {"name": "view"})
    with LocalAirtable(rate_limit=None, data_path=tmp_path / "b.db") as srv:
        views = srv.table("Leads").schema().views
        assert [(v.id, v.name) for v in views][-1] == (view.id, "view")
        assert srv.table("Leads").all(view="Hot") == []


def test_meta_api_shapes(local_airtable_server: LocalAirtable) -> None:
    srv = local_airtable_server
    base = srv.api().base(srv.base_id)
    people = base.create_table(
        "People",
        [
            {"name": "Name", "type": "singleLineText"},
            {"name": "Born", "type": "date", "options": {"dateFormat": {"name": "iso"}}},
            {
                "name": "Seen",
                "type": "dateTime",
                "options": {
                    "dateFormat": {"name": "us"},
                    "timeFormat": {"name": "12hour"},
                    "timeZone": "utc",
                },
            },
            {"name": "Kind", "type": "singleSelect", "options": {"choices": [{"name": "a"}]}},
        ],
    )
    teams = base.create_table("Teams", [{"name": "Team", "type": "singleLineText"}])
    link = teams.create_field(
        "Members", "multipleRecordLinks", options={"linkedTableId": people.id}
    )
    schema = people.schema(force=True)
    raw = {f.name: f.model_dump(by_alias=True) for f in schema.fields}
    assert raw["Born"]["options"]["dateFormat"] == {"name": "iso", "format": "YYYY-MM-DD"}
    assert raw["Seen"]["options"]["dateFormat"]["format"] == "M/D/YYYY"
    assert raw["Seen"]["options"]["timeFormat"]["format"] == "h:mma"
    assert all(c["id"].startswith("sel") for c in raw["Kind"]["options"]["choices"])
    # The inverse link, named after the linking table, and the link's default options.
    assert raw["Teams"]["options"]["linkedTableId"] == teams.id
    assert raw["Teams"]["options"]["inverseLinkFieldId"] == link.id
    members = teams.schema(force=True).field("Members").model_dump(by_alias=True)
    assert members["options"]["isReversed"] is False
    assert members["options"]["prefersSingleRecordLink"] is False
    # Formula fields (seeded: the API cannot create them) show what they compute.
    for name, formula in (("Label", "{Name} & '!'"), ("Age", "2025 - YEAR({Born})")):
        spec = {"name": name, "type": "formula", "options": {"formula": formula}}
        srv.store.create_field(srv.base_id, "People", spec)
    schema = people.schema(force=True)
    assert schema.field("Label").options.result.type == "singleLineText"  # type: ignore[union-attr]
    assert schema.field("Age").options.result.type == "number"  # type: ignore[union-attr]


@pytest.mark.local_airtable(base_id="appNamedBase00001", base_name="Sales")
def test_a_base_has_a_name_and_collaborators(local_airtable_server: LocalAirtable) -> None:
    api = local_airtable_server.api()
    assert [(b.id, b.name) for b in api.bases()] == [("appNamedBase00001", "Sales")]
    base = api.base("appNamedBase00001", validate=True)
    assert base.name == "Sales"
    info = base.collaborators()
    assert (info.id, info.name, info.permission_level) == ("appNamedBase00001", "Sales", "create")
    [me] = info.individual_collaborators.via_base
    assert me.user_id == api.whoami()["id"]


def test_formula_fields_of_older_files_show_their_result(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with LocalAirtable(rate_limit=None, data_path=path) as srv:
        spec = {"name": "Twice", "type": "formula", "options": {"formula": "{Score} * 2"}}
        srv.store.create_table(srv.base_id, "Leads", [*LEADS["fields"], spec])
    # As files written before the result was shown: the field model without it.
    db = sqlite3.connect(path, isolation_level=None)
    [(table_id, text)] = db.execute("SELECT id, model FROM tables").fetchall()
    model = json.loads(text)
    del model["fields"][2]["options"]["result"]
    db.execute("UPDATE tables SET model = ? WHERE id = ?", (json.dumps(model), table_id))
    db.close()
    with LocalAirtable(rate_limit=None, data_path=path) as srv:
        twice = srv.table("Leads").schema().field("Twice")
        assert twice.options.result.type == "number"  # type: ignore[union-attr]
