"""``jobtrack-airtable``: the admin command line, a thin shell over the library.

Commands (global options ``--local PATH``, ``--demo``, ``--env-file FILE``, ``--debug``,
``-q/--quiet`` go before or after any of them: the root group moves them in front, so every
command is a plain typer function)::

    sync [--stale-after DURATION] [--json] [-o/--out FILE] [-t/--target T]... [--apply [--yes]]
    show FILE [--json]
    apply FILE [--json]
    check [--config FILE] [--stuck-after DURATION] [--state FILE] [--notify URL]... [--json]
    report --html FILE [--since 30d] [--until DATE] [--json]
    usage [--plan PLAN] [--tool-share S | --workspace-calls N] [--json]
    metrics [-o FILE] | metrics serve [--port 9464] [--min-interval 30s]
    archive --older-than AGE [--to FILE] [--json] [--out FILE] [--apply [--yes]]
    runs list [--status S] [--since 7d|2025-09-30] [-n N] [--format table|json|csv]
    runs show RUN_ID [--json]
    schema check [--json]
    schema init [--json]
    local serve [--host] [--port] [--token] [--base-id] [--data FILE] [--schema FILE] ...
    local seed [--reset]
    doctor [--json]

Exit codes: 0 success / nothing to change / already applied; 2 ``sync`` found changes (plan
mode); 1 any error, including a declined ``sync --apply`` (like Terraform's cancelled apply), a
refused stale plan, a usage error, a failed ``schema check`` and a ``doctor`` problem; 130
Ctrl-C (an apply stops between batches and says how to finish).  The README's table is
checked by tests/test_cli_readme.py.  Errors are one line on stderr (``--debug`` adds the
traceback); the API token is never printed, even inside an error.

Without ``AIRTABLE_API_KEY``/``AIRTABLE_BASE_ID`` (or with ``--local PATH``/``--demo``) planning
and read-only commands run against the embedded local base (:mod:`jobtrack_airtable.cli.embedded`)
and say so even under ``-q`` (JSON: ``"base_kind"``); commands with effects outside the terminal
refuse it unless it was asked for.  Settings files: :mod:`.settings_files`.  Either way a notice
on stderr names the base.  Human output (tables, plans) goes to stdout, progress and notices to
stderr; ``--json`` prints one JSON document on stdout and nothing else there.

Needs the ``cli`` extra (typer, rich, tomlkit and the local server); without it ``main`` prints
one line naming the extra and exits 1.  Start-up stays light: command modules import the
library (pyairtable, the local server) inside the commands, so ``--help``, ``--version`` and
shell completion load neither.

Modules: :mod:`._core` (apps, global options, output, errors, progress), :mod:`._doctor`,
:mod:`._sync`
(``sync``/``show``/``apply``), :mod:`._plans` (targets, written rows, already-applied check),
:mod:`._runs`, :mod:`._schema`, :mod:`._local`, :mod:`.tables` (width-safe tables),
:mod:`.render` (plan text).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from ..extras import require

if TYPE_CHECKING:
    import typer

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "app", "main"]

_CORE = ("EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "app")


def _app() -> typer.Typer:
    # Importing the command modules registers their commands on the app.
    from . import (  # noqa: F401
        _archive,
        _check,
        _doctor,
        _local,
        _metrics,
        _mirror,
        _outbox,
        _report,
        _run,
        _runs,
        _schema,
        _sync,
        _usage,
    )
    from ._core import app, describe_global_options

    describe_global_options(app)
    return app


def __getattr__(name: str) -> Any:
    # Lazy, so main() can check for the cli extra before typer is imported.
    if name in _CORE:
        _app()
        from . import _core

        return getattr(_core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``jobtrack_airtable.cli:main``); returns the exit code."""
    try:
        require("cli")
    except MissingExtraError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    import typer

    from ._core import EXIT_ERROR, EXIT_OK

    command = typer.main.get_command(_app())
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="jobtrack-airtable")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        sys.stderr.write(f"{code}\n")
        return EXIT_ERROR
    return EXIT_OK
