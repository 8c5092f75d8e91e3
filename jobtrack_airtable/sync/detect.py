"""Detection: from the two tables as read to a :class:`~.model.Plan`.  Pure: no I/O.

:func:`build_plan` computes the plan *as a whole*, in passes over the rows as they will be
after the earlier fixes, so that one apply converges and planning again plans nothing:

1. **Run IDs.**  Known client IDs are collected first (every valid ``Client ID`` value and
   every client suffix of a standard client run ID in the data), then every row's Run ID is
   recognised (SPEC §1.2) with its Start Time (else created time) for structured SR IDs.
   The converted ID is the row's natural key.  Unconvertible IDs are flagged ``!`` and the row
   keeps its ID (it then belongs to no job).  A client row whose ID has no client part
   (Apify-tagged, bare base) takes the client from its valid ``Client ID``.
2. **Duplicates.**  Rows sharing a natural key (after conversion) merge into the oldest row
   (oldest ``createdTime``, then record ID); the others are deleted.  See :func:`_merge`.
3. **Per-row fixes** on the merged rows: Run ID rewritten; ``Client ID`` set to the Run ID's
   suffix (the Run ID is the identity); Apify run ID moved to ``Apify Run ID`` when that is
   empty; legacy statuses mapped, unmappable ones flagged, not guessed.
4. **Liveness.**  A ``Running`` client row older than the threshold is stale → ``Failed``.  A
   ``Running`` job is stale → ``Failed`` only when it is old *and* none of its client rows is
   still running and fresh (workers update client rows, not necessarily the job row).
5. **Orphans.**  Client rows whose base has no job row get one created: ``Running`` if any of
   them is running and not stale, else the completion rule (SPEC §1.4); start = earliest client
   start, end = latest client end (finished jobs only), aggregates, a note.
6. **Client runs still Running under a finished job** → ``Failed`` with a note.
7. **Aggregates** of every finished job are recomputed from its client rows as they will be
   (converted IDs, merged duplicates, fixed statuses) and written where missing or different.
   A job still ``Running`` is left to its worker, which writes them on completion.  Start/End
   Time are filled only where empty: they record when the job ran and are never rewritten.
8. **Flags** (``!``): invalid stored values (negative counts, fractions, text in number
   columns, bad dates), scored > examined, unmappable statuses, unconvertible IDs.

Notes sync writes are appended to ``System Notes`` as ``[<now>] sync: <why>`` lines.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..errors import InvalidClientIdError, InvalidInputError, show
from ..metrics import AGGREGATE_KEYS, ClientRunRow, JobRow, aggregate, completion_status
from ..run_ids import LegacyFormat, Recognised, recognise, validate_client_id
from ..schema import Schema, TableSpec
from ..statuses import Status, map_status, staleness
from ..timeutil import parse_airtable, to_airtable
from .model import (
    TABLE_ORDER,
    Action,
    FieldChange,
    Guards,
    Plan,
    RecordChange,
    TableKey,
    fingerprint,
)

__all__ = ["build_plan"]

_BASE_LEN = 13  # len("YYMMDD-HHMMSS")
_PREFIX_LEN = _BASE_LEN + 1  # the base and the hyphen before the client ID
_CURRENT = frozenset({LegacyFormat.STANDARD, LegacyFormat.CLIENT})
_ACTION_ORDER = {Action.UPDATE: 0, Action.CREATE: 0, Action.ATTENTION: 1, Action.DELETE: 2}


def _is_empty(value: Any) -> bool:
    """Airtable's empty: ``None``, ``""``, ``[]``, ``{}``, ``false`` (never ``0``)."""
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_airtable(value)
    except InvalidInputError:
        return None


def _valid_client(value: Any) -> bool:
    try:
        validate_client_id(value)
    except InvalidClientIdError:
        return False
    return True


@dataclass(slots=True)
class _Row:
    """One record as read, with what recognising its Run ID found."""

    table: TableKey
    record: Mapping[str, Any]
    id: str
    created: str
    fields: dict[str, Any]
    raw_key: Any
    found: Recognised | None = None
    key: str | None = None
    reasons: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.id)


