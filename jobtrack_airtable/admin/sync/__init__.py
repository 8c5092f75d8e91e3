"""``sync``: find what is inconsistent in the tracking base, show how it would be fixed, fix it.

Three layers, kept apart so each can be used and tested alone:

* :mod:`.detect` -- :func:`build_plan`: pure detection over raw records (no I/O);
* :mod:`.model` -- the :class:`Plan` data model and its JSON (:func:`plan_to_json`,
  :func:`save_plan`, :func:`load_plan`); its Terraform-style text lives with the CLI
  (:mod:`jobtrack_airtable.cli.render`), so the library core never imports rich;
* :mod:`.apply` -- :func:`plan_sync` (reads the base), :func:`apply_plan` (re-checks, then
  writes in batches), :func:`sync_and_apply`.

>>> from jobtrack_airtable.admin.sync import plan_sync, apply_plan               # doctest: +SKIP
>>> from jobtrack_airtable.cli.render import render_text                   # doctest: +SKIP
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
    check_plan,
    fingerprint,
    load_plan,
    plan_checksum,
    plan_from_json,
    plan_to_json,
    save_plan,
)

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
    "check_plan",
    "fingerprint",
    "load_plan",
    "plan_budget",
    "plan_checksum",
    "plan_from_json",
    "plan_sync",
    "plan_to_json",
    "save_plan",
    "sync_and_apply",
]
