"""compat.flags: where each function's mode comes from, how a running process learns of a flip."""

from __future__ import annotations

import contextlib
import logging
import math
import pathlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
import sqlalchemy as sa

import layer_settings
from compat import user_sessions
from compat.errors import InvalidFlagValue, UnknownFlag
from compat.flags.modes import MODES, Entries, Entry, FlagChange, FlagState, Mode
from compat.flags.sources import parse_env_flags, parse_file_flags
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY
from compat.shadow.observation import Side
from orm.database import create_engine, dispose_engine, use_engine
from tests.compat.calls import new_session
from tests.fixtures.layer import Layer, observer_connection

KEY = "user_sessions.get_session"
OTHER = "uploads.get_upload"
THIRD = "user_sessions.count_sessions"
KEYS = frozenset(REGISTRY)
TTL = 5.0
# Nothing listens on the discard port: connecting is refused at once.
CLOSED_PORT = "postgresql+psycopg2://postgres@127.0.0.1:9/x"


@dataclass
class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Running:
    """A flag store as a running process holds it, on a clock the test controls."""

    environ: dict[str, str] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)
    store: FlagStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = FlagStore(REGISTRY, environ=self.environ, ttl_seconds=TTL, clock=self.clock)

    def after_ttl(self, key: str) -> FlagState:
        """Let the TTL pass, let the refresh the next call starts land, and read ``key`` again."""
        self.clock.advance(TTL)
        self.store.resolve(key)
        assert self.store.settle(timeout=10), "the background refresh did not finish"
        return self.store.resolve(key)


def flip(
    observer: psycopg2.extensions.connection, key: str, mode: str, sample_rate: float = 1.0
) -> None:
    """Change a flag as another process would: a committed row in compat_flags."""
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO compat_flags (key, mode, sample_rate, updated_by) "
            "VALUES (%s, %s, %s, 'another process') ON CONFLICT (key) DO UPDATE "
            "SET mode = EXCLUDED.mode, sample_rate = EXCLUDED.sample_rate",
            (key, mode, sample_rate),
        )


def by_key(states: list[FlagState]) -> dict[str, FlagState]:
    return {state.key: state for state in states}


def flags_file(directory: pathlib.Path, body: str) -> dict[str, str]:
    """Write a TOML flags file; return the environment that names it."""
    path = directory / "flags.toml"
    path.write_text(body, encoding="utf-8")
    return {"COMPAT_FLAGS_FILE": str(path)}


def closed_port_engine() -> sa.Engine:
    return create_engine(CLOSED_PORT, pool_pre_ping=False, connect_args={"connect_timeout": 2})


@contextlib.contextmanager
def engine_in_use(engine: sa.Engine, *, then: sa.Engine | None) -> Iterator[sa.Engine]:
    """Make ``engine`` the layer's engine for the block; afterwards ``then`` (or none again)."""
    use_engine(engine)
    try:
        yield engine
    finally:
        if then is None:
            dispose_engine()
        else:
            use_engine(then)
            engine.dispose()


def refresh_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "compat-flags-refresh"}


def table_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "compat.flags" and record.levelno == logging.WARNING
    ]


def database_now(observer: psycopg2.extensions.connection) -> datetime:
    with observer.cursor() as cur:
        cur.execute("SELECT CURRENT_TIMESTAMP AT TIME ZONE 'UTC'")
        row = cur.fetchone()
    assert row is not None
    now: datetime = row[0]
    return now


class TestDefaults:
    def test_every_facade_function_is_legacy_at_full_sample_rate_by_default(
        self, layer: Layer
    ) -> None:
        store = FlagStore(REGISTRY, environ={})
        assert store.states() == [
            FlagState(key, Mode.LEGACY, 1.0, "default") for key in sorted(REGISTRY)
        ]
        assert store.problems == ()


