"""Run IDs (SPEC §1.2): types, validation, generation, suffixing, uniqueness, legacy forms."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from jobtrack_airtable.admin.legacy import LegacyFormat, recognise
from jobtrack_airtable.errors import (
    InvalidClientIdError,
    InvalidInputError,
    InvalidRunIdError,
    RunIdTypeError,
)
from jobtrack_airtable.run_ids import (
    BaseRunId,
    ClientRunId,
    as_base_run_id,
    as_client_run_id,
    format_base_run_id,
    generate_base_run_id,
    parse_base_run_id,
    parse_run_id,
    validate_client_id,
    with_client,
)

BASE = "250930-141522"
CLIENT = "250930-141522-Guy-Wilson"


def fixed_clock(dt: datetime):
    return lambda: dt


# --- types and coercion --------------------------------------------------------------------


def test_base_run_id_is_a_validated_str():
    run = BaseRunId(BASE)
    assert run == BASE
    assert isinstance(run, str)
    assert repr(run) == f"BaseRunId({BASE!r})"
    assert run.to_datetime() == datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)


def test_client_run_id_parts():
    run = ClientRunId(CLIENT)
    assert run.base == BASE
    assert isinstance(run.base, BaseRunId)
    assert run.client_id == "Guy-Wilson"
    assert type(run.client_id) is str


def test_types_are_distinct():
    assert not isinstance(BaseRunId(BASE), ClientRunId)
    assert not isinstance(ClientRunId(CLIENT), BaseRunId)


def test_constructing_from_same_type_returns_it():
    base = BaseRunId(BASE)
    client = ClientRunId(CLIENT)
    assert BaseRunId(base) is base
    assert ClientRunId(client) is client
    assert as_base_run_id(base) is base
    assert as_client_run_id(client) is client


def test_client_run_id_where_base_expected_is_a_type_error():
    with pytest.raises(RunIdTypeError, match=r"is a ClientRunId.*use \.base") as info:
        as_base_run_id(ClientRunId(CLIENT))
    assert CLIENT in str(info.value)
    assert isinstance(info.value, TypeError)


def test_base_run_id_where_client_expected_is_a_type_error():
    with pytest.raises(RunIdTypeError, match="is a BaseRunId") as info:
        as_client_run_id(BaseRunId(BASE))
    assert BASE in str(info.value)


def test_client_string_where_base_expected():
    with pytest.raises(InvalidRunIdError, match="is a client run ID; expected a base run ID"):
        as_base_run_id(CLIENT)


def test_base_string_where_client_expected():
    with pytest.raises(InvalidRunIdError, match="is a base run ID; expected a client run ID"):
        as_client_run_id(BASE)


class Obj:
    def __repr__(self) -> str:
        return "<Obj>"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "None"),
        ({"id": 1}, "{'id': 1}"),
        (Obj(), "<Obj>"),
        (250930141522, "250930141522"),
        (250930.141522, "250930.141522"),
        (True, "True"),
        (b"250930-141522", "b'250930-141522'"),
        (["250930-141522"], "['250930-141522']"),
    ],
)
@pytest.mark.parametrize("coerce", [as_base_run_id, as_client_run_id, parse_run_id])
def test_non_strings_rejected_with_type_error(coerce, value, shown):
    with pytest.raises(RunIdTypeError) as info:
        coerce(value)
    assert shown in str(info.value)
    assert "expected a string" in str(info.value)
    assert info.value.value is value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("[object Object]", "stringified missing value"),
        ("[object Undefined]", "stringified missing value"),
        ("undefined", "stringified missing value"),
        ("null", "stringified missing value"),
        ("None", "stringified missing value"),
        ("NaN", "stringified missing value"),
        ("", "empty or whitespace only"),
        ("   ", "empty or whitespace only"),
        ("\t\n", "empty or whitespace only"),
    ],
)
@pytest.mark.parametrize("coerce", [as_base_run_id, as_client_run_id, parse_run_id])
def test_placeholders_and_empty_rejected(coerce, value, reason):
    with pytest.raises(InvalidRunIdError, match=reason) as info:
        coerce(value)
    assert not isinstance(info.value, RunIdTypeError)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "25093-141522",
        "2509300-141522",
        "250930_141522",
        "250930141522",
        "250930-14152",
        " 250930-141522",
        "250930-141522 ",
        "250930-141522\n",
        "٢٥٠٩٣٠-١٤١٥٢٢",  # Arabic-Indic digits match \d but are not run IDs
        "abcdef-ghijkl",
        "250930-141522.0",
        "job_post_scoring_stream1_20250929094802",
    ],
)
def test_malformed_base_rejected(value):
    with pytest.raises(InvalidRunIdError) as info:
        parse_base_run_id(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "991399-996199",  # the SPEC's example
        "250230-120000",  # 30 February
        "250931-120000",  # 31 September
        "250001-120000",  # month 0
        "250900-120000",  # day 0
        "250930-240000",
        "250930-126000",
        "250930-120060",  # no leap seconds
        "250229-120000",  # 2025 is not a leap year
    ],
)
def test_impossible_calendar_dates_rejected(value):
    with pytest.raises(InvalidRunIdError, match="not a real calendar date and time") as info:
        parse_base_run_id(value)
    assert repr(value) in str(info.value)
    with pytest.raises(InvalidRunIdError, match="not a real calendar date and time"):
        ClientRunId(f"{value}-Guy-Wilson")
    with pytest.raises(InvalidRunIdError, match="not a real calendar date and time"):
        parse_run_id(value)


def test_leap_day_accepted():
    assert parse_base_run_id("240229-235959").to_datetime() == datetime(
        2024, 2, 29, 23, 59, 59, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value",
    [
        "250930-141522-",
        "250930-141522-[object Object]",
        "250930-141522-undefined",
        "250930-141522- Guy",
        "250930-141522-Guy ",
        "250930-141522-Guy\nWilson",
        "250930-141522-" + "x" * 101,
        "250930-141522-250930-141522-Guy",  # a run ID passed as the client ID
        "250930-141522Guy",
        "SR-250924-001-T3304-S1-Guy-Wilson",
    ],
)
def test_malformed_client_run_id_rejected(value):
    with pytest.raises(InvalidRunIdError) as info:
        ClientRunId(value)
    assert repr(value)[:40] in str(info.value)


def test_strict_parse_error_points_at_legacy_conversion():
    pointer = r"legacy IDs of old bases are converted by jobtrack_airtable\.admin\.legacy"
    with pytest.raises(InvalidRunIdError, match=pointer):
        parse_run_id("job_post_scoring_stream1_20250929094802")
    with pytest.raises(InvalidRunIdError, match=pointer):
        ClientRunId("SR-250924-001-T3304-S1-Guy-Wilson")
    # ...and the admin library converts what the worker core refuses.
    assert recognise("job_post_scoring_stream1_20250929094802").converted == "250929-094802"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (BASE, BaseRunId),
        (CLIENT, ClientRunId),
        ("250930-141522-O'Brien", ClientRunId),
        ("250930-141522-A", ClientRunId),
    ],
)
def test_parse_run_id_tells_kinds_apart(value, kind):
    parsed = parse_run_id(value)
    assert type(parsed) is kind
    assert parsed == value


def test_run_ids_pickle_and_order_chronologically():
    client = ClientRunId(CLIENT)
    assert pickle.loads(pickle.dumps(client)) == client
    assert type(pickle.loads(pickle.dumps(client))) is ClientRunId
    ids = [BaseRunId(s) for s in ("251001-000000", "250930-235959", "241231-120000")]
    assert sorted(ids) == sorted(ids, key=lambda r: r.to_datetime())


def test_pydantic_fields_validate_with_our_rules():
    class Row(BaseModel):
        job: BaseRunId
        client: ClientRunId

    row = Row(job=BASE, client=CLIENT)
    assert type(row.job) is BaseRunId
    assert type(row.client) is ClientRunId
    assert row.model_dump() == {"job": BASE, "client": CLIENT}
    assert row.model_dump_json() == f'{{"job":"{BASE}","client":"{CLIENT}"}}'
    with pytest.raises(ValidationError, match="is a client run ID"):
        Row(job=CLIENT, client=CLIENT)
    with pytest.raises(ValidationError, match=r"\[object Object\]"):
        Row(job=BASE, client="[object Object]")


# --- client IDs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    [
        "Guy-Wilson",
        "A",
        "x" * 100,
        "O'Brien",
        'The "Quote" Co',
        "Mary Ann Smith",
        "Zoë Ångström-Łukasz",
        "山田太郎",
        "Guy-Wilson-Guy-Wilson",  # odd but valid; recognise() decides whether it is doubled
        "client-with--double-hyphen",
        "back\\slash",
        "a'b\"c{d}e",
        "Nan",  # a first name, not the NaN placeholder
    ],
)
def test_valid_client_ids(client_id):
    assert validate_client_id(client_id) == client_id


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("x" * 101, "101 characters; at most 100"),
        (" Guy", "leading or trailing whitespace"),
        ("Guy ", "leading or trailing whitespace"),
        ("\u00a0Guy", "leading or trailing whitespace"),
        ("Guy\nWilson", r"control character \(U\+000A\)"),
        ("Guy\rWilson", r"control character \(U\+000D\)"),
        ("Guy\tWilson", r"control character \(U\+0009\)"),
        ("Guy\x00", r"control character \(U\+0000\)"),
        ("Guy\x7f", r"control character \(U\+007F\)"),
        ("Guy\x85", r"control character \(U\+0085\)"),
        ("Guy\x9fWilson", r"control character \(U\+009F\)"),
        ("Guy\u2028Wilson", "line separator"),
        ("Guy\u2029Wilson", "paragraph separator"),
        ("Guy\ud800", "unpaired surrogate"),
        ("[object Object]", "stringified missing value"),
        ("undefined", "stringified missing value"),
        ("null", "stringified missing value"),
        ("None", "stringified missing value"),
        ("250930-141522-Guy-Wilson", "starts with a run ID"),
        ("250930-141522", "starts with a run ID"),
    ],
)
def test_invalid_client_ids(value, reason):
    with pytest.raises(InvalidClientIdError, match=reason) as info:
        validate_client_id(value)
    assert info.value.value == value
    assert str(info.value).startswith("invalid client ID ")


@pytest.mark.parametrize("value", [None, 42, 4.2, True, {"id": "Guy"}, ["Guy"], Obj()])
def test_non_string_client_ids(value):
    with pytest.raises(InvalidClientIdError, match="expected a string") as info:
        validate_client_id(value)
    assert repr(value) in str(info.value)


# --- suffixing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_id",
    ["Guy-Wilson", "O'Brien", 'The "Quote" Co', "Mary Ann", "Zoë-Ångström", "a-b-c-d"],
)
def test_with_client_builds_and_is_idempotent(client_id):
    run = with_client(BASE, client_id)
    assert type(run) is ClientRunId
    assert run == f"{BASE}-{client_id}"
    assert run.client_id == client_id
    assert run.base == BASE
    assert with_client(run, client_id) is run
    assert with_client(str(run), client_id) == run
    assert with_client(BaseRunId(BASE), client_id) == run


def test_adding_the_same_client_never_doubles():
    assert with_client("250930-141522-Guy-Wilson", "Guy-Wilson") == "250930-141522-Guy-Wilson"


def test_adding_a_different_client_is_an_error():
    with pytest.raises(InvalidRunIdError, match="already belongs to client 'Guy-Wilson'") as info:
        with_client(CLIENT, "Carl-Jones")
    assert CLIENT in str(info.value)


def test_with_client_on_doubled_legacy_id_explains():
    with pytest.raises(InvalidRunIdError, match="doubled legacy suffix"):
        with_client("251007-070457-Guy-Wilson-Guy-Wilson", "Guy-Wilson")


@pytest.mark.parametrize(
    ("run_id", "client_id", "error"),
    [
        (None, "Guy", RunIdTypeError),
        ("[object Object]", "Guy", InvalidRunIdError),
        (BASE, "", InvalidClientIdError),
        (BASE, None, InvalidClientIdError),
        (BASE, "undefined", InvalidClientIdError),
        (BASE, "Guy\n", InvalidClientIdError),
        (BASE, CLIENT, InvalidClientIdError),
        ("250930-141522.0", "Guy", InvalidRunIdError),
    ],
)
def test_with_client_rejects_bad_input(run_id, client_id, error):
    with pytest.raises(error):
        with_client(run_id, client_id)


def test_from_parts():
    assert ClientRunId.from_parts(BASE, "O'Brien") == f"{BASE}-O'Brien"
    with pytest.raises(RunIdTypeError):
        ClientRunId.from_parts(ClientRunId(CLIENT), "O'Brien")


# --- generation, formatting, time zones ------------------------------------------------------


def test_generate_uses_utc_by_default():
    instant = datetime(2025, 9, 30, 16, 15, 22, 987654, tzinfo=ZoneInfo("Europe/Paris"))
    assert generate_base_run_id(clock=fixed_clock(instant)) == "250930-141522"


def test_generate_default_clock_is_now():
    before = datetime.now(UTC).replace(microsecond=0)
    run = generate_base_run_id()
    after = datetime.now(UTC)
    assert before <= run.to_datetime() <= after


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        (UTC, "250930-141522"),
        (ZoneInfo("America/New_York"), "250930-101522"),
        (ZoneInfo("Asia/Kolkata"), "250930-194522"),
        (ZoneInfo("Pacific/Kiritimati"), "251001-041522"),
        (timezone(timedelta(hours=-9, minutes=-30)), "250930-044522"),
    ],
)
def test_time_zone_is_configurable(tz, expected):
    instant = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
    run = generate_base_run_id(clock=fixed_clock(instant), tz=tz)
    assert run == expected
    assert run.to_datetime(tz) == instant
    assert format_base_run_id(instant, tz) == expected
    assert BaseRunId.from_datetime(instant, tz) == expected


def test_naive_datetimes_refused():
    with pytest.raises(InvalidInputError, match="naive"):
        format_base_run_id(datetime(2025, 9, 30, 14, 15, 22))
    with pytest.raises(InvalidInputError, match="naive"):
        generate_base_run_id(clock=fixed_clock(datetime(2025, 9, 30)))


@pytest.mark.parametrize(
    "when", [datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)]
)
def test_outside_two_digit_year_range_refused(when):
    with pytest.raises(InvalidInputError, match="2000-2099"):
        format_base_run_id(when)


def test_format_refuses_non_datetimes():
    with pytest.raises(InvalidInputError, match="expected a datetime"):
        format_base_run_id("2025-09-30")  # type: ignore[arg-type]


# --- uniqueness ----------------------------------------------------------------------------


def test_next_second_crosses_midnight_and_year_end():
    # Tracker.job() moves to the next second when a run ID is taken.
    assert BaseRunId("250930-141522").next_second() == "250930-141523"
    assert BaseRunId("251231-235959").next_second() == "260101-000000"
    assert BaseRunId("240228-235959").next_second() == "240229-000000"
    assert type(BaseRunId(BASE).next_second()) is BaseRunId


def test_no_run_id_after_2099():
    with pytest.raises(InvalidRunIdError, match="2000-2099"):
        BaseRunId("991231-235959").next_second()


# --- legacy forms (SPEC §1.2 table) ----------------------------------------------------------

START = datetime(2025, 9, 24, 9, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "fmt", "converted", "kwargs"),
    [
        # standard / client-suffixed: unchanged
        ("250930-141522", LegacyFormat.STANDARD, "250930-141522", {}),
        ("250930-141522-Guy-Wilson", LegacyFormat.CLIENT, "250930-141522-Guy-Wilson", {}),
        ("250930-141522-O'Brien", LegacyFormat.CLIENT, "250930-141522-O'Brien", {}),
        ('250930-141522-"Quote"', LegacyFormat.CLIENT, '250930-141522-"Quote"', {}),
        ("250930-141522-Zoë Ång", LegacyFormat.CLIENT, "250930-141522-Zoë Ång", {}),
        # doubled suffix, for hyphenated and plain IDs, doubled or more
        (
            "251007-070457-Guy-Wilson-Guy-Wilson",
            LegacyFormat.DOUBLED_SUFFIX,
            "251007-070457-Guy-Wilson",
            {},
        ),
        (
            "251007-070457-Mary-Ann-Lee-Mary-Ann-Lee",
            LegacyFormat.DOUBLED_SUFFIX,
            "251007-070457-Mary-Ann-Lee",
            {},
        ),
        ("251007-070457-Acme-Acme", LegacyFormat.DOUBLED_SUFFIX, "251007-070457-Acme", {}),
        ("251007-070457-A-B-A-B-A-B", LegacyFormat.DOUBLED_SUFFIX, "251007-070457-A-B", {}),
        # job process IDs (UTC), any job name and stream
        (
            "job_post_scoring_stream1_20250929094802",
            LegacyFormat.JOB_PROCESS,
            "250929-094802",
            {},
        ),
        ("job_lead_scoring_stream12_20251231235959", LegacyFormat.JOB_PROCESS, "251231-235959", {}),
        ("job_harvest_stream3_20240229000000", LegacyFormat.JOB_PROCESS, "240229-000000", {}),
        # bypass IDs: epoch milliseconds, UTC
        ("job_post_scoring_bypass_1717146242405", LegacyFormat.BYPASS, "240531-090402", {}),
        ("job_profile_scoring_bypass_1759241722000", LegacyFormat.BYPASS, "250930-141522", {}),
        # Apify-tagged
        ("250930-141522-apify-8MSTBAfqMzuXPvgB3", LegacyFormat.APIFY, "250930-141522", {}),
        # structured SR: date from the ID, time from the start time
        (
            "SR-250924-001-T3304-S1-Guy-Wilson",
            LegacyFormat.STRUCTURED_SR,
            "250924-093005-Guy-Wilson",
            {"start_time": START},
        ),
        (
            "SR-250924-001-T3304-S1-CGuy-Wilson",
            LegacyFormat.STRUCTURED_SR,
            "250924-093005-Guy-Wilson",
            {"start_time": START, "known_client_ids": {"Guy-Wilson"}},
        ),
        (
            "SR-250924-017-T12-S4-O'Brien",
            LegacyFormat.STRUCTURED_SR,
            "250924-093005-O'Brien",
            {"start_time": START},
        ),
        # numeric artefact
        ("250930-141522.0", LegacyFormat.NUMERIC_ARTEFACT, "250930-141522", {}),
        ("250930-141522.00", LegacyFormat.NUMERIC_ARTEFACT, "250930-141522", {}),
    ],
)
def test_legacy_table(value, fmt, converted, kwargs):
    found = recognise(value, **kwargs)
    assert found.format is fmt
    assert found.converted == converted
    assert found.original == value
    assert found.is_legacy is (fmt not in {LegacyFormat.STANDARD, LegacyFormat.CLIENT})
    assert found.needs_rewrite is (converted != value)
    assert parse_run_id(found.converted) == converted
    if found.client_id is not None:
        assert validate_client_id(found.client_id) == found.client_id
        assert isinstance(found.run_id, ClientRunId)
    else:
        assert isinstance(found.run_id, BaseRunId)


def test_apify_run_id_kept_aside():
    found = recognise("250930-141522-apify-8MSTBAfqMzuXPvgB3")
    assert found.base == "250930-141522"
    assert found.client_id is None
    assert found.apify_run_id == "8MSTBAfqMzuXPvgB3"


def test_job_process_details():
    found = recognise("job_post_scoring_stream2_20250929094802")
    assert (found.job_name, found.stream) == ("post_scoring", 2)
    assert found.base.to_datetime() == datetime(2025, 9, 29, 9, 48, 2, tzinfo=UTC)


def test_bypass_is_utc_of_epoch_ms():
    ms = 1717146242405
    found = recognise(f"job_post_scoring_bypass_{ms}")
    expected = datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=0)
    assert found.base.to_datetime() == expected
    assert found.job_name == "post_scoring"


@pytest.mark.parametrize(
    "start",
    [
        datetime(2025, 9, 24, 9, 30, 5, tzinfo=UTC),
        datetime(2025, 9, 24, 11, 30, 5, tzinfo=ZoneInfo("Europe/Berlin")),  # CEST, same UTC
        datetime(2025, 9, 24, 9, 30, 5, 999999, tzinfo=UTC),  # sub-seconds dropped
    ],
)
def test_sr_start_time_is_converted_to_utc(start):
    found = recognise("SR-250924-001-T3304-S1-Guy-Wilson", start_time=start)
    assert found.converted == "250924-093005-Guy-Wilson"
    assert found.stream == 1
    assert found.reason is None


def test_sr_without_start_time_is_unconvertible():
    found = recognise("SR-250924-001-T3304-S1-Guy-Wilson")
    assert found.format is LegacyFormat.UNCONVERTIBLE
    assert found.needs_start_time is True
    assert found.converted is None
    assert found.run_id is None
    assert found.client_id == "Guy-Wilson"
    assert "no start time" in found.reason


def test_sr_start_time_a_day_off_uses_the_true_instant():
    # 23:30 on the 24th in Los Angeles is 06:30 UTC on the 25th: the ID's date was local.
    start = datetime(2025, 9, 24, 23, 30, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    found = recognise("SR-250924-001-T3304-S1-Guy-Wilson", start_time=start)
    assert found.format is LegacyFormat.STRUCTURED_SR
    assert found.converted == "250925-063000-Guy-Wilson"
    assert "differs from the ID's date" in found.reason


def test_sr_start_time_far_from_id_date_is_unconvertible():
    found = recognise(
        "SR-250924-001-T3304-S1-Guy-Wilson", start_time=datetime(2025, 10, 3, tzinfo=UTC)
    )
    assert found.format is LegacyFormat.UNCONVERTIBLE
    assert "9 days from the ID's date" in found.reason


def test_sr_naive_start_time_is_unconvertible():
    found = recognise("SR-250924-001-T3304-S1-Guy-Wilson", start_time=datetime(2025, 9, 24))
    assert found.format is LegacyFormat.UNCONVERTIBLE
    assert "not an aware datetime" in found.reason


@pytest.mark.parametrize(
    ("client_part", "known", "expected_client"),
    [
        ("CGuy-Wilson", set(), "CGuy-Wilson"),  # no evidence: never strip by rule of thumb
        ("CGuy-Wilson", {"Guy-Wilson"}, "Guy-Wilson"),
        ("CGuy-Wilson", {"Guy-Wilson", "CGuy-Wilson"}, "CGuy-Wilson"),  # whole ID is known
        ("Carl-Jones", {"arl-Jones"}, "arl-Jones"),  # only because the data says so
        ("Carl-Jones", {"Carl-Jones"}, "Carl-Jones"),
        ("Carl-Jones", {"Guy-Wilson"}, "Carl-Jones"),
        ("CCarl-Jones", {"Carl-Jones"}, "Carl-Jones"),
        ("C", {""}, "C"),  # stripping must leave a valid client ID
    ],
)
def test_sr_c_prefix_stripped_only_when_known(client_part, known, expected_client):
    found = recognise(
        f"SR-250924-001-T3304-S1-{client_part}", start_time=START, known_client_ids=known
    )
    assert found.client_id == expected_client
    assert found.converted == f"250924-093005-{expected_client}"


def test_known_client_id_is_never_read_as_doubled_or_apify():
    doubled = "251007-070457-Guy-Wilson-Guy-Wilson"
    found = recognise(doubled, known_client_ids=["Guy-Wilson-Guy-Wilson"])
    assert (found.format, found.converted) == (LegacyFormat.CLIENT, doubled)
    apify = "250930-141522-apify-8MSTBAfqMzuXPvgB3"
    found = recognise(apify, known_client_ids={"apify-8MSTBAfqMzuXPvgB3"})
    assert (found.format, found.client_id) == (LegacyFormat.CLIENT, "apify-8MSTBAfqMzuXPvgB3")


def test_surrounding_whitespace_is_removed():
    found = recognise("  250930-141522-Guy-Wilson\n")
    assert found.format is LegacyFormat.CLIENT
    assert found.converted == "250930-141522-Guy-Wilson"
    assert found.needs_rewrite
    assert found.reason == "surrounding whitespace removed"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "not a string: NoneType"),
        (250930141522, "not a string: int"),
        ({"id": 1}, "not a string: dict"),
        ("", "empty"),
        ("   ", "empty"),
        ("[object Object]", "stringified missing value"),
        ("undefined", "stringified missing value"),
        ("null", "stringified missing value"),
        ("991399-996199", "not a real calendar date"),
        ("991399-996199-Guy", "not a real calendar date"),
        ("250930-141522-[object Object]", "client ID part '[object Object]' is invalid"),
        ("250930-141522-Guy\tWilson", "control character"),
        ("250930-141522- Guy", "leading or trailing whitespace"),
        ("250930-141522-" + "x" * 101, "at most 100"),
        ("251007-070457-Guy\n-Guy\n", "control character"),  # doubled but still invalid
        ("job_post_scoring_stream1_20251399094802", "not a real date"),
        ("job_post_scoring_stream1_2025092909480", "matches no known run-ID form"),
        ("job_post_scoring_bypass_99999999999999999", "matches no known"),  # 17 digits
        ("job_post_scoring_bypass_9999999999999999", "out of range"),
        ("job_post_scoring_bypass_123", "outside 2000-2099"),
        ("SR-251399-001-T3304-S1-Guy-Wilson", "not a real date"),
        ("SR-250924-001-T3304-S1-", "matches no known"),
        ("SR-250924-001-T3304-S1-Guy\nWilson", "control character"),
        ("250930-141522.5", "matches no known"),
        ("250930 141522", "matches no known"),
        ("hello", "matches no known"),
    ],
)
def test_unconvertible_values(value, reason):
    found = recognise(value, start_time=START)
    assert found.format is LegacyFormat.UNCONVERTIBLE
    assert found.converted is None
    assert found.base is None
    assert found.is_legacy
    assert not found.needs_rewrite
    assert reason in found.reason
    assert found.original is value


# --- properties ----------------------------------------------------------------------------

aware_instants = st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2099, 12, 30),
    timezones=st.timezones(),
)


def _is_valid_client_id(value: str) -> bool:
    try:
        validate_client_id(value)
    except InvalidClientIdError:
        return False
    return True


# Valid client IDs: any printable text, rich in hyphens, quotes, spaces and non-ASCII letters.
client_ids = (
    st.lists(
        st.one_of(
            st.text(
                st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                min_size=1,
                max_size=12,
            ),
            st.sampled_from(["-", "'", '"', " ", "O'Brien", "Guy-Wilson", "Zoë", "-C", "\\"]),
        ),
        min_size=1,
        max_size=8,
    )
    .map(lambda parts: "".join(parts)[:100].strip())
    .filter(_is_valid_client_id)
)


@given(aware_instants)
def test_generate_format_parse_round_trip_in_utc(instant):
    run = generate_base_run_id(clock=fixed_clock(instant))
    assert parse_base_run_id(str(run)) == run
    assert parse_run_id(str(run)) == run
    assert run.to_datetime() == instant.astimezone(UTC).replace(microsecond=0)
    assert format_base_run_id(run.to_datetime()) == run


@given(aware_instants, st.timezones())
def test_round_trip_in_any_configured_zone(instant, tz):
    run = format_base_run_id(instant, tz)
    back = run.to_datetime(tz)
    assert format_base_run_id(back, tz) == run
    assert parse_base_run_id(str(run)) == run
    ambiguous = back.replace(fold=1).utcoffset() != back.utcoffset()  # DST fall-back hour
    if not ambiguous:
        # Compare in UTC: Python never calls an ambiguous local time equal across zones.
        assert back.astimezone(UTC) == instant.astimezone(UTC).replace(microsecond=0)


@given(client_ids)
def test_client_id_strategy_covers_the_awkward_characters(client_id):
    assert validate_client_id(client_id) == client_id
    assert ClientRunId.from_parts(BASE, client_id).client_id == client_id


@given(aware_instants, client_ids)
def test_suffixing_is_idempotent_for_any_valid_client_id(instant, client_id):
    base = format_base_run_id(instant)
    once = with_client(base, client_id)
    assert with_client(once, client_id) == once
    assert with_client(str(once), client_id) == once
    assert str(once) == f"{base}-{client_id}"
    parsed = parse_run_id(str(once))
    assert type(parsed) is ClientRunId
    assert (parsed.base, parsed.client_id) == (base, client_id)
    found = recognise(str(once), known_client_ids={client_id})
    assert (found.format, found.converted) == (LegacyFormat.CLIENT, str(once))


@given(aware_instants, client_ids)
def test_recognise_repairs_a_doubled_suffix(instant, client_id):
    base = format_base_run_id(instant)
    doubled = f"{base}-{client_id}-{client_id}"
    found = recognise(doubled)
    assert found.format is LegacyFormat.DOUBLED_SUFFIX
    # The smallest repeating unit wins, so "A-A" doubled is read as four "A"s.
    assert found.client_id is not None
    assert f"{base}-{client_id}".startswith(found.converted)
    assert with_client(found.converted, found.client_id) == found.converted


@given(st.text(max_size=40))
def test_recognise_never_raises_and_parse_agrees(value):
    found = recognise(value)
    if found.converted is not None:
        assert parse_run_id(found.converted) == found.converted
    try:
        parsed = parse_run_id(value)
    except InvalidRunIdError:
        return
    # Anything the strict parser accepts, recognise() accepts unchanged.
    assert found.converted == parsed or found.format in {
        LegacyFormat.DOUBLED_SUFFIX,
        LegacyFormat.APIFY,
    }
