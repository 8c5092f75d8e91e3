"""The bad-input corpus, as data: hostile values and what the library must do with each.

Every :class:`Case` says one of two things about its value:

* ``error`` set: the value is **refused** with that typed error (an
  :class:`~jobtrack_airtable.errors.InvalidInputError` subclass), before any request, with a
  message quoting the value (:func:`~jobtrack_airtable.errors.show`, truncated for long ones);
* ``error`` None: the value is **stored** and reads back as ``stored`` -- the value itself,
  byte for byte, unless the SPEC defines a normalisation (digit strings become numbers, costs are
  rounded to cents, legacy statuses map to the standard four).

``tests/test_bad_input_corpus.py`` drives each case through the public worker API against the
local server.  The values are grouped by where they go (:class:`Kind`); a value may appear in
several groups, with a different verdict in each (a newline is fine in a note, not in a client
ID).

Decisions worth knowing (SPEC §1.2-§1.4, §5):

* client IDs: 1-100 characters, no control/line-separator/surrogate characters, no surrounding
  whitespace, no stringified missing values; quotes, braces, backslashes, formula fragments,
  RTL text, bidi overrides, zero-width characters and emoji are legal and must survive every
  query byte for byte;
* client names, notes, Apify run IDs: any string that fits in an Airtable text cell (100,000
  characters) and is encodable as UTF-8 (no unpaired surrogates); control characters are text;
* a note that would not fit is refused, not truncated (System Notes are appended, never
  silently cut); the library's own failure notes are cut to fit instead;
* ``None`` as a client name means "default to the client ID" when opening; ``set()`` refuses it
  (clearing the name would leave the row nameless);
* ``None`` as a status means "decide by the completion rule" (the run below did work, so
  ``Completed``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from jobtrack_airtable.errors import (
    InvalidClientIdError,
    InvalidInputError,
    InvalidMetricError,
    InvalidRunIdError,
    InvalidStatusError,
    SchemaViolationError,
    UnknownMetricError,
)
from jobtrack_airtable.statuses import Status

#: One more character than Airtable's text-cell limit.
HUGE = 100_001


class JsObject:
    """What JavaScript prints for an object: the original wrote ``[object Object]`` as IDs."""

    def __str__(self) -> str:
        return "[object Object]"

    def __repr__(self) -> str:
        return "JsObject()"


class Kind(StrEnum):
    CLIENT_ID = "client_id"
    BASE_RUN_ID = "base_run_id"
    CLIENT_RUN_ID = "client_run_id"
    CLIENT_NAME = "client_name"
    COUNT = "count"
    COST = "cost"
    STATUS = "status"
    NOTE = "note"
    FIELD_NAME = "field_name"


class _Same:
    def __repr__(self) -> str:
        return "SAME"


#: ``stored`` default: the value reads back exactly as written.
SAME: Any = _Same()
#: Client names only: opening defaults the name to the client ID; ``set()`` refuses the value.
DEFAULTED: Any = type("_Defaulted", (), {"__repr__": lambda self: "DEFAULTED"})()
#: Run IDs only: well formed, but no row has it -- NotFoundError after one read, no guess.
ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "ABSENT"})()


@dataclass(frozen=True)
class Case:
    kind: Kind
    name: str
    value: Any
    error: type[Exception] | None = None
    stored: Any = SAME

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.name}"

    @property
    def rejected(self) -> bool:
        return self.error is not None

    @property
    def expected(self) -> Any:
        return self.value if self.stored is SAME else self.stored


def _cases(kind: Kind, items: Iterable[tuple[Any, ...]]) -> list[Case]:
    out = []
    for item in items:
        name, value, *rest = item
        error = rest[0] if rest else None
        stored = rest[1] if len(rest) > 1 else SAME
        out.append(Case(kind, name, value, error, stored))
    return out


# --- strings that are legal everywhere: IDs, names, notes -----------------------------------

LEGAL_TEXT: list[tuple[str, str]] = [
    ("single-quote", "O'Brien"),
    ("double-quote", 'Dean "Deano" Hobbs'),
    ("both-quotes", 'It\'s "quoted"'),
    ("backslash", "back\\slash"),
    ("trailing-backslash", "ends-with\\"),
    ("backslash-single-quote", "\\'"),
    ("backslash-double-quote", '\\"'),
    ("field-reference", "{Run ID}"),
    ("lone-close-brace", "curly}close"),
    ("formula-break-single", "') , TRUE(), ('"),
    ("formula-break-double", '" & {Run ID} & "'),
    ("formula-or-true", "x' OR '1'='1"),
    ("formula-concat-field", "'&{Client ID}&'"),
    ("formula-function", "LEFT({Run ID}, 14)"),
    ("sql-injection", "Robert'); DROP TABLE Students;--"),
    ("html-script", "<script>alert(1)</script>"),
    ("template-injection", "${jndi:ldap://x}"),
    ("spreadsheet-formula", '=HYPERLINK("http://x")'),
    ("url-metacharacters", "a/b?c=d&e#f%20+g"),
    ("percent-encoded-nul", "%00"),
    ("json-object-text", '{"id": 1}'),
    ("latin-accents", "Zoë Ørsted-Łukasz"),
    ("spanish", "Ana María López"),
    ("cjk", "株式会社テスト"),
    ("arabic-rtl", "شركة الاختبار"),
    ("hebrew-rtl", "חברת בדיקה"),
    ("rlo-override", "abc\u202eFED"),
    ("rtl-marks-mixed", "Acme \u200fשלום\u200e Ltd"),
    ("zero-width-space", "Guy\u200bWilson"),
    ("bom-prefix", "\ufeffAcme"),
    ("emoji", "🚀 Rocket Co"),
    ("astral-math-letters", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"),
    ("zwj-emoji-family", "👨‍👩‍👧‍👦"),
    ("flag-emoji", "🇬🇧 Ltd"),
    ("nfd-combining-accent", "Cafe\u0301"),
    ("arabic-indic-digit-run-id", "٢٥٠٩٣٠-١٤١٥٢٢"),
    ("fullwidth-letters", "ＧＵＹ"),
    ("inner-double-space", "Guy  Wilson"),
    ("hyphens-only", "--"),
    ("real-name-Nan", "Nan"),
    ("exactly-100-chars", "x" * 100),
]

# Control and separator characters: refused in IDs, fine in free text.
CONTROL_TEXT: list[tuple[str, str]] = [
    ("newline", "Guy\nWilson"),
    ("carriage-return", "Guy\rWilson"),
    ("crlf", "Guy\r\nWilson"),
    ("tab", "Guy\tWilson"),
    ("nul", "Guy\x00Wilson"),
    ("del", "Guy\x7fWilson"),
    ("c1-next-line", "Guy\x85Wilson"),
    ("line-separator", "Guy\u2028Wilson"),
    ("paragraph-separator", "Guy\u2029Wilson"),
]

# Non-strings: refused wherever text or an ID is expected.
NON_STRINGS: list[tuple[str, Any]] = [
    ("none", None),
    ("int", 42),
    ("float", 4.2),
    ("nan", float("nan")),
    ("bool-true", True),
    ("dict", {"id": "Guy-Wilson"}),
    ("list", ["Guy-Wilson"]),
    ("bytes", b"Guy-Wilson"),
    ("js-object", JsObject()),
]

# --- client IDs --------------------------------------------------------------------------

CLIENT_IDS = _cases(
    Kind.CLIENT_ID,
    [
        *LEGAL_TEXT,
        *((n, v, InvalidClientIdError) for n, v in CONTROL_TEXT),
        *((n, v, InvalidClientIdError) for n, v in NON_STRINGS),
        ("triple-tuple", ("Guy", "Guy Wilson", "extra"), InvalidClientIdError),
        ("object-object-text", "[object Object]", InvalidClientIdError),
        ("object-array-text", "[object Array]", InvalidClientIdError),
        ("undefined", "undefined", InvalidClientIdError),
        ("null", "null", InvalidClientIdError),
        ("None-text", "None", InvalidClientIdError),
        ("NaN-text", "NaN", InvalidClientIdError),
        ("empty", "", InvalidClientIdError),
        ("space-only", " ", InvalidClientIdError),
        ("leading-space", " Guy-Wilson", InvalidClientIdError),
        ("trailing-space", "Guy-Wilson ", InvalidClientIdError),
        ("leading-nbsp", "\xa0Guy-Wilson", InvalidClientIdError),
        ("trailing-ideographic-space", "Guy-Wilson\u3000", InvalidClientIdError),
        ("lone-surrogate", "Guy\ud800", InvalidClientIdError),
        ("101-chars", "x" * 101, InvalidClientIdError),
        ("100001-chars", "x" * HUGE, InvalidClientIdError),
        ("starts-with-run-id", "250930-141522-Guy-Wilson", InvalidClientIdError),
        ("is-a-run-id", "250930-141522", InvalidClientIdError),
    ],
)

# --- run IDs -----------------------------------------------------------------------------

_RUN_ID_GARBAGE: list[tuple[str, Any]] = [
    *NON_STRINGS,
    ("int-digits", 250930141522),
    ("float-digits", 250930.141522),
    ("object-object-text", "[object Object]"),
    ("undefined", "undefined"),
    ("null", "null"),
    ("empty", ""),
    ("whitespace", "   "),
    ("trailing-newline", "250930-141522\n"),
    ("leading-space", " 250930-141522"),
    ("numeric-artefact", "250930-141522.0"),
    ("impossible-date", "991399-996199"),
    ("september-31", "250931-141522"),
    ("formula-quote", "250930-141522'"),
    ("formula-or-true", "' OR TRUE() OR '"),
    ("field-reference", "{Run ID}"),
    ("arabic-indic-digits", "٢٥٠٩٣٠-١٤١٥٢٢"),
    ("fullwidth-digits", "２５０９３０-１４１５２２"),
    ("rlo-suffix", "250930-141522\u202e"),
    ("legacy-job-process", "job_post_scoring_stream1_20250929094802"),
    ("100001-chars", "2" * HUGE),
]

BASE_RUN_IDS = _cases(
    Kind.BASE_RUN_ID,
    [
        *((n, v, InvalidRunIdError) for n, v in _RUN_ID_GARBAGE),
        ("client-run-id", "250930-141522-Guy-Wilson", InvalidRunIdError),
        ("valid-but-absent", "991231-235959", None, ABSENT),
        ("valid-but-absent-y2k", "000101-000000", None, ABSENT),
    ],
)

CLIENT_RUN_IDS = _cases(
    Kind.CLIENT_RUN_ID,
    [
        *((n, v, InvalidRunIdError) for n, v in _RUN_ID_GARBAGE),
        ("base-run-id", "250930-141522", InvalidRunIdError),
        ("empty-client-part", "250930-141522-", InvalidRunIdError),
        ("newline-in-client", "250930-141522-Guy\nWilson", InvalidRunIdError),
        ("padded-client", "250930-141522- Guy", InvalidRunIdError),
        ("object-client", "250930-141522-[object Object]", InvalidRunIdError),
        ("client-101-chars", "250930-141522-" + "x" * 101, InvalidRunIdError),
        ("run-id-in-client", "250930-141522-250930-141522", InvalidRunIdError),
        ("no-base", "Guy-Wilson", InvalidRunIdError),
        ("valid-but-absent", "991231-235959-Guy-Wilson", None, ABSENT),
        ("absent-formula-client", "991231-235959-') , TRUE(), ('", None, ABSENT),
    ],
)

# --- client names ------------------------------------------------------------------------

CLIENT_NAMES = _cases(
    Kind.CLIENT_NAME,
    [
        *LEGAL_TEXT,
        *CONTROL_TEXT,
        ("object-object-text", "[object Object]"),
        ("99999-chars", "n" * 99_999),
        ("none", None, None, DEFAULTED),
        ("empty", "", None, DEFAULTED),
        *((n, v, InvalidInputError) for n, v in NON_STRINGS if v is not None),
        ("lone-surrogate", "Guy\ud800", InvalidInputError),
        ("100001-chars", "n" * HUGE, InvalidInputError),
    ],
)

# --- metric values -----------------------------------------------------------------------

COUNTS = _cases(
    Kind.COUNT,
    [
        ("zero", 0),
        ("one", 1),
        ("two-pow-53", 2**53),
        ("integral-float", 3.0, None, 3),
        ("negative-zero-float", -0.0, None, 0),
        ("digit-string", "55", None, 55),
        ("padded-digit-string", " 55 ", None, 55),
        ("tab-newline-digit-string", "\t12\n", None, 12),
        ("leading-zeros", "0007", None, 7),
        ("integral-decimal", Decimal("4.000"), None, 4),
        ("nan", float("nan"), InvalidMetricError),
        ("inf", float("inf"), InvalidMetricError),
        ("minus-inf", float("-inf"), InvalidMetricError),
        ("two-pow-53-plus-1", 2**53 + 1, InvalidMetricError),
        ("ten-pow-30", 10**30, InvalidMetricError),
        ("float-above-2-pow-53", float(2**53 + 2), InvalidMetricError),
        ("sixteen-nines-string", "9" * 16, InvalidMetricError),
        ("100001-digit-string", "1" * HUGE, InvalidMetricError),
        ("negative", -1, InvalidMetricError),
        ("fraction-float", 1.5, InvalidMetricError),
        ("bool-true", True, InvalidMetricError),
        ("bool-false", False, InvalidMetricError),
        ("none", None, InvalidMetricError),
        ("word", "abc", InvalidMetricError),
        ("empty-string", "", InvalidMetricError),
        ("exponent-string", "1e3", InvalidMetricError),
        ("hex-string", "0x10", InvalidMetricError),
        ("underscore-string", "1_000", InvalidMetricError),
        ("signed-string", "+5", InvalidMetricError),
        ("negative-string", "-5", InvalidMetricError),
        ("decimal-point-string", "55.0", InvalidMetricError),
        ("arabic-indic-digits", "٥٥", InvalidMetricError),
        ("fullwidth-digits", "１２", InvalidMetricError),
        ("nan-string", "NaN", InvalidMetricError),
        ("infinity-string", "Infinity", InvalidMetricError),
        ("object-object-text", "[object Object]", InvalidMetricError),
        ("js-object", JsObject(), InvalidMetricError),
        ("dict", {"n": 1}, InvalidMetricError),
        ("list", [1], InvalidMetricError),
        ("bytes", b"1", InvalidMetricError),
        ("decimal-nan", Decimal("NaN"), InvalidMetricError),
        ("decimal-infinity", Decimal("Infinity"), InvalidMetricError),
        ("fraction", Fraction(4, 1), InvalidMetricError),
        ("complex", complex(1, 0), InvalidMetricError),
    ],
)

COSTS = _cases(
    Kind.COST,
    [
        ("zero", 0, None, 0.0),
        ("integer", 12, None, 12.0),
        ("half-up-float", 1.005, None, 1.01),
        ("half-up-string", "2.675", None, 2.68),
        ("eighth", 0.125, None, 0.13),
        ("tiny", 1e-10, None, 0.0),
        ("negative-zero-string", "-0", None, 0.0),
        ("decimal", Decimal("3.333"), None, 3.33),
        ("padded-string", " 4.5 ", None, 4.5),
        ("leading-dot", ".5", None, 0.5),
        ("exponent-string", "1e2", None, 100.0),
        ("nan", float("nan"), InvalidMetricError),
        ("inf", float("inf"), InvalidMetricError),
        ("minus-inf", float("-inf"), InvalidMetricError),
        ("negative", -0.01, InvalidMetricError),
        ("negative-string", "-0.01", InvalidMetricError),
        ("ten-pow-30", 10**30, InvalidMetricError),
        ("huge-exponent-string", "1e400", InvalidMetricError),
        ("bool-true", True, InvalidMetricError),
        ("none", None, InvalidMetricError),
        ("word", "abc", InvalidMetricError),
        ("empty-string", "", InvalidMetricError),
        ("comma-decimal", "1,5", InvalidMetricError),
        ("currency-symbol", "€5", InvalidMetricError),
        ("object-object-text", "[object Object]", InvalidMetricError),
        ("js-object", JsObject(), InvalidMetricError),
        ("dict", {"usd": 1}, InvalidMetricError),
        ("bytes", b"1", InvalidMetricError),
        ("decimal-nan", Decimal("NaN"), InvalidMetricError),
        ("decimal-snan", Decimal("sNaN"), InvalidMetricError),
        ("100001-digit-string", "1" * HUGE, InvalidMetricError),
    ],
)

# --- statuses ----------------------------------------------------------------------------

STATUSES = _cases(
    Kind.STATUS,
    [
        ("enum", Status.COMPLETED, None, "Completed"),
        ("completed", "Completed"),
        ("failed", "Failed"),
        ("no-leads", "No Leads To Score"),
        ("lowercase", "completed", None, "Completed"),
        ("uppercase", "FAILED", None, "Failed"),
        ("padded", "  Failed  ", None, "Failed"),
        ("snake-case", "no_leads_to_score", None, "No Leads To Score"),
        ("legacy-success", "Success", None, "Completed"),
        ("legacy-with-errors", "completed_with_errors", None, "Completed"),
        ("legacy-error", "Error", None, "Failed"),
        ("legacy-skipped", "Skipped", None, "No Leads To Score"),
        ("trailing-newline", "Completed\n", None, "Completed"),
        ("tab-crlf", "\tFailed\r\n", None, "Failed"),
        ("line-separator-suffix", "Failed\u2028", None, "Failed"),
        ("none-decides", None, None, "Completed"),
        ("unknown", "Unknown", InvalidStatusError),
        ("recovery", "Recovery", InvalidStatusError),
        ("pending-review", "Pending review", InvalidStatusError),
        ("empty", "", InvalidStatusError),
        ("whitespace", "   ", InvalidStatusError),
        ("object-object-text", "[object Object]", InvalidStatusError),
        ("js-object", JsObject(), InvalidStatusError),
        ("int", 1, InvalidStatusError),
        ("bool-true", True, InvalidStatusError),
        ("nan", float("nan"), InvalidStatusError),
        ("dict", {"status": "Completed"}, InvalidStatusError),
        ("list", ["Completed"], InvalidStatusError),
        ("bytes", b"Completed", InvalidStatusError),
        ("nul-suffix", "Completed\x00", InvalidStatusError),
        ("zero-width-inside", "Compl\u200beted", InvalidStatusError),
        ("rlo-suffix", "Completed\u202e", InvalidStatusError),
        ("fullwidth", "Ｃｏｍｐｌｅｔｅｄ", InvalidStatusError),
        ("formula-or-true", "Completed' OR '1'='1", InvalidStatusError),
        ("field-reference", "{Status}", InvalidStatusError),
        ("emoji", "✅", InvalidStatusError),
        ("100001-chars", "C" * HUGE, InvalidStatusError),
    ],
)

# --- notes -------------------------------------------------------------------------------

NOTES = _cases(
    Kind.NOTE,
    [
        *LEGAL_TEXT,
        *CONTROL_TEXT,
        ("multi-line", "line 1\nline 2\n\nline 4"),
        ("empty", ""),
        ("object-object-text", "[object Object]"),
        ("50000-chars", "n" * 50_000),
        *((n, v, InvalidInputError) for n, v in NON_STRINGS),
        ("lone-surrogate", "bad \udcff byte", InvalidInputError),
        ("100001-chars", "n" * HUGE, InvalidInputError),
        ("99995-chars-no-room-for-stamp", "n" * 99_995, InvalidInputError),
    ],
)

# --- field names -------------------------------------------------------------------------

FIELD_NAMES = _cases(
    Kind.FIELD_NAME,
    [
        ("airtable-name-run-id", "Run ID", UnknownMetricError),
        ("airtable-name-client-id", "Client ID", UnknownMetricError),
        ("airtable-name-status", "Status", UnknownMetricError),
        ("airtable-name-metric", "Profiles Examined for Scoring", UnknownMetricError),
        ("airtable-name-computed", "Duration", UnknownMetricError),
        ("logical-computed", "duration", UnknownMetricError),
        ("logical-formula", "profile_success_rate", UnknownMetricError),
        ("unknown", "Success Rate", UnknownMetricError),
        ("trailing-space", "profiles_examined ", UnknownMetricError),
        ("uppercase", "PROFILES_EXAMINED", UnknownMetricError),
        ("braces", "{Run ID}", UnknownMetricError),
        ("formula-break-single", "') , TRUE(), ('", UnknownMetricError),
        ("formula-break-double", '" & {Run ID} & "', UnknownMetricError),
        ("nul-suffix", "profiles_examined\x00", UnknownMetricError),
        ("newline-suffix", "profiles_examined\n", UnknownMetricError),
        ("zero-width-inside", "profiles\u200b_examined", UnknownMetricError),
        ("fullwidth", "ｐｒｏｆｉｌｅｓ＿ｅｘａｍｉｎｅｄ", UnknownMetricError),
        ("rtl", "حقل", UnknownMetricError),
        ("emoji", "🚀", UnknownMetricError),
        ("empty", "", UnknownMetricError),
        ("dunder", "__class__", UnknownMetricError),
        ("record-keys", "createdTime", UnknownMetricError),
        ("object-object-text", "[object Object]", UnknownMetricError),
        ("100001-chars", "f" * HUGE, UnknownMetricError),
        # Not even strings: only a mapping passed to the repository can carry these.
        ("int-key", 1, SchemaViolationError),
        ("none-key", None, SchemaViolationError),
        ("tuple-key", ("run_id",), SchemaViolationError),
        ("bytes-key", b"run_id", SchemaViolationError),
    ],
)

ALL: list[Case] = [
    *CLIENT_IDS,
    *BASE_RUN_IDS,
    *CLIENT_RUN_IDS,
    *CLIENT_NAMES,
    *COUNTS,
    *COSTS,
    *STATUSES,
    *NOTES,
    *FIELD_NAMES,
]


def by_kind(kind: Kind) -> list[Case]:
    return [c for c in ALL if c.kind is kind]