class TestSourcesWeakestFirst:
    def test_the_flags_file_overrides_the_code_default(
        self, layer: Layer, tmp_path: pathlib.Path
    ) -> None:
        environ = flags_file(
            tmp_path,
            f'[flags]\n"{KEY}" = "shadow"\n"{OTHER}" = {{ mode = "live", sample_rate = 0.25 }}\n',
        )
        states = by_key(FlagStore(REGISTRY, environ=environ).states())
        assert states[KEY] == FlagState(KEY, Mode.SHADOW, 1.0, "file")
        assert states[OTHER] == FlagState(OTHER, Mode.LIVE, 0.25, "file")
        assert states[THIRD] == FlagState(THIRD, Mode.LEGACY, 1.0, "default")

    def test_the_table_overrides_the_flags_file(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        tmp_path: pathlib.Path,
    ) -> None:
        environ = flags_file(
            tmp_path, f'[flags]\n"{KEY}" = {{ mode = "shadow", sample_rate = 0.5 }}\n'
        )
        flip(observer, KEY, "live", 0.75)
        store = FlagStore(REGISTRY, environ=environ)
        assert store.resolve(KEY) == FlagState(KEY, Mode.LIVE, 0.75, "table")

    def test_an_environment_entry_without_a_rate_keeps_the_rate_of_a_weaker_source(
        self, layer: Layer, tmp_path: pathlib.Path
    ) -> None:
        environ = flags_file(
            tmp_path, f'[flags]\n"{KEY}" = {{ mode = "shadow", sample_rate = 0.3 }}\n'
        )
        environ["COMPAT_FLAGS"] = f" {KEY} = live , "
        store = FlagStore(REGISTRY, environ=environ)
        assert store.resolve(KEY) == FlagState(KEY, Mode.LIVE, 0.3, "env")

    def test_a_star_in_the_environment_sets_every_key(self, layer: Layer) -> None:
        store = FlagStore(REGISTRY, environ={"COMPAT_FLAGS": "*=shadow:0.5"})
        assert store.states() == [
            FlagState(key, Mode.SHADOW, 0.5, "env") for key in sorted(REGISTRY)
        ]

    def test_the_kill_switch_forces_every_key_to_legacy_over_file_table_and_environment(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        tmp_path: pathlib.Path,
    ) -> None:
        environ = flags_file(tmp_path, f'[flags]\n"{KEY}" = "live"\n')
        environ["COMPAT_FLAGS"] = f"{THIRD}=shadow"
        environ["COMPAT_KILL_SWITCH"] = "1"
        flip(observer, OTHER, "orm")
        states = FlagStore(REGISTRY, environ=environ).states()
        assert {(state.mode, state.source) for state in states} == {(Mode.LEGACY, "kill-switch")}
        assert len(states) == len(REGISTRY)

    @pytest.mark.parametrize("switch", ["", "0"])
    def test_a_kill_switch_of_zero_or_empty_is_off(self, layer: Layer, switch: str) -> None:
        store = FlagStore(
            REGISTRY, environ={"COMPAT_FLAGS": f"{KEY}=orm", "COMPAT_KILL_SWITCH": switch}
        )
        assert store.resolve(KEY) == FlagState(KEY, Mode.ORM, 1.0, "env")


