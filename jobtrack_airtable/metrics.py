"""Client metrics, rows read back from Airtable, job aggregates and completion status
(SPEC §1.4).

Four things live here:

* :class:`ClientMetrics`: the validated metric values of one client run, addressed by the
  logical keys of ``config/schema.toml`` (``profiles_examined``, ``apify_costs``…).  Bad values
  raise :class:`~jobtrack_airtable.errors.InvalidMetricError` naming the field and the value;
  unknown names raise :class:`~jobtrack_airtable.errors.UnknownMetricError` listing the
  allowed names.  Pydantic's ``ValidationError`` never escapes the public constructors.
* :func:`format_time`: Start/End/Last Updated as Airtable's UTC ``…Z``.
* :class:`ClientRunRow` / :class:`JobRow`: tolerant parses of records read back from the base,
  plain frozen dataclasses (pydantic validates where data enters, in :class:`ClientMetrics`;
  reading back must never raise).  Bad stored data becomes ``None`` plus a line in
  ``problems`` so ``sync`` can flag it.
* :class:`JobAggregate`, :func:`aggregate` and :func:`completion_status`: the job row derived
  from its client rows, recomputed from scratch every time (idempotent, self-repairing).

>>> from jobtrack_airtable.schema import load_schema
>>> crr = load_schema().client_runs
>>> m = ClientMetrics.of(profiles_examined="55", profiles_scored=50.0, apify_costs=1.005)
>>> m.to_fields(crr)
{'Profiles Examined for Scoring': 55, 'Profiles Successfully Scored': 50, 'Apify API Costs': 1.01}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from numbers import Integral
from typing import Any, ClassVar, NoReturn, Self, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_serializer,
    field_validator,
)

from .errors import InvalidInputError, InvalidMetricError, JobtrackError, UnknownMetricError, show
from .schema import TableSpec
from .statuses import Status
from .timeutil import parse_airtable, to_airtable

__all__ = [
    "AGGREGATE_KEYS",
    "COST_KEYS",
    "COUNT_KEYS",
    "JOB_SUM_KEYS",
    "MAX_COST",
    "MAX_COUNT",
    "METRIC_KEYS",
    "TIME_KEYS",
    "ClientMetrics",
    "ClientRunRow",
    "JobAggregate",
    "JobRow",
    "aggregate",
    "completion_status",
    "format_time",
    "validate_metrics",
]

#: Integer metrics of a client run (counts and AI tokens), in schema order.
COUNT_KEYS: tuple[str, ...] = (
    "profiles_examined",
    "profiles_scored",
    "profile_tokens",
    "posts_examined",
    "posts_scored",
    "post_tokens",
    "profiles_submitted",
    "posts_harvested",
)
#: Decimal (money) metrics of a client run.
COST_KEYS: tuple[str, ...] = ("apify_costs",)
#: Every metric name :class:`ClientMetrics` accepts.
METRIC_KEYS: tuple[str, ...] = COUNT_KEYS + COST_KEYS
#: Time fields shared by both tables.
TIME_KEYS: tuple[str, ...] = ("start_time", "end_time", "last_updated")
#: Job-table fields that are sums of the same-named client-run metric.
JOB_SUM_KEYS: tuple[str, ...] = (
    "profiles_examined",
    "profiles_scored",
    "posts_harvested",
    "posts_examined",
    "posts_scored",
    "profile_tokens",
    "post_tokens",
)
#: Job-table aggregate number fields that we write (``total_tokens`` is a formula: never).
AGGREGATE_KEYS: tuple[str, ...] = ("clients_processed", "clients_with_errors", *JOB_SUM_KEYS)

#: Largest accepted count: beyond 2**53 a JSON number (a double) no longer holds every integer.
MAX_COUNT = 2**53
#: Largest accepted cost: beyond this, a double can no longer hold every cent exactly.
MAX_COST = Decimal(2**53) / 100

_CENT = Decimal("0.01")
# ASCII only on purpose: int() and Decimal() also accept "1_000" and non-ASCII digits ("٥٥"),
# which are far more likely to be garbage than intended counts.
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_MAX_COUNT_DIGITS = len(str(MAX_COUNT))


# --- single-value validation -----------------------------------------------------------------


def _count(field: str, value: Any, *, stored: bool = False) -> int:
    """Validate one count/token value (SPEC §1.4) or raise :class:`InvalidMetricError`.

    ``stored=True`` is for values read back from a number field: there a string means the
    column was written as text (one of the original's bugs), so it is refused too.
    """
    if value is None:
        raise InvalidMetricError(field, value, "None is not a count; omit the metric instead")
    # bool first: it is an int subclass, and True silently becoming 1 hides caller bugs.
    if isinstance(value, bool):
        raise InvalidMetricError(field, value, "a bool is not a count")
    if isinstance(value, Integral):
        number = int(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetricError(field, value, "not a finite number")
        if not value.is_integer():
            raise InvalidMetricError(field, value, "not a whole number")
        number = int(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidMetricError(field, value, "not a finite number")
        if value != value.to_integral_value():
            raise InvalidMetricError(field, value, "not a whole number")
        number = int(value)
    elif isinstance(value, str):
        if stored:
            raise InvalidMetricError(field, value, "stored as text, not as a number")
        text = value.strip()
        if not _DIGITS.fullmatch(text):
            raise InvalidMetricError(field, value, "not a whole number (digits only)")
        # Length check before int(): a 5,000-digit string would otherwise hit int()'s limit.
        if len(text.lstrip("0")) > _MAX_COUNT_DIGITS:
            raise InvalidMetricError(field, value, f"larger than 2**53 ({MAX_COUNT})")
        number = int(text)
    else:
        raise InvalidMetricError(
            field, value, f"expected a whole number, not {type(value).__name__}"
        )
    if number < 0:
        raise InvalidMetricError(field, value, "negative")
    if number > MAX_COUNT:
        raise InvalidMetricError(field, value, f"larger than 2**53 ({MAX_COUNT})")
    return number


def _cost(field: str, value: Any, *, stored: bool = False) -> Decimal:
    """Validate one cost, rounded to cents (ROUND_HALF_UP), or raise
    :class:`InvalidMetricError`."""
    if value is None:
        raise InvalidMetricError(field, value, "None is not a cost; omit the metric instead")
    if isinstance(value, bool):
        raise InvalidMetricError(field, value, "a bool is not a cost")
    if isinstance(value, Integral):
        number = Decimal(int(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetricError(field, value, "not a finite number")
        # repr() gives the shortest decimal that round-trips, i.e. what the caller wrote:
        # 2.675 → Decimal("2.675") → 2.68, not the binary 2.67499999… → 2.67.
        number = Decimal(repr(value))
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        if stored:
            raise InvalidMetricError(field, value, "stored as text, not as a number")
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise InvalidMetricError(field, value, "not a decimal number")
        number = Decimal(text)
    else:
        raise InvalidMetricError(field, value, f"expected a number, not {type(value).__name__}")
    if not number.is_finite():
        raise InvalidMetricError(field, value, "not a finite number")
    if number < 0:
        raise InvalidMetricError(field, value, "negative")
    if number > MAX_COST:
        raise InvalidMetricError(field, value, f"larger than {MAX_COST}")
    try:
        rounded = number.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # pragma: no cover - bounded above, kept as a guard
        raise InvalidMetricError(field, value, "cannot be rounded to cents") from None
    # Decimal("-0.00") passes "≥ 0" but would serialise as -0.0; store plain zero.
    return rounded if rounded else Decimal("0.00")


def _metric(field: str, value: Any, *, stored: bool = False) -> int | Decimal:
    if field in COST_KEYS:
        return _cost(field, value, stored=stored)
    return _count(field, value, stored=stored)


def _reraise(exc: ValidationError, data: Any = None) -> NoReturn:
    """Turn pydantic's ValidationError into our typed errors: unknown names first (all of
    them), then the first bad value."""
    errors = exc.errors()
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and e["loc"]]
    if unknown:
        raise UnknownMetricError(unknown, METRIC_KEYS) from None
    for err in errors:
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, JobtrackError):
            raise inner from None
    for err in errors:
        if err["loc"]:
            raise InvalidMetricError(str(err["loc"][0]), err.get("input"), err["msg"]) from None
    raise InvalidInputError(f"expected a mapping of metric values, got {show(data)}") from None


# --- client metrics ----------------------------------------------------------------------------


class ClientMetrics(BaseModel):
    """The metric values of one client run; ``None`` means "not set" (not written).

    Build it with :meth:`of` (or :func:`validate_metrics` for a mapping).  Values are checked
    per SPEC §1.4:

    * counts and tokens: ``int``, integral ``float``/``Decimal`` (``3.0``) and digit strings
      (``"55"``; surrounding whitespace is stripped, signs, ``_``, exponents and non-ASCII
      digits are refused); ``bool``, negatives, fractions, NaN, ±inf, values above ``2**53``
      and anything else raise :class:`InvalidMetricError`.  Nothing is silently coerced to 0.
    * ``apify_costs``: a ``Decimal`` ≥ 0 from ``int``/``float``/``Decimal``/numeric strings,
      rounded to cents with ROUND_HALF_UP; written and JSON-dumped as a number, never a string.

    >>> m = ClientMetrics.of(profiles_examined=3.0, apify_costs="0.125")
    >>> m.profiles_examined, m.apify_costs
    (3, Decimal('0.13'))
    >>> ClientMetrics.of(profiles_examined=True)
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidMetricError: invalid value True for metric \
'profiles_examined': a bool is not a count

    The plain pydantic entry points (``ClientMetrics(...)``, ``model_validate``) apply the
    same checks and raise the same errors, except that an explicit ``None`` there means "not
    set", so ``ClientMetrics(**m.model_dump())`` round-trips.  :meth:`of` refuses an explicit
    ``None``: a worker passing ``profiles_examined=None`` has a bug, and dropping the value
    would lose the metric silently.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profiles_examined: int | None = None
    profiles_scored: int | None = None
    profile_tokens: int | None = None
    posts_examined: int | None = None
    posts_scored: int | None = None
    post_tokens: int | None = None
    profiles_submitted: int | None = None
    posts_harvested: int | None = None
    apify_costs: Decimal | None = None

    # Pairs (scored, examined) checked by sanity_warnings().
    _SANITY: ClassVar[tuple[tuple[str, str], ...]] = (
        ("profiles_scored", "profiles_examined"),
        ("posts_scored", "posts_examined"),
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            _reraise(exc, data)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate``, raising our typed errors instead of
        ``ValidationError``."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            _reraise(exc, obj)

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate_json``, raising our typed errors."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            _reraise(exc, json_data)

    @field_validator(*COUNT_KEYS, mode="before")
    @classmethod
    def _check_count(cls, value: Any, info: Any) -> int | None:
        return None if value is None else _count(info.field_name, value)

    @field_validator(*COST_KEYS, mode="before")
    @classmethod
    def _check_cost(cls, value: Any, info: Any) -> Decimal | None:
        return None if value is None else _cost(info.field_name, value)

    @field_serializer(*COST_KEYS, when_used="json")
    def _cost_as_number(self, value: Decimal | None) -> float | None:
        # Airtable's cost column is a number; a JSON string there was one of the original bugs.
        return None if value is None else float(value)

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def of(cls, **values: Any) -> ClientMetrics:
        """Validated metrics from keyword arguments; see the class docstring for the rules.

        >>> ClientMetrics.of(posts_harvested="12").posts_harvested
        12
        >>> ClientMetrics.of(profiles_examnied=1)
        Traceback (most recent call last):
        ...
        jobtrack_airtable.errors.UnknownMetricError: unknown metric name(s) 'profiles_examnied'; \
allowed: apify_costs, post_tokens, posts_examined, posts_harvested, posts_scored, \
profile_tokens, profiles_examined, profiles_scored, profiles_submitted
        """
        return validate_metrics(values)

    @classmethod
    def read_fields(cls, fields: Mapping[str, Any], table: TableSpec) -> tuple[Self, list[str]]:
        """Tolerantly read metrics from an Airtable ``fields`` dict (Airtable names).

        Returns the metrics built from the valid values only, and one problem line per invalid
        value (a text value in a number column included).  Never raises for bad data.

        >>> from jobtrack_airtable.schema import load_schema
        >>> m, problems = ClientMetrics.read_fields(
        ...     {"Total Posts Harvested": 4, "Post Scoring Tokens": -3},
        ...     load_schema().client_runs)
        >>> m.posts_harvested, m.post_tokens
        (4, None)
        >>> problems
        ["field 'Post Scoring Tokens' holds -3: negative"]
        """
        # Any: model_construct takes each key with its own type (int, or Decimal for costs).
        good: dict[str, Any] = {}
        problems: list[str] = []
        logical = table.from_names(fields)
        for key in METRIC_KEYS:
            if key not in logical or logical[key] is None:
                continue
            try:
                good[key] = _metric(key, logical[key], stored=True)
            except InvalidMetricError as exc:
                problems.append(
                    f"field {table.name_of(key)!r} holds {show(logical[key])}: {exc.reason}"
                )
        # The pydantic plugin types model_construct as returning ClientMetrics, not Self,
        # though on a subclass it builds an instance of that subclass.
        return cast(Self, cls.model_construct(**good)), problems

    # -- views -------------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """Whether no metric is set.

        >>> ClientMetrics().is_empty, ClientMetrics.of(post_tokens=0).is_empty
        (True, False)
        """
        return all(getattr(self, key) is None for key in METRIC_KEYS)

    def values(self) -> dict[str, int | Decimal]:
        """The set metrics by logical key (unset ones omitted).

        >>> ClientMetrics.of(post_tokens=7).values()
        {'post_tokens': 7}
        """
        return {k: v for k in METRIC_KEYS if (v := getattr(self, k)) is not None}

    def to_fields(self, table: TableSpec) -> dict[str, Any]:
        """The set metrics keyed by Airtable name, ready to write: counts as ``int``, costs as
        ``float`` (a JSON number with at most 2 decimals).  Fields the base has disabled
        (``enabled = false``) are left out, as everywhere else.

        >>> from jobtrack_airtable.schema import load_schema
        >>> ClientMetrics.of(apify_costs=2).to_fields(load_schema().client_runs)
        {'Apify API Costs': 2.0}
        """
        out = {k: float(v) if isinstance(v, Decimal) else v for k, v in self.values().items()}
        return table.to_names(out)

    def to_values(self, table: TableSpec) -> dict[str, Any]:
        """The set metrics by logical key, ready to write (costs as ``float``), only those
        the base has enabled: what the tracker hands the repository.

        >>> from jobtrack_airtable.schema import load_schema
        >>> ClientMetrics.of(apify_costs=2, posts_scored=1).to_values(load_schema().client_runs)
        {'posts_scored': 1, 'apify_costs': 2.0}
        """
        return {
            k: float(v) if isinstance(v, Decimal) else v
            for k, v in self.values().items()
            if table.has(k)
        }

    # -- arithmetic --------------------------------------------------------------------------

    def plus(self, other: ClientMetrics) -> ClientMetrics:
        """Add ``other`` to these metrics (in-process increments).  A metric set on either side
        is set in the result; unset + unset stays unset.  A sum above the limits raises
        :class:`InvalidMetricError`.

        >>> a = ClientMetrics.of(profiles_examined=2, apify_costs="0.10")
        >>> a.plus(ClientMetrics.of(profiles_examined=3, posts_scored=1)).values()
        {'profiles_examined': 5, 'posts_scored': 1, 'apify_costs': Decimal('0.10')}
        """
        mine, theirs = self.values(), other.values()
        totals: dict[str, Any] = {}
        for key in METRIC_KEYS:
            if key in mine or key in theirs:
                totals[key] = mine.get(key, 0) + theirs.get(key, 0)
        return validate_metrics(totals)

    def merged(self, other: ClientMetrics) -> ClientMetrics:
        """These metrics with every value ``other`` sets overriding (absolute ``set``).

        >>> a = ClientMetrics.of(profiles_examined=2, posts_scored=1)
        >>> a.merged(ClientMetrics.of(profiles_examined=9)).values()
        {'profiles_examined': 9, 'posts_scored': 1}
        """
        # Both sides are already validated: no need to validate again.
        merged: dict[str, Any] = {**self.values(), **other.values()}
        return type(self).model_construct(**merged)

    def sanity_warnings(self, table: TableSpec | None = None) -> list[str]:
        """Cross-field checks that are warnings, not errors (SPEC §1.4): scored ≤ examined.
        Field names are Airtable names when ``table`` is given, logical keys otherwise.

        >>> ClientMetrics.of(profiles_examined=10, profiles_scored=12).sanity_warnings()
        ['profiles_scored (12) is greater than profiles_examined (10)']
        """
        warnings: list[str] = []
        for scored_key, examined_key in self._SANITY:
            scored, examined = getattr(self, scored_key), getattr(self, examined_key)
            if scored is not None and examined is not None and scored > examined:
                scored_name, examined_name = scored_key, examined_key
                if table is not None and table.has(scored_key) and table.has(examined_key):
                    scored_name = table.name_of(scored_key)
                    examined_name = table.name_of(examined_key)
                warnings.append(
                    f"{scored_name} ({scored}) is greater than {examined_name} ({examined})"
                )
        return warnings


def validate_metrics(values: Mapping[str, Any]) -> ClientMetrics:
    """Validate a mapping of metric values (logical keys) into :class:`ClientMetrics`.

    Unknown names raise :class:`UnknownMetricError` (all of them, with the allowed names)
    before any value is looked at; otherwise the first bad value, in schema order, raises
    :class:`InvalidMetricError`.  An explicit ``None`` is refused.

    >>> validate_metrics({"profiles_examined": " 55 "}).profiles_examined
    55
    >>> validate_metrics({"profiles_examined": None})
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidMetricError: invalid value None for metric \
'profiles_examined': None is not a count; omit the metric instead
    """
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"expected a mapping of metric values, got {show(values)}")
    unknown = [str(k) for k in values if k not in METRIC_KEYS]
    if unknown:
        raise UnknownMetricError(unknown, METRIC_KEYS)
    checked: dict[str, Any] = {k: _metric(k, values[k]) for k in METRIC_KEYS if k in values}
    return ClientMetrics.model_construct(**checked)


# --- times -------------------------------------------------------------------------------------


def format_time(field: str, value: datetime, *, assume_utc: bool = False) -> str:
    """Format a datetime for the time field ``field`` as Airtable's UTC ``…Z``.

    Aware datetimes are converted to UTC; naive ones are refused with
    :class:`InvalidMetricError` naming the field, unless ``assume_utc`` (the configuration
    switch) says they are UTC.

    >>> from datetime import datetime, timedelta, timezone
    >>> cest = timezone(timedelta(hours=2))
    >>> format_time("start_time", datetime(2025, 9, 30, 16, 15, tzinfo=cest))
    '2025-09-30T14:15:00.000Z'
    >>> format_time("start_time", datetime(2025, 9, 30, 14, 15))
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidMetricError: invalid value \
datetime.datetime(2025, 9, 30, 14, 15) for metric 'start_time': naive datetime (no time zone); \
give it one, or configure assume_utc
    """
    if not isinstance(value, datetime):
        raise InvalidMetricError(field, value, f"expected a datetime, not {type(value).__name__}")
    if (value.tzinfo is None or value.utcoffset() is None) and not assume_utc:
        raise InvalidMetricError(
            field, value, "naive datetime (no time zone); give it one, or configure assume_utc"
        )
    return to_airtable(value, assume_utc=assume_utc)


# --- rows read back ----------------------------------------------------------------------------


class _Reader:
    """Reads one record's fields tolerantly, collecting problems instead of raising."""

    def __init__(self, record: Mapping[str, Any], table: TableSpec) -> None:
        if not isinstance(record, Mapping) or not isinstance(record.get("id"), str):
            # A record without an id is not "bad data in the base" but a caller bug.
            raise InvalidInputError(f"not an Airtable record: {show(record)}")
        self.table = table
        self.problems: list[str] = []
        raw_fields = record.get("fields", {})
        if not isinstance(raw_fields, Mapping):
            self.problems.append(f"record fields are not an object: {show(raw_fields)}")
            raw_fields = {}
        self.fields: dict[str, Any] = dict(raw_fields)
        self.logical = table.from_names(raw_fields)
        self.record_id: str = record["id"]
        self.created_time = self._time_value("createdTime", record.get("createdTime"))

    def _time_value(self, name: str, value: Any) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_airtable(value)
        except InvalidInputError:
            self.problems.append(f"field {name!r} holds {show(value)}: not an ISO-8601 datetime")
            return None

    def time(self, key: str) -> datetime | None:
        if key not in self.logical:
            return None
        return self._time_value(self.table.name_of(key), self.logical[key])

    def text(self, key: str) -> str | None:
        value = self.logical.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problems.append(f"field {self.table.name_of(key)!r} holds {show(value)}: not text")
        return None

    def status(self) -> tuple[str | None, Status | None]:
        raw = self.text("status")
        # Only exact standard values become a Status; legacy aliases ("Success"…) stay in
        # status_raw for the statuses module / sync to map, and are not listed as problems
        # here so that sync does not report them twice.
        status = Status(raw) if raw is not None and raw in Status._value2member_map_ else None
        return raw, status

    def count(self, key: str, *, minimum: int = 0) -> int | None:
        if key not in self.logical or self.logical[key] is None:
            return None
        value = self.logical[key]
        try:
            number = _count(key, value, stored=True)
        except InvalidMetricError as exc:
            reason = exc.reason
        else:
            if number >= minimum:
                return number
            reason = f"less than {minimum}"
        self.problems.append(f"field {self.table.name_of(key)!r} holds {show(value)}: {reason}")
        return None


@dataclass(frozen=True)
class ClientRunRow:
    """A Client Run Results row as read back from the base.

    Parsing with :meth:`from_record` never raises for bad stored data: an invalid value
    becomes ``None`` (or is left out of ``metrics``) and is described in ``problems``.
    ``run_id`` is the raw text (legacy IDs exist in bases; see ``run_ids``).  ``status`` is set
    only when ``status_raw`` is exactly one of the four standard values.  ``fields`` keeps the
    raw Airtable ``fields`` dict so ``sync`` can propose repairs.

    >>> from jobtrack_airtable.schema import load_schema
    >>> row = ClientRunRow.from_record(
    ...     {"id": "recAAAAAAAAAAAAAA", "createdTime": "2025-09-30T14:15:22.000Z",
    ...      "fields": {"Run ID": "250930-141522-Guy-Wilson", "Status": "Success",
    ...                 "Profiles Examined for Scoring": 5, "Apify API Costs": "1.20"}},
    ...     load_schema().client_runs)
    >>> row.status_raw, row.status, row.metrics.profiles_examined
    ('Success', None, 5)
    >>> row.problems
    ["field 'Apify API Costs' holds '1.20': stored as text, not as a number"]
    """

    record_id: str = ""
    created_time: datetime | None = None
    run_id: str | None = None
    client_id: str | None = None
    client_name: str | None = None
    status_raw: str | None = None
    status: Status | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_updated: datetime | None = None
    metrics: ClientMetrics = field(default_factory=ClientMetrics)
    system_notes: str | None = None
    error_details: str | None = None
    apify_run_id: str | None = None
    problems: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], table: TableSpec) -> ClientRunRow:
        """Parse a pyairtable record ``{"id", "createdTime", "fields"}`` of the client-runs
        table.  Omitted fields (Airtable omits empty values) are ``None``."""
        r = _Reader(record, table)
        status_raw, status = r.status()
        metrics, metric_problems = ClientMetrics.read_fields(r.fields, table)
        values: dict[str, Any] = {
            "record_id": r.record_id,
            "created_time": r.created_time,
            "run_id": r.text("run_id"),
            "client_id": r.text("client_id"),
            "client_name": r.text("client_name"),
            "status_raw": status_raw,
            "status": status,
            "start_time": r.time("start_time"),
            "end_time": r.time("end_time"),
            "last_updated": r.time("last_updated"),
            "metrics": metrics,
            "system_notes": r.text("system_notes"),
            "error_details": r.text("error_details"),
            "apify_run_id": r.text("apify_run_id"),
            "fields": r.fields,
        }
        # A plain dataclass: every value is already checked by the reader, and reading back
        # must never raise (validation belongs where data enters: ClientMetrics.of).
        return cls(**values, problems=r.problems + metric_problems)


