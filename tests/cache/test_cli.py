"""Cache tests: `compat cache` sets, lists, turns off and audits the per-function cache."""

from __future__ import annotations

import psycopg2.extensions
import pytest

from tests.compat.test_cli import Cli, by_key, table

# The command-line fixtures, shared with the flag commands' tests.
from tests.compat.test_cli import cli as cli
from tests.compat.test_cli import database as database

KEY = "user_sessions.get_session"


class TestCacheCommands:
    def test_set_caches_a_read_and_writes_the_audit(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        ran = cli(
            "cache", "set", KEY, "--ttl", "30", "--reason", "hot path (TICKET-18)", "--by", "ann"
        )

        assert ran.code == 0, ran.err
        assert ran.out == f"{KEY}: cache off -> 30 s by ann: hot path (TICKET-18)\n"
        with observer.cursor() as cursor:
            cursor.execute("SELECT key, ttl_seconds, updated_by FROM compat_cache_settings")
            assert cursor.fetchall() == [(KEY, 30.0, "ann")]
            cursor.execute(
                "SELECT key, old_ttl_seconds, new_ttl_seconds, changed_by, reason "
                "FROM compat_cache_audit"
            )
            assert cursor.fetchall() == [(KEY, None, 30.0, "ann", "hot path (TICKET-18)")]

    def test_list_shows_every_read_off_unless_set(self, cli: Cli, database: str) -> None:
        cli("cache", "set", KEY, "--ttl", "30", "--reason", "test")

        rows = by_key(table(cli("cache", "list").out))

        assert rows[KEY] == ["30 s"]
        assert rows["uploads.get_upload"] == ["off"]
        assert "user_sessions.update_session" not in rows

    def test_off_removes_the_setting_and_the_history_shows_both_changes(
        self, cli: Cli, database: str
    ) -> None:
        cli("cache", "set", KEY, "--ttl", "30", "--reason", "on")

        ran = cli("cache", "off", KEY, "--reason", "stale reports", "--by", "bob")
        history = table(cli("cache", "history", KEY).out)

        assert ran.out == f"{KEY}: cache 30 s -> off by bob: stale reports\n"
        assert [row[2:] for row in history] == [
            ["30 s -> off", "bob", "stale reports"],
            ["off -> 30 s", history[1][3], "on"],
        ]

    def test_a_write_is_refused_with_status_2_in_one_line(self, cli: Cli, database: str) -> None:
        ran = cli("cache", "set", "user_sessions.update_session", "--ttl", "30", "--reason", "x")

        assert ran.code == 2
        assert ran.err == (
            "compat: user_sessions.update_session is a write (single-row write); "
            "only read functions can be cached\n"
        )

    @pytest.mark.parametrize("ttl", ["0", "-1", "86401", "nan"])
    def test_a_ttl_out_of_range_is_refused_with_status_2(
        self, cli: Cli, database: str, ttl: str
    ) -> None:
        ran = cli("cache", "set", KEY, "--ttl", ttl, "--reason", "x")

        assert ran.code == 2
        assert "--ttl" in ran.err

    def test_a_blank_reason_is_refused_with_status_2(self, cli: Cli, database: str) -> None:
        assert cli("cache", "set", KEY, "--ttl", "5", "--reason", " ").code == 2

    def test_a_reason_longer_than_the_audit_keeps_is_refused_with_status_2(
        self, cli: Cli, database: str
    ) -> None:
        ran = cli("cache", "set", KEY, "--ttl", "5", "--reason", "x" * 501)

        assert ran.code == 2
        assert ran.err.count("\n") == 1
        assert "at most 500" in ran.err

    def test_history_shows_control_characters_escaped(self, cli: Cli, database: str) -> None:
        cli("cache", "set", KEY, "--ttl", "5", "--reason", "evil\x1b[2J", "--by", "ann")

        [row] = table(cli("cache", "history").out)

        assert row[-1] == "evil\\x1b[2J"
