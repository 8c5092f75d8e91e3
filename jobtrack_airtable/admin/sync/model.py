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
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field

from ...errors import PlanFormatError, show
from ...files import write_atomically

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
    "fingerprint",
    "fingerprint_digest",
    "load_plan",
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
    return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False)


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


def plan_from_json(text: str | bytes) -> Plan:
    """Parse a plan written by :func:`plan_to_json`.

    Refuses, with :class:`PlanFormatError`, anything that is not JSON, a ``format_version``
    this library does not know (before looking at anything else, so a newer file gets a clear
    message rather than a list of validation errors), and malformed plans.

    >>> plan_from_json('{"format_version": 99}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.PlanFormatError: plan format_version 99 is not supported ...
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlanFormatError(f"plan is not valid JSON: {exc}") from None
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
    data.pop("summary", None)  # computed, written for readers of the JSON only
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanFormatError(f"plan is malformed: {exc}") from None


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
        text = source.read_bytes()
    except OSError as exc:
        raise PlanFormatError(f"cannot read plan file {str(source)!r}: {exc}") from None
    try:
        return plan_from_json(text)
    except PlanFormatError as exc:
        raise PlanFormatError(f"{str(source)!r}: {exc}") from None
