"""One duration grammar for every option and configuration key (issue 25): the same text
means the same span in ``archive --older-than``, ``sync --stale-after``, ``check
--stuck-after`` and ``check``'s configuration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtrack_airtable.admin.archive import parse_age
from jobtrack_airtable.admin.ops.config import CheckConfig
from jobtrack_airtable.durations import DurationError, format_duration, parse_duration
from jobtrack_airtable.errors import ConfigError, InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("90m", timedelta(minutes=90)),
        ("36h", timedelta(hours=36)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("1.5H", timedelta(minutes=90)),
        (" 2d12h ", timedelta(hours=60)),
    ],
)
def test_the_grammar(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "give a duration like"),
        ("90", "a unit is needed"),
        ("d", "give a duration like"),
        ("-5d", "give a duration like"),
        ("0m", "must be more than zero"),
        ("90y", "give a duration like"),
        ("1h30", "give a duration like"),
        ("999999w", "longer than 10,000 years"),
        (None, "give a duration like"),
        (True, "give a duration like"),
        (90, "a unit is needed"),
    ],
)
def test_bad_durations_are_typed_errors_naming_the_value(bad: object, reason: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(bad, what="--older-than")
    assert isinstance(caught.value, InvalidInputError)
    assert str(caught.value).startswith(f"invalid --older-than {bad!r}: ")
    assert reason in str(caught.value)


def test_a_bare_number_needs_the_callers_unit_and_zero_needs_consent() -> None:
    assert parse_duration("120", bare_unit="m") == timedelta(hours=2)
    assert parse_duration("0s", allow_zero=True) == timedelta(0)


@pytest.mark.parametrize("text", ["90m", "36h", "1h30m", "2w", "1.5d"])
def test_every_consumer_reads_the_same_text_the_same_way(text: str) -> None:
    expected = parse_duration(text)
    assert parse_age(text) == expected
    config = CheckConfig.parse(
        {"stuck_after": text, "lookback": text, "max_runtime": text, "error_rate": {"window": text}}
    )
    assert config.stuck_after == config.lookback == config.max_runtime == expected
    assert config.error_rate.window == expected


def test_a_config_key_names_itself_and_the_value() -> None:
    with pytest.raises(ConfigError, match=r"schedule\[0\]\.max_runtime: .* not '90'"):
        CheckConfig.parse({"schedule": [{"stream": 1, "by": "07:00", "max_runtime": "90"}]})


@given(st.integers(min_value=1, max_value=10**9))
def test_format_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta
