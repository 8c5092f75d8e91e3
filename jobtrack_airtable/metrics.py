"""Client-run metric values and the time fields, validated where data enters (SPEC §1.4).

* :class:`ClientMetrics`: the validated metric values of one client run, addressed by the
  logical keys of ``config/schema.toml`` (``profiles_examined``, ``apify_costs``…).  Bad values
  raise :class:`~jobtrack_airtable.errors.InvalidMetricError` naming the field and the value;
  unknown names raise :class:`~jobtrack_airtable.errors.UnknownMetricError` listing the
  allowed names.  Pydantic's ``ValidationError`` never escapes the public constructors.
* :func:`format_time`: Start/End/Last Updated as Airtable's UTC ``…Z``.

Rows read back from the base are parsed in :mod:`.rows`; a job's totals are derived in
:mod:`.aggregation`.

>>> from jobtrack_airtable.schema import load_schema
>>> crr = load_schema().client_runs
>>> m = ClientMetrics.of(profiles_examined="55", profiles_scored=50.0, apify_costs=1.005)
>>> m.to_values(crr)
{'profiles_examined': 55, 'profiles_scored': 50, 'apify_costs': 1.01}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from numbers import Integral
from typing import Any, NoReturn, Self, TypedDict, cast

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer, field_validator

from .errors import InvalidInputError, InvalidMetricError, JobtrackError, UnknownMetricError, show
from .schema import TableSpec
from .timeutil import to_airtable

__all__ = [
    "AGGREGATE_KEYS",
    "COST_KEYS",
    "COUNT_KEYS",
    "JOB_SUM_KEYS",
    "MAX_COST",
    "MAX_COUNT",
    "METRIC_KEYS",
    "SANITY_PAIRS",
    "TIME_KEYS",
    "ClientMetrics",
    "MetricValues",
    "RunValues",
    "format_time",
    "sanity_warnings",
    "stored_count",
    "trusted",
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


class MetricValues(TypedDict, total=False):
    """The metrics ``run.add(...)`` and ``run.set(...)`` take, by name and type: an IDE
    completes them and a type checker rejects a misspelt one (``run.add(**kw)`` keyword
    arguments are typed with ``Unpack[MetricValues]``).  At run time every value is still
    validated (a negative, fractional, boolean or huge count raises
    :class:`~jobtrack_airtable.errors.InvalidMetricError`)."""

    #: Profiles Examined for Scoring (sums into the job's Total Profiles Examined)
    profiles_examined: int
    #: Profiles Successfully Scored (sums into Successful Profiles)
    profiles_scored: int
    #: Profile Scoring Tokens (sums into the job's Profile Scoring Tokens)
    profile_tokens: int
    #: Posts Examined for Scoring (sums into the job's Posts Examined for Scoring)
    posts_examined: int
    #: Posts Successfully Scored (sums into the job's Posts Successfully Scored)
    posts_scored: int
    #: Post Scoring Tokens (sums into the job's Post Scoring Tokens)
    post_tokens: int
    #: Profiles Submitted for Post Harvesting (client run only)
    profiles_submitted: int
    #: Total Posts Harvested (sums into the job's Total Posts Harvested)
    posts_harvested: int
    #: Apify API Costs, in dollars, rounded to cents (client run only)
    apify_costs: float | Decimal


class RunValues(MetricValues, total=False):
    """What ``run.set(...)`` takes: the metrics, plus the run's other writable fields."""

    #: Apify Run ID (``None`` clears it)
    apify_run_id: str | None
    #: Client Name (cannot be cleared)
    client_name: str


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


