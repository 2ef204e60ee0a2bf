"""Rollout control: gated promotion, several keys at once, the shared kill switch, the plan,
and a flip that an idle process serves on its very next call."""

from __future__ import annotations

import psycopg2.extensions
import pytest

from compat.errors import FlagChangedMeanwhile
from compat.flags.modes import FlagState, Mode
from compat.routing.declaration import REGISTRY
from tests.compat.test_cli import Cli, by_key, table
from tests.compat.test_flags import TTL, Running, flip
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"


def observe(
    observer: psycopg2.extensions.connection,
    key: str,
    mode: str,
    count: int,
    *,
    matched: bool = True,
    candidate_error: str | None = None,
) -> None:
    """``count`` compared calls of ``key`` in ``mode``, just now, as the table publisher writes."""
    serving = "legacy" if mode == "shadow" else "orm"
    with observer.cursor() as cur:
        for _ in range(count):
            cur.execute(
                "INSERT INTO compat_observations (observed_at, key, mode, serving, matched, "
                "candidate_error) "
                "VALUES (CURRENT_TIMESTAMP AT TIME ZONE 'UTC', %s, %s, %s, %s, %s)",
                (key, mode, serving, matched, candidate_error),
            )


def audit_count(observer: psycopg2.extensions.connection) -> int:
    with observer.cursor() as cur:
        cur.execute("SELECT count(*) FROM compat_flag_audit")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def last_reason(observer: psycopg2.extensions.connection) -> str:
    with observer.cursor() as cur:
        cur.execute("SELECT reason FROM compat_flag_audit ORDER BY id DESC LIMIT 1")
        row = cur.fetchone()
    assert row is not None
    return str(row[0])


