"""UserSessionRepository does what legacy/user_sessions.py does, on real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orm.models import UserSession
from orm.repositories import SESSION_ORDERS, SessionOrder, UserSessionRepository
from tests.orm.rows import add_session, add_upload, db_now, mapped_values, session_row, value

# The ORDER BY clauses legacy list_sessions() allows, as it writes them.
LEGACY_ORDERS: dict[str, str] = {
    "created_at": "created_at ASC NULLS LAST",
    "-created_at": "created_at DESC NULLS LAST",
    "name": "name ASC NULLS LAST",
    "-name": "name DESC NULLS LAST",
    "email": "email ASC NULLS LAST",
    "-email": "email DESC NULLS LAST",
}


def uuids(instances: list[UserSession]) -> list[uuid.UUID]:
    return [instance.uuid for instance in instances]


class TestExists:
    """check_uuid_exists"""

    def test_is_true_when_the_session_exists(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        assert user_sessions.exists(add_session(connection)) is True

    def test_is_false_when_it_does_not(self, user_sessions: UserSessionRepository) -> None:
        assert user_sessions.exists(uuid.uuid4()) is False


class TestGetByUuid:
    """get_session"""

    def test_returns_every_column_of_the_row(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(
            connection,
            email="ann@example.com",
            ip_address="10.0.0.1",
            verification_code="123456",
            verification_expires_at=datetime(2030, 1, 1),
        )
        found = user_sessions.get_by_uuid(key)
        assert found is not None
        assert mapped_values(found) == session_row(connection, key)

    def test_returns_none_when_there_is_no_such_session(
        self, user_sessions: UserSessionRepository
    ) -> None:
        assert user_sessions.get_by_uuid(uuid.uuid4()) is None

    @pytest.mark.parametrize(
        "spell",
        [str, lambda key: str(key).upper(), lambda key: key.hex, lambda key: f"{{{key}}}"],
        ids=["canonical", "upper-case", "no-hyphens", "braces"],
    )
    def test_takes_the_uuid_as_text_in_any_spelling_postgresql_accepts(
        self,
        user_sessions: UserSessionRepository,
        connection: sa.Connection,
        spell: Callable[[uuid.UUID], str],
    ) -> None:
        key = add_session(connection)
        found = user_sessions.get_by_uuid(spell(key))
        assert found is not None
        assert found.uuid == key

    @pytest.mark.parametrize(
        "text", ["not-a-uuid", "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ""]
    )
    def test_rejects_malformed_text_naming_method_and_argument_before_any_sql(
        self, user_sessions: UserSessionRepository, connection: sa.Connection, text: str
    ) -> None:
        with pytest.raises(ValueError, match=r"get_by_uuid: session_uuid .* is not a uuid"):
            user_sessions.get_by_uuid(text)
        assert value(connection, "SELECT 1") == 1  # the transaction is still usable

    def test_rejects_a_key_that_is_neither_uuid_nor_text(
        self, user_sessions: UserSessionRepository
    ) -> None:
        with pytest.raises(TypeError, match=r"get_by_uuid: session_uuid takes a uuid\.UUID"):
            user_sessions.get_by_uuid(42)  # type: ignore[arg-type]


class TestCreate:
    """insert_session"""

    def test_stores_the_given_columns_and_returns_the_row_with_its_defaults(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        created = user_sessions.create(
            uuid=key,
            name="Ann",
            email="ann@example.com",
            ip_address="10.0.0.1",
            consent_user_data=True,
        )
        assert mapped_values(created) == session_row(connection, key)
        now = db_now(connection)
        assert (created.created_at, created.updated_at, created.completed_at) == (now, now, None)
        assert (created.verification_attempts, created.max_verification_attempts) == (0, 3)
        assert (created.resend_attempts, created.max_resend_attempts) == (0, 3)
        assert (created.is_email_verified, created.consent_user_data) == (False, True)

    def test_stores_a_session_without_email(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        created = user_sessions.create(uuid=uuid.uuid4(), name="Ann", email=None)
        stored = session_row(connection, created.uuid) or {}
        assert (stored["email"], stored["ip_address"], stored["consent_user_data"]) == (
            None,
            None,
            False,
        )

    def test_refuses_a_uuid_that_exists(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        with pytest.raises(IntegrityError) as raised:
            user_sessions.create(uuid=key, name="Again", email=None)
        assert getattr(raised.value.orig, "pgcode", None) == "23505"


class TestCreateMany:
    def test_inserts_every_session_and_returns_how_many(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        rows = [
            {"uuid": uuid.uuid4(), "name": f"Guest {i}", "email": None, "consent_user_data": True}
            for i in range(250)
        ]
        assert user_sessions.create_many(rows) == 250
        stored = "SELECT count(*) FROM user_sessions WHERE uuid = ANY(:keys) AND consent_user_data"
        assert value(connection, stored, keys=[row["uuid"] for row in rows]) == 250


class TestUpdate:
    """update_session"""

    def test_sets_the_given_fields_and_returns_the_row(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann", email="ann@example.com")
        done = datetime(2024, 5, 6, 7, 8, 9)
        updated = user_sessions.update(
            key,
            {
                "name": "Bea",
                "email": None,
                "ip_address": "10.0.0.2",
                "consent_user_data": True,
                "completed_at": done,
            },
        )
        assert updated is not None
        assert mapped_values(updated) == session_row(connection, key)
        assert (updated.name, updated.email, updated.ip_address) == ("Bea", None, "10.0.0.2")
        assert (updated.consent_user_data, updated.completed_at) == (True, done)

    def test_sets_updated_at_to_the_transaction_time(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection, updated_at=datetime(2020, 1, 1))
        user_sessions.update(key, {"name": "Bea"})
        assert (session_row(connection, key) or {})["updated_at"] == db_now(connection)

    def test_with_no_fields_still_sets_updated_at(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann", updated_at=datetime(2020, 1, 1))
        updated = user_sessions.update(key, {})
        assert updated is not None
        assert (updated.name, updated.updated_at) == ("Ann", db_now(connection))

    def test_leaves_other_columns_alone(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(
            connection, name="Ann", email="ann@example.com", updated_at=datetime(2020, 1, 1)
        )
        before = session_row(connection, key) or {}
        user_sessions.update(key, {"name": "Bea"})
        after = session_row(connection, key) or {}
        changed = {column for column in after if after[column] != before[column]}
        assert changed == {"name", "updated_at"}

    def test_returns_none_when_there_is_no_such_session(
        self, user_sessions: UserSessionRepository
    ) -> None:
        assert user_sessions.update(uuid.uuid4(), {"name": "Bea"}) is None

    @pytest.mark.parametrize("field", ["uuid", "created_at", "updated_at", "is_email_verified"])
    def test_refuses_a_field_legacy_does_not_update_and_lists_those_it_does(
        self, user_sessions: UserSessionRepository, connection: sa.Connection, field: str
    ) -> None:
        key = add_session(connection)
        with pytest.raises(ValueError, match=rf"cannot update \['{field}'\]; updatable fields"):
            user_sessions.update(key, {field: None})


class TestComplete:
    """complete_session"""

    def test_sets_completed_at_and_updated_at_to_the_transaction_time(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection, updated_at=datetime(2020, 1, 1))
        assert user_sessions.complete(key) is True
        stored = session_row(connection, key) or {}
        now = db_now(connection)
        assert (stored["completed_at"], stored["updated_at"]) == (now, now)

    def test_is_false_and_changes_nothing_when_already_completed(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        done, touched = datetime(2021, 1, 1), datetime(2021, 1, 2)
        key = add_session(connection, completed_at=done, updated_at=touched)
        assert user_sessions.complete(key) is False
        stored = session_row(connection, key) or {}
        assert (stored["completed_at"], stored["updated_at"]) == (done, touched)

    def test_is_false_when_there_is_no_such_session(
        self, user_sessions: UserSessionRepository
    ) -> None:
        assert user_sessions.complete(uuid.uuid4()) is False

    def test_a_later_read_in_the_same_session_sees_the_completion(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        assert user_sessions.get_by_uuid(key) is not None
        user_sessions.complete(key)
        found = user_sessions.get_by_uuid(key)
        assert found is not None
        assert found.completed_at == db_now(connection)


class TestDelete:
    """delete_session"""

    def test_removes_the_session_and_its_uploads(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        add_upload(connection, key)
        assert user_sessions.delete(key) is True
        assert session_row(connection, key) is None
        assert (
            value(connection, "SELECT count(*) FROM uploaded_files WHERE session_uuid = :k", k=key)
            == 0
        )

    def test_is_false_when_there_is_no_such_session(
        self, user_sessions: UserSessionRepository
    ) -> None:
        assert user_sessions.delete(uuid.uuid4()) is False


class TestCount:
    """count_sessions"""

    def test_counts_every_session(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        for _ in range(3):
            add_session(empty_tables, completed_at=datetime(2024, 1, 1))
        add_session(empty_tables)
        assert user_sessions.count() == 4

    def test_is_zero_when_there_are_none(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        assert user_sessions.count() == 0


class TestListUuids:
    """list_session_uuids"""

    def test_returns_the_uuid_of_every_session(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        keys = {add_session(empty_tables) for _ in range(3)}
        assert user_sessions.list_uuids() == keys

    def test_is_empty_when_there_are_none(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        assert user_sessions.list_uuids() == set()

    def test_the_row_view_streams_them_as_the_canonical_text_of_the_same_uuids(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        keys = {add_session(empty_tables) for _ in range(3)}
        texts = [text for batch in user_sessions.rows.stream_uuids() for text in batch]
        assert all(type(text) is str for text in texts)
        assert {uuid.UUID(text) for text in texts} == keys
        assert texts == [str(uuid.UUID(text)) for text in texts]  # lower case, hyphenated


class TestStreamUuids:
    """list_session_uuids' stream: batches of 10,000 from a server-side cursor"""

    def test_hands_out_batches_of_at_most_ten_thousand_from_a_server_side_cursor(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        empty_tables.execute(
            sa.text(
                "INSERT INTO user_sessions (uuid, name) "
                "SELECT gen_random_uuid(), 'Ann' FROM generate_series(1, 10001)"
            )
        )
        sizes, cursors = [], []
        for batch in user_sessions.rows.stream_uuids():
            sizes.append(len(batch))
            # The rows not handed out yet wait in the server, not in this process.
            cursors.append(value(empty_tables, "SELECT count(*) FROM pg_cursors"))
        assert sizes == [10_000, 1]
        assert cursors[0] == 1


class TestFindByEmail:
    """find_sessions_by_email"""

    def test_matches_ignoring_case(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        local = uuid.uuid4().hex
        upper = add_session(connection, email=f"{local.upper()}@EXAMPLE.COM")
        lower = add_session(connection, email=f"{local}@example.com")
        add_session(connection, email=f"x{local}@example.com")
        found = user_sessions.find_by_email(f"{local}@Example.com")
        assert set(uuids(found)) == {upper, lower}

    def test_returns_oldest_first_undated_last_and_ties_by_uuid(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        email = f"{uuid.uuid4()}@example.com"
        undated = add_session(connection, email=email, created_at=None)
        newer = add_session(connection, email=email, created_at=datetime(2024, 2, 1))
        tied = sorted(
            add_session(connection, email=email, created_at=datetime(2024, 1, 1)) for _ in range(3)
        )
        found = user_sessions.find_by_email(email)
        assert uuids(found) == [*tied, newer, undated]

    def test_returns_nothing_when_no_email_matches(
        self, user_sessions: UserSessionRepository
    ) -> None:
        assert user_sessions.find_by_email(f"{uuid.uuid4()}@example.com") == []


class TestListSessions:
    """list_sessions"""

    @pytest.fixture
    def population(self, empty_tables: sa.Connection) -> list[uuid.UUID]:
        """Twelve sessions: tied names, NULL emails and created_at, every state."""
        return [
            add_session(
                empty_tables,
                name=("Ann", "Bea", "Cy")[i % 3],
                email=None if i % 4 == 0 else f"{'abc'[i % 3]}@example.com",
                created_at=None if i % 5 == 0 else datetime(2024, 1, 1 + i % 4),
                completed_at=datetime(2024, 2, 1) if i % 2 else None,
                is_email_verified=i % 3 == 0,
            )
            for i in range(12)
        ]

    def legacy_page(
        self, conn: sa.Connection, order: str, where: str = "TRUE", **params: object
    ) -> list[uuid.UUID]:
        limit, offset = params.pop("limit", 50), params.pop("offset", 0)
        return list(
            conn.execute(
                sa.text(
                    f"SELECT uuid FROM user_sessions WHERE {where} "
                    f"ORDER BY {LEGACY_ORDERS[order]}, uuid ASC LIMIT :limit OFFSET :offset"
                ),
                {**params, "limit": limit, "offset": offset},
            ).scalars()
        )

    @pytest.mark.parametrize("order", sorted(SESSION_ORDERS))
    def test_orders_as_legacy_does_nulls_last_and_ties_by_uuid(
        self,
        user_sessions: UserSessionRepository,
        empty_tables: sa.Connection,
        population: list[uuid.UUID],
        order: SessionOrder,
    ) -> None:
        found = user_sessions.list_sessions(order=order)
        assert uuids(found) == self.legacy_page(empty_tables, order)
        assert len(found) == len(population)

    def test_orders_newest_first_by_default(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        old = add_session(empty_tables, created_at=datetime(2024, 1, 1))
        undated = add_session(empty_tables, created_at=None)
        new = add_session(empty_tables, created_at=datetime(2024, 1, 2))
        assert uuids(user_sessions.list_sessions()) == [new, old, undated]

    def test_pages_with_limit_and_offset(
        self,
        user_sessions: UserSessionRepository,
        empty_tables: sa.Connection,
        population: list[uuid.UUID],
    ) -> None:
        found = user_sessions.list_sessions(limit=5, offset=4, order="name")
        assert uuids(found) == self.legacy_page(empty_tables, "name", limit=5, offset=4)
        assert len(found) == 5

    def test_returns_fifty_at_most_by_default(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        for _ in range(51):
            add_session(empty_tables)
        assert len(user_sessions.list_sessions()) == 50

    def test_takes_its_arguments_by_keyword_only(
        self, user_sessions: UserSessionRepository
    ) -> None:
        # list_sessions(10, 20) could mean limit and offset or offset and limit.
        with pytest.raises(TypeError, match="positional argument"):
            user_sessions.list_sessions(10, 20)  # type: ignore[call-arg]

    @pytest.mark.parametrize("verified", [True, False])
    def test_filters_on_verified(
        self,
        user_sessions: UserSessionRepository,
        empty_tables: sa.Connection,
        population: list[uuid.UUID],
        verified: bool,
    ) -> None:
        found = user_sessions.list_sessions(verified=verified)
        expected = self.legacy_page(
            empty_tables, "-created_at", "is_email_verified = :v", v=verified
        )
        assert uuids(found) == expected
        assert {row.is_email_verified for row in found} == {verified}

    @pytest.mark.parametrize("completed", [True, False])
    def test_filters_on_completed(
        self,
        user_sessions: UserSessionRepository,
        empty_tables: sa.Connection,
        population: list[uuid.UUID],
        completed: bool,
    ) -> None:
        found = user_sessions.list_sessions(completed=completed)
        where = "completed_at IS NOT NULL" if completed else "completed_at IS NULL"
        assert uuids(found) == self.legacy_page(empty_tables, "-created_at", where)
        assert {row.completed_at is not None for row in found} == {completed}

    def test_created_after_is_inclusive_and_created_before_exclusive(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        start = datetime(2024, 3, 1)
        at_start = add_session(empty_tables, created_at=start)
        inside = add_session(empty_tables, created_at=start + timedelta(hours=1))
        add_session(empty_tables, created_at=start + timedelta(days=1))
        add_session(empty_tables, created_at=start - timedelta(microseconds=1))
        add_session(empty_tables, created_at=None)
        found = user_sessions.list_sessions(
            created_after=start, created_before=start + timedelta(days=1), order="created_at"
        )
        assert uuids(found) == [at_start, inside]

    def test_combines_filters_with_and(
        self,
        user_sessions: UserSessionRepository,
        empty_tables: sa.Connection,
        population: list[uuid.UUID],
    ) -> None:
        found = user_sessions.list_sessions(
            verified=True, completed=True, created_after=datetime(2024, 1, 2), order="email"
        )
        where = "is_email_verified AND completed_at IS NOT NULL AND created_at >= :after"
        expected = self.legacy_page(empty_tables, "email", where, after=datetime(2024, 1, 2))
        assert uuids(found) == expected

    def test_refuses_an_order_legacy_does_not_offer(
        self, user_sessions: UserSessionRepository
    ) -> None:
        with pytest.raises(
            ValueError, match=r"order must be one of \[.*'-created_at'.*\], not 'ip'"
        ):
            user_sessions.list_sessions(order="ip")  # type: ignore[arg-type]


class TestDeleteAbandoned:
    """delete_abandoned_sessions"""

    def test_deletes_uncompleted_sessions_created_more_than_n_hours_ago(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        old = add_session(connection, created_at=now - timedelta(hours=25))
        assert user_sessions.delete_abandoned(24) >= 1
        assert session_row(connection, old) is None

    def test_keeps_completed_sessions_however_old(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        done = add_session(connection, created_at=now - timedelta(days=9), completed_at=now)
        user_sessions.delete_abandoned(24)
        assert session_row(connection, done) is not None

    def test_keeps_sessions_created_exactly_n_hours_ago_or_later(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        now = db_now(connection)
        boundary = add_session(connection, created_at=now - timedelta(hours=24))
        recent = add_session(connection, created_at=now - timedelta(hours=23))
        user_sessions.delete_abandoned(24)
        assert session_row(connection, boundary) is not None
        assert session_row(connection, recent) is not None

    def test_keeps_sessions_without_created_at(
        self, user_sessions: UserSessionRepository, connection: sa.Connection
    ) -> None:
        undated = add_session(connection, created_at=None)
        user_sessions.delete_abandoned(0)
        assert session_row(connection, undated) is not None

    def test_returns_how_many_it_deleted(
        self, user_sessions: UserSessionRepository, empty_tables: sa.Connection
    ) -> None:
        now = db_now(empty_tables)
        for hours in (2, 3, 30):
            add_session(empty_tables, created_at=now - timedelta(hours=hours))
        add_session(empty_tables, created_at=now)
        assert user_sessions.delete_abandoned(1) == 3
