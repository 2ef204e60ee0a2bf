"""`compat` when things go wrong: one line on stderr, the documented exit status, no traceback.

Most cases run the installed command in a process of its own, because what
matters there (the exit status, a traceback, a broken pipe, Ctrl-C) belongs to
the process. Exit statuses: 0 done, 1 the database or the work failed, 2 a
usage or configuration error, 130 interrupted, 141 stdout's reader went away.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extensions
import pytest

from compat.cli import LOCK_TIMEOUT_MS
from compat.flags.sources import READ_TIMEOUT_MS
from compat.flags.store import MAX_REASON_LENGTH
from tests.compat.test_cli import COMPAT_VARIABLES, KEY, Cli, cli, table  # noqa: F401
from tests.fixtures.layer import Layer, observer_connection

COMPAT = Path(sys.executable).with_name("compat")
WAIT_SECONDS = 60.0
# A bounded wait, with room for a loaded machine (2 cores, shared).
SLACK_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Done:
    code: int
    out: str
    err: str
    seconds: float


def environment(url: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in COMPAT_VARIABLES}
    environ["DATABASE_URL"] = url
    return environ


def compat(url: str, *argv: str) -> Done:
    started = time.monotonic()
    done = subprocess.run(
        [str(COMPAT), *argv],
        env=environment(url),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def one_line(err: str) -> str:
    """stderr must be exactly one line, and not a traceback."""
    assert "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith("compat")
    return line


@pytest.fixture
def url(committed_layer: Layer) -> str:
    """A fresh migrated database (DATABASE_URL of each command run)."""
    return committed_layer.url


@pytest.fixture
def observer(url: str) -> Iterator[psycopg2.extensions.connection]:
    conn = observer_connection(url)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def locked(url: str, table_name: str) -> Iterator[None]:
    """Another session holds ``table_name`` (ACCESS EXCLUSIVE) for the block."""
    holder = observer_connection(url)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLE {table_name} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        holder.rollback()
        holder.close()


def waiting_on_a_lock(observer: psycopg2.extensions.connection) -> bool:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        row = cur.fetchone()
    return bool(row and row[0])


class TestAnUnmigratedDatabase:
    @pytest.mark.parametrize("argv", [("flags", "list"), ("status",), ("flags", "history")])
    def test_says_which_command_migrates_it(self, fresh_database: str, argv: tuple[str]) -> None:
        done = compat(fresh_database, *argv)
        assert done.code == 1
        line = one_line(done.err)
        assert "42P01" in line
        assert "alembic upgrade head" in line
        assert "DATABASE_URL" in line


class TestALockHeldByAnotherSession:
    @pytest.mark.parametrize(
        ("argv", "table_name", "bound_ms"),
        [
            (("flags", "list"), "compat_flags", READ_TIMEOUT_MS),
            (("status",), "compat_flags", READ_TIMEOUT_MS),
            (("status",), "compat_observations", LOCK_TIMEOUT_MS),
            (
                ("flags", "set", KEY, "shadow", "--reason", "lock test"),
                "compat_flags",
                LOCK_TIMEOUT_MS,
            ),
            (("flags", "history"), "compat_flag_audit", LOCK_TIMEOUT_MS),
        ],
        ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
    )
    def test_fails_after_a_bounded_wait_instead_of_showing_defaults_or_hanging(
        self, url: str, argv: tuple[str, ...], table_name: str, bound_ms: int
    ) -> None:
        with locked(url, table_name):
            done = compat(url, *argv)
        assert (done.code, done.out) == (1, "")
        line = one_line(done.err)
        assert "SQLSTATE" in line
        assert done.seconds < bound_ms / 1000 + SLACK_SECONDS


class TestInterruptsAndPipes:
    def test_ctrl_c_exits_130_with_one_line(
        self, url: str, observer: psycopg2.extensions.connection
    ) -> None:
        with locked(url, "compat_flag_audit"):
            process = subprocess.Popen(
                [str(COMPAT), "flags", "history"],
                env=environment(url),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + WAIT_SECONDS
            while not waiting_on_a_lock(observer):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the command never waited on the lock"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=WAIT_SECONDS)
        assert (process.returncode, out) == (130, "")
        assert one_line(err) == "compat: interrupted"

    def test_a_reader_that_went_away_ends_it_quietly(self, url: str) -> None:
        process = subprocess.Popen(
            [str(COMPAT), "flags", "list"],
            env=environment(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        process.stdout.close()  # before it writes anything: its first write meets EPIPE
        _out, err = process.communicate(timeout=WAIT_SECONDS)
        assert (process.returncode, err) == (141, b"")

    def test_piped_into_head_prints_the_first_line_and_nothing_on_stderr(self, url: str) -> None:
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {COMPAT} flags list | head -1"],
            env=environment(url),
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
            check=False,
        )
        assert done.returncode in (0, 141)  # whether head left before the last write
        assert done.stderr == ""
        assert done.stdout.split() == ["key", "mode", "source", "sample", "ramp"]


class TestAuditText:
    def test_is_stored_as_given_and_shown_escaped_and_cut(
        self,
        cli: Cli,  # noqa: F811  (the fixture imported above)
        url: str,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        reason = "flip\x1b[31m red\nsecond line " + "x" * 200
        by = "ops\x07\rbot"
        ran = cli("flags", "set", KEY, "shadow", "--reason", reason, "--by", by)
        assert ran.code == 0, ran.err
        with observer.cursor() as cur:
            cur.execute("SELECT reason, changed_by FROM compat_flag_audit")
            assert cur.fetchall() == [(reason, by)]
        for text in (ran.out, cli("flags", "history").out):
            assert "\x1b" not in text
            assert "\x07" not in text
            assert "\r" not in text
            assert "\\x1b[31m red\\nsecond line" in text
            assert "ops\\x07\\rbot" in text
            assert "x" * 200 not in text
        [row] = table(cli("flags", "history").out)
        assert row[-1].endswith("...")

    def test_a_reason_longer_than_the_maximum_is_refused_with_one_line(
        self, url: str, observer: psycopg2.extensions.connection
    ) -> None:
        done = compat(url, "flags", "set", KEY, "shadow", "--reason", "y" * (MAX_REASON_LENGTH + 1))
        assert (done.code, done.out) == (2, "")
        assert f"at most {MAX_REASON_LENGTH}" in one_line(done.err)
        with observer.cursor() as cur:
            cur.execute("SELECT count(*) FROM compat_flag_audit")
            assert cur.fetchone() == (0,)

    def test_a_reason_of_the_maximum_length_is_taken(self, url: str) -> None:
        done = compat(url, "flags", "set", KEY, "shadow", "--reason", "y" * MAX_REASON_LENGTH)
        assert (done.code, done.err) == (0, "")


class TestBadArguments:
    @pytest.mark.parametrize(
        "argv",
        [
            ("flags", "history", "--limit", "-1"),
            ("flags", "history", "--limit", "many"),
            ("status", "--window", "nan"),
            ("status", "--window", "-5"),
            ("flags", "set", KEY, "sideways", "--reason", "r"),
            ("flags", "set", KEY, "shadow", "--reason", "r", "--sample", "2"),
            ("flags", "set", KEY, "shadow"),
            ("flags", "set", KEY, "shadow", "--reason", "r", "--by", "z" * 101),
        ],
        ids=lambda argv: " ".join(argv)[:60],
    )
    def test_exit_2_with_one_line(self, url: str, argv: tuple[str, ...]) -> None:
        done = compat(url, *argv)
        assert (done.code, done.out) == (2, "")
        one_line(done.err)


class TestStatusCountsFaultsAndDropsApart:
    def test_a_fault_is_not_a_mismatch_and_drops_have_their_own_column(
        self,
        cli: Cli,  # noqa: F811  (the fixture imported above)
        url: str,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", url)
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO compat_observations (key, mode, serving, matched, fault) VALUES "
                "(%(key)s, 'shadow', 'legacy', true, NULL), "
                "(%(key)s, 'shadow', 'legacy', false, NULL), "
                "(%(key)s, 'shadow', 'legacy', false, 'legacy'), "
                "(%(key)s, 'live', 'orm', false, 'orm')",
                {"key": KEY},
            )
            cur.execute(
                "INSERT INTO compat_observation_drops (key, dropped, reason) "
                "VALUES (%s, 3, 'the queue was full'), (%s, 2, 'drain timeout')",
                (KEY, KEY),
            )
        ran = cli("status")
        assert ran.code == 0, ran.err
        header = ran.out.splitlines()[1].split()
        assert header[:6] == ["key", "mode", "observations", "mismatches", "faults", "dropped"]
        row = next(r for r in table(ran.out) if r[0] == KEY)
        # Observations are compared calls: the two faults compared nothing.
        assert row[1:6] == ["legacy", "2", "1", "2", "5"]
