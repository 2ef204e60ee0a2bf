"""Cache tests: opt-in cached reads that stay correct whoever writes (facade, raw SQL, a unit)."""

from __future__ import annotations

import os

import pytest

import compat
import layer_settings
from compat import uploads, user_sessions
from compat.errors import InvalidFlagValue, UnknownFlag
from compat.flags.modes import Mode
from compat.flags.store import FlagStore
from compat.listening import APPLICATION_NAME
from compat.routing.declaration import REGISTRY, Kind
from compat.runtime import build_runtime, reset_runtime
from compat.shadow.observation import Side
from tests.cache.helpers import cache, new_session, wait_until
from tests.fixtures.layer import Layer, observer_connection

STALENESS_BOUND_SECONDS = 1.0
"""docs/caching.md's bound on how long a write that bypasses the facade may go unseen."""


def _name_of(session_uuid: str) -> str | None:
    row = user_sessions.get_session(session_uuid)
    return None if row is None else row["name"]


def _database_reads(layer: Layer) -> int:
    return len(layer.paths_touching_data())


class TestCachedReads:
    def test_a_read_is_not_cached_until_its_cache_is_set(self, cached_layer: Layer) -> None:
        """Off by default: a process with the cache on still reads the database every time."""
        session_uuid = new_session()
        cached_layer.forget_statements()

        user_sessions.get_session(session_uuid)
        user_sessions.get_session(session_uuid)

        assert _database_reads(cached_layer) == 2
        assert cached_layer.runtime.cache.stats.hits == 0

    def test_a_cached_read_is_served_without_the_database(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        cached_layer.forget_statements()

        first = user_sessions.get_session(session_uuid)
        second = user_sessions.get_session(session_uuid=session_uuid)

        assert first == second
        assert first is not None
        assert first["name"] == "before"
        assert _database_reads(cached_layer) == 1
        assert cached_layer.runtime.cache.stats.hits == 1

    def test_every_hit_is_a_new_object_the_caller_may_change(self, cached_layer: Layer) -> None:
        """A cached value is never shared: what one caller mutates, the next does not see."""
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        got = user_sessions.get_session(session_uuid)
        assert got is not None

        got["name"] = "mutated by the caller"
        again = user_sessions.get_session(session_uuid)

        assert again is not None
        assert again["name"] == "before"
        assert type(again) is type(got)

    def test_a_write_function_cannot_be_cached(self, cached_layer: Layer) -> None:
        settings = cached_layer.runtime.cache_settings
        assert settings is not None

        with pytest.raises(InvalidFlagValue, match="only read functions can be cached"):
            settings.set("user_sessions.update_session", 30, reason="test")
        with pytest.raises(UnknownFlag):
            settings.set("user_sessions.no_such_function", 30, reason="test")

    def test_every_read_declares_tables_whose_changes_are_announced(
        self, cached_layer: Layer
    ) -> None:
        """A read that can never be cached would make `compat cache set` refuse it."""
        settings = cached_layer.runtime.cache_settings
        assert settings is not None
        reads = sorted(key for key, spec in REGISTRY.items() if spec.kind is Kind.READ)

        assert settings.cacheable() == reads

    def test_turning_the_cache_off_stops_serving_cached_results(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)
        settings = cached_layer.runtime.cache_settings
        assert settings is not None

        settings.off("user_sessions.get_session", reason="test", by="tests")
        wait_until(
            lambda: cached_layer.runtime.cache.ttl_of("user_sessions.get_session") is None,
            "the cache turned off",
        )
        cached_layer.forget_statements()
        user_sessions.get_session(session_uuid)

        assert _database_reads(cached_layer) == 1
        assert [(c.old_ttl_seconds, c.new_ttl_seconds) for c in settings.history()] == [
            (60.0, None),
            (None, 60.0),
        ]

    def test_an_expired_entry_is_read_again(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session", ttl=0.05)
        user_sessions.get_session(session_uuid)
        cached_layer.forget_statements()

        wait_until(
            lambda: (
                user_sessions.get_session(session_uuid) is not None
                and _database_reads(cached_layer) > 0
            ),
            "the entry expired",
        )


class TestInvalidation:
    def test_a_facade_write_is_seen_by_the_next_read_at_once(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        cache(cached_layer, "user_sessions.list_sessions")
        user_sessions.get_session(session_uuid)
        user_sessions.list_sessions(limit=5)

        user_sessions.update_session(session_uuid, {"name": "after"})

        got = user_sessions.get_session(session_uuid)
        listed = user_sessions.list_sessions(limit=5)
        assert got is not None
        assert got["name"] == "after"
        assert {row["name"] for row in listed if str(row["uuid"]) == session_uuid} == {"after"}

    def test_a_write_that_bypasses_the_facade_is_seen_within_the_bound(
        self, cached_layer: Layer
    ) -> None:
        """Legacy SQL run directly (no facade) is heard through the trigger's NOTIFY."""
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)
        outside = observer_connection(cached_layer.url)
        try:
            with outside.cursor() as cursor:
                cursor.execute(
                    "UPDATE user_sessions SET name = 'after' WHERE uuid = %s", (session_uuid,)
                )
            took = wait_until(
                lambda: _name_of(session_uuid) == "after",
                "the outside write seen",
                deadline=STALENESS_BOUND_SECONDS,
            )
        finally:
            outside.close()
        assert took < STALENESS_BOUND_SECONDS

    def test_a_deleted_session_drops_its_cached_uploads(self, cached_layer: Layer) -> None:
        """ON DELETE CASCADE: the facade write names the sessions; its uploads go too."""
        session_uuid = new_session()
        uploads.record_upload(session_uuid, "a.txt", f"key-{session_uuid}", 3, None, "0" * 64)
        cache(cached_layer, "uploads.list_uploads")
        assert len(uploads.list_uploads(session_uuid)) == 1

        user_sessions.delete_abandoned_sessions(0)

        assert uploads.list_uploads(session_uuid) == []

    def test_a_session_update_keeps_its_cached_uploads(self, cached_layer: Layer) -> None:
        """Only a delete cascades: an update of the session leaves uploaded_files alone."""
        session_uuid = new_session()
        uploads.record_upload(session_uuid, "a.txt", f"key-{session_uuid}", 3, None, "0" * 64)
        cache(cached_layer, "uploads.list_uploads")
        uploads.list_uploads(session_uuid)
        stats = cached_layer.runtime.cache.stats

        user_sessions.update_session(session_uuid, {"name": "after"})
        hits = stats.hits
        uploads.list_uploads(session_uuid)

        assert stats.hits == hits + 1


class TestUnitsOfWork:
    def test_reads_in_a_unit_bypass_the_cache_once_it_has_written(
        self, cached_layer: Layer
    ) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)

        with compat.transaction():
            before = user_sessions.get_session(session_uuid)
            user_sessions.update_session(session_uuid, {"name": "in the unit"})
            after = user_sessions.get_session(session_uuid)

        assert before is not None
        assert before["name"] == "before"
        assert after is not None
        assert after["name"] == "in the unit"
        got = user_sessions.get_session(session_uuid)
        assert got is not None
        assert got["name"] == "in the unit"

    def test_nothing_a_unit_wrote_is_cached_before_it_commits(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")

        class RolledBack(Exception):
            pass

        with pytest.raises(RolledBack), compat.transaction():
            user_sessions.update_session(session_uuid, {"name": "never committed"})
            user_sessions.get_session(session_uuid)
            raise RolledBack

        got = user_sessions.get_session(session_uuid)
        assert got is not None
        assert got["name"] == "before"

    def test_a_unit_at_its_own_isolation_level_never_reads_the_cache(
        self, cached_layer: Layer
    ) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)
        cached_layer.forget_statements()

        with compat.transaction("REPEATABLE READ"):
            user_sessions.get_session(session_uuid)

        assert _database_reads(cached_layer) == 1


class TestOneListeningConnection:
    def test_serves_both_the_flag_flips_and_the_cache_of_a_process(
        self, committed_layer: Layer
    ) -> None:
        """The process's runtime (flags pushed, cache on) holds one LISTEN connection, not two."""
        session_uuid = new_session()
        runtime = build_runtime(
            engine=committed_layer.engine, publishers=[], cache_backend="memory"
        )
        listener = runtime.listener
        assert listener is not None
        assert runtime.flags.listener is listener
        previous = reset_runtime(runtime)
        outside = observer_connection(committed_layer.url)
        try:
            assert runtime.cache.wait_ready(10)
            assert listener.connected.wait(10)
            assert runtime.cache_settings is not None
            runtime.cache_settings.set("user_sessions.get_session", 60, reason="t", by="tests")
            wait_until(lambda: runtime.cache.ttl_of("user_sessions.get_session") == 60.0, "heard")
            assert _name_of(session_uuid) == "before"
            with outside.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = %s",
                    (APPLICATION_NAME,),
                )
                assert cursor.fetchone() == (1,)
                cursor.execute(
                    "UPDATE user_sessions SET name = 'after' WHERE uuid = %s", (session_uuid,)
                )
            wait_until(lambda: _name_of(session_uuid) == "after", "the outside write heard")
            FlagStore(REGISTRY, environ={}).set(
                "user_sessions.get_session", "shadow", reason="one connection", by="tests"
            )
            wait_until(
                lambda: runtime.flags.resolve("user_sessions.get_session").mode is Mode.SHADOW,
                "the flip heard",
            )
        finally:
            outside.close()
            reset_runtime(previous)
            runtime.close()


