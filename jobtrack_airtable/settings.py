"""Configuration from the environment (and an optional ``.env`` file).

================================  ==============================================  ============
variable                          meaning                                         default
================================  ==============================================  ============
``AIRTABLE_API_KEY``              personal access token (a secret: never shown)   none
``AIRTABLE_BASE_ID``              the tracking base (``app`` + 14 characters)     none
``JOBTRACK_ENDPOINT_URL``         another Airtable-compatible server              Airtable
``JOBTRACK_RUN_ID_TIMEZONE``      time zone run IDs are generated in              ``UTC``
``JOBTRACK_SCHEMA_FILE``          a schema TOML replacing ``config/schema.toml``  the default
``JOBTRACK_TIMEOUT``              seconds for connect and read of one request     ``30``
``JOBTRACK_RATE_LIMIT``           requests/second per base (0 = limiter off)      ``5``
``JOBTRACK_LIMITER_URL``          shared limiter store: ``sqlite:///path`` or     a per-user
                                  ``redis://host:port/db``                        SQLite file
``JOBTRACK_LIMITER_FALLBACK``     when Redis is down: ``local`` or ``fail``       ``local``
``JOBTRACK_STALE_AFTER_MINUTES``  a ``Running`` row older than this is stale      ``120``
``JOBTRACK_FLUSH_INTERVAL``       seconds between metric flushes of a client run  ``5``
``JOBTRACK_OUTBOX_URL``          the outbox: ``sqlite:///path`` or               a per-user
                                  ``redis://host:port/db``                        SQLite file
``JOBTRACK_OUTBOX_SYNC``          ``normal`` (survives a process crash) or        ``normal``
                                  ``full`` (fsync: survives a power loss too)
``JOBTRACK_REQUEST_BUDGET``       requests/month this machine's workers may       ``10000``
                                  spend (0 = write every flush interval)
``JOBTRACK_VISIBLE_WITHIN``       seconds within which opens and closes show      ``60``
``JOBTRACK_OUTBOX_SETTLE``        seconds a timed-out write may still land        ``60``
                                  (at least twice ``JOBTRACK_TIMEOUT``)
``JOBTRACK_ASSUME_UTC``           treat naive datetimes as UTC instead of         ``false``
                                  refusing them
``JOBTRACK_AIRTABLE_PLAN``        the workspace's plan (``free``, ``team``,         ``team``
                                  ``business``, ``enterprise``): quotas of
                                  ``usage``
``JOBTRACK_ON_TRACKING_ERROR``    ``raise`` tracking failures at synchronous        ``raise``
                                  points, or ``warn`` and go on (changes stay
                                  pending)
================================  ==============================================  ============

>>> s = Settings(AIRTABLE_API_KEY="patSECRET.123", AIRTABLE_BASE_ID="appAAAAAAAAAAAAAA")
>>> "patSECRET" in repr(s)
False
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .airtable import RATE_LIMIT

BASE_ID_RE = re.compile(r"^app[A-Za-z0-9]{14}$")
#: Bounds of the numeric settings: outside them a value is a typo, not a choice (a rate of
#: 1e-9 requests/second waits 30 years for its first request; a year-long stale threshold
#: hides every dead run).
MIN_RATE_LIMIT = 0.01
MAX_RATE_LIMIT = 1000.0
MAX_STALE_AFTER_MINUTES = 366 * 24 * 60.0


class Settings(BaseSettings):
    """Every knob of the library, read from the environment and ``.env``."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("AIRTABLE_API_KEY", "api_key")
    )
    base_id: str | None = Field(None, validation_alias=AliasChoices("AIRTABLE_BASE_ID", "base_id"))
    endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("JOBTRACK_ENDPOINT_URL", "endpoint_url")
    )
    run_id_timezone: str = Field(
        "UTC", validation_alias=AliasChoices("JOBTRACK_RUN_ID_TIMEZONE", "run_id_timezone")
    )
    schema_file: Path | None = Field(
        None, validation_alias=AliasChoices("JOBTRACK_SCHEMA_FILE", "schema_file")
    )
    timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=AliasChoices("JOBTRACK_TIMEOUT", "timeout"),
    )
    rate_limit: float = Field(
        RATE_LIMIT,
        ge=0,
        le=MAX_RATE_LIMIT,
        allow_inf_nan=False,
        validation_alias=AliasChoices("JOBTRACK_RATE_LIMIT", "rate_limit"),
    )
    # repr=False: a redis:// URL may carry a password, and settings end up in logs.
    limiter_url: str | None = Field(
        None, repr=False, validation_alias=AliasChoices("JOBTRACK_LIMITER_URL", "limiter_url")
    )
    limiter_fallback: Literal["local", "fail"] = Field(
        "local", validation_alias=AliasChoices("JOBTRACK_LIMITER_FALLBACK", "limiter_fallback")
    )
    stale_after_minutes: float = Field(
        120.0,
        gt=0,
        le=MAX_STALE_AFTER_MINUTES,
        allow_inf_nan=False,
        validation_alias=AliasChoices("JOBTRACK_STALE_AFTER_MINUTES", "stale_after_minutes"),
    )
    flush_interval: float = Field(
        5.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        validation_alias=AliasChoices("JOBTRACK_FLUSH_INTERVAL", "flush_interval"),
    )
    # repr=False: a redis:// URL may carry a password.
    outbox_url: str | None = Field(
        None, repr=False, validation_alias=AliasChoices("JOBTRACK_OUTBOX_URL", "outbox_url")
    )
    outbox_sync: Literal["normal", "full"] = Field(
        "normal", validation_alias=AliasChoices("JOBTRACK_OUTBOX_SYNC", "outbox_sync")
    )
    request_budget: int = Field(
        10_000,
        ge=0,
        validation_alias=AliasChoices("JOBTRACK_REQUEST_BUDGET", "request_budget"),
    )
    visible_within: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("JOBTRACK_VISIBLE_WITHIN", "visible_within"),
    )
    outbox_settle: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("JOBTRACK_OUTBOX_SETTLE", "outbox_settle"),
    )
    assume_utc: bool = Field(
        False, validation_alias=AliasChoices("JOBTRACK_ASSUME_UTC", "assume_utc")
    )
    airtable_plan: Literal["free", "team", "business", "enterprise"] = Field(
        "team", validation_alias=AliasChoices("JOBTRACK_AIRTABLE_PLAN", "airtable_plan")
    )
    on_tracking_error: Literal["raise", "warn"] = Field(
        "raise",
        validation_alias=AliasChoices("JOBTRACK_ON_TRACKING_ERROR", "on_tracking_error"),
    )

    @field_validator("base_id")
    @classmethod
    def _base_id_shape(cls, value: str | None) -> str | None:
        if value is not None and not BASE_ID_RE.match(value):
            raise ValueError(f"{value!r} is not an Airtable base ID (app + 14 letters/digits)")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_sane(cls, value: float) -> float:
        if 0 < value < MIN_RATE_LIMIT:
            raise ValueError(
                f"{value!r} requests/second is too slow to be meant: use 0 (limiter off) or "
                f"at least {MIN_RATE_LIMIT}"
            )
        return value

    @field_validator("run_id_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"endpoint URL {value!r} must start with http:// or https://")
        if value is not None:
            try:
                # requests would fail on it at the first request, naming no variable.
                urlsplit(value).port  # noqa: B018
            except ValueError as exc:
                raise ValueError(f"endpoint URL {value!r} is malformed ({exc})") from None
        return value.rstrip("/") if value else value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.run_id_timezone)

    @property
    def stale_after(self) -> timedelta:
        return timedelta(minutes=self.stale_after_minutes)

    @property
    def settle_seconds(self) -> float:
        """How long after a timed-out write the outbox keeps what it needs to repair it: a
        request the client gave up on can still be applied by the server later."""
        return max(self.outbox_settle, 2 * self.timeout)

    @property
    def has_credentials(self) -> bool:
        """Whether both ``AIRTABLE_API_KEY`` and ``AIRTABLE_BASE_ID`` are set."""
        return self.api_key is not None and self.base_id is not None