@dataclass(slots=True)
class _Entity:
    """The row that will hold one natural key after the plan: the oldest of its duplicates
    (``members[0]``), with ``new`` its fields as they will be."""

    table: TableKey
    key: str | None
    members: list[_Row]
    new: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: Status | None = None
    stale: str | None = None
    parsed: Any = None  # ClientRunRow | JobRow of ``new``

    @property
    def survivor(self) -> _Row:
        return self.members[0]

    def set(self, name: str, value: Any) -> None:
        if value is None:
            self.new.pop(name, None)
        else:
            self.new[name] = value

    def final_row(self) -> ClientRunRow:
        """The client row as it will be, with its final status (for aggregation)."""
        row: ClientRunRow = self.parsed
        return row if row.status is self.status else row.model_copy(update={"status": self.status})


class _Planner:
    def __init__(
        self,
        schema: Schema,
        now: datetime,
        stale_after: timedelta,
        base_id: str,
    ) -> None:
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise InvalidInputError(f"now must be a timezone-aware datetime, not {show(now)}")
        if not isinstance(stale_after, timedelta) or stale_after <= timedelta(0):
            raise InvalidInputError(
                f"stale_after must be a positive timedelta, not {show(stale_after)}"
            )
        self.schema = schema
        self.now = now
        self.stamp = to_airtable(now)
        self.stale_after = stale_after
        self.base_id = base_id
        self.specs: dict[TableKey, TableSpec] = {
            "jobs": schema.jobs,
            "client_runs": schema.client_runs,
        }
        self.rows: dict[TableKey, list[_Row]] = {"jobs": [], "client_runs": []}
        self.entities: dict[TableKey, list[_Entity]] = {"jobs": [], "client_runs": []}
        self.records: list[RecordChange] = []
        self.fingerprints: dict[TableKey, dict[str, str]] = {"jobs": {}, "client_runs": {}}
        self.guard_keys: dict[TableKey, set[str]] = {"jobs": set(), "client_runs": set()}
        self.guard_prefixes: set[str] = set()
        self.raw_keys: dict[TableKey, Counter[str]] = {"jobs": Counter(), "client_runs": Counter()}
        self.by_raw_prefix: dict[str, list[_Row]] = defaultdict(list)
        self.created_status: dict[str, Status] = {}

    # -- helpers ------------------------------------------------------------------------------

    def name(self, table: TableKey, key: str) -> str | None:
        spec = self.specs[table]
        return spec.name_of(key) if spec.has(key) else None

    def writable(self, table: TableKey) -> list[str]:
        """Airtable names of the fields sync may write, in schema order."""
        return [f.name for f in self.specs[table].enabled_fields() if not f.computed]

    def note(self, entity: _Entity, text: str) -> None:
        entity.notes.append(f"[{self.stamp}] sync: {text}")

    def fingerprint_row(self, row: _Row) -> None:
        self.fingerprints[row.table][row.id] = fingerprint(row.record)

    # -- pass 0: read -------------------------------------------------------------------------

    def read(self, table: TableKey, records: Iterable[Mapping[str, Any]]) -> None:
        key_name = self.specs[table].key_name
        out = self.rows[table]
        for record in records:
            if not isinstance(record, Mapping) or not isinstance(record.get("id"), str):
                raise InvalidInputError(f"not an Airtable record: {show(record)}")
            fields = record.get("fields")
            fields = dict(fields) if isinstance(fields, Mapping) else {}
            created = record.get("createdTime")
            raw = fields.get(key_name)
            row = _Row(
                table,
                record,
                record["id"],
                created if isinstance(created, str) else "",
                fields,
                raw,
            )
            out.append(row)
            if isinstance(raw, str):
                self.raw_keys[table][raw] += 1
                if table == "client_runs":
                    self.by_raw_prefix[raw[:_PREFIX_LEN]].append(row)

    def known_client_ids(self) -> frozenset[str]:
        """Client IDs known from the data: valid ``Client ID`` values and the client part of
        every standard client run ID (SPEC §1.2: the ``C`` prefix is resolved only by these)."""
        known: set[str] = set()
        cid_name = self.name("client_runs", "client_id")
        for row in self.rows["client_runs"]:
            if cid_name is not None:
                cid = row.fields.get(cid_name)
                if isinstance(cid, str) and _valid_client(cid):
                    known.add(cid)
            if isinstance(row.raw_key, str):
                found = recognise(row.raw_key)
                if found.format in _CURRENT:
                    # Final already: known client IDs only change ambiguous forms, and the
                    # start time only structured SR ones.
                    row.found = found
                    if found.client_id is not None:
                        known.add(found.client_id)
        return frozenset(known)

    # -- pass 1: run IDs ----------------------------------------------------------------------

    def identify(self, known: frozenset[str]) -> None:
        start_names = {t: self.name(t, "start_time") for t in TABLE_ORDER}
        cid_name = self.name("client_runs", "client_id")
        for table in TABLE_ORDER:
            for row in self.rows[table]:
                found = row.found
                if found is None:
                    start_name = start_names[table]
                    start = _time(row.fields.get(start_name)) if start_name else None
                    start = start or _time(row.created)
                    found = recognise(row.raw_key, start_time=start, known_client_ids=known)
                    row.found = found
                if found.base is None:
                    row.attention.append(
                        "Run ID is empty: the row cannot be matched to a run"
                        if _is_empty(row.raw_key)
                        else f"Run ID {show(row.raw_key)} cannot be converted: {found.reason}; "
                        "left as it is"
                    )
                    continue
                if table == "jobs":
                    if found.client_id is not None:
                        row.attention.append(
                            f"Run ID {show(row.raw_key)} is a client run ID "
                            f"({found.format.value} form); a job row needs a base run ID"
                        )
                        continue
                    row.key = str(found.base)
                else:
                    client = found.client_id
                    if client is None:
                        cid = row.fields.get(cid_name) if cid_name else None
                        if not (isinstance(cid, str) and _valid_client(cid)):
                            row.attention.append(
                                f"Run ID {show(row.raw_key)} names no client and Client ID "
                                f"{show(cid)} cannot supply one; left as it is"
                            )
                            continue
                        client = cid
                        row.reasons.append(
                            f"Run ID {show(row.raw_key)} has no client part "
                            f"({found.format.value} form): client taken from Client ID"
                        )
                    row.key = f"{found.base}-{client}"
                if row.key != row.raw_key:
                    if found.format in _CURRENT:
                        why = f"Run ID normalised to {row.key!r}"
                    else:
                        why = f"legacy run ID ({found.format.value}) converted to {row.key!r}"
                    if found.reason:
                        why += f" ({found.reason})"
                    row.reasons.append(why)

    # -- pass 2: duplicates -------------------------------------------------------------------

    def group(self) -> None:
        for table in TABLE_ORDER:
            groups: dict[str, list[_Row]] = defaultdict(list)
            loose: list[_Row] = []
            for row in self.rows[table]:
                if row.key is None:
                    loose.append(row)
                else:
                    groups[row.key].append(row)
            entities = self.entities[table]
            for key, members in groups.items():
                members.sort(key=lambda r: r.order)
                entities.append(self._merge(table, key, members))
            for row in loose:
                entity = _Entity(table, None, [row], dict(row.fields))
                entity.attention.extend(row.attention)
                entities.append(entity)

    def _merge(self, table: TableKey, key: str, members: list[_Row]) -> _Entity:
        """The entity for ``key``; with duplicates, merged into the oldest row.

        Merge rules, per writable field the schema configures:

        * the newest non-empty value wins (newest ``createdTime``, then record ID);
        * ``Status``: a terminal status is final (SPEC §1.3), so the newest *terminal* value
          wins over a newer ``Running``; unmappable values are skipped (and flagged);
        * ``System Notes`` are appended, never overwritten (SPEC §1.1): the distinct notes of
          all rows, oldest first, one per line;
        * computed fields and fields the schema does not know are not written.
        """
        survivor = members[0]
        entity = _Entity(table, key, members, dict(survivor.fields))
        entity.reasons.extend(survivor.reasons)
        entity.attention.extend(survivor.attention)
        if len(members) == 1:
            return entity
        for row in members:
            self.fingerprint_row(row)
        status_name = self.name(table, "status")
        notes_name = self.name(table, "system_notes")
        newest_first = members[::-1]
        for name in self.writable(table):
            if name == status_name:
                value = self._merge_status(entity, name, newest_first)
            elif name == notes_name:
                texts: list[Any] = []
                for row in members:
                    text = row.fields.get(name)
                    if not _is_empty(text) and text not in texts:
                        texts.append(text)
                value = (
                    "\n".join(texts)
                    if texts and all(isinstance(t, str) for t in texts)
                    else (texts[-1] if texts else None)
                )
            else:
                value = next(
                    (r.fields[name] for r in newest_first if not _is_empty(r.fields.get(name))),
                    None,
                )
            entity.set(name, value)
        others = ", ".join(r.id for r in members[1:])
        entity.reasons.append(
            f"{len(members) - 1} duplicate row(s) with Run ID {key!r} merged into this, the "
            f"oldest row (newest non-empty value per field): {others}"
        )
        self.note(entity, f"merged duplicate row(s) {others} into this row")
        return entity

    def _merge_status(self, entity: _Entity, name: str, newest_first: Sequence[_Row]) -> Any:
        terminal = running = None
        for row in newest_first:
            value = row.fields.get(name)
            if _is_empty(value):
                continue
            mapped = map_status(value).status
            if mapped is None:
                if row is not entity.survivor:
                    entity.attention.append(
                        f"duplicate {row.id} holds unmappable Status {show(value)}; "
                        "not used in the merge"
                    )
                continue
            if mapped.is_terminal and terminal is None:
                terminal = value
            elif not mapped.is_terminal and running is None:
                running = value
        if terminal is not None:
            return terminal
        if running is not None:
            return running
        return entity.survivor.fields.get(name)

    # -- pass 3: per-row fixes ----------------------------------------------------------------

    def fix_rows(self) -> None:
        cid_name = self.name("client_runs", "client_id")
        apify_name = self.name("client_runs", "apify_run_id")
        for table in TABLE_ORDER:
            key_name = self.specs[table].key_name
            status_name = self.specs[table].name_of("status")
            for entity in self.entities[table]:
                if entity.key is not None:
                    entity.new[key_name] = entity.key
                if table == "client_runs" and entity.key is not None:
                    client = entity.key[_PREFIX_LEN:]
                    if cid_name is not None and entity.new.get(cid_name) != client:
                        old = entity.new.get(cid_name)
                        entity.reasons.append(
                            f"Client ID {show(old)} disagrees with the Run ID's client "
                            f"{client!r}: the Run ID is the identity, so Client ID is set to it"
                            if not _is_empty(old)
                            else f"Client ID is empty: set to the Run ID's client {client!r}"
                        )
                        entity.new[cid_name] = client
                    if apify_name is not None and _is_empty(entity.new.get(apify_name)):
                        apify = next(
                            (
                                r.found.apify_run_id
                                for r in reversed(entity.members)
                                if r.found is not None and r.found.apify_run_id
                            ),
                            None,
                        )
                        if apify:
                            entity.new[apify_name] = apify
                            entity.reasons.append(
                                f"Apify run ID {apify!r} from the Apify-tagged Run ID kept in "
                                "Apify Run ID"
                            )
                raw_status = entity.new.get(status_name)
                mapping = map_status(raw_status)
                if mapping.status is None:
                    if _is_empty(raw_status):
                        entity.attention.append("Status is empty; not guessed")
                    else:
                        entity.attention.append(
                            f"Status {show(raw_status)} is unmappable ({mapping.reason}); "
                            "left unchanged, not guessed"
                        )
                elif mapping.is_legacy:
                    entity.new[status_name] = mapping.status.value
                    entity.reasons.append(
                        f"legacy status {show(raw_status)} mapped to {mapping.status.value!r}"
                    )
                entity.status = mapping.status
                self._parse(entity)

    def _parse(self, entity: _Entity) -> None:
        survivor = entity.survivor
        record = {"id": survivor.id, "createdTime": survivor.created or None, "fields": entity.new}
        if entity.table == "client_runs":
            row = ClientRunRow.from_record(record, self.specs["client_runs"])
            entity.parsed = row
            problems = [*row.problems, *row.metrics.sanity_warnings(self.specs["client_runs"])]
        else:
            job = JobRow.from_record(record, self.specs["jobs"])
            entity.parsed = job
            problems = list(job.problems)
        for problem in problems:
            if problem not in entity.attention:
                entity.attention.append(problem)

    # -- passes 4-7: liveness, orphans, finished jobs, aggregates -----------------------------

    def _stale(self, entity: _Entity) -> str | None:
        if entity.status is not Status.RUNNING:
            return None
        p = entity.parsed
        found = staleness(
            Status.RUNNING,
            last_updated=p.last_updated,
            start_time=p.start_time,
            created_time=p.created_time,
            threshold=self.stale_after,
            now=self.now,
        )
        return found.reason if found is not None else None

    def _fail(self, entity: _Entity, reason: str, note: str) -> None:
        status_name = self.specs[entity.table].name_of("status")
        entity.status = Status.FAILED
        entity.new[status_name] = Status.FAILED.value
        entity.reasons.append(reason)
        self.note(entity, note)

    def reconcile(self) -> list[tuple[str, list[_Entity], _Entity | None]]:
        clients_by_base: dict[str, list[_Entity]] = defaultdict(list)
        for entity in self.entities["client_runs"]:
            entity.stale = self._stale(entity)
            if entity.key is not None:
                clients_by_base[entity.key[:_BASE_LEN]].append(entity)

        def live(clients: list[_Entity]) -> bool:
            return any(c.status is Status.RUNNING and c.stale is None for c in clients)

        jobs = {e.key: e for e in self.entities["jobs"] if e.key is not None}
        for entity in self.entities["jobs"]:
            reason = self._stale(entity)
            clients = clients_by_base.get(entity.key, []) if entity.key is not None else []
            if reason is not None and not live(clients):
                self._fail(entity, f"{reason}; marked Failed", f"{reason}; marked Failed")

        for entity in self.entities["client_runs"]:
            if entity.stale is not None:
                self._fail(
                    entity, f"{entity.stale}; marked Failed", f"{entity.stale}; marked Failed"
                )

        # Every base with client rows, with its job entity (None: orphans, created below).
        bases: list[tuple[str, list[_Entity], _Entity | None]] = []
        for base, clients in clients_by_base.items():
            bases.append((base, clients, jobs.get(base)))
        for key, entity in jobs.items():
            if key not in clients_by_base:
                bases.append((key, [], entity))

        created: dict[str, Status] = {}
        for base, clients, job in bases:
            if job is None:
                created[base] = (
                    Status.RUNNING
                    if live(clients)
                    else completion_status(c.final_row() for c in clients)
                )

        for base, clients, job in bases:
            job_status = job.status if job is not None else created[base]
            if job_status is None or not job_status.is_terminal:
                continue
            for client in clients:
                if client.status is Status.RUNNING:
                    self._fail(
                        client,
                        f"job {base} is {job_status.value} but this client run was still Running",
                        f"job {base} finished ({job_status.value}) while this client run was "
                        "still Running; marked Failed",
                    )
                    if job is not None:
                        self.fingerprint_row(job.survivor)
        self.created_status = created
        return bases

    def aggregates(self, bases: list[tuple[str, list[_Entity], _Entity | None]]) -> None:
        spec = self.specs["jobs"]
        agg_names = {
            k: spec.name_of(k) for k in AGGREGATE_KEYS if spec.has(k) and not spec.field(k).computed
        }
        start_name = self.name("jobs", "start_time")
        end_name = self.name("jobs", "end_time")
        for base, clients, job in bases:
            rows = [c.final_row() for c in clients]
            agg = aggregate(rows)
            if job is None:
                self._create_job(base, clients, agg)
                continue
            if job.status is None or not job.status.is_terminal:
                continue
            counts = agg.counts()
            stored: JobRow = job.parsed
            missing: list[str] = []
            wrong: list[str] = []
            for k, name in agg_names.items():
                if stored.aggregates.get(k) == counts[k]:
                    continue
                (missing if _is_empty(job.new.get(name)) else wrong).append(name)
                job.new[name] = counts[k]
            # Invalid stored aggregates are rewritten here, so they need no human.
            job.attention = [
                a
                for a in job.attention
                if not any(a.startswith(f"field {n!r} holds") for n in agg_names.values())
            ]
            times = []
            if start_name and _is_empty(job.new.get(start_name)) and agg.start_time:
                job.new[start_name] = to_airtable(agg.start_time)
                times.append("Start Time")
            if end_name and _is_empty(job.new.get(end_name)) and agg.end_time:
                job.new[end_name] = to_airtable(agg.end_time)
                times.append("End Time")
            n = len(rows)
            if missing:
                job.reasons.append(
                    f"aggregates missing: {', '.join(missing)}; computed from {n} client row(s)"
                )
            if wrong:
                job.reasons.append(
                    f"aggregates disagree with the {n} client row(s): {', '.join(wrong)}; "
                    "recomputed"
                )
            if times:
                job.reasons.append(
                    f"{' and '.join(times)} empty: taken from the client rows "
                    "(earliest start, latest end)"
                )
            if missing or wrong or times:
                self._guard_inputs(base, clients)

    def _guard_inputs(self, base: str, clients: list[_Entity]) -> None:
        """A written aggregate is only right while its client rows are as read: fingerprint
        them, and every row under the job's prefix, and watch the prefix for new rows."""
        prefix = f"{base}-"
        self.guard_prefixes.add(prefix)
        for client in clients:
            for row in client.members:
                self.fingerprint_row(row)
        for row in self.by_raw_prefix.get(prefix, []):
            self.fingerprint_row(row)

    def _create_job(self, base: str, clients: list[_Entity], agg: Any) -> None:
        spec = self.specs["jobs"]
        status = self.created_status[base]
        values: dict[str, Any] = {spec.key_name: base, spec.name_of("status"): status.value}
        fields = agg.to_fields(spec, times=False)
        values.update(fields)
        start_name = self.name("jobs", "start_time")
        end_name = self.name("jobs", "end_time")
        if start_name and agg.start_time:
            values[start_name] = to_airtable(agg.start_time)
        if end_name and agg.end_time and status.is_terminal:
            values[end_name] = to_airtable(agg.end_time)
        notes_name = self.name("jobs", "system_notes")
        if notes_name:
            values[notes_name] = (
                f"[{self.stamp}] sync: job row created from {len(clients)} client run row(s) "
                "that had none"
            )
        order = {name: i for i, name in enumerate(self.writable("jobs"))}
        changes = [
            FieldChange(field=name, old=None, new=value)
            for name, value in sorted(values.items(), key=lambda kv: order.get(kv[0], len(order)))
        ]
        why = (
            "Running: a client run is still running"
            if status is Status.RUNNING
            else f"{status.value} by the completion rule"
        )
        self.records.append(
            RecordChange(
                table="jobs",
                action=Action.CREATE,
                key=base,
                changes=changes,
                reasons=[
                    f"{len(clients)} client run row(s) have no job row {base!r}: created from "
                    f"them ({why}; start = earliest client start, end = latest client end)"
                ],
            )
        )
        self.guard_keys["jobs"].add(base)
        self._guard_inputs(base, clients)

    # -- pass 8: diff -------------------------------------------------------------------------

    def diff(self) -> None:
        for table in TABLE_ORDER:
            writable = self.writable(table)
            notes_name = self.name(table, "system_notes")
            key_name = self.specs[table].key_name
            for entity in self.entities[table]:
                survivor = entity.survivor
                if entity.notes and notes_name:
                    existing = entity.new.get(notes_name)
                    lines = "\n".join(entity.notes)
                    entity.new[notes_name] = (
                        f"{existing}\n{lines}" if isinstance(existing, str) and existing else lines
                    )
                changes = []
                for name in writable:
                    old, new = survivor.fields.get(name), entity.new.get(name)
                    if _is_empty(old) and _is_empty(new):
                        continue
                    if old != new or type(old) is not type(new):
                        changes.append(FieldChange(field=name, old=old, new=new))
                if changes:
                    action = Action.UPDATE
                    self.fingerprint_row(survivor)
                    if any(c.field == key_name for c in changes) and entity.key is not None:
                        self.guard_keys[table].add(entity.key)
                elif entity.attention:
                    action = Action.ATTENTION
                else:
                    action = None
                if action is not None:
                    self.records.append(
                        RecordChange(
                            table=table,
                            action=action,
                            record_id=survivor.id,
                            key=entity.key if entity.key is not None else survivor.raw_key,
                            changes=changes,
                            reasons=entity.reasons if changes else [],
                            attention=entity.attention,
                        )
                    )
                for dup in entity.members[1:]:
                    self.records.append(
                        RecordChange(
                            table=table,
                            action=Action.DELETE,
                            record_id=dup.id,
                            key=entity.key,
                            merged_into=survivor.id,
                            changes=[
                                FieldChange(field=n, old=dup.fields[n], new=None)
                                for n in writable
                                if not _is_empty(dup.fields.get(n))
                            ],
                            reasons=[
                                f"duplicate of {survivor.id} (Run ID {entity.key!r}): merged "
                                "into it, then deleted",
                                *dup.reasons,
                            ],
                        )
                    )

    def plan(self) -> Plan:
        def order(r: RecordChange) -> tuple[int, str, int, str]:
            key = r.key if isinstance(r.key, str) else show(r.key)
            return (TABLE_ORDER.index(r.table), key, _ACTION_ORDER[r.action], r.record_id or "")

        self.records.sort(key=order)
        keys = {
            t: {k: self.raw_keys[t][k] for k in sorted(self.guard_keys[t])}
            for t in TABLE_ORDER
            if self.guard_keys[t]
        }
        prefixes: dict[TableKey, dict[str, int]] = {}
        if self.guard_prefixes:
            prefixes["client_runs"] = {
                p: len(self.by_raw_prefix.get(p, [])) for p in sorted(self.guard_prefixes)
            }
        guards = Guards(
            fingerprints={t: dict(sorted(v.items())) for t, v in self.fingerprints.items() if v},
            keys=keys,
            prefixes=prefixes,
            row_counts={t: len(self.rows[t]) for t in TABLE_ORDER},
        )
        return Plan(
            base_id=self.base_id,
            generated_at=self.stamp,
            stale_after_seconds=self.stale_after.total_seconds(),
            table_names={t: self.specs[t].name for t in TABLE_ORDER},
            records=self.records,
            guards=guards,
        )


