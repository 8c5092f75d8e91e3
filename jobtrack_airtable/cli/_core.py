"""Shared machinery of the CLI: the typer apps, global options, output, errors, progress.

Everything here is about presentation; the work itself is done by library functions.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from typer.core import TyperGroup

from .. import __version__
from ..errors import ConfigError, JobtrackError
from ..settings import Settings

if TYPE_CHECKING:
    # Imported inside the functions that need them: the embedded base pulls in the local
    # server (werkzeug) and pyairtable, which `--help`, `--version` and completion never need.
    from .embedded import Backend

F = TypeVar("F", bound=Callable[..., Any])

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


def usage_error_line(exc: Exception) -> str:
    """A usage error as the one line the CLI prints: what is wrong (click names the option and
    the value), then where to read how to fix it.

    Click's own rendering is a multi-line box with the whole usage; an admin needs the line
    that names the mistake.
    """
    message = _typed_value_problem(exc) or exc.format_message()  # type: ignore[attr-defined]
    message = one_line(message.rstrip("."))
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "jobtrack-airtable"
    return f"error: {message} (see `{where} --help`)"


_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}
_KINDS = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "is not true or false",
}


def _typed_value_problem(exc: Exception) -> str | None:
    """Typer converts option values with pydantic and passes pydantic's text on ("Input
    should be a valid integer, unable to parse string as an integer"), without the value.
    Rebuilt from the validation error: ``invalid value for --limit: 'many' is not a whole
    number``."""
    cause = exc.__cause__
    param = getattr(exc, "param", None)
    if not isinstance(cause, ValidationError) or param is None:
        return None
    errors = cause.errors(include_url=False)
    if not errors:
        return None
    err = errors[0]
    opts = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
    name = opts[0] if opts else (getattr(param, "human_readable_name", None) or "value")
    value = err.get("input")
    kind = err.get("type", "")
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        problem = f"must be {words} {err.get('ctx', {}).get(key)}"
    else:
        problem = _KINDS.get(kind) or plain_validation_message(err.get("msg", ""))
    return f"invalid value for {name}: {value!r} {problem}"


class _Group(TyperGroup):
    """The root command group: usage errors are one line on stderr and exit 1, like every
    other error (click would exit 2, which a script reads as "sync found changes")."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as exc:
            _usage_exit(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            _usage_exit(exc)


def _usage_exit(exc: Exception) -> NoReturn:
    sys.stderr.write(redact(usage_error_line(exc)) + "\n")
    raise typer.Exit(EXIT_ERROR) from None


# -- global options, accepted before or after the subcommand ------------------------------

_GLOBAL_PANEL = "Global options (before or after the command)"
LocalOption = Annotated[
    Path | None,
    typer.Option(
        "--local",
        help="Use the local base in this JSON file (created and seeded with demo data if "
        "absent; its directory must exist), even when Airtable credentials are set.",
        dir_okay=False,
        rich_help_panel=_GLOBAL_PANEL,
        show_default=False,
    ),
]
DebugOption = Annotated[
    bool,
    typer.Option(
        "--debug", help="Show tracebacks and debug logs on errors.", rich_help_panel=_GLOBAL_PANEL
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Print only the requested output and errors: no notices, progress or warnings.",
        rich_help_panel=_GLOBAL_PANEL,
    ),
]
_GLOBAL_PARAMS = (
    inspect.Parameter(
        "local", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LocalOption
    ),
    inspect.Parameter(
        "debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOption
    ),
    inspect.Parameter(
        "quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOption
    ),
)
_CTX = "_jobtrack_ctx"


def with_global_options(func: F) -> F:
    """``func`` as a command that also takes ``--local``, ``--debug`` and ``--quiet``.

    Typer has no global options after the subcommand; this adds the three to the command's
    signature (typer reads ``__signature__``), merges them into the invocation's
    :class:`State` and configures logging before ``func`` runs.
    """
    signature = inspect.signature(func, eval_str=True)
    params = list(signature.parameters.values())
    ctx_name = next(
        (p.name for p in params if p.annotation in (typer.Context, "typer.Context")), None
    )
    added = list(_GLOBAL_PARAMS)
    if ctx_name is None:
        added.append(
            inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        )

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs[ctx_name] if ctx_name is not None else kwargs.pop(_CTX)
        state = state_of(ctx)
        state.merge(local=kwargs.pop("local"), debug=kwargs.pop("debug"), quiet=kwargs.pop("quiet"))
        _configure_logging(ctx.find_root(), state)
        token = _current.set(state)
        ctx.call_on_close(lambda: _current.reset(token))
        return func(*args, **kwargs)

    # Keep positional-or-keyword parameters before the keyword-only ones we add.
    command.__signature__ = signature.replace(parameters=[*params, *added])  # type: ignore[attr-defined]
    command.__annotations__ = {
        **func.__annotations__,
        **{p.name: p.annotation for p in added},
    }
    return command  # type: ignore[return-value]


class _Typer(typer.Typer):
    """A typer app whose every command also accepts the global options."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            register(with_global_options(func))
            return func

        return decorator


_HELP = (
    "Record and repair lead-scoring job runs in Airtable. Without AIRTABLE_API_KEY and "
    "AIRTABLE_BASE_ID, commands use an embedded local base seeded with demo data."
)
app = _Typer(
    cls=_Group,
    help=_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
runs_app = _Typer(help="Read-only views of job runs.", no_args_is_help=True)
schema_app = _Typer(help="Compare the base with the configured schema.", no_args_is_help=True)
local_app = _Typer(help="The local Airtable-compatible server.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(schema_app, name="schema")
app.add_typer(local_app, name="local")


# -- state, output, errors -----------------------------------------------------------------


@dataclass
class State:
    """Per-invocation state from the global options."""

    local: Path | None = None
    debug: bool = False
    quiet: bool = False
    _settings: Settings | None = None

    def merge(self, *, local: Path | None, debug: bool, quiet: bool) -> None:
        """Add the global options given after the subcommand (they win over those before)."""
        if local is not None:
            self.local = local
        self.debug = self.debug or debug
        self.quiet = self.quiet or quiet

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
    """One line naming each bad variable, its value and what it should be, in our words
    (pydantic's text names its own types and ends with a link to its docs)."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        value = err.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        parts.append(f"{where}{shown}: {plain_validation_message(err.get('msg', ''))}")
    return "invalid configuration: " + "; ".join(parts)


def plain_validation_message(msg: str) -> str:
    """pydantic's ``Input should be greater than 0`` as ``must be greater than 0``.

    >>> plain_validation_message("Input should be greater than or equal to 0.001")
    'must be greater than or equal to 0.001'
    >>> plain_validation_message("Value error, unknown time zone 'Mars/Base'")
    "unknown time zone 'Mars/Base'"
    """
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if msg == "Field required":
        return "missing"
    if msg == "Extra inputs are not permitted":
        return "not a known field"
    if msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    return msg


def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


#: The state of the command being run (for output helpers that have no context at hand).
_current: ContextVar[State | None] = ContextVar("jobtrack_cli_state", default=None)


def quiet() -> bool:
    """Whether ``--quiet`` was given to the running command."""
    state = _current.get()
    return state is not None and state.quiet


def notice(text: str) -> None:
    """An informational line on stderr (``Using the embedded local base…``); ``--quiet``
    drops it.  Errors are not notices: they are always printed."""
    if not quiet():
        sys.stderr.write(redact(text) + "\n")


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
    message = _describe(exc)
    if not isinstance(exc, JobtrackError | OSError | ValidationError):
        # Not one of ours: the type helps a bug report.
        message = f"{type(exc).__name__}: {message}"
    hint = "" if state.debug else " (run with --debug for details)"
    if isinstance(exc, JobtrackError | OSError | ValidationError):
        hint = ""
    sys.stderr.write(redact(f"error: {message}{hint}") + "\n")
    raise typer.Exit(EXIT_ERROR)


def _describe(exc: BaseException) -> str:
    """The error's one line: OS errors as ``PATH: what`` (not ``[Errno 21] …``), validation
    errors field by field without pydantic's wording or links."""
    if isinstance(exc, OSError) and exc.strerror:
        what = exc.strerror[:1].lower() + exc.strerror[1:]
        return f"cannot use {str(exc.filename)!r}: {what}" if exc.filename else what
    if isinstance(exc, ValidationError):
        return "invalid value: " + validation_summary(exc)
    return one_line(str(exc)) or type(exc).__name__


def validation_summary(exc: ValidationError, *, limit: int = 3) -> str:
    """The first few problems of a validation error as ``where: what; …`` (one line, our
    wording, no pydantic type names or links)."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:limit]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{where}: {plain_validation_message(err.get('msg', ''))}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


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


def _configure_logging(ctx: typer.Context, state: State) -> None:
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
    quiet_level = logging.ERROR if state.quiet else logging.WARNING
    logger.setLevel(logging.DEBUG if state.debug else quiet_level)
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
    """Open the base the settings (or ``--local``) name, saying on stderr which one: the
    embedded local base, or the Airtable base and endpoint with where the credentials came
    from (a stray ``.env`` must not switch bases silently)."""
    from .embedded import open_backend

    with open_backend(state.settings, local=state.local) as backend:
        if backend.notice:
            notice(backend.notice)
        else:
            notice(f"Using {backend.description} (credentials from {_credential_source()}).")
        yield backend


def _credential_source() -> str:
    names = ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID")
    in_env = [n for n in names if os.environ.get(n)]
    if len(in_env) == len(names):
        return "the environment"
    env_file = Path.cwd() / ".env"
    if not in_env:
        return f"{env_file}"
    return f"the environment and {env_file}"


class Reads:
    """A transient spinner on stderr counting rows read, fed by ``on_page`` callbacks.

    Silent when stderr is not a terminal (pipes, CI, tests): progress is for humans.
    """

    def __init__(self, label: str, *, count_rows: bool = True) -> None:
        console = err_console()
        self.enabled = console.is_terminal and not quiet()
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
            disable=not console.is_terminal or quiet(),
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
    local: LocalOption = None,
    debug: DebugOption = False,
    quiet: QuietOption = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Record and repair lead-scoring job runs in Airtable."""
    # Logging is configured by each command (with_global_options), once every option is known.
    ctx.obj = State(local=local, debug=debug, quiet=quiet)
