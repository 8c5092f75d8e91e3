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


def default_options(ftype: str) -> dict[str, Any] | None:
    """A copy of the default options of a ``ftype`` field, ``None`` if it has none."""
    found = _DEFAULTS.get(ftype)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in found.items()} if found else None


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