class TestTheEnvironmentVariable:
    def test_an_unknown_key_is_refused_naming_every_valid_key(self) -> None:
        with pytest.raises(UnknownFlag) as raised:
            parse_env_flags("user_sessions.get_sesion=orm", KEYS)
        message = str(raised.value)
        assert "'user_sessions.get_sesion'" in message
        assert all(key in message for key in KEYS)

    def test_an_unknown_mode_is_refused_naming_every_valid_mode(self) -> None:
        with pytest.raises(InvalidFlagValue) as raised:
            parse_env_flags(f"{KEY}=turbo", KEYS)
        message = str(raised.value)
        assert "'turbo'" in message
        assert all(mode in message for mode in MODES)

    @pytest.mark.parametrize("rate", ["1.5", "-0.1", "nan", "half"])
    def test_a_sample_rate_outside_zero_to_one_is_refused(self, rate: str) -> None:
        with pytest.raises(InvalidFlagValue, match="sample rate"):
            parse_env_flags(f"{KEY}=shadow:{rate}", KEYS)

    def test_an_entry_without_a_mode_is_refused(self) -> None:
        with pytest.raises(InvalidFlagValue, match="is not key=mode"):
            parse_env_flags(KEY, KEYS)

    def test_modes_and_rates_are_parsed_per_key(self) -> None:
        assert parse_env_flags(f"{KEY}=shadow:0.25,{OTHER}=orm", KEYS) == {
            KEY: Entry(Mode.SHADOW, 0.25),
            OTHER: Entry(Mode.ORM, None),
        }

    def test_a_running_store_ignores_a_refused_entry_keeps_the_others_and_logs_it_once(
        self, layer: Layer, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = FlagStore(REGISTRY, environ={"COMPAT_FLAGS": f"{KEY}=orm,uploads.get_uplod=live"})
        for _ in range(3):
            store.refresh()
        assert store.resolve(KEY) == FlagState(KEY, Mode.ORM, 1.0, "env")
        assert len(store.problems) == 1
        assert "'uploads.get_uplod'" in store.problems[0]
        assert all(key in store.problems[0] for key in KEYS)
        errors = [r for r in caplog.records if r.name == "compat.flags"]
        assert [r.levelno for r in errors] == [logging.ERROR]


class TestTheFlagsFile:
    def test_an_unknown_key_is_refused_naming_every_valid_key(self, tmp_path: pathlib.Path) -> None:
        flags_file(tmp_path, '[flags]\n"user_sessions.get_sesion" = "orm"\n')
        with pytest.raises(UnknownFlag) as raised:
            parse_file_flags(tmp_path / "flags.toml", KEYS)
        assert all(key in str(raised.value) for key in KEYS)

    def test_an_unknown_mode_is_refused_naming_every_valid_mode(
        self, tmp_path: pathlib.Path
    ) -> None:
        flags_file(tmp_path, f'[flags]\n"{KEY}" = {{ mode = "turbo" }}\n')
        with pytest.raises(InvalidFlagValue) as raised:
            parse_file_flags(tmp_path / "flags.toml", KEYS)
        assert all(mode in str(raised.value) for mode in MODES)

    def test_an_unknown_field_is_refused(self, tmp_path: pathlib.Path) -> None:
        flags_file(tmp_path, f'[flags]\n"{KEY}" = {{ mode = "shadow", rate = 0.5 }}\n')
        with pytest.raises(InvalidFlagValue, match=r"unknown fields \['rate'\]"):
            parse_file_flags(tmp_path / "flags.toml", KEYS)

    def test_a_running_store_ignores_a_refused_file_and_keeps_the_other_sources(
        self, layer: Layer, tmp_path: pathlib.Path
    ) -> None:
        environ = flags_file(tmp_path, f'[flags]\n"{KEY}" = "turbo"\n')
        environ["COMPAT_FLAGS"] = f"{OTHER}=shadow"
        store = FlagStore(REGISTRY, environ=environ)
        assert store.resolve(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "default")
        assert store.resolve(OTHER) == FlagState(OTHER, Mode.SHADOW, 1.0, "env")
        assert [problem.split(":")[0] for problem in store.problems] == ["file"]

    def test_a_file_that_is_not_utf8_is_refused_and_the_store_keeps_serving(
        self, layer: Layer, tmp_path: pathlib.Path
    ) -> None:
        path = tmp_path / "flags.toml"
        path.write_bytes(
            f'[flags]\n# caf\xe9, saved as Latin-1\n"{KEY}" = "orm"\n'.encode("latin-1")
        )
        store = FlagStore(REGISTRY, environ={"COMPAT_FLAGS_FILE": str(path)})
        assert store.resolve(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "default")
        assert [problem.split(":")[0] for problem in store.problems] == ["file"]

    def test_a_missing_file_is_reported_and_ignored(
        self, layer: Layer, tmp_path: pathlib.Path
    ) -> None:
        missing = tmp_path / "no-such-flags.toml"
        store = FlagStore(REGISTRY, environ={"COMPAT_FLAGS_FILE": str(missing)})
        assert store.resolve(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "default")
        assert str(missing) in store.problems[0]


@pytest.fixture
def unreachable_database() -> Iterator[None]:
    """The layer's engine points at a port nothing listens on: any SQL would fail."""
    with engine_in_use(closed_port_engine(), then=None):
        yield


class TestSettingAFlagRefusesBadInputBeforeAnySql:
    def test_an_unknown_key_is_refused_naming_every_valid_key(
        self, unreachable_database: None
    ) -> None:
        with pytest.raises(UnknownFlag) as raised:
            FlagStore(REGISTRY, environ={}).set("user_sessions.get_sesion", "orm", reason="typo")
        assert all(key in str(raised.value) for key in KEYS)

    def test_an_unknown_mode_is_refused_naming_every_valid_mode(
        self, unreachable_database: None
    ) -> None:
        with pytest.raises(InvalidFlagValue) as raised:
            FlagStore(REGISTRY, environ={}).set(KEY, "ORM!", reason="typo")
        assert all(mode in str(raised.value) for mode in MODES)

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_a_change_without_a_reason_is_refused(
        self, unreachable_database: None, reason: str
    ) -> None:
        with pytest.raises(InvalidFlagValue, match="a reason is required"):
            FlagStore(REGISTRY, environ={}).set(KEY, "shadow", reason=reason)

    @pytest.mark.parametrize("rate", [1.5, -0.1, math.nan])
    def test_a_sample_rate_outside_zero_to_one_is_refused(
        self, unreachable_database: None, rate: float
    ) -> None:
        with pytest.raises(InvalidFlagValue, match="sample rate"):
            FlagStore(REGISTRY, environ={}).set(KEY, "shadow", reason="sampling", sample_rate=rate)


def audit_rows(observer: psycopg2.extensions.connection) -> list[tuple[object, ...]]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT key, old_mode, new_mode, old_sample_rate, new_sample_rate, changed_by, reason, "
            "changed_at FROM compat_flag_audit ORDER BY id"
        )
        return cur.fetchall()


