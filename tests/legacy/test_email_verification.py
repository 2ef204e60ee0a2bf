"""Legacy side: the email-verification columns of user_sessions, checked with plain SQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg2.errorcodes
import psycopg2.errors
import pytest

from legacy.email_verification import (
    VerificationRow,
    cleanup_expired_verifications,
    get_verification,
    increment_resend_attempts,
    increment_verification_attempts,
    mark_email_verified,
    reset_verification,
    set_verification_code,
)
from tests.legacy.seeding import Connection, db_now, new_uuid, query_one, savepoint, seed_session

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)


def verification(conn: Connection, session_uuid: str) -> dict[str, Any]:
    """The verification columns as plain SQL sees them."""
    row = query_one(
        conn,
        "SELECT verification_code, verification_expires_at, verification_attempts, "
        "max_verification_attempts, is_email_verified, resend_attempts, max_resend_attempts, "
        "last_resend_at FROM user_sessions WHERE uuid = %s",
        (session_uuid,),
    )
    assert row is not None, f"session {session_uuid} is gone"
    return row


def seed_pending(conn: Connection, **columns: object) -> str:
    """A session with a code sent, attempts made and a resend, not yet verified."""
    now = db_now(conn)
    values: dict[str, Any] = {
        "verification_code": "123456",
        "verification_expires_at": now + HOUR,
        "verification_attempts": 2,
        "resend_attempts": 1,
        "last_resend_at": now - HOUR,
        **columns,
    }
    return seed_session(conn, **values)


class TestGetVerification:
    def test_returns_the_verification_columns(self, legacy_db: Connection) -> None:
        now = db_now(legacy_db)
        session_uuid = seed_pending(
            legacy_db, email="ada@example.com", verification_expires_at=now + HOUR
        )

        row = get_verification(session_uuid)

        assert row == {
            "uuid": session_uuid,
            "email": "ada@example.com",
            "verification_code": "123456",
            "verification_attempts": 2,
            "max_verification_attempts": 3,
            "verification_expires_at": now + HOUR,
            "is_email_verified": False,
            "resend_attempts": 1,
            "max_resend_attempts": 3,
            "last_resend_at": now - HOUR,
        }

    def test_returns_the_defaults_of_a_new_session(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db, email=None)

        row = get_verification(session_uuid)

        assert row is not None
        assert set(row) == set(VerificationRow.__annotations__)
        assert row == {
            "uuid": session_uuid,
            "email": None,
            "verification_code": None,
            "verification_attempts": 0,
            "max_verification_attempts": 3,
            "verification_expires_at": None,
            "is_email_verified": False,
            "resend_attempts": 0,
            "max_resend_attempts": 3,
            "last_resend_at": None,
        }

    def test_returns_none_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert get_verification(new_uuid()) is None


class TestSetVerificationCode:
    def test_stores_the_code_and_its_expiry(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        expires_at = db_now(legacy_db) + 10 * timedelta(minutes=1)

        assert set_verification_code(session_uuid, "654321", expires_at) is True

        row = verification(legacy_db, session_uuid)
        assert (row["verification_code"], row["verification_expires_at"]) == (
            "654321",
            expires_at,
        )

    def test_replaces_an_earlier_code(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, verification_code="111111")
        expires_at = db_now(legacy_db) + 2 * HOUR

        set_verification_code(session_uuid, "222222", expires_at)

        row = verification(legacy_db, session_uuid)
        assert (row["verification_code"], row["verification_expires_at"]) == (
            "222222",
            expires_at,
        )

    def test_resets_the_attempts_and_the_verified_flag(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, verification_attempts=3, is_email_verified=True)

        set_verification_code(session_uuid, "654321", db_now(legacy_db) + HOUR)

        row = verification(legacy_db, session_uuid)
        assert (row["verification_attempts"], row["is_email_verified"]) == (0, False)

    def test_leaves_the_resend_counter_alone(self, legacy_db: Connection) -> None:
        # A new code is what a resend sends: resetting the count would lift the limit.
        session_uuid = seed_pending(legacy_db, resend_attempts=2)
        last_resend_at = verification(legacy_db, session_uuid)["last_resend_at"]

        set_verification_code(session_uuid, "654321", db_now(legacy_db) + HOUR)

        row = verification(legacy_db, session_uuid)
        assert (row["resend_attempts"], row["last_resend_at"]) == (2, last_resend_at)

    def test_stores_an_aware_expiry_as_naive_utc(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        in_paris = datetime(2030, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))

        set_verification_code(session_uuid, "654321", in_paris)

        row = verification(legacy_db, session_uuid)
        assert row["verification_expires_at"] == datetime(2030, 6, 1, 10, 30)

    def test_raises_string_data_right_truncation_on_a_code_over_six_characters(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = seed_session(legacy_db)

        with (
            savepoint(legacy_db),
            pytest.raises(psycopg2.errors.StringDataRightTruncation) as caught,
        ):
            set_verification_code(session_uuid, "1234567", db_now(legacy_db) + HOUR)

        assert caught.value.pgcode == psycopg2.errorcodes.STRING_DATA_RIGHT_TRUNCATION
        assert verification(legacy_db, session_uuid)["verification_code"] is None

    def test_returns_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert set_verification_code(new_uuid(), "654321", db_now(legacy_db)) is False


class TestIncrementVerificationAttempts:
    def test_adds_one_attempt_per_call(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        results = [increment_verification_attempts(session_uuid) for _ in range(2)]

        assert results == [True, True]
        assert verification(legacy_db, session_uuid)["verification_attempts"] == 2

    def test_leaves_the_code_and_the_resend_counter_alone(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, resend_attempts=1)
        before = verification(legacy_db, session_uuid)

        increment_verification_attempts(session_uuid)

        after = verification(legacy_db, session_uuid)
        assert after == {**before, "verification_attempts": before["verification_attempts"] + 1}

    def test_touches_only_that_session(self, legacy_db: Connection) -> None:
        mine, other = seed_session(legacy_db), seed_session(legacy_db)

        increment_verification_attempts(mine)

        assert verification(legacy_db, other)["verification_attempts"] == 0

    def test_returns_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert increment_verification_attempts(new_uuid()) is False


class TestIncrementResendAttempts:
    def test_adds_one_resend_per_call(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        results = [increment_resend_attempts(session_uuid) for _ in range(3)]

        assert results == [True, True, True]
        assert verification(legacy_db, session_uuid)["resend_attempts"] == 3

    def test_sets_last_resend_at_to_the_transaction_time(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, last_resend_at=db_now(legacy_db) - 5 * HOUR)

        increment_resend_attempts(session_uuid)

        assert verification(legacy_db, session_uuid)["last_resend_at"] == db_now(legacy_db)

    def test_leaves_the_verification_attempts_alone(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, verification_attempts=2)

        increment_resend_attempts(session_uuid)

        assert verification(legacy_db, session_uuid)["verification_attempts"] == 2

    def test_returns_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert increment_resend_attempts(new_uuid()) is False


class TestMarkEmailVerified:
    def test_sets_the_verified_flag(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db)

        assert mark_email_verified(session_uuid) is True

        assert verification(legacy_db, session_uuid)["is_email_verified"] is True

    def test_clears_the_code_and_its_expiry(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db)

        mark_email_verified(session_uuid)

        row = verification(legacy_db, session_uuid)
        assert (row["verification_code"], row["verification_expires_at"]) == (None, None)

    def test_is_true_again_on_a_verified_session(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db, is_email_verified=True)

        assert mark_email_verified(session_uuid) is True

    def test_returns_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert mark_email_verified(new_uuid()) is False


class TestResetVerification:
    def test_clears_every_verification_column(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, is_email_verified=True)

        assert reset_verification(session_uuid) is True

        assert verification(legacy_db, session_uuid) == {
            "verification_code": None,
            "verification_expires_at": None,
            "verification_attempts": 0,
            "max_verification_attempts": 3,
            "is_email_verified": False,
            "resend_attempts": 0,
            "max_resend_attempts": 3,
            "last_resend_at": None,
        }

    def test_keeps_the_configured_maximums(self, legacy_db: Connection) -> None:
        session_uuid = seed_pending(legacy_db, max_verification_attempts=5, max_resend_attempts=7)

        reset_verification(session_uuid)

        row = verification(legacy_db, session_uuid)
        assert (row["max_verification_attempts"], row["max_resend_attempts"]) == (5, 7)

    def test_returns_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert reset_verification(new_uuid()) is False


class TestCleanupExpiredVerifications:
    def test_clears_a_code_that_expired_more_than_a_day_ago(self, empty_tables: Connection) -> None:
        expired = db_now(empty_tables) - 25 * HOUR
        session_uuid = seed_pending(empty_tables, verification_expires_at=expired)

        assert cleanup_expired_verifications() == 1

        row = verification(empty_tables, session_uuid)
        assert (row["verification_code"], row["verification_expires_at"]) == (None, None)

    def test_clears_a_code_a_microsecond_past_the_cutoff(self, empty_tables: Connection) -> None:
        expired = db_now(empty_tables) - 24 * HOUR - MICROSECOND
        seed_pending(empty_tables, verification_expires_at=expired)

        assert cleanup_expired_verifications(24) == 1

    def test_keeps_a_code_exactly_at_the_cutoff(self, empty_tables: Connection) -> None:
        expired = db_now(empty_tables) - 24 * HOUR
        session_uuid = seed_pending(empty_tables, verification_expires_at=expired)

        assert cleanup_expired_verifications(24) == 0

        row = verification(empty_tables, session_uuid)
        assert (row["verification_code"], row["verification_expires_at"]) == ("123456", expired)

    def test_uses_the_given_number_of_hours(self, empty_tables: Connection) -> None:
        now = db_now(empty_tables)
        two_hours_ago = seed_pending(empty_tables, verification_expires_at=now - 2 * HOUR)
        half_an_hour_ago = seed_pending(empty_tables, verification_expires_at=now - HOUR / 2)

        assert cleanup_expired_verifications(older_than_hours=1) == 1

        assert verification(empty_tables, two_hours_ago)["verification_code"] is None
        assert verification(empty_tables, half_an_hour_ago)["verification_code"] == "123456"

    def test_with_zero_hours_clears_every_code_already_expired(
        self, empty_tables: Connection
    ) -> None:
        now = db_now(empty_tables)
        seed_pending(empty_tables, verification_expires_at=now - MICROSECOND)
        seed_pending(empty_tables, verification_expires_at=now)
        seed_pending(empty_tables, verification_expires_at=now + HOUR)

        assert cleanup_expired_verifications(0) == 1

    def test_keeps_the_codes_of_verified_sessions(self, empty_tables: Connection) -> None:
        expired = db_now(empty_tables) - 48 * HOUR
        session_uuid = seed_pending(
            empty_tables, verification_expires_at=expired, is_email_verified=True
        )

        assert cleanup_expired_verifications() == 0

        assert verification(empty_tables, session_uuid)["verification_code"] == "123456"

    def test_skips_sessions_without_an_expiry(self, empty_tables: Connection) -> None:
        seed_pending(empty_tables, verification_code=None, verification_expires_at=None)

        assert cleanup_expired_verifications(0) == 0

    def test_keeps_the_session_and_its_counters(self, empty_tables: Connection) -> None:
        expired = db_now(empty_tables) - 48 * HOUR
        session_uuid = seed_pending(
            empty_tables, verification_expires_at=expired, verification_attempts=3
        )

        cleanup_expired_verifications()

        row = verification(empty_tables, session_uuid)
        assert (row["verification_attempts"], row["resend_attempts"]) == (3, 1)

    def test_returns_how_many_it_cleared(self, empty_tables: Connection) -> None:
        expired = db_now(empty_tables) - 48 * HOUR
        for _ in range(3):
            seed_pending(empty_tables, verification_expires_at=expired)
        seed_pending(empty_tables)

        assert cleanup_expired_verifications() == 3

    def test_returns_zero_without_sessions(self, empty_tables: Connection) -> None:
        assert cleanup_expired_verifications() == 0
