"""The grammar: tokens → AST (literals, field references, operators, function calls).

Function names and arities are checked here, against :data:`.functions.FUNCTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

from .functions import FUNCTIONS
from .lexer import Token, fail, tokenize


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Lit | Ref | Unary | Binary | Call

_COMPARISON_OPS: Final = frozenset({"=", "!=", "<", ">", "<=", ">="})
_MAX_DEPTH: Final = 400  # compiled closures nest one frame per level; stay far below the limit


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.refs: set[str] = set()
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise fail(self.text, 0, "empty formula")
        node = self.expression()
        if self.tok.kind != "end":
            raise fail(self.text, self.tok.pos, f"unexpected {self.describe(self.tok)}")
        return node

    @staticmethod
    def describe(tok: Token) -> str:
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
            raise fail(self.text, self.tok.pos, f"expected {op!r}, found {found}")
        self.pos += 1

    def binary_level(self, ops: Collection[str], operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.tok.kind == "op" and self.tok.value in ops:
            op = self.tok.value
            self.pos += 1
            node = Binary(op, node, operand())
        return node

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise fail(self.text, self.tok.pos, "formula nested too deeply")
        try:
            return self.binary_level(_COMPARISON_OPS, self.concat)
        finally:
            self.depth -= 1

    def concat(self) -> Node:
        return self.binary_level(("&",), self.additive)

    def additive(self) -> Node:
        return self.binary_level(("+", "-"), self.term)

    def term(self) -> Node:
        return self.binary_level(("*", "/"), self.unary)

    def unary(self) -> Node:
        if self.is_op("-", "+"):
            op = self.tok.value
            self.pos += 1
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise fail(self.text, self.tok.pos, "formula nested too deeply")
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if op == "-" and isinstance(operand, Lit) and type(operand.value) in (int, float):
                return Lit(-operand.value)  # a negative literal, not an operation per record
            return Unary(op, operand)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.pos += 1
            return Lit(tok.value)
        if tok.kind == "field":
            self.pos += 1
            self.refs.add(tok.value)
            return Ref(tok.value)
        if tok.kind == "ident":
            return self.call()
        if self.is_op("("):
            self.pos += 1
            node = self.expression()
            self.expect(")")
            return node
        raise fail(self.text, tok.pos, f"expected a value, found {self.describe(tok)}")

    def call(self) -> Node:
        tok = self.tok
        name = tok.value.upper()
        self.pos += 1
        if not self.is_op("("):
            if name in ("TRUE", "FALSE"):
                return Lit(name == "TRUE")
            # Airtable reads a bare single word as a field name ({Status} may be written
            # Status); whether the table has it is checked like any reference.
            self.refs.add(tok.value)
            return Ref(tok.value)
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise fail(self.text, tok.pos, f"unknown function {tok.value}()")
        self.pos += 1
        args: list[Node] = []
        if not self.is_op(")"):
            args.append(self.expression())
            while self.is_op(","):
                self.pos += 1
                args.append(self.expression())
        self.expect(")")
        if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
            raise fail(self.text, tok.pos, f"{name}() {spec.arity_text()}, got {len(args)}")
        return Call(name, tuple(args))