def flag_row(observer: psycopg2.extensions.connection, key: str) -> tuple[object, ...] | None:
    with observer.cursor() as cur:
        cur.execute("SELECT mode, sample_rate, updated_by FROM compat_flags WHERE key = %s", (key,))
        return cur.fetchone()


class TestEveryChangeIsAudited:
    def test_a_change_sets_the_flag_and_records_who_why_and_when(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        reason = f"ticket {uuid.uuid4().hex[:8]}: shadow the reads"
        store = FlagStore(REGISTRY, environ={})
        before = database_now(observer)
        change = store.set(KEY, "shadow", reason=reason, by="ada", sample_rate=0.5)
        after = database_now(observer)
        assert flag_row(observer, KEY) == ("shadow", 0.5, "ada")
        [row] = audit_rows(observer)
        assert row[:7] == (KEY, None, "shadow", None, 0.5, "ada", reason)
        changed_at = row[7]
        assert isinstance(changed_at, datetime)
        assert before <= changed_at <= after
        assert change == FlagChange(
            KEY, None, "shadow", None, 0.5, "ada", reason, changed_at, new_percent=100.0
        )
        assert store.resolve(KEY) == FlagState(KEY, Mode.SHADOW, 0.5, "table")  # at once

    def test_a_second_change_records_the_old_mode_and_keeps_the_rate_when_none_is_given(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        store = FlagStore(REGISTRY, environ={})
        store.set(KEY, "shadow", reason="compare first", by="ada", sample_rate=0.2)
        change = store.set(KEY, "live", reason="the ORM serves now", by="grace")
        assert (change.old_mode, change.new_mode) == ("shadow", "live")
        assert (change.old_sample_rate, change.new_sample_rate) == (0.2, 0.2)
        assert [row[:7] for row in audit_rows(observer)] == [
            (KEY, None, "shadow", None, 0.2, "ada", "compare first"),
            (KEY, "shadow", "live", 0.2, 0.2, "grace", "the ORM serves now"),
        ]

    def test_history_lists_every_change_newest_first(self, committed_layer: Layer) -> None:
        store = FlagStore(REGISTRY, environ={})
        store.set(KEY, "shadow", reason="first", by="ada")
        store.set(OTHER, "orm", reason="second", by="ada")
        store.set(KEY, "live", reason="third", by="ada")
        assert [(c.key, c.reason) for c in store.history()] == [
            (KEY, "third"),
            (OTHER, "second"),
            (KEY, "first"),
        ]

    def test_history_of_an_unknown_key_is_refused(self, unreachable_database: None) -> None:
        with pytest.raises(UnknownFlag, match="valid keys are"):
            FlagStore(REGISTRY, environ={}).history("user_sessions.get_sesion")


class TestTheAuditIsAppendOnly:
    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE compat_flag_audit SET reason = 'rewritten'",
            "DELETE FROM compat_flag_audit",
            "TRUNCATE compat_flag_audit",
        ],
    )
    def test_the_database_refuses_to_rewrite_or_erase_it(
        self, migrated_database_url: str, statement: str
    ) -> None:
        dsn = sa.make_url(migrated_database_url).set(drivername="postgresql")
        with contextlib.closing(
            psycopg2.connect(dsn.render_as_string(hide_password=False))
        ) as conn:
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO compat_flag_audit (key, new_mode, new_sample_rate, "
                        "changed_by, reason) VALUES (%s, 'shadow', 1, 'ada', %s)",
                        (KEY, f"evidence {uuid.uuid4().hex[:8]}"),
                    )
                    with pytest.raises(psycopg2.errors.InsufficientPrivilege) as raised:
                        cur.execute(statement)
            finally:
                conn.rollback()  # nothing of this test stays in the shared database
        assert raised.value.pgcode == "42501"
        assert "compat_flag_audit is append-only" in str(raised.value)


