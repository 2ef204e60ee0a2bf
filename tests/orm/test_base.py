"""BaseRepository on real PostgreSQL: generic reads and writes, the query builder, soft delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, PendingRollbackError
from sqlalchemy.orm import Session

from orm.models import UploadedFile, UserSession
from orm.repositories import BaseRepository, Filter, FilterOp, Order
from orm.repositories.bulk import copy_batches
from orm.repositories.mapping import describe
from orm.repositories.query import Shape, select_statement
from tests.orm.rows import (
    add_session,
    add_upload,
    db_now,
    mapped_values,
    session_row,
    upload_row,
    value,
)


class SessionRows(BaseRepository[UserSession]):
    """A bare repository of a model with updated_at and without deleted_at (hard delete)."""

    model = UserSession


class UploadRows(BaseRepository[UploadedFile]):
    """A bare repository of a model with deleted_at (soft delete) and without updated_at."""

    model = UploadedFile


@pytest.fixture
def rows(session: Session) -> SessionRows:
    return SessionRows(session)


@pytest.fixture
def files(session: Session) -> UploadRows:
    return UploadRows(session)


def uuids(instances: list[UserSession]) -> list[uuid.UUID]:
    return [instance.uuid for instance in instances]


class TestFilter:
    def test_rejects_an_unknown_operator_and_lists_the_valid_ones(self) -> None:
        bad: Any = "like"
        with pytest.raises(ValueError, match=r"unknown operator 'like'.*eq, ne, lt, le, gt, ge"):
            Filter("name", bad, "A%")

    def test_is_null_takes_a_boolean(self) -> None:
        with pytest.raises(ValueError, match="is_null takes True"):
            Filter("email", "is_null", "yes")

    def test_in_keeps_its_values_as_a_tuple(self) -> None:
        assert Filter("name", "in", ["a", "b"]).value == ("a", "b")

    def test_in_refuses_a_string(self) -> None:
        with pytest.raises(ValueError, match="in takes an iterable"):
            Filter("name", "in", "ab")

    def test_comparing_with_none_points_to_is_null(self) -> None:
        with pytest.raises(ValueError, match="use Filter\\('email', 'is_null', True\\)"):
            Filter("email", "eq", None)


class TestOrder:
    def test_parses_a_leading_minus_as_descending(self) -> None:
        assert Order.parse("-created_at") == Order("created_at", descending=True)

    def test_parses_a_bare_name_as_ascending(self) -> None:
        assert Order.parse("name") == Order("name")


class TestGetById:
    def test_returns_the_row_with_that_primary_key(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann")
        found = rows.get_by_id(key)
        assert found is not None
        assert (found.uuid, found.name) == (key, "Ann")

    def test_returns_none_when_there_is_no_such_row(self, rows: SessionRows) -> None:
        assert rows.get_by_id(uuid.uuid4()) is None

    def test_rejects_a_key_of_the_wrong_type_before_any_sql(
        self, files: UploadRows, connection: sa.Connection
    ) -> None:
        with pytest.raises(TypeError, match=r"UploadRows.get_by_id: id takes int, not str"):
            files.get_by_id("1")
        assert value(connection, "SELECT 1") == 1  # the transaction is not aborted

    def test_takes_a_uuid_key_as_its_text(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        found = rows.get_by_id(key.hex.upper())
        assert found is not None
        assert found.uuid == key

    def test_rejects_malformed_uuid_text_before_any_sql(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        with pytest.raises(ValueError, match=r"SessionRows.get_by_id: id 'not-a-uuid' is not a"):
            rows.get_by_id("not-a-uuid")
        assert value(connection, "SELECT 1") == 1  # the transaction is not aborted

    def test_skips_a_soft_deleted_row(self, files: UploadRows, connection: sa.Connection) -> None:
        upload = add_upload(connection, add_session(connection), deleted_at=db_now(connection))
        assert files.get_by_id(upload) is None


class TestExists:
    def test_is_true_for_an_existing_row(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        assert rows.exists(add_session(connection)) is True

    def test_is_false_for_a_missing_row(self, rows: SessionRows) -> None:
        assert rows.exists(uuid.uuid4()) is False

    def test_is_false_for_a_soft_deleted_row(
        self, files: UploadRows, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection), deleted_at=db_now(connection))
        assert files.exists(upload) is False


class TestCreate:
    def test_returns_the_row_with_its_server_defaults(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        created = rows.create(uuid=key, name="Ann")
        now = db_now(connection)
        assert (created.created_at, created.updated_at) == (now, now)
        assert (created.consent_user_data, created.max_verification_attempts) == (False, 3)
        assert mapped_values(created) == session_row(connection, key)

    def test_stores_none_as_null_rather_than_the_default(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        created = rows.create(uuid=uuid.uuid4(), name="Ann", consent_user_data=None)
        assert created.consent_user_data is None
        assert (session_row(connection, created.uuid) or {})["consent_user_data"] is None

    def test_rejects_an_unknown_column_naming_it_and_the_valid_ones(
        self, rows: SessionRows
    ) -> None:
        with pytest.raises(
            ValueError, match=r"unknown column 'nickname'; columns of user_sessions"
        ):
            rows.create(uuid=uuid.uuid4(), name="Ann", nickname="A")

    def test_takes_none_for_a_uuid_column_as_null_which_the_database_refuses_here(
        self, rows: SessionRows
    ) -> None:
        # None means NULL for every column, a uuid's too: the NOT NULL is the database's to say.
        with pytest.raises(IntegrityError) as raised:
            rows.create(uuid=None, name="Ann")
        assert getattr(raised.value.orig, "pgcode", None) == "23502"

    def test_rejects_a_value_of_the_wrong_type(self, rows: SessionRows) -> None:
        with pytest.raises(TypeError, match="verification_attempts takes int, not bool"):
            rows.create(uuid=uuid.uuid4(), name="Ann", verification_attempts=True)

    def test_returns_the_new_row_where_the_session_held_a_deleted_one_with_that_key(
        self, rows: SessionRows
    ) -> None:
        key = uuid.uuid4()
        old = rows.create(uuid=key, name="Old")
        rows.delete(key)
        new = rows.create(uuid=key, name="New")
        assert new.name == "New"
        assert old is new  # the identity map's instance, overwritten with the new row


class TestCoreReadsInTheSession:
    """Reads that skip Session.execute still behave as if they went through it."""

    def test_a_read_sends_what_the_session_has_pending_first(
        self, rows: SessionRows, session: Session
    ) -> None:
        pending = UserSession(uuid=uuid.uuid4(), name="Pending")
        session.add(pending)
        assert rows.exists(pending.uuid) is True  # the autoflush Session.execute would do

    def test_after_a_failed_flush_a_read_asks_for_the_rollback_first(
        self, rows: SessionRows, session: Session, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        session.add(UserSession(uuid=key, name="Again"))
        with pytest.raises(IntegrityError):
            session.flush()
        with pytest.raises(PendingRollbackError):
            rows.exists(key)


class TestCreateMany:
    def test_inserts_every_row_and_returns_how_many(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        keys = [uuid.uuid4() for _ in range(3)]
        count = rows.create_many([{"uuid": key, "name": f"n{i}"} for i, key in enumerate(keys)])
        assert count == 3
        assert (
            value(connection, "SELECT count(*) FROM user_sessions WHERE uuid = ANY(:k)", k=keys)
            == 3
        )

    def test_an_empty_list_inserts_nothing(self, rows: SessionRows) -> None:
        assert rows.create_many([]) == 0

    def test_columns_left_out_take_their_defaults(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        rows.create_many([{"uuid": key, "name": "Ann"}])
        stored = session_row(connection, key) or {}
        now = db_now(connection)
        assert (stored["created_at"], stored["consent_user_data"], stored["resend_attempts"]) == (
            now,
            False,
            0,
        )

    def test_stores_none_as_null_rather_than_the_default(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        rows.create_many([{"uuid": key, "name": "Ann", "consent_user_data": None}])
        assert (session_row(connection, key) or {})["consent_user_data"] is None

    @pytest.mark.parametrize(
        "text",
        ["tab\there", "line\nbreak", "carriage\rreturn", "back\\slash", "\\N", "Zoë 日本 🎉", ""],
    )
    def test_stores_text_exactly_as_given(
        self, rows: SessionRows, connection: sa.Connection, text: str
    ) -> None:
        key = uuid.uuid4()
        rows.create_many([{"uuid": key, "name": text, "email": text}])
        stored = session_row(connection, key) or {}
        assert (stored["name"], stored["email"]) == (text, text)

    def test_stores_booleans_integers_and_naive_datetimes(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        when = datetime(2024, 2, 29, 13, 14, 15, 161718)
        row = {"is_email_verified": True, "resend_attempts": 7, "completed_at": when}
        rows.create_many([{"uuid": key, "name": "Ann", **row}])
        stored = session_row(connection, key) or {}
        assert (stored["is_email_verified"], stored["resend_attempts"]) == (True, 7)
        assert stored["completed_at"] == when

    def test_stores_an_aware_datetime_as_its_utc_time_as_a_bound_parameter_would(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = uuid.uuid4()
        when = datetime(2024, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        rows.create_many([{"uuid": key, "name": "Ann", "completed_at": when}])
        bound = value(connection, "SELECT CAST(:w AS timestamp)", w=when)
        stored = (session_row(connection, key) or {})["completed_at"]
        assert stored == bound == datetime(2024, 1, 1, 0, 0)

    def test_inserts_rows_with_different_columns(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        rows.create_many(
            [
                {"uuid": first, "name": "A"},
                {"uuid": second, "name": "B", "email": "b@example.com"},
                {"uuid": third, "name": "C"},
            ]
        )
        assert (session_row(connection, second) or {})["email"] == "b@example.com"
        assert session_row(connection, first) is not None
        assert session_row(connection, third) is not None

    def test_rejects_a_bad_row_before_sending_any(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        good, bad = uuid.uuid4(), str(uuid.uuid4())
        with pytest.raises(TypeError, match=r"create_many: row 1: uuid takes UUID, not str"):
            rows.create_many([{"uuid": good, "name": "A"}, {"uuid": bad, "name": "B"}])
        assert session_row(connection, good) is None

    def test_rejects_an_unknown_column(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match="unknown column 'nickname'"):
            rows.create_many([{"uuid": uuid.uuid4(), "name": "A", "nickname": "a"}])

    def test_rejects_an_empty_row(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match="row 1 is empty"):
            rows.create_many([{"uuid": uuid.uuid4(), "name": "A"}, {}])

    def test_rejects_a_nul_character(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match=r"row 0: name contains a NUL \(0x00\) character"):
            rows.create_many([{"uuid": uuid.uuid4(), "name": "A\x00B"}])

    def test_a_duplicate_key_raises_an_integrity_error_with_its_sqlstate(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        with pytest.raises(IntegrityError) as raised:
            rows.create_many([{"uuid": key, "name": "Again"}])
        assert getattr(raised.value.orig, "pgcode", None) == "23505"

    def test_sends_a_long_run_of_rows_in_copies_of_ten_thousand(self) -> None:
        rows = [{"uuid": uuid.uuid4(), "name": "Ann"} for _ in range(10_001)]
        batches = copy_batches(describe(UserSession), rows, "create_many")
        assert [batch.rows for batch in batches] == [10_000, 1]
        assert [batch.data.count("\n") for batch in batches] == [10_000, 1]

    def test_sends_pending_instances_first(
        self, rows: SessionRows, session: Session, connection: sa.Connection
    ) -> None:
        pending = UserSession(uuid=uuid.uuid4(), name="Pending")
        session.add(pending)
        rows.create_many([{"uuid": uuid.uuid4(), "name": "Bulk"}])
        assert session_row(connection, pending.uuid) is not None


class TestUpdate:
    def test_sets_the_columns_and_returns_the_new_row(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann")
        updated = rows.update(key, {"name": "Bea", "email": "bea@example.com"})
        assert updated is not None
        assert (updated.name, updated.email) == ("Bea", "bea@example.com")
        stored = session_row(connection, key) or {}
        assert (stored["name"], stored["email"]) == ("Bea", "bea@example.com")

    def test_stamps_updated_at_with_the_transaction_time(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, updated_at=datetime(2020, 1, 1))
        updated = rows.update(key, {"name": "Bea"})
        assert updated is not None
        assert (
            updated.updated_at
            == db_now(connection)
            == (session_row(connection, key) or {})["updated_at"]
        )

    def test_returns_none_when_there_is_no_such_row(self, rows: SessionRows) -> None:
        assert rows.update(uuid.uuid4(), {"name": "Bea"}) is None

    def test_refreshes_an_instance_the_session_loaded_earlier(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann")
        earlier = rows.get_by_id(key)
        assert earlier is not None
        rows.update(key, {"name": "Bea"})
        assert earlier.name == "Bea"

    def test_rejects_an_unknown_column(self, rows: SessionRows, connection: sa.Connection) -> None:
        with pytest.raises(ValueError, match="unknown column 'nickname'"):
            rows.update(add_session(connection), {"nickname": "A"})

    def test_leaves_a_soft_deleted_row_alone(
        self, files: UploadRows, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection), deleted_at=datetime(2020, 1, 1))
        assert files.update(upload, {"filename": "new.txt"}) is None
        assert (upload_row(connection, upload) or {})["filename"] == "notes.txt"

    def test_with_nothing_to_set_returns_the_row_as_it_is(
        self, files: UploadRows, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection), filename="a.txt")
        found = files.update(upload, {})
        assert found is not None
        assert found.filename == "a.txt"


class TestDelete:
    def test_removes_the_row_when_the_model_has_no_deleted_at(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        assert rows.delete(key) is True
        assert session_row(connection, key) is None

    def test_returns_false_when_there_is_no_such_row(self, rows: SessionRows) -> None:
        assert rows.delete(uuid.uuid4()) is False

    def test_stamps_deleted_at_when_the_model_has_it(
        self, files: UploadRows, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection))
        assert files.delete(upload) is True
        assert (upload_row(connection, upload) or {})["deleted_at"] == db_now(connection)

    def test_returns_false_for_a_row_already_soft_deleted(
        self, files: UploadRows, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection), deleted_at=datetime(2020, 1, 1))
        assert files.delete(upload) is False
        assert (upload_row(connection, upload) or {})["deleted_at"] == datetime(2020, 1, 1)


class TestSoftDeletedRows:
    """Once soft-deleted, a row is gone for every read."""

    @pytest.fixture
    def deleted(self, files: UploadRows, connection: sa.Connection) -> tuple[uuid.UUID, int]:
        owner = add_session(connection)
        upload = add_upload(connection, owner)
        files.delete(upload)
        return owner, upload

    def test_are_hidden_from_get_by_id(
        self, files: UploadRows, deleted: tuple[uuid.UUID, int]
    ) -> None:
        assert files.get_by_id(deleted[1]) is None

    def test_are_hidden_from_exists(
        self, files: UploadRows, deleted: tuple[uuid.UUID, int]
    ) -> None:
        assert files.exists(deleted[1]) is False

    def test_are_hidden_from_list(self, files: UploadRows, deleted: tuple[uuid.UUID, int]) -> None:
        assert files.list([Filter("session_uuid", "eq", deleted[0])]) == []

    def test_are_hidden_from_count(self, files: UploadRows, deleted: tuple[uuid.UUID, int]) -> None:
        assert files.count([Filter("session_uuid", "eq", deleted[0])]) == 0


class TestCount:
    def test_counts_the_rows_matching_every_filter(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        email = f"{uuid.uuid4()}@example.com"
        add_session(connection, email=email, is_email_verified=True)
        add_session(connection, email=email, is_email_verified=False)
        add_session(connection, email="other@example.com", is_email_verified=True)
        filters = [Filter("email", "eq", email), Filter("is_email_verified", "eq", True)]
        assert rows.count(filters) == 1

    def test_without_filters_counts_every_row(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        add_session(connection)
        assert rows.count() == value(connection, "SELECT count(*) FROM user_sessions")


class TestListFilters:
    @pytest.fixture
    def attempts(self, connection: sa.Connection) -> dict[int, uuid.UUID]:
        """Three sessions with 1, 2 and 3 verification attempts; the second has no email."""
        return {
            n: add_session(
                connection, verification_attempts=n, email=None if n == 2 else f"{n}@example.com"
            )
            for n in (1, 2, 3)
        }

    @pytest.mark.parametrize(
        ("op", "operand", "expected"),
        [
            ("eq", 2, [2]),
            ("ne", 2, [1, 3]),
            ("lt", 2, [1]),
            ("le", 2, [1, 2]),
            ("gt", 2, [3]),
            ("ge", 2, [2, 3]),
            ("in", [1, 3], [1, 3]),
            ("in", [], []),
        ],
    )
    def test_compares_a_column_with_a_value(
        self,
        rows: SessionRows,
        attempts: dict[int, uuid.UUID],
        op: FilterOp,
        operand: object,
        expected: list[int],
    ) -> None:
        mine = Filter("uuid", "in", attempts.values())
        found = rows.list([mine, Filter("verification_attempts", op, operand)])
        assert sorted(row.verification_attempts for row in found) == expected

    @pytest.mark.parametrize(("is_null", "expected"), [(True, [2]), (False, [1, 3])])
    def test_is_null_matches_null_or_not_null(
        self,
        rows: SessionRows,
        attempts: dict[int, uuid.UUID],
        is_null: bool,
        expected: list[int],
    ) -> None:
        mine = Filter("uuid", "in", attempts.values())
        found = rows.list([mine, Filter("email", "is_null", is_null)])
        assert sorted(row.verification_attempts for row in found) == expected

    def test_rejects_an_unknown_column_naming_it_and_the_valid_ones(
        self, rows: SessionRows
    ) -> None:
        with pytest.raises(ValueError, match=r"SessionRows.list: unknown column 'nope'.*email"):
            rows.list([Filter("nope", "eq", 1)])

    def test_rejects_a_value_of_the_wrong_type_before_any_sql(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        with pytest.raises(TypeError, match="uuid takes UUID, not str"):
            rows.list([Filter("uuid", "in", ["not-a-uuid"])])
        assert value(connection, "SELECT 1") == 1

    def test_rejects_a_negative_limit(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match="limit must not be negative"):
            rows.list(limit=-1)

    def test_rejects_a_negative_offset(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match="offset must not be negative"):
            rows.list(offset=-1)

    def test_a_limit_of_zero_returns_no_rows(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection)
        assert rows.list([Filter("uuid", "eq", key)], limit=0) == []

    def test_takes_everything_but_the_filters_by_keyword_only(self, rows: SessionRows) -> None:
        with pytest.raises(TypeError, match="positional argument"):
            rows.list((), "name")  # type: ignore[call-arg]


class TestListOrder:
    def test_breaks_ties_by_primary_key_ascending(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        name = f"tie-{uuid.uuid4()}"
        keys = [add_session(connection, name=name) for _ in range(5)]
        found = rows.list([Filter("name", "eq", name)], order="-name")
        assert uuids(found) == sorted(keys)

    def test_without_an_order_sorts_by_primary_key(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        keys = [add_session(connection) for _ in range(5)]
        assert uuids(rows.list([Filter("uuid", "in", keys)])) == sorted(keys)

    @pytest.mark.parametrize("order", ["email", "-email"])
    def test_sorts_nulls_last_in_either_direction(
        self, rows: SessionRows, connection: sa.Connection, order: str
    ) -> None:
        keys = [add_session(connection, email=email) for email in (None, "b@x", "a@x", None)]
        found = rows.list([Filter("uuid", "in", keys)], order=order)
        emails = [row.email for row in found]
        assert emails[2:] == [None, None]
        assert emails[:2] == (["a@x", "b@x"] if order == "email" else ["b@x", "a@x"])

    def test_orders_by_several_columns(self, rows: SessionRows, connection: sa.Connection) -> None:
        first = add_session(connection, name="A", email="z@x")
        second = add_session(connection, name="B", email="y@x")
        third = add_session(connection, name="B", email="x@x")
        found = rows.list([Filter("uuid", "in", [first, second, third])], order=["-name", "email"])
        assert uuids(found) == [third, second, first]

    def test_takes_order_values_as_well_as_strings(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        keys = [add_session(connection, name=name) for name in ("B", "A", "C")]
        found = rows.list([Filter("uuid", "in", keys)], order=[Order("name", descending=True)])
        assert [row.name for row in found] == ["C", "B", "A"]

    def test_rejects_an_unknown_order_column(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match="unknown column 'colour'"):
            rows.list(order="-colour")


class TestPagination:
    ORDERS: tuple[tuple[str, ...], ...] = (
        ("email",),
        ("-email",),
        ("name", "-email"),
        ("-created_at",),
        ("uuid",),
        ("-uuid",),
        # Sorts after "uuid", the primary key's name: ties must still fall to the key.
        ("verification_attempts",),
    )

    @pytest.fixture
    def population(self, connection: sa.Connection) -> list[uuid.UUID]:
        """Eleven sessions with tied names, tied and NULL emails and NULL created_at."""
        emails = ["a@x", None, "b@x", "a@x", None, "c@x", "b@x", None, "a@x", "d@x", None]
        return [
            add_session(
                connection,
                name=("A", "B")[i % 2],
                email=email,
                created_at=None if i % 4 == 0 else datetime(2024, 1, 1 + i % 3),
            )
            for i, email in enumerate(emails)
        ]

    @pytest.mark.parametrize("order", ORDERS)
    def test_offset_pages_add_up_to_the_whole_ordering(
        self, rows: SessionRows, population: list[uuid.UUID], order: tuple[str, ...]
    ) -> None:
        mine = [Filter("uuid", "in", population)]
        whole = uuids(rows.list(mine, order=order))
        pages = [uuids(rows.list(mine, order=order, limit=3, offset=n)) for n in range(0, 12, 3)]
        assert [key for page in pages for key in page] == whole
        assert sorted(whole) == sorted(population)

    @pytest.mark.parametrize("order", ORDERS)
    def test_keyset_pages_add_up_to_the_whole_ordering(
        self, rows: SessionRows, population: list[uuid.UUID], order: tuple[str, ...]
    ) -> None:
        mine = [Filter("uuid", "in", population)]
        whole = uuids(rows.list(mine, order=order))
        walked: list[uuid.UUID] = []
        page = rows.list(mine, order=order, limit=3)
        # Bounded: a keyset that hands back its last row again would page forever.
        for _ in range(len(population)):
            if not page:
                break
            walked += uuids(page)
            page = rows.list(mine, order=order, limit=3, after=rows.sort_key(page[-1], order))
        assert walked == whole

    def test_sort_key_ends_with_the_primary_key(
        self, rows: SessionRows, connection: sa.Connection
    ) -> None:
        key = add_session(connection, name="Ann", email=None)
        row = rows.get_by_id(key)
        assert row is not None
        assert rows.sort_key(row, ["name", "-email"]) == ("Ann", None, key)

    def test_keyset_rejects_a_key_of_the_wrong_length(self, rows: SessionRows) -> None:
        with pytest.raises(
            ValueError, match=r"after= needs one value per ordering column.*name, uuid"
        ):
            rows.list(order="name", after=("Ann",))

    def test_keyset_rejects_a_key_longer_than_the_ordering(self, rows: SessionRows) -> None:
        with pytest.raises(
            ValueError, match=r"after= needs one value per ordering column.*name, uuid"
        ):
            rows.list(order="name", after=("Ann", uuid.uuid4(), "extra"))

    @pytest.mark.parametrize(
        ("order", "row_comparison"),
        [
            ((("verification_attempts", False), ("uuid", False)), True),
            ((("verification_attempts", True), ("uuid", True)), True),
            ((("verification_attempts", True), ("uuid", False)), False),  # two directions
            ((("email", False), ("uuid", False)), False),  # email may be NULL
        ],
    )
    def test_keyset_compares_rows_where_an_index_can_serve_it(
        self, order: tuple[tuple[str, bool], ...], row_comparison: bool
    ) -> None:
        # One direction and no NULLs: (a, b) > (:k0, :k1), which an index on (a, b) serves.
        shape = Shape(
            count=False,
            filters=(),
            order=order,
            limit=False,
            offset=False,
            after_nulls=(False,) * len(order),
        )
        sql = str(select_statement(describe(UserSession), shape))
        row = "(" + ", ".join(f"user_sessions.{key}" for key, _ in order) + ")"
        compared = [op for op in "<>" if f"{row} {op} (:k0, :k1)" in sql]
        assert compared == (["<" if order[0][1] else ">"] if row_comparison else [])

    def test_keyset_rejects_none_for_a_column_that_is_never_null(self, rows: SessionRows) -> None:
        with pytest.raises(ValueError, match="after= has None for uuid"):
            rows.list(order="name", after=("Ann", None))
