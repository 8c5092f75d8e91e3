"""The local server's formula engine (jobtrack_airtable.local.formulas).

The filters this project sends are built with ``pyairtable.formulas``, so a large part of this
file builds formulas with pyairtable and checks the engine reads them back exactly, including
values crafted to break out of a string literal.
"""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyairtable.formulas as F
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobtrack_airtable.local.formulas import (
    FUNCTIONS,
    ErrorValue,
    EvalContext,
    Formula,
    FormulaError,
    compile_formula,
    is_truthy,
    to_json_value,
)
from jobtrack_airtable.schema import load_schema

T0 = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
NOW = datetime(2025, 10, 1, 8, 0, 0, tzinfo=UTC)


def make_ctx(
    fields: dict[str, Any] | None = None,
    *,
    field_types: dict[str, str] | None = None,
    computed: dict[str, Any] | None = None,
    record_id: str = "recAAAAAAAAAAAAAA",
    last_modified_time: datetime | None = None,
) -> EvalContext:
    return EvalContext(
        fields=fields or {},
        record_id=record_id,
        created_time=T0,
        now=NOW,
        field_types=field_types or {},
        last_modified_time=last_modified_time,
        computed=computed or {},
    )


def ev(text: str, fields: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return compile_formula(text).evaluate(make_ctx(fields, **kwargs))


def is_error(value: Any) -> bool:
    return isinstance(value, ErrorValue)


# =============================================================================================
# Lexical: literals, escapes, field references
# =============================================================================================


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'abc'", "abc"),
        ('"abc"', "abc"),
        ("''", ""),
        ('""', ""),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"""'mixed " quote'""", 'mixed " quote'),
        (r'''"mixed ' quote"''', "mixed ' quote"),
        (r"'back\\slash'", "back\\slash"),
        (r"'\\'", "\\"),
        (r"'line\nbreak'", "line\nbreak"),
        (r"'tab\there'", "tab\there"),
        (r"'cr\r'", "cr\r"),
        (r"'\q'", "q"),  # unknown escapes keep the character
        (r"'\u0041\u00e9'", "Aé"),
        ("'raw\nnewline'", "raw\nnewline"),  # quoted() does not escape newlines
        ("'ünïcödé ✓'", "ünïcödé ✓"),
        ("'{not a field}'", "{not a field}"),
        ("'AND(TRUE())'", "AND(TRUE())"),
    ],
)
def test_string_literals(text: str, expected: str) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("3.5", 3.5),
        (".5", 0.5),
        ("2.", 2.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("-7", -7),
        ("--7", 7),
        ("+7", 7),
        ("-(3)", -3),
        ("007", 7),
    ],
)
def test_number_literals(text: str, expected: float) -> None:
    value = ev(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "field_name"),
    [
        ("{Run ID}", "Run ID"),
        (r"{Field\}name}", "Field}name"),
        (r"{a\}\}b}", "a}}b"),
        (r"{back\\slash}", "back\\slash"),
        (r"{lone\x}", "lone\\x"),  # only \} and \\ are escapes inside braces
        ("{Guest's Name}", "Guest's Name"),
        ('{Say "x"}', 'Say "x"'),
        ("{Profiles Examined for Scoring}", "Profiles Examined for Scoring"),
        ("{Ünïcode ✓}", "Ünïcode ✓"),
        ("{ padded }", " padded "),
        ("{a{b}", "a{b"),
    ],
)
def test_field_references(text: str, field_name: str) -> None:
    formula = compile_formula(text)
    assert formula.field_refs == frozenset({field_name})
    assert formula.evaluate(make_ctx({field_name: "v"})) == "v"
    assert formula.evaluate(make_ctx({})) is None


@pytest.mark.parametrize("name", ["Field}name", "a}}b", "Guest's Name", "x{y", "plain"])
def test_pyairtable_field_name_round_trip(name: str) -> None:
    text = F.field_name(name)
    assert compile_formula(text).field_refs == frozenset({name})
    assert ev(str(F.EQ(F.Field(name), "v")), {name: "v"}) is True


def test_whitespace_and_newlines_anywhere() -> None:
    text = "\n  AND (\n\t{A} =\n 'x' ,\r\n  {B}   !=   'y'  )  \n"
    assert ev(text, {"A": "x", "B": "z"}) is True
    assert ev(text, {"A": "x", "B": "y"}) is False


@pytest.mark.parametrize("text", ["TRUE", "TRUE()", "true", "True()", "tRuE"])
def test_true_forms(text: str) -> None:
    assert ev(text) is True


@pytest.mark.parametrize("text", ["FALSE", "FALSE()", "false", "False()"])
def test_false_forms(text: str) -> None:
    assert ev(text) is False


@pytest.mark.parametrize("text", ["and(TRUE, 1)", "And(TRUE(), 1)", "AND(true, 1)"])
def test_function_names_case_insensitive(text: str) -> None:
    assert ev(text) is True


