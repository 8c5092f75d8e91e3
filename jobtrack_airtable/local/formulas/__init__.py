"""Airtable's formula language for the local server: parser, compiler and evaluator.

The local server uses this module twice: to apply ``filterByFormula`` to every record of a
listing, and to compute the schema's formula fields (``Duration``, ``Total Tokens Used``…) on
read.  A formula is parsed once into an AST and compiled into a tree of Python closures, so
filtering thousands of records never re-reads the text; :func:`compile_formula` also caches
compiled formulas by text because the server sees the same filter on every page.

>>> from datetime import UTC, datetime
>>> f = compile_formula("AND({Run ID} = '250930-141522', {Status} != 'Failed')")
>>> sorted(f.field_refs)
['Run ID', 'Status']
>>> t = datetime(2025, 9, 30, 14, 15, 22, tzinfo=UTC)
>>> ctx = EvalContext(
...     fields={"Run ID": "250930-141522", "Status": "Running"},
...     record_id="rec00000000000001", created_time=t, now=t,
... )
>>> is_truthy(f.evaluate(ctx))
True
>>> try:
...     compile_formula("{A} + ")
... except FormulaError as exc:
...     print(exc)
Invalid formula: expected a value, found end of formula at position 6: '{A} + '

Grammar: string literals in single or double quotes with backslash escapes; ``{Field Name}``
references (``\\}`` and ``\\\\`` are escapes inside the braces, as ``pyairtable`` emits them);
integer and decimal numbers; ``TRUE``/``FALSE`` with or without parentheses; function calls
(case-insensitive names); operators by increasing precedence: comparisons
``= != < > <= >=``, then ``&``, then ``+ -``, then ``* /``, then unary ``-``/``+``.

Values during evaluation: ``None`` (blank), ``str``, ``int``/``float``, ``bool`` (Airtable's
TRUE()/FALSE(), numerically 1/0), aware ``datetime``, ``list`` (multi-select, lookups) and
:class:`ErrorValue` (Airtable's ``#ERROR!``).  The semantic choices, close to Airtable:

* **Blank** equals ``""`` and ``0`` (``{Empty} = ''`` and ``{Empty} = 0`` are true, as in
  Airtable); a blank never equals a datetime; blank counts as 0 in arithmetic, ``""`` in text.
* **Comparisons**: number vs number numerically; string vs string exactly (case-sensitive);
  string vs number numerically when the string is a number, otherwise as strings; datetime vs
  string by parsing the string as ISO-8601 (otherwise as strings); booleans are 1/0; lists
  compare as their ``", "``-joined text; anything else (a datetime vs a number) is unequal
  and unordered.
* **Fields typed dateTime/date** (``EvalContext.field_types``) are read as datetimes; untyped
  ISO strings still compare as datetimes against datetimes (``DATETIME_PARSE(...)``, ``NOW()``).
* **Arithmetic** accepts numbers, booleans, blanks (0) and numeric strings; anything else, and
  division by zero, give an :class:`ErrorValue`, which propagates through every operator and
  function (except ``ISERROR``/``IF`` branches not taken) and is false in a filter.
  Integral results are ints (``4 / 2`` is ``2``) so JSON shows ``2``, not ``2.0``.
* **Date functions** return blank when a date argument is blank, and an error when it is not a
  date.  ``SEARCH`` is ``FIND`` returning blank instead of 0 (case-sensitive, like Airtable's).
"""

from __future__ import annotations

from .compiler import Formula, compile_formula
from .functions import FUNCTIONS
from .lexer import FormulaError
from .values import ErrorValue, EvalContext, is_truthy, to_json_value

__all__ = [
    "FUNCTIONS",
    "ErrorValue",
    "EvalContext",
    "Formula",
    "FormulaError",
    "compile_formula",
    "is_truthy",
    "to_json_value",
]
