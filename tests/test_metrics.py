"""Tests of jobtrack_airtable.metrics: SPEC §1.4 validation of metric values and times."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from jobtrack_airtable.errors import InvalidInputError, InvalidMetricError, UnknownMetricError
from jobtrack_airtable.metrics import (
    COUNT_KEYS,
    MAX_COUNT,
    METRIC_KEYS,
    ClientMetrics,
    format_time,
    validate_metrics,
)
from jobtrack_airtable.schema import TableSpec
from jobtrack_airtable.transport.codec import codec_for

from .schema_rows import CRR

# --- counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (3, 3),
        (3.0, 3),
        (0.0, 0),
        (-0.0, 0),
        ("55", 55),
        (" 55\n", 55),  # surrounding whitespace is stripped (documented decision)
        ("007", 7),
        (Decimal("4"), 4),
        (Decimal("4.000"), 4),
        (2**53, 2**53),
        (float(2**53), 2**53),
        (str(2**53), 2**53),
    ],
)
def test_count_accepts(value: Any, expected: int) -> None:
    m = ClientMetrics.of(profiles_examined=value)
    assert m.profiles_examined == expected
    assert type(m.profiles_examined) is int


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "bool"),
        (False, "bool"),
        (-1, "negative"),
        (-1.0, "negative"),
        (1.5, "whole number"),
        (Decimal("1.5"), "whole number"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (2**53 + 1, "2**53"),
        (float(2**54), "2**53"),
        (str(2**53 + 1), "2**53"),
        ("9" * 5000, "2**53"),  # must not trip int()'s 4300-digit limit
        ("abc", "digits only"),
        ("", "digits only"),
        ("   ", "digits only"),
        ("1e3", "digits only"),
        ("3.0", "digits only"),
        ("-5", "digits only"),
        ("+5", "digits only"),
        ("1_000", "digits only"),
        ("٥٥", "digits only"),  # Arabic-Indic digits: int() would accept them
        ("5 5", "digits only"),
        (None, "None"),
        ([3], "list"),
        ({"n": 3}, "dict"),
        (b"3", "bytes"),
        (3 + 0j, "complex"),
    ],
)
def test_count_rejects(value: Any, reason: str) -> None:
    with pytest.raises(InvalidMetricError) as info:
        ClientMetrics.of(posts_scored=value)
    err = info.value
    assert err.field == "posts_scored"
    assert err.value is value
    assert reason in err.reason
    message = str(err)
    assert "'posts_scored'" in message
    assert repr(value)[:40] in message


@pytest.mark.parametrize("key", COUNT_KEYS)
def test_every_count_field_is_validated(key: str) -> None:
    assert getattr(ClientMetrics.of(**{key: "12"}), key) == 12
    with pytest.raises(InvalidMetricError, match=key):
        ClientMetrics.of(**{key: -1})


def test_first_bad_value_in_schema_order_is_reported() -> None:
    with pytest.raises(InvalidMetricError) as info:
        validate_metrics({"posts_scored": -1, "profiles_examined": "x"})
    assert info.value.field == "profiles_examined"


# --- costs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0.00"),
        (2, "2.00"),
        (1.005, "1.01"),  # decimal intent, not binary 1.00499…
        (2.675, "2.68"),
        (0.125, "0.13"),  # ROUND_HALF_UP, not banker's rounding
        (0.135, "0.14"),
        (0.004, "0.00"),
        ("12.345", "12.35"),
        (" 3.5 ", "3.50"),
        ("1e2", "100.00"),
        (".5", "0.50"),
        ("-0", "0.00"),
        (-0.0, "0.00"),
        (Decimal("9.999"), "10.00"),
    ],
)
def test_cost_accepts_and_rounds(value: Any, expected: str) -> None:
    m = ClientMetrics.of(apify_costs=value)
    assert m.apify_costs == Decimal(expected)
    assert str(m.apify_costs) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "bool"),
        (False, "bool"),
        (-0.01, "negative"),
        (-1, "negative"),
        ("-0.004", "negative"),  # refused before rounding could turn it into 0
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("-Infinity"), "finite"),
        ("nan", "decimal number"),
        ("inf", "decimal number"),
        ("abc", "decimal number"),
        ("", "decimal number"),
        ("1_000", "decimal number"),
        ("$3", "decimal number"),
        ("1e999999", "larger than"),
        (10**20, "larger than"),
        (None, "None"),
        ([1], "list"),
    ],
)
def test_cost_rejects(value: Any, reason: str) -> None:
    with pytest.raises(InvalidMetricError) as info:
        ClientMetrics.of(apify_costs=value)
    assert info.value.field == "apify_costs"
    assert reason in info.value.reason
    assert "'apify_costs'" in str(info.value)


def test_cost_is_a_json_number_never_a_string() -> None:
    m = ClientMetrics.of(apify_costs="1.005", profiles_examined=3)
    fields = codec_for(CRR).names(m.to_values(CRR))
    assert fields == {"Apify API Costs": 1.01, "Profiles Examined for Scoring": 3}
    assert type(fields["Apify API Costs"]) is float
    dumped = json.dumps(fields)
    assert '"Apify API Costs": 1.01' in dumped
    assert json.loads(dumped)["Apify API Costs"] == 1.01
    # pydantic's own JSON dump also writes a number, not "1.01"
    assert json.loads(m.model_dump_json())["apify_costs"] == 1.01
    assert m.model_dump(mode="json")["apify_costs"] == 1.01
    # what we send passes the schema's own write check
    codec_for(CRR).check_names(fields)


# --- unknown names and the pydantic entry points ----------------------------------------------


def test_unknown_names_list_allowed_names() -> None:
    with pytest.raises(UnknownMetricError) as info:
        ClientMetrics.of(profiles_examined=1, success_rate=0.5, Status="Running")
    err = info.value
    assert err.names == ["Status", "success_rate"]
    assert err.allowed == sorted(METRIC_KEYS)
    message = str(err)
    for name in METRIC_KEYS:
        assert name in message
    assert "'success_rate'" in message


def test_unknown_names_win_over_bad_values() -> None:
    with pytest.raises(UnknownMetricError):
        validate_metrics({"profiles_examined": -1, "bogus": 1})


def test_airtable_names_are_not_metric_names() -> None:
    with pytest.raises(UnknownMetricError):
        validate_metrics({"Profiles Examined for Scoring": 1})


def test_validate_metrics_refuses_non_mapping() -> None:
    with pytest.raises(InvalidInputError):
        validate_metrics([("profiles_examined", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: ClientMetrics(profiles_examined=-1),
        lambda: ClientMetrics.model_validate({"profiles_examined": -1}),
        lambda: ClientMetrics.model_validate_json('{"profiles_examined": -1}'),
        lambda: ClientMetrics(apify_costs="nan"),
    ],
)
def test_pydantic_entry_points_raise_our_errors(build: Any) -> None:
    with pytest.raises(InvalidMetricError) as info:
        build()
    assert not isinstance(info.value, ValidationError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ClientMetrics(bogus=1),
        lambda: ClientMetrics.model_validate({"bogus": 1, "profiles_examined": 1}),
        lambda: ClientMetrics.model_validate_json('{"bogus": 1}'),
    ],
)
def test_pydantic_entry_points_raise_unknown_metric(build: Any) -> None:
    with pytest.raises(UnknownMetricError) as info:
        build()
    assert info.value.names == ["bogus"]


def test_model_validate_non_mapping_is_typed_error() -> None:
    with pytest.raises(InvalidInputError):
        ClientMetrics.model_validate(5)
    with pytest.raises(InvalidInputError):
        ClientMetrics.model_validate_json("not json")


def test_pydantic_none_means_unset_and_dump_round_trips() -> None:
    m = ClientMetrics.of(profiles_examined=3, apify_costs="1.5")
    assert ClientMetrics(**m.model_dump()) == m
    assert ClientMetrics.model_validate_json(m.model_dump_json()) == m
    assert ClientMetrics(profiles_examined=None).is_empty


def test_metrics_are_immutable() -> None:
    m = ClientMetrics.of(profiles_examined=1)
    with pytest.raises(ValidationError):
        m.profiles_examined = 5  # type: ignore[misc]


# --- to_fields / plus / merged / is_empty / sanity ---------------------------------------------


def test_to_fields_only_set_values_with_airtable_names() -> None:
    assert codec_for(CRR).names(ClientMetrics().to_values(CRR)) == {}
    m = ClientMetrics.of(profiles_examined=0, post_tokens="12")
    fields = codec_for(CRR).names(m.to_values(CRR))
    assert fields == {"Profiles Examined for Scoring": 0, "Post Scoring Tokens": 12}
    assert all(type(v) is int for v in fields.values())


def test_to_fields_follows_renamed_and_disabled_fields() -> None:
    data = CRR.model_dump()
    data["fields"]["profiles_examined"]["name"] = "Profiles Looked At"
    data["fields"]["post_tokens"]["enabled"] = False
    table = TableSpec.model_validate(data)
    m = ClientMetrics.of(profiles_examined=1, post_tokens=2)
    assert codec_for(table).names(m.to_values(table)) == {"Profiles Looked At": 1}


def test_plus_adds_and_keeps_unset_unset() -> None:
    a = ClientMetrics.of(profiles_examined=2, apify_costs="0.10")
    b = ClientMetrics.of(profiles_examined=3, posts_scored=0, apify_costs=0.2)
    total = a.plus(b)
    assert total.values() == {
        "profiles_examined": 5,
        "posts_scored": 0,
        "apify_costs": Decimal("0.30"),
    }
    assert total.post_tokens is None
    assert a.plus(ClientMetrics()) == a
    assert ClientMetrics().plus(ClientMetrics()).is_empty


def test_plus_overflow_is_refused() -> None:
    big = ClientMetrics.of(post_tokens=MAX_COUNT)
    with pytest.raises(InvalidMetricError, match="post_tokens"):
        big.plus(ClientMetrics.of(post_tokens=1))


def test_merged_overrides_with_set_values_only() -> None:
    a = ClientMetrics.of(profiles_examined=2, posts_scored=1, apify_costs=1)
    b = ClientMetrics.of(profiles_examined=0, apify_costs="2.5")
    merged = a.merged(b)
    assert merged.values() == {
        "profiles_examined": 0,
        "posts_scored": 1,
        "apify_costs": Decimal("2.50"),
    }
    assert a.merged(ClientMetrics()) == a


def test_is_empty() -> None:
    assert ClientMetrics().is_empty
    assert ClientMetrics.of().is_empty
    assert not ClientMetrics.of(apify_costs=0).is_empty


def test_sanity_warnings_are_warnings_not_errors() -> None:
    m = ClientMetrics.of(profiles_examined=10, profiles_scored=12, posts_examined=1, posts_scored=2)
    warnings = m.sanity_warnings()
    assert warnings == [
        "profiles_scored (12) is greater than profiles_examined (10)",
        "posts_scored (2) is greater than posts_examined (1)",
    ]
    named = m.sanity_warnings(CRR)
    assert "Profiles Successfully Scored (12)" in named[0]
    assert ClientMetrics.of(profiles_examined=5, profiles_scored=5).sanity_warnings() == []
    assert ClientMetrics.of(profiles_scored=5).sanity_warnings() == []  # nothing to compare


# --- times -------------------------------------------------------------------------------------


def test_format_time_aware_to_utc_z() -> None:
    moment = datetime(2025, 9, 30, 9, 15, 22, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert format_time("start_time", moment) == "2025-09-30T14:15:22.123Z"


def test_format_time_refuses_naive_naming_the_field() -> None:
    naive = datetime(2025, 9, 30, 14, 15, 22)
    with pytest.raises(InvalidMetricError) as info:
        format_time("end_time", naive)
    assert info.value.field == "end_time"
    assert "naive" in str(info.value)
    assert format_time("end_time", naive, assume_utc=True) == "2025-09-30T14:15:22.000Z"


@pytest.mark.parametrize("value", ["2025-09-30T14:15:22Z", 1727705722, None])
def test_format_time_refuses_non_datetimes(value: Any) -> None:
    with pytest.raises(InvalidMetricError):
        format_time("last_updated", value)
