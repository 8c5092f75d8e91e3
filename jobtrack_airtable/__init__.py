"""jobtrack-airtable: record batch job runs of a multi-tenant lead-scoring service in Airtable,
correctly, idempotently and within Airtable's rate limits."""

from __future__ import annotations

__version__ = "0.1.0"
