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
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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

#: Exit codes (SPEC §3.6).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
#: Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

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

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        if parent is None:
            args = hoist_global_options(list(args))
            if not getattr(self, "_flags_untyped", False):
                _untype_flags(self)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _UsageError as exc:
            _usage_exit(exc)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not getattr(command, "_flags_untyped", False):
            _untype_flags(command)
        return command

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as exc:
            _usage_exit(exc)


def complete_from(*values: str) -> Callable[[str], list[str]]:
    """A shell-completion callback offering ``values`` that start with what was typed."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _untype_flags(command: Any) -> None:
    """typer shows a flag's type as ``--apply <bool>`` (``--help <bool>`` too): a flag takes
    no value, so it shows none."""
    get_params = command.get_params

    def get_params_untyped(ctx: Any) -> Any:
        params = get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    command.get_params = get_params_untyped
    command._flags_untyped = True


def _usage_exit(exc: Exception) -> NoReturn:
    sys.stderr.write(redact(usage_error_line(exc)) + "\n")
    raise typer.Exit(EXIT_ERROR) from None


# -- global options, accepted before or after the subcommand ------------------------------

_GLOBAL_PANEL = "Global options (before or after the command)"
LocalOption = Annotated[
    Path | None,
    typer.Option(
        "--local",
        help="Use the local base in this SQLite file (created and seeded with demo data if "
        "absent; its directory must exist), even when Airtable credentials are set.",
        dir_okay=False,
        rich_help_panel=_GLOBAL_PANEL,
        show_default=False,
    ),
]
DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo",
        help="Use the embedded demo base (in the per-user data directory), even for commands "
        "that notify, write or exit non-zero for cron, which otherwise refuse it.",
        rich_help_panel=_GLOBAL_PANEL,
    ),
]
EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="Read settings from this file (default: .env here or in a parent up to the "
        "repository root, else the per-user config.env).",
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
#: The global options as the root group parses them; those given after the command are moved
#: in front of it first (:func:`hoist_global_options`), so commands stay plain typer functions.
_GLOBAL_FLAGS = frozenset({"--debug", "--quiet", "-q", "--demo"})
_GLOBAL_WITH_VALUE = frozenset({"--local", "--env-file"})


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options moved in front of the command (``--`` ends them).

    >>> hoist_global_options(["runs", "list", "-q", "--local", "b.sqlite", "-n", "3"])
    ['-q', '--local', 'b.sqlite', 'runs', 'list', '-n', '3']
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _GLOBAL_FLAGS or (arg.partition("=")[0] in _GLOBAL_WITH_VALUE and "=" in arg):
            front.append(arg)
        elif arg in _GLOBAL_WITH_VALUE:
            front.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


GLOBAL_OPTIONS_EPILOG = (
    "Global options (before or after the command): --local PATH, --demo, --env-file FILE, "
    "--debug, -q/--quiet (see `jobtrack-airtable --help`)."
)


def describe_global_options(typer_app: typer.Typer) -> None:
    """Name the global options at the foot of every command's help (they are parsed by the
    root group, so a command's own option list does not show them).  Called once every
    command module has registered its commands."""
    for info in typer_app.registered_commands:
        info.epilog = info.epilog or GLOBAL_OPTIONS_EPILOG
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            describe_global_options(group.typer_instance)


_HELP = (
    "Record and repair lead-scoring job runs in Airtable. Without AIRTABLE_API_KEY and "
    "AIRTABLE_BASE_ID, planning and read-only commands use an embedded local base seeded with "
    "demo data (and say so); commands that notify or write refuse it unless --demo or --local "
    "is given."
)


class _Typer(typer.Typer):
    """A typer app of this CLI: a group that takes the global options anywhere, says usage
    errors in one line and shows flags without a type.  Its commands are plain typer
    functions (``@group.command()``); a command module makes its group with it and adds it
    to :data:`app`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", _Group)
        super().__init__(**kwargs)


