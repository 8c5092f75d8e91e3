"""Which field models Airtable's meta API accepts on create, and the options a field gets when
seeded from Python without any.

Airtable's Web API cannot create computed fields (formula, rollup, lookup, count, created/
modified time and by, auto number, button, sync source, AI text): it answers 422
``UNSUPPORTED_FIELD_TYPE_FOR_CREATE``.  It also requires the options that define a field's
format (a number's precision, a checkbox's icon and colour, a date-time's formats and zone):
422 ``INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE`` without them.  Python seeding (fixtures, the
embedded base) bypasses these rules, with :func:`default_options` for what is left out.

>>> check_api_create("Jobs", {"name": "N", "type": "number", "options": {"precision": 1}})
>>> check_api_create("Jobs", {"name": "F", "type": "formula"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
jobtrack_airtable.local.errors.ApiError: 422 UNSUPPORTED_FIELD_TYPE_FOR_CREATE: ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import errors as E

NOT_CREATABLE = frozenset(
    {
        "aiText",
        "autoNumber",
        "button",
        "count",
        "createdBy",
        "createdTime",
        "externalSyncSource",
        "formula",
        "lastModifiedBy",
        "lastModifiedTime",
        "multipleLookupValues",
        "rollup",
    }
)

#: Options a field gets when seeded without any: Airtable's defaults for a new field of the
#: type (integer numbers, cents for currency, whole percents, ISO dates in UTC).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "number": {"precision": 0},
    "currency": {"precision": 2, "symbol": "$"},
    "percent": {"precision": 0},
    "rating": {"max": 5, "icon": "star", "color": "yellowBright"},
    "checkbox": {"icon": "check", "color": "greenBright"},
    "duration": {"durationFormat": "h:mm"},
    "date": {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}},
    "dateTime": {
        "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
        "timeFormat": {"name": "24hour", "format": "HH:mm"},
        "timeZone": "utc",
    },
}

#: Option keys a create request must carry, per type.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "number": ("precision",),
    "currency": ("precision",),
    "percent": ("precision",),
    "checkbox": ("icon", "color"),
    "rating": ("max",),
    "duration": ("durationFormat",),
    "date": ("dateFormat",),
    "dateTime": ("dateFormat", "timeFormat", "timeZone"),
}


#: The ``format`` Airtable shows for each named date and time format (its field model docs).
DATE_FORMATS = {
    "local": "l",
    "friendly": "LL",
    "us": "M/D/YYYY",
    "european": "D/M/YYYY",
    "iso": "YYYY-MM-DD",
}
TIME_FORMATS = {"12hour": "h:mma", "24hour": "HH:mm"}


def default_options(ftype: str) -> dict[str, Any] | None:
    """A copy of the default options of a ``ftype`` field, ``None`` if it has none."""
    found = _DEFAULTS.get(ftype)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in found.items()} if found else None


def complete_options(ftype: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with what Airtable adds to the required ones: the ``format`` of a named
    date or time format.

    >>> complete_options("date", {"dateFormat": {"name": "iso"}})
    {'dateFormat': {'name': 'iso', 'format': 'YYYY-MM-DD'}}
    """
    out = dict(options)
    if ftype in ("date", "dateTime"):
        for key, formats in (("dateFormat", DATE_FORMATS), ("timeFormat", TIME_FORMATS)):
            spec = out.get(key)
            if isinstance(spec, Mapping) and "format" not in spec and spec.get("name") in formats:
                out[key] = {**spec, "format": formats[spec["name"]]}
    return out


def check_api_create(table: str, spec: Any, *, allow_formulas: bool = False) -> None:
    """Refuse, as Airtable's meta API does, a field model it cannot create."""
    if not isinstance(spec, Mapping):
        return  # the store answers the shape errors
    name, ftype = spec.get("name"), spec.get("type")
    if not isinstance(ftype, str):
        return
    if ftype in NOT_CREATABLE and not (allow_formulas and ftype == "formula"):
        raise E.ApiError(
            422,
            "UNSUPPORTED_FIELD_TYPE_FOR_CREATE",
            f"Invalid options for {table}.{name}: Creating {ftype} fields is not supported at "
            "this time",
        )
    options = spec.get("options")
    required = _REQUIRED.get(ftype, ())
    if required and not isinstance(options, Mapping):
        raise E.ApiError(
            422,
            "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE",
            f"Failed schema validation: {name}.options is missing",
        )
    for key in required:
        assert isinstance(options, Mapping)
        if key not in options:
            raise E.ApiError(
                422,
                "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE",
                f"Failed schema validation: {name}.options.{key} is missing",
            )
    if "precision" in required:
        assert isinstance(options, Mapping)
        precision = options["precision"]
        if type(precision) is not int or not 0 <= precision <= 8:
            raise E.ApiError(
                422,
                "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE",
                f"Failed schema validation: {name}.options.precision must be an integer "
                "from 0 to 8",
            )


_DATE_FUNCTIONS = frozenset(
    {"DATEADD", "DATETIME_PARSE", "NOW", "TODAY", "SET_TIMEZONE", "SET_LOCALE", "CREATED_TIME"}
    | {"LAST_MODIFIED_TIME", "WORKDAY"}
)
_TEXT_FUNCTIONS = frozenset(
    {"LOWER", "UPPER", "TRIM", "LEFT", "RIGHT", "MID", "REPLACE", "SUBSTITUTE", "REPT"}
    | {"CONCATENATE", "T", "ENCODE_URL_COMPONENT", "REGEX_EXTRACT", "REGEX_REPLACE"}
    | {"ARRAYJOIN", "DATETIME_FORMAT", "DATESTR", "TIMESTR", "RECORD_ID", "ERROR"}
)
_BRANCHING = {"IF": slice(1, None), "SWITCH": slice(2, None, 2)}


def formula_result(text: str, field_types: Mapping[str, str]) -> dict[str, Any]:
    """The ``options.result`` of a formula field: the field model of what it evaluates to,
    inferred from the formula's shape as Airtable does (text, number, date-time).

    >>> formula_result("{A} & 'x'", {})["type"], formula_result("1 / 3", {})["type"]
    ('singleLineText', 'number')
    """
    # Imported here: the formula language is only needed once a formula field is defined.
    from .formulas import FormulaError, compile_formula
    from .formulas.parser import Binary, Call, Lit, Ref

    def kind(node: Any) -> str:
        if isinstance(node, Lit):
            return "singleLineText" if isinstance(node.value, str) else "number"
        if isinstance(node, Ref):
            ftype = field_types.get(node.name, "singleLineText")
            if ftype in ("dateTime", "date", "createdTime", "lastModifiedTime"):
                return "dateTime"
            numeric = ("number", "currency", "percent", "duration", "rating", "autoNumber", "count")
            return "number" if ftype in numeric else "singleLineText"
        if isinstance(node, Binary):
            return "singleLineText" if node.op == "&" else "number"
        if isinstance(node, Call):
            name = node.name.upper()
            if name in _DATE_FUNCTIONS:
                return "dateTime"
            if name in _TEXT_FUNCTIONS:
                return "singleLineText"
            branches = node.args[_BRANCHING[name]] if name in _BRANCHING else ()
            for branch in branches:
                if not (isinstance(branch, Call) and branch.name.upper() == "BLANK"):
                    return kind(branch)
        return "number"

    try:
        tree = compile_formula(text).tree
    except FormulaError:
        tree = None
    result = kind(tree) if tree is not None else "singleLineText"
    if result == "number":
        return {"type": "number", "options": {"precision": 0}}
    if result == "dateTime":
        return {"type": "dateTime", "options": default_options("dateTime")}
    return {"type": result}