# =============================================================================================
# Operators and precedence
# =============================================================================================


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),  # left-associative
        ("24 / 4 / 2", 3),
        ("2 * 3 + 4 * 5", 26),
        ("-2 * 3", -6),
        ("-(2 + 3) * 2", -10),
        ("1 + 2 & 3", "33"),  # & binds looser than +
        ("'a' & 1 + 1", "a2"),
        ("1 + 1 = 2", True),  # comparison binds loosest
        ("'a' & 'b' = 'ab'", True),
        ("2 * 3 > 5", True),
        ("1 < 2 = TRUE()", True),  # (1 < 2) = TRUE()
        ("10 / 4", 2.5),
        ("4 / 2", 2),
        ("0.5 * 4", 2),
        ("7 - 7.5", -0.5),
        ("'3' + 4", 7),  # numeric text is a number in arithmetic
        ("TRUE() + TRUE()", 2),
        ("{Blank} + 5", 5),
        ("{Blank} * 5", 0),
        ("'' + 1", 1),
        ("'a' & {Blank} & 'b'", "ab"),
        ("1.5 & ''", "1.5"),
        ("TRUE() & FALSE()", "10"),
        ("-{N}", -4),
        ("+{N}", 4),
    ],
)
def test_operators(text: str, expected: Any) -> None:
    value = ev(text, {"N": 4})
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 = 1", True),
        ("1 = 2", False),
        ("1 != 2", True),
        ("2 != 2", False),
        ("1 < 2", True),
        ("2 < 1", False),
        ("2 > 1", True),
        ("1 > 2", False),
        ("2 <= 2", True),
        ("3 <= 2", False),
        ("2 >= 2", True),
        ("1 >= 2", False),
        ("'a' = 'a'", True),
        ("'a' = 'A'", False),  # text equality is exact
        ("'a' < 'b'", True),
        ("'b' >= 'a'", True),
        ("'abc' != 'abd'", True),
        ("1 = 1.0", True),
        ("1 < 1.5", True),
        # text vs number: numerically when the text is a number, otherwise as text
        ("'5' = 5", True),
        ("5 = '5.0'", True),
        ("'10' > 9", True),
        ("'abc' = 5", False),
        ("'abc' != 5", True),
        # booleans are 1/0
        ("TRUE() = 1", True),
        ("FALSE() = 0", True),
        ("TRUE() > FALSE()", True),
    ],
)
def test_comparisons(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Blank equals "" and 0 (as in Airtable), and blank equals blank.
        ("{Blank} = ''", True),
        ("{Blank} = 0", True),
        ("{Blank} = BLANK()", True),
        ("BLANK() = ''", True),
        ("BLANK() = 0", True),
        ("{Blank} != ''", False),
        ("{Blank} = 'x'", False),
        ("{Blank} = 1", False),
        ("{Blank} < 1", True),
        ("{Blank} >= 0", True),
        ("{Blank} <= BLANK()", True),
        ("{Empty} = ''", True),
        ("{Empty} = BLANK()", True),
        ("{Zero} = BLANK()", True),  # 0 = blank, the well-known Airtable gotcha
        ("{Zero} = ''", False),  # a number next to "" compares as text "0"
        # Blank has no datetime form: never equal to, nor ordered with, a date.
        ("{Blank} = NOW()", False),
        ("{Blank} != NOW()", True),
        ("{Blank} < NOW()", False),
        ("{Blank} > NOW()", False),
    ],
)
def test_blank_comparisons(text: str, expected: bool) -> None:
    assert ev(text, {"Empty": "", "Zero": 0}) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{Tags} = 'a, b'", True),
        ("{Tags} & '' = 'a, b'", True),
        ("{One} = 'x'", True),
        ("{None} = ''", True),
        ("{None} = BLANK()", True),
    ],
)
def test_lists_compare_as_joined_text(text: str, expected: bool) -> None:
    assert ev(text, {"Tags": ["a", "b"], "One": ["x"], "None": []}) is expected


# =============================================================================================
# Errors as values
# =============================================================================================


