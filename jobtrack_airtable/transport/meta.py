"""The base's schema as the meta API gives it: one request, retried and classified like any
other.  It lives in the transport because the table layer needs it too (to learn what pinned
fields are called now), and the admin library's schema checks build on it."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError as PydanticValidationError

from ..errors import InvalidRequestError
from .client import Connection
from .recovery import classified
from .renames import learn

__all__ = ["fetch_meta"]


def fetch_meta(conn: Connection, *, learn_names: bool = True) -> dict[str, Any]:
    """The base's schema in the meta API's shape (``{"tables": [...]}``), one request
    (pyairtable's ``Base.schema()``, forced fresh), retried and classified like every other
    request.  ``learn_names``: tell :mod:`.renames` what the pinned fields are called now
    (off for a caller that learns them itself, to see what changed)."""
    base = conn.api.base(conn.base_id)
    try:
        with classified():
            schema = base.schema(force=True)
    except PydanticValidationError as exc:
        raise InvalidRequestError(
            f"the meta API answered with a schema pyairtable cannot read: {exc}", status=None
        ) from None
    meta = dict(schema.model_dump(by_alias=True, mode="json"))
    # Every meta read teaches the process what pinned fields are called today, so formulas
    # built later (sync's re-reads, the workers') use the current names at no extra cost.
    if learn_names:
        learn(conn.base_id, conn.schema, meta)
    return meta
