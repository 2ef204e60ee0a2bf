"""Compat layer: `compat dashboard`: one read-only HTML page of the migration, function by function.

Server-rendered from the database on each request: plain HTML and inline
SVG, no script, no build step, nothing written. Everything it shows is what
the table publisher stored (already redacted) and the flag audit; every value
is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from wsgiref.simple_server import WSGIServer, make_server

import sqlalchemy as sa

from compat.flags.modes import FlagChange, FlagState, Mode
from compat.rollout import gates
from compat.runtime import get_runtime
from compat.shadow import stored

__all__ = ["Page", "render", "serve", "wsgi_app"]

STAGE_NAMES: Final = {
    Mode.LEGACY: "off",
    Mode.SHADOW: "shadow",
    Mode.LIVE: "live",
    Mode.ORM: "complete",
}
HOURS: Final = 24
LATEST: Final = 5
HISTORY: Final = 10

_STYLE: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .3em; font-family: ui-monospace, monospace; }
h3 { font-size: .95em; margin: .8em 0 .2em; color: #555; }
table { border-collapse: collapse; }
td[data-field="key"], td[data-field="stage"] { white-space: nowrap; }
td[data-field="next"] { min-width: 20em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: left;
         vertical-align: top; }
th { background: #f4f5f7; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.bad { color: #b00020; font-weight: 600; }
.stage { padding: .05em .45em; border-radius: .6em; font-size: .9em; }
.legacy { background: #eceff1; } .shadow { background: #fff3cd; }
.live { background: #d1ecf1; } .orm { background: #d4edda; }
pre { margin: .2em 0; padding: .4em; background: #f8f8f8; white-space: pre-wrap;
      font-size: .85em; }
.kill { background: #b00020; color: white; padding: .5em; font-weight: 600; }
.muted { color: #777; }
"""


@dataclass(frozen=True, slots=True)
class Row:
    """What the page shows of one function."""

    state: FlagState
    compared: int
    mismatches: int
    candidate_errors: int
    legacy_ms: tuple[float | None, float | None]
    orm_ms: tuple[float | None, float | None]
    series: Sequence[tuple[int, int]]
    next_step: str
    latest: Sequence[stored.Stored]
    history: Sequence[FlagChange]


@dataclass(frozen=True, slots=True)
class Page:
    """Everything on the page, read in one go."""

    database: str
    window_minutes: float
    generated_at: datetime
    kill_switch: bool
    rows: Sequence[Row]


def read(
    connection: sa.Connection,
    states: Iterable[FlagState],
    history: Iterable[FlagChange],
    *,
    window_minutes: float = gates.DEFAULT_WINDOW_MINUTES,
    min_calls: int = gates.DEFAULT_MIN_CALLS,
) -> list[Row]:
    """Every function's row: its counts in the window, its times, its gate, its kept mismatches."""
    counted = stored.counts(connection, window_minutes)
    timed = stored.times(connection, window_minutes)
    series = stored.hourly(connection, HOURS)
    kept = stored.latest(connection, LATEST)
    changes: dict[str, list[FlagChange]] = {}
    for change in history:
        changes.setdefault(change.key, []).append(change)
    rows = []
    # Functions in motion first (shadow, live), then done, then not started.
    order = {Mode.SHADOW: 0, Mode.LIVE: 0, Mode.ORM: 1, Mode.LEGACY: 2}
    for state in sorted(states, key=lambda s: (order[s.mode], s.key)):
        seen = [c for (key, _), c in counted.items() if key == state.key]
        times = timed.get(state.key)
        rows.append(
            Row(
                state=state,
                compared=sum(c.compared for c in seen),
                mismatches=sum(c.mismatches for c in seen),
                candidate_errors=sum(c.candidate_errors for c in seen),
                legacy_ms=_percentiles(times.legacy if times else ()),
                orm_ms=_percentiles(times.orm if times else ()),
                series=series.get(state.key, [(0, 0)] * HOURS),
                next_step=_next(connection, state, window_minutes, min_calls),
                latest=kept.get(state.key, []),
                history=changes.get(state.key, [])[:HISTORY],
            )
        )
    return rows


def _percentiles(buckets: Sequence[int]) -> tuple[float | None, float | None]:
    return stored.quantile(buckets, 0.5), stored.quantile(buckets, 0.95)


def _next(connection: sa.Connection, state: FlagState, window: float, min_calls: int) -> str:
    step = gates.next_step(state.mode)
    if step is None:
        return "done: the ORM serves, nothing is compared"
    decision = gates.gate(
        connection, state.key, state.mode, step, min_calls=min_calls, window_minutes=window
    )
    if decision.allowed and step is Mode.SHADOW:
        return "shadow: allowed: it changes nothing the caller sees"
    if decision.allowed:
        return f"{step.value}: allowed once compat verify is ready"
    return f"{step.value}: not yet ({decision.reason})"


