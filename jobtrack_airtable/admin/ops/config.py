"""What a healthy base looks like: the configuration of ``jobtrack-airtable check``.

A small TOML file (``--config FILE``; every key optional; ``config/check.example.toml`` is a
commented example)::

    stuck_after = "2h"        # a Running job with no update for this long is stuck
                              # (default: JOBTRACK_STALE_AFTER_MINUTES, 120 minutes)
    lookback = "24h"          # the first check (no state yet) looks this far back for failures
                              # and missed runs; also how long an undelivered notification is
                              # retried

    [error_rate]              # a client is unhealthy when, over `window`, at least `threshold`
    window = "7d"             # of its finished client runs failed and it had at least
    threshold = 0.5           # `min_runs` of them
    min_runs = 3

    [[schedule]]              # "stream 1 runs every day by 07:00 UTC"
    stream = 1
    every = "day"             # "day" or "hour"
    by = "07:00"              # day: HH:MM; hour: minutes past the hour (":15" or "15")
    within = "24h"            # the run must have started at most this long before the
                              # deadline (default: the period, 24h or 1h)
    days = ["mon", "tue", "wed", "thu", "fri"]   # day rules only; default every day
    timezone = "UTC"          # the zone `by` and `days` are read in (an IANA name)
    grace = "10m"             # report a deadline only once it is this far in the past
    max_runtime = "45m"       # a run of this stream taking longer is reported (long_run)
    min_interval = "20h"      # runs of this stream closer together are reported (too_frequent)

Alert rules (every one optional; see the README's table of problem kinds)::

    max_runtime = "3h"        # every stream without its own [[schedule]] max_runtime
    min_interval = "5m"       # every stream without its own [[schedule]] min_interval
    failures_to_alert = 3     # a stream is "failing" after this many failed runs in a row
    successes_to_resolve = 2  # ... and resolved after this many successful runs in a row

    [clients]
    failure_streak = 3        # a client whose last 3 finished runs all failed
    zero_leads_streak = 5     # a client whose last 5 finished runs scored no lead

    [quota]
    calls_share = 0.8         # this month's projected API calls above 80 % of the quota
    records_share = 0.9       # the base's records above 90 % of the plan's cap
    tool_share = 0.4          # this tool makes 40 % of the workspace's calls: judge those

    [outbox]                  # the workers' outbox (changes Airtable does not hold yet)
    max_entries = 0           # more than this many waiting
    max_age = "15m"           # the oldest waiting longer than this

A rule is *met* for a deadline when a job of that stream has a run time (Start Time, else
created time) in ``[deadline - within, deadline]``; a job that started and then failed still
meets it (the failure is reported as a failed run).  Durations follow
:mod:`jobtrack_airtable.durations`.  The file is validated by pydantic models; bad values raise
:class:`~jobtrack_airtable.errors.ConfigError` naming the key and the value.

>>> rule = ScheduleRule.parse({"stream": 1, "every": "day", "by": "07:00"})
>>> rule.describe()
'stream 1 every day by 07:00 UTC'
>>> from datetime import datetime, UTC
>>> [d.isoformat() for d in rule.deadlines(datetime(2025, 10, 1, 12, tzinfo=UTC),
...                                        datetime(2025, 10, 3, 7, tzinfo=UTC))]
['2025-10-02T07:00:00+00:00', '2025-10-03T07:00:00+00:00']
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ...durations import DurationError, parse_duration
from ...errors import ConfigError, show

__all__ = [
    "CheckConfig",
    "ClientRules",
    "ErrorRateRule",
    "OutboxRules",
    "QuotaRules",
    "ScheduleRule",
    "StreamLimits",
    "load_check_config",
    "parse_duration",
]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PERIODS: dict[str, timedelta] = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


def _duration(value: Any, *, allow_zero: bool = False) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value, allow_zero=allow_zero)
    except DurationError as exc:
        raise ValueError(exc.reason) from None


def _zero_ok_duration(value: Any) -> timedelta:
    return _duration(value, allow_zero=True)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
ZeroOkDuration = Annotated[timedelta, BeforeValidator(_zero_ok_duration)]
Count = Annotated[int, Field(strict=True, ge=1)]
Share = Annotated[float, Field(gt=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class ScheduleRule(_Model):
    """One expected run: ``stream`` runs every ``every`` by ``by`` (in ``tz``); optionally
    the stream's own ``max_runtime`` and ``min_interval``."""

    stream: Count
    every: Literal["day", "hour"] = "day"
    by: time
    within: Duration | None = None
    days: frozenset[int] | None = None
    tz: ZoneInfo = Field(default_factory=lambda: ZoneInfo("UTC"), alias="timezone")
    grace: ZeroOkDuration = timedelta(0)
    max_runtime: Duration | None = None
    min_interval: Duration | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, where: str = "schedule") -> ScheduleRule:
        """A rule from its TOML table; every problem is a :class:`ConfigError`."""
        return _validated(cls, raw, where)

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, value: Any, info: ValidationInfo) -> time:
        return _parse_by(value, info.data.get("every", "day"))

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any, info: ValidationInfo) -> frozenset[int]:
        if info.data.get("every") == "hour":
            raise ValueError("days applies to day rules only")
        return _parse_days(value)

    @field_validator("tz", mode="before")
    @classmethod
    def _tz(cls, value: Any) -> ZoneInfo:
        try:
            if isinstance(value, str):
                return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        raise ValueError("unknown time zone")

    @property
    def window_length(self) -> timedelta:
        """``within``, by default the rule's period (24 h or 1 h)."""
        return self.within if self.within is not None else _PERIODS[self.every]

    def describe(self) -> str:
        """``'stream 1 every day by 07:00 UTC'`` (the rule in words, for messages)."""
        if self.every == "hour":
            when = f"every hour by :{self.by.minute:02d}"
        else:
            days = (
                ""
                if self.days is None or len(self.days) == 7
                else " (" + ", ".join(_DAYS[d].capitalize() for d in sorted(self.days)) + ")"
            )
            when = f"every day{days} by {self.by.strftime('%H:%M')} {self.tz.key}"
        return f"stream {self.stream} {when}"

    def deadlines(self, since: datetime, until: datetime) -> list[datetime]:
        """Every deadline ``d`` of this rule with ``since < d <= until - grace``, UTC, oldest
        first.  Day rules are computed per calendar day in the rule's zone, so 07:00
        Europe/Paris stays 07:00 across daylight-saving changes."""
        until = until - self.grace
        out: list[datetime] = []
        if self.every == "hour":
            start = since.astimezone(UTC).replace(minute=self.by.minute, second=0, microsecond=0)
            moment = start - timedelta(hours=1)
            while moment <= until:
                if moment > since:
                    out.append(moment)
                moment += timedelta(hours=1)
            return out
        day = since.astimezone(self.tz).date() - timedelta(days=1)
        last = until.astimezone(self.tz).date()
        while day <= last:
            if self.days is None or day.weekday() in self.days:
                local = datetime.combine(day, self.by, tzinfo=self.tz)
                moment = local.astimezone(UTC)
                if since < moment <= until:
                    out.append(moment)
            day += timedelta(days=1)
        return out

    def window(self, deadline: datetime) -> tuple[datetime, datetime]:
        """The run times that meet ``deadline``: ``[deadline - within, deadline]``."""
        return deadline - self.window_length, deadline


