"""``local serve`` and ``local seed``: the local Airtable-compatible server and its data.

``local serve`` builds the server through its library API (:class:`~.local.LocalAirtable`
and :class:`~.local.FaultInjector`): its options are this CLI's own, checked by typer, so a
mistake is the CLI's one-line usage error, not another program's.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError
from ._core import (
    errors_to_exit,
    local_app,
    notice,
    state_of,
)

if TYPE_CHECKING:
    from ..local import FaultInjector

_DEFAULT_BASE_ID = "appJobtrackLocal1"  # the server's default (local.server.DEFAULT_BASE_ID)


def _rate_limit(text: str) -> int | None:
    """``--rate-limit``: requests/s per base, or ``off``."""
    if text.lower() in ("off", "none", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise typer.BadParameter(
            f"{text!r} is not a whole number of requests/s >= 1 or 'off'",
            param_hint="'--rate-limit'",
        )
    return value


def _loopback(host: str) -> str:
    """``--host``: the server is for this machine only (SPEC §5), so only loopback binds."""
    if host == "localhost":
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise typer.BadParameter(f"{host!r} is not a loopback address; use 127.0.0.1 or ::1")


def _faults(rules_file: Path | None, shorthand: list[str], seed: int | None) -> FaultInjector:
    from ..local import FaultInjector
    from ..local.faults import parse_fault_option

    faults = FaultInjector.load(rules_file) if rules_file is not None else FaultInjector()
    if seed is not None:
        faults.seed(seed)
    for text in shorthand:
        try:
            spec = parse_fault_option(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--fault'") from None
        faults.add(spec.pop("kind"), **spec)
    return faults


def _existing_parent(path: Path, option: str) -> Path:
    """A data file may be created, but only in a directory that exists (a mistyped path
    must not leave directories behind)."""
    if path.is_dir():
        raise typer.BadParameter(
            f"{str(path)!r} is a directory; give a file path such as {str(path / 'base.json')!r}",
            param_hint=f"'{option}'",
        )
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise typer.BadParameter(
            f"the directory {str(path.parent)!r} {what}; create it first or fix the path",
            param_hint=f"'{option}'",
        )
    return path


@local_app.command("serve")
def local_serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(callback=_loopback, help="Bind address (loopback only)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 = any free port).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="JOBTRACK_LOCAL_TOKEN",
            show_envvar=True,
            show_default=False,
            help="Bearer token clients must send (never printed).",
        ),
    ] = None,
    base_id: Annotated[
        str, typer.Option("--base-id", help="Base ID (app + 14 characters).")
    ] = _DEFAULT_BASE_ID,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            dir_okay=False,
            show_default=False,
            help="Persist to this JSON file (default: --local if given, else memory).",
        ),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema", exists=True, dir_okay=False, show_default=False, help="Schema TOML file."
        ),
    ] = None,
    rate_limit: Annotated[
        str, typer.Option("--rate-limit", help="Requests/s per base, or 'off'.")
    ] = "5",
    penalty: Annotated[
        float, typer.Option(min=0, help="Seconds a base is locked out after a 429.")
    ] = 30.0,
    faults_file: Annotated[
        Path | None,
        typer.Option(
            "--faults",
            exists=True,
            dir_okay=False,
            show_default=False,
            help="Fault rules file (JSON, or TOML by extension).",
        ),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KIND[:P][@METHOD]",
            show_default=False,
            help="Random fault, e.g. 503:0.05@PATCH (repeatable).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(show_default=False, help="Seed of the fault RNG.")
    ] = None,
) -> None:
    """Serve a local Airtable-compatible base until interrupted (Ctrl-C or SIGTERM).

    While it serves a file, CLI commands using that file as --local wait for it (they share a
    lock).  The token is never printed.
    """
    from ..local import LocalAirtable
    from ..testing import tracking_tables
    from .embedded import lock_local_base

    state = state_of(ctx)
    with errors_to_exit(state):
        limit = _rate_limit(rate_limit)
        if not token:
            raise typer.BadParameter(
                "a bearer token is required: pass --token or set JOBTRACK_LOCAL_TOKEN",
                param_hint="'--token'",
            )
        path = data if data is not None else state.local
        if path is not None:
            _existing_parent(path, "--data" if data is not None else "--local")
        faults = _faults(faults_file, fault or [], seed)
        # The embedded base loads the whole file per command: serving it at the same time
        # would let one overwrite the other's writes, so the server holds the file's lock.
        lock = lock_local_base(path, timeout=0) if path is not None else contextlib.nullcontext()
        with lock:
            try:
                server = LocalAirtable(
                    tables=tracking_tables(
                        schema if schema is not None else state.settings.schema_file
                    ),
                    token=token,
                    base_id=base_id,
                    data_path=path,
                    rate_limit=limit,
                    penalty_seconds=penalty,
                    faults=faults,
                    host=host,
                    port=port,
                ).start()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise ConfigError(
                    f"cannot listen on {host}:{port}: the address is already in use (another "
                    "server?); stop it, or pick another --port (0 = any free port)"
                ) from None
            _serve(server, path, limit)


def _serve(server: object, path: Path | None, limit: int | None) -> None:
    from ..local import LocalAirtable

    assert isinstance(server, LocalAirtable)

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    tables = ", ".join(t.name for t in server.store.tables(server.base_id))
    sys.stdout.write(
        f"Local Airtable serving base {server.base_id} at {server.url} (tables: {tables}; "
        f"data: {path or 'memory only'}; rate limit: {f'{limit}/s' if limit else 'off'})\n"
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    sys.stdout.write("Local Airtable stopped.\n")
    sys.stdout.flush()


@local_app.command("seed")
def local_seed(
    ctx: typer.Context,
    reset: Annotated[
        bool, typer.Option("--reset", help="Replace an existing local base (its data is lost).")
    ] = False,
) -> None:
    """Fill the local base (--local PATH, or the embedded default) with the demo dataset."""
    from ..schema import load_schema
    from . import embedded

    state = state_of(ctx)
    with errors_to_exit(state):
        if state.local is not None:
            path = _existing_parent(state.local, "--local")
        else:
            path = embedded.default_local_path()
            path.parent.mkdir(parents=True, exist_ok=True)
        schema = load_schema(state.settings.schema_file)
        held = embedded.count_records(path)
        if held and not reset:
            raise ConfigError(
                f"the local base {str(path)!r} already holds {held} records; pass --reset to "
                "replace it with the demo dataset"
            )
        with embedded.lock_local_base(path):
            if embedded.count_records(path) and not reset:  # filled while we waited
                raise ConfigError(f"the local base {str(path)!r} was filled meanwhile")
            counts = embedded.seed_file(path, schema)
        notice(
            f"Seeded the local base at {path}: {counts.get('jobs', 0)} job rows and "
            f"{counts.get('client_runs', 0)} client rows."
        )