class TestARunningProcess:
    """Done when: a table flip reaches a running process within the TTL; the environment and
    the kill switch override it; an unreachable flag store keeps the last good values."""

    def test_a_flag_flipped_in_the_table_reaches_it_within_the_ttl(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running()
        assert running.store.resolve(KEY).mode is Mode.LEGACY
        flip(observer, KEY, "shadow", 0.5)
        running.clock.advance(TTL - 0.001)
        assert running.store.resolve(KEY).mode is Mode.LEGACY  # the cached copy is still fresh
        assert running.store.settle(timeout=10)
        assert running.store.resolve(KEY).mode is Mode.LEGACY
        running.clock.advance(0.001)
        running.store.resolve(KEY)  # the copy is TTL old: this call starts a refresh
        assert running.store.settle(timeout=10)
        assert running.store.resolve(KEY) == FlagState(KEY, Mode.SHADOW, 0.5, "table")

    def test_reading_a_flag_does_not_wait_for_the_database(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        narrow = create_engine(committed_layer.url, pool_size=1, max_overflow=0, pool_timeout=5)
        with engine_in_use(narrow, then=committed_layer.engine):
            running = Running()
            assert running.store.resolve(KEY).mode is Mode.LEGACY
            flip(observer, KEY, "orm")
            with narrow.connect():  # the pool's only connection: no refresh can finish now
                running.clock.advance(TTL)
                assert running.store.resolve(KEY).mode is Mode.LEGACY
                assert not running.store.settle(timeout=0), "the call waited for the refresh"
            assert running.store.settle(timeout=10)
            assert running.store.resolve(KEY).mode is Mode.ORM

    def test_the_environment_overrides_a_flag_flipped_in_the_table(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running(environ={"COMPAT_FLAGS": f"{KEY}=shadow:0.1"})
        assert running.store.resolve(KEY).mode is Mode.SHADOW
        flip(observer, KEY, "orm", 0.5)
        flip(observer, OTHER, "live")
        assert running.after_ttl(KEY) == FlagState(KEY, Mode.SHADOW, 0.1, "env")
        assert running.store.resolve(OTHER) == FlagState(OTHER, Mode.LIVE, 1.0, "table")

    def test_the_kill_switch_overrides_a_flag_flipped_in_the_table(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running(environ={"COMPAT_KILL_SWITCH": "1"})
        assert running.store.resolve(KEY).mode is Mode.LEGACY
        flip(observer, KEY, "orm")
        assert running.after_ttl(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "kill-switch")

    def test_an_unreachable_store_keeps_the_last_good_values_and_warns_once(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        flip(observer, KEY, "live", 0.5)
        running = Running()
        assert running.store.resolve(KEY) == FlagState(KEY, Mode.LIVE, 0.5, "table")
        caplog.set_level(logging.WARNING, logger="compat.flags")
        with engine_in_use(closed_port_engine(), then=committed_layer.engine):
            for _ in range(20):
                assert running.after_ttl(KEY) == FlagState(KEY, Mode.LIVE, 0.5, "table")
        [warning] = table_warnings(caplog)
        assert "keeping the last good values" in warning

    def test_a_store_reachable_again_takes_the_values_flipped_meanwhile(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        running = Running()
        assert running.store.resolve(KEY).mode is Mode.LEGACY
        with engine_in_use(closed_port_engine(), then=committed_layer.engine):
            assert running.after_ttl(KEY).mode is Mode.LEGACY
            flip(observer, KEY, "shadow")
            assert running.after_ttl(KEY).mode is Mode.LEGACY
        assert running.after_ttl(KEY) == FlagState(KEY, Mode.SHADOW, 1.0, "table")
        assert len(table_warnings(caplog)) == 1

    def test_a_missing_table_serves_the_defaults_with_one_warning(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="compat.flags")
        # The shared database of legacy/schema.sql alone (never migrated; only read here).
        with engine_in_use(create_engine(database_url), then=None):
            running = Running()
            assert running.store.resolve(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "default")
            for _ in range(10):
                assert running.after_ttl(KEY) == FlagState(KEY, Mode.LEGACY, 1.0, "default")
        [warning] = table_warnings(caplog)
        assert 'relation "compat_flags" does not exist' in warning
        assert "keeping the defaults" in warning

    def test_a_table_flip_changes_the_path_serving_a_facade_call_after_the_ttl(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running()
        committed_layer.runtime.flags = running.store
        session_uuid = new_session(observer, name=f"Ada {uuid.uuid4().hex[:6]}")
        legacy_row = user_sessions.get_session(session_uuid)
        assert legacy_row is not None
        assert committed_layer.paths_touching_data() == [Side.LEGACY]

        flip(observer, KEY, "orm")
        committed_layer.forget_statements()
        assert user_sessions.get_session(session_uuid) == legacy_row
        assert committed_layer.paths_touching_data() == [Side.LEGACY]  # within the TTL

        running.clock.advance(TTL)
        user_sessions.get_session(session_uuid)  # notices the stale copy, refreshes behind
        assert running.store.settle(timeout=10)
        committed_layer.forget_statements()
        assert user_sessions.get_session(session_uuid) == legacy_row
        assert committed_layer.paths_touching_data() == [Side.ORM]


class TestAForkedChild:
    def test_reads_the_table_again_without_waiting_for_the_ttl(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running()
        assert running.store.resolve(KEY).mode is Mode.LEGACY
        flip(observer, KEY, "live")
        running.store.after_fork()
        running.store.resolve(KEY)
        assert running.store.settle(timeout=10)
        assert running.store.resolve(KEY) == FlagState(KEY, Mode.LIVE, 1.0, "table")

    def test_starts_a_refresh_of_its_own_while_the_parents_refresh_is_in_flight(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        running = Running()
        assert running.store.resolve(KEY).mode is Mode.LEGACY
        flip(observer, KEY, "shadow")
        locker = observer_connection(committed_layer.url)
        locker.autocommit = False
        try:
            with locker.cursor() as cur:  # every read of the table waits until the rollback
                cur.execute("LOCK TABLE compat_flags IN ACCESS EXCLUSIVE MODE")
            running.clock.advance(TTL)
            running.store.resolve(KEY)
            parents = refresh_threads()
            assert len(parents) == 1, "the parent's refresh should be in flight"

            running.store.after_fork()  # what os.fork runs in the child (compat.runtime)
            assert running.store.resolve(KEY).mode is Mode.LEGACY  # inherited values serve
            assert len(refresh_threads() - parents) == 1, "the child did not refresh on its own"
        finally:
            locker.rollback()
            locker.close()
        assert running.store.settle(timeout=10)
        for thread in parents:
            thread.join(timeout=10)
        assert running.store.resolve(KEY) == FlagState(KEY, Mode.SHADOW, 1.0, "table")


class TestOverlappingReads:
    def test_an_older_read_that_finishes_last_does_not_overwrite_a_newer_one(self) -> None:
        key = "user_sessions.get_session"
        first_read_may_finish = threading.Event()
        first_read_started = threading.Event()
        answers: Iterator[Entries] = iter(
            [{key: Entry(Mode.SHADOW, 1.0)}, {key: Entry(Mode.ORM, 1.0)}]
        )

        def read_table() -> Entries:
            answer = next(answers)
            if answer[key][0] is Mode.SHADOW:
                first_read_started.set()
                assert first_read_may_finish.wait(10)
            return answer

        store = FlagStore(REGISTRY, environ={}, read_table=read_table, clock=FakeClock())
        older = threading.Thread(target=store.refresh)
        older.start()
        assert first_read_started.wait(10)
        store.refresh()
        assert store.resolve(key).mode is Mode.ORM
        first_read_may_finish.set()
        older.join(10)
        assert store.resolve(key).mode is Mode.ORM

    def test_a_caller_that_comes_during_the_first_read_waits_for_it_not_for_the_default(
        self,
    ) -> None:
        key = "user_sessions.get_session"
        read_may_finish = threading.Event()
        read_started = threading.Event()

        def read_table() -> Entries:
            read_started.set()
            assert read_may_finish.wait(10)
            return {key: Entry(Mode.ORM, 1.0)}

        store = FlagStore(REGISTRY, environ={}, read_table=read_table, clock=FakeClock())
        seen: dict[str, Mode] = {}
        first = threading.Thread(target=lambda: seen.update(first=store.resolve(key).mode))
        second = threading.Thread(target=lambda: seen.update(second=store.resolve(key).mode))
        first.start()
        assert read_started.wait(10)
        second.start()  # the read is under way: before, this call served legacy at once
        second.join(1)
        read_may_finish.set()
        first.join(10)
        second.join(10)
        assert seen == {"first": Mode.ORM, "second": Mode.ORM}


class TestTtlSetting:
    @pytest.mark.parametrize("text", ["soon", "-1", "inf", "nan"])
    def test_a_bad_ttl_falls_back_to_the_default_and_is_reported_in_one_line(
        self, text: str
    ) -> None:
        environ = {"COMPAT_FLAGS_TTL": text}
        store = FlagStore(REGISTRY, environ=environ, read_table=dict, clock=FakeClock())
        assert store.ttl_seconds == layer_settings.load({}).flags_ttl_seconds
        [problem] = layer_settings.load(environ).problems
        assert problem.startswith(f"COMPAT_FLAGS_TTL={text!r} is not allowed")

    def test_a_good_ttl_is_used(self) -> None:
        store = FlagStore(
            REGISTRY, environ={"COMPAT_FLAGS_TTL": "0.5"}, read_table=dict, clock=FakeClock()
        )
        assert store.ttl_seconds == 0.5


class TestALockedFlagTable:
    def test_the_first_read_gives_up_quickly_and_serves_the_defaults_with_one_warning(
        self,
        committed_layer: Layer,
        observer: psycopg2.extensions.connection,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        key = "user_sessions.get_session"
        flip(observer, key, "orm")
        locker = observer_connection(committed_layer.url)
        locker.autocommit = False
        try:
            with locker.cursor() as cur:
                cur.execute("LOCK TABLE compat_flags IN ACCESS EXCLUSIVE MODE")
            store = FlagStore(REGISTRY, environ={}, clock=FakeClock())
            with caplog.at_level(logging.WARNING, logger="compat.flags"):
                assert store.resolve(key).mode is Mode.LEGACY
                store.refresh()
            assert caplog.text.count("cannot read the compat_flags table") == 1
            assert "QueryCanceled" in caplog.text
        finally:
            locker.rollback()
            locker.close()
        store.refresh()
        assert store.resolve(key).mode is Mode.ORM