@dataclass(frozen=True)
class JobRow:
    """A Job Tracking row as read back from the base; tolerant like :class:`ClientRunRow`.

    ``aggregates`` has one entry per aggregate field the table has enabled
    (:data:`AGGREGATE_KEYS`), ``None`` where the row holds no (valid) value.

    >>> from jobtrack_airtable.schema import load_schema
    >>> job = JobRow.from_record(
    ...     {"id": "recBBBBBBBBBBBBBB", "createdTime": "2025-09-30T14:15:22.000Z",
    ...      "fields": {"Run ID": "250930-141522", "Stream": 1, "Clients Processed": 2}},
    ...     load_schema().jobs)
    >>> job.stream, job.aggregates["clients_processed"], job.aggregates["posts_scored"]
    (1, 2, None)
    """

    record_id: str = ""
    created_time: datetime | None = None
    run_id: str | None = None
    status_raw: str | None = None
    status: Status | None = None
    stream: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    last_updated: datetime | None = None
    system_notes: str | None = None
    aggregates: dict[str, int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], table: TableSpec) -> JobRow:
        """Parse a pyairtable record of the jobs table.  Never raises for bad stored data."""
        r = _Reader(record, table)
        status_raw, status = r.status()
        values: dict[str, Any] = {
            "record_id": r.record_id,
            "created_time": r.created_time,
            "run_id": r.text("run_id"),
            "status_raw": status_raw,
            "status": status,
            "stream": r.count("stream", minimum=1),
            "start_time": r.time("start_time"),
            "end_time": r.time("end_time"),
            "last_updated": r.time("last_updated"),
            "system_notes": r.text("system_notes"),
            "aggregates": {k: r.count(k) for k in AGGREGATE_KEYS if table.has(k)},
            "fields": r.fields,
        }
        return cls(**values, problems=r.problems)


