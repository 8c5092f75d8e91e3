"""The four standard run statuses (SPEC §1.3).  (Legacy mapping, transitions and staleness are
being added; the enum below is the stable part others import.)"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A run status; each value is the exact Airtable select-option name."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    NO_LEADS = "No Leads To Score"

    @property
    def is_terminal(self) -> bool:
        return self is not Status.RUNNING