@pytest.mark.parametrize(
    "text",
    [
        "2 * ERROR()",
        "(ERROR()) + 1",
        "(ERROR()) & 'x'",
        "(ERROR()) = 1",
        "1 != (ERROR())",
        "(ERROR()) < 1",
        "-(ERROR())",
        "LEN(ERROR())",
        "NOT(ERROR())",
        "AND(ERROR(), TRUE())",
        "OR(ERROR(), TRUE())",
        "IF(ERROR(), 1, 2)",
        "'abc' * 2",
        "ERROR()",
        "MOD(5, 0)",
        "SQRT(-1)",
        "LOG(0)",
        "VALUE('abc')",
        "REGEX_MATCH('a', '(')",
        "REGEX_EXTRACT('abc', 'z')",
        "DATETIME_PARSE('not a date')",
        "DATETIME_DIFF('x', NOW(), 'days')",
        "DATETIME_DIFF(NOW(), NOW(), 'fortnights')",
        "SET_TIMEZONE(NOW(), 'Mars/Olympus')",
        "NOW() + 1",
        "AVERAGE('a')",
    ],
)
def test_runtime_errors_are_error_values(text: str) -> None:
    value = ev(text)
    assert is_error(value), value
    assert not is_truthy(value)
    assert str(value) == "#ERROR!"
    assert to_json_value(value) == {"error": "#ERROR!"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ISERROR(ERROR())", True),
        ("ISERROR(1 / 1)", False),
        ("IF(TRUE(), 1, ERROR())", 1),  # the branch not taken is not evaluated
        ("IF(FALSE(), ERROR(), 2)", 2),
        ("AND(FALSE(), ERROR())", False),
        ("OR(TRUE(), ERROR())", True),
    ],
)
def test_errors_contained(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_error_value_identity() -> None:
    a, b = ErrorValue("x"), ErrorValue("x")
    assert a == b
    assert hash(a) == hash(b)
    assert a != ErrorValue("y")
    assert "x" in repr(a)
    assert not a


# =============================================================================================
# Functions
# =============================================================================================

LOGIC_CASES: list[tuple[str, Any]] = [
    ("AND(TRUE(), 1, 'x')", True),
    ("AND(TRUE(), 0)", False),
    ("AND(TRUE(), '')", False),
    ("AND({Blank})", False),
    ("OR(FALSE(), 0, 'x')", True),
    ("OR(FALSE(), 0, '', BLANK())", False),
    ("NOT(TRUE())", False),
    ("NOT(0)", True),
    ("NOT('')", True),
    ("NOT('x')", False),
    ("XOR(TRUE(), FALSE())", True),
    ("XOR(TRUE(), TRUE())", False),
    ("XOR(TRUE(), TRUE(), TRUE())", True),
    ("XOR(0)", False),
    ("IF(1, 'y', 'n')", "y"),
    ("IF(0, 'y', 'n')", "n"),
    ("IF(0, 'y')", None),
    ("IF('0', 'y', 'n')", "y"),  # non-empty text is true
    ("SWITCH(2, 1, 'one', 2, 'two')", "two"),
    ("SWITCH(3, 1, 'one', 2, 'two')", None),
    ("SWITCH(3, 1, 'one', 2, 'two', 'other')", "other"),
    ("SWITCH('b', 'a', 1, 'b', 2, 0)", 2),
    ("BLANK()", None),
    ("TRUE()", True),
    ("FALSE()", False),
]

TEXT_CASES: list[tuple[str, Any]] = [
    ("FIND('b', 'abcb')", 2),
    ("FIND('z', 'abc')", 0),
    ("FIND('b', 'abcb', 3)", 4),
    ("FIND('B', 'abc')", 0),  # case-sensitive
    ("FIND('', 'abc')", 1),
    ("FIND('-', {Blank})", 0),
    ("SEARCH('b', 'abcb')", 2),
    ("SEARCH('z', 'abc')", None),  # blank, not 0
    ("SEARCH('b', 'abcb', 3)", 4),
    ("LOWER('AbC')", "abc"),
    ("UPPER('AbC')", "ABC"),
    ("LEN('héllo')", 5),
    ("LEN({Blank})", 0),
    ("LEN(12.5)", 4),
    ("TRIM('  a b  ')", "a b"),
    ("LEFT('abcdef', 2)", "ab"),
    ("LEFT('ab', 5)", "ab"),
    ("LEFT('ab', 0)", ""),
    ("RIGHT('abcdef', 2)", "ef"),
    ("RIGHT('abcdef', 0)", ""),
    ("MID('abcdef', 2, 3)", "bcd"),
    ("MID('abcdef', 5, 10)", "ef"),
    ("REPLACE('abcdef', 2, 3, 'X')", "aXef"),
    ("SUBSTITUTE('a-b-c', '-', '+')", "a+b+c"),
    ("SUBSTITUTE('a-b-c', '-', '+', 2)", "a-b+c"),
    ("SUBSTITUTE('a-b-c', '-', '+', 5)", "a-b-c"),
    ("SUBSTITUTE('abc', '', 'x')", "abc"),
    ("REPT('ab', 3)", "ababab"),
    ("CONCATENATE('a', 1, TRUE(), {Blank}, 'b')", "a11b"),
    ("T('x')", "x"),
    ("T(1)", None),
    ("ENCODE_URL_COMPONENT('chicken & waffles')", "chicken%20%26%20waffles"),
    ("ENCODE_URL_COMPONENT('a-_.~!*()')", "a-_.~!*()"),
    ("REGEX_MATCH('Guy-Wilson', '^[A-Z][a-z]+-')", True),
    ("REGEX_MATCH('guy', '^[A-Z]')", False),
    ("REGEX_EXTRACT('run 250930-141522 ok', '\\\\d{6}-\\\\d{6}')", "250930-141522"),
    ("REGEX_REPLACE('a1b22', '\\\\d+', '#')", "a#b#"),
    ("REGEX_REPLACE('abc', '(b)', '[$1]')", "a[b]c"),
    ("ARRAYJOIN({Tags}, '; ')", "a; b"),
    ("ARRAYJOIN({Tags})", "a, b"),
    ("ARRAYCOMPACT({Mixed})", ["a", 0]),
    ("ARRAYUNIQUE({Dupes})", ["a", "b"]),
    ("ARRAYFLATTEN({Tags})", ["a", "b"]),
]

NUMBER_CASES: list[tuple[str, Any]] = [
    ("VALUE('42')", 42),
    ("VALUE(' 3.5 ')", 3.5),
    ("VALUE('$1,000')", 1000),
    ("VALUE('50%')", 0.5),
    ("VALUE(7)", 7),
    ("ABS(-3.5)", 3.5),
    ("ABS({Blank})", 0),
    ("ROUND(2.345, 2)", 2.35),
    ("ROUND(2.5, 0)", 3),
    ("ROUND(-2.5, 0)", -2),  # ties toward +infinity
    ("ROUND(1234, -2)", 1200),
    ("ROUND(1.005, 2)", 1.01),  # decimal arithmetic, not binary float
    ("ROUND(7.6)", 8),
    ("ROUNDUP(2.341, 2)", 2.35),
    ("ROUNDUP(-2.341, 2)", -2.35),  # away from zero
    ("ROUNDDOWN(2.349, 2)", 2.34),
    ("ROUNDDOWN(-2.349, 2)", -2.34),  # toward zero
    ("CEILING(2.1)", 3),
    ("CEILING(7, 5)", 10),
    ("FLOOR(2.9)", 2),
    ("FLOOR(7, 5)", 5),
    ("INT(-2.5)", -3),
    ("INT(2.9)", 2),
    ("EVEN(1.5)", 2),
    ("EVEN(3)", 4),
    ("EVEN(-1)", -2),
    ("ODD(2)", 3),
    ("ODD(0)", 1),
    ("MOD(7, 3)", 1),
    ("MOD(-7, 3)", -1),  # sign of the dividend (JavaScript %)
    ("POWER(2, 10)", 1024),
    ("POWER(4, 0.5)", 2),
    ("SQRT(16)", 4),
    ("EXP(0)", 1),
    ("LOG(100)", 2),
    ("LOG(8, 2)", 3),
    ("SUM(1, 2, 3.5)", 6.5),
    ("SUM({Blank}, 2)", 2),
    ("SUM({Nums})", 6),
    ("MAX(1, 5, 3)", 5),
    ("MAX({Blank}, -1)", -1),
    ("MAX({Blank})", 0),
    ("MIN(4, 2, 8)", 2),
    ("MIN({Nums}, 0.5)", 0.5),
    ("AVERAGE(1, 2, 3, 4)", 2.5),
    ("COUNT(1, 'a', 2, {Blank})", 2),
    ("COUNTA(1, 'a', '', {Blank})", 2),
    ("COUNTALL(1, 'a', '', {Blank})", 4),
]


@pytest.mark.parametrize(("text", "expected"), LOGIC_CASES + TEXT_CASES + NUMBER_CASES)
def test_functions(text: str, expected: Any) -> None:
    fields = {
        "Tags": ["a", "b"],
        "Mixed": ["a", "", None, 0],
        "Dupes": ["a", "b", "a"],
        "Nums": [1, 2, 3],
    }
    value = ev(text, fields)
    assert value == expected
    if expected is not None:
        assert type(value) is type(expected), value


DATE_CASES: list[tuple[str, Any]] = [
    ("DATETIME_PARSE('2025-09-30T14:15:22.000Z')", T0),
    ("DATETIME_PARSE('2025-09-30T16:15:22+02:00')", T0),
    ("DATETIME_PARSE('2025-09-30T14:15:22')", T0),  # naive = UTC
    ("DATETIME_PARSE('2025-09-30')", datetime(2025, 9, 30, tzinfo=UTC)),
    ("DATETIME_PARSE('2025-09-30', 'YYYY-MM-DD')", datetime(2025, 9, 30, tzinfo=UTC)),
    ("DATETIME_PARSE('30/09/2025 14:15', 'DD/MM/YYYY HH:mm')", T0.replace(second=0)),
    ("DATETIME_PARSE('Sep 30 2025 2:15 pm', 'MMM D YYYY h:mm a')", T0.replace(second=0)),
    ("DATETIME_PARSE('1759241722', 'X')", T0),
    ("DATETIME_PARSE('2025-09-30T14:15:22.000Z', 'ISO')", T0),
    ("DATETIME_PARSE({Blank})", None),
    ("DATETIME_FORMAT(DATETIME_PARSE('2025-09-30T14:15:22.000Z'))", "2025-09-30T14:15:22.000Z"),
    ("DATETIME_FORMAT('2025-09-30T14:15:22Z', 'YYYY-MM-DD')", "2025-09-30"),
    ("DATETIME_FORMAT('2025-09-30T14:15:22Z', 'DD/MM/YY HH:mm:ss')", "30/09/25 14:15:22"),
    (
        "DATETIME_FORMAT('2025-09-30T14:15:22Z', 'dddd, MMMM Do YYYY h:mm A')",
        "Tuesday, September 30th 2025 2:15 PM",
    ),
    ("DATETIME_FORMAT('2025-09-30T14:15:22Z', 'LL')", "September 30, 2025"),
    ("DATETIME_FORMAT('2025-09-30T14:15:22Z', '[Week] W, [Q]Q')", "Week 40, Q3"),
    ("DATETIME_FORMAT('2025-09-30T14:15:22Z', 'x')", "1759241722000"),
    (
        "DATETIME_FORMAT(SET_TIMEZONE('2025-09-30T14:15:22Z', 'Europe/Paris'), 'HH:mm Z')",
        "16:15 +02:00",
    ),
    ("DATETIME_FORMAT(SET_LOCALE('2025-09-30T14:15:22Z', 'fr'), 'YYYY')", "2025"),
    ("SET_TIMEZONE('2025-09-30T14:15:22Z', 'Europe/Paris') = '2025-09-30T14:15:22Z'", True),
    ("DATESTR('2025-09-30T14:15:22Z')", "2025-09-30"),
    ("TIMESTR('2025-09-30T14:15:22Z')", "14:15:22"),
    ("DATETIME_DIFF('2025-09-30T14:20:00.900Z', '2025-09-30T14:15:22.000Z', 'seconds')", 278),
    ("DATETIME_DIFF('2025-09-30T14:15:22.000Z', '2025-09-30T14:20:00.900Z', 'seconds')", -278),
    ("DATETIME_DIFF('2025-09-30T14:20:00Z', '2025-09-30T14:15:22Z')", 278),  # default seconds
    ("DATETIME_DIFF('2025-09-30T14:20:00Z', '2025-09-30T14:15:22Z', 's')", 278),
    ("DATETIME_DIFF('2025-09-30T14:20:00Z', '2025-09-30T14:15:22Z', 'ms')", 278000),
    ("DATETIME_DIFF('2025-09-30T14:20:00Z', '2025-09-30T14:15:22Z', 'milliseconds')", 278000),
    ("DATETIME_DIFF('2025-09-30T14:20:00Z', '2025-09-30T14:15:22Z', 'minutes')", 4),
    ("DATETIME_DIFF('2025-09-30T14:20:00Z', '2025-09-30T14:15:22Z', 'm')", 4),
    ("DATETIME_DIFF('2025-10-01', '2025-09-30T14:00Z', 'hours')", 10),
    ("DATETIME_DIFF('2025-10-01', '2025-09-30T14:00Z', 'h')", 10),
    ("DATETIME_DIFF('2025-10-10', '2025-10-01', 'days')", 9),
    ("DATETIME_DIFF('2025-10-10', '2025-10-01', 'd')", 9),
    ("DATETIME_DIFF('2025-10-15', '2025-10-01', 'weeks')", 2),
    ("DATETIME_DIFF('2025-10-15', '2025-10-01', 'w')", 2),
    ("DATETIME_DIFF('2025-03-01', '2025-01-31', 'months')", 1),
    ("DATETIME_DIFF('2025-03-01', '2025-01-31', 'M')", 1),
    ("DATETIME_DIFF('2025-01-31', '2025-03-01', 'M')", -1),
    ("DATETIME_DIFF('2025-02-27', '2025-01-28', 'M')", 0),
    ("DATETIME_DIFF('2025-07-01', '2025-01-01', 'quarters')", 2),
    ("DATETIME_DIFF('2027-06-01', '2025-09-01', 'years')", 1),
    ("DATETIME_DIFF('2027-06-01', '2025-09-01', 'y')", 1),
    ("DATETIME_DIFF({Blank}, NOW(), 'days')", None),
    ("DATEADD('2025-01-31', 1, 'month')", datetime(2025, 2, 28, tzinfo=UTC)),
    ("DATEADD('2024-01-31', 1, 'M')", datetime(2024, 2, 29, tzinfo=UTC)),
    ("DATEADD('2025-09-30T14:15:22Z', -10, 'minutes')", T0 - timedelta(minutes=10)),
    ("DATEADD('2025-09-30T14:15:22Z', 1.5, 'hours')", T0 + timedelta(hours=1.5)),
    ("DATEADD('2025-09-30T14:15:22Z', 2, 'years')", T0.replace(year=2027)),
    ("DATEADD('2025-09-30T14:15:22Z', 1, 'weeks')", T0 + timedelta(weeks=1)),
    ("IS_BEFORE('2025-01-01', '2025-01-02')", True),
    ("IS_BEFORE('2025-01-02', '2025-01-01')", False),
    ("IS_AFTER('2025-01-02', '2025-01-01')", True),
    ("IS_AFTER('2025-01-01', '2025-01-01')", False),
    ("IS_SAME('2025-01-01T10:00Z', '2025-01-01T10:00:00.000Z')", True),
    ("IS_SAME('2025-01-01T10:00Z', '2025-01-01T23:00Z')", False),
    ("IS_SAME('2025-01-01T10:00Z', '2025-01-01T23:00Z', 'day')", True),
    ("IS_SAME('2025-01-01T10:00Z', '2025-01-31T23:00Z', 'month')", True),
    ("IS_SAME('2025-01-01', '2025-12-31', 'year')", True),
    ("IS_SAME('2025-01-01T10:00Z', '2025-01-01T10:59Z', 'hour')", True),
    ("IS_SAME('2025-09-28', '2025-10-04', 'week')", True),  # Sunday..Saturday
    ("IS_BEFORE({Blank}, NOW())", None),
    ("YEAR('2025-09-30T14:15:22Z')", 2025),
    ("MONTH('2025-09-30T14:15:22Z')", 9),
    ("DAY('2025-09-30T14:15:22Z')", 30),
    ("HOUR('2025-09-30T14:15:22Z')", 14),
    ("MINUTE('2025-09-30T14:15:22Z')", 15),
    ("SECOND('2025-09-30T14:15:22Z')", 22),
    ("WEEKDAY('2025-09-28')", 0),  # Sunday
    ("WEEKDAY('2025-09-30')", 2),
    ("WEEKDAY('2025-09-30', 'Monday')", 1),
    ("WEEKNUM('2025-01-01')", 1),
    ("WEEKNUM('2025-01-05')", 2),  # weeks start on Sunday
    ("WEEKNUM('2025-01-05', 'Monday')", 1),
    ("WORKDAY('2025-09-26', 1)", datetime(2025, 9, 29, tzinfo=UTC)),  # Fri + 1 = Mon
    ("WORKDAY('2025-09-26', 1, '2025-09-29')", datetime(2025, 9, 30, tzinfo=UTC)),
    ("WORKDAY_DIFF('2025-09-22', '2025-09-28')", 5),
    ("WORKDAY_DIFF('2025-09-22', '2025-09-28', '2025-09-23, 2025-09-24')", 3),
    ("WORKDAY_DIFF('2025-09-28', '2025-09-22')", -5),
]


@pytest.mark.parametrize(("text", "expected"), DATE_CASES)
def test_date_functions(text: str, expected: Any) -> None:
    value = ev(text)
    assert value == expected
    if expected is not None:
        assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RECORD_ID()", "recAAAAAAAAAAAAAA"),
        ("CREATED_TIME()", T0),
        ("LAST_MODIFIED_TIME()", T0 + timedelta(hours=1)),
        ("LAST_MODIFIED_TIME({Status})", T0 + timedelta(hours=1)),
        ("NOW()", NOW),
        ("TODAY()", datetime(2025, 10, 1, tzinfo=UTC)),
        ("TONOW('2025-09-28T08:00:00Z')", 3),
        ("FROMNOW('2025-10-04T08:00:00Z')", 3),
        ("IS_AFTER(NOW(), CREATED_TIME())", True),
        ("DATETIME_DIFF(NOW(), CREATED_TIME(), 'hours')", 17),
        ("RECORD_ID() = 'recAAAAAAAAAAAAAA'", True),
    ],
)
def test_context_functions(text: str, expected: Any) -> None:
    assert ev(text, last_modified_time=T0 + timedelta(hours=1)) == expected


