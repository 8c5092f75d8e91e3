"""One test per sync detector: a small fixture base on the local server, the exact planned
changes, the base after apply, and an empty re-plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobtrack_airtable.admin.sync import Action
from tests.helpers import (  # noqa: F401  (base is a fixture)
    CRR,
    JOBS,
    NOW,
    SyncBase,
    at,
    base_fixture,
    changes,
    entries,
    fresh_running_job,
    zero_aggregates,
)

STAMP = "[2025-10-01T12:00:00.000Z] sync: "


def test_consistent_base_plans_nothing(base: SyncBase) -> None:
    base.add(
        JOBS,
        {
            "Run ID": "250930-100000",
            "Status": "Completed",
            "Start Time": at(hours=5),
            "End Time": at(hours=4),
            **zero_aggregates(**{"Clients Processed": 1}),
        },
    )
    base.add(
        CRR,
        {
            "Run ID": "250930-100000-Guy-Wilson",
            "Client ID": "Guy-Wilson",
            "Status": "Completed",
            "Start Time": at(hours=5),
            "End Time": at(hours=4),
        },
    )
    plan = base.plan()
    assert plan.records == []
    assert not plan.has_changes and not plan.needs_attention


def test_legacy_job_run_ids_are_converted(base: SyncBase) -> None:
    done = {"Status": "Completed", **zero_aggregates()}
    process = base.add(JOBS, {"Run ID": "job_post_scoring_stream1_20250929094802", **done})
    bypass = base.add(JOBS, {"Run ID": "job_post_scoring_bypass_1717146242405", **done})
    numeric = base.add(JOBS, {"Run ID": "250930-141522.0", **done})
    spaced = base.add(JOBS, {"Run ID": " 250930-151522 ", **done})
    bogus = base.add(JOBS, {"Run ID": "[object Object]", **done})

    plan = base.plan()
    assert changes(plan, JOBS, process) == {
        "Run ID": ("job_post_scoring_stream1_20250929094802", "250929-094802")
    }
    assert changes(plan, JOBS, bypass) == {
        "Run ID": ("job_post_scoring_bypass_1717146242405", "240531-090402")
    }
    assert changes(plan, JOBS, numeric) == {"Run ID": ("250930-141522.0", "250930-141522")}
    assert changes(plan, JOBS, spaced) == {"Run ID": (" 250930-151522 ", "250930-151522")}
    (flagged,) = entries(plan, JOBS, bogus)
    assert flagged.action is Action.ATTENTION and flagged.changes == []
    assert "'[object Object]' cannot be converted" in flagged.attention[0]
    assert plan.summary.model_dump() == {"create": 0, "update": 4, "delete": 0, "attention": 1}

    base.converge(plan)
    assert set(base.by_key(JOBS)) == {
        "250929-094802",
        "240531-090402",
        "250930-141522",
        "250930-151522",
        "[object Object]",
    }


def test_structured_sr_ids_use_start_time_and_known_clients_only(base: SyncBase) -> None:
    base.add(JOBS, fresh_running_job("250924-101500"))
    base.add(
        CRR,
        {"Run ID": "250924-101500-Guy-Wilson", "Client ID": "Guy-Wilson", "Status": "Completed"},
    )
    # "C" + a client ID known from the data: the prefix is stripped.
    prefixed = base.add(
        CRR,
        {
            "Run ID": "SR-250924-001-T3304-S1-CCarl-Jones",
            "Client ID": "Carl-Jones",
            "Status": "Completed",
            "Start Time": "2025-09-24T10:15:00.000Z",
        },
    )
    # "CPriya-Shah": "Priya-Shah" is known nowhere, so the C stays (never a rule of thumb).
    unknown = base.add(
        CRR,
        {
            "Run ID": "SR-250924-001-T3304-S1-CPriya-Shah",
            "Status": "Completed",
            "Start Time": "2025-09-24T10:15:00.000Z",
        },
    )
    # No Start Time: the row's created time gives the time of day.
    created = base.add(
        CRR,
        {
            "Run ID": "SR-250924-001-T3304-S2-Tom-Baker",
            "Client ID": "Tom-Baker",
            "Status": "Completed",
        },
        created=datetime(2025, 9, 24, 10, 15, tzinfo=UTC),
    )
    # Start time days away from the ID's date: unconvertible, flagged, left alone.
    far = base.add(
        CRR,
        {
            "Run ID": "SR-250924-001-T3304-S1-Eva-Novak",
            "Client ID": "Eva-Novak",
            "Status": "Completed",
            "Start Time": "2025-09-30T10:15:00.000Z",
        },
    )

    plan = base.plan()
    assert changes(plan, CRR, prefixed) == {
        "Run ID": ("SR-250924-001-T3304-S1-CCarl-Jones", "250924-101500-Carl-Jones")
    }
    assert changes(plan, CRR, unknown) == {
        "Run ID": ("SR-250924-001-T3304-S1-CPriya-Shah", "250924-101500-CPriya-Shah"),
        "Client ID": (None, "CPriya-Shah"),
    }
    assert changes(plan, CRR, created) == {
        "Run ID": ("SR-250924-001-T3304-S2-Tom-Baker", "250924-101500-Tom-Baker")
    }
    (flag,) = entries(plan, CRR, far)
    assert flag.action is Action.ATTENTION
    assert "6 days from the ID's date" in flag.attention[0]
    assert not entries(plan, JOBS)  # all converted rows belong to the existing job

    base.converge(plan)
    assert {
        "250924-101500-Carl-Jones",
        "250924-101500-CPriya-Shah",
        "250924-101500-Tom-Baker",
    } <= set(base.by_key(CRR))


def test_doubled_suffix_and_apify_tagged_ids(base: SyncBase) -> None:
    base.add(JOBS, fresh_running_job("251007-070457"))
    doubled = base.add(
        CRR,
        {
            "Run ID": "251007-070457-Guy-Wilson-Guy-Wilson",
            "Client ID": "Guy-Wilson",
            "Status": "Completed",
        },
    )
    apify = base.add(
        CRR,
        {
            "Run ID": "251007-070457-apify-8MSTBAfqMzuXPvgB3",
            "Client ID": "Carl-Jones",
            "Status": "Completed",
        },
    )
    kept = base.add(
        CRR,
        {
            "Run ID": "251007-070457-apify-AAAAAAAAAAAAAAAAA",
            "Client ID": "Tom-Baker",
            "Apify Run ID": "already-set",
            "Status": "Completed",
        },
    )
    nameless = base.add(
        CRR, {"Run ID": "251007-070457-apify-BBBBBBBBBBBBBBBBB", "Status": "Completed"}
    )

    plan = base.plan()
    assert changes(plan, CRR, doubled) == {
        "Run ID": ("251007-070457-Guy-Wilson-Guy-Wilson", "251007-070457-Guy-Wilson")
    }
    assert changes(plan, CRR, apify) == {
        "Run ID": ("251007-070457-apify-8MSTBAfqMzuXPvgB3", "251007-070457-Carl-Jones"),
        "Apify Run ID": (None, "8MSTBAfqMzuXPvgB3"),
    }
    assert changes(plan, CRR, kept) == {
        "Run ID": ("251007-070457-apify-AAAAAAAAAAAAAAAAA", "251007-070457-Tom-Baker")
    }
    (flag,) = entries(plan, CRR, nameless)
    assert flag.action is Action.ATTENTION and "names no client" in flag.attention[0]

    base.converge(plan)
    assert base.get(CRR, apify)["Apify Run ID"] == "8MSTBAfqMzuXPvgB3"
    assert base.get(CRR, kept)["Apify Run ID"] == "already-set"


def test_legacy_statuses_are_mapped_and_unmappable_ones_flagged(base: SyncBase) -> None:
    job = base.add(
        JOBS,
        {
            "Run ID": "250930-100000",
            "Status": "Done",
            **zero_aggregates(**{"Clients Processed": 4, "Clients With Errors": 1}),
        },
    )
    ok = base.add(CRR, {"Run ID": "250930-100000-A", "Client ID": "A", "Status": "Success"})
    err = base.add(
        CRR, {"Run ID": "250930-100000-B", "Client ID": "B", "Status": "completed_with_errors"}
    )
    failed = base.add(CRR, {"Run ID": "250930-100000-C", "Client ID": "C", "Status": "Errored"})
    odd = base.add(CRR, {"Run ID": "250930-100000-D", "Client ID": "D", "Status": "Recovery"})

    plan = base.plan()
    assert changes(plan, JOBS, job) == {"Status": ("Done", "Completed")}
    assert changes(plan, CRR, ok) == {"Status": ("Success", "Completed")}
    assert changes(plan, CRR, err) == {"Status": ("completed_with_errors", "Completed")}
    assert changes(plan, CRR, failed) == {"Status": ("Errored", "Failed")}
    (flag,) = entries(plan, CRR, odd)
    assert flag.action is Action.ATTENTION
    assert flag.attention == [
        "Status 'Recovery' is unmappable (not a known status or legacy alias); left unchanged, "
        "not guessed"
    ]

    again = base.converge(plan)
    assert base.get(CRR, odd)["Status"] == "Recovery"
    assert [r.record_id for r in again.records] == [odd]


def test_stale_running_rows_are_failed_with_a_note(base: SyncBase) -> None:
    job = base.add(
        JOBS,
        {
            "Run ID": "250930-100000",
            "Status": "Running",
            "Start Time": at(hours=6),
            "Last Updated": at(hours=5),
            "System Notes": "started by cron",
        },
    )
    c1 = base.add(
        CRR,
        {
            "Run ID": "250930-100000-A",
            "Client ID": "A",
            "Status": "In Progress",
            "Start Time": at(hours=6),
            "Last Updated": at(hours=4),
            "Profiles Examined for Scoring": 3,
        },
    )
    # No Last Updated and no Start Time: aged by its created time.
    c2 = base.add(
        CRR,
        {"Run ID": "250930-100000-B", "Client ID": "B", "Status": "Running"},
        created=NOW - timedelta(hours=3),
    )
    # A job whose own row is old but whose client is still being updated is not stale.
    live_job = base.add(
        JOBS, {"Run ID": "250930-110000", "Status": "Running", "Last Updated": at(hours=3)}
    )
    live = base.add(
        CRR,
        {
            "Run ID": "250930-110000-A",
            "Client ID": "A",
            "Status": "Running",
            "Last Updated": at(minutes=10),
        },
    )

    plan = base.plan()
    job_note = (
        "started by cron\n" + STAMP + "Stale: still Running with no update since "
        "2025-10-01T07:00:00.000Z (Last Updated), 5h ago (threshold 2h); marked Failed"
    )
    got = changes(plan, JOBS, job)
    assert got["Status"] == ("Running", "Failed")
    assert got["System Notes"] == ("started by cron", job_note)
    assert got["Clients Processed"] == (None, 2) and got["Clients With Errors"] == (None, 2)
    assert got["Total Profiles Examined"] == (None, 3)
    assert "Start Time" not in got  # only empty times are filled
    assert changes(plan, CRR, c1) == {
        "Status": ("In Progress", "Failed"),
        "System Notes": (
            None,
            STAMP + "Stale: still Running with no update since "
            "2025-10-01T08:00:00.000Z (Last Updated), 4h ago (threshold 2h); "
            "marked Failed",
        ),
    }
    assert changes(plan, CRR, c2)["System Notes"] == (
        None,
        STAMP + "Stale: still Running with no update since 2025-10-01T09:00:00.000Z "
        "(created time), 3h ago (threshold 2h); marked Failed",
    )
    assert not entries(plan, JOBS, live_job) and not entries(plan, CRR, live)

    base.converge(plan)
    assert base.get(JOBS, job)["Status"] == "Failed"
    assert base.get(JOBS, job)["System Notes"] == job_note
    assert base.get(CRR, live)["Status"] == "Running"


def test_stale_threshold_is_an_option(base: SyncBase) -> None:
    row = base.add(
        CRR,
        {
            "Run ID": "250930-100000-A",
            "Client ID": "A",
            "Status": "Running",
            "Last Updated": at(hours=3),
        },
    )
    base.add(JOBS, fresh_running_job("250930-100000"))
    assert not base.plan(stale_after=timedelta(hours=4)).records
    assert changes(base.plan(stale_after=timedelta(hours=2)), CRR, row)["Status"] == (
        "Running",
        "Failed",
    )


def test_a_fresh_client_run_under_a_finished_job_is_left_to_its_worker(base: SyncBase) -> None:
    """An orchestrator may complete its job before its last worker closes: the worker is
    alive (fresh), so sync leaves the row to it; once silent past the threshold it fails."""
    base.add(
        JOBS,
        {
            "Run ID": "250930-100000",
            "Status": "Completed",
            "Start Time": at(hours=1),
            "End Time": at(minutes=30),
            **zero_aggregates(**{"Clients Processed": 2}),
        },
    )
    base.add(
        CRR,
        {
            "Run ID": "250930-100000-A",
            "Client ID": "A",
            "Status": "Completed",
            "Start Time": at(hours=1),
            "End Time": at(minutes=30),
        },
    )
    open_ = base.add(
        CRR,
        {
            "Run ID": "250930-100000-B",
            "Client ID": "B",
            "Status": "Running",
            "Start Time": at(hours=1),
            "Last Updated": at(minutes=5),
            "System Notes": "worker 3",
        },
    )

    plan = base.plan()  # 2 h threshold: updated 5 minutes ago, fresh
    assert entries(plan, CRR, open_) == []
    stale = base.plan(stale_after=timedelta(minutes=1))
    assert changes(stale, CRR, open_)["Status"] == ("Running", "Failed")
    assert "Stale: still Running" in changes(stale, CRR, open_)["System Notes"][1]
    base.converge(stale)
    assert base.get(CRR, open_)["Status"] == "Failed"


def test_missing_and_wrong_aggregates_are_recomputed(base: SyncBase) -> None:
    metrics_a = {
        "Profiles Examined for Scoring": 10,
        "Profiles Successfully Scored": 8,
        "Profile Scoring Tokens": 1000,
        "Total Posts Harvested": 5,
        "Posts Examined for Scoring": 5,
        "Posts Successfully Scored": 4,
        "Post Scoring Tokens": 50,
    }
    metrics_b = {"Profiles Examined for Scoring": 2, "Profiles Successfully Scored": 2}
    missing = base.add(JOBS, {"Run ID": "250930-100000", "Status": "Completed"})
    wrong = base.add(
        JOBS,
        {
            "Run ID": "250930-110000",
            "Status": "Completed",
            "Start Time": "2025-09-30T11:00:00.000Z",
            **zero_aggregates(**{"Clients Processed": 3, "Total Profiles Examined": 99}),
        },
    )
    for run, start in (("250930-100000", "10"), ("250930-110000", "11")):
        base.add(
            CRR,
            {
                "Run ID": f"{run}-A",
                "Client ID": "A",
                "Status": "Completed",
                "Start Time": f"2025-09-30T{start}:00:05.000Z",
                "End Time": f"2025-09-30T{start}:05:00.000Z",
                **metrics_a,
            },
        )
        base.add(
            CRR,
            {
                "Run ID": f"{run}-B",
                "Client ID": "B",
                "Status": "Failed",
                "Start Time": f"2025-09-30T{start}:00:45.000Z",
                "End Time": f"2025-09-30T{start}:09:00.000Z",
                **metrics_b,
            },
        )

    plan = base.plan()
    assert changes(plan, JOBS, missing) == {
        "Start Time": (None, "2025-09-30T10:00:05.000Z"),
        "End Time": (None, "2025-09-30T10:09:00.000Z"),
        "Clients Processed": (None, 2),
        "Clients With Errors": (None, 1),
        "Total Profiles Examined": (None, 12),
        "Successful Profiles": (None, 10),
        "Total Posts Harvested": (None, 5),
        "Posts Examined for Scoring": (None, 5),
        "Posts Successfully Scored": (None, 4),
        "Profile Scoring Tokens": (None, 1000),
        "Post Scoring Tokens": (None, 50),
    }
    assert changes(plan, JOBS, wrong) == {
        "End Time": (None, "2025-09-30T11:09:00.000Z"),
        "Clients Processed": (3, 2),
        "Clients With Errors": (0, 1),
        "Total Profiles Examined": (99, 12),
        "Successful Profiles": (0, 10),
        "Total Posts Harvested": (0, 5),
        "Posts Examined for Scoring": (0, 5),
        "Posts Successfully Scored": (0, 4),
        "Profile Scoring Tokens": (0, 1000),
        "Post Scoring Tokens": (0, 50),
    }
    (entry,) = entries(plan, JOBS, wrong)
    assert any("aggregates disagree with the 2 client row(s)" in r for r in entry.reasons)

    base.converge(plan)
    assert base.get(JOBS, wrong)["Start Time"] == "2025-09-30T11:00:00.000Z"  # never rewritten


def test_orphan_client_rows_get_a_job_row(base: SyncBase) -> None:
    base.add(
        CRR,
        {
            "Run ID": "250930-100000-A",
            "Client ID": "A",
            "Status": "Completed",
            "Start Time": "2025-09-30T10:00:05.000Z",
            "End Time": "2025-09-30T10:04:00.000Z",
            "Profiles Examined for Scoring": 4,
            "Profiles Successfully Scored": 3,
        },
    )
    base.add(
        CRR,
        {
            "Run ID": "250930-100000-B",
            "Client ID": "B",
            "Status": "Failed",
            "Start Time": "2025-09-30T10:00:45.000Z",
            "End Time": "2025-09-30T10:06:00.000Z",
        },
    )
    # A job whose client is still running (and fresh) is created Running, with no end.
    base.add(
        CRR,
        {
            "Run ID": "251001-113000-A",
            "Client ID": "A",
            "Status": "Running",
            "Start Time": at(minutes=29),
            "End Time": None,
            "Last Updated": at(minutes=2),
        },
    )

    plan = base.plan()
    assert changes(plan, JOBS, key="250930-100000", action=Action.CREATE) == {
        "Run ID": (None, "250930-100000"),
        "Status": (None, "Completed"),
        "Start Time": (None, "2025-09-30T10:00:05.000Z"),
        "End Time": (None, "2025-09-30T10:06:00.000Z"),
        "System Notes": (None, STAMP + "job row created from 2 client run row(s) that had none"),
        **{
            k: (None, v)
            for k, v in zero_aggregates(
                **{
                    "Clients Processed": 2,
                    "Clients With Errors": 1,
                    "Total Profiles Examined": 4,
                    "Successful Profiles": 3,
                }
            ).items()
        },
    }
    running = changes(plan, JOBS, key="251001-113000", action=Action.CREATE)
    assert running["Status"] == (None, "Running") and "End Time" not in running
    assert plan.summary.create == 2

    base.converge(plan)
    jobs = base.by_key(JOBS)
    assert jobs["250930-100000"]["Status"] == "Completed"
    assert jobs["251001-113000"]["Status"] == "Running"


def test_client_id_follows_the_run_id(base: SyncBase) -> None:
    base.add(JOBS, fresh_running_job("250930-100000"))
    wrong = base.add(
        CRR,
        {"Run ID": "250930-100000-Guy-Wilson", "Client ID": "Carl-Jones", "Status": "Completed"},
    )
    empty = base.add(CRR, {"Run ID": "250930-100000-Tom-Baker", "Status": "Completed"})

    plan = base.plan()
    assert changes(plan, CRR, wrong) == {"Client ID": ("Carl-Jones", "Guy-Wilson")}
    (entry,) = entries(plan, CRR, wrong)
    assert entry.reasons == [
        "Client ID 'Carl-Jones' disagrees with the Run ID's client 'Guy-Wilson': the Run ID is "
        "the identity, so Client ID is set to it"
    ]
    assert changes(plan, CRR, empty) == {"Client ID": (None, "Tom-Baker")}

    base.converge(plan)
    assert base.get(CRR, wrong)["Client ID"] == "Guy-Wilson"


def test_duplicates_merge_into_the_oldest_row(base: SyncBase) -> None:
    t0 = datetime(2025, 9, 30, 10, 0, tzinfo=UTC)
    oldest = base.add(
        JOBS,
        {
            "Run ID": "250930-100000",
            "Status": "Completed",
            "Stream": 1,
            "Start Time": "2025-09-30T10:00:00.000Z",
            "System Notes": "first",
            **zero_aggregates(),
        },
        created=t0,
    )
    middle = base.add(
        JOBS,
        {"Run ID": "250930-100000.0", "Status": "Failed", "Stream": 2, "System Notes": "second"},
        created=t0 + timedelta(seconds=1),
    )
    newest = base.add(
        JOBS,
        {
            "Run ID": "250930-100000",
            "Status": "Running",
            "End Time": "2025-09-30T10:30:00.000Z",
            "System Notes": "first",
        },
        created=t0 + timedelta(seconds=2),
    )
    # Same created time: the lower record ID is the older one.
    twins = {
        base.add(
            CRR,
            {
                "Run ID": "250930-100000-A",
                "Client ID": "A",
                "Status": "Completed",
                "Profiles Examined for Scoring": n,
            },
            created=t0,
        ): n
        for n in (1, 2)
    }

    plan = base.plan()
    got = changes(plan, JOBS, oldest)
    assert got["Status"] == ("Completed", "Failed")
    assert got["Stream"] == (1, 2)
    assert got["End Time"] == (None, "2025-09-30T10:30:00.000Z")
    assert got["System Notes"] == (
        "first",
        f"first\nsecond\n{STAMP}merged duplicate row(s) {middle}, {newest} into this row",
    )
    assert got["Clients Processed"] == (0, 1)  # over the client rows as merged
    assert "Clients With Errors" not in got  # 0 already
    assert "Run ID" not in got
    deletes = entries(plan, JOBS, action=Action.DELETE)
    assert sorted((d.record_id, d.merged_into) for d in deletes) == sorted(
        [(middle, oldest), (newest, oldest)]
    )
    # A delete carries the values it held, by logical key as every plan entry.
    assert {c.field: c.old for c in entries(plan, JOBS, middle)[0].changes} == {
        "run_id": "250930-100000.0",
        "status": "Failed",
        "stream": 2,
        "system_notes": "second",
    }
    kept, dropped = sorted(twins)
    assert changes(plan, CRR, kept)["Profiles Examined for Scoring"] == (
        twins[kept],
        twins[dropped],
    )
    assert entries(plan, CRR, dropped)[0].action is Action.DELETE

    base.converge(plan)
    assert set(base.rows(JOBS)) == {oldest}
    assert set(base.rows(CRR)) == {kept}
    job = base.get(JOBS, oldest)
    assert (job["Status"], job["Stream"], job["End Time"]) == (
        "Failed",
        2,
        "2025-09-30T10:30:00.000Z",
    )


def test_invalid_metrics_are_flagged_not_fixed(base: SyncBase) -> None:
    base.add(JOBS, fresh_running_job("250930-100000"))
    negative = base.add(
        CRR,
        {
            "Run ID": "250930-100000-A",
            "Client ID": "A",
            "Status": "Completed",
            "Profiles Examined for Scoring": -3,
        },
    )
    over = base.add(
        CRR,
        {
            "Run ID": "250930-100000-B",
            "Client ID": "B",
            "Status": "Completed",
            "Profiles Examined for Scoring": 10,
            "Profiles Successfully Scored": 12,
            "Apify API Costs": -1.5,
        },
    )

    plan = base.plan()
    assert not plan.has_changes
    assert [(r.record_id, r.action, r.attention) for r in plan.records] == [
        (negative, Action.ATTENTION, ["field 'Profiles Examined for Scoring' holds -3: negative"]),
        (
            over,
            Action.ATTENTION,
            [
                "field 'Apify API Costs' holds -1.5: negative",
                "Profiles Successfully Scored (12) is greater than "
                "Profiles Examined for Scoring (10)",
            ],
        ),
    ]
    assert plan.summary.attention == 2
    base.log.clear()
    base.apply(plan)
    assert base.log.total == 0  # nothing to write, nothing read
    assert base.get(CRR, negative)["Profiles Examined for Scoring"] == -3
