"""The one user of the local server: who every token is, who creates and modifies every
record, who writes every comment (``createdBy``, ``lastModifiedBy``, ``/meta/whoami``)."""

from __future__ import annotations

from typing import Any, Final

LOCAL_USER_ID: Final = "usrLocalServer001"
LOCAL_USER: Final[dict[str, Any]] = {
    "id": LOCAL_USER_ID,
    "email": "local@localhost",
    "name": "Local Server",
}