def test_last_modified_defaults_to_created() -> None:
    assert ev("LAST_MODIFIED_TIME()") == T0


# =============================================================================================
# Field types, datetimes, computed fields
# =============================================================================================


DATE_TYPES = {"Start Time": "dateTime", "Day": "date"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{Start Time} = DATETIME_PARSE('2025-09-30T14:15:22.000Z')", True),
        ("{Start Time} = DATETIME_PARSE('2025-09-30T16:15:22+02:00')", True),
        ("{Start Time} = '2025-09-30T14:15:22.000Z'", True),
        ("{Start Time} = '2025-09-30T14:15:22Z'", True),  # compared as instants
        ("{Start Time} < NOW()", True),
        ("{Start Time} > DATETIME_PARSE('2025-09-30')", True),
        ("{Start Time} <= '2025-09-30T14:15:22.000Z'", True),
        ("{Start Time} >= '2025-10-01'", False),
        ("{Day} = DATETIME_PARSE('2025-09-30')", True),
        ("IS_BEFORE({Start Time}, DATEADD(NOW(), -10, 'minutes'))", True),
        ("{Start Time} & ''", "2025-09-30T14:15:22.000Z"),
        ("{Start Time} = 'garbage'", False),
        ("{Start Time} = 1", False),  # a date and a number are not comparable
    ],
)
def test_datetime_fields(text: str, expected: Any) -> None:
    fields = {"Start Time": "2025-09-30T14:15:22.000Z", "Day": "2025-09-30"}
    assert ev(text, fields, field_types=DATE_TYPES) == expected