def _parse_by(value: Any, every: str) -> time:
    if not isinstance(value, str):
        raise ValueError("must be a string ('07:00', or ':15' for hour rules)")
    text = value.strip()
    if every == "hour":
        minutes = text.lstrip(":")
        if minutes.isdigit() and 0 <= int(minutes) < 60:
            return time(0, int(minutes))
        raise ValueError("must be minutes past the hour (':15')")
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return time(int(match.group(1)), int(match.group(2)))
    raise ValueError("must be a time of day HH:MM ('07:00')")


def _parse_days(value: Any) -> frozenset[int]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list like ['mon', 'tue']")
    days = set()
    for item in value:
        name = item.strip().lower()[:3] if isinstance(item, str) else None
        if name not in _DAYS:
            raise ValueError(f"unknown day {show(item)} (use mon, tue, … sun)")
        days.add(_DAYS.index(name))
    return frozenset(days)


class ErrorRateRule(_Model):
    """A client is unhealthy when ≥ ``threshold`` of its ≥ ``min_runs`` finished client runs
    over ``window`` failed."""

    window: Duration = timedelta(days=7)
    threshold: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.5
    min_runs: Count = 3


class ClientRules(_Model):
    """Per-client streaks: the last ``failure_streak`` finished runs of a client all failed;
    its last ``zero_leads_streak`` finished runs all scored no lead."""

    failure_streak: Count | None = None
    zero_leads_streak: Count | None = None


