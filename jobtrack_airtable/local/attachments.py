"""Attachment cells of the local server, normalised as Airtable returns them.

A client writes ``[{"url": …, "filename"?: …}]`` (new attachments) and ``{"id": "att…"}``
items (attachments the cell keeps); Airtable answers attachment objects with an ``id``,
``url``, ``filename``, ``size`` and ``type``.  Airtable downloads the URL; this server reads
the bytes only where that cannot reach beyond the machine: a ``file://`` URL, or an
``http(s)`` URL on a loopback host.  For any other URL, the type comes from the file name
and ``size`` is left out.  Uploaded content (``POST …/uploadAttachment``) is kept in memory
and served back, unauthenticated, at a URL signed with the server's token (as Airtable's
attachment URLs are signed).

>>> from_url({"url": "https://example.com/logo.png"})["type"]
'image/png'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import mimetypes
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from . import errors as E
from .storage import new_id

#: Bytes read from one attachment URL; bigger files are refused (Airtable's upload limit).
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
#: Uploaded bytes a server keeps in memory in all; uploads beyond are refused.
MAX_UPLOADED_BYTES = 256 * 1024 * 1024
_FETCH_TIMEOUT = 10.0


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(url: str) -> tuple[bytes, str | None] | None:
    """The bytes (and served type) of a ``file://`` or loopback URL; ``None`` otherwise."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "file":
            with Path(unquote(parts.path)).open("rb") as fh:
                data = fh.read(MAX_ATTACHMENT_BYTES + 1)
            kind = None
        elif parts.scheme in ("http", "https") and _is_loopback(parts.hostname):
            with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT) as resp:
                data = resp.read(MAX_ATTACHMENT_BYTES + 1)
                kind = resp.headers.get_content_type() if resp.headers.get("Content-Type") else None
        else:
            return None
    except (OSError, ValueError) as exc:
        raise E.invalid_request(f"cannot read the attachment at {url!r}: {exc}") from None
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise E.invalid_request(
            f"the attachment at {url!r} is larger than {MAX_ATTACHMENT_BYTES:,} bytes"
        )
    return data, kind


def _filename(url: str) -> str:
    name = Path(unquote(urlsplit(url).path)).name
    return name or "a"


def from_url(item: Mapping[str, Any]) -> dict[str, Any]:
    """A new attachment object for ``{"url", "filename"?}``."""
    url = item.get("url")
    if not isinstance(url, str) or not url:
        raise E.invalid_request("an attachment needs a 'url' (or the 'id' of one it keeps)")
    filename = item.get("filename")
    if filename is not None and not isinstance(filename, str):
        raise E.invalid_request("an attachment's filename must be a string")
    name = filename or _filename(url)
    read = _read(url)
    kind = (read[1] if read is not None else None) or mimetypes.guess_type(name)[0]
    out: dict[str, Any] = {"id": new_id("att"), "url": url, "filename": name}
    if read is not None:
        out["size"] = len(read[0])
    out["type"] = kind or "application/octet-stream"
    return out


def normalise(value: Any, existing: Sequence[Any]) -> Any:
    """An attachment cell as written → as stored (``existing``: the cell's current value)."""
    if value is None or value == []:
        return value
    if not isinstance(value, list):
        raise E.invalid_request("an attachment field takes a list of attachments")
    kept = {a["id"]: a for a in existing if isinstance(a, Mapping) and "id" in a}
    out = []
    for item in value:
        if not isinstance(item, Mapping):
            raise E.invalid_request("each attachment must be an object")
        old = kept.get(item.get("id"))
        out.append(dict(old) if old is not None else from_url(item))
    return out


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise E.invalid_request(f"an upload needs '{key}' (a non-empty string)")
    return value


class UploadedFiles:
    """Uploaded attachment content, served back at signed URLs."""

    PREFIX = "/attachments/"

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"attachments:" + secret.encode()).digest()
        self._lock = threading.Lock()
        self._files: dict[str, tuple[str, bytes]] = {}
        self._bytes = 0

    def _signature(self, att_id: str) -> str:
        return hmac.new(self._key, att_id.encode(), hashlib.sha256).hexdigest()[:32]

    def add(self, host_url: str, body: Any) -> dict[str, Any]:
        """Store an upload (``{"contentType", "filename", "file": base64}``); its object."""
        if not isinstance(body, Mapping):
            raise E.invalid_request("expected a JSON object")
        kind, name, data = (_text(body, k) for k in ("contentType", "filename", "file"))
        try:
            content = base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            raise E.invalid_request("'file' must be base64") from None
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise E.ApiError(413, "INVALID_FILE_SIZE", "Uploads are limited to 5 MB")
        att_id = new_id("att")
        with self._lock:
            if self._bytes + len(content) > MAX_UPLOADED_BYTES:
                raise E.ApiError(
                    413,
                    "INVALID_FILE_SIZE",
                    f"this local server keeps at most {MAX_UPLOADED_BYTES:,} uploaded bytes",
                )
            self._files[att_id] = (kind, content)
            self._bytes += len(content)
        url = f"{host_url.rstrip('/')}{self.PREFIX}{att_id}/{self._signature(att_id)}/{quote(name)}"
        return {"id": att_id, "url": url, "filename": name, "size": len(content), "type": kind}

    def get(self, path: str) -> tuple[str, bytes] | None:
        """The content at a signed ``/attachments/{id}/{signature}/{name}`` path."""
        parts = path[len(self.PREFIX) :].split("/")
        if len(parts) != 3 or not hmac.compare_digest(parts[1], self._signature(parts[0])):
            return None
        with self._lock:
            return self._files.get(parts[0])