def test_untyped_iso_strings_compare_with_datetimes() -> None:
    fields = {"Start Time": "2025-09-30T14:15:22.000Z"}
    assert ev("{Start Time} = DATETIME_PARSE('2025-09-30T14:15:22Z')", fields) is True
    assert ev("{Start Time} < NOW()", fields) is True
    # Without a type it is text next to text: exact.
    assert ev("{Start Time} = '2025-09-30T14:15:22Z'", fields) is False


def test_unparseable_datetime_field_stays_text() -> None:
    assert ev("{Start Time}", {"Start Time": "soon"}, field_types=DATE_TYPES) == "soon"


def test_computed_fields_are_evaluated_lazily() -> None:
    calls: list[str] = []
    total = compile_formula("{A} + {B}")

    def compute_total(ctx: EvalContext) -> Any:
        calls.append(ctx.record_id)
        return total.evaluate(ctx)

    computed = {"Total": compute_total}
    assert ev("{Total} > 10", {"A": 4, "B": 7}, computed=computed) is True
    assert ev("{Total} > 10", {"A": 4}, computed=computed) is False
    assert ev("{A} = 4", {"A": 4}, computed=computed) is True
    assert len(calls) == 2  # not evaluated when not referenced


def test_computed_fields_take_precedence_over_stored_values() -> None:
    computed = {"Total": lambda ctx: 5}
    assert ev("{Total}", {"Total": 99}, computed=computed) == 5


def test_computed_field_chain() -> None:
    double = compile_formula("{Total} * 2")
    total = compile_formula("{A} + {B}")
    computed = {"Total": total.evaluate, "Double": double.evaluate}
    assert ev("{Double}", {"A": 1, "B": 2}, computed=computed) == 6


def test_computed_field_recursion_is_an_error_value() -> None:
    loop_a = compile_formula("{B} + 1")
    loop_b = compile_formula("{A} + 1")
    computed = {"A": loop_a.evaluate, "B": loop_b.evaluate}
    value = ev("{A}", {}, computed=computed)
    assert is_error(value)
    assert "circular" in value.message
    self_ref = compile_formula("{Me} & 'x'")
    assert is_error(ev("{Me}", {}, computed={"Me": self_ref.evaluate}))
    # The guard is released afterwards: the same field works in a sane setup.
    assert ev("{A}", {}, computed={"A": lambda ctx: 1}) == 1