def stored_count(field: str, value: Any) -> int:
    """A count read back from the number field ``field``, or :class:`InvalidMetricError`
    (text in a number field is refused: the column was written as text).

    >>> stored_count("stream", 2.0)
    2
    >>> stored_count("stream", "2")
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.InvalidMetricError: invalid value '2' for metric 'stream': \
stored as text, not as a number
    """
    return _count(field, value, stored=True)


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
    def read_values(cls, values: Mapping[str, Any], table: TableSpec) -> tuple[Self, list[str]]:
        """Tolerantly read the metrics of a row read back (``values`` by logical key, as the
        row reader has them; problems name the fields by their Airtable names).

        Returns the metrics built from the valid values only, and one problem line per invalid
        value (a text value in a number column included).  Never raises for bad data.

        >>> from jobtrack_airtable.schema import load_schema
        >>> m, problems = ClientMetrics.read_values(
        ...     {"posts_harvested": 4, "post_tokens": -3}, load_schema().client_runs)
        >>> m.posts_harvested, m.post_tokens
        (4, None)
        >>> problems
        ["field 'Post Scoring Tokens' holds -3: negative"]
        """
        # Any: model_construct takes each key with its own type (int, or Decimal for costs).
        good: dict[str, Any] = {}
        problems: list[str] = []
        for key in METRIC_KEYS:
            if values.get(key) is None:
                continue
            try:
                good[key] = _metric(key, values[key], stored=True)
            except InvalidMetricError as exc:
                problems.append(
                    f"field {table.name_of(key)!r} holds {show(values[key])}: {exc.reason}"
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
                total = mine.get(key, 0) + theirs.get(key, 0)
                # Both sides were validated where they entered: whole counts and cents ≥ 0
                # add up to the same, so only the upper bound is left to check.
                if key in COST_KEYS:
                    if total > MAX_COST:
                        raise InvalidMetricError(key, total, f"larger than {MAX_COST}")
                elif total > MAX_COUNT:
                    raise InvalidMetricError(key, total, f"larger than 2**53 ({MAX_COUNT})")
                totals[key] = total
        return trusted(totals)

    def merged(self, other: ClientMetrics) -> ClientMetrics:
        """These metrics with every value ``other`` sets overriding (absolute ``set``).

        >>> a = ClientMetrics.of(profiles_examined=2, posts_scored=1)
        >>> a.merged(ClientMetrics.of(profiles_examined=9)).values()
        {'profiles_examined': 9, 'posts_scored': 1}
        """
        # Both sides are already validated: no need to validate again.
        return trusted({**self.values(), **other.values()})

    def sanity_warnings(self, table: TableSpec | None = None) -> list[str]:
        """Cross-field checks that are warnings, not errors (SPEC §1.4): scored ≤ examined.
        Field names are Airtable names when ``table`` is given, logical keys otherwise.

        >>> ClientMetrics.of(profiles_examined=10, profiles_scored=12).sanity_warnings()
        ['profiles_scored (12) is greater than profiles_examined (10)']
        """
        return sanity_warnings(self.values(), table)


#: Pairs (scored, examined) that :func:`sanity_warnings` checks.
SANITY_PAIRS: tuple[tuple[str, str], ...] = (
    ("profiles_scored", "profiles_examined"),
    ("posts_scored", "posts_examined"),
)


def sanity_warnings(values: Mapping[str, Any], table: TableSpec | None = None) -> list[str]:
    """:meth:`ClientMetrics.sanity_warnings` over valid metric values by logical key (unset
    ones absent or ``None``): what ``sync`` checks on every client row without building a
    model per row.

    >>> sanity_warnings({"posts_scored": 3, "posts_examined": 2})
    ['posts_scored (3) is greater than posts_examined (2)']
    """
    warnings: list[str] = []
    for scored_key, examined_key in SANITY_PAIRS:
        scored, examined = values.get(scored_key), values.get(examined_key)
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
    return trusted({k: _metric(k, values[k]) for k in METRIC_KEYS if k in values})


#: No metric set: what :func:`trusted` copies.
_UNSET = ClientMetrics.model_construct()


def trusted(values: Mapping[str, int | Decimal]) -> ClientMetrics:
    """Metrics from values already validated where they entered (sums of validated values,
    a row's validated totals): no second validation.  pydantic's ``model_copy`` of an empty
    instance, a few times cheaper than ``model_construct``, which resolves every field's
    default on each call (``run.add()`` builds two of these).

    >>> trusted({"post_tokens": 7}).values()
    {'post_tokens': 7}
    """
    return _UNSET.model_copy(update=values)


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
