"""``doctor``: every thing a command depends on, checked and explained, each with its fix.

Like ``brew doctor``: one command an admin runs when something is off (or before adding a
cron line), which says what is fine, what is not, and what to do about it.  The checks are a
plain list (:data:`CHECKS`) of functions from a :class:`Checkup` to findings, run in order;
a later check may use what an earlier one learnt (the meta API's answer, whether the token
works).  Adding a check is adding a function.

Costs, for a base of J job rows and C client rows: 1 request (``whoami``) + 1 (the meta
API) + ⌈J/100⌉ + ⌈C/100⌉ (the record counts of the quota check); a failed token check skips
the rest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from ...errors import AirtableError, AuthenticationError, JobtrackError, PermissionDeniedError
from ...settings import Settings
from ...transport.client import Connection
from ...transport.meta import fetch_meta
from ...transport.recovery import classified
from ...transport.renames import renames_in
from ..schema_check import compare_schema

__all__ = [
    "CHECKS",
    "REQUIRED_SCOPES",
    "Checkup",
    "Finding",
    "Level",
    "doctor_to_json",
    "run_doctor",
]


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Finding:
    """One result: which check, how bad, what was found and (unless fine) what to do."""

    check: str
    level: Level
    message: str
    fix: str | None = None


#: Token scopes and what needs each (Airtable's names).
REQUIRED_SCOPES: dict[str, str] = {
    "data.records:read": "every command and worker",
    "data.records:write": "workers, sync --apply, apply, archive --apply",
    "schema.bases:read": "sync, schema check, schema pin, doctor",
    "schema.bases:write": "schema init",
}
#: A clock this far off the server's is worth saying (liveness uses the server's clock).
CLOCK_SKEW_WARNING = timedelta(seconds=60)


@dataclass
class Checkup:
    """What the checks look at, and what they learn on the way."""

    conn: Connection
    settings: Settings
    #: Where the credentials came from, in the CLI's words (``the environment``, a file).
    credentials: str
    #: The embedded local base (no credentials, no token, no quota).
    embedded: bool = False
    #: The meta API's answer, once the schema check read it.
    meta: dict[str, Any] | None = None
    #: Set by the token check when the server refused or could not be reached: the checks
    #: that need a request are skipped (their failure would only repeat it).
    unreachable: str | None = None
    #: Set by the schema check when a configured table is missing: reading rows would fail.
    tables_missing: bool = False


Check = Callable[[Checkup], list[Finding]]


def check_credentials(c: Checkup) -> list[Finding]:
    if c.embedded:
        return [
            Finding(
                "credentials",
                Level.OK,
                f"none needed: the embedded local base ({c.credentials})",
            )
        ]
    return [
        Finding(
            "credentials",
            Level.OK,
            f"AIRTABLE_API_KEY and AIRTABLE_BASE_ID {c.conn.base_id} from {c.credentials}",
        )
    ]


def check_token(c: Checkup) -> list[Finding]:
    """``GET /v0/meta/whoami``: the endpoint answers, the token is valid and has the scopes
    the commands need."""
    endpoint = c.conn.endpoint_url
    try:
        with classified():  # retried by the transport, like every request
            who = c.conn.api.whoami()
    except AuthenticationError as exc:
        c.unreachable = "the token was refused"
        return [
            Finding(
                "token",
                Level.PROBLEM,
                f"{endpoint} refused the token (HTTP {exc.status} {exc.error_type or ''})".strip(),
                "check AIRTABLE_API_KEY: a personal access token (pat…) with access to the base "
                f"and the scopes {', '.join(REQUIRED_SCOPES)}",
            )
        ]
    except AirtableError as exc:
        c.unreachable = f"{endpoint} could not be reached"
        return [
            Finding(
                "endpoint",
                Level.PROBLEM,
                f"{endpoint} did not answer whoami: {exc}",
                "check JOBTRACK_ENDPOINT_URL (unset it for Airtable) and the network",
            )
        ]
    scopes = set(who.get("scopes") or [])
    findings = [
        Finding("endpoint", Level.OK, f"{endpoint} answers"),
        Finding(
            "token",
            Level.OK,
            f"user {who.get('id')}, scopes: {', '.join(sorted(scopes)) or '(none listed)'}",
        ),
    ]
    for scope, needed_by in REQUIRED_SCOPES.items():
        if scopes and scope not in scopes:
            findings.append(
                Finding(
                    "token",
                    Level.PROBLEM,
                    f"the token lacks {scope}, needed by {needed_by}",
                    f"add {scope} to the token at https://airtable.com/create/tokens",
                )
            )
    return findings


def check_schema(c: Checkup) -> list[Finding]:
    """The base and its tables against the schema file; renames found by ID (pinned) or
    by fields (not pinned: :func:`~..schema_check.compare_schema`'s hint) come with the safe
    fix, never ``schema init``."""
    try:
        meta = fetch_meta(c.conn, learn_names=False)
    except PermissionDeniedError as exc:
        return [
            Finding(
                "base",
                Level.PROBLEM,
                f"base {c.conn.base_id} cannot be read ({exc})",
                "check AIRTABLE_BASE_ID and that the token has access to that base",
            )
        ]
    c.meta = meta
    schema = c.conn.schema
    findings: list[Finding] = []
    report = compare_schema(schema, meta)
    c.tables_missing = any(p.kind == "missing_table" for p in report.problems)
    for problem in report.problems:
        findings.append(
            Finding("schema", Level.PROBLEM, problem.message, problem.hint or _FIXES[problem.kind])
        )
    for rename in renames_in(schema, meta):
        findings.append(
            Finding(
                "schema",
                Level.WARNING,
                f"{rename} (pinned by ID: commands follow it)",
                "run `jobtrack-airtable schema pin` to record the new name",
            )
        )
    if not findings:
        names = ", ".join(repr(schema.table(t).name) for t in ("jobs", "client_runs"))
        findings.append(
            Finding("schema", Level.OK, f"base {c.conn.base_id}: {names} match the schema")
        )
    return findings


_FIXES = {
    "missing_table": "run `jobtrack-airtable schema init` to create it",
    "missing_field": "run `jobtrack-airtable schema init` to add it",
    "missing_options": "run `jobtrack-airtable schema init` to add them",
    "wrong_type": "change the field's type in Airtable, or the schema file",
}


def check_limiter(c: Checkup) -> list[Finding]:
    """The rate limiter's shared store: Redis answers, or the SQLite file's directory is
    writable."""
    if c.embedded or c.settings.rate_limit == 0:
        return [Finding("limiter", Level.OK, "off (no shared budget to keep)")]
    url = c.settings.limiter_url
    if url and url.startswith(("redis://", "rediss://")):
        return _check_redis(url, c.settings.limiter_fallback)
    from ...limiter.sqlite import default_limiter_path

    path = Path(url.removeprefix("sqlite:///")) if url else default_limiter_path()
    directory = path.parent
    if directory.is_dir() and os.access(directory, os.W_OK):
        return [Finding("limiter", Level.OK, f"SQLite store {path}")]
    return [
        Finding(
            "limiter",
            Level.PROBLEM,
            f"the limiter store {path} cannot be written (directory {directory})",
            "create the directory or point JOBTRACK_LIMITER_URL at a writable sqlite:/// path",
        )
    ]


def _check_redis(url: str, fallback: str) -> list[Finding]:
    from ...limiter.redis import redact_url

    shown = redact_url(url)
    try:
        import redis
    except ImportError:
        return [
            Finding(
                "limiter",
                Level.PROBLEM,
                f"JOBTRACK_LIMITER_URL is {shown} but the redis package is not installed",
                "pip install 'jobtrack-airtable[redis]'",
            )
        ]
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        then = (
            "meanwhile each host limits itself alone (JOBTRACK_LIMITER_FALLBACK=local), so "
            "the fleet can exceed the base's rate"
            if fallback == "local"
            else "meanwhile every request fails (JOBTRACK_LIMITER_FALLBACK=fail)"
        )
        return [
            Finding(
                "limiter",
                Level.PROBLEM,
                f"Redis at {shown} does not answer ({type(exc).__name__})",
                f"start Redis or fix JOBTRACK_LIMITER_URL; {then}",
            )
        ]
    finally:
        client.close()
    return [Finding("limiter", Level.OK, f"Redis at {shown} answers")]


def check_quota(c: Checkup) -> list[Finding]:
    """API calls this month and records, projected to the month's end (``usage``)."""
    from ...transport.repository import Repository
    from .quota import usage_report

    if c.tables_missing:
        return [Finding("quota", Level.WARNING, "not checked: a table of the schema is missing")]
    report = usage_report(
        Repository(c.conn),
        c.settings,
        uncounted="the embedded local base is not counted" if c.embedded else None,
    )
    r, rec = report.requests, report.records
    calls = (
        f"API calls: {r.counted:,} this month, {r.projected:,} projected"
        if r.counted is not None
        else "API calls: not counted"
    )
    if rec is None:
        return [
            Finding(
                "quota",
                Level.PROBLEM,
                f"{calls}; the base answers that this month's quota is spent",
                "nothing reaches the base until the month resets; see `jobtrack-airtable usage`",
            )
        ]
    text = f"{calls}; records: {rec.total:,} of {rec.limit:,} ({report.plan.name} plan)"
    if report.over_limit:
        return [
            Finding(
                "quota",
                Level.PROBLEM,
                f"{text}: a projection crosses the plan's limit",
                "see `jobtrack-airtable usage`; archive old runs (`archive --older-than 90d`) "
                "or lower the request rate",
            )
        ]
    return [Finding("quota", Level.OK, text)]


def check_clock(c: Checkup) -> list[Finding]:
    """This machine's clock against the server's ``Date`` headers (learnt from the requests
    above)."""
    offset = c.conn.clock.offset
    if offset is None:
        return []
    seconds = offset.total_seconds()
    side = "behind" if seconds > 0 else "ahead of"
    text = f"this machine's clock is {abs(seconds):.0f} s {side} the server's"
    if abs(offset) > CLOCK_SKEW_WARNING:
        return [
            Finding(
                "clock",
                Level.WARNING,
                text,
                "run NTP (timedatectl set-ntp true); run IDs use the local clock",
            )
        ]
    return [Finding("clock", Level.OK, f"within {CLOCK_SKEW_WARNING.seconds} s of the server's")]


def check_outbox(c: Checkup) -> list[Finding]:
    """The workers' outbox on this machine (no request): changes still waiting for Airtable,
    and why.  Entries whose owner is gone or that Airtable refused need an admin."""
    from ...errors import JobtrackError as _Error
    from ...outbox import open_outbox
    from ..outbox import outbox_status

    try:
        store = open_outbox(c.settings)
    except _Error as exc:
        return [Finding("outbox", Level.PROBLEM, str(exc), "fix JOBTRACK_OUTBOX_URL")]
    try:
        items = outbox_status(store, c.conn.base_id)
    finally:
        store.close()
    if not items:
        return [Finding("outbox", Level.OK, "empty: every recorded change reached the base")]
    refused = [i for i in items if i.error]
    orphaned = [i for i in items if not i.owner_alive]
    oldest = max(i.age_seconds for i in items)
    text = f"{len(items)} change(s) wait for the base, the oldest for {oldest:.0f} s"
    if refused:
        return [
            Finding(
                "outbox",
                Level.PROBLEM,
                f"{text}; {len(refused)} refused ({refused[0].run_id}: {refused[0].error})",
                "fix the cause (token, permission, field), then `jobtrack-airtable outbox "
                "replay`; `outbox status` lists them",
            )
        ]
    if orphaned:
        return [
            Finding(
                "outbox",
                Level.WARNING,
                f"{text}; {len(orphaned)} left by processes that are gone",
                "`jobtrack-airtable outbox replay` writes them now (the next worker would too)",
            )
        ]
    return [Finding("outbox", Level.OK, f"{text} (live workers are writing them)")]


def _needs_the_server(check: Check) -> Check:
    def guarded(c: Checkup) -> list[Finding]:
        if c.unreachable is not None:
            return []
        try:
            return check(c)
        except JobtrackError as exc:
            return [Finding(check.__name__.removeprefix("check_"), Level.PROBLEM, str(exc))]

    guarded.__name__ = check.__name__
    return guarded


#: The checks, in order.
CHECKS: list[Check] = [
    check_credentials,
    check_token,
    _needs_the_server(check_schema),
    check_limiter,
    check_outbox,
    _needs_the_server(check_quota),
    check_clock,
]


def run_doctor(checkup: Checkup, checks: list[Check] | None = None) -> list[Finding]:
    """Run every check in order; every finding, fine or not."""
    findings: list[Finding] = []
    for check in checks if checks is not None else CHECKS:
        findings.extend(check(checkup))
    return findings


def doctor_to_json(findings: list[Finding]) -> dict[str, Any]:
    """``doctor --json``: ``healthy`` and every finding."""
    return {
        "healthy": not any(f.level is Level.PROBLEM for f in findings),
        "findings": [
            {"check": f.check, "level": f.level.value, "message": f.message, "fix": f.fix}
            for f in findings
        ],
    }
