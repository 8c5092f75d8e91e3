"""The sync plan as data: what changes, on which row, and why (pydantic v2 models).

A :class:`Plan` is what ``sync`` shows and what ``sync --apply`` executes.  It is a plain,
JSON-serialisable value: :func:`plan_to_json` / :func:`plan_from_json` round-trip it exactly,
and :func:`save_plan` / :func:`load_plan` put it in a file that a later apply executes as it
was reviewed, or refuses (see :mod:`.apply`).

Every field value in a plan is a raw Airtable value (string, number, ``None`` = empty), keyed by
the field's *logical key* (``status``, ``profiles_examined``), so a plan means the same thing
whatever a base calls its fields; ``field_names`` records the Airtable names at planning time,
for renderers only.  A plan never holds the
API token: nothing in it comes from the connection but the base ID.

>>> plan = Plan(base_id="appAAAAAAAAAAAAAA", generated_at="2025-10-01T00:00:00.000Z",
...             stale_after_seconds=7200.0, table_names={"jobs": "Job Tracking",
...             "client_runs": "Client Run Results"})
>>> plan.has_changes, plan.summary.model_dump()
(False, {'create': 0, 'update': 0, 'delete': 0, 'attention': 0})
>>> plan_from_json(plan_to_json(plan)) == plan
True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from ...errors import InvalidInputError, PlanFormatError, listing, show
from ...files import load_json_file, write_atomically
from ...timeutil import parse_airtable, utcnow

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "Action",
    "FieldChange",
    "Guards",
    "Plan",
    "PlanFormatError",
    "PlanSummary",
    "RecordChange",
    "TableKey",
    "check_plan",
    "fingerprint",
    "fingerprint_digest",
    "load_plan",
    "plan_checksum",
    "plan_from_json",
    "plan_to_json",
    "save_plan",
]

#: The version written by this library.  Bump it whenever a plan file's meaning changes.
#: 2: ``absent_fields``; changes name fields by logical key (``field``), not display name.
FORMAT_VERSION: Final = 2
#: Versions :func:`load_plan` accepts.
SUPPORTED_FORMAT_VERSIONS: frozenset[int] = frozenset({2})

TableKey = Literal["jobs", "client_runs"]
#: The longest staleness threshold a plan may carry: beyond a year every dead run looks alive.
MAX_STALE_AFTER_SECONDS: Final = 366 * 86400.0
#: How far in the future a plan's ``generated_at`` may be (clocks differ a little, not by days).
MAX_CLOCK_AHEAD: Final = timedelta(days=1)
_RECORD_ID = re.compile(r"^rec[A-Za-z0-9]{14}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: Keys of a plan document written for readers only (computed or informative), not part of it.
_INFORMATIVE_KEYS = ("summary", "checksum", "base_kind")

#: Display and apply order of the tables.
TABLE_ORDER: tuple[TableKey, ...] = ("jobs", "client_runs")


class Action(StrEnum):
    """What a :class:`RecordChange` does to its row."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ATTENTION = "attention"

    @property
    def symbol(self) -> str:
        """Terraform-style marker: ``+`` create, ``~`` update, ``-`` delete, ``!`` attention.

        >>> Action.UPDATE.symbol
        '~'
        """
        return _SYMBOLS[self]


_SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.ATTENTION: "!"}