# =============================================================================================
# Compile-time errors
# =============================================================================================


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty formula"),
        ("   \n ", "empty formula"),
        ("{A} =", "expected a value, found end of formula"),
        ("{A} = = 1", "expected a value"),
        ("AND({A}, )", "expected a value"),
        ("AND({A}", "expected ')'"),
        ("({A} = 1", "expected ')'"),
        ("{A} = 1)", "unexpected ')'"),
        ("1 2", "unexpected 2"),
        ("'abc", "unterminated string"),
        ('"abc', "unterminated string"),
        ("'abc\\'", "unterminated string"),
        ("{A", "unterminated field reference"),
        ("{A\\}", "unterminated field reference"),
        ("{}", "empty field reference"),
        ("FOO(1)", "unknown function FOO()"),
        ("NOW(1)", "NOW() takes 0 argument(s), got 1"),
        ("IF(1)", "IF() takes 2 to 3 arguments, got 1"),
        ("LEFT('a')", "LEFT() takes 2 argument(s), got 1"),
        ("AND()", "AND() takes at least 1 argument(s), got 0"),
        ("{A} == 1", "expected a value"),
        ("{A} <> 1", "expected a value"),
        ("{A} ^ 2", "unexpected character '^'"),
        ("{A} % 2", "unexpected character '%'"),
        ("1.2.3", "malformed number"),
        ("3abc", "malformed number"),
        ("é", "unexpected character"),
        ("¹", "unexpected character"),
        ("(" * 600 + "1" + ")" * 600, "nested too deeply"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(FormulaError, match="Invalid formula") as info:
        compile_formula(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_message_shows_position_and_context() -> None:
    with pytest.raises(FormulaError) as info:
        compile_formula("AND({Run ID} = 'x', {Status} = )")
    text = str(info.value)
    assert "at position 31" in text  # 0-based offset of the ")"
    assert "{Status} = )" in text


def test_non_text_formula_refused() -> None:
    with pytest.raises(FormulaError):
        compile_formula(123)  # type: ignore[arg-type]


def test_known_fields() -> None:
    text = "AND({Run ID} = 'x', {Nope} = 1, {Also Nope})"
    with pytest.raises(FormulaError, match="Unknown field names: Also Nope, Nope"):
        compile_formula(text, known_fields={"Run ID", "Status"})
    for known in ({"Run ID", "Nope", "Also Nope"}, ["Run ID", "Nope", "Also Nope"]):
        assert compile_formula(text, known_fields=known).field_refs == {
            "Run ID",
            "Nope",
            "Also Nope",
        }
    assert compile_formula("NOW()", known_fields=()).field_refs == frozenset()
    # Without known_fields any name compiles (missing = blank).
    assert ev("{Nope} = ''") is True


def test_compiled_formulas_are_cached() -> None:
    text = "AND({Run ID} = 'cache-me', {Status} = 'Running')"
    assert compile_formula(text) is compile_formula(text)
    assert compile_formula(text, known_fields={"Run ID", "Status"}) is compile_formula(text)


def test_formula_object() -> None:
    formula = compile_formula("{A} = 1")
    assert isinstance(formula, Formula)
    assert formula.text == "{A} = 1"
    assert repr(formula) == "Formula('{A} = 1')"
    assert formula.matches(make_ctx({"A": 1}))
    assert not formula.matches(make_ctx({"A": 2}))


def test_constant_subexpressions_are_folded_but_context_is_not() -> None:
    # Folding must not freeze NOW()/RECORD_ID(): two contexts, two answers.
    formula = compile_formula("RECORD_ID() & '-' & DATETIME_FORMAT(NOW(), 'YYYY')")
    assert formula.evaluate(make_ctx(record_id="rec1")) == "rec1-2025"
    assert formula.evaluate(make_ctx(record_id="rec2")) == "rec2-2025"


# =============================================================================================
# Truthiness and JSON
# =============================================================================================


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (float("nan"), False),
        ("", False),
        (False, False),
        ([], False),
        (ErrorValue("x"), False),
        (True, True),
        (1, True),
        (-1, True),
        (0.001, True),
        ("0", True),
        ("false", True),
        (" ", True),
        (["a"], True),
        ([""], True),
        (T0, True),
        ({"name": "x"}, True),
    ],
)
def test_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("x", "x"),
        (3, 3),
        (2.0, 2),
        (0.25, 0.25),
        (True, 1),
        (False, 0),
        (T0, "2025-09-30T14:15:22.000Z"),
        (ErrorValue("x"), {"error": "#ERROR!"}),
        (float("nan"), {"specialValue": "NaN"}),
        (float("inf"), {"specialValue": "Infinity"}),
        ([1.0, T0], [1, "2025-09-30T14:15:22.000Z"]),
    ],
)
def test_to_json_value(value: Any, expected: Any) -> None:
    assert to_json_value(value) == expected


def test_evaluate_json() -> None:
    formula = compile_formula("DATEADD({Start}, 1, 'days')")
    ctx = make_ctx({"Start": "2025-09-30T14:15:22.000Z"})
    assert formula.evaluate_json(ctx) == "2025-10-01T14:15:22.000Z"


# =============================================================================================
# pyairtable.formulas output, and formula injection
# =============================================================================================

INJECTIONS = [
    "') , TRUE(), ('",
    "x' OR TRUE() OR 'y",
    "x', TRUE()) OR ('",
    "' & TRUE() & '",
    "\\' , TRUE(), '",
    "\\",
    "\\\\",
    "a\\",
    "'",
    "''",
    '"',
    '" , TRUE(), "',
    "}",
    "{Status}",
    "{Run ID}",
    "\\'",
    "\n') OR TRUE() OR ('",
    "\\n",
    "' = '' OR '' = '",
    "250930-141522-Guy-Wilson",
]


def _records(target: str) -> list[EvalContext]:
    """The target value, near misses, and records that only an injection would match."""
    values = [target, target + " ", " " + target, target.upper(), "", "Running", "x", "y", "\\"]
    seen: list[str] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return [
        make_ctx({"Run ID": v, "Status": "Running"}, record_id=f"rec{i:014d}")
        for i, v in enumerate(seen)
    ] + [make_ctx({"Status": "Running"}, record_id="recNoRunIdxxxxxx")]


def _matching(formula_text: str, records: list[EvalContext]) -> list[Any]:
    formula = compile_formula(formula_text, known_fields={"Run ID", "Status"})
    return [r.fields.get("Run ID") for r in records if formula.matches(r)]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_through_eq_matches_only_the_exact_value(payload: str) -> None:
    records = _records(payload)
    assert _matching(str(F.EQ(F.Field("Run ID"), payload)), records) == [payload]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_through_match_matches_only_the_exact_value(payload: str) -> None:
    records = _records(payload)
    assert _matching(str(F.match({"Run ID": payload})), records) == [payload]
    both = F.match({"Run ID": payload, "Status": "Running"})
    assert _matching(str(both), records) == [payload]
    either = F.match({"Run ID": payload, "Status": "Nope"}, match_any=True)
    assert _matching(str(either), records) == [payload]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_through_quoted_matches_only_the_exact_value(payload: str) -> None:
    records = _records(payload)
    text = "AND({Run ID} = " + F.quoted(payload) + ", {Status} = 'Running')"
    assert _matching(text, records) == [payload]
    assert ev(F.quoted(payload)) == payload
    assert _matching(str(F.NE(F.Field("Run ID"), payload)), records) == [
        r.fields.get("Run ID") for r in records if r.fields.get("Run ID") != payload
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_quoted_round_trips_any_text(value: str) -> None:
    assert ev(F.quoted(value)) == value
    formula = compile_formula(str(F.EQ(F.Field("Run ID"), value)))
    assert formula.matches(make_ctx({"Run ID": value}))
    assert not formula.matches(make_ctx({"Run ID": value + "x"}))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: not s.endswith("\\") and "\\}" not in s))
