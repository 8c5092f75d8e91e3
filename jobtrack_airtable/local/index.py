"""In-memory field indexes of the local server, and the filter planner that uses them.

A :class:`FieldIndex` keeps ``(key, record ID)`` pairs of one field sorted
(:class:`sortedcontainers.SortedList`), so an exact lookup and a text-prefix lookup are
O(log n + matches) and an insert/remove is O(log n).  A table indexes its primary field from the
start and any other field the first time an upsert merges on it or a filter compares it (one
scan), and keeps every built index current on each commit.

:func:`candidates` recognises the filters this project and most clients send —
``{F}='x'``, ``LEFT({F}, n)='p'`` (with ``n == len(p)``), ``RECORD_ID()='rec…'``, and ``OR``/``AND``
of them — and returns a *superset* of the matching record IDs; the listing still evaluates the
whole formula on each candidate, so an index can only make a filter faster, never different.
Anything else returns ``None``: evaluate every record.

>>> idx = FieldIndex()
>>> idx.add("recA", "250930-1"); idx.add("recB", "250930-2"); idx.add("recC", "x")
>>> sorted(idx.equal("250930-1")), sorted(idx.prefix("250930-"))
(['recA'], ['recA', 'recB'])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from sortedcontainers import SortedList

from .formulas.parser import Binary, Call, Lit, Node, Ref

#: Field types whose stored value is a plain string compared exactly by ``=`` in formulas.
STRING_FIELD_TYPES = frozenset(
    {
        "singleLineText",
        "multilineText",
        "richText",
        "email",
        "url",
        "phoneNumber",
        "singleSelect",
    }
)
_MAX_ID = "\U0010ffff"


def index_key(value: Any) -> tuple[str, Any] | None:
    """The sortable key of a cell value; ``None`` for an empty cell (never indexed).

    Numbers compare by value (``3 == 3.0``, as stored values compare in an upsert); other
    values by their canonical JSON.
    """
    if value is None or value == "" or value == [] or value is False:
        return None
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bool | int | float):
        return ("n", float(value))
    return ("j", json.dumps(value, sort_keys=True, ensure_ascii=False))


class FieldIndex:
    """Sorted ``(key, record ID)`` pairs of one field."""

    def __init__(self) -> None:
        self._items: SortedList = SortedList()

    def add(self, rid: str, value: Any) -> None:
        key = index_key(value)
        if key is not None:
            self._items.add((key, rid))

    def remove(self, rid: str, value: Any) -> None:
        key = index_key(value)
        if key is not None:
            self._items.discard((key, rid))

    def equal(self, value: Any) -> Iterator[str]:
        key = index_key(value)
        if key is None:
            return iter(())
        return (rid for _, rid in self._items.irange((key, ""), (key, _MAX_ID)))

    def prefix(self, text: str) -> Iterator[str]:
        for (tag, value), rid in self._items.irange((("s", text), "")):
            if tag != "s" or not value.startswith(text):
                return
            yield rid

    def __len__(self) -> int:
        return len(self._items)


#: ``(field name) -> FieldIndex`` for a field this planner may use, or ``None`` if it may not.
IndexLookup = Callable[[str], FieldIndex | None]


def candidates(tree: Node | None, lookup: IndexLookup) -> set[str] | None:
    """Record IDs that may match the filter ``tree`` (a superset), or ``None``: scan all."""
    if isinstance(tree, Call) and tree.name in ("OR", "AND"):
        parts = [candidates(arg, lookup) for arg in tree.args]
        if tree.name == "OR":
            if any(p is None for p in parts):
                return None
            return set().union(*(p for p in parts if p is not None))
        known = [p for p in parts if p is not None]
        if not known:
            return None
        return set.intersection(*known)
    if not isinstance(tree, Binary) or tree.op != "=":
        return None
    left, right = tree.left, tree.right
    if isinstance(left, Lit):
        left, right = right, left
    if not isinstance(right, Lit) or not isinstance(right.value, str) or right.value == "":
        return None
    text = right.value
    if isinstance(left, Ref):
        index = lookup(left.name)
        return None if index is None else set(index.equal(text))
    if isinstance(left, Call) and left.name == "RECORD_ID" and not left.args:
        return {text}
    if (
        isinstance(left, Call)
        and left.name == "LEFT"
        and len(left.args) == 2
        and isinstance(left.args[0], Ref)
        and isinstance(left.args[1], Lit)
        and type(left.args[1].value) is int
        and left.args[1].value == len(text)
    ):
        index = lookup(left.args[0].name)
        return None if index is None else set(index.prefix(text))
    return None
