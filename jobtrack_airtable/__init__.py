"""jobtrack-airtable: record batch job runs of a multi-tenant lead-scoring service in Airtable,
correctly, idempotently and within Airtable's rate limits.

>>> from jobtrack_airtable import Tracker                         # doctest: +SKIP
>>> tracker = Tracker.from_env()                                  # doctest: +SKIP
>>> with tracker.job(stream=1) as job:                            # doctest: +SKIP
...     with job.client("Guy-Wilson") as run:
...         run.add(profiles_examined=10, profiles_scored=8, profile_tokens=4200)
"""

from __future__ import annotations

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