def test_field_name_round_trips(name: str) -> None:
    # A backslash right before a closing brace (or at the end) cannot be written
    # unambiguously by field_name(), which escapes the brace but not the backslash: the two
    # read back as an escaped backslash, then the closing brace; Airtable has the same limit.
    formula = compile_formula(F.field_name(name))
    expected = name.replace("\\\\", "\\")  # "\\" inside braces is an escaped backslash
    assert formula.field_refs == frozenset({expected})


FIELDS = {
    "Run ID": "250930-141522-Guy-Wilson",
    "Status": "Running",
    "Stream": 2,
    "Cost": 1.25,
    "Start Time": "2025-09-30T14:15:22.000Z",
    "Done": True,
}
TYPES = {"Start Time": "dateTime", "Stream": "number", "Cost": "number"}


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        (F.EQ(F.Field("Status"), "Running"), True),
        (F.NE(F.Field("Status"), "Running"), False),
        (F.EQ(F.Field("Stream"), 2), True),
        (F.GT(F.Field("Stream"), 1), True),
        (F.GTE(F.Field("Stream"), 2), True),
        (F.LT(F.Field("Stream"), 2), False),
        (F.LTE(F.Field("Stream"), 2), True),
        (F.EQ(F.Field("Cost"), 1.25), True),
        (F.LT(F.Field("Cost"), -1.5), False),
        (F.GT(F.Field("Cost"), -1), True),
        (F.EQ(F.Field("Done"), True), True),
        (F.EQ(F.Field("Done"), False), False),
        (F.EQ(F.Field("Missing"), ""), True),
        (F.Field("Stream").gt(1) & F.Field("Status").eq("Running"), True),
        (F.Field("Stream").eq(5) | F.Field("Status").eq("Running"), True),
        (~F.Field("Status").eq("Running"), False),
        (F.Field("Stream").eq(5) ^ F.Field("Status").eq("Running"), True),
        (F.Field("Stream").ne(2), False),
        (F.Field("Stream").lt(3), True),
        (F.Field("Stream").lte(1), False),
        (F.Field("Stream").gte(3), False),
        (F.AND(F.EQ(F.Field("Status"), "Running"), Stream=2), True),
        (F.AND([F.EQ(F.Field("Status"), "Running"), F.GT(F.Field("Stream"), 5)]), False),
        (F.OR(F.EQ(F.Field("Status"), "Failed"), Stream=2), True),
        (F.NOT(Status="Running"), False),
        (F.NOT(F.EQ(F.Field("Status"), "Failed")), True),
        (F.XOR(F.TRUE(), F.FALSE()), True),
        (F.AND(F.AND(Status="Running"), F.OR(Stream=1, Cost=1.25)).flatten(), True),
        (F.EQ(F.EQ(F.Field("Stream"), 2), True), True),  # nested comparison gets parentheses
        (F.match({"Status": "Running", "Stream": (">=", 2)}), True),
        (F.match({"Status": "Running", "Stream": (">", 2)}), False),
        (F.match({"Status": "Failed", "Stream": ("<", 3)}, match_any=True), True),
        (F.match({"Stream": ("!=", 2)}), False),
        (F.match({"Stream": ("<=", 2)}), True),
        (F.match({"Stream": ("=", 2)}), True),
        # datetimes: to_formula wraps them in DATETIME_PARSE(...)
        (F.EQ(F.Field("Start Time"), datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)), True),
        (F.EQ(F.Field("Start Time"), datetime(2025, 9, 30, 14, 15, 22)), True),  # naive
        (F.GT(F.Field("Start Time"), datetime(2025, 9, 30, 14, 15, 21, tzinfo=UTC)), True),
        (F.LT(F.Field("Start Time"), date(2025, 9, 30)), False),
        (F.GTE(F.Field("Start Time"), date(2025, 9, 30)), True),
        (F.match({"Start Time": ("<", NOW - timedelta(minutes=10))}), True),
        (F.IS_BEFORE(F.Field("Start Time"), NOW), True),
        (F.IS_AFTER(F.Field("Start Time"), F.DATEADD(F.NOW(), -1, "days")), True),
        (F.IS_SAME(F.Field("Start Time"), date(2025, 9, 30), "day"), True),
        (F.EQ(F.DATETIME_DIFF(F.NOW(), F.Field("Start Time"), "hours"), 17), True),
        (F.EQ(F.DATETIME_FORMAT(F.Field("Start Time"), "YYYY-MM-DD"), "2025-09-30"), True),
        (F.EQ(F.DATESTR(F.Field("Start Time")), "2025-09-30"), True),
        (F.EQ(F.FIND("Guy", F.Field("Run ID")), 15), True),
        (F.EQ(F.LEFT(F.Field("Run ID"), 13), "250930-141522"), True),
        (F.REGEX_MATCH(F.Field("Run ID"), "^\\d{6}-\\d{6}-"), True),
        (F.EQ(F.LOWER(F.Field("Status")), "running"), True),
        (F.EQ(F.LEN(F.Field("Status")), 7), True),
        (F.EQ(F.ROUND(F.Field("Cost"), 1), 1.3), True),
        (F.EQ(F.SUM(F.Field("Stream"), F.Field("Cost")), 3.25), True),
        (F.EQ(F.CONCATENATE(F.Field("Status"), "!"), "Running!"), True),
        (F.IF(F.Field("Done"), "yes", "no").eq("yes"), True),
        (F.EQ(F.RECORD_ID(), "recAAAAAAAAAAAAAA"), True),
        (F.EQ(F.Field("Stream"), F.Formula("4/2")), True),  # Fraction output
        (F.EQ(F.Field("Cost"), F.to_formula(__import__("decimal").Decimal("1.250"))), True),
        (F.ISERROR(F.Formula("ERROR()")), True),
        (F.EQ(F.SEARCH("x", F.Field("Status")), F.BLANK()), True),
    ],
)
def test_pyairtable_formulas(formula: F.Formula, expected: bool) -> None:
    text = str(formula)
    assert is_truthy(ev(text, FIELDS, field_types=TYPES)) is expected, text


def _arity(fn: Any) -> tuple[int, int | None]:
    params = inspect.signature(fn).parameters.values()
    required = sum(1 for p in params if p.kind is p.POSITIONAL_ONLY and p.default is p.empty)
    optional = sum(1 for p in params if p.kind is p.POSITIONAL_ONLY and p.default is not p.empty)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    return required, None if variadic else required + optional


PYAIRTABLE_FUNCTIONS = sorted(
    name
    for name, obj in vars(F).items()
    if name.isupper()
    and inspect.isfunction(obj)
    and inspect.signature(obj).return_annotation in ("FunctionCall", F.FunctionCall)
)


