"""Bounded observation storage: matches counted per minute, mismatches kept to a bound."""

from __future__ import annotations

import time

import psycopg2.extensions

from compat.flags.modes import Mode
from compat.rollout.gates import evidence
from tests.compat.test_cli import Cli, by_key, table
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"
PER_MINUTE = 60  # one compared call a second, sample rate 1
MINUTES = 24 * 60
MISMATCH_EVERY = 100  # one call in a hundred mismatches
KEEP = 500


def a_day_of_traffic(observer: psycopg2.extensions.connection, key: str) -> int:
    """A day of compared calls of ``key`` in shadow, ending now, as the table publisher inserts."""
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO compat_observations (observed_at, key, mode, serving, matched, "
            "legacy_ms, orm_ms, diff) "
            "SELECT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - i * (INTERVAL '1 minute' / %s), "
            "%s, 'shadow', 'legacy', i %% %s <> 0, 0.3 + (i %% 7) * 0.1, 0.4 + (i %% 5) * 0.2, "
            "CASE WHEN i %% %s = 0 THEN "
            "'[''result''][''email'']: legacy=''a'' orm=None (values differ)' END "
            "FROM generate_series(0, %s - 1) AS i",
            (PER_MINUTE, key, MISMATCH_EVERY, MISMATCH_EVERY, PER_MINUTE * MINUTES),
        )
    return PER_MINUTE * MINUTES


def count(observer: psycopg2.extensions.connection, sql: str) -> int:
    with observer.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


class TestADayOfTraffic:
    def test_stays_bounded_after_prune_and_every_count_stays_exact(
        self,
        cli: Cli,
        database: str,
        observer: psycopg2.extensions.connection,
        committed_layer: Layer,
    ) -> None:
        started = time.monotonic()
        calls = a_day_of_traffic(observer, KEY)
        mismatches = calls // MISMATCH_EVERY
        print(f"{calls} observations inserted in {time.monotonic() - started:.1f} s")
        # A match is never kept as a row; a minute's calls are one rollup row.
        assert count(observer, "SELECT count(*) FROM compat_observations") == mismatches
        assert count(observer, "SELECT count(*) FROM compat_observation_rollups") <= MINUTES + 1
        ran = cli("observations", "prune", "--keep", str(KEEP))
        assert (ran.code, ran.err) == (0, "")
        assert f"removed {mismatches - KEEP} observation rows" in ran.out
        assert count(observer, "SELECT count(*) FROM compat_observations") == KEEP
        with committed_layer.engine.connect() as connection:
            seen = evidence(connection, KEY, Mode.SHADOW, 24 * 60 + 1)
        assert (seen.calls, seen.mismatches, seen.candidate_errors) == (calls, mismatches, 0)
        status = by_key(table(cli("status", "--window", str(24 * 60 + 1)).out))
        assert status[KEY][1:3] == [str(calls), str(mismatches)]

    def test_prune_drops_what_is_older_than_the_retention(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO compat_observations (observed_at, key, mode, serving, matched) "
                "VALUES ((CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - INTERVAL '40 days', %s, "
                "'shadow', 'legacy', false), "
                "((CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - INTERVAL '40 days', %s, "
                "'shadow', 'legacy', true), "
                "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', %s, 'shadow', 'legacy', false)",
                (KEY, KEY, KEY),
            )
            cur.execute(
                "INSERT INTO compat_served_rollups "
                "(key, mode, side, minute, calls, errors, faults) VALUES "
                "(%s, 'orm', 'orm', date_trunc('minute', now()) - INTERVAL '40 days', 5, 1, 0), "
                "(%s, 'orm', 'orm', date_trunc('minute', now()), 3, 0, 0)",
                (KEY, KEY),
            )
        ran = cli("observations", "prune")
        assert ran.code == 0
        assert "removed 1 observation rows" in ran.out
        assert "and 2 per-minute counts" in ran.out  # one of observations, one of served calls
        assert count(observer, "SELECT count(*) FROM compat_observations") == 1
        assert count(observer, "SELECT sum(compared) FROM compat_observation_rollups") == 1
        assert count(observer, "SELECT sum(calls) FROM compat_served_rollups") == 3


class TestTheGateEvidence:
    def test_counts_matches_no_row_is_kept_of_and_mismatches_pruned_since(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO compat_observations (key, mode, serving, matched) "
                "SELECT %s, 'shadow', 'legacy', i > 3 FROM generate_series(1, 12) AS i",
                (KEY,),
            )
        assert cli("observations", "prune", "--keep", "1").code == 0
        assert count(observer, "SELECT count(*) FROM compat_observations") == 1
        assert cli("flags", "set", KEY, "shadow", "--reason", "compare").code == 0
        ran = cli("flags", "set", KEY, "live", "--reason", "serve", "--min-calls", "10")
        assert ran.code == 1
        assert "12 of 10 compared calls in shadow" in ran.err
        assert "3 mismatches" in ran.err
