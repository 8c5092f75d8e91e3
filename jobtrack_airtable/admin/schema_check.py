"""Compare the configured schema with the base, and create what is missing.

:func:`check_schema` reads the base's schema through the meta API
(``GET /v0/meta/bases/{base}/tables``, one request) and lists every difference that would make
the library fail at run time: a missing table or field, a field of an incompatible type, select
options the code writes that the field lacks.  Fields the schema disables (``enabled = false``)
are not checked; extra tables, fields and options in the base are fine.

:func:`init_schema` creates, through the meta API, the missing tables (``POST …/tables``) and
fields (``POST …/tables/{table}/fields``).  Every meta-API call goes through pyairtable
(``Base.schema()``, ``Base.create_table``, ``Table.create_field``), none is built by hand.
Three kinds of problem are never fixed automatically and come back as :class:`ManualStep` s
instead:

* **formula fields against Airtable**: Airtable's Web API does not create formula (or other
  computed) fields, so they are listed with the formula to paste into the Airtable UI.  Against
  the local server (the embedded base, or any other ``JOBTRACK_ENDPOINT_URL``), which accepts
  ``options.formula``, they are created when ``create_formulas`` is true — and if such a
  server refuses, the step falls back to manual rather than failing the run;
* **wrong field types**: converting a field in place can lose data, so that is the admin's call;
* **missing select options**: the meta API cannot add choices to an existing field.

Formula fields are created after the plain fields, since a formula may reference them.

This module never prints; ``on_step`` callbacks report progress.

>>> from jobtrack_airtable.schema import load_schema
>>> report = compare_schema(load_schema(), {"tables": []})
>>> report.ok, [p.kind for p in report.problems]
(False, ['missing_table', 'missing_table'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypedDict

from ..errors import InvalidRequestError, SchemaMismatchError
from ..schema import COMPUTED_TYPES, FieldSpec, Schema, TableSpec, field_model
from ..transport.client import Connection
from ..transport.meta import fetch_meta
from ..transport.recovery import classified
from ..transport.renames import Rename, likely_table_renames, renames_in

__all__ = [
    "JSON_FORMAT_VERSION",
    "InitResult",
    "ManualStep",
    "SchemaProblem",
    "SchemaReport",
    "check_schema",
    "compare_schema",
    "fetch_meta",
    "field_model",
    "fit_schema",
    "init_schema",
]

#: Version of the JSON documents of ``schema check --json`` / ``schema init --json``.
JSON_FORMAT_VERSION = 1

ProblemKind = Literal["missing_table", "missing_field", "wrong_type", "missing_options"]
StepCallback = Callable[[str], None]

#: Base field types that accept what the code writes for a configured type.  A number written
#: to a currency or percent field is stored fine; plain text to a rich-text field too.
_COMPATIBLE: dict[str, frozenset[str]] = {
    "number": frozenset({"number", "currency", "percent"}),
    "multilineText": frozenset({"multilineText", "richText"}),
}


def _compatible(configured: FieldSpec, actual: str) -> bool:
    if configured.computed:
        # We never write a computed field, so any computed type will do (a base may compute
        # Duration with a rollup); a writable field there would stay empty, which is a problem.
        return actual == configured.type or actual in COMPUTED_TYPES
    return actual in _COMPATIBLE.get(configured.type, frozenset({configured.type}))


@dataclass(frozen=True)
class SchemaProblem:
    """One difference between the configured schema and the base.

    ``table``/``field`` are Airtable names, ``table_key``/``field_key`` the logical keys;
    ``expected``/``actual`` the types (``wrong_type``); ``options`` the missing select options
    (``missing_options``); ``hint`` what else the admin can do (e.g. disable an optional field).
    """

    kind: ProblemKind
    table: str
    table_key: str
    message: str
    field: str | None = None
    field_key: str | None = None
    expected: str | None = None
    actual: str | None = None
    options: tuple[str, ...] = ()
    hint: str | None = None


@dataclass
class SchemaReport:
    """The result of a comparison: every problem found, and what was looked at."""

    problems: list[SchemaProblem] = field(default_factory=list)
    tables_checked: int = 0
    fields_checked: int = 0
    #: Pinned tables and fields the base calls differently (not problems: IDs are used).
    renames: list[Rename] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": JSON_FORMAT_VERSION,
            "ok": self.ok,
            "tables_checked": self.tables_checked,
            "fields_checked": self.fields_checked,
            "problems": [_problem_json(p) for p in self.problems],
            "renames": [asdict(r) for r in self.renames],
        }


def _problem_json(problem: SchemaProblem) -> dict[str, Any]:
    out = asdict(problem)
    out["options"] = list(problem.options)
    return out


# -- reading and comparing --------------------------------------------------------------------


def _choices(meta_field: Mapping[str, Any]) -> list[str]:
    options = meta_field.get("options") or {}
    return [
        name
        for c in options.get("choices", [])
        if isinstance(c, Mapping) and isinstance(name := c.get("name"), str)
    ]


def _optional_hint(spec: FieldSpec) -> str | None:
    if spec.optional:
        return (
            "this field is optional: set `enabled = false` for it in the schema file "
            "if the base is meant to go without it"
        )
    return None


def compare_schema(schema: Schema, meta: Mapping[str, Any]) -> SchemaReport:
    """Every difference between ``schema`` (enabled fields) and the meta API's ``meta``."""
    report = SchemaReport(renames=renames_in(schema, meta))
    tables = {t.get("name"): t for t in meta.get("tables", []) if isinstance(t, Mapping)}
    table_ids = {t.get("id"): t for t in meta.get("tables", []) if isinstance(t, Mapping)}
    for table_key, spec in schema.tables.items():
        report.tables_checked += 1
        # A pinned table or field is matched by ID (whatever it is called now), else by name.
        meta_table = (table_ids.get(spec.id) if spec.id else None) or tables.get(spec.name)
        if meta_table is None:
            report.problems.append(
                SchemaProblem(
                    kind="missing_table",
                    table=spec.name,
                    table_key=table_key,
                    message=f"table {spec.name!r} is missing",
                )
            )
            continue
        fields = {f.get("name"): f for f in meta_table.get("fields", []) if isinstance(f, Mapping)}
        field_ids = {f.get("id"): f for f in fields.values()}
        for fspec in spec.enabled_fields():
            report.fields_checked += 1
            meta_field = (field_ids.get(fspec.id) if fspec.id else None) or fields.get(fspec.name)
            problem = _field_problem(table_key, spec, fspec, meta_field)
            if problem is not None:
                report.problems.append(problem)
    renamed = {r.table_key: r for r in likely_table_renames(schema, meta)}
    report.problems = [
        replace(p, hint=rename_hint(renamed[p.table_key]))
        if p.kind == "missing_table" and p.table_key in renamed
        else p
        for p in report.problems
    ]
    return report