app = _Typer(help=_HELP, no_args_is_help=True, pretty_exceptions_enable=False)
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
    demo: bool = False
    env_file: Path | None = None
    debug: bool = False
    quiet: bool = False
    #: The settings file read (``None``: the environment only), known once settings are read.
    settings_file: Path | None = None
    #: ``embedded``, ``airtable`` or ``endpoint`` once a base is open: JSON output names it.
    base_kind: str | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Settings from the environment and the settings file (found once, see
        :mod:`.settings_files`); a bad value is a one-line error."""
        if self._settings is None:
            from .settings_files import find_settings_file

            self.settings_file = find_settings_file(self.env_file)
            try:
                self._settings = Settings(_env_file=self.settings_file)
            except ValidationError as exc:
                where = f" (settings file {self.settings_file})" if self.settings_file else ""
                raise ConfigError(_settings_problem(exc) + where) from None
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


def check_readable(path: Path | None, what: str, *, max_bytes: int | None = None) -> None:
    """Refuse ``path`` at once unless it is a regular file of sane size (a FIFO would block
    the loader that reads it next, ``/dev/zero`` never end); ``None`` passes."""
    from ..files import MAX_FILE_BYTES, read_bounded

    if path is not None:
        read_bounded(path, what=what, max_bytes=max_bytes or MAX_FILE_BYTES)


def outcome(text: str, *, as_json: bool = False) -> None:
    """What a write did (``Applied: …``, ``Already applied…``): on stdout, so ``apply plan.json
    > log`` keeps it with the rows; on stderr when stdout carries a JSON document."""
    stream = sys.stderr if as_json else sys.stdout
    stream.write(redact(text) + "\n")


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
    return one_line(str(exc)) + _advice(exc) if str(exc) else type(exc).__name__


def _advice(exc: BaseException) -> str:
    """What to do about an answer of the server an admin cannot act on as such."""
    from ..errors import AuthenticationError, NotFoundError, PermissionDeniedError

    if isinstance(exc, AuthenticationError):
        return "; check AIRTABLE_API_KEY (`jobtrack-airtable doctor` checks the token)"
    if isinstance(exc, PermissionDeniedError):
        return (
            "; check AIRTABLE_BASE_ID and the token's access and scopes (`jobtrack-airtable "
            "doctor` lists them against what each command needs)"
        )
    if isinstance(exc, NotFoundError) and exc.error_type == "TABLE_NOT_FOUND":
        return (
            "; was the table renamed in Airtable? `jobtrack-airtable doctor` finds it (fix the "
            "name in the schema file, then `schema pin`)"
        )
    return ""


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
        raise typer.Exit(EXIT_INTERRUPTED) from None
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
    """``doc`` as indented JSON on stdout; a document made from a base names its kind
    (``"base_kind": "embedded"`` for the local/demo base), so demo data is never mistaken."""
    state = _current.get()
    if isinstance(doc, dict) and state is not None and state.base_kind is not None:
        doc = {"base_kind": state.base_kind, **doc}
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
def open_base(state: State, *, effect: str | None = None) -> Iterator[Backend]:
    """Open the base the settings (or ``--local``/``--demo``) name, saying on stderr which
    one: the embedded local base, or the Airtable base and endpoint with where the
    credentials came from (a stray ``.env`` must not switch bases silently).

    ``effect`` names what the command does outside the terminal (``send notifications``,
    ``write to the base``): such a command refuses the embedded demo base unless it was asked
    for with ``--demo`` or ``--local`` -- demo alerts to a real webhook, or a cron job
    "succeeding" against demo data, mislead.
    """
    from .embedded import open_backend

    settings = state.settings
    for warning in _settings_file_warnings(state):
        notice(f"Warning: {warning}")
    chosen = state.local is not None or state.demo
    if not chosen and not settings.has_credentials:
        _refuse_without_credentials(state, settings, effect)
    with open_backend(settings, local=state.local, demo=state.demo) as backend:
        state.base_kind = backend.kind
        if backend.notice and chosen:
            notice(backend.notice)
        elif backend.notice:
            # Said even under --quiet when the demo base was not asked for: output made from
            # demo data must never pass for the real base's.
            sys.stderr.write(redact(backend.notice) + "\n")
        else:
            notice(f"Using {backend.description} (credentials from {credential_source(state)}).")
        yield backend


def _settings_file_warnings(state: State) -> list[str]:
    from .settings_files import unknown_variables

    return unknown_variables(state.settings_file) if state.settings_file is not None else []


def _looked_in(state: State) -> str:
    from .settings_files import user_settings_path

    if state.settings_file is not None:
        return f"the environment and {state.settings_file}"
    return f"the environment, .env up to the repository root, {user_settings_path()}"


def _refuse_without_credentials(state: State, settings: Settings, effect: str | None) -> None:
    """The errors of a command that would fall back to the embedded base but must not."""
    missing = [
        name
        for name, value in (
            ("AIRTABLE_API_KEY", settings.api_key),
            ("AIRTABLE_BASE_ID", settings.base_id),
        )
        if value is None
    ]
    if settings.endpoint_url is not None and len(missing) == 2:
        raise ConfigError(
            f"JOBTRACK_ENDPOINT_URL is set ({settings.endpoint_url}) but {' and '.join(missing)} "
            f"are not (looked in {_looked_in(state)}): set them for that server, or unset "
            "JOBTRACK_ENDPOINT_URL to use the embedded demo base"
        )
    if effect is not None and len(missing) == 2:
        raise ConfigError(
            f"refusing to {effect} with the embedded demo base: {' and '.join(missing)} are not "
            f"set (looked in {_looked_in(state)}); set them (or pass --env-file FILE), or pass "
            "--demo to use the demo base on purpose"
        )


def credential_source(state: State) -> str:
    """Where the credentials came from: the environment, the settings file, or both."""
    names = ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID")
    in_env = [n for n in names if os.environ.get(n)]
    if len(in_env) == len(names) or state.settings_file is None:
        return "the environment"
    if not in_env:
        return f"{state.settings_file}"
    return f"the environment and {state.settings_file}"


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
    demo: DemoOption = False,
    env_file: EnvFileOption = None,
    debug: DebugOption = False,
    quiet: QuietOption = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Record and repair lead-scoring job runs in Airtable."""
    if local is not None and demo:
        raise typer.BadParameter(
            "--demo uses the default demo base and --local another file: give one",
            param_hint="'--demo'",
        )
    state = State(local=local, demo=demo, env_file=env_file, debug=debug, quiet=quiet)
    ctx.obj = state
    _configure_logging(ctx, state)
    token = _current.set(state)
    ctx.call_on_close(lambda: _current.reset(token))
