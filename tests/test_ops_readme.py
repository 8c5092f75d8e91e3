"""The README's sections on alert rules and metrics show real output: each block between
``<!-- NAME -->`` markers is regenerated here, through the real path (rows over HTTP into a
local server, notifications through apprise to a real webhook), at a fixed clock, and must
match line for line.  ``python -m tests.test_ops_readme`` prints the blocks afresh."""

from __future__ import annotations

import re
import sys
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobtrack_airtable.admin.ops.config import CheckConfig
from jobtrack_airtable.admin.ops.health import ProblemKind, run_check
from jobtrack_airtable.admin.ops.notify import build_targets
from jobtrack_airtable.admin.ops.prometheus import BaseMetrics, exposition, read_metrics_rows
from jobtrack_airtable.admin.ops.quota import usage_report
from jobtrack_airtable.admin.ops.state import locked_state
from jobtrack_airtable.local import LocalAirtable

from .ops_rows import client, connect, job, put
from .webhook import running_webhook

README = Path(__file__).resolve().parent.parent / "README.md"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
RULES_TOML = """\
max_runtime = "3h"            # every stream without its own
failures_to_alert = 2         # a stream alerts after 2 failed runs in a row...
successes_to_resolve = 1      # ... and resolves after 1 success

[clients]
zero_leads_streak = 3         # a client whose last 3 runs scored no lead

[[schedule]]
stream = 1
every = "day"
by = "07:00"
max_runtime = "45m"           # stream 1's own limit
min_interval = "2h"           # closer together: too frequent or duplicated
"""


def marked(name: str) -> str:
    """The README's text between ``<!-- name -->`` and ``<!-- /name -->``."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name} -->\n(.*?)<!-- /{name} -->", text, re.S)
    assert found, f"no <!-- {name} --> block in the README"
    return found.group(1)


def block(name: str) -> str:
    """The code block between the markers."""
    found = re.fullmatch(r"```[a-z]*\n(.*?)```\n", marked(name), re.S)
    assert found, f"<!-- {name} --> holds no single code block"
    return found.group(1)


def rules_messages(srv: LocalAirtable, state_dir: Path) -> str:
    """Two checks an hour apart over a base with a run too long, a duplicated start, a
    failing stream and a client scoring nothing; the webhook's messages, in order."""
    repo = connect(srv)
    put(
        repo,
        [
            job(NOW - 5 * HOUR, "Completed", stream=1, minutes=20),  # 07:00
            job(NOW - 5 * HOUR + timedelta(minutes=4), "Completed", stream=1, minutes=5),
            job(NOW - HOUR, "Running", stream=1, minutes=None),  # 11:00, over 45m at 11:45
            job(NOW - 6 * HOUR, "Failed", stream=2, minutes=5, notes="scoring API down"),
            job(NOW - 3 * HOUR, "Failed", stream=2, minutes=5, notes="scoring API down"),
        ],
        [
            client(NOW - 6 * HOUR, "Carl-Jones", "No Leads To Score"),
            client(NOW - 5 * HOUR, "Carl-Jones", "No Leads To Score"),
            client(NOW - 3 * HOUR, "Carl-Jones", "No Leads To Score"),
        ],
    )
    config = CheckConfig.parse(tomllib.loads(RULES_TOML))
    lines = []
    with running_webhook() as hook:
        targets = build_targets([hook.url()])
        path = state_dir / "state.json"
        seen = 0
        for now in (NOW, NOW + HOUR):
            if now > NOW:
                put(repo, [job(NOW + HOUR / 2, "Completed", stream=2, minutes=5)])
            with locked_state(path, srv.base_id) as state:
                report = run_check(
                    repo, config, state, stuck_after=6 * HOUR, targets=targets, now=now
                )
            lines.append(f"# check at {now:%H:%M} UTC: exit {report.exit_code}")
            posts = list(zip(hook.titles(), hook.messages(), strict=True))
            lines += [f"{t.split(': ', 1)[1]}: {m}" for t, m in posts[seen:]]
            seen = len(posts)
    return "\n".join(lines) + "\n"


def metrics_text(srv: LocalAirtable) -> str:
    repo = connect(srv)
    put(
        repo,
        [
            job(NOW - 5 * HOUR, "Completed", stream=1, minutes=12),
            job(NOW - 3 * HOUR, "Failed", stream=1, minutes=40),
            job(NOW - HOUR, "Running", stream=2, minutes=None),
        ],
        [
            client(NOW - 5 * HOUR, "Guy-Wilson", "Completed"),
            client(NOW - 3 * HOUR, "Guy-Wilson", "Failed"),
            client(NOW - 3 * HOUR, "Dana-Li", "No Leads To Score"),
        ],
    )
    data = BaseMetrics(NOW, read_metrics_rows(repo, now=NOW), api_calls=41_230, quota=100_000)
    text = exposition(data).decode()
    # The README leaves out HELP lines and the buckets but one, to stay short.
    kept = [
        line
        for line in text.splitlines()
        if not line.startswith("# HELP")
        and ("_bucket" not in line or 'le="600.0"' in line or 'le="+Inf"' in line)
    ]
    return "\n".join(kept) + "\n"


def usage_text(srv: LocalAirtable) -> str:
    """``usage --workspace-calls 41230`` on a base whose own calls are not counted."""
    from jobtrack_airtable.cli._usage import _lines, uncounted_note

    repo = connect(srv)
    now = datetime(2026, 12, 16, 0, 0, tzinfo=UTC)  # half the month gone
    put(
        repo,
        [job(now - timedelta(days=d), "Completed") for d in range(1, 11)],
        [client(now - timedelta(days=d), "Guy-Wilson", "Completed") for d in range(1, 11)],
    )
    report = usage_report(
        repo,
        srv.settings(rate_limit=0),
        plan="team",
        now=now,
        uncounted=uncounted_note(True),
        workspace_calls=41_230,
    )
    return "$ jobtrack-airtable usage --workspace-calls 41230\n" + "\n".join(_lines(report)) + "\n"


def test_the_readme_shows_the_rules_messages(make_local_airtable, tmp_path: Path) -> None:
    assert block("check-rules-toml") == RULES_TOML
    assert block("check-rules-messages") == rules_messages(make_local_airtable(), tmp_path)


def test_the_readme_shows_the_metrics(make_local_airtable) -> None:
    assert block("metrics-output") == metrics_text(make_local_airtable())


def test_the_readme_shows_the_workspace_usage(make_local_airtable) -> None:
    assert block("usage-workspace") == usage_text(make_local_airtable())


def test_the_readme_lists_every_problem_kind() -> None:
    table = marked("problem-kinds")
    labels = [row.split("|")[1].strip() for row in table.splitlines()[2:] if row.startswith("|")]
    assert labels == [k.label for k in ProblemKind]


def main() -> int:
    from jobtrack_airtable.testing import TrackingServer

    from .conftest import TEST_BASE_ID, TEST_TOKEN

    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (
            ("check-rules-messages", lambda s: rules_messages(s, Path(tmp))),
            ("metrics-output", metrics_text),
            ("usage-workspace", usage_text),
        ):
            with TrackingServer(token=TEST_TOKEN, base_id=TEST_BASE_ID, rate_limit=None) as srv:
                sys.stdout.write(f"<!-- {name} -->\n{make(srv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
