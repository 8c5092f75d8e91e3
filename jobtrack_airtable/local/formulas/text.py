"""Text functions: FIND/SEARCH, LEFT/RIGHT/MID, REPLACE/SUBSTITUTE, REPT, the REGEX_*
functions, ENCODE_URL_COMPONENT, T and ARRAYUNIQUE."""

from __future__ import annotations

import functools
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import re2

from .values import MAX_TEXT, _EvalFailure, _flatten, _int_arg, _to_str, check_text

# RE2 (Airtable's regular-expression syntax): linear time, no backreferences, so no pattern can
# backtrack catastrophically; memory per compiled pattern is capped too.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20
_GROUP_REF = re.compile(r"\$(\d+)|\$\$")


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
        growth = text.count(old_text) * (len(new_text) - len(old_text))
        if len(text) + growth > MAX_TEXT:
            raise _EvalFailure(f"text longer than {MAX_TEXT:,} characters")
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
    text = _to_str(s)
    if text and count > MAX_TEXT // len(text):
        raise _EvalFailure(f"text longer than {MAX_TEXT:,} characters")
    return text * count


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise _EvalFailure(f"invalid regular expression {pattern!r}: {detail}") from None


def _regex_match(s: Any, pattern: Any) -> bool:
    return _regex(_to_str(pattern)).search(_to_str(s)) is not None


def _regex_extract(s: Any, pattern: Any) -> str:
    m = _regex(_to_str(pattern)).search(_to_str(s))
    if m is None:
        raise _EvalFailure("no match")  # Airtable shows #ERROR! when nothing matches
    return str(m.group(0))


def _group(m: Any, ref: re.Match[str]) -> str:
    if ref.group(0) == "$$":
        return "$"
    try:
        return str(m.group(int(ref.group(1))) or "")
    except IndexError:
        raise _EvalFailure(f"no group {ref.group(1)} in the pattern") from None


def _regex_replace(s: Any, pattern: Any, replacement: Any) -> str:
    """Replace every match; ``$1`` names a group (RE2's syntax), ``$$`` is a dollar sign.

    Built match by match so the result can be refused as soon as it passes the text cap
    (an empty pattern matches at every position)."""
    text, template = _to_str(s), _to_str(replacement)
    out: list[str] = []
    size = 0
    last = 0
    for m in _regex(_to_str(pattern)).finditer(text):
        expanded = _GROUP_REF.sub(functools.partial(_group, m), template)
        piece = text[last : m.start()] + expanded
        size += len(piece)
        if size > MAX_TEXT:
            raise _EvalFailure(f"text longer than {MAX_TEXT:,} characters")
        out.append(piece)
        last = m.end()
    out.append(text[last:])
    return check_text("".join(out))


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