def build_plan(
    jobs_records: Iterable[Mapping[str, Any]],
    client_records: Iterable[Mapping[str, Any]],
    *,
    schema: Schema,
    now: datetime,
    stale_after: timedelta,
    base_id: str,
) -> Plan:
    """Plan every fix for the two tables as read (raw pyairtable records), without I/O.

    ``now`` (timezone-aware) dates the plan and its notes and ages ``Running`` rows against
    ``stale_after``.  Time and memory are linear in the number of rows.

    >>> from datetime import UTC, datetime, timedelta
    >>> from jobtrack_airtable.schema import load_schema
    >>> jobs = [{"id": "recJOB00000000001", "createdTime": "2025-09-30T14:15:22.000Z",
    ...          "fields": {"Run ID": "250930-141522.0", "Status": "Success"}}]
    >>> plan = build_plan(jobs, [], schema=load_schema(),
    ...                   now=datetime(2025, 10, 1, tzinfo=UTC), stale_after=timedelta(hours=2),
    ...                   base_id="appAAAAAAAAAAAAAA")
    >>> [(c.field, c.old, c.new) for c in plan.records[0].changes][:2]
    [('Run ID', '250930-141522.0', '250930-141522'), ('Status', 'Success', 'Completed')]
    >>> plan.summary.update
    1
    """
    planner = _Planner(schema, now, stale_after, base_id)
    planner.read("jobs", jobs_records)
    planner.read("client_runs", client_records)
    planner.identify(planner.known_client_ids())
    planner.group()
    planner.fix_rows()
    bases = planner.reconcile()
    planner.aggregates(bases)
    planner.diff()
    return planner.plan()
