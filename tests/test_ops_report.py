"""``report``: the numbers (jobtrack_airtable.admin.ops.report_data), the self-contained HTML page,
and that page in a real headless Chromium — no console errors, no network, charts drawn."""

from __future__ import annotations

import json
import struct
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobtrack_airtable.admin.ops.notify import MissingExtraError
from jobtrack_airtable.admin.ops.report_data import ReportData, collect_report, report_to_json
from jobtrack_airtable.admin.ops.report_html import CHART_IDS, plotly_bundle, render_html
from jobtrack_airtable.cli import app
from jobtrack_airtable.local import LocalAirtable
from jobtrack_airtable.transport.repository import Repository

from .browser import find_chromium, load_page
from .conftest import MakeLocalAirtable
from .helpers import clear_settings_env
from .ops_rows import client, connect, job, put

DAY1 = datetime(2025, 9, 28, 8, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)
SINCE = datetime(2025, 9, 28, 0, 0, tzinfo=UTC)
UNTIL = datetime(2025, 9, 30, 23, 59, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def srv(make_local_airtable: MakeLocalAirtable) -> LocalAirtable:
    return make_local_airtable()


@pytest.fixture
def repo(srv: LocalAirtable) -> Repository:
    return connect(srv)


def _period(repo: Repository) -> None:
    """Three days: two completed stream-1 jobs, a failed stream-2 job, a running job; plus a
    job the day before the period, which the report must leave out."""
    second = DAY1 + timedelta(hours=6)
    put(
        repo,
        [
            job(DAY1, "Completed", stream=1, minutes=10),
            job(second, "Completed", stream=1, minutes=20),
            job(DAY2, "Failed", stream=2, minutes=30),
            job(DAY3, "Running", stream=1, minutes=None),
            job(DAY1 - timedelta(days=1), "Completed", stream=1, minutes=99),
        ],
        [
            client(DAY1, "Guy-Wilson", "Completed", seconds=60, profile_tokens=100,
                   post_tokens=50, cost=1.25),
            client(second, "Guy-Wilson", "Completed", seconds=180, profile_tokens=200,
                   cost=0.75),
            client(DAY2, "Carl-Jones", "Failed", seconds=30, error="TimeoutError: no answer"),
            client(DAY2, "Ana-María-López", "Completed", seconds=600, offset=40, post_tokens=7),
            client(DAY3, HOSTILE, "Failed", seconds=5, error="<script>alert(2)</script>"),
            client(DAY1 - timedelta(days=1), "Guy-Wilson", "Completed", seconds=9999, cost=50),
        ],
    )  # fmt: skip


def test_collect_report_numbers(srv: LocalAirtable, repo: Repository) -> None:
    _period(repo)
    srv.request_log.clear()
    data = collect_report(repo, since=SINCE, until=UNTIL)
    assert srv.request_log.total == 2  # one listing per table
    assert (data.jobs, data.client_runs) == (4, 5)
    assert data.runs_per_day == {
        date(2025, 9, 28): Counter({"Completed": 2}),
        date(2025, 9, 29): Counter({"Failed": 1}),
        date(2025, 9, 30): Counter({"Running": 1}),
    }
    assert data.days == [date(2025, 9, 28), date(2025, 9, 29), date(2025, 9, 30)]
    assert data.stream_durations == {1: [600.0, 1200.0], 2: [1800.0]}
    guy = next(c for c in data.clients if c.client_id == "Guy-Wilson")
    assert (guy.runs, guy.profile_tokens, guy.post_tokens, guy.tokens) == (2, 300, 50, 350)
    assert guy.apify_cost == Decimal("2.00")
    assert (guy.mean_seconds, guy.max_seconds) == (120.0, 180.0)
    # Equal failures and rates: by client ID ("<" sorts before letters).
    assert [c.client_id for c in data.clients_with_errors()] == [HOSTILE, "Carl-Jones"]
    carl = next(c for c in data.clients if c.client_id == "Carl-Jones")
    assert carl.last_error == "TimeoutError: no answer" and carl.error_rate == 1.0
    assert [c.client_id for c in data.slowest_clients(3)] == [
        "Ana-María-López",
        "Guy-Wilson",
        "Carl-Jones",
    ]
    assert data.total_tokens == 357 and data.total_cost == Decimal("2.00")


def test_report_json_document(srv: LocalAirtable, repo: Repository) -> None:
    _period(repo)
    doc = report_to_json(collect_report(repo, since=SINCE, until=UNTIL))
    json.dumps(doc)  # JSON-ready: no Decimals or datetimes left
    assert doc["runs_per_day"]["2025-09-29"] == {
        "Running": 0,
        "Completed": 0,
        "Failed": 1,
        "No Leads To Score": 0,
        "Unmapped": 0,
    }
    assert doc["total_apify_cost"] == 2.0
    assert doc["stream_durations_seconds"] == {"1": [600.0, 1200.0], "2": [1800.0]}


def test_html_is_self_contained_and_escaped(srv: LocalAirtable, repo: Repository) -> None:
    _period(repo)
    page = render_html(collect_report(repo, since=SINCE, until=UNTIL))
    for chart_id in CHART_IDS:
        assert f'id="{chart_id}"' in page
    # Nothing to fetch: no external scripts, stylesheets, fonts or images.
    assert "<script src" not in page and "<link" not in page and "<img" not in page
    # Every chart's figure in the one JSON block the drawing script reads after layout.
    figures = json.loads(
        page.split("<script type='application/json' id='figures'>")[1].split("</script>")[0]
    )
    assert sorted(figures) == sorted(CHART_IDS)
    assert page.count("Plotly.newPlot(") == 1 + BUNDLE_NEWPLOTS
    # Base text is escaped in the table and JSON-encoded (with < escaped) in the charts.
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<script>alert(2)" not in page


BUNDLE_NEWPLOTS = plotly_bundle().count("Plotly.newPlot(")


def test_the_page_inlines_the_cartesian_bundle_only(srv: LocalAirtable, repo: Repository) -> None:
    _period(repo)
    page = render_html(collect_report(repo, since=SINCE, until=UNTIL))
    bundle = plotly_bundle()
    assert bundle.startswith("/**\n* plotly.js (cartesian - minified)")
    assert page.count(bundle) == 1
    size = len(page.encode())
    print(f"\nreport page: {size / 1e6:.2f} MB (bundle {len(bundle.encode()) / 1e6:.2f} MB)")
    assert size < 2_000_000  # the full plotly.js alone is 4.8 MB


def test_on_call_sections(srv: LocalAirtable, repo: Repository) -> None:
    _period(repo)
    data = collect_report(repo, since=SINCE, until=UNTIL)
    oc = data.on_call
    assert oc is not None
    # The job left Running on day 3 is stuck: what `check` says, from the same code.
    assert [(p.kind.value, p.key) for p in oc.attention] == [
        ("stuck_run", f"stuck_run:{DAY3:%y%m%d-%H%M%S}")
    ]
    assert [(r.run_id, r.status, r.seconds, r.clients, r.failed_clients) for r in oc.runs] == [
        (f"{DAY3:%y%m%d-%H%M%S}", "Running", None, 1, 1),
        (f"{DAY2:%y%m%d-%H%M%S}", "Failed", 1800.0, 2, 1),
        (f"{DAY1 + timedelta(hours=6):%y%m%d-%H%M%S}", "Completed", 1200.0, 1, 0),
        (f"{DAY1:%y%m%d-%H%M%S}", "Completed", 600.0, 1, 0),
    ]
    assert oc.failures == {"Carl-Jones": {DAY2.date(): 1}, HOSTILE: {DAY3.date(): 1}}
    assert [(e.name, e.count, e.clients) for e in oc.errors] == [
        ("TimeoutError", 1, 1),
        ("other", 1, 1),
    ]
    assert [(t.stream, t.runs, t.p95) for t in oc.trends] == [(1, 2, 1200.0), (2, 1, 1800.0)]
    doc = report_to_json(data)["on_call"]
    assert [a["kind"] for a in doc["attention"]] == ["stuck_run"]
    assert [r["run_id"] for r in doc["runs"]] == [r.run_id for r in oc.runs]
    assert doc["errors_by_class"][0]["class"] == "TimeoutError"
    assert doc["streams"][0] == {
        "stream": 1,
        "runs": 2,
        "p95_seconds": 1200.0,
        "median_seconds_by_day": {DAY1.date().isoformat(): 600.0},
    }
    page = render_html(data)
    assert "Needs attention now" in page and "run stuck" in page
    assert page.count("<tr>") >= 4 + 2  # the runs and the error classes


def test_empty_period_says_so(srv: LocalAirtable, repo: Repository) -> None:
    data = collect_report(repo, since=SINCE, until=UNTIL)
    page = render_html(data)
    assert "No runs in this period." in page
    assert "Plotly.newPlot" not in page


def test_without_plotly_a_clear_error(
    srv: LocalAirtable, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = collect_report(repo, since=SINCE, until=UNTIL)
    # A None entry makes `import plotly…` raise ImportError, as if it were not installed.
    for name in [m for m in sys.modules if m == "plotly" or m.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(MissingExtraError, match=r"jobtrack-airtable\[ops\]"):
        render_html(data)


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(srv: LocalAirtable, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("AIRTABLE_API_KEY", srv.token)
    monkeypatch.setenv("AIRTABLE_BASE_ID", srv.base_id)
    monkeypatch.setenv("JOBTRACK_ENDPOINT_URL", srv.url)
    monkeypatch.setenv("JOBTRACK_RATE_LIMIT", "0")


@pytest.mark.usefixtures("cli_env")
def test_report_command_writes_the_page_and_json(repo: Repository, tmp_path: Path) -> None:
    _period(repo)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        ["report", "--html", str(out), "--since", "2025-09-28", "--until", "2025-09-30T23:59Z",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # stdout holds the JSON document only
    assert (doc["jobs"], doc["client_runs"]) == (4, 5)
    assert f"Wrote {out}" in result.stderr
    assert 'id="chart-slowest"' in out.read_text(encoding="utf-8")


@pytest.mark.usefixtures("cli_env")
def test_report_command_needs_an_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 1
    assert "--html FILE, --json" in result.stderr
    result = CliRunner().invoke(app, ["report", "--json", "--since", "yesterday"])
    assert result.exit_code == 1 and "'yesterday'" in result.stderr


# -- in a real browser -------------------------------------------------------------------------

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium; .ci/run does)"
)

#: Per chart: drawn (an SVG exists) and how many bars / boxes plotly drew in it.
PROBE = (
    "Object.fromEntries("
    + json.dumps(list(CHART_IDS))
    + """.map(id => {
  const el = document.getElementById(id);
  const n = sel => el ? el.querySelectorAll(sel).length : 0;
  return [id, {svg: n('svg.main-svg'), traces: n('g.trace'), bars: n('g.point'),
               boxes: n('g.trace.boxes'), heatmaps: n('g.hm')}];
}))"""
)
HOSTILE_PROBE = "document.querySelectorAll('img').length"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


#: Per chart: the card (its section) and the drawn SVG's box, to see it fits.
FIT_PROBE = (
    "Object.fromEntries("
    + json.dumps(list(CHART_IDS))
    + """.map(id => {
  const el = document.getElementById(id);
  const card = el.closest('section').getBoundingClientRect();
  const svg = el.querySelector('svg.main-svg').getBoundingClientRect();
  return [id, {card: [card.left, card.right], svg: [svg.left, svg.right]}];
}))"""
)


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [1400, 800])
def test_report_in_headless_chromium(
    srv: LocalAirtable, repo: Repository, tmp_path: Path, width: int
) -> None:
    """At the width the page is opened at (no resize afterwards): every chart drawn inside
    its card, no console error, nothing fetched."""
    _period(repo)
    page = tmp_path / "report.html"
    page.write_text(render_html(collect_report(repo, since=SINCE, until=UNTIL)), encoding="utf-8")
    load = load_page(
        page,
        selector="body[data-charts=drawn]",
        expect=1,
        width=width,
        probe=f"[{PROBE}, {HOSTILE_PROBE}, {FIT_PROBE}, document.documentElement.scrollWidth]",
        screenshot=width == 1400,
    )
    assert load.found == 1, "the charts were never drawn"
    assert load.errors == []
    assert load.network == []  # nothing fetched: the page works offline
    charts, images, fits, scroll_width = load.probe
    assert images == 0  # the hostile client ID stayed text
    assert all(c["svg"] >= 1 for c in charts.values()), charts
    for chart_id, fit in fits.items():
        (card_left, card_right), (svg_left, svg_right) = fit["card"], fit["svg"]
        assert card_left <= svg_left and svg_right <= card_right, (width, chart_id, fit)
    assert scroll_width <= width  # nothing sticks out of the page either
    # What plotly drew: one trace per status present, a bar per day in each...
    assert charts["chart-runs-per-day"]["traces"] == 3
    assert charts["chart-runs-per-day"]["bars"] == 3 * 3
    assert charts["chart-duration-per-stream"]["boxes"] == 2  # streams 1 and 2
    assert charts["chart-client-errors"]["bars"] == 2
    assert charts["chart-tokens"]["bars"] == 2 * 4  # two stacks over four clients
    assert charts["chart-cost"]["bars"] == 4
    assert charts["chart-slowest"]["bars"] == 4
    assert charts["chart-duration-trend"]["traces"] == 2  # streams 1 and 2
    assert charts["chart-failure-heatmap"]["heatmaps"] == 1
    if width == 1400:
        shot_width, height = _png_size(load.screenshot)
        assert shot_width == 1400 and height > 900


def test_the_fit_check_would_catch_the_old_clipping() -> None:
    """The probe's arithmetic flags a chart drawn wider than its card (1312 px in 632 px)."""
    card, svg = (28.0, 660.0), (44.0, 1356.0)
    assert not (card[0] <= svg[0] and svg[1] <= card[1])


@pytest.mark.slow
@needs_chromium
def test_the_browser_check_catches_errors_and_network(tmp_path: Path) -> None:
    """The harness itself can fail: console errors, exceptions and fetches are all seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>x</p>"
        "<img src='http://127.0.0.1:9/missing.png'>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    load = load_page(page, selector="p", expect=1)
    assert any("boom" in e for e in load.errors)
    assert any("undefinedFunction" in e for e in load.errors)
    assert load.network == ["http://127.0.0.1:9/missing.png"]


def test_report_data_of_nothing_is_empty(srv: LocalAirtable, repo: Repository) -> None:
    data: ReportData = collect_report(repo, since=SINCE, until=UNTIL)
    assert (data.jobs, data.client_runs, data.clients) == (0, 0, [])
    assert data.total_cost == Decimal(0) and data.slowest_clients() == []