# --- aggregation -------------------------------------------------------------------------------


class JobAggregate(BaseModel):
    """A job's totals derived from its client-run rows (SPEC §1.4); see :func:`aggregate`.

    ``profile_success_rate``, ``post_success_rate`` and ``total_tokens`` are computed (and
    never written: Airtable computes its own formula fields).

    >>> agg = JobAggregate(clients_processed=1, profiles_examined=4, profiles_scored=3)
    >>> agg.profile_success_rate, agg.post_success_rate
    (0.75, 0.0)
    """

    model_config = ConfigDict(frozen=True)

    clients_processed: int = Field(default=0, ge=0)
    clients_with_errors: int = Field(default=0, ge=0)
    profiles_examined: int = Field(default=0, ge=0)
    profiles_scored: int = Field(default=0, ge=0)
    posts_harvested: int = Field(default=0, ge=0)
    posts_examined: int = Field(default=0, ge=0)
    posts_scored: int = Field(default=0, ge=0)
    profile_tokens: int = Field(default=0, ge=0)
    post_tokens: int = Field(default=0, ge=0)
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def profile_success_rate(self) -> float:
        """Profiles scored / examined; 0 when nothing was examined."""
        return _rate(self.profiles_scored, self.profiles_examined)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def post_success_rate(self) -> float:
        """Posts scored / examined; 0 when nothing was examined."""
        return _rate(self.posts_scored, self.posts_examined)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        """Profile + post scoring tokens."""
        return self.profile_tokens + self.post_tokens

    def counts(self) -> dict[str, int]:
        """The stored aggregate numbers by logical key (comparable with
        :attr:`JobRow.aggregates`).

        >>> JobAggregate(clients_processed=2).counts()["clients_processed"]
        2
        """
        return {key: getattr(self, key) for key in AGGREGATE_KEYS}

    def to_fields(self, table: TableSpec, *, times: bool = True) -> dict[str, Any]:
        """The aggregate as an Airtable ``fields`` dict for the jobs table: only fields the
        base has enabled and that are not computed (never ``Total Tokens Used``, never the
        success rates).  With ``times``, Start/End Time are included when known.

        >>> from jobtrack_airtable.schema import load_schema
        >>> agg = JobAggregate(clients_processed=2, post_tokens=7)
        >>> fields = agg.to_fields(load_schema().jobs)
        >>> fields["Clients Processed"], fields["Post Scoring Tokens"]
        (2, 7)
        >>> "Total Tokens Used" in fields or "Duration" in fields
        False
        """
        return table.to_names(self.to_values(table, times=times))

    def to_values(self, table: TableSpec, *, times: bool = True) -> dict[str, Any]:
        """:meth:`to_fields` by logical key (what the tracker hands the repository).

        >>> from jobtrack_airtable.schema import load_schema
        >>> JobAggregate(clients_processed=2).to_values(load_schema().jobs)["clients_processed"]
        2
        """
        values: dict[str, Any] = self.counts()
        if times:
            for key in ("start_time", "end_time"):
                moment = getattr(self, key)
                if moment is not None:
                    values[key] = format_time(key, moment)
        return {
            key: value
            for key, value in values.items()
            if table.has(key) and not table.field(key).computed
        }