class TestAPromotionGate:
    def test_refuses_live_without_evidence_from_shadow_and_writes_nothing(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        observe(observer, KEY, "shadow", 3)
        before = audit_count(observer)
        ran = cli("flags", "set", KEY, "live", "--reason", "serve", "--min-calls", "10")
        assert ran.code == 1
        assert ran.out == ""
        assert (
            f"compat: refused: {KEY}: 3 of 10 compared calls in shadow (last 1440 minutes), "
            "0 mismatches, 0 candidate errors; run longer or lower --min-calls\n"
        ) in ran.err
        assert audit_count(observer) == before
        assert by_key(table(cli("flags", "list").out))[KEY][0] == "shadow"

    def test_allows_live_with_enough_clean_evidence_and_verify_ready(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        observe(observer, KEY, "shadow", 10)
        ran = cli("flags", "set", KEY, "live", "--reason", "serve", "--min-calls", "10")
        assert (ran.code, ran.err) == (0, "")
        assert ran.out.startswith(f"{KEY}: shadow -> live (sample 1)")
        assert last_reason(observer) == "serve"

    def test_refuses_live_after_a_single_mismatch(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        observe(observer, KEY, "shadow", 20)
        observe(observer, KEY, "shadow", 1, matched=False)
        ran = cli("flags", "set", KEY, "live", "--reason", "serve", "--min-calls", "10")
        assert ran.code == 1
        assert "1 mismatches" in ran.err
        assert "fix the mismatches" in ran.err

    def test_counts_an_error_both_sides_raised_alike_as_a_match(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        duplicate = "UniqueViolation [23505]: duplicate key value violates unique constraint"
        observe(observer, KEY, "shadow", 10, matched=True, candidate_error=duplicate)
        ran = cli("flags", "set", KEY, "live", "--reason", "serve", "--min-calls", "10")
        assert (ran.code, ran.err) == (0, "")

    def test_refuses_orm_on_evidence_from_shadow_only(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        observe(observer, KEY, "shadow", 50)
        ran = cli("flags", "set", KEY, "orm", "--reason", "all in", "--min-calls", "10")
        assert ran.code == 1
        assert f"{KEY} is in shadow; move it to live first" in ran.err

    def test_refuses_a_jump_from_legacy_to_live(self, cli: Cli, database: str) -> None:
        ran = cli("flags", "set", KEY, "live", "--reason", "serve")
        assert ran.code == 1
        assert f"{KEY} is in legacy; move it to shadow first" in ran.err

    def test_is_overridden_by_force_and_the_audit_says_so_with_the_evidence(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        observe(observer, KEY, "shadow", 2)
        ran = cli("flags", "set", KEY, "live", "--reason", "incident 7", "--force")
        assert ran.code == 0
        assert last_reason(observer) == (
            "incident 7 [forced past the gate: 2 of 1000 compared calls in shadow "
            "(last 1440 minutes), 0 mismatches, 0 candidate errors; run longer or lower "
            "--min-calls]"
        )

    def test_forced_over_a_glob_gives_each_key_its_own_evidence(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        ran = cli("flags", "set", "user_sessions.*", "live", "--reason", "drill", "--force")
        assert ran.code == 0, ran.err
        with observer.cursor() as cur:
            cur.execute(
                "SELECT key, reason FROM compat_flag_audit WHERE new_mode = 'live' ORDER BY key"
            )
            rows = cur.fetchall()
        assert [key for key, _ in rows] == sorted(k for k in REGISTRY if k.startswith("user_"))
        for key, reason in rows:
            assert reason == (
                f"drill [forced past the gate: {key} is in legacy; move it to shadow first]"
            )

    def test_never_stands_in_the_way_of_a_step_back(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "orm", "--reason", "set up", "--force").code == 0
        assert cli("flags", "set", KEY, "live", "--reason", "step back").code == 0
        assert cli("flags", "set", KEY, "legacy", "--reason", "roll back").code == 0


class TestSeveralKeysAtOnce:
    def test_a_glob_sets_every_key_it_matches_each_audited(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        uploads = sorted(key for key in REGISTRY if key.startswith("uploads."))
        ran = cli("flags", "set", "uploads.*", "shadow", "--reason", "compare the uploads")
        assert ran.code == 0
        assert [line.split(":")[0] for line in ran.out.splitlines()] == uploads
        assert audit_count(observer) == len(uploads)
        modes = by_key(table(cli("flags", "list").out))
        assert {key: modes[key][0] for key in uploads} == dict.fromkeys(uploads, "shadow")

    def test_a_glob_that_matches_nothing_is_refused_with_status_2(
        self, cli: Cli, database: str
    ) -> None:
        ran = cli("flags", "set", "upload.*", "shadow", "--reason", "typo")
        assert ran.code == 2
        assert "'upload.*' matches no flag key" in ran.err

    def test_one_refused_key_stops_them_all(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", "uploads.*", "shadow", "--reason", "compare").code == 0
        before = audit_count(observer)
        ran = cli("flags", "set", "uploads.*", "live", "--reason", "serve")
        assert ran.code == 1
        assert audit_count(observer) == before


class TestTheKillSwitch:
    def test_sends_every_function_to_legacy_and_back_audited(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "orm", "--reason", "set up", "--force").code == 0
        ran = cli("kill-switch", "on", "--reason", "incident 9")
        assert ran.code == 0
        assert ran.out.startswith("kill switch on by ")
        listed = by_key(table(cli("flags", "list").out))
        assert {row[0] for row in listed.values()} == {"legacy"}
        assert {row[1] for row in listed.values()} == {"kill-switch"}
        assert "the kill switch is ON" in cli("flags", "plan").out
        assert cli("kill-switch", "on", "--reason", "again").out == (
            "the kill switch was already on; nothing changed\n"
        )
        assert cli("kill-switch", "off", "--reason", "resolved").code == 0
        assert by_key(table(cli("flags", "list").out))[KEY][:2] == ["orm", "table"]
        history = table(cli("flags", "history", "*").out)
        assert [row[1:3] for row in history] == [["*", "legacy -> off"], ["*", "- -> legacy"]]

    def test_reaches_a_running_process_at_its_next_read(
        self, committed_layer: object, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running()
        flip(observer, KEY, "orm")
        assert running.after_ttl(KEY).mode is Mode.ORM
        flip(observer, "*", "legacy")
        assert running.after_ttl(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "kill-switch")


class TestThePlan:
    def test_shows_each_stage_its_evidence_and_the_next_step(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        observe(observer, KEY, "shadow", 4)
        rows = by_key(table(cli("flags", "plan", "--min-calls", "4").out))
        assert rows[KEY][0] == "shadow"
        assert rows[KEY][2].startswith("4 of 4 compared calls in shadow")
        assert rows[KEY][3] == "live: allowed once compat verify is ready"
        assert rows["uploads.get_upload"][3].startswith("shadow: allowed")


class TestTheGateOptions:
    def test_a_window_that_is_not_a_positive_number_of_minutes_is_refused_with_status_2(
        self, cli: Cli, database: str
    ) -> None:
        for window in ("-5", "0", "soon"):
            ran = cli("flags", "plan", "--window", window)
            assert ran.code == 2, (window, ran.err)
            assert "--window" in ran.err


class TestAnIdleProcess:
    @pytest.mark.parametrize("mode", ["live", "legacy"])
    def test_serves_a_flip_made_while_it_was_idle_on_its_next_call(
        self, committed_layer: object, observer: psycopg2.extensions.connection, mode: str
    ) -> None:
        running = Running()
        flip(observer, KEY, "shadow")
        assert running.after_ttl(KEY).mode is Mode.SHADOW
        flip(observer, KEY, mode)
        running.clock.advance(10 * TTL)  # idle: its copy is far older than the TTL
        assert running.store.resolve(KEY).mode is Mode(mode)


class TestAChangeDecidedOnAnOlderMode:
    def test_writes_nothing_when_a_key_moved_since_its_gate_was_decided(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        store = committed_layer.runtime.flags
        other = "user_sessions.count_sessions"
        decided = store.table_modes()  # both in legacy
        flip(observer, KEY, "live")  # someone else, meanwhile
        with pytest.raises(FlagChangedMeanwhile, match=f"{KEY} is in live now, not legacy"):
            store.set_many([other, KEY], "shadow", reason="glob", expected=decided)
        with observer.cursor() as cur:
            cur.execute("SELECT key, mode FROM compat_flags ORDER BY key")
            assert cur.fetchall() == [(KEY, "live")]
            cur.execute("SELECT count(*) FROM compat_flag_audit")
            assert cur.fetchone() == (0,)
