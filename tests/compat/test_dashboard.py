"""`compat dashboard`: the read-only page, loaded in headless Chromium, shows what is stored."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import psycopg2.extensions
import pytest

from compat import dashboard
from compat.routing.declaration import REGISTRY
from tests.compat.test_cli import Cli
from tests.fixtures.layer import Layer, observer_connection

KEY = "user_sessions.get_session"
OTHER = "uploads.get_upload"
HOSTILE = "['result']['name']: legacy='<b>bold</b>' orm=None (values differ)"
ROOT = Path(__file__).resolve().parents[2]


class Cells(HTMLParser):
    """The text of every ``data-field`` element, by the ``data-key`` of the element around it."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, dict[str, list[str]]] = {}
        self._keys: list[str | None] = []
        self._open: list[tuple[str, str, list[str]] | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        key = found.get("data-key") or (self._keys[-1] if self._keys else None)
        self._keys.append(key)
        field = found.get("data-field")
        self._open.append((key, field, []) if key and field else None)

    def handle_endtag(self, tag: str) -> None:
        if not self._open:
            return
        self._keys.pop()
        opened = self._open.pop()
        if opened is not None:
            key, field, text = opened
            self.fields.setdefault(key, {}).setdefault(field, []).append(
                " ".join("".join(text).split())
            )

    def handle_data(self, data: str) -> None:
        for opened in self._open:
            if opened is not None:
                opened[2].append(data)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "headless Chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must have it")
        print(f"skipped: {reason}")
        pytest.skip(reason)
    return found


def browse(browser: str, url: str, *flags: str) -> str:
    """What headless Chromium made of ``url`` (its DOM with --dump-dom)."""
    ran = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            *flags,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return ran.stdout


@pytest.fixture
def served(committed_layer: Layer) -> Iterator[str]:
    """The dashboard of the test's database on a free loopback port."""
    server = dashboard.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def scalar(observer: psycopg2.extensions.connection, sql: str, *params: object) -> object:
    with observer.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    assert row is not None
    return row[0]


def traffic(observer: psycopg2.extensions.connection) -> None:
    """Compared calls of KEY in shadow, as the table publisher inserts them: 40 matches
    (legacy 0.7 ms, orm 3 ms) over 20 hours, two mismatches and one candidate error."""
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO compat_observations (observed_at, key, mode, serving, matched, legacy_ms, "
            "orm_ms) SELECT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - i * INTERVAL '29 minutes', "
            "%s, 'shadow', 'legacy', true, 0.7, 3.0 FROM generate_series(1, 40) AS i",
            (KEY,),
        )
        for minutes_ago, diff, error in (
            (
                30,
                "['result']['email']: legacy='<redacted str #00000001>' orm=None (values differ)",
                None,
            ),
            (3, HOSTILE, None),
            (
                2,
                "<raised>: legacy=None orm='QueryCanceled [57014]: canceling statement' "
                "(one side raised, or they raised differently)",
                "QueryCanceled [57014]: canceling statement",
            ),
        ):
            cur.execute(
                "INSERT INTO compat_observations (observed_at, key, mode, serving, matched, "
                "legacy_ms, orm_ms, candidate_error, diff) VALUES ("
                "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - %s * INTERVAL '1 minute', %s, 'shadow', "
                "'legacy', false, 0.7, 3.0, %s, %s)",
                (minutes_ago, KEY, error, diff),
            )


class TestTheDashboard:
    def test_shows_per_function_what_the_database_holds(
        self, cli: Cli, committed_layer: Layer, served: str, tmp_path: Path
    ) -> None:
        browser = chromium()
        observer = observer_connection(committed_layer.url)
        try:
            assert (
                cli(
                    "flags",
                    "set",
                    KEY,
                    "shadow",
                    "--reason",
                    "compare <on> real traffic",
                    "--by",
                    "ada",
                ).code
                == 0
            )
            committed_layer.runtime.flags.refresh()
            traffic(observer)
            dom = browse(browser, served, "--dump-dom")
            cells = Cells()
            cells.feed(dom)
            shown = cells.fields[KEY]
            compared = scalar(
                observer, "SELECT sum(compared) FROM compat_observation_rollups WHERE key = %s", KEY
            )
            mismatches = scalar(
                observer,
                "SELECT sum(mismatches) FROM compat_observation_rollups WHERE key = %s",
                KEY,
            )
            errors = scalar(
                observer,
                "SELECT sum(candidate_errors) FROM compat_observation_rollups WHERE key = %s",
                KEY,
            )
            latest = scalar(
                observer,
                "SELECT diff FROM compat_observations WHERE key = %s "
                "ORDER BY observed_at DESC LIMIT 1",
                KEY,
            )
            reason = scalar(observer, "SELECT reason FROM compat_flag_audit WHERE key = %s", KEY)
        finally:
            observer.close()
        assert (compared, mismatches, errors) == (43, 3, 1)
        assert shown["compared"] == ["43"]
        assert shown["mismatches"] == ["3"]
        assert shown["candidate_errors"] == ["1"]
        assert shown["stage"] == ["shadow shadow · table · sample 1"]
        assert shown["legacy_ms"] == ["≤ 1 ms / ≤ 1 ms"]
        assert shown["orm_ms"] == ["≤ 5 ms / ≤ 5 ms"]
        assert shown["next"] == [
            "live: not yet (43 of 1000 compared calls in shadow (last 1440 minutes), "
            "3 mismatches, 1 candidate errors; fix the mismatches (compat status) and start again)"
        ]
        # Newest first, escaped: the hostile diff is text, not markup.
        assert str(latest) in shown["mismatch"][0]
        assert any(HOSTILE in text for text in shown["mismatch"])
        assert "<b>bold</b>" not in dom.replace("&lt;b&gt;bold&lt;/b&gt;", "")
        assert reason == "compare <on> real traffic"
        [change] = shown["change"]
        assert "- → shadow" in change
        assert "ada" in change
        assert reason in change
        assert sorted(cells.fields) >= sorted(REGISTRY)
        assert cells.fields[OTHER]["compared"] == ["0"]
        assert cells.fields[OTHER]["next"] == [
            "shadow: allowed: it changes nothing the caller sees"
        ]
        screenshot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
        browse(browser, served, f"--screenshot={screenshot}", "--window-size=1800,1300")
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_refuses_to_change_anything(self, committed_layer: Layer, served: str) -> None:
        request = urllib.request.Request(served, data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        refused.value.close()
        assert refused.value.code == 405


class TestTheCommand:
    def test_refuses_another_address_without_an_authenticating_proxy(self, cli: Cli) -> None:
        ran = cli("dashboard", "--host", "0.0.0.0", "--port", "1")
        assert ran.code == 2
        assert "--behind-authenticating-proxy" in ran.err
