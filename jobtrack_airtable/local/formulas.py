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

import math
import operator
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_UP, Decimal
from functools import lru_cache
from typing import Any, Final, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


class FormulaError(ValueError):
    """The formula cannot be compiled: syntax error, unknown function, wrong number of
    arguments, or (when ``known_fields`` is given) an unknown field.  The message is meant for
    a 422 ``INVALID_FILTER_BY_FORMULA`` response."""


class ErrorValue:
    """A runtime error inside a formula (Airtable shows ``#ERROR!``).

    It is a *value*, not an exception, because Airtable keeps evaluating: the error propagates
    through operators and functions, a filter treats it as false, and a formula field shows it.
    """

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorValue) and other.message == self.message

    def __hash__(self) -> int:
        return hash(("ErrorValue", self.message))

    def __repr__(self) -> str:
        return f"ErrorValue({self.message!r})"

    def __str__(self) -> str:
        return "#ERROR!"

    def to_json(self) -> dict[str, str]:
        """How Airtable returns an errored formula field in a record."""
        return {"error": "#ERROR!"}


@dataclass(frozen=True)
class EvalContext:
    """Everything a formula may look at while evaluating against one record."""

    fields: Mapping[str, Any]
    """Field name → stored JSON value; a missing name is blank."""
    record_id: str
    created_time: datetime
    """Aware UTC."""
    now: datetime
    """Aware UTC; ``NOW()``/``TODAY()`` read it so a listing sees one instant."""
    field_types: Mapping[str, str] = field(default_factory=dict)
    """Field name → Airtable type; ``dateTime``/``date`` values are read as datetimes."""
    last_modified_time: datetime | None = None
    computed: Mapping[str, Callable[[EvalContext], Any]] = field(default_factory=dict)
    """Formula fields evaluated lazily by name when a formula references them."""


Evaluator = Callable[[EvalContext], Any]


class Formula:
    """A compiled formula: evaluate it against any number of records."""

    __slots__ = ("_fn", "field_refs", "text")

    def __init__(self, text: str, field_refs: frozenset[str], fn: Evaluator) -> None:
        self.text = text
        self.field_refs = field_refs
        self._fn = fn

    def evaluate(self, ctx: EvalContext) -> Any:
        """The formula's value for one record (never raises; runtime errors are
        :class:`ErrorValue`).  Datetimes come back as ``datetime``: see :func:`to_json_value`."""
        try:
            return self._fn(ctx)
        except RecursionError:  # a pathological computed-field chain; keep the server alive
            return ErrorValue("formula too deeply nested")

    def matches(self, ctx: EvalContext) -> bool:
        """Whether a record passes this formula used as ``filterByFormula``."""
        return is_truthy(self.evaluate(ctx))

    def evaluate_json(self, ctx: EvalContext) -> Any:
        """The value as a formula field shows it in a record (JSON-ready)."""
        return to_json_value(self.evaluate(ctx))

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"


def compile_formula(text: str, *, known_fields: Collection[str] | None = None) -> Formula:
    """Compile ``text``; raise :class:`FormulaError` if it is not a valid formula.

    With ``known_fields``, a reference to any other field is an error too (Airtable rejects
    a filter naming a field the table lacks).
    """
    if not isinstance(text, str):
        raise FormulaError(f"Invalid formula: expected text, got {type(text).__name__}")
    formula = _compile_cached(text)
    if known_fields is not None:
        unknown = sorted(formula.field_refs.difference(known_fields))
        if unknown:
            raise FormulaError(f"Invalid formula: Unknown field names: {', '.join(unknown)}")
    return formula