class FieldChange(BaseModel):
    """One field of one row: its value as read (``old``) and as it will be (``new``).

    ``None`` means empty (Airtable omits empty cells; writing ``None`` clears one).  For a
    created row ``old`` is ``None``; for a deleted row ``new`` is ``None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The field's logical key (``status``); ``Plan.field_name`` gives its Airtable name.
    field: str
    old: Any = None
    new: Any = None


class RecordChange(BaseModel):
    """Everything the plan does to (or says about) one row.

    * ``action``: create / update / delete, or attention only (nothing written);
    * ``record_id``: the row (``None`` for a create);
    * ``key``: the row's natural key (``Run ID``) after the change; for an unconvertible ID,
      the ID as read;
    * ``changes``: the fields written, old → new (all fields for a create; the discarded
      values for a delete);
    * ``reasons``: why each change is made, one line each;
    * ``attention``: problems a human must look at; never fixed automatically;
    * ``merged_into``: for a delete that resolves duplicates, the row that survives.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: TableKey
    action: Action
    record_id: str | None = None
    key: Any = None
    changes: list[FieldChange] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    attention: list[str] = Field(default_factory=list)
    merged_into: str | None = None

    @property
    def symbol(self) -> str:
        return self.action.symbol

    def values(self) -> dict[str, Any]:
        """The fields to write, ``{logical key: new value}`` (``None`` clears a field)."""
        return {c.field: c.new for c in self.changes}


class PlanSummary(BaseModel):
    """Counts of rows per action.  ``attention`` counts every row with an attention item,
    including rows that are also updated."""

    model_config = ConfigDict(frozen=True)

    create: int = 0
    update: int = 0
    delete: int = 0
    attention: int = 0


class Guards(BaseModel):
    """What ``apply`` re-checks before writing (see :mod:`.apply`).

    * ``fingerprints``: ``{table: {record_id: sha256}}`` of every row the plan writes, deletes,
      merges, or derives a written aggregate from, as read when planning;
    * ``keys``: ``{table: {run_id: n}}`` run IDs the plan creates or renames rows to, with the
      number of rows that held each when planning: a new row with one of them refuses the plan;
    * ``prefixes``: ``{table: {"YYMMDD-HHMMSS-": n}}`` client-run prefixes of the jobs whose
      aggregates the plan writes, with the rows seen under each: a new client row of such a
      job makes the planned aggregate wrong, so it refuses the plan too;
    * ``row_counts``: rows per table when planning (chooses the cheaper re-read).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprints: dict[TableKey, dict[str, str]] = Field(default_factory=dict)
    keys: dict[TableKey, dict[str, int]] = Field(default_factory=dict)
    prefixes: dict[TableKey, dict[str, int]] = Field(default_factory=dict)
    row_counts: dict[TableKey, int] = Field(default_factory=dict)


class Plan(BaseModel):
    """A whole sync plan over one base, computed at ``generated_at``.

    ``records`` are ordered by table (jobs, then client runs), then natural key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[2] = FORMAT_VERSION
    base_id: str
    generated_at: str
    stale_after_seconds: float
    table_names: dict[TableKey, str]
    records: list[RecordChange] = Field(default_factory=list)
    guards: Guards = Field(default_factory=Guards)
    #: Logical keys of configured optional (or computed) fields the base lacks, per table:
    #: left out of the plan, neither read nor written.
    absent_fields: dict[TableKey, list[str]] = Field(default_factory=dict)
    #: ``{table: {logical key: Airtable name}}`` when planning: what renderers show.
    field_names: dict[TableKey, dict[str, str]] = Field(default_factory=dict)

    def field_name(self, table: TableKey, key: str) -> str:
        """The Airtable name of field ``key`` of ``table`` (the key itself if unknown)."""
        return self.field_names.get(table, {}).get(key, key)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> PlanSummary:
        """Rows to create, update, delete, and rows needing attention."""
        counts = dict.fromkeys(("create", "update", "delete"), 0)
        attention = 0
        for r in self.records:
            if r.action is not Action.ATTENTION:
                counts[r.action.value] += 1
            if r.attention:
                attention += 1
        return PlanSummary(**counts, attention=attention)

    @property
    def has_changes(self) -> bool:
        """Whether applying the plan writes anything."""
        return any(r.action is not Action.ATTENTION for r in self.records)

    @property
    def needs_attention(self) -> bool:
        """Whether any row has a problem left for a human."""
        return any(r.attention for r in self.records)

    def of_table(self, table: TableKey) -> list[RecordChange]:
        """The plan's entries for one table."""
        return [r for r in self.records if r.table == table]

    def changes(self, table: TableKey, action: Action) -> list[RecordChange]:
        """The entries of one table with one action (apply's batches)."""
        return [r for r in self.records if r.table == table and r.action is action]


