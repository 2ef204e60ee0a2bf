"""An argument left out means the same on both sides: the repositories' defaults are legacy's.

The facade always passes every argument on, so the cases never call a
repository without one; these call the legacy function and the repository
method directly, each leaving the argument out, on the same seeded rows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import legacy.email_verification
import legacy.uploads
import legacy.user_sessions
from compat.routing.unit_of_work import UnitOfWork
from legacy.db import lend_connection
from orm.repositories import EmailVerificationRepository, UploadedFileRows, UserSessionRows
from tests.fixtures.layer import Layer
from tests.parity.case import SEEDED_AT, Seed, fixed_uuid
from tests.parity.tables import read_tables


def unit(layer: Layer) -> UnitOfWork:
    assert layer.unit is not None
    return layer.unit


class TestListSessions:
    def test_without_arguments_returns_the_first_page_legacy_returns(
        self, layer: Layer, seed: Seed
    ) -> None:
        # One more session than legacy's page of 50, each created a minute apart.
        for n in range(1, 53):
            seed.session(fixed_uuid(n), created_at=SEEDED_AT + timedelta(minutes=n))
        with lend_connection(unit(layer).dbapi_connection):
            expected = [str(row["uuid"]) for row in legacy.user_sessions.list_sessions()]
        got = [str(row.uuid) for row in UserSessionRows(unit(layer).session()).list_sessions()]
        assert len(expected) == 50
        assert got == expected


class TestUploadStats:
    def test_without_a_limit_returns_as_many_sessions_as_legacy(
        self, layer: Layer, seed: Seed
    ) -> None:
        # One more session with uploads than legacy's default of 20.
        for n in range(1, 23):
            seed.upload(seed.session(fixed_uuid(n)), size_bytes=n)
        with lend_connection(unit(layer).dbapi_connection):
            expected = [str(row["session_uuid"]) for row in legacy.uploads.upload_stats()]
        got = [str(stat.session_uuid) for stat in UploadedFileRows(unit(layer).session()).stats()]
        assert len(expected) == 20
        assert got == expected


class TestCleanupExpired:
    def test_without_hours_clears_what_legacy_clears(self, layer: Layer, seed: Seed) -> None:
        # Expired half an hour either side of legacy's default of 24 hours.
        with unit(layer).dbapi_connection.cursor() as cur:
            cur.execute("SELECT CURRENT_TIMESTAMP::timestamp")
            row = cur.fetchone()
        assert row is not None
        now = row[0]
        for hours in (23.5, 24.5):
            expired = now - timedelta(hours=hours)
            seed.session(verification_code="123456", verification_expires_at=expired)

        def legacy_side() -> Any:
            with lend_connection(unit(layer).dbapi_connection):
                return legacy.email_verification.cleanup_expired_verifications()

        def orm_side() -> Any:
            return EmailVerificationRepository(unit(layer).session()).cleanup_expired()

        outcomes = []
        for side in (legacy_side, orm_side):
            with unit(layer).rolled_back_savepoint():
                cleared = side()
                outcomes.append((cleared, read_tables(unit(layer).connection)))
        assert outcomes[0][0] == 1
        assert outcomes[1] == outcomes[0]