def is_truthy(value: Any) -> bool:
    """Airtable's truthiness in a filter: blank, 0, ``""``, FALSE, empty list, NaN and errors
    are false; everything else (any other text, number, datetime, non-empty list) is true."""
    if value is None or value is False or type(value) is ErrorValue:
        return False
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN (x != x) is false
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def to_json_value(value: Any) -> Any:
    """Render an evaluation result as Airtable returns a formula field in JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)  # Airtable shows TRUE()/FALSE() results as 1/0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"specialValue": "NaN"}
        if math.isinf(value):
            return {"specialValue": "Infinity" if value > 0 else "-Infinity"}
        return _norm_num(value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, ErrorValue):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


# =============================================================================================
# Lexer
# =============================================================================================

_NUMBER_RE: Final = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DIGITS: Final = frozenset("0123456789")
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}
_TWO_CHAR_OPS: Final = ("!=", "<=", ">=")
_ONE_CHAR_OPS: Final = frozenset("=<>&+-*/(),")

TokenKind = Literal["num", "str", "field", "ident", "op", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    value: Any
    pos: int


def _fail(text: str, pos: int, detail: str) -> FormulaError:
    snippet = text[max(0, pos - 30) : pos + 30]
    return FormulaError(f"Invalid formula: {detail} at position {pos}: {snippet!r}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            value, i2 = _scan_string(text, i)
            tokens.append(_Token("str", value, i))
            i = i2
        elif ch == "{":
            name, i2 = _scan_field(text, i)
            tokens.append(_Token("field", name, i))
            i = i2
        elif ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            assert m is not None  # the first character is a digit or ".digit"
            raw = m.group()
            if m.end() < n and (text[m.end()].isalnum() or text[m.end()] in "_."):
                raise _fail(text, i, f"malformed number {text[i : m.end() + 1]!r}")
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(_Token("num", number, i))
            i = m.end()
        elif ch.isalpha() or ch == "_":
            m = _IDENT_RE.match(text, i)
            if m is None:  # a non-ASCII letter: Airtable wants such names in braces
                raise _fail(text, i, f"unexpected character {ch!r} (field names need {{braces}})")
            tokens.append(_Token("ident", m.group(), i))
            i = m.end()
        elif text.startswith(_TWO_CHAR_OPS, i):
            tokens.append(_Token("op", text[i : i + 2], i))
            i += 2
        elif ch in _ONE_CHAR_OPS:
            tokens.append(_Token("op", ch, i))
            i += 1
        else:
            raise _fail(text, i, f"unexpected character {ch!r}")
    tokens.append(_Token("end", None, n))
    return tokens


def _scan_string(text: str, start: int) -> tuple[str, int]:
    quote_char = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            # Unknown escapes keep the character (JavaScript's rule): \' \" \\ and \x → x.
            out.append(_STRING_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == quote_char:
            return "".join(out), i + 1
        else:
            out.append(ch)  # raw newlines are kept: quoted() does not escape them
            i += 1
    raise _fail(text, start, "unterminated string literal")


def _scan_field(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "}\\":
            out.append(text[i + 1])
            i += 2
        elif ch == "}":
            if not out:
                raise _fail(text, start, "empty field reference {}")
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise _fail(text, start, "unterminated field reference (missing '}')")


# =============================================================================================
# Parser → AST
# =============================================================================================


@dataclass(frozen=True, slots=True)
class _Lit:
    value: Any


@dataclass(frozen=True, slots=True)
class _Ref:
    name: str


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


_Node = _Lit | _Ref | _Unary | _Binary | _Call

_COMPARISON_OPS: Final = frozenset({"=", "!=", "<", ">", "<=", ">="})
_MAX_DEPTH: Final = 400  # compiled closures nest one frame per level; stay far below the limit


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.refs: set[str] = set()
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise _fail(self.text, 0, "empty formula")
        node = self.expression()
        if self.tok.kind != "end":
            raise _fail(self.text, self.tok.pos, f"unexpected {self.describe(self.tok)}")
        return node

    @staticmethod
    def describe(tok: _Token) -> str:
        if tok.kind == "end":
            return "end of formula"
        if tok.kind == "field":
            return f"field reference {{{tok.value}}}"
        if tok.kind == "str":
            return f"string {tok.value!r}"
        return repr(tok.value) if tok.kind != "ident" else f"name {tok.value!r}"

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def expect(self, op: str) -> None:
        if not self.is_op(op):
            found = self.describe(self.tok)
            raise _fail(self.text, self.tok.pos, f"expected {op!r}, found {found}")
        self.pos += 1

    def binary_level(self, ops: Collection[str], operand: Callable[[], _Node]) -> _Node:
        node = operand()
        while self.tok.kind == "op" and self.tok.value in ops:
            op = self.tok.value
            self.pos += 1
            node = _Binary(op, node, operand())
        return node

    def expression(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _fail(self.text, self.tok.pos, "formula nested too deeply")
        try:
            return self.binary_level(_COMPARISON_OPS, self.concat)
        finally:
            self.depth -= 1

    def concat(self) -> _Node:
        return self.binary_level(("&",), self.additive)

    def additive(self) -> _Node:
        return self.binary_level(("+", "-"), self.term)

    def term(self) -> _Node:
        return self.binary_level(("*", "/"), self.unary)

    def unary(self) -> _Node:
        if self.is_op("-", "+"):
            op = self.tok.value
            self.pos += 1
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _fail(self.text, self.tok.pos, "formula nested too deeply")
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if op == "-" and isinstance(operand, _Lit) and type(operand.value) in (int, float):
                return _Lit(-operand.value)  # a negative literal, not an operation per record
            return _Unary(op, operand)
        return self.primary()

    def primary(self) -> _Node:
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.pos += 1
            return _Lit(tok.value)
        if tok.kind == "field":
            self.pos += 1
            self.refs.add(tok.value)
            return _Ref(tok.value)
        if tok.kind == "ident":
            return self.call()
        if self.is_op("("):
            self.pos += 1
            node = self.expression()
            self.expect(")")
            return node
        raise _fail(self.text, tok.pos, f"expected a value, found {self.describe(tok)}")

    def call(self) -> _Node:
        tok = self.tok
        name = tok.value.upper()
        self.pos += 1
        if not self.is_op("("):
            if name in ("TRUE", "FALSE"):
                return _Lit(name == "TRUE")
            raise _fail(
                self.text,
                tok.pos,
                f"unknown name {tok.value!r} (field names need {{braces}}, functions need ())",
            )
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise _fail(self.text, tok.pos, f"unknown function {tok.value}()")
        self.pos += 1
        args: list[_Node] = []
        if not self.is_op(")"):
            args.append(self.expression())
            while self.is_op(","):
                self.pos += 1
                args.append(self.expression())
        self.expect(")")
        if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
            raise _fail(self.text, tok.pos, f"{name}() {spec.arity_text()}, got {len(args)}")
        return _Call(name, tuple(args))


# =============================================================================================
# Compiler: AST → closures
# =============================================================================================


@lru_cache(maxsize=1024)
def _compile_cached(text: str) -> Formula:
    parser = _Parser(text)
    try:
        tree = parser.parse()
        fn, _ = _compile_node(tree)
    except RecursionError:
        raise _fail(text, 0, "formula nested too deeply") from None
    return Formula(text, frozenset(parser.refs), fn)


def _const(value: Any) -> Evaluator:
    return lambda ctx: value


def _compile_node(node: _Node) -> tuple[Evaluator, bool]:
    """Compile ``node``; the flag says whether it is a constant (no field, no context), so
    calls of pure functions on constants (``DATETIME_PARSE('2025-…')``) run once, here."""
    if isinstance(node, _Lit):
        return _const(node.value), True
    if isinstance(node, _Ref):
        return _make_ref(node.name), False
    if isinstance(node, _Unary):
        operand, is_const = _compile_node(node.operand)
        fn = _make_unary(node.op, operand)
        return (_const(fn(None)), True) if is_const else (fn, False)  # type: ignore[arg-type]
    if isinstance(node, _Binary):
        left, lc = _compile_node(node.left)
        right, rc = _compile_node(node.right)
        fn = _make_binary(node.op, left, right)
        if lc and rc:
            return _const(fn(None)), True  # type: ignore[arg-type]
        return fn, False
    spec = FUNCTIONS[node.name]
    compiled = [_compile_node(a) for a in node.args]
    argfns = [c[0] for c in compiled]
    if spec.mode == "lazy":
        lazy_impl = spec.impl
        return (lambda ctx: lazy_impl(ctx, argfns)), False
    fn = _make_call(spec, argfns)
    if spec.mode == "pure" and all(c[1] for c in compiled):
        return _const(fn(None)), True  # type: ignore[arg-type]
    return fn, False


_DATE_FIELD_TYPES: Final = frozenset({"dateTime", "date", "createdTime", "lastModifiedTime"})


def _make_ref(name: str) -> Evaluator:
    def ref(ctx: EvalContext) -> Any:
        computed = ctx.computed
        if computed and name in computed:
            return _evaluate_computed(ctx, name, computed[name])
        value = ctx.fields.get(name)
        if (
            type(value) is str
            and ctx.field_types
            and ctx.field_types.get(name) in _DATE_FIELD_TYPES
        ):
            parsed = _parse_datetime_text(value)
            return value if parsed is None else parsed
        return value

    return ref


_guard = threading.local()


def _evaluate_computed(ctx: EvalContext, name: str, fn: Callable[[EvalContext], Any]) -> Any:
    # A formula field referencing itself (directly or through others) would recurse forever;
    # Airtable refuses such schemas, here it becomes an error value.  Keyed by the record's
    # field mapping so nested evaluation of *other* records stays possible.
    active: set[tuple[int, str]] | None = getattr(_guard, "active", None)
    if active is None:
        active = _guard.active = set()
    key = (id(ctx.fields), name)
    if key in active:
        return ErrorValue(f"circular reference to field {name!r}")
    active.add(key)
    try:
        return fn(ctx)
    finally:
        active.discard(key)


def _make_unary(op: str, operand: Evaluator) -> Evaluator:
    def neg(ctx: EvalContext) -> Any:
        v = operand(ctx)
        if type(v) is ErrorValue:
            return v
        try:
            return _norm_num(-_num(v)) if op == "-" else _num(v)
        except _EvalFailure as exc:
            return ErrorValue(str(exc))

    return neg


def _make_binary(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    if op == "=":

        def eq(ctx: EvalContext) -> Any:
            a, b = left(ctx), right(ctx)
            if type(a) is str and type(b) is str:  # the hot path of every filter
                return a == b
            return _equals(a, b)

        return eq
    if op == "!=":

        def ne(ctx: EvalContext) -> Any:
            a, b = left(ctx), right(ctx)
            if type(a) is str and type(b) is str:
                return a != b
            r = _equals(a, b)
            return r if type(r) is ErrorValue else not r

        return ne
    if op in _ORDERINGS:
        cmp = _ORDERINGS[op]

        def order(ctx: EvalContext) -> Any:
            return _ordered(cmp, left(ctx), right(ctx))

        return order
    if op == "&":

        def concat(ctx: EvalContext) -> Any:
            a, b = left(ctx), right(ctx)
            if type(a) is ErrorValue:
                return a
            if type(b) is ErrorValue:
                return b
            return _to_str(a) + _to_str(b)

        return concat
    arith = _ARITHMETIC[op]

    def arithmetic(ctx: EvalContext) -> Any:
        a, b = left(ctx), right(ctx)
        if type(a) is ErrorValue:
            return a
        if type(b) is ErrorValue:
            return b
        try:
            return arith(_num(a), _num(b))
        except _EvalFailure as exc:
            return ErrorValue(str(exc))

    return arithmetic


def _make_call(spec: _Function, argfns: Sequence[Evaluator]) -> Evaluator:
    impl = spec.impl
    wants_ctx = spec.mode == "ctx"
    argfns = tuple(argfns)

    def call(ctx: EvalContext) -> Any:
        values = [f(ctx) for f in argfns]
        for v in values:
            if type(v) is ErrorValue:
                return v
        try:
            return impl(ctx, *values) if wants_ctx else impl(*values)
        except (_EvalFailure, ArithmeticError, ValueError) as exc:
            # Bad data in a record is Airtable's #ERROR!, never a server error.
            return ErrorValue(f"{spec.name}(): {exc}")

    return call


# =============================================================================================
# Coercions and operators
# =============================================================================================


class _EvalFailure(Exception):
    """Raised inside operators/functions; turned into an :class:`ErrorValue`."""


_NUMERIC_TEXT_RE: Final = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")


def _norm_num(x: float | int) -> float | int:
    """Integral floats become ints, so ``4 / 2`` is ``2`` (JSON ``2``, text ``"2"``)."""
    if type(x) is float and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def _text_number(text: str) -> int | float | None:
    if not _NUMERIC_TEXT_RE.fullmatch(text):
        return None
    value = float(text)
    return _norm_num(value)


def _num(v: Any) -> int | float:
    """Coerce to a number for arithmetic: blank and ``""`` are 0, booleans 1/0."""
    if v is None:
        return 0
    if isinstance(v, int | float):  # bool is an int: TRUE() is 1
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, str):
        if not v.strip():
            return 0
        n = _text_number(v)
        if n is None:
            raise _EvalFailure(f"{v!r} is not a number")
        return n
    if isinstance(v, list) and len(v) <= 1:
        return _num(v[0]) if v else 0
    raise _EvalFailure(f"{_to_str(v)!r} is not a number")


def _int_arg(v: Any) -> int:
    return int(_num(v))


def _format_number(x: float | int) -> str:
    x = _norm_num(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def _to_str(v: Any) -> str:
    """Text form of a value, as ``&`` and text functions see it."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int | float):
        return _format_number(v)
    if isinstance(v, datetime):
        return _iso(v)
    if isinstance(v, list | tuple):
        return ", ".join(_to_str(x) for x in v)  # how Airtable shows a multi-select
    if isinstance(v, dict):
        # Collaborators, attachments, special values: their readable part.
        for key in ("name", "filename", "email", "url", "specialValue"):
            if key in v:
                return _to_str(v[key])
        return ""
    return str(v)


