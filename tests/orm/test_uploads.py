"""UploadedFileRepository does what legacy/uploads.py does, on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orm.models import UploadedFile
from orm.repositories import UploadedFileRepository, UploadStats
from tests.orm.rows import add_session, add_upload, db_now, mapped_values, upload_row, value

SHA = "ab" * 32
LONG_AGO = datetime(2020, 1, 1)


def ids(instances: list[UploadedFile]) -> list[int]:
    return [instance.id for instance in instances]


class TestRecord:
    """record_upload"""

    def test_stores_the_metadata_and_returns_the_row(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        key = f"uploads/{owner}/report.pdf"
        recorded = uploads.record(owner, "report.pdf", key, 2048, "application/pdf", SHA)
        assert mapped_values(recorded) == upload_row(connection, recorded.id)
        assert (recorded.session_uuid, recorded.filename, recorded.storage_key) == (
            owner,
            "report.pdf",
            key,
        )
        assert (recorded.size_bytes, recorded.content_type, recorded.sha256) == (
            2048,
            "application/pdf",
            SHA,
        )
        assert (recorded.uploaded_at, recorded.deleted_at) == (db_now(connection), None)

    def test_stores_an_upload_without_content_type(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        recorded = uploads.record(owner, "blob", f"uploads/{owner}/blob", 0, None, SHA)
        assert (upload_row(connection, recorded.id) or {})["content_type"] is None

    def test_refuses_an_unknown_session(self, uploads: UploadedFileRepository) -> None:
        owner = uuid.uuid4()
        with pytest.raises(IntegrityError) as raised:
            uploads.record(owner, "a.txt", f"uploads/{owner}/a.txt", 1, None, SHA)
        assert getattr(raised.value.orig, "pgcode", None) == "23503"

    def test_refuses_a_storage_key_already_recorded(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        key = f"uploads/{owner}/a.txt"
        add_upload(connection, owner, storage_key=key)
        with pytest.raises(IntegrityError) as raised:
            uploads.record(owner, "a.txt", key, 1, None, SHA)
        assert getattr(raised.value.orig, "pgcode", None) == "23505"

    def test_refuses_a_negative_size(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        with pytest.raises(IntegrityError) as raised:
            uploads.record(owner, "a.txt", f"uploads/{owner}/a.txt", -1, None, SHA)
        assert getattr(raised.value.orig, "pgcode", None) == "23514"

    def test_takes_the_session_uuid_as_text(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        recorded = uploads.record(str(owner).upper(), "a.txt", f"k/{owner}", 1, None, SHA)
        assert recorded.session_uuid == owner

    def test_rejects_a_malformed_session_uuid_before_any_sql(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        with pytest.raises(ValueError, match="record: session_uuid 'nope' is not a uuid"):
            uploads.record("nope", "a.txt", "k", 1, None, SHA)
        assert value(connection, "SELECT 1") == 1

    def test_rejects_a_value_of_the_wrong_type_before_any_sql(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        with pytest.raises(TypeError, match="record: size_bytes takes int, not str"):
            uploads.record(owner, "a.txt", "k", "1", None, SHA)  # type: ignore[arg-type]
        assert value(connection, "SELECT 1") == 1


class TestGetById:
    """get_upload"""

    def test_returns_a_live_upload(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection))
        found = uploads.get_by_id(upload)
        assert found is not None
        assert mapped_values(found) == upload_row(connection, upload)

    def test_returns_none_for_a_deleted_upload(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection), deleted_at=LONG_AGO)
        assert uploads.get_by_id(upload) is None

    def test_returns_none_when_there_is_no_such_upload(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        missing = value(connection, "SELECT COALESCE(max(id), 0) + 1000 FROM uploaded_files")
        assert uploads.get_by_id(missing) is None


class TestListForSession:
    """list_uploads"""

    def test_returns_live_uploads_oldest_first_and_ties_by_id(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        newer = add_upload(connection, owner, uploaded_at=datetime(2024, 1, 2))
        tied = [add_upload(connection, owner, uploaded_at=datetime(2024, 1, 1)) for _ in range(3)]
        assert ids(uploads.list_for_session(owner)) == [*sorted(tied), newer]

    def test_leaves_out_deleted_uploads(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        live = add_upload(connection, owner)
        add_upload(connection, owner, deleted_at=LONG_AGO)
        assert ids(uploads.list_for_session(owner)) == [live]

    def test_leaves_out_other_sessions_uploads(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        add_upload(connection, add_session(connection))
        assert uploads.list_for_session(owner) == []


class TestDelete:
    """delete_upload"""

    def test_stamps_deleted_at_and_keeps_the_row(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection))
        assert uploads.delete(upload) is True
        assert (upload_row(connection, upload) or {})["deleted_at"] == db_now(connection)

    def test_is_false_for_an_upload_already_deleted(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        upload = add_upload(connection, add_session(connection), deleted_at=LONG_AGO)
        assert uploads.delete(upload) is False
        assert (upload_row(connection, upload) or {})["deleted_at"] == LONG_AGO

    def test_is_false_when_there_is_no_such_upload(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        missing = value(connection, "SELECT COALESCE(max(id), 0) + 1000 FROM uploaded_files")
        assert uploads.delete(missing) is False


class TestTotalBytes:
    """total_upload_bytes"""

    def test_sums_the_sizes_of_live_uploads(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        owner = add_session(connection)
        add_upload(connection, owner, size_bytes=5_000_000_000)
        add_upload(connection, owner, size_bytes=7)
        add_upload(connection, owner, size_bytes=1000, deleted_at=LONG_AGO)
        add_upload(connection, add_session(connection), size_bytes=1000)
        assert uploads.total_bytes(owner) == 5_000_000_007

    def test_is_zero_without_uploads(
        self, uploads: UploadedFileRepository, connection: sa.Connection
    ) -> None:
        assert uploads.total_bytes(add_session(connection)) == 0


class TestStats:
    """upload_stats"""

    def test_sums_up_each_sessions_live_uploads(
        self, uploads: UploadedFileRepository, empty_tables: sa.Connection
    ) -> None:
        owner = add_session(empty_tables, name="Ann")
        add_upload(empty_tables, owner, size_bytes=10, uploaded_at=datetime(2024, 1, 1))
        add_upload(empty_tables, owner, size_bytes=20, uploaded_at=datetime(2024, 1, 3))
        add_upload(
            empty_tables,
            owner,
            size_bytes=90,
            uploaded_at=datetime(2024, 1, 9),
            deleted_at=LONG_AGO,
        )
        assert uploads.stats() == [UploadStats(owner, "Ann", 2, 30, datetime(2024, 1, 3))]

    def test_lists_the_biggest_first_and_ties_by_session_uuid(
        self, uploads: UploadedFileRepository, empty_tables: sa.Connection
    ) -> None:
        small = add_session(empty_tables)
        add_upload(empty_tables, small, size_bytes=1)
        tied = sorted(add_session(empty_tables) for _ in range(3))
        for owner in tied:
            add_upload(empty_tables, owner, size_bytes=50)
        big = add_session(empty_tables)
        add_upload(empty_tables, big, size_bytes=99)
        found = uploads.stats()
        assert [row.session_uuid for row in found] == [big, *tied, small]

    def test_leaves_out_sessions_whose_uploads_are_all_deleted(
        self, uploads: UploadedFileRepository, empty_tables: sa.Connection
    ) -> None:
        add_upload(empty_tables, add_session(empty_tables), deleted_at=LONG_AGO)
        add_session(empty_tables)
        assert uploads.stats() == []

    def test_returns_at_most_limit_rows_and_twenty_by_default(
        self, uploads: UploadedFileRepository, empty_tables: sa.Connection
    ) -> None:
        for _ in range(21):
            add_upload(empty_tables, add_session(empty_tables))
        assert (len(uploads.stats()), len(uploads.stats(3))) == (20, 3)

    def test_matches_the_legacy_query(
        self, uploads: UploadedFileRepository, empty_tables: sa.Connection
    ) -> None:
        for n in range(6):
            owner = add_session(empty_tables, name=f"S{n}")
            for size in range(n % 3 + 1):
                add_upload(empty_tables, owner, size_bytes=size * 10 + n % 2)
        legacy = empty_tables.execute(
            sa.text(
                "SELECT f.session_uuid, s.name, count(*) AS file_count, "
                "SUM(f.size_bytes)::bigint AS total_bytes, max(f.uploaded_at) AS last_upload_at "
                "FROM uploaded_files f JOIN user_sessions s ON s.uuid = f.session_uuid "
                "WHERE f.deleted_at IS NULL GROUP BY f.session_uuid, s.name "
                "ORDER BY total_bytes DESC, f.session_uuid ASC LIMIT 4"
            )
        ).all()
        assert uploads.stats(4) == [UploadStats(*row) for row in legacy]

    def test_rejects_a_negative_limit(self, uploads: UploadedFileRepository) -> None:
        with pytest.raises(ValueError, match="stats: limit must not be negative"):
            uploads.stats(-1)

    def test_a_limit_of_zero_lists_nothing(
        self, uploads: UploadedFileRepository, empty_tables: sa.Connection
    ) -> None:
        add_upload(empty_tables, add_session(empty_tables))
        assert uploads.stats(0) == []
