"""Text functions: FIND/SEARCH, LEFT/RIGHT/MID, REPLACE/SUBSTITUTE, REPT, the REGEX_*
functions, ENCODE_URL_COMPONENT, T and ARRAYUNIQUE."""

from __future__ import annotations

import functools
import re
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

import re2

from .registry import Function, fn
from .values import MAX_LONG_TEXT, EvalFailure, check_text, flatten, int_arg, to_str

# RE2 (Airtable's regular-expression syntax): linear time, no backreferences, so no pattern can
# backtrack catastrophically; memory per compiled pattern is capped too.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20
_GROUP_REF = re.compile(r"\$(\d+)|\$\$")


def _find(needle: Any, haystack: Any, start: Any = None) -> int:
    # startFromPosition is 1-based like the result (0 and 1 both mean "from the start").
    offset = max(int_arg(start) - 1, 0) if start is not None else 0
    return to_str(haystack).find(to_str(needle), offset) + 1


def _search(needle: Any, haystack: Any, start: Any = None) -> int | None:
    position = _find(needle, haystack, start)
    return position or None  # Airtable: blank, not 0, when absent


def _left(s: Any, n: Any) -> str:
    return to_str(s)[: max(int_arg(n), 0)]


def _right(s: Any, n: Any) -> str:
    count = int_arg(n)
    return to_str(s)[-count:] if count > 0 else ""


def _mid(s: Any, start: Any, count: Any) -> str:
    begin = max(int_arg(start) - 1, 0)
    return to_str(s)[begin : begin + max(int_arg(count), 0)]


def _replace(s: Any, start: Any, count: Any, replacement: Any) -> str:
    text = to_str(s)
    begin = max(int_arg(start) - 1, 0)
    return text[:begin] + to_str(replacement) + text[begin + max(int_arg(count), 0) :]


def _substitute(s: Any, old: Any, new: Any, index: Any = None) -> str:
    text, old_text, new_text = to_str(s), to_str(old), to_str(new)
    if not old_text:
        return text
    if index is None:
        growth = text.count(old_text) * (len(new_text) - len(old_text))
        if len(text) + growth > MAX_LONG_TEXT:
            raise EvalFailure(f"text longer than {MAX_LONG_TEXT:,} characters")
        return text.replace(old_text, new_text)
    nth = int_arg(index)
    position = -1
    for _ in range(max(nth, 1)):
        position = text.find(old_text, position + 1)
        if position < 0:
            return text
    return text[:position] + new_text + text[position + len(old_text) :]


def _rept(s: Any, n: Any) -> str:
    count = int_arg(n)
    if count < 0:
        raise EvalFailure("negative repeat count")
    text = to_str(s)
    if text and count > MAX_LONG_TEXT // len(text):
        raise EvalFailure(f"text longer than {MAX_LONG_TEXT:,} characters")
    return text * count


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise EvalFailure(f"invalid regular expression {pattern!r}: {detail}") from None


def _regex_match(s: Any, pattern: Any) -> bool:
    return _regex(to_str(pattern)).search(to_str(s)) is not None


def _regex_extract(s: Any, pattern: Any) -> str:
    m = _regex(to_str(pattern)).search(to_str(s))
    if m is None:
        raise EvalFailure("no match")  # Airtable shows #ERROR! when nothing matches
    return str(m.group(0))


def _group(m: Any, ref: re.Match[str]) -> str:
    if ref.group(0) == "$$":
        return "$"
    try:
        return str(m.group(int(ref.group(1))) or "")
    except IndexError:
        raise EvalFailure(f"no group {ref.group(1)} in the pattern") from None


def _regex_replace(s: Any, pattern: Any, replacement: Any) -> str:
    """Replace every match; ``$1`` names a group (RE2's syntax), ``$$`` is a dollar sign.

    Built match by match so the result can be refused as soon as it passes the text cap
    (an empty pattern matches at every position)."""
    text, template = to_str(s), to_str(replacement)
    out: list[str] = []
    size = 0
    last = 0
    for m in _regex(to_str(pattern)).finditer(text):
        expanded = _GROUP_REF.sub(functools.partial(_group, m), template)
        piece = text[last : m.start()] + expanded
        size += len(piece)
        if size > MAX_LONG_TEXT:
            raise EvalFailure(f"text longer than {MAX_LONG_TEXT:,} characters")
        out.append(piece)
        last = m.end()
    out.append(text[last:])
    return check_text("".join(out))


def _encode_url_component(s: Any) -> str:
    return quote(to_str(s), safe="-_.!~*'()")  # JavaScript's encodeURIComponent


def _t(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _array_unique(values: Any) -> list[Any]:
    seen: list[Any] = []
    for v in flatten([values]):
        if v not in seen:
            seen.append(v)
    return seen


FUNCTIONS: Final[tuple[Function, ...]] = (
    fn("FIND", _find, 2, 3),
    fn("SEARCH", _search, 2, 3),
    fn("LOWER", lambda s: to_str(s).lower(), 1),
    fn("UPPER", lambda s: to_str(s).upper(), 1),
    fn("LEN", lambda s: len(to_str(s)), 1),
    fn("TRIM", lambda s: to_str(s).strip(), 1),
    fn("LEFT", _left, 2),
    fn("RIGHT", _right, 2),
    fn("MID", _mid, 3),
    fn("REPLACE", _replace, 4),
    fn("SUBSTITUTE", _substitute, 3, 4),
    fn("REPT", _rept, 2),
    fn("CONCATENATE", lambda *parts: "".join(to_str(p) for p in parts), 1, None),
    fn("T", _t, 1),
    fn("ENCODE_URL_COMPONENT", _encode_url_component, 1),
    fn("REGEX_MATCH", _regex_match, 2),
    fn("REGEX_EXTRACT", _regex_extract, 2),
    fn("REGEX_REPLACE", _regex_replace, 3),
    fn("ARRAYJOIN", lambda a, sep=", ": to_str(sep).join(map(to_str, flatten([a]))), 1, 2),
    fn("ARRAYCOMPACT", lambda a: [v for v in flatten([a]) if v is not None and v != ""], 1),
    fn("ARRAYFLATTEN", lambda a: flatten([a]), 1),
    fn("ARRAYUNIQUE", _array_unique, 1),
)