def test_pyairtable_function_list_is_found() -> None:
    assert len(PYAIRTABLE_FUNCTIONS) > 70
    assert {"DATETIME_PARSE", "REGEX_MATCH", "WORKDAY_DIFF", "XOR"} <= set(PYAIRTABLE_FUNCTIONS)


@pytest.mark.parametrize("name", PYAIRTABLE_FUNCTIONS)
def test_every_pyairtable_function_is_supported(name: str) -> None:
    assert name in FUNCTIONS
    ours = FUNCTIONS[name]
    required, most = _arity(getattr(F, name))
    # Every call pyairtable can emit must compile: our arity range contains theirs.
    assert ours.min_args <= required
    assert ours.max_args is None or (most is not None and ours.max_args >= most)


@pytest.mark.parametrize("name", ["AND", "OR", "NOT"])
def test_compound_functions_supported(name: str) -> None:
    assert name in FUNCTIONS


# =============================================================================================
# The schema's formula fields (config/schema.toml)
# =============================================================================================

SCHEMA = load_schema()


def _schema_formulas() -> list[tuple[str, str, str]]:
    return [
        (table.key, spec.name, spec.formula)
        for table in SCHEMA.tables.values()
        for spec in table.enabled_fields()
        if spec.formula
    ]


@pytest.mark.parametrize(("table", "name", "text"), _schema_formulas())
def test_schema_formulas_compile_against_their_table(table: str, name: str, text: str) -> None:
    known = {f.name for f in SCHEMA.table(table).enabled_fields()}
    formula = compile_formula(text, known_fields=known)
    assert formula.field_refs
    assert name not in formula.field_refs


def test_schema_has_the_expected_formulas() -> None:
    names = {(table, name) for table, name, _ in _schema_formulas()}
    assert names >= {
        ("jobs", "Duration"),
        ("jobs", "Total Tokens Used"),
        ("client_runs", "Duration"),
        ("client_runs", "Profile Scoring Success Rate"),
        ("client_runs", "Post Scoring Success Rate"),
    }


def _table_ctx(table: str, fields: dict[str, Any]) -> EvalContext:
    spec = SCHEMA.table(table)
    types = {f.name: f.type for f in spec.enabled_fields()}
    formulas = {f.name: compile_formula(f.formula) for f in spec.enabled_fields() if f.formula}
    return make_ctx(
        fields,
        field_types=types,
        computed={name: formula.evaluate for name, formula in formulas.items()},
    )


def _field_value(table: str, key: str, fields: dict[str, Any]) -> Any:
    spec = SCHEMA.table(table).field(key)
    assert spec.formula is not None
    return compile_formula(spec.formula).evaluate_json(_table_ctx(table, fields))


@pytest.mark.parametrize("table", ["jobs", "client_runs"])
@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2025-09-30T14:15:22.000Z", "2025-09-30T14:20:00.000Z", 278),
        ("2025-09-30T14:15:22.000Z", "2025-09-30T14:20:00.999Z", 278),  # whole seconds
        ("2025-09-30T14:15:22.000Z", "2025-10-01T14:15:22.000Z", 86400),
        ("2025-09-30T14:15:22.000Z", "2025-09-30T14:15:22.000Z", 0),
        ("2025-09-30T14:15:22.000Z", None, None),
        (None, "2025-09-30T14:20:00.000Z", None),
        (None, None, None),
    ],
)
def test_schema_duration(table: str, start: str | None, end: str | None, expected: Any) -> None:
    fields = {k: v for k, v in {"Start Time": start, "End Time": end}.items() if v is not None}
    assert _field_value(table, "duration", fields) == expected


@pytest.mark.parametrize(
    ("examined", "scored", "expected"),
    [
        (10, 7, 0.7),
        (4, 4, 1),
        (3, 1, 1 / 3),
        (0, 0, 0),
        (None, None, 0),
        (None, 5, 0),
        (5, None, 0),
    ],
)
def test_schema_success_rates(examined: int | None, scored: int | None, expected: float) -> None:
    for prefix in ("profiles", "posts"):
        spec = SCHEMA.client_runs
        fields = {
            spec.name_of(f"{prefix}_examined"): examined,
            spec.name_of(f"{prefix}_scored"): scored,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        key = "profile_success_rate" if prefix == "profiles" else "post_success_rate"
        value = _field_value("client_runs", key, fields)
        assert value == pytest.approx(expected)
        assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("profile", "post", "expected"),
    [(1200, 800, 2000), (1200, None, 1200), (None, 800, 800), (None, None, 0), (0, 0, 0)],
)
def test_schema_total_tokens(profile: int | None, post: int | None, expected: int) -> None:
    fields = {"Profile Scoring Tokens": profile, "Post Scoring Tokens": post}
    fields = {k: v for k, v in fields.items() if v is not None}
    assert _field_value("jobs", "total_tokens", fields) == expected


def test_filter_on_a_computed_schema_field() -> None:
    ctx_big = _table_ctx("jobs", {"Profile Scoring Tokens": 900, "Post Scoring Tokens": 200})
    ctx_small = _table_ctx("jobs", {"Profile Scoring Tokens": 10})
    formula = compile_formula(str(F.GT(F.Field("Total Tokens Used"), 1000)))
    assert formula.matches(ctx_big)
    assert not formula.matches(ctx_small)
    duration = compile_formula("AND({Duration} >= 60, {Duration} < 3600)")
    timed = _table_ctx(
        "jobs", {"Start Time": "2025-09-30T14:15:22.000Z", "End Time": "2025-09-30T14:20:00.000Z"}
    )
    assert duration.matches(timed)
    assert not duration.matches(_table_ctx("jobs", {"Start Time": "2025-09-30T14:15:22.000Z"}))


# =============================================================================================
# Scale sanity (timing is measured by the benchmarks, not asserted here)
# =============================================================================================


def test_filter_ten_thousand_records() -> None:
    formula = compile_formula(str(F.match({"Run ID": "run-7", "Status": "Running"})))
    statuses = ("Running", "Completed", "Failed")
    records = [
        make_ctx({"Run ID": f"run-{i % 10}", "Status": statuses[i % 3]}, record_id=f"rec{i:014d}")
        for i in range(10_000)
    ]
    matched = [r for r in records if formula.matches(r)]
    # i % 10 == 7 and i % 3 == 0  <=>  i % 30 == 27
    assert len(matched) == len([i for i in range(10_000) if i % 30 == 27])


def test_long_flat_formula_compiles() -> None:
    values = [f"250930-141522-client-{i}" for i in range(500)]
    formula = compile_formula(str(F.OR(*(F.EQ(F.Field("Run ID"), v) for v in values))))
    assert formula.matches(make_ctx({"Run ID": values[-1]}))
    assert not formula.matches(make_ctx({"Run ID": "other"}))