def _iso(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Bring two values to one kind for comparison, or ``None`` if they cannot be compared.
    See the module docstring for the rules."""
    if isinstance(a, bool):
        a = int(a)
    if isinstance(b, bool):
        b = int(b)
    if isinstance(a, list | tuple | dict):
        a = _to_str(a)
    if isinstance(b, list | tuple | dict):
        b = _to_str(b)
    ta, tb = type(a), type(b)
    if ta is tb or (ta in (int, float) and tb in (int, float)):
        return (a, b) if a is not None else ("", "")
    if a is None:
        a = _blank_like(b)
        return None if a is None else (a, b)
    if b is None:
        b = _blank_like(a)
        return None if b is None else (a, b)
    if ta is str and tb in (int, float):
        n = _text_number(a)
        return (n, b) if n is not None else (a, _format_number(b))
    if tb is str and ta in (int, float):
        n = _text_number(b)
        return (a, n) if n is not None else (_format_number(a), b)
    if ta is datetime and tb is str:
        parsed = _parse_datetime_text(b)
        return (a, parsed) if parsed is not None else (_iso(a), b)
    if tb is datetime and ta is str:
        parsed = _parse_datetime_text(a)
        return (parsed, b) if parsed is not None else (a, _iso(b))
    return None


def _blank_like(other: Any) -> Any:
    # Blank is "" next to text and 0 next to a number (Airtable: {Empty} = 0 is true);
    # it has no datetime form, so a blank date is neither equal to nor ordered with a date.
    if isinstance(other, str):
        return ""
    if isinstance(other, int | float):
        return 0
    return None


def _equals(a: Any, b: Any) -> Any:
    if type(a) is ErrorValue:
        return a
    if type(b) is ErrorValue:
        return b
    pair = _comparable(a, b)
    return pair is not None and pair[0] == pair[1]


def _ordered(cmp: Callable[[Any, Any], bool], a: Any, b: Any) -> Any:
    if type(a) is ErrorValue:
        return a
    if type(b) is ErrorValue:
        return b
    pair = _comparable(a, b)
    return pair is not None and cmp(pair[0], pair[1])


_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _divide(a: float | int, b: float | int) -> float | int:
    if b == 0:
        raise _EvalFailure("division by zero")
    return _norm_num(a / b)


_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": lambda a, b: _norm_num(a + b),
    "-": lambda a, b: _norm_num(a - b),
    "*": lambda a, b: _norm_num(a * b),
    "/": _divide,
}


# =============================================================================================
# Datetimes
# =============================================================================================

_FALLBACK_DATE_FORMATS: Final = (
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
)


@lru_cache(maxsize=16384)
def _parse_datetime_text(text: str) -> datetime | None:
    """ISO-8601 (``…Z``, offsets, date-only = midnight UTC, naive = UTC) plus a few common
    non-ISO shapes; ``None`` when the text is not a datetime.  Cached: a listing parses the
    same stored timestamps for every filter page."""
    s = text.strip()
    if not s or not s[0].isalnum():
        return None
    iso = s[:-1] + "+00:00" if s[-1] in "zZ" else s
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        for fmt in _FALLBACK_DATE_FORMATS:
            try:
                parsed = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _to_dt(v: Any) -> datetime | None:
    """A date argument: ``None`` for blank, an error for anything that is not a date."""
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    if isinstance(v, list) and len(v) == 1:
        return _to_dt(v[0])
    if isinstance(v, str):
        parsed = _parse_datetime_text(v)
        if parsed is not None:
            return parsed
    raise _EvalFailure(f"{_to_str(v)!r} is not a date")


_UNIT_ALIASES: Final = {
    "ms": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "s": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "week": "w",
    "weeks": "w",
    "M": "M",
    "month": "M",
    "months": "M",
    "Q": "Q",
    "quarter": "Q",
    "quarters": "Q",
    "y": "y",
    "year": "y",
    "years": "y",
}
_UNIT_MICROSECONDS: Final = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}


def _unit(v: Any) -> str:
    text = _to_str(v).strip()
    # 'M' (months) and 'm' (minutes) differ only by case, so exact spellings win first.
    unit = _UNIT_ALIASES.get(text) or _UNIT_ALIASES.get(text.lower())
    if unit is None:
        raise _EvalFailure(f"unknown unit {text!r}")
    return unit


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    # Clamp the day (Jan 31 + 1 month = Feb 28/29), like moment.js.
    next_month = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return dt.replace(year=year, month=month, day=min(dt.day, last_day))


def _month_diff(d1: datetime, d2: datetime) -> int:
    """Whole months from d2 to d1, truncated toward zero (moment's ``diff(…, 'months')``)."""
    months = (d1.year - d2.year) * 12 + (d1.month - d2.month)
    if months > 0 and _add_months(d2, months) > d1:
        months -= 1
    elif months < 0 and _add_months(d2, months) < d1:
        months += 1
    elif months == 0:
        return 0
    return months


def _datetime_diff(a: Any, b: Any, unit: Any = "seconds") -> int | None:
    d1, d2 = _to_dt(a), _to_dt(b)
    if d1 is None or d2 is None:
        return None
    u = _unit(unit)
    if u in _UNIT_MICROSECONDS:
        delta = d1 - d2
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return _trunc_div(micros, _UNIT_MICROSECONDS[u])
    months = _month_diff(d1, d2)
    return {"M": months, "Q": int(months / 3), "y": int(months / 12)}[u]


def _dateadd(v: Any, count: Any, unit: Any) -> datetime | None:
    dt = _to_dt(v)
    if dt is None:
        return None
    n = _num(count)
    u = _unit(unit)
    if u in _UNIT_MICROSECONDS:
        return dt + timedelta(microseconds=n * _UNIT_MICROSECONDS[u])
    months = round(n) * {"M": 1, "Q": 3, "y": 12}[u]
    return _add_months(dt, months)


def _truncate(dt: datetime, unit: str) -> tuple[int, ...]:
    dt = dt.astimezone(UTC)
    if unit == "w":
        start = dt.date() - timedelta(days=(dt.weekday() + 1) % 7)  # weeks start on Sunday
        return (start.toordinal(),)
    if unit == "Q":
        return (dt.year, (dt.month - 1) // 3)
    fields = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond // 1000)
    depth = {"y": 1, "M": 2, "d": 3, "h": 4, "m": 5, "s": 6, "ms": 7}[unit]
    return fields[:depth]


def _is_same(a: Any, b: Any, unit: Any = None) -> bool | None:
    d1, d2 = _to_dt(a), _to_dt(b)
    if d1 is None or d2 is None:
        return None
    if unit is None or unit == "":
        return d1 == d2
    u = _unit(unit)
    return _truncate(d1, u) == _truncate(d2, u)


def _is_before(a: Any, b: Any) -> bool | None:
    d1, d2 = _to_dt(a), _to_dt(b)
    return None if d1 is None or d2 is None else d1 < d2


def _is_after(a: Any, b: Any) -> bool | None:
    d1, d2 = _to_dt(a), _to_dt(b)
    return None if d1 is None or d2 is None else d1 > d2


def _date_part(getter: Callable[[datetime], int]) -> Callable[[Any], int | None]:
    def part(v: Any) -> int | None:
        dt = _to_dt(v)
        return None if dt is None else getter(dt)

    return part


def _week_start_offset(start_day: Any) -> int:
    text = _to_str(start_day).strip().lower() if start_day is not None else "sunday"
    if text in ("", "sunday"):
        return 1
    if text == "monday":
        return 0
    raise _EvalFailure(f"week start must be 'Sunday' or 'Monday', not {text!r}")


def _weekday(v: Any, start_day: Any = None) -> int | None:
    dt = _to_dt(v)
    if dt is None:
        return None
    return (dt.weekday() + _week_start_offset(start_day)) % 7  # 0 = the week's first day


def _weeknum(v: Any, start_day: Any = None) -> int | None:
    dt = _to_dt(v)
    if dt is None:
        return None
    offset = _week_start_offset(start_day)
    jan1 = date(dt.year, 1, 1)
    first_weekday = (jan1.weekday() + offset) % 7
    return (dt.timetuple().tm_yday - 1 + first_weekday) // 7 + 1


def _holidays(v: Any) -> set[date]:
    if v is None or v == "":
        return set()
    days: set[date] = set()
    for part in _to_str(v).split(","):
        dt = _to_dt(part.strip())
        if dt is not None:
            days.add(dt.date())
    return days


def _workday(start: Any, count: Any, holidays: Any = None) -> datetime | None:
    dt = _to_dt(start)
    if dt is None:
        return None
    n, skip = _int_arg(count), _holidays(holidays)
    step = 1 if n >= 0 else -1
    day = dt.date()
    remaining = abs(n)
    while remaining:
        day += timedelta(days=step)
        if day.weekday() < 5 and day not in skip:
            remaining -= 1
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _workday_diff(start: Any, end: Any, holidays: Any = None) -> int | None:
    d1, d2 = _to_dt(start), _to_dt(end)
    if d1 is None or d2 is None:
        return None
    skip = _holidays(holidays)
    a, b = sorted((d1.date(), d2.date()))
    count = sum(
        1
        for i in range((b - a).days + 1)
        if (day := a + timedelta(days=i)).weekday() < 5 and day not in skip
    )  # inclusive of both ends, like NETWORKDAYS
    return count if d2 >= d1 else -count


# -- moment.js-style formats (DATETIME_FORMAT / DATETIME_PARSE) -------------------------------

_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MOMENT_TOKEN_RE: Final = re.compile(
    r"\[[^\]]*\]|LTS|LT|LLLL|LLL|LL|L|YYYY|YY|Q|MMMM|MMM|MM|M|Do|DDDD|DDD|DD|D|dddd|ddd|dd|d|E|e"
    r"|HH|H|hh|h|kk|k|mm|m|ss|s|SSS|SS|S|A|a|ZZ|Z|X|x|WW|W|ww|w|.",
    re.DOTALL,
)
_LOCALIZED: Final = {
    "LT": "h:mm A",
    "LTS": "h:mm:ss A",
    "L": "MM/DD/YYYY",
    "LL": "MMMM D, YYYY",
    "LLL": "MMMM D, YYYY h:mm A",
    "LLLL": "dddd, MMMM D, YYYY h:mm A",
}
_DEFAULT_FORMAT: Final = "YYYY-MM-DDTHH:mm:ss.SSSZ"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _offset(dt: datetime, colon: bool) -> str:
    off = dt.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}" if colon else f"{sign}{h:02d}{m:02d}"


_FORMATTERS: Final[dict[str, Callable[[datetime], str]]] = {
    "YYYY": lambda d: f"{d.year:04d}",
    "YY": lambda d: f"{d.year % 100:02d}",
    "Q": lambda d: str((d.month - 1) // 3 + 1),
    "MMMM": lambda d: _MONTHS[d.month - 1],
    "MMM": lambda d: _MONTHS[d.month - 1][:3],
    "MM": lambda d: f"{d.month:02d}",
    "M": lambda d: str(d.month),
    "Do": lambda d: _ordinal(d.day),
    "DDDD": lambda d: f"{d.timetuple().tm_yday:03d}",
    "DDD": lambda d: str(d.timetuple().tm_yday),
    "DD": lambda d: f"{d.day:02d}",
    "D": lambda d: str(d.day),
    "dddd": lambda d: _DAYS[d.weekday()],
    "ddd": lambda d: _DAYS[d.weekday()][:3],
    "dd": lambda d: _DAYS[d.weekday()][:2],
    "d": lambda d: str((d.weekday() + 1) % 7),
    "e": lambda d: str((d.weekday() + 1) % 7),
    "E": lambda d: str(d.isoweekday()),
    "HH": lambda d: f"{d.hour:02d}",
    "H": lambda d: str(d.hour),
    "hh": lambda d: f"{(d.hour % 12) or 12:02d}",
    "h": lambda d: str((d.hour % 12) or 12),
    "kk": lambda d: f"{d.hour or 24:02d}",
    "k": lambda d: str(d.hour or 24),
    "mm": lambda d: f"{d.minute:02d}",
    "m": lambda d: str(d.minute),
    "ss": lambda d: f"{d.second:02d}",
    "s": lambda d: str(d.second),
    "SSS": lambda d: f"{d.microsecond // 1000:03d}",
    "SS": lambda d: f"{d.microsecond // 10000:02d}",
    "S": lambda d: str(d.microsecond // 100000),
    "A": lambda d: "AM" if d.hour < 12 else "PM",
    "a": lambda d: "am" if d.hour < 12 else "pm",
    "ZZ": lambda d: _offset(d, colon=False),
    "Z": lambda d: _offset(d, colon=True),
    "X": lambda d: str(int(d.timestamp())),
    "x": lambda d: str(int(d.timestamp() * 1000)),
    "WW": lambda d: f"{d.isocalendar()[1]:02d}",
    "W": lambda d: str(d.isocalendar()[1]),
    "ww": lambda d: f"{_weeknum(d) or 0:02d}",
    "w": lambda d: str(_weeknum(d) or 0),
}


def _moment_tokens(fmt: str) -> list[str]:
    """Tokens of a moment.js format, localized shorthands (``LL``…) expanded."""
    tokens: list[str] = []
    for token in _MOMENT_TOKEN_RE.findall(fmt):
        if token in _LOCALIZED:
            tokens.extend(_MOMENT_TOKEN_RE.findall(_LOCALIZED[token]))
        else:
            tokens.append(token)
    return tokens


def _format_moment(dt: datetime, fmt: str) -> str:
    out: list[str] = []
    for token in _moment_tokens(fmt):
        if token.startswith("[") and token.endswith("]") and len(token) >= 2:
            out.append(token[1:-1])
        else:
            formatter = _FORMATTERS.get(token)
            out.append(formatter(dt) if formatter else token)
    return "".join(out)


def _datetime_format(v: Any, fmt: Any = None) -> str | None:
    dt = _to_dt(v)
    if dt is None:
        return None
    text = _to_str(fmt) if fmt is not None else ""
    if not text or text == _DEFAULT_FORMAT:
        return _iso(dt)  # Airtable's default output: 2025-09-30T14:15:22.000Z
    # Formatting happens in the value's own zone: UTC unless SET_TIMEZONE() moved it.
    return _format_moment(dt, text)


_MONTH_PATTERN: Final = "|".join([*_MONTHS, *(m[:3] for m in _MONTHS)])
_DAY_PATTERN: Final = "|".join([*_DAYS, *(d[:3] for d in _DAYS), *(d[:2] for d in _DAYS)])
_PARSE_PATTERNS: Final = {
    "YYYY": r"[+-]?\d{4,6}",
    "YY": r"\d{2}",
    "Q": r"[1-4]",
    "MMMM": _MONTH_PATTERN,
    "MMM": _MONTH_PATTERN,
    "MM": r"\d{1,2}",
    "M": r"\d{1,2}",
    "Do": r"\d{1,2}(?:st|nd|rd|th)",
    "DDDD": r"\d{1,3}",
    "DDD": r"\d{1,3}",
    "DD": r"\d{1,2}",
    "D": r"\d{1,2}",
    "dddd": _DAY_PATTERN,
    "ddd": _DAY_PATTERN,
    "dd": _DAY_PATTERN,
    "d": r"\d",
    "e": r"\d",
    "E": r"\d",
    "HH": r"\d{1,2}",
    "H": r"\d{1,2}",
    "hh": r"\d{1,2}",
    "h": r"\d{1,2}",
    "kk": r"\d{1,2}",
    "k": r"\d{1,2}",
    "mm": r"\d{1,2}",
    "m": r"\d{1,2}",
    "ss": r"\d{1,2}",
    "s": r"\d{1,2}",
    "SSS": r"\d+",
    "SS": r"\d+",
    "S": r"\d+",
    "A": r"[AaPp]\.?[Mm]\.?",
    "a": r"[AaPp]\.?[Mm]\.?",
    "ZZ": r"Z|[+-]\d{2}:?\d{2}",
    "Z": r"Z|[+-]\d{2}:?\d{2}",
    "X": r"-?\d+(?:\.\d+)?",
    "x": r"-?\d+",
    "WW": r"\d{1,2}",
    "W": r"\d{1,2}",
    "ww": r"\d{1,2}",
    "w": r"\d{1,2}",
}


@lru_cache(maxsize=256)
def _moment_parser(fmt: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    parts: list[str] = []
    names: list[str] = []
    for token in _moment_tokens(fmt):
        if token in _PARSE_PATTERNS:
            parts.append(f"(?P<g{len(names)}>{_PARSE_PATTERNS[token]})")
            names.append(token)
        elif token.startswith("[") and token.endswith("]") and len(token) >= 2:
            parts.append(re.escape(token[1:-1]))
        elif token.isalnum():
            parts.append(re.escape(token))
        else:
            # moment's forgiving parser: any run of separators stands for any other.
            parts.append(r"[^0-9A-Za-z]*")
    return re.compile("".join(parts), re.IGNORECASE), tuple(names)


def _parse_moment(text: str, fmt: str) -> datetime:
    pattern, names = _moment_parser(fmt)
    m = pattern.match(text.strip())
    if m is None:
        raise _EvalFailure(f"{text!r} does not match format {fmt!r}")
    year, month, day, hour, minute, second, micro = 1970, 1, 1, 0, 0, 0, 0
    pm: bool | None = None
    tz: timedelta | None = None
    for i, token in enumerate(names):
        raw = m.group(f"g{i}")
        if token == "YYYY":
            year = int(raw)
        elif token == "YY":
            year = 2000 + int(raw) if int(raw) < 69 else 1900 + int(raw)  # moment's pivot
        elif token in ("MM", "M"):
            month = int(raw)
        elif token in ("MMMM", "MMM"):
            month = [n[:3].lower() for n in _MONTHS].index(raw[:3].lower()) + 1
        elif token in ("DD", "D", "Do"):
            day = int(re.sub(r"\D", "", raw))
        elif token in ("HH", "H", "hh", "h", "kk", "k"):
            hour = int(raw) % 24
        elif token in ("mm", "m"):
            minute = int(raw)
        elif token in ("ss", "s"):
            second = int(raw)
        elif token in ("SSS", "SS", "S"):
            micro = int((raw + "000000")[:6])
        elif token in ("A", "a"):
            pm = raw[0].lower() == "p"
        elif token in ("ZZ", "Z"):
            if raw.upper() == "Z":
                tz = timedelta(0)
            else:
                digits = raw[1:].replace(":", "")
                tz = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                tz = -tz if raw[0] == "-" else tz
        elif token == "X":
            return datetime.fromtimestamp(float(raw), UTC)
        elif token == "x":
            return datetime.fromtimestamp(int(raw) / 1000, UTC)
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    try:
        naive = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise _EvalFailure(f"{text!r} is not a valid date: {exc}") from None
    # Without an explicit offset the text is read as UTC (the API evaluates in GMT).
    return (naive - (tz or timedelta(0))).replace(tzinfo=UTC)


def _datetime_parse(v: Any, fmt: Any = None, locale: Any = None) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if v is None or v == "":
        return None
    text = _to_str(v)
    if fmt is not None and _to_str(fmt).strip() and _to_str(fmt).strip().upper() != "ISO":
        return _parse_moment(text, _to_str(fmt))
    return _to_dt(text)


def _set_timezone(v: Any, tz: Any) -> datetime | None:
    dt = _to_dt(v)
    if dt is None:
        return None
    try:
        return dt.astimezone(ZoneInfo(_to_str(tz).strip()))
    except (ZoneInfoNotFoundError, ValueError):
        raise _EvalFailure(f"unknown time zone {_to_str(tz)!r}") from None


# =============================================================================================
# Numbers
# =============================================================================================


def _decimal(v: Any) -> Decimal:
    x = _num(v)
    if isinstance(x, float) and not math.isfinite(x):
        raise _EvalFailure("not a finite number")
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _from_decimal(d: Decimal) -> int | float:
    return _norm_num(float(d)) if d != d.to_integral_value() else int(d)


def _round(v: Any, precision: Any = 0) -> int | float:
    # Airtable breaks ties toward +infinity (ROUND(-2.5, 0) = -2), not away from zero.
    p = _int_arg(precision)
    shifted = _decimal(v).scaleb(p) + Decimal("0.5")
    return _from_decimal(shifted.to_integral_value(rounding=ROUND_FLOOR).scaleb(-p))


def _round_mode(mode: str) -> Callable[[Any, Any], int | float]:
    def rounder(v: Any, precision: Any = 0) -> int | float:
        p = _int_arg(precision)
        shifted = _decimal(v).scaleb(p)
        return _from_decimal(shifted.to_integral_value(rounding=mode).scaleb(-p))

    return rounder


def _multiple(v: Any, significance: Any, rounding: Callable[[float], int]) -> int | float:
    x, sig = _num(v), _num(significance) if significance is not None else 1
    if sig == 0:
        return 0
    return _norm_num(rounding(x / sig) * sig)


def _even_odd(v: Any, odd: bool) -> int:
    x = _num(v)
    sign = -1 if x < 0 else 1
    n = math.ceil(abs(x))  # away from zero
    if (n % 2 == 1) != odd:
        n += 1
    return sign * n


def _mod(a: Any, b: Any) -> int | float:
    x, y = _num(a), _num(b)
    if y == 0:
        raise _EvalFailure("division by zero")
    return _norm_num(math.fmod(x, y))  # sign of the dividend, like JavaScript's %


def _power(a: Any, b: Any) -> int | float:
    result = _num(a) ** _num(b)
    if isinstance(result, complex):
        raise _EvalFailure("result is not a real number")
    return _norm_num(result)


def _sqrt(v: Any) -> int | float:
    x = _num(v)
    if x < 0:
        raise _EvalFailure("square root of a negative number")
    return _norm_num(math.sqrt(x))


def _log(v: Any, base: Any = 10) -> int | float:
    x, b = _num(v), _num(base)
    if x <= 0 or b <= 0 or b == 1:
        raise _EvalFailure("logarithm of a non-positive number or base")
    return _norm_num(math.log(x, b))


def _flatten(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list | tuple):
            out.extend(_flatten(v))
        else:
            out.append(v)
    return out


def _numbers(values: Sequence[Any]) -> list[int | float]:
    """The numeric items of (flattened) arguments; blanks and non-numeric text are skipped."""
    nums: list[int | float] = []
    for v in _flatten(values):
        if isinstance(v, bool):
            nums.append(int(v))
        elif isinstance(v, int | float):
            nums.append(v)
        elif isinstance(v, str) and (n := _text_number(v)) is not None:
            nums.append(n)
    return nums


def _sum(*values: Any) -> int | float:
    return _norm_num(sum(_numbers(values)))


def _max(*values: Any) -> int | float:
    nums = _numbers(values)
    return max(nums) if nums else 0


def _min(*values: Any) -> int | float:
    nums = _numbers(values)
    return min(nums) if nums else 0


def _average(*values: Any) -> int | float:
    nums = _numbers(values)
    if not nums:
        raise _EvalFailure("division by zero")
    return _norm_num(sum(nums) / len(nums))


def _count(*values: Any) -> int:
    return sum(
        1 for v in _flatten(values) if isinstance(v, int | float) and not isinstance(v, bool)
    )


def _counta(*values: Any) -> int:
    return sum(1 for v in _flatten(values) if v is not None and v != "")


def _countall(*values: Any) -> int:
    return len(_flatten(values))


def _value(v: Any) -> int | float:
    if isinstance(v, int | float):
        return _num(v)
    text = _to_str(v).strip()
    percent = text.endswith("%")
    # VALUE('$1,000') = 1000: currency symbols, grouping and spaces are ignored.
    cleaned = re.sub(r"[^0-9.eE+-]", "", text)
    n = _text_number(cleaned) if cleaned else None
    if n is None:
        raise _EvalFailure(f"{text!r} is not a number")
    return _norm_num(n / 100) if percent else n


# =============================================================================================
# Text
# =============================================================================================


def _find(needle: Any, haystack: Any, start: Any = None) -> int:
    # startFromPosition is 1-based like the result (0 and 1 both mean "from the start").
    offset = max(_int_arg(start) - 1, 0) if start is not None else 0
    return _to_str(haystack).find(_to_str(needle), offset) + 1


def _search(needle: Any, haystack: Any, start: Any = None) -> int | None:
    position = _find(needle, haystack, start)
    return position or None  # Airtable: blank, not 0, when absent


def _left(s: Any, n: Any) -> str:
    return _to_str(s)[: max(_int_arg(n), 0)]


def _right(s: Any, n: Any) -> str:
    count = _int_arg(n)
    return _to_str(s)[-count:] if count > 0 else ""


def _mid(s: Any, start: Any, count: Any) -> str:
    begin = max(_int_arg(start) - 1, 0)
    return _to_str(s)[begin : begin + max(_int_arg(count), 0)]


def _replace(s: Any, start: Any, count: Any, replacement: Any) -> str:
    text = _to_str(s)
    begin = max(_int_arg(start) - 1, 0)
    return text[:begin] + _to_str(replacement) + text[begin + max(_int_arg(count), 0) :]


def _substitute(s: Any, old: Any, new: Any, index: Any = None) -> str:
    text, old_text, new_text = _to_str(s), _to_str(old), _to_str(new)
    if not old_text:
        return text
    if index is None:
        return text.replace(old_text, new_text)
    nth = _int_arg(index)
    position = -1
    for _ in range(max(nth, 1)):
        position = text.find(old_text, position + 1)
        if position < 0:
            return text
    return text[:position] + new_text + text[position + len(old_text) :]


def _rept(s: Any, n: Any) -> str:
    count = _int_arg(n)
    if count < 0:
        raise _EvalFailure("negative repeat count")
    return _to_str(s) * count


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _EvalFailure(f"invalid regular expression {pattern!r}: {exc}") from None


def _regex_match(s: Any, pattern: Any) -> bool:
    return _regex(_to_str(pattern)).search(_to_str(s)) is not None


def _regex_extract(s: Any, pattern: Any) -> str:
    m = _regex(_to_str(pattern)).search(_to_str(s))
    if m is None:
        raise _EvalFailure("no match")  # Airtable shows #ERROR! when nothing matches
    return m.group(0)


def _regex_replace(s: Any, pattern: Any, replacement: Any) -> str:
    # RE2 replacements name groups $1; Python's re wants \g<1> and treats \ specially.
    repl = _to_str(replacement).replace("\\", "\\\\")
    repl = re.sub(r"\$(\d+)", r"\\g<\1>", repl)
    return _regex(_to_str(pattern)).sub(repl, _to_str(s))


def _encode_url_component(s: Any) -> str:
    return quote(_to_str(s), safe="-_.!~*'()")  # JavaScript's encodeURIComponent


def _t(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _array_unique(values: Any) -> list[Any]:
    seen: list[Any] = []
    for v in _flatten([values]):
        if v not in seen:
            seen.append(v)
    return seen


# =============================================================================================
# Logic and context
# =============================================================================================


def _and(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    for f in args:
        v = f(ctx)
        if type(v) is ErrorValue:
            return v
        if not is_truthy(v):
            return False
    return True


def _or(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    for f in args:
        v = f(ctx)
        if type(v) is ErrorValue:
            return v
        if is_truthy(v):
            return True
    return False


def _if(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    cond = args[0](ctx)
    if type(cond) is ErrorValue:
        return cond
    if is_truthy(cond):
        return args[1](ctx)
    return args[2](ctx) if len(args) > 2 else None


def _switch(ctx: EvalContext, args: Sequence[Evaluator]) -> Any:
    subject = args[0](ctx)
    if type(subject) is ErrorValue:
        return subject
    rest = args[1:]
    pairs, default = (rest[:-1], rest[-1]) if len(rest) % 2 else (rest, None)
    for i in range(0, len(pairs), 2):
        pattern = pairs[i](ctx)
        if type(pattern) is ErrorValue:
            return pattern
        if _equals(subject, pattern) is True:
            return pairs[i + 1](ctx)
    return default(ctx) if default is not None else None


def _iserror(ctx: EvalContext, args: Sequence[Evaluator]) -> bool:
    return type(args[0](ctx)) is ErrorValue


def _error(ctx: EvalContext, args: Sequence[Evaluator]) -> ErrorValue:
    return ErrorValue("ERROR()")


def _not(v: Any) -> bool:
    return not is_truthy(v)


def _xor(*values: Any) -> bool:
    return sum(1 for v in values if is_truthy(v)) % 2 == 1


def _today(ctx: EvalContext) -> datetime:
    now = ctx.now.astimezone(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _days_from_now(ctx: EvalContext, v: Any) -> int | None:
    # TONOW/FROMNOW: whole days between now and the date, whichever comes first.
    diff = _datetime_diff(ctx.now, v, "days")
    return None if diff is None else abs(diff)


# =============================================================================================
# Function table
# =============================================================================================

FunctionMode = Literal["pure", "ctx", "lazy"]


@dataclass(frozen=True)
class _Function:
    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    mode: FunctionMode = "pure"
    """pure: ``impl(*values)``, folded at compile time on constants; ctx: ``impl(ctx,
    *values)``; lazy: ``impl(ctx, arg_evaluators)`` (decides what to evaluate)."""

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"takes at least {self.min_args} argument(s)"
        if self.min_args == self.max_args:
            return f"takes {self.min_args} argument(s)"
        return f"takes {self.min_args} to {self.max_args} arguments"


def _fn(
    name: str,
    impl: Callable[..., Any],
    min_args: int,
    max_args: int | None = -1,
    mode: FunctionMode = "pure",
) -> tuple[str, _Function]:
    return name, _Function(name, impl, min_args, min_args if max_args == -1 else max_args, mode)


FUNCTIONS: Final[dict[str, _Function]] = dict(
    [
        # logic
        _fn("AND", _and, 1, None, "lazy"),
        _fn("OR", _or, 1, None, "lazy"),
        _fn("IF", _if, 2, 3, "lazy"),
        _fn("SWITCH", _switch, 2, None, "lazy"),
        _fn("ISERROR", _iserror, 1, 1, "lazy"),
        _fn("ERROR", _error, 0, None, "lazy"),
        _fn("NOT", _not, 1),
        _fn("XOR", _xor, 1, None),
        _fn("TRUE", lambda: True, 0),
        _fn("FALSE", lambda: False, 0),
        _fn("BLANK", lambda: None, 0),
        # record and clock
        _fn("RECORD_ID", lambda ctx: ctx.record_id, 0, 0, "ctx"),
        _fn("CREATED_TIME", lambda ctx: ctx.created_time, 0, 0, "ctx"),
        _fn(
            "LAST_MODIFIED_TIME",
            lambda ctx, *fields: ctx.last_modified_time or ctx.created_time,
            0,
            None,
            "ctx",
        ),
        _fn("NOW", lambda ctx: ctx.now, 0, 0, "ctx"),
        _fn("TODAY", _today, 0, 0, "ctx"),
        _fn("TONOW", _days_from_now, 1, 1, "ctx"),
        _fn("FROMNOW", _days_from_now, 1, 1, "ctx"),
        # text
        _fn("FIND", _find, 2, 3),
        _fn("SEARCH", _search, 2, 3),
        _fn("LOWER", lambda s: _to_str(s).lower(), 1),
        _fn("UPPER", lambda s: _to_str(s).upper(), 1),
        _fn("LEN", lambda s: len(_to_str(s)), 1),
        _fn("TRIM", lambda s: _to_str(s).strip(), 1),
        _fn("LEFT", _left, 2),
        _fn("RIGHT", _right, 2),
        _fn("MID", _mid, 3),
        _fn("REPLACE", _replace, 4),
        _fn("SUBSTITUTE", _substitute, 3, 4),
        _fn("REPT", _rept, 2),
        _fn("CONCATENATE", lambda *parts: "".join(_to_str(p) for p in parts), 1, None),
        _fn("T", _t, 1),
        _fn("ENCODE_URL_COMPONENT", _encode_url_component, 1),
        _fn("REGEX_MATCH", _regex_match, 2),
        _fn("REGEX_EXTRACT", _regex_extract, 2),
        _fn("REGEX_REPLACE", _regex_replace, 3),
        _fn("ARRAYJOIN", lambda a, sep=", ": _to_str(sep).join(map(_to_str, _flatten([a]))), 1, 2),
        _fn("ARRAYCOMPACT", lambda a: [v for v in _flatten([a]) if v is not None and v != ""], 1),
        _fn("ARRAYFLATTEN", lambda a: _flatten([a]), 1),
        _fn("ARRAYUNIQUE", _array_unique, 1),
        # numbers
        _fn("VALUE", _value, 1),
        _fn("ABS", lambda v: abs(_num(v)), 1),
        _fn("ROUND", _round, 1, 2),
        _fn("ROUNDUP", _round_mode(ROUND_UP), 1, 2),
        _fn("ROUNDDOWN", _round_mode(ROUND_DOWN), 1, 2),
        _fn("CEILING", lambda v, s=None: _multiple(v, s, math.ceil), 1, 2),
        _fn("FLOOR", lambda v, s=None: _multiple(v, s, math.floor), 1, 2),
        _fn("INT", lambda v: math.floor(_num(v)), 1),
        _fn("EVEN", lambda v: _even_odd(v, odd=False), 1),
        _fn("ODD", lambda v: _even_odd(v, odd=True), 1),
        _fn("MOD", _mod, 2),
        _fn("POWER", _power, 2),
        _fn("SQRT", _sqrt, 1),
        _fn("EXP", lambda v: _norm_num(math.exp(_num(v))), 1),
        _fn("LOG", _log, 1, 2),
        _fn("SUM", _sum, 1, None),
        _fn("MAX", _max, 1, None),
        _fn("MIN", _min, 1, None),
        _fn("AVERAGE", _average, 1, None),
        _fn("COUNT", _count, 1, None),
        _fn("COUNTA", _counta, 1, None),
        _fn("COUNTALL", _countall, 1, None),
        # dates
        _fn("DATETIME_PARSE", _datetime_parse, 1, 3),
        _fn("DATETIME_FORMAT", _datetime_format, 1, 2),
        _fn("DATETIME_DIFF", _datetime_diff, 2, 3),
        _fn("DATEADD", _dateadd, 3),
        _fn("IS_BEFORE", _is_before, 2),
        _fn("IS_AFTER", _is_after, 2),
        _fn("IS_SAME", _is_same, 2, 3),
        _fn("SET_TIMEZONE", _set_timezone, 2),
        _fn("SET_LOCALE", lambda v, locale: _to_dt(v), 2),  # English output only
        _fn("DATESTR", lambda v: _datetime_format(v, "YYYY-MM-DD"), 1),
        _fn("TIMESTR", lambda v: _datetime_format(v, "HH:mm:ss"), 1),
        _fn("YEAR", _date_part(lambda d: d.year), 1),
        _fn("MONTH", _date_part(lambda d: d.month), 1),
        _fn("DAY", _date_part(lambda d: d.day), 1),
        _fn("HOUR", _date_part(lambda d: d.hour), 1),
        _fn("MINUTE", _date_part(lambda d: d.minute), 1),
        _fn("SECOND", _date_part(lambda d: d.second), 1),
        _fn("WEEKDAY", _weekday, 1, 2),
        _fn("WEEKNUM", _weeknum, 1, 2),
        _fn("WORKDAY", _workday, 2, 3),
        _fn("WORKDAY_DIFF", _workday_diff, 2, 3),
    ]
)
"""Every supported function by upper-case name (arity checked at compile time)."""