def rename_hint(rename: Rename) -> str:
    """The advice for a table renamed in Airtable before it was pinned (never ``schema
    init``, which would create a second, empty table)."""
    return (
        f"table {rename.current!r} has its fields: renamed in Airtable? Set name = "
        f"{rename.current!r} for the {rename.table_key} table in the schema file "
        "(JOBTRACK_SCHEMA_FILE), then run `jobtrack-airtable schema pin`; do not run `schema "
        "init` (it would create a second, empty table)"
    )


class _FieldWhere(TypedDict):
    """The :class:`SchemaProblem` arguments naming the field a problem is about."""

    table: str
    table_key: str
    field: str
    field_key: str


def _field_problem(
    table_key: str, table: TableSpec, spec: FieldSpec, meta_field: Mapping[str, Any] | None
) -> SchemaProblem | None:
    where = f"{table.name!r}.{spec.name!r}"
    common: _FieldWhere = {
        "table": table.name,
        "table_key": table_key,
        "field": spec.name,
        "field_key": spec.key,
    }
    if meta_field is None:
        return SchemaProblem(
            kind="missing_field",
            message=f"field {where} ({spec.type}) is missing",
            expected=spec.type,
            hint=_optional_hint(spec),
            **common,
        )
    actual = str(meta_field.get("type"))
    if not _compatible(spec, actual):
        return SchemaProblem(
            kind="wrong_type",
            message=f"field {where} is {actual}, expected {spec.type}",
            expected=spec.type,
            actual=actual,
            **common,
        )
    if spec.type == "singleSelect" and spec.options:
        have = set(_choices(meta_field))
        missing = tuple(o for o in spec.options if o not in have)
        if missing:
            return SchemaProblem(
                kind="missing_options",
                message=f"field {where} lacks select option(s) {', '.join(map(repr, missing))}",
                options=missing,
                **common,
            )
    return None


