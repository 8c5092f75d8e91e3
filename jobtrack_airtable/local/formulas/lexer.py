"""Tokens of a formula, and :class:`FormulaError` for text that is not a valid formula."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal


class FormulaError(ValueError):
    """The formula cannot be compiled: syntax error, unknown function, wrong number of
    arguments, or (when ``known_fields`` is given) an unknown field.  The message is meant for
    a 422 ``INVALID_FILTER_BY_FORMULA`` response."""


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
class Token:
    kind: TokenKind
    value: Any
    pos: int


def fail(text: str, pos: int, detail: str) -> FormulaError:
    snippet = text[max(0, pos - 30) : pos + 30]
    return FormulaError(f"Invalid formula: {detail} at position {pos}: {snippet!r}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            value, i2 = _scan_string(text, i)
            tokens.append(Token("str", value, i))
            i = i2
        elif ch == "{":
            name, i2 = _scan_field(text, i)
            tokens.append(Token("field", name, i))
            i = i2
        elif ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER_RE.match(text, i)
            assert m is not None  # the first character is a digit or ".digit"
            raw = m.group()
            if m.end() < n and (text[m.end()].isalnum() or text[m.end()] in "_."):
                raise fail(text, i, f"malformed number {text[i : m.end() + 1]!r}")
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("num", number, i))
            i = m.end()
        elif ch.isalpha() or ch == "_":
            m = _IDENT_RE.match(text, i)
            if m is None:  # a non-ASCII letter: Airtable wants such names in braces
                raise fail(text, i, f"unexpected character {ch!r} (field names need {{braces}})")
            tokens.append(Token("ident", m.group(), i))
            i = m.end()
        elif text.startswith(_TWO_CHAR_OPS, i):
            tokens.append(Token("op", text[i : i + 2], i))
            i += 2
        elif ch in _ONE_CHAR_OPS:
            tokens.append(Token("op", ch, i))
            i += 1
        else:
            raise fail(text, i, f"unexpected character {ch!r}")
    tokens.append(Token("end", None, n))
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
    raise fail(text, start, "unterminated string literal")


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
                raise fail(text, start, "empty field reference {}")
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise fail(text, start, "unterminated field reference (missing '}')")
