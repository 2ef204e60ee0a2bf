"""The layer bounds a worker's waits: connecting, and queueing for a pooled connection."""

from __future__ import annotations

from contextlib import closing

import pytest
import sqlalchemy as sa

from legacy.db import CONNECT_TIMEOUT_SECONDS, get_db_connection
from orm.database import POOL_TIMEOUT_SECONDS, create_engine


class TestConnectTimeout:
    def test_legacy_connections_give_up_connecting_after_the_layer_bound(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", database_url)

        with closing(get_db_connection()) as conn:
            assert conn.get_dsn_parameters()["connect_timeout"] == str(CONNECT_TIMEOUT_SECONDS)

    def test_a_connect_timeout_in_the_url_wins(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", f"{database_url}?connect_timeout=2")

        with closing(get_db_connection()) as conn:
            assert conn.get_dsn_parameters()["connect_timeout"] == "2"

    def test_engine_connections_give_up_connecting_after_the_layer_bound(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url)
        try:
            with engine.connect() as connection:
                raw = connection.connection.dbapi_connection
                assert raw.get_dsn_parameters()["connect_timeout"] == "5"  # type: ignore[union-attr]
        finally:
            engine.dispose()


class TestPoolTimeout:
    def test_a_call_waits_for_a_pooled_connection_only_as_long_as_the_bound(
        self, database_url: str
    ) -> None:
        engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
        try:
            with engine.connect(), pytest.raises(sa.exc.TimeoutError):
                engine.connect()
        finally:
            engine.dispose()

    def test_the_layer_waits_five_seconds_by_default_not_thirty(self, database_url: str) -> None:
        engine = create_engine(database_url)
        try:
            assert engine.pool.timeout() == POOL_TIMEOUT_SECONDS == 5.0  # type: ignore[attr-defined]
        finally:
            engine.dispose()