def _rate(scored: int, examined: int) -> float:
    return scored / examined if examined else 0.0


def aggregate(rows: Iterable[ClientRunRow]) -> JobAggregate:
    """Recompute a job's aggregate from all its client-run rows (never incremented, so running
    it again gives the same result and repairs a drifted job row).

    * ``clients_processed``: number of rows (any status); ``clients_with_errors``: rows whose
      status is exactly ``Failed`` (legacy aliases are normalised by ``sync`` first).
    * sums: unset metrics count as 0.
    * ``start_time`` / ``end_time``: earliest start / latest end among rows that have one,
      compared as instants (mixed offsets are fine) and returned in UTC.

    >>> from datetime import datetime, timedelta, timezone
    >>> east = timezone(timedelta(hours=2))
    >>> rows = [
    ...     ClientRunRow(status=Status.COMPLETED, metrics=ClientMetrics.of(posts_scored=2),
    ...                  start_time=datetime(2025, 9, 30, 15, 0, tzinfo=east)),
    ...     ClientRunRow(status=Status.FAILED, metrics=ClientMetrics.of(posts_scored=1),
    ...                  start_time=datetime(2025, 9, 30, 13, 30, tzinfo=timezone.utc)),
    ... ]
    >>> agg = aggregate(rows)
    >>> agg.clients_processed, agg.clients_with_errors, agg.posts_scored
    (2, 1, 3)
    >>> agg.start_time.isoformat()
    '2025-09-30T13:00:00+00:00'
    """
    sums = dict.fromkeys(JOB_SUM_KEYS, 0)
    processed = errors = 0
    starts: list[datetime] = []
    ends: list[datetime] = []
    for row in rows:
        processed += 1
        if row.status is Status.FAILED:
            errors += 1
        for key in JOB_SUM_KEYS:
            sums[key] += getattr(row.metrics, key) or 0
        if row.start_time is not None:
            starts.append(row.start_time)
        if row.end_time is not None:
            ends.append(row.end_time)
    return JobAggregate(
        clients_processed=processed,
        clients_with_errors=errors,
        **sums,
        start_time=min(starts).astimezone(UTC) if starts else None,
        end_time=max(ends).astimezone(UTC) if ends else None,
    )


