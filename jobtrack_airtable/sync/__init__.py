"""``sync``: find what is inconsistent in the tracking base, show how it would be fixed, fix it.

Three layers, kept apart so each can be used and tested alone:

* :mod:`.detect` -- :func:`build_plan`: pure detection over raw records (no I/O);
* :mod:`.model` / :mod:`.render` -- the :class:`Plan` data model, its JSON
  (:func:`plan_to_json`, :func:`save_plan`, :func:`load_plan`) and its Terraform-style text
  (:func:`render_text`, :func:`render_rich`);
* :mod:`.apply` -- :func:`plan_sync` (reads the base), :func:`apply_plan` (re-checks, then
  writes in batches), :func:`sync_and_apply`.

>>> from jobtrack_airtable.sync import plan_sync, render_text, apply_plan   # doctest: +SKIP
>>> plan = plan_sync(repo)                                                  # doctest: +SKIP
>>> print(render_text(plan))                                                # doctest: +SKIP
>>> apply_plan(repo, plan)                                                  # doctest: +SKIP

See ``docs/sync.md`` for the detectors, merge rules, fingerprints and request budgets.
"""

from __future__ import annotations

from .apply import (
    DEFAULT_STALE_AFTER,
    ApplyBudget,
    ApplyResult,
    ProgressCallback,
    StalePlanError,
    StaleRow,
    apply_budget,
    apply_plan,
    plan_budget,
    plan_sync,
    sync_and_apply,
)
from .detect import build_plan
from .model import (
    FORMAT_VERSION,
    Action,
    FieldChange,
    Guards,
    Plan,
    PlanFormatError,
    PlanSummary,
    RecordChange,
    fingerprint,
    load_plan,
    plan_from_json,
    plan_to_json,
    save_plan,
)
from .render import format_value, render_rich, render_text, summary_line

__all__ = [
    "DEFAULT_STALE_AFTER",
    "FORMAT_VERSION",
    "Action",
    "ApplyBudget",
    "ApplyResult",
    "FieldChange",
    "Guards",
    "Plan",
    "PlanFormatError",
    "PlanSummary",
    "ProgressCallback",
    "RecordChange",
    "StalePlanError",
    "StaleRow",
    "apply_budget",
    "apply_plan",
    "build_plan",
    "fingerprint",
    "format_value",
    "load_plan",
    "plan_budget",
    "plan_from_json",
    "plan_sync",
    "plan_to_json",
    "render_rich",
    "render_text",
    "save_plan",
    "summary_line",
    "sync_and_apply",
]
