"""Legacy side: user_sessions in plain SQL, checked against a real PostgreSQL with plain SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.errorcodes
import psycopg2.errors
import psycopg2.extensions
import pytest

from legacy.user_sessions import (
    ORDERS,
    SessionOrder,
    SessionRow,
    check_uuid_exists,
    complete_session,
    count_sessions,
    delete_abandoned_sessions,
    delete_session,
    find_sessions_by_email,
    get_session,
    insert_session,
    list_session_uuids,
    list_sessions,
    update_session,
)
from tests.legacy.seeding import (
    Connection,
    db_now,
    new_uuid,
    query_one,
    query_value,
    savepoint,
    seed_session,
    seed_upload,
)

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)
UPDATED_FIELDS = ("name", "email", "ip_address", "consent_user_data", "completed_at")


def uuids(rows: list[SessionRow]) -> list[str]:
    return [row["uuid"] for row in rows]


def sorted_uuids(count: int) -> list[str]:
    return sorted(new_uuid() for _ in range(count))


def stored(conn: Connection, session_uuid: str) -> dict[str, Any] | None:
    """The row as plain SQL sees it (uuid as text)."""
    return query_one(
        conn,
        "SELECT uuid::text AS uuid, name, email, ip_address, consent_user_data, created_at, "
        "updated_at, completed_at FROM user_sessions WHERE uuid = %s",
        (session_uuid,),
    )


class TestCheckUuidExists:
    def test_is_true_for_an_existing_session(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        assert check_uuid_exists(session_uuid) is True

    def test_is_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert check_uuid_exists(new_uuid()) is False

    def test_ignores_the_case_of_the_uuid(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        assert check_uuid_exists(session_uuid.upper()) is True

    def test_fails_in_the_server_and_aborts_the_transaction_on_a_malformed_uuid(
        self, legacy_db: Connection
    ) -> None:
        # The pitfall the compat layer guards against: legacy validates nothing.
        with pytest.raises(psycopg2.errors.InvalidTextRepresentation) as caught:
            check_uuid_exists("not-a-uuid")

        assert caught.value.pgcode == psycopg2.errorcodes.INVALID_TEXT_REPRESENTATION
        assert legacy_db.get_transaction_status() == (
            psycopg2.extensions.TRANSACTION_STATUS_INERROR
        )


class TestGetSession:
    def test_returns_every_column_of_the_row(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(
            legacy_db, name="Grace", email="grace@example.com", ip_address="10.0.0.7"
        )

        row = get_session(session_uuid)

        assert row is not None
        assert set(row) == set(SessionRow.__annotations__)
        assert (row["uuid"], row["name"], row["email"], row["ip_address"]) == (
            session_uuid,
            "Grace",
            "grace@example.com",
            "10.0.0.7",
        )

    def test_returns_none_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert get_session(new_uuid()) is None

    def test_returns_nulls_as_none(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(
            legacy_db, email=None, created_at=None, updated_at=None, consent_user_data=None
        )

        row = get_session(session_uuid)

        assert row is not None
        assert (
            row["email"],
            row["created_at"],
            row["updated_at"],
            row["completed_at"],
            row["ip_address"],
            row["consent_user_data"],
            row["verification_code"],
            row["last_resend_at"],
        ) == (None, None, None, None, None, None, None, None)

    def test_returns_naive_datetimes(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = get_session(session_uuid)

        assert row is not None
        assert row["created_at"] is not None
        assert row["created_at"].tzinfo is None

    def test_returns_unicode_and_emoji_unchanged(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db, name="Zoë 🦊 Ünïcødé 名前", email="zoë@exämple.com")

        row = get_session(session_uuid)

        assert row is not None
        assert (row["name"], row["email"]) == ("Zoë 🦊 Ünïcødé 名前", "zoë@exämple.com")


class TestInsertSession:
    def test_stores_the_session(self, legacy_db: Connection) -> None:
        session_uuid = new_uuid()

        insert_session(session_uuid, "Ada", "ada@example.com", "192.0.2.1", True)

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert (row["name"], row["email"], row["ip_address"], row["consent_user_data"]) == (
            "Ada",
            "ada@example.com",
            "192.0.2.1",
            True,
        )

    def test_returns_the_inserted_row_with_its_defaults(self, legacy_db: Connection) -> None:
        session_uuid = new_uuid()

        row = insert_session(session_uuid, "Ada", "ada@example.com")

        now = db_now(legacy_db)
        assert row == {
            "uuid": session_uuid,
            "name": "Ada",
            "email": "ada@example.com",
            "created_at": now,
            "updated_at": now,
            "completed_at": None,
            "ip_address": None,
            "consent_user_data": False,
            "verification_code": None,
            "verification_attempts": 0,
            "max_verification_attempts": 3,
            "verification_expires_at": None,
            "is_email_verified": False,
            "resend_attempts": 0,
            "max_resend_attempts": 3,
            "last_resend_at": None,
        }

    def test_stores_a_missing_email_as_null(self, legacy_db: Connection) -> None:
        session_uuid = new_uuid()

        insert_session(session_uuid, "Ada", None)

        assert query_value(
            legacy_db, "SELECT email IS NULL FROM user_sessions WHERE uuid = %s", (session_uuid,)
        )

    def test_stores_unicode_and_emoji_unchanged(self, legacy_db: Connection) -> None:
        session_uuid = new_uuid()

        insert_session(session_uuid, "Zoë 🦊 名前", "zoë@exämple.com")

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert (row["name"], row["email"]) == ("Zoë 🦊 名前", "zoë@exämple.com")

    def test_returns_the_uuid_in_canonical_lower_case(self, legacy_db: Connection) -> None:
        session_uuid = new_uuid()

        row = insert_session(session_uuid.upper(), "Ada", None)

        assert row["uuid"] == session_uuid

    def test_stamps_created_at_and_updated_at_with_the_transaction_start(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = new_uuid()

        insert_session(session_uuid, "Ada", None)

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert row["created_at"] == row["updated_at"] == db_now(legacy_db)

    def test_gives_sessions_inserted_in_one_transaction_identical_created_at(
        self, legacy_db: Connection
    ) -> None:
        # CURRENT_TIMESTAMP is the transaction's start: ordering by created_at
        # alone cannot tell these apart, which is why every order breaks ties.
        first = insert_session(new_uuid(), "First", None)
        second = insert_session(new_uuid(), "Second", None)

        assert first["created_at"] == second["created_at"]

    def test_raises_unique_violation_on_a_duplicate_uuid(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db, name="Original")

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.UniqueViolation) as caught:
            insert_session(session_uuid, "Impostor", None)

        assert caught.value.pgcode == psycopg2.errorcodes.UNIQUE_VIOLATION
        assert caught.value.diag.constraint_name == "user_sessions_pkey"
        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert row["name"] == "Original"

    def test_raises_not_null_violation_without_a_name(self, legacy_db: Connection) -> None:
        session_uuid = new_uuid()

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.NotNullViolation) as caught:
            insert_session(session_uuid, None, None)  # type: ignore[arg-type]

        assert caught.value.pgcode == psycopg2.errorcodes.NOT_NULL_VIOLATION
        assert caught.value.diag.column_name == "name"
        assert stored(legacy_db, session_uuid) is None


class TestUpdateSession:
    def test_changes_only_the_given_fields(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(
            legacy_db, name="Ada", email="ada@example.com", ip_address="10.0.0.1"
        )

        update_session(session_uuid, {"name": "Ada King"})

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert (row["name"], row["email"], row["ip_address"]) == (
            "Ada King",
            "ada@example.com",
            "10.0.0.1",
        )

    def test_changes_every_updatable_field_at_once(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        completed_at = datetime(2024, 2, 29, 23, 59, 59, 999999)

        update_session(
            session_uuid,
            {
                "name": "Grace",
                "email": "grace@example.com",
                "ip_address": "2001:db8::1",
                "consent_user_data": True,
                "completed_at": completed_at,
            },
        )

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert {key: row[key] for key in UPDATED_FIELDS} == {
            "name": "Grace",
            "email": "grace@example.com",
            "ip_address": "2001:db8::1",
            "consent_user_data": True,
            "completed_at": completed_at,
        }

    def test_returns_the_updated_row(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = update_session(session_uuid, {"email": "new@example.com"})

        assert row is not None
        assert set(row) == set(SessionRow.__annotations__)
        assert (row["uuid"], row["email"]) == (session_uuid, "new@example.com")

    def test_sets_a_field_to_null(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(
            legacy_db, email="ada@example.com", completed_at=db_now(legacy_db)
        )

        update_session(session_uuid, {"email": None, "completed_at": None})

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert (row["email"], row["completed_at"]) == (None, None)

    def test_sets_updated_at_to_the_transaction_time(self, legacy_db: Connection) -> None:
        an_hour_ago = db_now(legacy_db) - HOUR
        session_uuid = seed_session(legacy_db, created_at=an_hour_ago, updated_at=an_hour_ago)

        update_session(session_uuid, {"name": "Ada King"})

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert (row["created_at"], row["updated_at"]) == (an_hour_ago, db_now(legacy_db))

    def test_stores_unicode_and_emoji_unchanged(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        update_session(session_uuid, {"name": "Łukasz 🚀", "email": "łukasz@exämple.com"})

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert (row["name"], row["email"]) == ("Łukasz 🚀", "łukasz@exämple.com")

    def test_returns_none_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert update_session(new_uuid(), {"name": "Nobody"}) is None

    def test_with_no_fields_only_touches_updated_at(self, legacy_db: Connection) -> None:
        an_hour_ago = db_now(legacy_db) - HOUR
        session_uuid = seed_session(legacy_db, name="Ada", updated_at=an_hour_ago)

        row = update_session(session_uuid, {})

        assert row is not None
        assert (row["name"], row["updated_at"]) == ("Ada", db_now(legacy_db))

    def test_rejects_an_unknown_key_with_value_error(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db, name="Ada")

        with pytest.raises(ValueError, match=r"\['is_email_verified'\]"):
            update_session(session_uuid, {"name": "Eve", "is_email_verified": True})

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert row["name"] == "Ada"
        assert legacy_db.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS


class TestUpdateSessionBeforeAnySql:
    """No legacy_db here: these calls would have to connect to run any SQL."""

    pytestmark = pytest.mark.usefixtures("unreachable_database")

    def test_rejects_an_unknown_key_before_connecting(self) -> None:
        with pytest.raises(ValueError, match="updatable fields are"):
            update_session(new_uuid(), {"uuid": new_uuid()})

    def test_rejects_a_column_name_injection_before_connecting(self) -> None:
        with pytest.raises(ValueError, match="cannot update"):
            update_session(new_uuid(), {"name = 'x'; DROP TABLE user_sessions; --": "x"})

    def test_would_otherwise_connect(self) -> None:
        """Guards the two tests above: a valid update does try to reach the server."""
        with pytest.raises(psycopg2.OperationalError):
            update_session(new_uuid(), {"name": "Ada"})


class TestCompleteSession:
    def test_sets_completed_at_to_the_transaction_time(self, legacy_db: Connection) -> None:
        an_hour_ago = db_now(legacy_db) - HOUR
        session_uuid = seed_session(legacy_db, updated_at=an_hour_ago)

        assert complete_session(session_uuid) is True

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert row["completed_at"] == row["updated_at"] == db_now(legacy_db)

    def test_is_false_and_keeps_the_first_completion_when_already_completed(
        self, legacy_db: Connection
    ) -> None:
        completed_at = db_now(legacy_db) - HOUR
        session_uuid = seed_session(legacy_db, completed_at=completed_at)

        assert complete_session(session_uuid) is False

        row = stored(legacy_db, session_uuid)
        assert row is not None
        assert row["completed_at"] == completed_at

    def test_is_false_the_second_time(self, legacy_db: Connection) -> None:
        session_uuid = insert_session(new_uuid(), "Ada", None)["uuid"]

        assert [complete_session(session_uuid), complete_session(session_uuid)] == [True, False]

    def test_is_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert complete_session(new_uuid()) is False


class TestDeleteSession:
    def test_deletes_the_session(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        assert delete_session(session_uuid) is True

        assert stored(legacy_db, session_uuid) is None

    def test_deletes_only_that_session(self, legacy_db: Connection) -> None:
        doomed, kept = seed_session(legacy_db), seed_session(legacy_db)

        delete_session(doomed)

        assert stored(legacy_db, kept) is not None

    def test_deletes_the_session_uploads_with_it(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        seed_upload(legacy_db, session_uuid)
        seed_upload(legacy_db, session_uuid, deleted_at=db_now(legacy_db))

        delete_session(session_uuid)

        assert (
            query_value(
                legacy_db,
                "SELECT count(*) FROM uploaded_files WHERE session_uuid = %s",
                (session_uuid,),
            )
            == 0
        )

    def test_is_false_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert delete_session(new_uuid()) is False

    def test_is_false_the_second_time(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        assert [delete_session(session_uuid), delete_session(session_uuid)] == [True, False]


class TestCountSessions:
    def test_is_zero_without_sessions(self, empty_tables: Connection) -> None:
        assert count_sessions() == 0

    def test_counts_every_session(self, empty_tables: Connection) -> None:
        seed_session(empty_tables)
        seed_session(empty_tables, completed_at=db_now(empty_tables))
        seed_session(empty_tables, email=None, created_at=None)

        count = count_sessions()

        assert count == 3
        assert type(count) is int

    def test_agrees_with_plain_sql(self, legacy_db: Connection) -> None:
        seed_session(legacy_db)

        assert count_sessions() == query_value(legacy_db, "SELECT count(*) FROM user_sessions")


class TestListSessionUuids:
    def test_is_empty_without_sessions(self, empty_tables: Connection) -> None:
        assert list_session_uuids() == set()

    def test_returns_every_uuid_as_str(self, empty_tables: Connection) -> None:
        expected = {seed_session(empty_tables), seed_session(empty_tables, email=None)}

        found = list_session_uuids()

        assert found == expected
        assert all(type(session_uuid) is str for session_uuid in found)

    def test_returns_every_uuid_when_they_take_more_than_one_batch(
        self, empty_tables: Connection
    ) -> None:
        # It streams 10,000 rows at a time: one more makes a second batch.
        with empty_tables.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name) "
                "SELECT gen_random_uuid(), 'Batch ' || i FROM generate_series(1, 10001) AS i "
                "RETURNING uuid::text"
            )
            expected = {row[0] for row in cur.fetchall()}

        found = list_session_uuids()

        assert len(found) == 10_001
        assert found == expected
        assert {type(session_uuid) for session_uuid in found} == {str}


class TestFindSessionsByEmail:
    def test_finds_the_sessions_with_that_email(self, legacy_db: Connection) -> None:
        email = f"{new_uuid()}@example.com"
        mine = seed_session(legacy_db, email=email)
        seed_session(legacy_db, email=f"{new_uuid()}@example.com")

        assert uuids(find_sessions_by_email(email)) == [mine]

    def test_ignores_case(self, legacy_db: Connection) -> None:
        local = new_uuid()
        session_uuid = seed_session(legacy_db, email=f"{local}@Example.COM")

        assert uuids(find_sessions_by_email(f"{local.upper()}@EXAMPLE.com")) == [session_uuid]

    def test_returns_whole_rows(self, legacy_db: Connection) -> None:
        email = f"{new_uuid()}@example.com"
        seed_session(legacy_db, email=email)

        [row] = find_sessions_by_email(email)

        assert set(row) == set(SessionRow.__annotations__)

    def test_orders_oldest_first(self, legacy_db: Connection) -> None:
        email = f"{new_uuid()}@example.com"
        now = db_now(legacy_db)
        newest = seed_session(legacy_db, email=email, created_at=now)
        oldest = seed_session(legacy_db, email=email, created_at=now - 2 * HOUR)
        middle = seed_session(legacy_db, email=email, created_at=now - HOUR)

        assert uuids(find_sessions_by_email(email)) == [oldest, middle, newest]

    def test_breaks_ties_by_uuid_ascending(self, legacy_db: Connection) -> None:
        email = f"{new_uuid()}@example.com"
        created_at = db_now(legacy_db) - HOUR
        expected = sorted_uuids(3)
        for session_uuid in reversed(expected):
            seed_session(legacy_db, uuid=session_uuid, email=email, created_at=created_at)

        assert uuids(find_sessions_by_email(email)) == expected

    def test_puts_sessions_without_created_at_last(self, legacy_db: Connection) -> None:
        email = f"{new_uuid()}@example.com"
        undated = seed_session(legacy_db, email=email, created_at=None)
        dated = seed_session(legacy_db, email=email, created_at=db_now(legacy_db))

        assert uuids(find_sessions_by_email(email)) == [dated, undated]

    def test_is_empty_when_nothing_matches(self, legacy_db: Connection) -> None:
        assert find_sessions_by_email(f"{new_uuid()}@example.com") == []

    def test_does_not_match_a_part_of_an_email(self, legacy_db: Connection) -> None:
        local = new_uuid()
        seed_session(legacy_db, email=f"{local}@example.com")

        assert find_sessions_by_email(local) == []
        assert find_sessions_by_email("%@example.com") == []

    def test_matches_unicode_and_emoji_exactly(self, legacy_db: Connection) -> None:
        email = f"zoë.🦊.{new_uuid()}@exämple.com"
        session_uuid = seed_session(legacy_db, email=email)

        assert uuids(find_sessions_by_email(email)) == [session_uuid]


class TestListSessions:
    """Every test starts from empty tables, so a page holds exactly what it arranged."""

    def test_is_empty_without_sessions(self, empty_tables: Connection) -> None:
        assert list_sessions() == []

    def test_returns_whole_rows(self, empty_tables: Connection) -> None:
        session_uuid = seed_session(empty_tables)

        [row] = list_sessions()

        assert set(row) == set(SessionRow.__annotations__)
        assert row["uuid"] == session_uuid

    def test_orders_newest_first_by_default(self, empty_tables: Connection) -> None:
        now = db_now(empty_tables)
        old = seed_session(empty_tables, created_at=now - 2 * HOUR)
        new = seed_session(empty_tables, created_at=now)
        middle = seed_session(empty_tables, created_at=now - HOUR)

        assert uuids(list_sessions()) == [new, middle, old]

    @pytest.mark.parametrize(
        ("order", "expected"),
        [
            ("created_at", ["alice", "bob", "carol"]),
            ("-created_at", ["carol", "bob", "alice"]),
            ("name", ["alice", "bob", "carol"]),
            ("-name", ["carol", "bob", "alice"]),
            ("email", ["bob", "carol", "alice"]),
            ("-email", ["alice", "carol", "bob"]),
        ],
    )
    def test_orders_by_the_requested_column(
        self, empty_tables: Connection, order: SessionOrder, expected: list[str]
    ) -> None:
        now = db_now(empty_tables)
        # Lower-case ASCII sorts the same in every collation.
        seed_session(empty_tables, name="bob", email="a@example.com", created_at=now - HOUR)
        seed_session(empty_tables, name="alice", email="c@example.com", created_at=now - 2 * HOUR)
        seed_session(empty_tables, name="carol", email="b@example.com", created_at=now)

        assert [row["name"] for row in list_sessions(order=order)] == expected

    @pytest.mark.parametrize("order", list(ORDERS))
    def test_breaks_ties_by_uuid_ascending(
        self, empty_tables: Connection, order: SessionOrder
    ) -> None:
        created_at = db_now(empty_tables) - HOUR
        expected = sorted_uuids(4)
        for session_uuid in reversed(expected):
            seed_session(
                empty_tables,
                uuid=session_uuid,
                name="same",
                email="same@example.com",
                created_at=created_at,
            )

        assert uuids(list_sessions(order=order)) == expected

    def test_breaks_ties_of_sessions_inserted_in_one_transaction(
        self, empty_tables: Connection
    ) -> None:
        expected = sorted_uuids(3)
        for session_uuid in reversed(expected):
            insert_session(session_uuid, "Ada", None)

        assert uuids(list_sessions()) == expected

    @pytest.mark.parametrize("order", ["email", "-email"])
    def test_puts_null_emails_last(self, empty_tables: Connection, order: SessionOrder) -> None:
        without = seed_session(empty_tables, email=None)
        a = seed_session(empty_tables, email="a@example.com")
        b = seed_session(empty_tables, email="b@example.com")

        expected = [a, b, without] if order == "email" else [b, a, without]
        assert uuids(list_sessions(order=order)) == expected

    @pytest.mark.parametrize("order", ["created_at", "-created_at"])
    def test_puts_null_created_at_last(self, empty_tables: Connection, order: SessionOrder) -> None:
        now = db_now(empty_tables)
        undated = seed_session(empty_tables, created_at=None)
        old = seed_session(empty_tables, created_at=now - HOUR)
        new = seed_session(empty_tables, created_at=now)

        expected = [old, new, undated] if order == "created_at" else [new, old, undated]
        assert uuids(list_sessions(order=order)) == expected

    def test_rejects_an_unknown_order_with_value_error(self, empty_tables: Connection) -> None:
        with pytest.raises(ValueError, match="order must be one of"):
            list_sessions(order="uuid; DROP TABLE user_sessions")  # type: ignore[arg-type]

        assert empty_tables.get_transaction_status() == (
            psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        )

    def test_returns_at_most_limit_rows(self, empty_tables: Connection) -> None:
        expected = self._seed_tied(empty_tables, 5)

        assert uuids(list_sessions(limit=2)) == expected[:2]

    def test_returns_fifty_rows_by_default(self, empty_tables: Connection) -> None:
        with empty_tables.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name) "
                "SELECT gen_random_uuid(), 'bulk' FROM generate_series(1, 51)"
            )

        assert len(list_sessions()) == 50

    def test_returns_nothing_with_limit_zero(self, empty_tables: Connection) -> None:
        self._seed_tied(empty_tables, 2)

        assert list_sessions(limit=0) == []

    def test_skips_offset_rows(self, empty_tables: Connection) -> None:
        expected = self._seed_tied(empty_tables, 5)

        assert uuids(list_sessions(limit=2, offset=2)) == expected[2:4]

    def test_returns_a_short_last_page(self, empty_tables: Connection) -> None:
        expected = self._seed_tied(empty_tables, 5)

        assert uuids(list_sessions(limit=2, offset=4)) == expected[4:]

    def test_returns_nothing_at_the_end(self, empty_tables: Connection) -> None:
        self._seed_tied(empty_tables, 3)

        assert list_sessions(offset=3) == []

    def test_returns_nothing_past_the_end(self, empty_tables: Connection) -> None:
        self._seed_tied(empty_tables, 3)

        assert list_sessions(offset=1000) == []

    def test_pages_through_ties_without_repeating_or_skipping(
        self, empty_tables: Connection
    ) -> None:
        expected = self._seed_tied(empty_tables, 7)

        pages = [uuids(list_sessions(limit=3, offset=offset)) for offset in (0, 3, 6)]

        assert pages == [expected[0:3], expected[3:6], expected[6:7]]

    @pytest.mark.parametrize("verified", [True, False])
    def test_filters_on_verified(self, empty_tables: Connection, verified: bool) -> None:
        yes = seed_session(empty_tables, is_email_verified=True)
        no = seed_session(empty_tables, is_email_verified=False)

        assert uuids(list_sessions(verified=verified)) == [yes if verified else no]

    @pytest.mark.parametrize("completed", [True, False])
    def test_filters_on_completed(self, empty_tables: Connection, completed: bool) -> None:
        done = seed_session(empty_tables, completed_at=db_now(empty_tables))
        open_ = seed_session(empty_tables, completed_at=None)

        assert uuids(list_sessions(completed=completed)) == [done if completed else open_]

    def test_includes_created_after_itself(self, empty_tables: Connection) -> None:
        t0, t1, t2 = self._times(empty_tables)
        seed_session(empty_tables, created_at=t0)
        at = seed_session(empty_tables, created_at=t1)
        later = seed_session(empty_tables, created_at=t2)

        assert uuids(list_sessions(created_after=t1, order="created_at")) == [at, later]

    def test_excludes_created_before_itself(self, empty_tables: Connection) -> None:
        t0, t1, t2 = self._times(empty_tables)
        earlier = seed_session(empty_tables, created_at=t0)
        seed_session(empty_tables, created_at=t1)
        seed_session(empty_tables, created_at=t2)

        assert uuids(list_sessions(created_before=t1)) == [earlier]

    def test_excludes_a_microsecond_before_created_after(self, empty_tables: Connection) -> None:
        _, t1, _ = self._times(empty_tables)
        seed_session(empty_tables, created_at=t1 - MICROSECOND)

        assert list_sessions(created_after=t1) == []

    def test_filters_on_a_created_window(self, empty_tables: Connection) -> None:
        t0, t1, t2 = self._times(empty_tables)
        first = seed_session(empty_tables, created_at=t0)
        second = seed_session(empty_tables, created_at=t1)
        seed_session(empty_tables, created_at=t2)

        found = list_sessions(created_after=t0, created_before=t2, order="created_at")

        assert uuids(found) == [first, second]

    def test_returns_nothing_for_an_empty_window(self, empty_tables: Connection) -> None:
        _, t1, _ = self._times(empty_tables)
        seed_session(empty_tables, created_at=t1)

        assert list_sessions(created_after=t1, created_before=t1) == []

    def test_leaves_sessions_without_created_at_out_of_date_filters(
        self, empty_tables: Connection
    ) -> None:
        t0, _, t2 = self._times(empty_tables)
        seed_session(empty_tables, created_at=None)

        assert list_sessions(created_after=t0) == []
        assert list_sessions(created_before=t2) == []

    def test_combines_filters_with_and(self, empty_tables: Connection) -> None:
        t0, t1, t2 = self._times(empty_tables)
        match = seed_session(empty_tables, is_email_verified=True, created_at=t1)
        seed_session(empty_tables, is_email_verified=False, created_at=t1)
        seed_session(empty_tables, is_email_verified=True, created_at=t1, completed_at=t2)
        seed_session(empty_tables, is_email_verified=True, created_at=t2)
        seed_session(empty_tables, is_email_verified=True, created_at=t0 - HOUR)

        found = list_sessions(verified=True, completed=False, created_after=t0, created_before=t2)

        assert uuids(found) == [match]

    def test_pages_through_filtered_rows(self, empty_tables: Connection) -> None:
        created_at = db_now(empty_tables)
        verified = sorted_uuids(3)
        for session_uuid in verified:
            seed_session(
                empty_tables, uuid=session_uuid, is_email_verified=True, created_at=created_at
            )
            seed_session(empty_tables, is_email_verified=False, created_at=created_at)

        assert uuids(list_sessions(verified=True, limit=2, offset=1)) == verified[1:3]

    @staticmethod
    def _seed_tied(conn: Connection, count: int) -> list[str]:
        """Sessions with one created_at, inserted out of uuid order; returns the list order."""
        created_at = db_now(conn)
        expected = sorted_uuids(count)
        for session_uuid in reversed(expected):
            seed_session(conn, uuid=session_uuid, created_at=created_at)
        return expected

    @staticmethod
    def _times(conn: Connection) -> tuple[datetime, datetime, datetime]:
        now = db_now(conn)
        return now - 2 * HOUR, now - HOUR, now


class TestDeleteAbandonedSessions:
    def test_deletes_an_uncompleted_session_older_than_the_cutoff(
        self, empty_tables: Connection
    ) -> None:
        session_uuid = seed_session(empty_tables, created_at=db_now(empty_tables) - 25 * HOUR)

        assert delete_abandoned_sessions(24) == 1

        assert stored(empty_tables, session_uuid) is None

    def test_deletes_a_session_a_microsecond_past_the_cutoff(
        self, empty_tables: Connection
    ) -> None:
        seed_session(empty_tables, created_at=db_now(empty_tables) - 24 * HOUR - MICROSECOND)

        assert delete_abandoned_sessions(24) == 1

    def test_keeps_a_session_exactly_at_the_cutoff(self, empty_tables: Connection) -> None:
        session_uuid = seed_session(empty_tables, created_at=db_now(empty_tables) - 24 * HOUR)

        assert delete_abandoned_sessions(24) == 0

        assert stored(empty_tables, session_uuid) is not None

    def test_keeps_a_completed_session_however_old(self, empty_tables: Connection) -> None:
        long_ago = db_now(empty_tables) - 1000 * HOUR
        session_uuid = seed_session(empty_tables, created_at=long_ago, completed_at=long_ago)

        assert delete_abandoned_sessions(24) == 0

        assert stored(empty_tables, session_uuid) is not None

    def test_keeps_a_session_without_created_at(self, empty_tables: Connection) -> None:
        session_uuid = seed_session(empty_tables, created_at=None)

        assert delete_abandoned_sessions(0) == 0

        assert stored(empty_tables, session_uuid) is not None

    def test_with_zero_hours_keeps_sessions_created_in_this_transaction(
        self, empty_tables: Connection
    ) -> None:
        fresh = insert_session(new_uuid(), "Ada", None)["uuid"]
        stale = seed_session(empty_tables, created_at=db_now(empty_tables) - MICROSECOND)

        assert delete_abandoned_sessions(0) == 1

        assert stored(empty_tables, fresh) is not None
        assert stored(empty_tables, stale) is None

    def test_returns_how_many_it_deleted(self, empty_tables: Connection) -> None:
        old = db_now(empty_tables) - 48 * HOUR
        for _ in range(3):
            seed_session(empty_tables, created_at=old)
        seed_session(empty_tables, created_at=old, completed_at=old)

        assert delete_abandoned_sessions(24) == 3
        assert query_value(empty_tables, "SELECT count(*) FROM user_sessions") == 1

    def test_deletes_the_uploads_of_abandoned_sessions(self, empty_tables: Connection) -> None:
        session_uuid = seed_session(empty_tables, created_at=db_now(empty_tables) - 48 * HOUR)
        seed_upload(empty_tables, session_uuid)

        delete_abandoned_sessions(24)

        assert query_value(empty_tables, "SELECT count(*) FROM uploaded_files") == 0
