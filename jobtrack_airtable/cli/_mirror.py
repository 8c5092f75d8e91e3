"""``mirror status`` and ``mirror rebuild``: the local mirror of the tracking tables
(:mod:`jobtrack_airtable.mirror`, ``docs/mirror.md``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._core import (
    EXIT_OK,
    Reads,
    _Typer,
    app,
    errors_to_exit,
    notice,
    open_base,
    out_console,
    print_json,
    state_of,
)

if TYPE_CHECKING:
    from ..admin.mirror import Mirror, MirrorStatus, RefreshResult
    from ..transport.repository import Repository
    from .embedded import Backend

mirror_app = _Typer(
    help="The local mirror of the tracking tables that sync plans from.", no_args_is_help=True
)
app.add_typer(mirror_app, name="mirror")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]
FullOption = Annotated[
    bool,
    typer.Option(
        "--full",
        help="Read the tables in full instead of refreshing the local mirror incrementally "
        "(the mirror is refreshed from that read).",
    ),
]


def open_mirror(backend: Backend, repo: Repository) -> Mirror | None:
    """The base's mirror, or ``None`` for the embedded base (reading it costs nothing, so it
    is read in full every time).  A mirror file that could not be trusted is rebuilt: one line
    says so."""
    if backend.embedded is not None:
        return None
    from ..admin.mirror import Mirror

    mirror = Mirror.for_repo(repo)
    if mirror.notice:
        notice(mirror.notice)
    return mirror


@contextmanager
def whole_table_reads(backend: Backend, *, full: bool = False) -> Iterator[Repository]:
    """A repository whose reads of the tracking tables -- whole, or selected by a formula
    given with its ``where=`` test -- come from the refreshed mirror (a plain one for the
    embedded base), saying on stderr what the refresh did.

    When the workspace's monthly quota is spent the mirror cannot be refreshed, and a stale
    answer must not pass for a current one: the plain repository is given instead, so each
    command meets the spent quota exactly as without a mirror (``check`` and ``usage``
    report it, the others fail naming it)."""
    from ..admin.mirror.reads import MirroredRepository
    from ..errors import QuotaExhaustedError
    from ..transport.repository import Repository

    repo = Repository(backend.conn)
    mirror = open_mirror(backend, repo)
    if mirror is None:
        yield repo
        return
    with mirror:
        try:
            result: RefreshResult | None = mirror.refresh(repo, full=full)
        except QuotaExhaustedError:
            result = None
        if result is None:
            notice("Mirror: not refreshed (the monthly API quota is spent); reading the base.")
            yield repo
        else:
            notice(refreshed_line(result))
            yield MirroredRepository(backend.conn, mirror)


def refreshed_line(result: RefreshResult) -> str:
    """One line on what a refresh did (stderr)."""
    changed = sum(result.changed.values())
    how = (
        "deletions from webhook payloads"
        if result.deletions == "webhook"
        else ("deletions by key-only scan" + ("" if result.complete else " (not due: may lag)"))
    )
    if result.kind == "full":
        return f"Mirror: full read ({result.why_full}), {changed:,} rows; {how}."
    return f"Mirror: {changed:,} changed and {result.deleted:,} deleted row(s) read; {how}."


def _status_json(status: MirrorStatus) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(status)
    data["scan_interval_seconds"] = data.pop("scan_interval").total_seconds()
    return {**data, "deletions_found_by": status.describe_deletions()}


@contextmanager
def _the_mirror(ctx: typer.Context) -> Iterator[tuple[Repository, Mirror]]:
    """The configured base's repository and mirror; for the embedded base (which has none)
    one line says so and the command exits 0."""
    from ..transport.repository import Repository

    state = state_of(ctx)
    with errors_to_exit(state), open_base(state) as backend:
        repo = Repository(backend.conn)
        mirror = open_mirror(backend, repo)
        if mirror is None:
            notice("The embedded local base has no mirror: it is read in full every time.")
            raise typer.Exit(EXIT_OK)
        with mirror:
            yield repo, mirror


@mirror_app.command("status")
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Rows, last refresh, lag and how deletions are found (no request to the base)."""
    with _the_mirror(ctx) as (repo, mirror):
        report = mirror.status(repo)
    if as_json:
        print_json(_status_json(report))
        return
    lag = "never refreshed" if report.lag_seconds is None else f"{report.lag_seconds:,.0f} s"
    rows = ", ".join(f"{t} {n:,}" for t, n in report.rows.items())
    console = out_console()
    for line in (
        f"Mirror {report.path}",
        f"Rows: {rows}",
        f"Last refresh: {report.last_refresh or 'never'} (lag {lag}); "
        f"last full read: {report.last_full or 'never'}",
        f"Deletions: {report.describe_deletions()}",
    ):
        console.print(line, markup=False, highlight=False)


@mirror_app.command("rebuild")
def rebuild(ctx: typer.Context) -> None:
    """Read both tables in full into the mirror (and watch for deletions from now on)."""
    with _the_mirror(ctx) as (repo, mirror), Reads("Reading the base"):
        result = mirror.rebuild(repo)
    notice(refreshed_line(result))
