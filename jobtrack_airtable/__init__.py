"""jobtrack-airtable: record batch job runs of a multi-tenant lead-scoring service in Airtable,
correctly, idempotently and within Airtable's rate limits.

>>> from jobtrack_airtable import Tracker                         # doctest: +SKIP
>>> tracker = Tracker.from_env()                                  # doctest: +SKIP
>>> with tracker.job(stream=1) as job:                            # doctest: +SKIP
...     with job.client("Guy-Wilson") as run:
...         run.add(profiles_examined=10, profiles_scored=8, profile_tokens=4200)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Connection, build_api
    from .errors import (
        AirtableError,
        AuthenticationError,
        ComputedFieldError,
        ConfigError,
        DuplicateRowsError,
        InvalidClientIdError,
        InvalidInputError,
        InvalidMetricError,
        InvalidRequestError,
        InvalidRunIdError,
        InvalidStatusError,
        JobtrackError,
        NetworkError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitedError,
        RunIdTypeError,
        SchemaViolationError,
        StatusTransitionError,
        TransientServerError,
        UnknownFieldError,
        UnknownMetricError,
    )
    from .metrics import ClientMetrics, ClientRunRow, JobAggregate, JobRow, aggregate
    from .recovery import DEFAULT_POLICY, RetryPolicy
    from .repository import Repository
    from .run_ids import (
        BaseRunId,
        ClientRunId,
        generate_base_run_id,
        parse_run_id,
        recognise,
        validate_client_id,
        with_client,
    )
    from .schema import Schema, load_schema
    from .settings import Settings
    from .statuses import Status, map_status
    from .tracker import ClientRun, Job, Tracker

# Lazy (PEP 562): importing the package, or a light submodule such as the CLI's, must not pull
# in pyairtable and requests until a name that needs them is used (``--help`` stays fast).
_LAZY: dict[str, str] = {
    "Connection": "client",
    "build_api": "client",
    "AirtableError": "errors",
    "AuthenticationError": "errors",
    "ComputedFieldError": "errors",
    "ConfigError": "errors",
    "DuplicateRowsError": "errors",
    "InvalidClientIdError": "errors",
    "InvalidInputError": "errors",
    "InvalidMetricError": "errors",
    "InvalidRequestError": "errors",
    "InvalidRunIdError": "errors",
    "InvalidStatusError": "errors",
    "JobtrackError": "errors",
    "NetworkError": "errors",
    "NotFoundError": "errors",
    "PermissionDeniedError": "errors",
    "RateLimitedError": "errors",
    "RunIdTypeError": "errors",
    "SchemaViolationError": "errors",
    "StatusTransitionError": "errors",
    "TransientServerError": "errors",
    "UnknownFieldError": "errors",
    "UnknownMetricError": "errors",
    "ClientMetrics": "metrics",
    "ClientRunRow": "metrics",
    "JobAggregate": "metrics",
    "JobRow": "metrics",
    "aggregate": "metrics",
    "DEFAULT_POLICY": "recovery",
    "RetryPolicy": "recovery",
    "Repository": "repository",
    "BaseRunId": "run_ids",
    "ClientRunId": "run_ids",
    "generate_base_run_id": "run_ids",
    "parse_run_id": "run_ids",
    "recognise": "run_ids",
    "validate_client_id": "run_ids",
    "with_client": "run_ids",
    "Schema": "schema",
    "load_schema": "schema",
    "Settings": "settings",
    "Status": "statuses",
    "map_status": "statuses",
    "ClientRun": "tracker",
    "Job": "tracker",
    "Tracker": "tracker",
}

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_POLICY",
    "AirtableError",
    "AuthenticationError",
    "BaseRunId",
    "ClientMetrics",
    "ClientRun",
    "ClientRunId",
    "ClientRunRow",
    "ComputedFieldError",
    "ConfigError",
    "Connection",
    "DuplicateRowsError",
    "InvalidClientIdError",
    "InvalidInputError",
    "InvalidMetricError",
    "InvalidRequestError",
    "InvalidRunIdError",
    "InvalidStatusError",
    "Job",
    "JobAggregate",
    "JobRow",
    "JobtrackError",
    "NetworkError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "Repository",
    "RetryPolicy",
    "RunIdTypeError",
    "Schema",
    "SchemaViolationError",
    "Settings",
    "Status",
    "StatusTransitionError",
    "Tracker",
    "TransientServerError",
    "UnknownFieldError",
    "UnknownMetricError",
    "__version__",
    "aggregate",
    "build_api",
    "generate_base_run_id",
    "load_schema",
    "map_status",
    "parse_run_id",
    "recognise",
    "validate_client_id",
    "with_client",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
