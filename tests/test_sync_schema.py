"""``sync`` reads the base's schema first (issue 14 item 2): optional fields the base lacks are
left out of the plan (no apply fails half way with 422 UNKNOWN_FIELD_NAME); missing required
fields are refused before planning, naming every one and the fix.  Requests counted exactly."""

from __future__ import annotations

import pytest

from jobtrack_airtable.admin.sync import Action, apply_budget, plan_budget
from jobtrack_airtable.errors import SchemaMismatchError
from jobtrack_airtable.local import LocalAirtable
from tests.conftest import MakeLocalAirtable
from tests.helpers import CRR, JOBS, SyncBase, base_fixture  # noqa: F401

META = "/v0/meta/bases/"
#: Optional aggregate fields a base may go without (SPEC §1.1).
ABSENT = ("Clients Processed", "Total Tokens Used", "Successful Profiles")


def _drop(srv: LocalAirtable, table: str, names: tuple[str, ...]) -> None:
    """Remove fields from the base itself (as an admin deleting them in Airtable's UI)."""
    spec = srv.store.table(srv.base_id, srv.schema.table(table).name)
    spec.fields = [f for f in spec.fields if f.name not in names]


def _orphans(b: SyncBase) -> None:
    for c in range(3):
        b.add(CRR, {"Run ID": f"250930-100000-C{c}", "Client ID": f"C{c}", "Status": "Completed"})


def test_optional_fields_the_base_lacks_are_left_out_of_the_plan(base: SyncBase) -> None:
    _drop(base.srv, JOBS, ABSENT)
    _orphans(base)
    base.log.clear()
    plan = base.plan()
    # One schema read (through pyairtable's Base.schema()), then one page per table.
    assert base.log.count(method="GET", path=META) == 1
    assert base.log.total == plan_budget(0, 3) == 3
    assert plan.absent_fields == {JOBS: ["clients_processed", "profiles_scored", "total_tokens"]}
    (created,) = plan.changes(JOBS, Action.CREATE)
    written = {c.field for c in created.changes}
    assert "clients_with_errors" in written
    assert not written & {"clients_processed", "profiles_scored", "total_tokens"}
    # Applying writes no field the base lacks: no 422, exactly the budget, and it converges.
    base.log.clear()
    base.apply(plan)
    assert base.log.total == apply_budget(plan, base.schema).total
    (job,) = base.rows(JOBS).values()
    assert job["Clients With Errors"] == 0 and "Clients Processed" not in job
    assert not base.plan().has_changes


def test_missing_required_fields_are_refused_before_planning(base: SyncBase) -> None:
    _orphans(base)
    _drop(base.srv, JOBS, ("Status", "Last Updated"))
    _drop(base.srv, CRR, ("Client ID",))
    base.log.clear()
    with pytest.raises(SchemaMismatchError) as caught:
        base.plan()
    message = str(caught.value)
    for name in ("'Job Tracking'.'Status'", "'Job Tracking'.'Last Updated'", "'Client ID'"):
        assert name in message
    assert "schema init" in message
    assert len(caught.value.problems) == 3
    assert base.log.total == 1  # the schema read, and not one row


def test_a_missing_table_is_refused_naming_it(make_local_airtable: MakeLocalAirtable) -> None:
    srv = make_local_airtable(create_tables=False)
    b = SyncBase(srv)
    with pytest.raises(SchemaMismatchError, match=r"table 'Job Tracking' is missing.*schema init"):
        b.plan()
    assert srv.request_log.total == 1
