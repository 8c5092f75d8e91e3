"""The self-contained HTML page of ``jobtrack-airtable report --html FILE``.

Charts are drawn by plotly (``pip install 'jobtrack-airtable[ops]'``, imported only here and
only when a page is rendered) and plotly.js is inlined in the page once, so the file opens
anywhere, offline, with nothing fetched: no CDN, no fonts, no MathJax.  Every text that comes
from the base (client IDs, error details) is HTML-escaped in tables and JSON-encoded (with
``<`` escaped) by plotly in the charts.

Sections: summary figures; runs per day by status; job duration per stream; clients with
errors (chart and table with the latest error); tokens and Apify cost per client; the slowest
clients.  A period without runs gives a page saying so instead of empty charts.
"""

from __future__ import annotations

import html
from typing import Any

from ...errors import MissingExtraError
from .report_data import STATUS_ORDER, ClientSummary, ReportData

__all__ = ["CHART_IDS", "render_html"]

#: The ``id`` of every chart's element, in page order (tests look for them).
CHART_IDS = (
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
"""


def _plotly() -> tuple[Any, Any, Any]:
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise MissingExtraError(
            "the HTML report needs plotly: pip install 'jobtrack-airtable[ops]'"
        ) from None
    return go, pio, get_plotlyjs


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
    return figs


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
    ("chart-runs-per-day", "Runs per day by status (UTC)"),
    ("chart-duration-per-stream", "Job duration per stream"),
    ("chart-client-errors", "Clients with errors"),
    ("chart-tokens", "AI tokens per client"),
    ("chart-cost", "Apify cost per client"),
    ("chart-slowest", "Slowest clients (mean client-run duration)"),
)


def render_html(data: ReportData) -> str:
    """The whole page as one string (a few MB: plotly.js is inlined)."""
    go, pio, get_plotlyjs = _plotly()
    period = f"{data.since:%Y-%m-%d %H:%M} – {data.until:%Y-%m-%d %H:%M} UTC"
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>jobtrack-airtable report · {html.escape(data.base_id)}</title>"
        f"<style>{_CSS}</style>"
    )
    header = (
        f"<header><h1>Job runs of base {html.escape(data.base_id)}</h1>"
        f"<p>{html.escape(period)} · generated {data.generated_at:%Y-%m-%d %H:%M} UTC "
        "by jobtrack-airtable</p></header>"
    )
    if not data.jobs and not data.client_runs:
        body = '<main><p class="empty">No runs in this period.</p></main>'
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
    config = {"displaylogo": False, "displayModeBar": False, "responsive": True}
    sections = []
    for chart_id, title in _SECTIONS:
        chart = pio.to_html(
            figs[chart_id],
            full_html=False,
            include_plotlyjs=False,
            div_id=chart_id,
            config=config,
            default_height="360px",
        )
        extra = (
            _error_table(data.clients_with_errors()) if chart_id == "chart-client-errors" else ""
        )
        sections.append(
            f"<section><h2>{html.escape(title)}</h2><div class='chart'>{chart}</div>"
            f"{extra}</section>"
        )
    # plotly.js once, inline, before any chart script runs.
    script = f"<script>{get_plotlyjs()}</script>"
    main = (
        f"<main><div class='cards'>{cards}</div><div class='grid'>{''.join(sections)}</div></main>"
    )
    return f"{head}{script}</head><body>{header}{main}</body></html>"
