"""Airtable error responses as exceptions, raised anywhere in the local server and turned into
HTTP responses in one place (:mod:`.app`).

Airtable has three error-body shapes (SPEC §2.2); :class:`ApiError` renders all of them:

>>> ApiError(422, "UNKNOWN_FIELD_NAME", 'Unknown field name: "Foo"').body()
{'error': {'type': 'UNKNOWN_FIELD_NAME', 'message': 'Unknown field name: "Foo"'}}
>>> ApiError(404, "NOT_FOUND", bare=True).body()
{'error': 'NOT_FOUND'}
"""

from __future__ import annotations

from typing import Any

#: The exact 429 body of SPEC §2.1.
RATE_LIMIT_MESSAGE = "Rate limit exceeded. Please try again later"


class ApiError(Exception):
    """An Airtable error response: HTTP ``status`` and the error ``type``/``message``.

    ``message=None`` gives the ``{"error": {"type": T}}`` shape; ``bare=True`` gives the
    ``{"error": "T"}`` shape Airtable uses for unknown routes and malformed IDs.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str | None = None,
        *,
        bare: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message
        self.bare = bare
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body Airtable sends for this error."""
        if self.bare:
            return {"error": self.error_type}
        if self.message is None:
            return {"error": {"type": self.error_type}}
        return {"error": {"type": self.error_type, "message": self.message}}


# -- constructors for the errors raised in several places -------------------------------------


def not_found() -> ApiError:
    """404 ``{"error": "NOT_FOUND"}``: unknown route or malformed ID."""
    return ApiError(404, "NOT_FOUND", bare=True)


def auth_required() -> ApiError:
    return ApiError(401, "AUTHENTICATION_REQUIRED", "Authentication required")


def rate_limited() -> ApiError:
    return ApiError(429, "RATE_LIMIT_REACHED", RATE_LIMIT_MESSAGE)


#: Airtable's answer to every data request once the workspace's monthly quota is spent.
QUOTA_MESSAGE = (
    "API billing plan limit exceeded. You've reached the maximum number of requests allowed "
    "for this month."
)


def quota_exhausted() -> ApiError:
    return ApiError(429, "PUBLIC_API_BILLING_LIMIT_EXCEEDED", QUOTA_MESSAGE)


def model_not_found() -> ApiError:
    """403 for a base this server does not hold (Airtable does not say which part is wrong)."""
    return ApiError(
        403,
        "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "Invalid permissions, or the requested model was not found. Check that both your user "
        "and your token have the required permissions, and that the model names and/or ids are "
        "correct.",
    )


def table_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        "TABLE_NOT_FOUND",
        f"Could not find table {name} in application. Check that the table name or id is correct.",
    )


def record_not_found(record_id: str | None = None) -> ApiError:
    message = "Record not found" if record_id is None else f"Record not found: {record_id}"
    return ApiError(404, "MODEL_ID_NOT_FOUND", message)


def unknown_field(name: str) -> ApiError:
    return ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


def computed_field(name: str) -> ApiError:
    return ApiError(
        422,
        "INVALID_VALUE_FOR_COLUMN",
        f'Field "{name}" cannot accept a value because the field is computed',
    )


def bad_value(name: str, detail: str = "") -> ApiError:
    suffix = f": {detail}" if detail else ""
    return ApiError(
        422, "INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept the provided value{suffix}'
    )


def invalid_body(detail: str = "Could not parse request body") -> ApiError:
    return ApiError(422, "INVALID_REQUEST_BODY", detail)


def invalid_request(detail: str) -> ApiError:
    return ApiError(422, "INVALID_REQUEST_UNKNOWN", f"Invalid request: {detail}")


def invalid_records(detail: str) -> ApiError:
    return ApiError(422, "INVALID_RECORDS", detail)