def check_schema(conn: Connection) -> SchemaReport:
    """Compare the connection's configured schema with its base (1 request)."""
    return compare_schema(conn.schema, fetch_meta(conn))


def fit_schema(schema: Schema, report: SchemaReport) -> tuple[Schema, list[SchemaProblem]]:
    """The configured ``schema`` as this base can take it, given ``report``
    (:func:`compare_schema` of the base), for code that reads and writes the base (``sync``).

    Fields the base lacks but nothing needs -- optional fields (the aggregates) and computed
    ones (never written) -- are disabled, and returned as the second element so the caller can
    say what was left out.  Anything else missing or incompatible would fail half way through
    a write, so it is refused, before anything is planned, with
    :class:`~jobtrack_airtable.errors.SchemaMismatchError` naming every problem and the fix.

    >>> from jobtrack_airtable.schema import load_schema
    >>> fit_schema(load_schema(), compare_schema(load_schema(), {"tables": []}))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    jobtrack_airtable.errors.SchemaMismatchError: the base does not match the schema ...
    """
    blocking: list[SchemaProblem] = []
    skipped: list[SchemaProblem] = []
    for problem in report.problems:
        spec = (
            schema.table(problem.table_key).fields.get(problem.field_key)
            if problem.field_key is not None
            else None
        )
        if (
            spec is not None
            and problem.kind != "missing_options"
            and (spec.computed or (spec.optional and problem.kind == "missing_field"))
        ):
            skipped.append(problem)
        else:
            blocking.append(problem)
    if blocking:
        fixes = []
        if any(p.kind in ("missing_table", "missing_field") for p in blocking):
            fixes.append(
                "run `jobtrack-airtable schema init` to create the missing tables and fields"
            )
        if any(p.kind in ("wrong_type", "missing_options") for p in blocking):
            fixes.append(
                "fix field types and select options in the Airtable UI "
                "(`jobtrack-airtable schema check` lists them)"
            )
        raise SchemaMismatchError(
            f"the base does not match the schema ({len(blocking)} problem(s)): "
            + "; ".join(p.message for p in blocking)
            + ". Nothing was planned or written; "
            + " and ".join(fixes),
            [p.message for p in blocking],
        )
    if not skipped:
        return schema, []
    data = schema.model_dump()
    for problem in skipped:
        assert problem.field_key is not None
        data["tables"][problem.table_key]["fields"][problem.field_key]["enabled"] = False
    return Schema.model_validate(data), skipped


# -- creating what is missing ----------------------------------------------------------------


@dataclass(frozen=True)
class ManualStep:
    """Something :func:`init_schema` cannot (or will not) do; ``action`` says what to do."""

    table: str
    field: str | None
    reason: str
    action: str


@dataclass
class InitResult:
    """What :func:`init_schema` did: tables and fields created, steps left to the admin, and
    the comparison before and after."""

    before: SchemaReport
    after: SchemaReport
    created_tables: list[str] = field(default_factory=list)
    created_fields: list[tuple[str, str]] = field(default_factory=list)
    manual: list[ManualStep] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created_tables or self.created_fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": JSON_FORMAT_VERSION,
            "ok": self.after.ok,
            "created_tables": list(self.created_tables),
            "created_fields": [{"table": t, "field": f} for t, f in self.created_fields],
            "manual_steps": [asdict(m) for m in self.manual],
            "remaining_problems": [_problem_json(p) for p in self.after.problems],
        }


def _manual_for_computed(table: str, spec: FieldSpec, why: str) -> ManualStep:
    if spec.type == "formula" and spec.formula:
        action = (
            f"in the Airtable UI, add a formula field {spec.name!r} to {table!r} with the "
            f"formula: {spec.formula}"
        )
    else:
        action = f"in the Airtable UI, add a {spec.type} field {spec.name!r} to {table!r}"
    return ManualStep(table=table, field=spec.name, reason=why, action=action)