def _did_work(row: ClientRunRow) -> bool:
    return any(getattr(row.metrics, key) for key in COUNT_KEYS)


def completion_status(rows: Iterable[ClientRunRow]) -> Status:
    """The job's terminal status when the caller does not force one (SPEC §1.4):

    1. any client ``Failed`` and none ``Completed`` → ``Failed``;
    2. no client processed anything (all ``No Leads To Score``, or no clients) →
       ``No Leads To Score``;
    3. otherwise ``Completed`` (finished, even if some clients failed).

    What "processed" means per row:

    * ``Completed`` counts as processed even when all its metrics are zero or unset: the
      status is the worker's own verdict (the tracker already closes a run with no work as
      ``No Leads To Score``), and some job kinds record no metrics at all.
    * ``No Leads To Score`` never counts, whatever its metrics say.
    * ``Running`` rows (a client run still open, or abandoned by a crashed worker), rows with
      a legacy/unknown status and rows without one are neither completed nor failed: they
      count as processed only if they recorded work (a non-zero count).  So an open run that
      did work makes the job ``Completed`` (``sync`` flags the stale row separately), while an
      open run that did nothing does not turn a no-op job into ``Completed``.

    >>> completion_status([])
    <Status.NO_LEADS: 'No Leads To Score'>
    >>> completion_status([ClientRunRow(status=Status.FAILED),
    ...                    ClientRunRow(status=Status.NO_LEADS)])
    <Status.FAILED: 'Failed'>
    >>> completion_status([ClientRunRow(status=Status.FAILED),
    ...                    ClientRunRow(status=Status.COMPLETED)])
    <Status.COMPLETED: 'Completed'>
    """
    any_failed = any_completed = any_processed = False
    for row in rows:
        if row.status is Status.FAILED:
            any_failed = True
        elif row.status is Status.COMPLETED:
            any_completed = any_processed = True
        elif row.status is not Status.NO_LEADS and _did_work(row):
            any_processed = True
    if any_failed and not any_completed:
        return Status.FAILED
    if not any_processed:
        return Status.NO_LEADS
    return Status.COMPLETED
