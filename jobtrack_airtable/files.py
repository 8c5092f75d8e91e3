"""Files the library writes whole (plans, archive plans, state files): written atomically,
and read back bounded (a FIFO, a device or a 3 GB file given as a plan is refused at once).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "plan.json"
>>> write_atomically(path, "{}\\n").read_text()
'{}\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

__all__ = ["MAX_FILE_BYTES", "MAX_JSON_DEPTH", "load_json_file", "read_bounded", "write_atomically"]

#: The largest plan, state or settings file read: a real plan of 100,000 rows is ~60 MB.
MAX_FILE_BYTES = 256 * 1024 * 1024
#: The deepest JSON nesting accepted (a plan nests 6 levels; Python's parser would recurse
#: until RecursionError on a 200,000-deep document).
MAX_JSON_DEPTH = 64
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def write_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory, fsynced,
    then renamed over it: a reader (or a crash) sees the old file or the new one, never half
    of one.  The directory must exist (a mistyped path is an error, not a new directory)."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        # The error would name the temporary file, which the admin never asked for.
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def read_bounded(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, or :class:`~.errors.InvalidInputError` naming it.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read: a FIFO would
    block the open (or the read) forever, ``/dev/zero`` never ends, and a sparse file can claim
    gigabytes it would take minutes to read.  The check is on the opened descriptor, so the
    file cannot be swapped between check and read.
    """
    source = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(source, flags)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise InvalidInputError(f"cannot read {what} {str(source)!r}: {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(
                f"{what} {str(source)!r} is not a regular file ({_kind(info.st_mode)}); "
                "give the path of a file"
            )
        if info.st_size > max_bytes:
            raise InvalidInputError(
                f"{what} {str(source)!r} is {info.st_size:,} bytes, more than the "
                f"{max_bytes:,} a {what} can be; is it the right file?"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > max_bytes:  # grew while being read
                raise InvalidInputError(
                    f"{what} {str(source)!r} is more than {max_bytes:,} bytes; "
                    "is it the right file?"
                )
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def json_depth(data: bytes) -> int:
    """The deepest nesting of brackets in JSON text, strings skipped.

    >>> json_depth(b'{"a": [1, {"b": "]]]"}]}')
    3
    """
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def load_json_file(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> Any:
    """JSON from ``path``, read bounded (:func:`read_bounded`) and no deeper than
    :data:`MAX_JSON_DEPTH`; :class:`~.errors.InvalidInputError` naming the file otherwise."""
    data = read_bounded(path, what=what, max_bytes=max_bytes)
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidInputError(
            f"{what} {str(path)!r} nests deeper than {MAX_JSON_DEPTH} levels; not a file this "
            "tool wrote"
        )
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} {str(path)!r} is not valid JSON: {exc}") from None