class TestWhereListeningCannotWork:
    def test_a_process_with_flag_listening_off_caches_nothing(self) -> None:
        """COMPAT_FLAGS_LISTEN=0 (a transaction-pooling PgBouncer): no change could be heard."""
        settings = layer_settings.load(
            {"DATABASE_URL": "postgresql://app@127.0.0.1:1/none", "COMPAT_FLAGS_LISTEN": "0"}
        )
        runtime = build_runtime(settings, cache_backend="memory")
        try:
            assert runtime.listener is None
            assert not runtime.cache.enabled
            assert runtime.cache.ttl_of("user_sessions.get_session") is None
        finally:
            runtime.close()


class TestListener:
    def test_a_lost_listener_clears_and_bypasses_the_cache_until_it_is_back(
        self, cached_layer: Layer
    ) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)
        cache_ = cached_layer.runtime.cache
        listener = cached_layer.runtime.listener
        assert listener is not None
        pid = listener.backend_pid
        outside = observer_connection(cached_layer.url)
        try:
            with outside.cursor() as cursor:
                # Lost and back before anyone looks: the server ends it, the listener reconnects.
                cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
                wait_until(lambda: cache_.stats.lost >= 1, "the loss noticed")
                # Written while nobody may have been listening.
                cursor.execute(
                    "UPDATE user_sessions SET name = 'while lost' WHERE uuid = %s",
                    (session_uuid,),
                )
            wait_until(
                lambda: cache_.listening and listener.backend_pid not in (None, pid),
                "listening again",
            )
        finally:
            outside.close()

        got = user_sessions.get_session(session_uuid)
        assert got is not None
        assert got["name"] == "while lost"

    def test_reads_go_to_the_database_while_the_listener_is_down(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        cache_ = cached_layer.runtime.cache
        user_sessions.get_session(session_uuid)

        cache_.lost("test: as the listener reports a lost connection")
        cached_layer.forget_statements()
        user_sessions.get_session(session_uuid)
        user_sessions.get_session(session_uuid)

        assert _database_reads(cached_layer) == 2
        assert [s for s in cached_layer.paths_touching_data() if s is Side.LEGACY] != []


class TestPointReads:
    """A point read by a row's key is dropped by a change to its row, not to any other."""

    def test_a_write_to_another_row_keeps_a_point_read_cached(self, cached_layer: Layer) -> None:
        mine, other = new_session(), new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(mine)
        stats = cached_layer.runtime.cache.stats

        user_sessions.update_session(other, {"name": "other"})
        heard = stats.invalidations
        outside = observer_connection(cached_layer.url)
        try:
            with outside.cursor() as cursor:
                cursor.execute("UPDATE user_sessions SET name = 'x' WHERE uuid = %s", (other,))
            wait_until(lambda: stats.invalidations > heard, "the outside write heard")
        finally:
            outside.close()
        hits = stats.hits
        user_sessions.get_session(mine)

        assert stats.hits == hits + 1

    def test_a_write_to_its_row_is_seen_however_the_uuid_is_spelled(
        self, cached_layer: Layer
    ) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        cache(cached_layer, "user_sessions.check_uuid_exists")
        assert _name_of(session_uuid.upper()) == "before"
        assert user_sessions.check_uuid_exists(session_uuid.upper())

        user_sessions.update_session(session_uuid, {"name": "after"})

        assert _name_of(session_uuid.upper()) == "after"

    def test_a_delete_is_seen_by_a_cached_existence_check(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.check_uuid_exists")
        assert user_sessions.check_uuid_exists(session_uuid)

        user_sessions.delete_session(session_uuid)

        assert not user_sessions.check_uuid_exists(session_uuid)

    def test_a_bulk_write_drops_every_point_read_of_its_table(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)
        stats = cached_layer.runtime.cache.stats
        misses = stats.misses

        user_sessions.delete_abandoned_sessions(1000)
        user_sessions.get_session(session_uuid)

        assert stats.misses == misses + 1

    def test_a_new_upload_is_seen_by_a_point_read_that_cached_its_absence(
        self, cached_layer: Layer
    ) -> None:
        """record_upload names its row by storage key, not id: the table's bulk counter moves."""
        session_uuid = new_session()
        first = uploads.record_upload(session_uuid, "a", f"a-{session_uuid}", 1, None, "0" * 64)
        cache(cached_layer, "uploads.get_upload")
        assert uploads.get_upload(first["id"] + 1) is None

        second = uploads.record_upload(session_uuid, "b", f"b-{session_uuid}", 1, None, "0" * 64)

        assert second["id"] == first["id"] + 1
        assert uploads.get_upload(second["id"]) is not None

    def test_a_cascaded_delete_is_seen_by_a_cached_upload(self, cached_layer: Layer) -> None:
        session_uuid = new_session()
        upload = uploads.record_upload(session_uuid, "a", f"a-{session_uuid}", 1, None, "0" * 64)
        cache(cached_layer, "uploads.get_upload")
        assert uploads.get_upload(upload["id"]) is not None

        user_sessions.delete_session(session_uuid)

        assert uploads.get_upload(upload["id"]) is None


class TestFork:
    def test_a_forked_child_listens_on_its_own_and_leaves_the_parents_listener_alone(
        self, cached_layer: Layer
    ) -> None:
        """As a pre-forking server does: the child's cache starts empty, on its own connection."""
        session_uuid = new_session()
        cache(cached_layer, "user_sessions.get_session")
        user_sessions.get_session(session_uuid)
        cache_ = cached_layer.runtime.cache
        listener = cached_layer.runtime.listener
        assert listener is not None
        parent_pid = listener.backend_pid

        child = os.fork()
        if child == 0:  # pragma: no cover (the child reports through its exit status)
            code = 1
            try:
                fresh = not cache_.listening and listener.backend_pid is None
                listening = cache_.wait_ready(10) and listener.backend_pid not in (None, parent_pid)
                hits = cache_.stats.hits
                read = _name_of(session_uuid) == "before" and cache_.stats.hits == hits
                code = 0 if fresh and listening and read else 2
                listener.stop()
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)

        assert os.waitstatus_to_exitcode(status) == 0
        outside = observer_connection(cached_layer.url)
        try:
            with outside.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (parent_pid,)
                )
                assert cursor.fetchone() == (1,)
        finally:
            outside.close()
        assert cache_.listening
        assert listener.backend_pid == parent_pid
