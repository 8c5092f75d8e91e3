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

A rule is *met* for a deadline when a job of that stream has a run time (Start Time, else
created time) in ``[deadline - within, deadline]``; a job that started and then failed still
meets it (the failure is reported as a failed run).  Bad values raise
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import ConfigError, show

__all__ = ["CheckConfig", "ErrorRateRule", "ScheduleRule", "load_check_config", "parse_duration"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PERIODS: dict[str, timedelta] = {"day": timedelta(days=1), "hour": timedelta(hours=1)}


def parse_duration(value: Any, *, what: str = "duration") -> timedelta:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"7d"``, ``"2w"`` as a positive timedelta.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_duration("soon", what="lookback")
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.ConfigError: invalid lookback 'soon': give a duration like 30m, 2h, 7d
    """
    match = _DURATION_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"invalid {what} {show(value)}: give a duration like 30m, 2h, 7d")
    delta = timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    if delta <= timedelta(0):
        raise ConfigError(f"invalid {what} {show(value)}: must be more than zero")
    return delta


def _zero_ok_duration(value: Any, *, what: str) -> timedelta:
    if isinstance(value, str) and _DURATION_RE.match(value) and float(value.strip()[:-1]) == 0:
        return timedelta(0)
    return parse_duration(value, what=what)


@dataclass(frozen=True)
class ScheduleRule:
    """One expected run: ``stream`` runs every ``every`` by ``by`` (in ``tz``)."""

    stream: int
    every: Literal["day", "hour"]
    by: time
    within: timedelta
    days: frozenset[int] | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    grace: timedelta = timedelta(0)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, where: str = "schedule") -> ScheduleRule:
        """A rule from its TOML table; every problem is a :class:`ConfigError`."""
        known = {"stream", "every", "by", "within", "days", "timezone", "grace"}
        if unknown := sorted(set(raw) - known):
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
        stream = raw.get("stream")
        if not isinstance(stream, int) or isinstance(stream, bool) or stream < 1:
            raise ConfigError(f"{where}.stream must be an integer ≥ 1, not {show(stream)}")
        every = raw.get("every", "day")
        if every not in _PERIODS:
            raise ConfigError(f"{where}.every must be 'day' or 'hour', not {show(every)}")
        by = _parse_by(raw.get("by"), every, where=f"{where}.by")
        period = _PERIODS[every]
        within = (
            parse_duration(raw["within"], what=f"{where}.within") if "within" in raw else period
        )
        days = None
        if "days" in raw:
            if every != "day":
                raise ConfigError(f"{where}.days applies to day rules only")
            days = _parse_days(raw["days"], where=f"{where}.days")
        zone = raw.get("timezone", "UTC")
        try:
            tz = ZoneInfo(zone) if isinstance(zone, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            tz = None
        if tz is None:
            raise ConfigError(f"{where}.timezone: unknown time zone {show(zone)}")
        grace = _zero_ok_duration(raw.get("grace", "0m"), what=f"{where}.grace")
        return cls(
            stream=stream,
            every=every,
            by=by,
            within=within,
            days=days,
            tz=tz,
            grace=grace,
        )

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
        return deadline - self.within, deadline


def _parse_by(value: Any, every: str, *, where: str) -> time:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string ('07:00', or ':15' for hour rules)")
    text = value.strip()
    if every == "hour":
        minutes = text.lstrip(":")
        if minutes.isdigit() and 0 <= int(minutes) < 60:
            return time(0, int(minutes))
        raise ConfigError(f"{where} must be minutes past the hour (':15'), not {show(value)}")
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return time(int(match.group(1)), int(match.group(2)))
    raise ConfigError(f"{where} must be a time of day HH:MM ('07:00'), not {show(value)}")


def _parse_days(value: Any, *, where: str) -> frozenset[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where} must be a non-empty list like ['mon', 'tue'], not {show(value)}"
        )
    days = set()
    for item in value:
        name = item.strip().lower()[:3] if isinstance(item, str) else None
        if name not in _DAYS:
            raise ConfigError(f"{where}: unknown day {show(item)} (use mon, tue, … sun)")
        days.add(_DAYS.index(name))
    return frozenset(days)


@dataclass(frozen=True)
class ErrorRateRule:
    """A client is unhealthy when ≥ ``threshold`` of its ≥ ``min_runs`` finished client runs
    over ``window`` failed."""

    window: timedelta = timedelta(days=7)
    threshold: float = 0.5
    min_runs: int = 3

    @classmethod
    def parse(cls, raw: Any) -> ErrorRateRule:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"error_rate must be a table, not {show(raw)}")
        if unknown := sorted(set(raw) - {"window", "threshold", "min_runs"}):
            raise ConfigError(f"error_rate: unknown key(s) {', '.join(map(repr, unknown))}")
        window = parse_duration(raw.get("window", "7d"), what="error_rate.window")
        threshold = raw.get("threshold", 0.5)
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not 0 < threshold <= 1
        ):
            raise ConfigError(
                f"error_rate.threshold must be a share in (0, 1], not {show(threshold)}"
            )
        min_runs = raw.get("min_runs", 3)
        if not isinstance(min_runs, int) or isinstance(min_runs, bool) or min_runs < 1:
            raise ConfigError(f"error_rate.min_runs must be an integer ≥ 1, not {show(min_runs)}")
        return cls(window=window, threshold=float(threshold), min_runs=min_runs)


@dataclass(frozen=True)
class CheckConfig:
    """The whole ``check`` configuration; ``stuck_after=None`` means the library setting
    (``JOBTRACK_STALE_AFTER_MINUTES``)."""

    stuck_after: timedelta | None = None
    lookback: timedelta = timedelta(hours=24)
    error_rate: ErrorRateRule = field(default_factory=ErrorRateRule)
    schedule: tuple[ScheduleRule, ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> CheckConfig:
        known = {"stuck_after", "lookback", "error_rate", "schedule"}
        if unknown := sorted(set(raw) - known):
            raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))}")
        stuck = (
            parse_duration(raw["stuck_after"], what="stuck_after") if "stuck_after" in raw else None
        )
        lookback = parse_duration(raw.get("lookback", "24h"), what="lookback")
        error_rate = ErrorRateRule.parse(raw.get("error_rate", {}))
        rules = raw.get("schedule", [])
        if not isinstance(rules, list):
            raise ConfigError("schedule must be an array of tables ([[schedule]])")
        schedule = tuple(
            ScheduleRule.parse(r, where=f"schedule[{i}]")
            if isinstance(r, Mapping)
            else _not_a_table(i, r)
            for i, r in enumerate(rules)
        )
        return cls(stuck_after=stuck, lookback=lookback, error_rate=error_rate, schedule=schedule)


def _not_a_table(index: int, value: Any) -> ScheduleRule:
    raise ConfigError(f"schedule[{index}] must be a table, not {show(value)}")


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
