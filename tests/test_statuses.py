"""Statuses (SPEC §1.3): legacy map, strict parsing, transitions, staleness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtrack_airtable.errors import InvalidInputError, InvalidStatusError, StatusTransitionError
from jobtrack_airtable.statuses import (
    LEGACY_STATUS_ALIASES,
    Status,
    check_transition,
    map_status,
    parse_status,
    staleness,
)

# Every row of the SPEC §1.3 legacy table.
SPEC_ALIASES = [
    ("Success", Status.COMPLETED),
    ("Completed with errors", Status.COMPLETED),
    ("completed_with_errors", Status.COMPLETED),
    ("Partial", Status.COMPLETED),
    ("Done", Status.COMPLETED),
    ("Finished", Status.COMPLETED),
    ("Error", Status.FAILED),
    ("Errored", Status.FAILED),
    ("Failure", Status.FAILED),
    ("Skipped", Status.NO_LEADS),
    ("No leads to process", Status.NO_LEADS),
    ("No leads", Status.NO_LEADS),
    ("Nothing to process", Status.NO_LEADS),
    ("In Progress", Status.RUNNING),
    ("Started", Status.RUNNING),
    ("Processing", Status.RUNNING),
    ("Pending", Status.RUNNING),
]


def test_enum_values_are_the_select_options():
    assert [s.value for s in Status] == ["Running", "Completed", "Failed", "No Leads To Score"]
    assert [s.is_terminal for s in Status] == [False, True, True, True]


@pytest.mark.parametrize("status", list(Status))
def test_standard_values_map_to_themselves(status):
    found = map_status(status.value)
    assert found.status is status
    assert not found.is_legacy
    assert not found.unmappable
    assert map_status(status).status is status
    assert not map_status(status).is_legacy


@pytest.mark.parametrize(("legacy", "expected"), SPEC_ALIASES)
def test_spec_legacy_table(legacy, expected):
    found = map_status(legacy)
    assert found.status is expected
    assert found.is_legacy
    assert not found.unmappable
    assert found.original == legacy
    assert parse_status(legacy) is expected


@pytest.mark.parametrize(("legacy", "expected"), SPEC_ALIASES)
@pytest.mark.parametrize(
    "variant",
    [
        str.upper,
        str.lower,
        str.title,
        lambda s: f"  {s}\t",
        lambda s: s.replace(" ", "_"),
        lambda s: s.replace(" ", "  "),
        lambda s: s.replace(" ", " _ ").upper(),
        lambda s: s.replace("_", " "),
    ],
)
def test_legacy_matching_is_forgiving(legacy, expected, variant):
    assert map_status(variant(legacy)).status is expected


def test_alias_table_covers_the_spec():
    normalised = {alias.lower().replace("_", " ") for alias in LEGACY_STATUS_ALIASES}
    for legacy, _ in SPEC_ALIASES:
        assert legacy.lower().replace("_", " ") in normalised


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("running", Status.RUNNING),
        (" Completed ", Status.COMPLETED),
        ("FAILED", Status.FAILED),
        ("no_leads_to_score", Status.NO_LEADS),
        ("No Leads  To Score", Status.NO_LEADS),
    ],
)
def test_standard_values_in_other_spellings_need_a_rewrite(value, expected):
    found = map_status(value)
    assert found.status is expected
    assert found.is_legacy  # not the exact option name: sync rewrites it


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Recovery", "not a known status"),
        ("Unknown", "not a known status"),
        ("Pending review", "not a known status"),
        ("Complete", "not a known status"),  # close, but not in the table: never guessed
        ("In-Progress", "not a known status"),
        ("Failed!", "not a known status"),
        ("", "empty"),
        ("   ", "empty"),
        ("__", "empty"),
        (None, "not a string: NoneType"),
        (1, "not a string: int"),
        (True, "not a string: bool"),
        ({"name": "Running"}, "not a string: dict"),
        (["Running"], "not a string: list"),
    ],
)
def test_unmappable_values(value, reason):
    found = map_status(value)
    assert found.unmappable
    assert found.status is None
    assert not found.is_legacy
    assert reason in found.reason
    assert found.original is value
    with pytest.raises(InvalidStatusError, match="expected one of 'Running'") as info:
        parse_status(value)
    assert repr(value) in str(info.value)


@given(st.text(max_size=30))
def test_map_status_never_raises_or_guesses(value):
    found = map_status(value)
    if found.status is not None:
        key = " ".join(value.replace("_", " ").split()).casefold()
        known = {" ".join(a.replace("_", " ").split()).casefold() for a in LEGACY_STATUS_ALIASES}
        known |= {s.value.casefold() for s in Status}
        assert key in known


def test_parse_status_accepts_enum_members():
    for status in Status:
        assert parse_status(status) is status


# --- transitions ---------------------------------------------------------------------------

TERMINAL = [Status.COMPLETED, Status.FAILED, Status.NO_LEADS]


@pytest.mark.parametrize("new", list(Status))
def test_new_row_may_take_any_status(new):
    assert check_transition(None, new) is None


@pytest.mark.parametrize("new", list(Status))
def test_running_may_move_anywhere(new):
    assert check_transition(Status.RUNNING, new) is None


@pytest.mark.parametrize("status", TERMINAL)
def test_same_terminal_status_is_a_no_op(status):
    assert check_transition(status, status) is None
    assert check_transition(status, status, force=True) is None


@pytest.mark.parametrize("current", TERMINAL)
@pytest.mark.parametrize("new", list(Status))
def test_terminal_is_final_without_force(current, new):
    if new is current:
        return
    with pytest.raises(StatusTransitionError, match="pass force=True") as info:
        check_transition(current, new)
    assert (info.value.current, info.value.new) == (current.value, new.value)


@pytest.mark.parametrize("current", TERMINAL)
@pytest.mark.parametrize("new", list(Status))
def test_forced_terminal_change_returns_a_note(current, new):
    if new is current:
        return
    note = check_transition(current, new, force=True)
    assert note == (
        f"Status forced from {current.value!r} to {new.value!r} "
        "(terminal status overridden with force=True)"
    )


def test_forced_note_can_carry_a_timestamp():
    now = datetime(2025, 9, 30, 16, 15, 22, tzinfo=ZoneInfo("Europe/Paris"))
    note = check_transition("Completed", "Running", force=True, now=now)
    assert note.startswith("[2025-09-30T14:15:22.000Z] Status forced from 'Completed'")


def test_transitions_accept_legacy_spellings():
    assert check_transition("In Progress", "Success") is None
    with pytest.raises(StatusTransitionError):
        check_transition("done", "Running")


@pytest.mark.parametrize(("current", "new"), [("Recovery", "Failed"), ("Running", "Unknown")])
def test_transitions_refuse_unmappable_statuses(current, new):
    with pytest.raises(InvalidStatusError):
        check_transition(current, new)


# --- staleness -----------------------------------------------------------------------------

NOW = datetime(2025, 9, 30, 18, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def stale_kwargs(**overrides):
    kwargs = {
        "last_updated": None,
        "start_time": None,
        "created_time": None,
        "threshold": 2 * HOUR,
        "now": NOW,
    }
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize(
    ("times", "stale", "source"),
    [
        ({"last_updated": NOW - 3 * HOUR}, True, "Last Updated"),
        ({"last_updated": NOW - HOUR}, False, None),
        ({"last_updated": NOW - 2 * HOUR}, False, None),  # exactly the threshold: not older
        ({"last_updated": NOW - 2 * HOUR - timedelta(seconds=1)}, True, "Last Updated"),
        # Fallback order: Last Updated wins over older start and created times.
        (
            {
                "last_updated": NOW - HOUR,
                "start_time": NOW - 5 * HOUR,
                "created_time": NOW - 6 * HOUR,
            },
            False,
            None,
        ),
        ({"start_time": NOW - 5 * HOUR, "created_time": NOW - 6 * HOUR}, True, "Start Time"),
        ({"start_time": NOW - HOUR, "created_time": NOW - 6 * HOUR}, False, None),
        ({"created_time": NOW - 6 * HOUR}, True, "created time"),
        ({}, False, None),  # nothing to age it by: not guessed
        ({"last_updated": NOW + HOUR}, False, None),  # clock skew into the future
    ],
)
def test_running_staleness_and_fallback_order(times, stale, source):
    kwargs = stale_kwargs(**times)
    found = staleness(Status.RUNNING, **kwargs)
    if stale:
        assert found is not None and f"({source})" in found.reason
    else:
        assert found is None


@pytest.mark.parametrize("status", [*TERMINAL, "Recovery", None, "Done"])
def test_only_running_can_be_stale(status):
    kwargs = stale_kwargs(last_updated=NOW - 100 * HOUR)
    assert staleness(status, **kwargs) is None


@pytest.mark.parametrize("status", ["Running", "in_progress", "Started"])
def test_legacy_running_aliases_can_be_stale(status):
    assert staleness(status, **stale_kwargs(last_updated=NOW - 3 * HOUR)) is not None


def test_stale_reason_text():
    found = staleness(
        Status.RUNNING,
        **stale_kwargs(
            last_updated=datetime(2025, 9, 30, 14, 15, 22, tzinfo=ZoneInfo("Europe/London")),
            threshold=timedelta(hours=2, minutes=30),
        ),
    )
    assert found is not None
    assert found.reason == (
        "Stale: still Running with no update since 2025-09-30T13:15:22.000Z (Last Updated), "
        "4h 44m 38s ago (threshold 2h 30m)"
    )


def test_stale_reason_spans_days():
    found = staleness(
        "Running", **stale_kwargs(start_time=NOW - timedelta(days=3, hours=1), threshold=24 * HOUR)
    )
    assert found is not None and found.reason.endswith("3d 1h ago (threshold 1d)")


@pytest.mark.parametrize(
    "overrides",
    [
        {"last_updated": datetime(2025, 9, 30, 12, 0)},
        {"start_time": datetime(2025, 9, 30, 12, 0)},
        {"created_time": datetime(2025, 9, 30, 12, 0)},
        {"now": datetime(2025, 9, 30, 18, 0)},
        {"last_updated": "2025-09-30T12:00:00Z"},
        {"threshold": timedelta(0)},
        {"threshold": -HOUR},
        {"threshold": 7200},
    ],
)
def test_staleness_refuses_bad_inputs(overrides):
    with pytest.raises(InvalidInputError):
        staleness(Status.RUNNING, **stale_kwargs(**overrides))


# --- stamps from skewed clocks (issue 10 item 4) ---------------------------------------------


@pytest.mark.parametrize(
    ("times", "stale", "why"),
    [
        # A worker 3 h ahead stamped its first write before learning the server clock: the
        # stamp is in the future, so the server-set created time ages the row.
        ({"last_updated": NOW + 3 * HOUR, "created_time": NOW - 3 * HOUR}, True, "future"),
        ({"last_updated": NOW + 3 * HOUR, "created_time": NOW - HOUR}, False, None),
        # 3 h behind: a stamp older than the row itself cannot be the last write.
        ({"last_updated": NOW - 4 * HOUR, "created_time": NOW - HOUR}, False, None),
        ({"start_time": NOW - 4 * HOUR, "created_time": NOW - 3 * HOUR}, True, "older than"),
        # Within the tolerance, the worker's stamp stands.
        (
            {
                "last_updated": NOW - 3 * HOUR,
                "created_time": NOW - 3 * HOUR + timedelta(seconds=30),
            },
            True,
            None,
        ),
    ],
)
def test_stamps_from_skewed_clocks_give_way_to_the_created_time(times, stale, why):
    found = staleness(Status.RUNNING, **stale_kwargs(**times))
    assert (found is not None) is stale
    if found is not None:
        if why is None:
            assert found.distrusted is None and found.label != "created time"
        else:
            assert found.label == "created time" and why in (found.distrusted or "")
            assert why in found.reason


def test_staleness_names_the_fields_as_the_base_calls_them() -> None:
    from datetime import UTC, datetime, timedelta

    from jobtrack_airtable.statuses import staleness

    updated = datetime(2025, 9, 30, 14, 0, tzinfo=UTC)
    found = staleness(
        "Running",
        last_updated=updated,
        start_time=None,
        created_time=updated,
        threshold=timedelta(hours=1),
        now=updated + timedelta(hours=2),
        labels=("Heartbeat", "Began"),
    )
    assert found is not None
    assert "(Heartbeat)" in found.reason and "Last Updated" not in found.reason