def init_schema(
    conn: Connection,
    *,
    create_formulas: bool = False,
    on_step: StepCallback | None = None,
) -> InitResult:
    """Create the missing tables and fields of the configured schema in the base.

    1 request to read the schema, 2 per table created (pyairtable's ``create_table`` reads the
    new table's schema back), 1 per field created, 1 to read the schema again.
    ``on_step`` is called with a short description before every write.  See the module
    docstring for what is left as :class:`ManualStep` s.
    """
    schema = conn.schema
    meta = fetch_meta(conn)
    before = compare_schema(schema, meta)
    result = InitResult(before=before, after=before)
    base = conn.api.base(conn.base_id)
    # Airtable's create-field endpoint takes the table ID, not its name: address each table
    # by its ID so pyairtable needs no schema read to find it.
    table_ids = {
        str(t.get("name")): str(t.get("id")) for t in meta["tables"] if isinstance(t, Mapping)
    }
    # A pinned table is its ID, whatever the base calls it now.
    table_ids.update({t.name: t.id for t in schema.tables.values() if t.id})

    def step(text: str) -> None:
        if on_step is not None:
            on_step(text)

    def create_field(table_name: str, model: dict[str, Any]) -> None:
        table = base.table(table_ids.get(table_name, table_name))
        with classified():
            table.create_field(model["name"], model["type"], options=model.get("options"))

    # Formula fields go last, after every plain field they may reference exists.
    deferred: list[tuple[str, FieldSpec]] = []
    missing_tables = {p.table_key for p in before.problems if p.kind == "missing_table"}
    for table_key in (k for k in schema.tables if k in missing_tables):
        table_spec = schema.table(table_key)
        plain = sorted(
            (f for f in table_spec.enabled_fields() if not f.computed), key=lambda f: not f.primary
        )
        models = [m for f in plain if (m := field_model(f)) is not None]
        step(f"create table {table_spec.name!r} ({len(models)} fields)")
        with classified():
            created = base.create_table(table_spec.name, models)
        result.created_tables.append(table_spec.name)
        table_ids[table_spec.name] = str(created.id)
        deferred.extend((table_spec.name, f) for f in table_spec.enabled_fields() if f.computed)

    for problem in before.problems:
        if problem.kind == "missing_field" and problem.field_key is not None:
            spec = schema.table(problem.table_key).field(problem.field_key)
            if spec.computed:
                deferred.append((problem.table, spec))
                continue
            model = field_model(spec)
            assert model is not None
            step(f"create field {problem.table!r}.{spec.name!r} ({spec.type})")
            create_field(problem.table, model)
            result.created_fields.append((problem.table, spec.name))
        elif problem.kind == "wrong_type":
            result.manual.append(
                ManualStep(
                    table=problem.table,
                    field=problem.field,
                    reason=f"the field is {problem.actual}, the schema expects {problem.expected}",
                    action=(
                        f"convert {problem.table!r}.{problem.field!r} to {problem.expected} in "
                        "the Airtable UI (init never converts fields: it can lose data), or "
                        "change its type in the schema file"
                    ),
                )
            )
        elif problem.kind == "missing_options":
            result.manual.append(
                ManualStep(
                    table=problem.table,
                    field=problem.field,
                    reason="the meta API cannot add options to an existing select field",
                    action=(
                        f"add the option(s) {', '.join(map(repr, problem.options))} to "
                        f"{problem.table!r}.{problem.field!r} in the Airtable UI"
                    ),
                )
            )

    for table_name, spec in deferred:
        model = field_model(spec, create_formulas=create_formulas)
        if model is None:
            why = (
                "Airtable's API cannot create formula fields"
                if spec.type == "formula"
                else f"Airtable's API cannot create {spec.type} fields"
            )
            result.manual.append(_manual_for_computed(table_name, spec, why))
            continue
        step(f"create field {table_name!r}.{spec.name!r} ({spec.type})")
        try:
            create_field(table_name, model)
        except InvalidRequestError as exc:
            # A server that does not take formulas through the API: leave it to the admin.
            result.manual.append(
                _manual_for_computed(table_name, spec, f"the server refused: {exc}")
            )
            continue
        result.created_fields.append((table_name, spec.name))

    result.after = check_schema(conn) if result.changed else before
    return result
