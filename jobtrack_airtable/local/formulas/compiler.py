"""Compiler: AST → a tree of Python closures.

:func:`compile_formula` parses and compiles a formula once (cached by text) into a
:class:`Formula`, whose evaluation is a call of the closure tree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from typing import Any, Final

from .functions import FUNCTIONS
from .lexer import FormulaError, fail
from .parser import Binary, Lit, Node, Parser, Ref, Unary
from .registry import Function
from .values import (
    ARITHMETIC,
    MAX_LONG_TEXT,
    ORDERINGS,
    ErrorValue,
    EvalContext,
    EvalFailure,
    Evaluator,
    equals,
    is_truthy,
    norm_num,
    num,
    ordered,
    parse_datetime_text,
    to_json_value,
    to_str,
)


class Formula:
    """A compiled formula: evaluate it against any number of records."""

    __slots__ = ("_fn", "field_refs", "text", "tree")

    def __init__(
        self, text: str, field_refs: frozenset[str], fn: Evaluator, tree: Node | None = None
    ) -> None:
        self.text = text
        self.field_refs = field_refs
        self._fn = fn
        #: The parsed formula, so the server can answer simple filters from an index.
        self.tree = tree

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


@lru_cache(maxsize=1024)
def _compile_cached(text: str) -> Formula:
    parser = Parser(text)
    try:
        tree = parser.parse()
        fn, _ = _compile_node(tree)
    except RecursionError:
        raise fail(text, 0, "formula nested too deeply") from None
    return Formula(text, frozenset(parser.refs), fn, tree)


def _const(value: Any) -> Evaluator:
    return lambda ctx: value


def _compile_node(node: Node) -> tuple[Evaluator, bool]:
    """Compile ``node``; the flag says whether it is a constant (no field, no context), so
    calls of pure functions on constants (``DATETIME_PARSE('2025-…')``) run once, here."""
    if isinstance(node, Lit):
        return _const(node.value), True
    if isinstance(node, Ref):
        return _make_ref(node.name), False
    if isinstance(node, Unary):
        operand, is_const = _compile_node(node.operand)
        fn = _make_unary(node.op, operand)
        return (_const(fn(None)), True) if is_const else (fn, False)  # type: ignore[arg-type]
    if isinstance(node, Binary):
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
            parsed = parse_datetime_text(value)
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
            return norm_num(-num(v)) if op == "-" else num(v)
        except EvalFailure as exc:
            return ErrorValue(str(exc))

    return neg


def _make_binary(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    if op == "=":

        def eq(ctx: EvalContext) -> Any:
            a, b = left(ctx), right(ctx)
            if type(a) is str and type(b) is str:  # the hot path of every filter
                return a == b
            return equals(a, b)

        return eq
    if op == "!=":

        def ne(ctx: EvalContext) -> Any:
            a, b = left(ctx), right(ctx)
            if type(a) is str and type(b) is str:
                return a != b
            r = equals(a, b)
            return r if type(r) is ErrorValue else not r

        return ne
    if op in ORDERINGS:
        cmp = ORDERINGS[op]

        def order(ctx: EvalContext) -> Any:
            return ordered(cmp, left(ctx), right(ctx))

        return order
    if op == "&":

        def concat(ctx: EvalContext) -> Any:
            a, b = left(ctx), right(ctx)
            if type(a) is ErrorValue:
                return a
            if type(b) is ErrorValue:
                return b
            text = to_str(a) + to_str(b)
            if len(text) > MAX_LONG_TEXT:
                return ErrorValue(f"text longer than {MAX_LONG_TEXT:,} characters")
            return text

        return concat
    arith = ARITHMETIC[op]

    def arithmetic(ctx: EvalContext) -> Any:
        a, b = left(ctx), right(ctx)
        if type(a) is ErrorValue:
            return a
        if type(b) is ErrorValue:
            return b
        try:
            return arith(num(a), num(b))
        except EvalFailure as exc:
            return ErrorValue(str(exc))

    return arithmetic


def _make_call(spec: Function, argfns: Sequence[Evaluator]) -> Evaluator:
    impl = spec.impl
    wants_ctx = spec.mode == "ctx"
    argfns = tuple(argfns)

    def call(ctx: EvalContext) -> Any:
        values = [f(ctx) for f in argfns]
        for v in values:
            if type(v) is ErrorValue:
                return v
        try:
            result = impl(ctx, *values) if wants_ctx else impl(*values)
        except (EvalFailure, ArithmeticError, ValueError) as exc:
            # Bad data in a record is Airtable's #ERROR!, never a server error.
            return ErrorValue(f"{spec.name}(): {exc}")
        if type(result) is str and len(result) > MAX_LONG_TEXT:
            return ErrorValue(f"{spec.name}(): text longer than {MAX_LONG_TEXT:,} characters")
        return result

    return call
