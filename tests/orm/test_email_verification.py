"""EmailVerificationRepository does what legacy/email_verification.py does, on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from orm.repositories import EmailVerificationRepository
from tests.orm.rows import add_session, db_now, mapped_values, session_row

LONG_AGO = datetime(2020, 1, 1)


def pending(conn: sa.Connection, **columns: Any) -> uuid.UUID:
    """A session waiting for its code: sent, tried once, resent once, touched long ago."""
    values: dict[str, Any] = {
        "email": "ann@example.com",
        "verification_code": "123456",
        "verification_expires_at": datetime(2030, 1, 1),
        "verification_attempts": 1,
        "resend_attempts": 1,
        "last_resend_at": LONG_AGO,
        "updated_at": LONG_AGO,
        **columns,
    }
    return add_session(conn, **values)


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The columns whose value differs, with their new value."""
    assert before is not None
    assert after is not None
    return {column: after[column] for column in after if after[column] != before[column]}


class TestGet:
    """get_verification"""

    def test_returns_the_session_with_its_verification_state(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection)
        found = verification.get(key)
        assert found is not None
        assert mapped_values(found) == session_row(connection, key)

    def test_returns_none_when_there_is_no_such_session(
        self, verification: EmailVerificationRepository
    ) -> None:
        assert verification.get(uuid.uuid4()) is None


class TestSetCode:
    """set_verification_code"""

    def test_stores_code_and_expiry_and_resets_attempts_and_the_verified_flag(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, verification_attempts=2, is_email_verified=True)
        before = session_row(connection, key)
        expires = datetime(2031, 2, 3, 4, 5, 6)
        assert verification.set_code(key, "654321", expires) is True
        assert changed(before, session_row(connection, key)) == {
            "verification_code": "654321",
            "verification_expires_at": expires,
            "verification_attempts": 0,
            "is_email_verified": False,
            "updated_at": db_now(connection),
        }

    def test_is_false_when_there_is_no_such_session(
        self, verification: EmailVerificationRepository
    ) -> None:
        assert verification.set_code(uuid.uuid4(), "654321", datetime(2031, 1, 1)) is False

    def test_a_code_longer_than_six_characters_is_refused_by_the_database(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        with pytest.raises(sa.exc.DataError) as raised:
            verification.set_code(pending(connection), "1234567", datetime(2031, 1, 1))
        assert getattr(raised.value.orig, "pgcode", None) == "22001"


class TestIncrementAttempts:
    """increment_verification_attempts"""

    def test_counts_one_more_attempt(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, verification_attempts=2)
        before = session_row(connection, key)
        assert verification.increment_attempts(key) is True
        assert changed(before, session_row(connection, key)) == {
            "verification_attempts": 3,
            "updated_at": db_now(connection),
        }

    def test_counts_past_the_maximum_as_legacy_does(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, verification_attempts=3, max_verification_attempts=3)
        assert verification.increment_attempts(key) is True
        assert (session_row(connection, key) or {})["verification_attempts"] == 4

    def test_is_false_when_there_is_no_such_session(
        self, verification: EmailVerificationRepository
    ) -> None:
        assert verification.increment_attempts(uuid.uuid4()) is False


class TestIncrementResendAttempts:
    """increment_resend_attempts"""

    def test_counts_one_more_resend_and_remembers_when(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, resend_attempts=1)
        before = session_row(connection, key)
        assert verification.increment_resend_attempts(key) is True
        now = db_now(connection)
        assert changed(before, session_row(connection, key)) == {
            "resend_attempts": 2,
            "last_resend_at": now,
            "updated_at": now,
        }

    def test_is_false_when_there_is_no_such_session(
        self, verification: EmailVerificationRepository
    ) -> None:
        assert verification.increment_resend_attempts(uuid.uuid4()) is False


class TestMarkVerified:
    """mark_email_verified"""

    def test_sets_the_flag_and_clears_code_and_expiry(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection)
        before = session_row(connection, key)
        assert verification.mark_verified(key) is True
        assert changed(before, session_row(connection, key)) == {
            "is_email_verified": True,
            "verification_code": None,
            "verification_expires_at": None,
            "updated_at": db_now(connection),
        }

    def test_is_true_again_for_a_session_already_verified(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, is_email_verified=True, verification_code=None)
        assert verification.mark_verified(key) is True

    def test_is_false_when_there_is_no_such_session(
        self, verification: EmailVerificationRepository
    ) -> None:
        assert verification.mark_verified(uuid.uuid4()) is False


class TestReset:
    """reset_verification"""

    def test_clears_code_expiry_counters_last_resend_and_the_flag(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, is_email_verified=True, verification_attempts=2)
        before = session_row(connection, key)
        assert verification.reset(key) is True
        assert changed(before, session_row(connection, key)) == {
            "verification_code": None,
            "verification_expires_at": None,
            "verification_attempts": 0,
            "resend_attempts": 0,
            "last_resend_at": None,
            "is_email_verified": False,
            "updated_at": db_now(connection),
        }

    def test_leaves_the_maximums_alone(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        key = pending(connection, max_verification_attempts=5, max_resend_attempts=7)
        verification.reset(key)
        stored = session_row(connection, key) or {}
        assert (stored["max_verification_attempts"], stored["max_resend_attempts"]) == (5, 7)

    def test_is_false_when_there_is_no_such_session(
        self, verification: EmailVerificationRepository
    ) -> None:
        assert verification.reset(uuid.uuid4()) is False


class TestCleanupExpired:
    """cleanup_expired_verifications"""

    def test_clears_code_and_expiry_of_unverified_sessions_expired_over_n_hours_ago(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        key = pending(connection, verification_expires_at=now - timedelta(hours=25))
        before = session_row(connection, key)
        verification.cleanup_expired(24)
        assert changed(before, session_row(connection, key)) == {
            "verification_code": None,
            "verification_expires_at": None,
            "updated_at": now,
        }

    def test_keeps_codes_expired_exactly_n_hours_ago_or_later(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        boundary = pending(connection, verification_expires_at=now - timedelta(hours=24))
        recent = pending(connection, verification_expires_at=now - timedelta(hours=1))
        verification.cleanup_expired(24)
        assert (session_row(connection, boundary) or {})["verification_code"] == "123456"
        assert (session_row(connection, recent) or {})["verification_code"] == "123456"

    def test_keeps_verified_sessions(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        key = pending(
            connection, is_email_verified=True, verification_expires_at=now - timedelta(days=9)
        )
        before = session_row(connection, key)
        verification.cleanup_expired(24)
        assert changed(before, session_row(connection, key)) == {}

    def test_waits_24_hours_by_default(
        self, verification: EmailVerificationRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        kept = pending(connection, verification_expires_at=now - timedelta(hours=23))
        cleared = pending(connection, verification_expires_at=now - timedelta(hours=25))
        verification.cleanup_expired()
        assert (session_row(connection, kept) or {})["verification_code"] == "123456"
        assert (session_row(connection, cleared) or {})["verification_code"] is None

    def test_returns_how_many_sessions_it_cleared(
        self, verification: EmailVerificationRepository, empty_tables: sa.Connection
    ) -> None:
        now = db_now(empty_tables)
        for hours in (2, 5, 48):
            pending(empty_tables, verification_expires_at=now - timedelta(hours=hours))
        pending(empty_tables, verification_expires_at=now)
        pending(empty_tables, verification_expires_at=None)
        assert verification.cleanup_expired(1) == 3