def render(page: Page) -> str:
    """The page as HTML."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>compat dashboard</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>compat: the migration, function by function</h1>",
        f'<p class="muted" id="about">database {e(page.database)}; counts of the last '
        f"{page.window_minutes:g} minutes; read at "
        f"{page.generated_at.isoformat(sep=' ', timespec='seconds')} UTC; read-only</p>",
    ]
    if page.kill_switch:
        parts.append('<p class="kill" id="kill-switch">The kill switch is ON: legacy serves.</p>')
    parts.append(
        '<table id="functions"><thead><tr><th>function</th><th>stage</th>'
        "<th>compared</th><th>mismatches</th><th>candidate errors</th>"
        "<th>legacy p50 / p95</th><th>orm p50 / p95</th>"
        f"<th>last {HOURS} h</th><th>next step</th></tr></thead><tbody>"
    )
    for row in page.rows:
        parts.append(_summary(row))
    parts.append("</tbody></table>")
    for row in page.rows:
        parts.append(_details(row))
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary(row: Row) -> str:
    e = html.escape
    mode = row.state.mode
    key = e(row.state.key)
    return (
        f'<tr data-key="{key}"><td data-field="key"><a href="#{key}">{key}</a></td>'
        f'<td data-field="stage"><span class="stage {mode.value}">{mode.value}</span> '
        f'<span class="muted">{STAGE_NAMES[mode]} &middot; {e(row.state.source)} &middot; '
        f"sample {row.state.sample_rate:g}</span></td>"
        f'<td class="n" data-field="compared">{row.compared}</td>'
        f'<td class="n{" bad" if row.mismatches else ""}" data-field="mismatches">'
        f"{row.mismatches}</td>"
        f'<td class="n{" bad" if row.candidate_errors else ""}" data-field="candidate_errors">'
        f"{row.candidate_errors}</td>"
        f'<td class="n" data-field="legacy_ms">{_ms(row.legacy_ms)}</td>'
        f'<td class="n" data-field="orm_ms">{_ms(row.orm_ms)}</td>'
        f"<td>{_sparkline(row.series)}</td>"
        f'<td data-field="next">{e(row.next_step)}</td></tr>'
    )


def _ms(pair: tuple[float | None, float | None]) -> str:
    def one(value: float | None) -> str:
        if value is None:
            return "-"
        if value == float("inf"):
            return "&gt; 10000 ms"
        return f"&le; {value:g} ms"

    return f"{one(pair[0])} / {one(pair[1])}"


def _sparkline(series: Sequence[tuple[int, int]]) -> str:
    """Compared calls per hour, oldest left; the mismatches and candidate errors in red."""
    width, height, bar = 5 * len(series), 24, 4
    top = max((compared for compared, _ in series), default=0) or 1
    shapes = []
    for index, (compared, bad) in enumerate(reversed(series)):
        x = index * 5
        tall = round(height * compared / top)
        red = round(height * bad / top) if bad else 0
        if tall:
            shapes.append(
                f'<rect x="{x}" y="{height - tall}" width="{bar}" height="{tall}" fill="#7a8ca3"/>'
            )
        if bad:
            red = max(red, 2)
            shapes.append(
                f'<rect x="{x}" y="{height - red}" width="{bar}" height="{red}" fill="#b00020"/>'
            )
    total = sum(compared for compared, _ in series)
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{total} compared calls in the last {len(series)} hours">'
        f"{''.join(shapes)}</svg>"
    )


def _details(row: Row) -> str:
    e = html.escape
    key = e(row.state.key)
    parts = [f'<h2 id="{key}">{key}</h2>', "<h3>Latest mismatches and candidate errors</h3>"]
    if row.latest:
        parts.append(f'<ol class="mismatches" data-key="{key}">')
        for kept in row.latest:
            error = (
                f"<div>candidate raised {e(kept.candidate_error)}</div>"
                if kept.candidate_error
                else ""
            )
            parts.append(
                f'<li data-field="mismatch"><time>'
                f"{kept.observed_at.isoformat(sep=' ', timespec='seconds')}</time> "
                f"[{e(kept.mode)}]<pre>{e(kept.diff or '')}</pre>{error}</li>"
            )
        parts.append("</ol>")
    else:
        parts.append('<p class="muted">none kept</p>')
    parts.append("<h3>Flag history</h3>")
    if row.history:
        parts.append(
            f'<table class="history" data-key="{key}"><thead><tr><th>when (UTC)</th>'
            "<th>change</th><th>sample</th><th>by</th><th>reason</th></tr></thead><tbody>"
        )
        for change in row.history:
            parts.append(
                f'<tr data-field="change"><td>'
                f"{change.changed_at.isoformat(sep=' ', timespec='seconds')}</td>"
                f"<td>{e(change.old_mode or '-')} &rarr; {e(change.new_mode)}</td>"
                f"<td>{change.new_sample_rate:g}</td><td>{e(change.changed_by)}</td>"
                f"<td>{e(change.reason)}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">never changed: the default or the environment</p>')
    return "\n".join(parts)


def page(window_minutes: float = gates.DEFAULT_WINDOW_MINUTES) -> Page:
    """Read the page from the process's runtime: its flags, its database."""
    runtime = get_runtime()
    states = runtime.flags.states()
    history = runtime.flags.history(None, limit=1000)
    with runtime.engine.connect() as connection:
        rows = read(connection, states, history, window_minutes=window_minutes)
    return Page(
        database=runtime.engine.url.render_as_string(hide_password=True),
        window_minutes=window_minutes,
        generated_at=datetime.now(UTC).replace(tzinfo=None),
        kill_switch=runtime.flags.kill_switch_on,
        rows=rows,
    )


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(window_minutes: float = gates.DEFAULT_WINDOW_MINUTES) -> WSGIApp:
    """The page at ``/``; GET and HEAD only (it changes nothing)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b"read-only\n"]
        if environ.get("PATH_INFO", "/") not in ("", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found; the dashboard is at /\n"]
        body = render(page(window_minutes)).encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    return app


def serve(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """A server of the page on ``host:port`` (not started: call serve_forever())."""
    return make_server(host, port, wsgi_app())
