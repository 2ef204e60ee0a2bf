"""A compared call cut short by a lost connection compares nothing: no mismatch is published."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest

from compat.routing.compared import _connection_lost
from compat.shadow.observation import Outcome, Side


class TestConnectionLost:
    @pytest.mark.parametrize(
        "error",
        [
            psycopg2.OperationalError("server closed the connection unexpectedly"),
            psycopg2.InterfaceError("connection already closed"),
            psycopg2.errors.AdminShutdown("terminating connection due to administrator command"),
        ],
        ids=["closed", "already-closed", "admin-shutdown"],
    )
    def test_a_side_that_lost_its_connection_is_not_a_disagreement(
        self, error: BaseException
    ) -> None:
        assert _connection_lost(Outcome(Side.ORM, error=error), Outcome(Side.LEGACY, value=1))

    @pytest.mark.parametrize(
        "error",
        [
            psycopg2.errors.QueryCanceled("canceling statement due to statement timeout"),
            psycopg2.errors.UniqueViolation("duplicate key"),
            psycopg2.errors.SerializationFailure("could not serialize"),
        ],
        ids=["timeout", "unique", "serialization"],
    )
    def test_what_a_path_did_is_still_compared(self, error: BaseException) -> None:
        assert not _connection_lost(Outcome(Side.ORM, error=error), Outcome(Side.LEGACY, value=1))
