"""The self-contained HTML page of ``jobtrack-airtable report --html FILE``.

Figures are built with plotly (``pip install 'jobtrack-airtable[ops]'``, imported only here and
only when a page is rendered) and drawn by plotly.js's *cartesian* bundle, vendored as package
data (``vendor/plotly-cartesian.min.js``, 1.5 MB instead of the full 4.8 MB) and inlined once,
so the file opens anywhere, offline, with nothing fetched: no CDN, no fonts, no MathJax.
Every text that comes from the base (client IDs, error details) is HTML-escaped in tables and
JSON-encoded with ``<`` escaped in the figures.

Charts are drawn once the document is parsed and laid out (not while the grid is still being
built, which drew the first chart at the page's full width inside a half-width card), with
plotly's autosize and a ``ResizeObserver`` per chart, so a chart always fills its card.

Sections, for on-call first: needs attention now (the conditions ``check`` reports, from the
same code), the period's runs (a sortable table), failures per client and day (a heatmap),
errors grouped by class, the duration trend and p95 per stream; then summary figures, runs per
day by status, job duration per stream, clients with errors, tokens and Apify cost per client,
the slowest clients.  A period without runs gives a page saying so instead of empty charts.
"""

from __future__ import annotations

import html
import json
from datetime import timedelta
from importlib import resources
from typing import Any

from ...durations import format_duration
from ...errors import MissingExtraError
from .report_data import STATUS_ORDER, ClientSummary, ReportData
from .report_oncall import OnCall

__all__ = ["BUNDLE", "CHART_IDS", "plotly_bundle", "render_html"]

#: The plotly.js bundle inlined in every page, relative to this package.
BUNDLE = "vendor/plotly-cartesian.min.js"

#: The ``id`` of every chart's element, in page order (tests look for them).
CHART_IDS = (
    "chart-failure-heatmap",
    "chart-duration-trend",
    "chart-runs-per-day",
    "chart-duration-per-stream",
    "chart-client-errors",
    "chart-tokens",
    "chart-cost",
    "chart-slowest",
)

