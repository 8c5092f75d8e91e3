"""The tracking base's schema: which tables and fields exist, what they are called in the base,
which are computed, which select options are allowed.

Code addresses fields by *logical key* (``run_id``, ``profiles_examined``…); this module
declares them with their Airtable names from a TOML file (``config/schema.toml`` by default),
so a base that renames a field needs only a config change.  The maps between keys, names and
pinned IDs are built from it in one place, the codec (:mod:`.transport.codec`).

>>> schema = load_schema()
>>> schema.client_runs.name_of("profiles_examined")
'Profiles Examined for Scoring'
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .airtable import MAX_LONG_TEXT
from .errors import ConfigError, InvalidInputError, show
from .field_types import (
    COMPUTED_TYPES,
    DATETIME_TYPES,
    NUMBER_TYPES,
    SELECT_TYPES,
    TEXT_TYPES,
)
from .files import read_bounded

TableKey = Literal["jobs", "client_runs"]

#: Airtable's limit on the characters of one text cell (long text: 100,000).


class FieldSpec(BaseModel):
    """One field of a table, as configured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = ""
    name: str = Field(min_length=1)
    #: The Airtable field ID, once pinned (``schema pin``): the field is then addressed by
    #: it, and a rename in Airtable breaks nothing.
    id: str | None = Field(None, pattern=r"^fld[A-Za-z0-9]{14}$")
    type: str
    computed: bool = False
    formula: str | None = None
    options: tuple[str, ...] | None = None
    precision: int | None = None
    primary: bool = False
    optional: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _computed_types_are_computed(self) -> FieldSpec:
        if self.type in COMPUTED_TYPES and not self.computed:
            object.__setattr__(self, "computed", True)
        return self


class TableSpec(BaseModel):
    """One table: its Airtable name, natural key and fields (by logical key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = ""
    name: str = Field(min_length=1)
    #: The Airtable table ID, once pinned (``schema pin``): requests then address it by ID.
    id: str | None = Field(None, pattern=r"^tbl[A-Za-z0-9]{14}$")
    natural_key: str = "run_id"
    fields: dict[str, FieldSpec]

    @model_validator(mode="before")
    @classmethod
    def _inject_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            fields = data.get("fields")
            if isinstance(fields, dict):
                data["fields"] = {
                    k: ({**v, "key": k} if isinstance(v, dict) else v) for k, v in fields.items()
                }
        return data

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        if self.natural_key not in self.fields:
            raise ValueError(f"natural key {self.natural_key!r} is not a field of {self.name!r}")
        names = [f.name for f in self.fields.values()]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"field names used twice in {self.name!r}: {sorted(dupes)}")
        ids = [f.id for f in self.fields.values() if f.id]
        dupe_ids = {i for i in ids if ids.count(i) > 1}
        if dupe_ids:
            raise ValueError(f"field IDs used twice in {self.name!r}: {sorted(dupe_ids)}")
        return self

    # -- lookups --------------------------------------------------------------------------

    def field(self, key: str) -> FieldSpec:
        """The enabled field with logical key ``key``; :class:`ConfigError` if absent."""
        spec = self.fields.get(key)
        if spec is None or not spec.enabled:
            raise ConfigError(f"table {self.name!r} has no enabled field {key!r}")
        return spec

    def has(self, key: str) -> bool:
        """Whether the field ``key`` is configured and enabled in this base."""
        spec = self.fields.get(key)
        return spec is not None and spec.enabled

    def name_of(self, key: str) -> str:
        """The Airtable name of the field with logical key ``key``."""
        return self.field(key).name

    @property
    def key_name(self) -> str:
        """The Airtable name of the natural-key field (``Run ID``)."""
        return self.name_of(self.natural_key)

    def enabled_fields(self) -> Iterator[FieldSpec]:
        return (f for f in self.fields.values() if f.enabled)

    # -- pinned IDs (``schema pin``) -------------------------------------------------------

    @property
    def address(self) -> str:
        """What URLs name the table by: its pinned ID, else its configured name."""
        return self.id or self.name

    @property
    def uses_ids(self) -> bool:
        """Whether fields are pinned: requests then key fields by ID, and answers come keyed
        by ID (``returnFieldsByFieldId``)."""
        return any(f.id for f in self.enabled_fields())


def value_problem(spec: FieldSpec, value: Any) -> str | None:
    """Why Airtable would refuse ``value`` (not ``None``) in the writable field ``spec``, or
    None: a select value outside the options, a non-number for a number field, a
    non-string or an unstorable string for a text field.  The codec checks every write with
    it (:meth:`~jobtrack_airtable.transport.codec.Codec.encode`)."""
    if spec.type in SELECT_TYPES:
        if not isinstance(value, str):
            return f"field {spec.name!r} takes a select option, not {show(value)}"
        if spec.options is not None and value not in spec.options:
            return (
                f"value {show(value)} is not an option of {spec.name!r} "
                f"(allowed: {', '.join(spec.options)})"
            )
    elif spec.type in NUMBER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"field {spec.name!r} takes a number, not {show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"field {spec.name!r} cannot hold {show(value)}"
    elif spec.type in TEXT_TYPES | DATETIME_TYPES and not isinstance(value, str):
        return f"field {spec.name!r} takes a string, not {show(value)}"
    elif spec.type in TEXT_TYPES:
        return text_problem(value, f"field {spec.name!r}")
    return None


def text_problem(value: str, what: str, limit: int = MAX_LONG_TEXT) -> str | None:
    """Why Airtable could not store ``value`` as text, or None: longer than ``limit``
    characters (Airtable's cell limit), or holding an unpaired surrogate (not encodable as
    UTF-8 JSON; a request carrying one fails, or is stored mangled).

    >>> print(text_problem("x" * 100_001, "note"))  # doctest: +ELLIPSIS
    note holds 100001 characters; at most 100000 fit in an Airtable text cell: 'xxx...
    """
    if len(value) > limit:
        return (
            f"{what} holds {len(value)} characters; at most {limit} fit in an Airtable "
            f"text cell: {show(value)}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"{what} holds an unpaired surrogate (U+{ord(value[exc.start]):04X}) at index "
            f"{exc.start}, which cannot be sent as UTF-8: {show(value)}"
        )
    return None


class Schema(BaseModel):
    """The whole tracking-base schema: the ``jobs`` and ``client_runs`` tables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tables: dict[str, TableSpec]

    @model_validator(mode="before")
    @classmethod
    def _inject_table_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tables"), dict):
            data = {
                **data,
                "tables": {
                    k: ({**v, "key": k} if isinstance(v, dict) else v)
                    for k, v in data["tables"].items()
                },
            }
        return data

    @model_validator(mode="after")
    def _required_tables(self) -> Schema:
        missing = {"jobs", "client_runs"} - set(self.tables)
        if missing:
            raise ValueError(f"schema lacks table(s) {sorted(missing)}")
        return self

    @property
    def jobs(self) -> TableSpec:
        return self.tables["jobs"]

    @property
    def client_runs(self) -> TableSpec:
        return self.tables["client_runs"]

    def table(self, key: str) -> TableSpec:
        try:
            return self.tables[key]
        except KeyError:
            raise ConfigError(f"schema has no table {key!r}") from None


