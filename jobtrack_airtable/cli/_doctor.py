"""``doctor``: check everything the commands depend on and say how to fix what is wrong
(:mod:`jobtrack_airtable.ops.doctor`).  Exit 0 healthy (warnings allowed), 1 problems."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError
from ._core import (
    EXIT_ERROR,
    app,
    credential_source,
    errors_to_exit,
    open_base,
    print_json,
    state_of,
)

if TYPE_CHECKING:
    from ..admin.ops.doctor import Finding

_MARK = {"ok": "✓", "warning": "!", "problem": "✗"}
_INDENT = " " * 15


def _lines(findings: list[Finding]) -> list[str]:
    lines = []
    for f in findings:
        lines.append(f"{_MARK[f.level.value]} {f.check:<12} {f.message}")
        if f.fix and f.level.value != "ok":
            lines.append(f"{_INDENT}fix: {f.fix}")
    problems = sum(f.level.value == "problem" for f in findings)
    warnings = sum(f.level.value == "warning" for f in findings)
    if problems:
        lines.append(f"Doctor: {problems} problem(s), {warnings} warning(s).")
    else:
        extra = f" ({warnings} warning(s))" if warnings else ""
        lines.append(f"Doctor: healthy{extra}.")
    return lines


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check credentials, endpoint, token scopes, base and schema, the limiter's store,
    quota and clock; each problem comes with its fix.

    Exit 0 when healthy (warnings allowed), 1 when a problem was found.

    Example: jobtrack-airtable doctor --env-file /srv/app/.env
    """
    from ..admin.ops.doctor import Checkup, Finding, Level, doctor_to_json, run_doctor

    state = state_of(ctx)
    with errors_to_exit(state):
        try:
            with open_base(state) as backend:
                source = (
                    str(backend.embedded.path)
                    if backend.embedded is not None
                    else credential_source(state)
                )
                checkup = Checkup(
                    conn=backend.conn,
                    settings=state.settings,
                    credentials=source,
                    embedded=backend.embedded is not None,
                )
                findings = run_doctor(checkup)
        except ConfigError as exc:
            findings = [Finding("credentials", Level.PROBLEM, str(exc))]
        if as_json:
            print_json(doctor_to_json(findings))
        else:
            typer.echo("\n".join(_lines(findings)))
        if any(f.level is Level.PROBLEM for f in findings):
            raise typer.Exit(EXIT_ERROR)