# --- fingerprints --------------------------------------------------------------------------


def fingerprint_digest(record: Mapping[str, Any]) -> bytes:
    """The raw SHA-256 behind :func:`fingerprint` (planning keeps 32 bytes per row)."""
    payload = {"id": record.get("id"), "fields": record.get("fields") or {}}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


def fingerprint(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a record's ID and fields as read.

    Canonical: keys sorted, no whitespace, UTF-8 (not ``\\u`` escapes), so the same row read
    twice hashes the same whatever order Airtable sends its fields in.

    >>> a = {"id": "recA", "createdTime": "x", "fields": {"B": 1, "A": "é"}}
    >>> b = {"id": "recA", "fields": {"A": "é", "B": 1}}
    >>> fingerprint(a) == fingerprint(b), len(fingerprint(a))
    (True, 64)
    """
    return fingerprint_digest(record).hex()


# --- JSON and files ------------------------------------------------------------------------


def plan_to_json(plan: Plan, *, indent: int | None = 2) -> str:
    """The plan as JSON (``format_version`` first; values raw, as they are written).

    >>> '"format_version": 2' in plan_to_json(Plan(base_id="appAAAAAAAAAAAAAA",
    ...     generated_at="2025-10-01T00:00:00.000Z", stale_after_seconds=60, table_names={}))
    True
    """
    data = plan.model_dump(mode="json")
    _check_finite(data)
    data["checksum"] = plan_checksum(plan)
    return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False)


def plan_checksum(plan: Plan) -> str:
    """``sha256:<hex>`` of the plan's body as canonical JSON (keys sorted, no whitespace).

    Saved with the plan and checked when it is loaded: an edited plan (fingerprints removed,
    deletes added) is refused before anything is read from the base.  Not a signature --
    whoever can write the file can recompute it -- but :func:`check_plan` still holds every
    write to a fingerprint of a row the planner read.
    """
    body = plan.model_dump(mode="json", exclude={"summary"})
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_plan(plan: Plan, *, now: datetime | None = None) -> None:
    """Refuse, with :class:`PlanFormatError` naming every problem, a plan that cannot have
    come from :func:`~.apply.plan_sync` unedited: an update or delete without the
    fingerprint of the row it read (or with a record ID that is not one), a staleness
    threshold that is not a positive number of seconds up to a year, a ``generated_at`` that
    is not a real time up to a day from now.  Called on the whole plan before the first
    request of an apply.
    """
    problems: list[str] = []
    seconds = plan.stale_after_seconds
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_STALE_AFTER_SECONDS:
        problems.append(
            f"stale_after_seconds {show(seconds)} is not between 0 and "
            f"{MAX_STALE_AFTER_SECONDS:.0f} (a year)"
        )
    try:
        made = parse_airtable(plan.generated_at)
    except (InvalidInputError, ValueError, OverflowError):
        problems.append(f"generated_at {show(plan.generated_at)} is not a timestamp")
    else:
        latest = (now or utcnow()) + MAX_CLOCK_AHEAD
        if made.year < 2000 or made > latest:
            problems.append(f"generated_at {show(plan.generated_at)} is not a plausible time")
    for record in plan.records:
        if record.action not in (Action.UPDATE, Action.DELETE):
            continue
        rid = record.record_id
        where = f"{record.action.value} of {record.table} {show(rid)} (Run ID {show(record.key)})"
        if rid is None or not _RECORD_ID.match(rid):
            problems.append(f"{where}: not an Airtable record ID")
        elif rid not in plan.guards.fingerprints.get(record.table, {}):
            problems.append(f"{where}: no fingerprint of the row as read")
        if record.merged_into is not None and not _RECORD_ID.match(record.merged_into):
            problems.append(f"{where}: merged_into {show(record.merged_into)} is not a record ID")
    for table, digests in plan.guards.fingerprints.items():
        bad = [rid for rid, digest in digests.items() if not _DIGEST.match(digest)]
        if bad:
            problems.append(f"fingerprint(s) of {table} {listing(bad, 5)} are not SHA-256 digests")
    if problems:
        raise PlanFormatError(
            f"the plan cannot be applied ({len(problems)} problem(s)): {listing(problems, 5)}; "
            "make a new one with `jobtrack-airtable sync --out FILE`"
        )


def _check_finite(value: Any) -> None:
    # NaN/inf are not JSON; Airtable never returns them, so one here is a bug worth stopping.
    if isinstance(value, float) and not math.isfinite(value):
        raise PlanFormatError(f"plan holds a non-finite number {show(value)}")
    if isinstance(value, dict):
        for v in value.values():
            _check_finite(v)
    elif isinstance(value, list):
        for v in value:
            _check_finite(v)


def plan_from_json(text: str | bytes, *, require_checksum: bool = False) -> Plan:
    """Parse a plan written by :func:`plan_to_json`.

    Refuses, with :class:`PlanFormatError`, anything that is not JSON, a ``format_version``
    this library does not know (before looking at anything else, so a newer file gets a clear
    message rather than a list of validation errors), malformed plans, and a plan whose
    ``checksum`` does not match its body (or has none, with ``require_checksum``).

    >>> plan_from_json('{"format_version": 99}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.PlanFormatError: plan format_version 99 is not supported ...
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PlanFormatError(f"plan is not valid JSON: {exc}") from None
    return plan_from_data(data, require_checksum=require_checksum)


def plan_from_data(data: Any, *, require_checksum: bool = False) -> Plan:
    """:func:`plan_from_json` for an already parsed document."""
    if not isinstance(data, dict):
        raise PlanFormatError(f"plan must be a JSON object, not {type(data).__name__}")
    if "format_version" not in data:
        raise PlanFormatError("plan has no format_version: not a jobtrack-airtable sync plan")
    version = data["format_version"]
    if isinstance(version, bool) or version not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_FORMAT_VERSIONS))
        raise PlanFormatError(
            f"plan format_version {show(version)} is not supported by this version of "
            f"jobtrack-airtable (supported: {supported}); re-run sync to make a new plan"
        )
    data = dict(data)
    declared = data.get("checksum")
    for key in _INFORMATIVE_KEYS:
        data.pop(key, None)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanFormatError(f"plan is malformed: {exc}") from None
    if declared is None and require_checksum:
        raise PlanFormatError(
            "plan has no checksum: it was not saved by `sync --out` (or was edited)"
        )
    if declared is not None and declared != plan_checksum(plan):
        raise PlanFormatError(
            "plan checksum does not match its contents: the file was edited after `sync "
            "--out` saved it; make a new plan rather than editing one"
        )
    return plan


def save_plan(plan: Plan, path: str | Path) -> Path:
    """Write ``plan`` (with the fingerprints of every row it touches) to ``path`` as JSON.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "plan.json"
    >>> plan = Plan(base_id="appAAAAAAAAAAAAAA", generated_at="2025-10-01T00:00:00.000Z",
    ...             stale_after_seconds=60, table_names={})
    >>> load_plan(save_plan(plan, p)) == plan
    True
    """
    # Atomically: an apply reading a plan being rewritten must see one whole plan.
    return write_atomically(path, plan_to_json(plan) + "\n")


def load_plan(path: str | Path) -> Plan:
    """Read a plan saved by :func:`save_plan`; :class:`PlanFormatError` for unknown versions
    or malformed files, naming the file."""
    source = Path(path)
    try:
        data = load_json_file(source, what="plan file")
    except InvalidInputError as exc:
        raise PlanFormatError(str(exc)) from None
    try:
        return plan_from_data(data, require_checksum=True)
    except PlanFormatError as exc:
        raise PlanFormatError(f"{str(source)!r}: {exc}") from None
