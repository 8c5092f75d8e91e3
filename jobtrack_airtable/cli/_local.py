"""``local serve`` and ``local seed``: the local Airtable-compatible server and its data."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from ..local.__main__ import main as local_main
from ..schema import load_schema
from ..testing import tracking_tables
from . import embedded
from ._core import (
    errors_to_exit,
    local_app,
    state_of,
)
from .embedded import count_records, lock_local_base
from .embedded import seed_file as _seed_file


@local_app.command("serve")
def local_serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8765,
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
    ] = "appJobtrackLocal1",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            dir_okay=False,
            help="Persist to this JSON file (default: --local if given, else memory).",
        ),
    ] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", dir_okay=False, help="Schema TOML file.")
    ] = None,
    rate_limit: Annotated[
        str, typer.Option("--rate-limit", help="Requests/s per base, or 'off'.")
    ] = "5",
) -> None:
    """Serve a local Airtable-compatible base until interrupted (Ctrl-C).

    Same as `python -m jobtrack_airtable.local serve`.  While it serves a file, CLI commands
    using that file as --local wait for it (they share a lock).
    """
    state = state_of(ctx)
    with errors_to_exit(state):
        path = data if data is not None else state.local
        argv = [
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--base-id",
            base_id,
            "--rate-limit",
            rate_limit,
        ]
        if token:
            argv += ["--token", token]
        if path is not None:
            argv += ["--data", str(path)]
        # The embedded base loads the whole file per command: serving it at the same time
        # would let one overwrite the other's writes, so the server holds the file's lock.
        lock = lock_local_base(path, timeout=0) if path is not None else contextlib.nullcontext()
        with lock:
            code = local_main(argv, tables=tracking_tables(schema))
        raise typer.Exit(code)


@local_app.command("seed")
def local_seed(
    ctx: typer.Context,
    reset: Annotated[
        bool, typer.Option("--reset", help="Replace an existing local base (its data is lost).")
    ] = False,
) -> None:
    """Fill the local base (--local PATH, or the embedded default) with the demo dataset."""
    state = state_of(ctx)
    with errors_to_exit(state):
        path = state.local if state.local is not None else embedded.default_local_path()
        schema = load_schema(state.settings.schema_file)
        held = count_records(path)
        if held and not reset:
            raise ConfigError(
                f"the local base {str(path)!r} already holds {held} records; pass --reset to "
                "replace it with the demo dataset"
            )
        with lock_local_base(path):
            if count_records(path) and not reset:  # filled while we waited for the lock
                raise ConfigError(f"the local base {str(path)!r} was filled meanwhile")
            counts = _seed_file(path, schema)
        sys.stderr.write(
            f"Seeded the local base at {path}: {counts.get('jobs', 0)} job rows and "
            f"{counts.get('client_runs', 0)} client rows.\n"
        )
