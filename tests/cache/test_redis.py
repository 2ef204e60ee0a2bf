"""Cache tests: the Redis backend, shared by every process, on a redis-server the test starts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
import redis

from compat import user_sessions
from compat.runtime import build_runtime, reset_runtime
from tests.cache.helpers import cache, new_session, wait_until
from tests.fixtures.layer import Layer, Recorder, layer_on_clone, observer_connection
from tests.fixtures.postgres import PgServer

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="needs redis-server (CI: apt-get install -y redis-server)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A redis-server of this test's own, on a free port, in a temporary directory."""
    assert REDIS_SERVER is not None
    with tempfile.TemporaryDirectory() as directory:
        port = _free_port()
        server = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                directory,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                return False

        try:
            wait_until(answers, "redis-server answering")
            yield url
        finally:
            client.close()
            server.terminate()
            server.wait(10)


@pytest.fixture
def redis_layer(
    pg_server: PgServer,
    migrated_template: str,
    redis_url: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Layer]:
    with layer_on_clone(
        pg_server, migrated_template, request, monkeypatch, "r", cache_backend=redis_url
    ) as layer:
        yield layer


def _name_of(session_uuid: str) -> str | None:
    row = user_sessions.get_session(session_uuid)
    return None if row is None else row["name"]


class TestRedisBackend:
    def test_a_value_one_process_cached_is_a_hit_for_another(
        self, redis_layer: Layer, redis_url: str
    ) -> None:
        """Two runtimes stand for two processes: each its own listener, one Redis.

        A process that starts listening clears the shared cache (it cannot know
        what it missed), so the other one caches after that.
        """
        session_uuid = new_session()
        cache(redis_layer, "user_sessions.get_session")
        other = build_runtime(
            engine=redis_layer.engine,
            publishers=[Recorder()],
            environ={},
            ttl_seconds=3600,
            cache_backend=redis_url,
        )
        assert other.cache.wait_ready(10)
        assert _name_of(session_uuid) == "before"
        mine = reset_runtime(other)
        try:
            got = user_sessions.get_session(session_uuid)
            got_again = user_sessions.get_session(session_uuid)
            assert other.cache.stats.hits == 2
        finally:
            reset_runtime(mine)
            assert other.listener is not None
            other.listener.stop()
        assert got == got_again
        assert got is not got_again

    def test_a_write_that_bypasses_the_facade_is_seen(self, redis_layer: Layer) -> None:
        session_uuid = new_session()
        cache(redis_layer, "user_sessions.get_session")
        assert _name_of(session_uuid) == "before"
        outside = observer_connection(redis_layer.url)
        try:
            with outside.cursor() as cursor:
                cursor.execute(
                    "UPDATE user_sessions SET name = 'after' WHERE uuid = %s", (session_uuid,)
                )
            wait_until(lambda: _name_of(session_uuid) == "after", "the write seen", deadline=1.0)
        finally:
            outside.close()

    def test_a_facade_write_is_seen_by_the_next_read_at_once(self, redis_layer: Layer) -> None:
        session_uuid = new_session()
        cache(redis_layer, "user_sessions.get_session")
        assert _name_of(session_uuid) == "before"

        user_sessions.update_session(session_uuid, {"name": "after"})

        assert _name_of(session_uuid) == "after"

    def test_reads_go_to_the_database_when_redis_is_gone(
        self, redis_layer: Layer, redis_url: str
    ) -> None:
        """A backend failure never fails a call: it is served from the database."""
        session_uuid = new_session()
        cache(redis_layer, "user_sessions.get_session")
        assert _name_of(session_uuid) == "before"
        redis.Redis.from_url(redis_url).shutdown(nosave=True)

        user_sessions.update_session(session_uuid, {"name": "after"})

        assert _name_of(session_uuid) == "after"
