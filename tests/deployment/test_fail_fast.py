"""The layer bounds a worker's waits: connecting, and queueing for a pooled connection."""

from __future__ import annotations

from contextlib import closing

import pytest
import sqlalchemy as sa

import layer_settings
import orm.database
from legacy.db import get_db_connection
from orm.database import POOL_TIMEOUT_S, create_engine


def _connect_timeout(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        return str(raw.get_dsn_parameters()["connect_timeout"])


class TestConnectTimeout:
    def test_legacy_connections_give_up_connecting_after_the_layer_bound(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)

        with closing(get_db_connection()) as conn:
            parameters = conn.get_dsn_parameters()
        assert parameters["connect_timeout"] == str(layer_settings.CONNECT_TIMEOUT_S)

    def test_pgconnect_timeout_sets_the_bound_of_both_sides(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("PGCONNECT_TIMEOUT", "3")

        with closing(get_db_connection()) as conn:
            assert conn.get_dsn_parameters()["connect_timeout"] == "3"
        engine = create_engine(orm.database.database_url())
        try:
            assert _connect_timeout(engine) == "3"
        finally:
            engine.dispose()

    def test_a_connect_timeout_in_the_url_wins(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", f"{database_url}?connect_timeout=2")
        monkeypatch.setenv("PGCONNECT_TIMEOUT", "9")

        with closing(get_db_connection()) as conn:
            assert conn.get_dsn_parameters()["connect_timeout"] == "2"

    def test_an_engine_for_a_bare_url_gets_the_layer_bound(self, database_url: str) -> None:
        engine = create_engine(database_url)
        try:
            assert _connect_timeout(engine) == str(layer_settings.CONNECT_TIMEOUT_S)
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
            assert engine.pool.timeout() == POOL_TIMEOUT_S == 5.0  # type: ignore[attr-defined]
        finally:
            engine.dispose()
