"""Shared machinery of the CLI: the typer apps, global options, output, errors, progress.

Everything here is about presentation; the work itself is done by library functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from typer.core import TyperGroup

from .. import __version__
from ..errors import ConfigError, JobtrackError
from ..settings import Settings
from .embedded import Backend, open_backend

#: Exit codes (SPEC §3.6).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2

# Click (vendored by recent typer, a dependency of older ones) exits 2 on usage errors, which a
# script would read as "sync found changes".  Usage errors are errors: exit 1.  The class is
# found through typer's public BadParameter so this works whichever click typer ships with.
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class _Group(TyperGroup):
    """The root command group: usage errors exit 1, like every other error."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as exc:
            exc.exit_code = EXIT_ERROR  # type: ignore[attr-defined]
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            exc.exit_code = EXIT_ERROR  # type: ignore[attr-defined]
            raise


_HELP = (
    "Record and repair lead-scoring job runs in Airtable. Without AIRTABLE_API_KEY and "
    "AIRTABLE_BASE_ID, commands use an embedded local base seeded with demo data."
)
app = typer.Typer(
    cls=_Group,
    help=_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Read-only views of job runs.", no_args_is_help=True)
schema_app = typer.Typer(help="Compare the base with the configured schema.", no_args_is_help=True)
local_app = typer.Typer(help="The local Airtable-compatible server.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(schema_app, name="schema")
app.add_typer(local_app, name="local")


# -- state, output, errors -----------------------------------------------------------------


@dataclass
class State:
    """Per-invocation state from the global options."""

    local: Path | None = None
    debug: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Settings from the environment, read once; a bad value is a one-line error."""
        if self._settings is None:
            try:
                self._settings = Settings()
            except ValidationError as exc:
                raise ConfigError(_settings_problem(exc)) from None
        return self._settings


def _settings_problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        parts.append(f"{where}: {err.get('msg')}")
    return "invalid configuration: " + "; ".join(parts)


def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


def _width() -> int | None:
    # Piped output gets a wide console so tables are not squeezed into 80 columns.
    return None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))


def out_console() -> Console:
    """Console on the current stdout (resolved per call: test runners swap the streams)."""
    return Console(file=sys.stdout, width=_width(), highlight=False, soft_wrap=False)


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _secrets() -> list[str]:
    """Values that must never be shown: the API token as set in the environment."""
    values = [os.environ.get("AIRTABLE_API_KEY", "")]
    return [v for v in values if len(v) >= 4]


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``***`` (a last line of defence: the
    library already keeps the token out of messages)."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


def one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(exc: BaseException, state: State) -> NoReturn:
    """Report ``exc`` as one line (plus the traceback with ``--debug``) and exit 1."""
    if state.debug:
        tb = "".join(traceback.format_exception(exc))
        sys.stderr.write(redact(tb))
    message = one_line(str(exc)) or type(exc).__name__
    if not isinstance(exc, JobtrackError | OSError):
        # Not one of ours: the type helps a bug report.
        message = f"{type(exc).__name__}: {message}"
    hint = "" if state.debug else " (run with --debug for details)"
    if isinstance(exc, JobtrackError):
        hint = ""
    sys.stderr.write(redact(f"error: {message}{hint}") + "\n")
    raise typer.Exit(EXIT_ERROR)


@contextlib.contextmanager
def errors_to_exit(state: State) -> Iterator[None]:
    """Turn every failure inside a command into the one-line error and exit 1."""
    try:
        yield
    except (typer.Exit, typer.Abort, _UsageError):
        raise
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise typer.Exit(130) from None
    except Exception as exc:
        _fail(exc, state)


class _StderrHandler(logging.Handler):
    """Library log lines (retries, duplicate-row warnings) on the *current* stderr, redacted,
    so they never mix into ``--json`` output on stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # pragma: no cover - logging must never raise
            return
        sys.stderr.write(redact(text) + "\n")


def _configure_logging(ctx: typer.Context, debug: bool) -> None:
    """Send the library's log lines to stderr for this command only.

    The library itself never configures logging; the CLI, as the application, does -- and
    undoes it when the command ends, so a host process (or a test run) that invokes the app
    in-process keeps its own logging setup.
    """
    logger = logging.getLogger("jobtrack_airtable")
    saved_level, saved_propagate = logger.level, logger.propagate
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    # Our handler prints them; the root logger's (if any) would print them twice.
    logger.propagate = False

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate

    ctx.call_on_close(restore)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextlib.contextmanager
def open_base(state: State) -> Iterator[Backend]:
    """Open the base the settings (or ``--local``) name, telling the user on stderr when it
    is the embedded local base."""
    with open_backend(state.settings, local=state.local) as backend:
        if backend.notice:
            sys.stderr.write(backend.notice + "\n")
        yield backend


class Reads:
    """A transient spinner on stderr counting rows read, fed by ``on_page`` callbacks.

    Silent when stderr is not a terminal (pipes, CI, tests): progress is for humans.
    """

    def __init__(self, label: str, *, count_rows: bool = True) -> None:
        console = err_console()
        self.enabled = console.is_terminal
        self.rows = 0
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("[dim]{task.completed} rows" if count_rows else ""),
            console=console,
            transient=True,
            disable=not self.enabled,
        )
        self.task = self.progress.add_task(label, total=None)

    def on_page(self, count: int) -> None:
        self.rows += count
        self.progress.update(self.task, completed=self.rows)

    def describe(self, text: str) -> None:
        """Change the label (a step of a longer operation)."""
        self.progress.update(self.task, description=text)

    def __enter__(self) -> Reads:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


class Writes:
    """A transient progress bar on stderr for writes with a known total."""

    def __init__(self, label: str, total: int | None = None) -> None:
        console = err_console()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Writes:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


def stdin_is_tty() -> bool:
    """Whether a human can answer a confirmation prompt (patched in tests)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


# -- root ---------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"jobtrack-airtable {__version__}\n")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    ctx: typer.Context,
    local: Annotated[
        Path | None,
        typer.Option(
            "--local",
            help="Use the local base persisted in this JSON file (created and seeded with "
            "demo data if absent), even when Airtable credentials are set.",
            dir_okay=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logs on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Record and repair lead-scoring job runs in Airtable."""
    ctx.obj = State(local=local, debug=debug)
    _configure_logging(ctx, debug)
