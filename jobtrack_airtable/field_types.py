"""Airtable's field types, grouped by what a client may write into them (SPEC §2): facts about
Airtable, shared by the library (to refuse bad writes locally) and the local server (to refuse
them as Airtable does).

>>> "formula" in COMPUTED_TYPES, "currency" in NUMBER_TYPES
(True, True)
"""

from __future__ import annotations

__all__ = ["COMPUTED_TYPES", "DATETIME_TYPES", "NUMBER_TYPES", "SELECT_TYPES", "TEXT_TYPES"]

#: Field types whose values Airtable computes: never written by a client.
COMPUTED_TYPES = frozenset(
    {
        "formula",
        "rollup",
        "count",
        "lookup",
        "multipleLookupValues",
        "autoNumber",
        "createdTime",
        "lastModifiedTime",
        "createdBy",
        "lastModifiedBy",
        "button",
        "aiText",
    }
)
NUMBER_TYPES = frozenset({"number", "currency", "percent", "duration", "rating"})
TEXT_TYPES = frozenset(
    {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"}
)
SELECT_TYPES = frozenset({"singleSelect"})
DATETIME_TYPES = frozenset({"dateTime", "date"})