def default_schema_path() -> Path:
    """Path of the default schema file shipped with the package (``config/schema.toml``)."""
    packaged = resources.files("jobtrack_airtable").joinpath("_default_schema.toml")
    if packaged.is_file():
        return Path(str(packaged))
    # Editable install / source checkout: the file lives in the repo's config/.
    return Path(__file__).resolve().parent.parent / "config" / "schema.toml"


def load_schema(path: str | Path | None = None) -> Schema:
    """Load a schema file (TOML); the default schema when ``path`` is None.

    Raises :class:`ConfigError` naming the file and every problem in it.
    """
    if path is None:
        return _default_schema()
    return _load(Path(path))


@cache
def _default_schema() -> Schema:
    return _load(default_schema_path())


#: A schema file is a few kilobytes; anything past this is the wrong file.
MAX_SCHEMA_BYTES = 1024 * 1024


def _load(path: Path) -> Schema:
    if not path.exists():
        raise ConfigError(f"schema file {str(path)!r} does not exist")
    try:
        # Bounded: a FIFO or /dev/zero named by JOBTRACK_SCHEMA_FILE is refused, not read.
        raw = read_bounded(path, what="schema file", max_bytes=MAX_SCHEMA_BYTES)
        data = tomllib.loads(raw.decode("utf-8"))
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"schema file {str(path)!r} is not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"schema file {str(path)!r} is not valid TOML: {exc}") from None
    try:
        return Schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"schema file {str(path)!r} is invalid: {exc}") from None


def field_model(
    spec: FieldSpec, *, create_formulas: bool = False, computed: bool = False
) -> dict[str, Any] | None:
    """The Airtable field model (``{"name", "type", "options"?}``) to create ``spec``, or
    ``None`` when the meta API cannot create it (computed fields, and formulas unless
    ``create_formulas``).  ``computed``: also the computed fields (bare type, formulas
    included, a blank formula for one the schema leaves open): what the local server creates.

    >>> field_model(load_schema().jobs.field("status"))["options"]["choices"][0]
    {'name': 'Running'}
    >>> field_model(load_schema().jobs.field("duration")) is None
    True
    """
    model: dict[str, Any] = {"name": spec.name, "type": spec.type}
    if spec.type == "formula":
        if computed:
            model["options"] = {"formula": spec.formula or "BLANK()"}
        elif not create_formulas or not spec.formula:
            return None
        else:
            model["options"] = {"formula": spec.formula}
    elif spec.computed:
        return model if computed else None
    elif spec.type in ("singleSelect", "multipleSelects"):
        model["options"] = {"choices": [{"name": o} for o in spec.options or ()]}
    elif spec.type == "currency":
        model["options"] = {
            "precision": spec.precision if spec.precision is not None else 2,
            "symbol": "$",
        }
    elif spec.type in NUMBER_TYPES and spec.type not in ("rating", "duration"):
        model["options"] = {"precision": spec.precision if spec.precision is not None else 0}
    elif spec.type == "dateTime":
        # Airtable requires formats and a zone to create a dateTime field; ISO and UTC match
        # how the code writes times.
        model["options"] = {
            "dateFormat": {"name": "iso"},
            "timeFormat": {"name": "24hour"},
            "timeZone": "utc",
        }
    elif spec.type == "date":
        model["options"] = {"dateFormat": {"name": "iso"}}
    elif spec.type == "checkbox":
        model["options"] = {"icon": "check", "color": "greenBright"}
    return model