_STATUS_COLOURS = {
    "Running": "#3b82f6",
    "Completed": "#16a34a",
    "Failed": "#dc2626",
    "No Leads To Score": "#a3a3a3",
    "Unmapped": "#9333ea",
}
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f5f5f4; color: #1c1917; }
header { background: #1c1917; color: #fafaf9; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #d6d3d1; font-size: 14px; }
main { padding: 18px 28px 40px; max-width: 1400px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 12px 16px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .v { font-size: 24px; font-weight: 600; }
.card .k { font-size: 12px; color: #78716c; text-transform: uppercase; letter-spacing: .04em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px;
        margin-top: 16px; }
section { background: #fff; border-radius: 8px; padding: 12px 16px;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 0; }
section h2 { font-size: 16px; margin: 4px 0 8px; }
.chart { height: 360px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e7e5e4;
         vertical-align: top; }
td.n, th.n { text-align: right; white-space: nowrap; }
.empty { color: #78716c; font-style: italic; }
.wide { grid-column: 1 / -1; }
.scroll { overflow-x: auto; max-height: 420px; overflow-y: auto; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " ▲"; }
table.sortable th[data-dir="desc"]::after { content: " ▼"; }
.kind { white-space: nowrap; font-weight: 600; }
.ok { color: #16a34a; }
"""

#: Draws every chart after layout, keeps each the width of its card, sorts tables on click.
_SCRIPT = """
(function () {
  var figures = JSON.parse(document.getElementById('figures').textContent);
  var config = {displaylogo: false, displayModeBar: false, responsive: true};
  function draw() {
    Object.keys(figures).forEach(function (id) {
      var el = document.getElementById(id);
      var fig = figures[id];
      var layout = Object.assign({}, fig.layout, {autosize: true});
      Plotly.newPlot(el, fig.data, layout, config);
      new ResizeObserver(function () { Plotly.Plots.resize(el); }).observe(el);
    });
    document.body.setAttribute('data-charts', 'drawn');
  }
  function key(cell) {
    var raw = cell.getAttribute('data-sort');
    var text = raw !== null ? raw : cell.textContent;
    var n = Number(text);
    return text !== '' && !isNaN(n) ? n : text.toLowerCase();
  }
  document.querySelectorAll('table.sortable th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var body = th.closest('table').tBodies[0];
      var dir = th.getAttribute('data-dir') === 'asc' ? 'desc' : 'asc';
      th.parentNode.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
      th.setAttribute('data-dir', dir);
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[i]), y = key(b.cells[i]);
        var c = x < y ? -1 : x > y ? 1 : 0;
        return dir === 'asc' ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  // After the document is parsed and styled: the grid has its final columns.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { requestAnimationFrame(draw); });
  } else {
    requestAnimationFrame(draw);
  }
})();
"""


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise MissingExtraError(
            "the HTML report needs plotly: pip install 'jobtrack-airtable[ops]'"
        ) from None
    return go


def plotly_bundle() -> str:
    """The vendored plotly.js cartesian bundle (package data)."""
    return resources.files(__package__).joinpath(BUNDLE).read_text(encoding="utf-8")


def _json_for_script(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` (so no ``</script>``), no U+2028."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _minutes(seconds: float | None) -> float:
    return round((seconds or 0.0) / 60, 2)


def _figures(data: ReportData, go: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 10, "b": 60},
        "legend": {"orientation": "h", "y": -0.2},
    }
    figs: dict[str, Any] = {}

    days = data.days
    runs = go.Figure(layout={**layout, "barmode": "stack", "yaxis": {"title": "jobs"}})
    for status in STATUS_ORDER:
        counts = [data.runs_per_day[d][status] if d in data.runs_per_day else 0 for d in days]
        if any(counts):
            runs.add_bar(
                name=status,
                x=[d.isoformat() for d in days],
                y=counts,
                marker_color=_STATUS_COLOURS[status],
            )
    figs["chart-runs-per-day"] = runs

    durations = go.Figure(layout={**layout, "yaxis": {"title": "minutes"}, "showlegend": False})
    for stream, values in data.stream_durations.items():
        durations.add_box(name=f"stream {stream}", y=[_minutes(v) for v in values], boxpoints="all")
    figs["chart-duration-per-stream"] = durations

    errors = data.clients_with_errors()
    client_errors = go.Figure(layout={**layout, "yaxis": {"title": "failed client runs"}})
    client_errors.add_bar(
        x=[c.client_id for c in errors],
        y=[c.failed for c in errors],
        customdata=[[c.finished, round(c.error_rate * 100, 1)] for c in errors],
        hovertemplate="%{x}: %{y} failed of %{customdata[0]} finished runs (%{customdata[1]}%)"
        "<extra></extra>",
        marker_color=_STATUS_COLOURS["Failed"],
    )
    figs["chart-client-errors"] = client_errors

    by_tokens = sorted(data.clients, key=lambda c: (-c.tokens, c.client_id))
    tokens = go.Figure(layout={**layout, "barmode": "stack", "yaxis": {"title": "AI tokens"}})
    tokens.add_bar(
        name="profile scoring",
        x=[c.client_id for c in by_tokens],
        y=[c.profile_tokens for c in by_tokens],
    )
    tokens.add_bar(
        name="post scoring",
        x=[c.client_id for c in by_tokens],
        y=[c.post_tokens for c in by_tokens],
    )
    figs["chart-tokens"] = tokens

    by_cost = sorted(data.clients, key=lambda c: (-c.apify_cost, c.client_id))
    cost = go.Figure(layout={**layout, "yaxis": {"title": "Apify cost (USD)"}})
    cost.add_bar(
        x=[c.client_id for c in by_cost],
        y=[float(c.apify_cost) for c in by_cost],
        hovertemplate="%{x}: $%{y:.2f}<extra></extra>",
        marker_color="#f59e0b",
    )
    figs["chart-cost"] = cost

    slow = list(reversed(data.slowest_clients()))
    slowest = go.Figure(layout={**layout, "xaxis": {"title": "mean minutes per client run"}})
    slowest.add_bar(
        orientation="h",
        y=[c.client_id for c in slow],
        x=[_minutes(c.mean_seconds) for c in slow],
        customdata=[[_minutes(c.max_seconds), len(c.durations)] for c in slow],
        hovertemplate="%{y}: mean %{x} min, max %{customdata[0]} min over "
        "%{customdata[1]} runs<extra></extra>",
        marker_color="#6366f1",
    )
    figs["chart-slowest"] = slowest
    if data.on_call is not None:
        figs.update(_on_call_figures(data, data.on_call, go, layout))
    return figs


def _on_call_figures(
    data: ReportData, oc: OnCall, go: Any, layout: dict[str, Any]
) -> dict[str, Any]:
    days = [d.isoformat() for d in data.days]
    clients = list(oc.failures)
    heat = go.Figure(
        layout={**layout, "yaxis": {"automargin": True}, "xaxis": {"type": "category"}}
    )
    heat.add_heatmap(
        x=days,
        y=clients,
        z=[[oc.failures[c].get(d, 0) for d in data.days] for c in clients],
        colorscale=[[0, "#f5f5f4"], [0.01, "#fecaca"], [1, "#b91c1c"]],
        hovertemplate="%{y} on %{x}: %{z} failed run(s)<extra></extra>",
        xgap=1,
        ygap=1,
    )
    trend = go.Figure(layout={**layout, "yaxis": {"title": "median minutes"}})
    for t in oc.trends:
        trend.add_scatter(
            name=f"stream {t.stream}",
            x=[d.isoformat() for d in t.median_by_day],
            y=[_minutes(v) for v in t.median_by_day.values()],
            mode="lines+markers",
        )
    return {"chart-failure-heatmap": heat, "chart-duration-trend": trend}


def _card(value: str, label: str) -> str:
    return (
        f'<div class="card"><div class="v">{html.escape(value)}</div>'
        f'<div class="k">{html.escape(label)}</div></div>'
    )


def _error_table(clients: list[ClientSummary]) -> str:
    if not clients:
        return '<p class="empty">No client run failed in this period.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(c.client_id)}</td><td class='n'>{c.failed} / {c.finished}</td>"
        f"<td class='n'>{c.error_rate:.0%}</td>"
        f"<td>{html.escape(c.last_error_at.strftime('%Y-%m-%d %H:%M') if c.last_error_at else '')}"
        f"</td><td>{html.escape(c.last_error or '')}</td></tr>"
        for c in clients
    )
    return (
        "<table><thead><tr><th>Client</th><th class='n'>Failed / finished</th>"
        "<th class='n'>Error rate</th><th>Last failure (UTC)</th><th>Last error</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


_SECTIONS = (
    ("chart-failure-heatmap", "Failed client runs per client and day (UTC)"),
    ("chart-duration-trend", "Job duration trend (median per day)"),
    ("chart-runs-per-day", "Runs per day by status (UTC)"),
    ("chart-duration-per-stream", "Job duration per stream"),
    ("chart-client-errors", "Clients with errors"),
    ("chart-tokens", "AI tokens per client"),
    ("chart-cost", "Apify cost per client"),
    ("chart-slowest", "Slowest clients (mean client-run duration)"),
)


def _e(value: object) -> str:
    return html.escape(str(value))


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _took(seconds: float | None) -> str:
    return format_duration(timedelta(seconds=seconds)) if seconds is not None else ""


def _attention(oc: OnCall) -> str:
    if not oc.attention:
        return '<p class="ok">Nothing needs attention now (what <code>check</code> reports).</p>'
    rows = "".join(
        f"<tr><td class='kind'>{_e(p.kind.label)}</td><td>{_e(p.message)}</td></tr>"
        for p in oc.attention
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _runs_table(oc: OnCall) -> str:
    if not oc.runs:
        return '<p class="empty">No job in this period.</p>'
    rows = "".join(
        f"<tr><td>{_e(r.run_id)}</td><td class='n'>{_e(r.stream or '')}</td>"
        f"<td>{_e(r.status)}</td>"
        f"<td data-sort='{_e(r.start.isoformat() if r.start else '')}'>{_e(_when(r.start))}</td>"
        f"<td class='n' data-sort='{r.seconds if r.seconds is not None else -1}'>"
        f"{_e(_took(r.seconds))}</td>"
        f"<td class='n'>{r.clients}</td><td class='n'>{r.failed_clients}</td></tr>"
        for r in oc.runs
    )
    head = "".join(
        f"<th{cls}>{name}</th>"
        for name, cls in (
            ("Run", ""),
            ("Stream", " class='n'"),
            ("Status", ""),
            ("Started (UTC)", ""),
            ("Duration", " class='n'"),
            ("Clients", " class='n'"),
            ("Errors", " class='n'"),
        )
    )
    return (
        "<div class='scroll'><table class='sortable' id='runs'><thead><tr>"
        f"{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _errors_table(oc: OnCall) -> str:
    if not oc.errors:
        return '<p class="empty">No client run failed in this period.</p>'
    rows = "".join(
        f"<tr><td>{_e(g.name)}</td><td class='n'>{g.count}</td><td class='n'>{g.clients}</td>"
        f"<td>{_e(_when(g.last_at))}</td><td>{_e(g.last_message)}</td></tr>"
        for g in oc.errors
    )
    return (
        "<div class='scroll'><table class='sortable'><thead><tr><th>Error class</th>"
        "<th class='n'>Failures</th><th class='n'>Clients</th><th>Last (UTC)</th>"
        f"<th>Last message</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _p95_table(oc: OnCall) -> str:
    rows = "".join(
        f"<tr><td>stream {t.stream}</td><td class='n'>{t.runs}</td>"
        f"<td class='n'>{_e(_took(t.p95))}</td></tr>"
        for t in oc.trends
    )
    return (
        "<table><thead><tr><th>Stream</th><th class='n'>Finished jobs</th>"
        f"<th class='n'>p95 duration</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _section(title: str, body: str, *, wide: bool = False) -> str:
    cls = " class='wide'" if wide else ""
    return f"<section{cls}><h2>{_e(title)}</h2>{body}</section>"


def render_html(data: ReportData) -> str:
    """The whole page as one string (about 1.6 MB: plotly.js's cartesian bundle is
    inlined)."""
    go = _plotly()
    period = f"{data.since:%Y-%m-%d %H:%M} – {data.until:%Y-%m-%d %H:%M} UTC"
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>jobtrack-airtable report · {_e(data.base_id)}</title>"
        f"<style>{_CSS}</style>"
    )
    header = (
        f"<header><h1>Job runs of base {_e(data.base_id)}</h1>"
        f"<p>{_e(period)} · generated {data.generated_at:%Y-%m-%d %H:%M} UTC "
        "by jobtrack-airtable</p></header>"
    )
    oc = data.on_call
    attention = _section("Needs attention now", _attention(oc), wide=True) if oc else ""
    if not data.jobs and not data.client_runs:
        empty = '<p class="empty">No runs in this period.</p>'
        body = f'<main><div class="grid">{attention}</div>{empty}</main>'
        return f"{head}</head><body>{header}{body}</body></html>"
    statuses = data.job_status_totals()
    cards = "".join(
        (
            _card(f"{data.jobs:,}", "jobs"),
            _card(f"{statuses.get('Failed', 0):,}", "failed jobs"),
            _card(f"{data.client_runs:,}", "client runs"),
            _card(f"{data.failed_client_runs:,}", "failed client runs"),
            _card(f"{data.total_tokens:,}", "AI tokens"),
            _card(f"${data.total_cost:,.2f}", "Apify cost"),
        )
    )
    figs = _figures(data, go)
    extras = {
        "chart-client-errors": _error_table(data.clients_with_errors()),
        "chart-duration-trend": _p95_table(oc) if oc else "",
    }
    sections = [attention]
    if oc is not None:
        sections.append(_section("Runs of the period", _runs_table(oc), wide=True))
        sections.append(_section("Errors by class", _errors_table(oc), wide=True))
    for chart_id, title in _SECTIONS:
        if chart_id not in figs:
            continue
        sections.append(
            _section(title, f'<div class="chart" id="{chart_id}"></div>{extras.get(chart_id, "")}')
        )
    specs = {
        chart_id: figs[chart_id].to_plotly_json() for chart_id, _ in _SECTIONS if chart_id in figs
    }
    figures = f"<script type='application/json' id='figures'>{_json_for_script(specs)}</script>"
    # plotly.js once, inline, before the drawing script.
    script = f"<script>{plotly_bundle()}</script>"
    main = (
        f"<main><div class='cards'>{cards}</div><div class='grid'>{''.join(sections)}</div></main>"
    )
    return (
        f"{head}{script}</head><body>{header}{main}{figures}<script>{_SCRIPT}</script>"
        "</body></html>"
    )