class QuotaRules(_Model):
    """Quota and capacity alarms, as shares of the plan's limits (:mod:`.quota`)."""

    calls_share: Annotated[float, Field(strict=True, gt=0)] | None = None
    records_share: Annotated[float, Field(strict=True, gt=0)] | None = None
    #: This tool's share of the workspace's API calls (the quota is the workspace's): the
    #: calls alarm then judges the workspace's projection (``usage --tool-share``).
    tool_share: Annotated[float, Field(strict=True, gt=0, le=1)] | None = None

    @property
    def enabled(self) -> bool:
        return self.calls_share is not None or self.records_share is not None


class OutboxRules(_Model):
    """The worker outbox's backlog (changes Airtable does not hold yet, on this machine or in
    the fleet's store): more than ``max_entries`` waiting, or the oldest waiting longer than
    ``max_age``."""

    max_entries: Annotated[int, Field(strict=True, ge=0)] | None = None
    max_age: Duration | None = None

    @property
    def enabled(self) -> bool:
        return self.max_entries is not None or self.max_age is not None


class StreamLimits(_Model):
    """The runtime limits that apply to one stream."""

    max_runtime: timedelta | None = None
    min_interval: timedelta | None = None


class CheckConfig(_Model):
    """The whole ``check`` configuration; ``stuck_after=None`` means the library setting
    (``JOBTRACK_STALE_AFTER_MINUTES``)."""

    stuck_after: Duration | None = None
    lookback: Duration = timedelta(hours=24)
    max_runtime: Duration | None = None
    min_interval: Duration | None = None
    failures_to_alert: Count = 1
    successes_to_resolve: Count = 1
    error_rate: ErrorRateRule = Field(default_factory=ErrorRateRule)
    clients: ClientRules = Field(default_factory=ClientRules)
    quota: QuotaRules = Field(default_factory=QuotaRules)
    outbox: OutboxRules = Field(default_factory=OutboxRules)
    schedule: tuple[ScheduleRule, ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> CheckConfig:
        return _validated(cls, raw, "")

    def limits(self, stream: int | None) -> StreamLimits:
        """The stream's own limits (its first schedule rule that sets one), else the
        top-level ones."""
        max_runtime, min_interval = self.max_runtime, self.min_interval
        rules = [r for r in self.schedule if r.stream == stream]
        own_max = next((r.max_runtime for r in rules if r.max_runtime is not None), None)
        own_min = next((r.min_interval for r in rules if r.min_interval is not None), None)
        return StreamLimits(
            max_runtime=own_max or max_runtime, min_interval=own_min or min_interval
        )


def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_M = TypeVar("_M", bound=_Model)


def _validated(model: type[_M], raw: Mapping[str, Any], where: str) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            raise ConfigError(
                f"{_where(where, loc[:-1]) or 'the configuration'}: unknown key {loc[-1]!r}"
            ) from None
        message = str(error["msg"]).removeprefix("Value error, ")
        name = _where(where, loc) or where or "the configuration"
        if error["type"] == "missing":
            raise ConfigError(f"{name} is required") from None
        raise ConfigError(f"{name}: {message}, not {show(error.get('input'))}") from None


def load_check_config(path: str | Path) -> CheckConfig:
    """Read and validate a ``check`` configuration file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the check configuration {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"the check configuration {str(path)!r} is not valid TOML: {exc}"
        ) from None
    try:
        return CheckConfig.parse(raw)
    except ConfigError as exc:
        raise ConfigError(f"{str(path)!r}: {exc}") from None
