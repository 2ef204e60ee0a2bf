"""Legacy side: metadata of uploaded files, checked against a real PostgreSQL with plain SQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg2.errorcodes
import psycopg2.errors
import pytest

from legacy.uploads import (
    UploadRow,
    UploadStatsRow,
    delete_upload,
    get_upload,
    list_uploads,
    record_upload,
    total_upload_bytes,
    upload_stats,
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
    sha256_of,
)

HOUR = timedelta(hours=1)
GIB = 2**30
MISSING_ID = 2**62  # bigserial ids of a test database never get near this


def stored(conn: Connection, upload_id: int) -> dict[str, Any] | None:
    """The uploaded_files row as plain SQL sees it, soft-deleted or not."""
    return query_one(
        conn,
        "SELECT id, session_uuid::text AS session_uuid, filename, storage_key, size_bytes, "
        "content_type, sha256, uploaded_at, deleted_at FROM uploaded_files WHERE id = %s",
        (upload_id,),
    )


def record(session_uuid: str, filename: str = "report.pdf", **overrides: Any) -> UploadRow:
    """record_upload with sensible, unique arguments."""
    arguments: dict[str, Any] = {
        "storage_key": f"uploads/{session_uuid}/{new_uuid()}/{filename}",
        "size_bytes": 2048,
        "content_type": "application/pdf",
        "sha256": sha256_of(filename),
        **overrides,
    }
    return record_upload(session_uuid, filename, **arguments)


def ids(rows: list[UploadRow]) -> list[int]:
    return [row["id"] for row in rows]


class TestRecordUpload:
    def test_stores_the_upload(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        key = f"uploads/{session_uuid}/report.pdf"

        row = record_upload(
            session_uuid, "report.pdf", key, 2048, "application/pdf", sha256_of("report")
        )

        assert stored(legacy_db, row["id"]) == {
            "id": row["id"],
            "session_uuid": session_uuid,
            "filename": "report.pdf",
            "storage_key": key,
            "size_bytes": 2048,
            "content_type": "application/pdf",
            "sha256": sha256_of("report"),
            "uploaded_at": db_now(legacy_db),
            "deleted_at": None,
        }

    def test_returns_the_stored_row(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = record(session_uuid)

        assert set(row) == set(UploadRow.__annotations__)
        assert row == stored(legacy_db, row["id"])

    def test_returns_the_session_uuid_as_str(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = record(session_uuid)

        assert type(row["session_uuid"]) is str
        assert row["session_uuid"] == session_uuid

    def test_gives_each_upload_a_new_id(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        first, second = record(session_uuid), record(session_uuid)

        assert second["id"] > first["id"]

    def test_stamps_uploaded_at_with_the_transaction_start(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = record(session_uuid)

        assert row["uploaded_at"] == db_now(legacy_db)
        assert row["uploaded_at"].tzinfo is None

    def test_stores_a_missing_content_type_as_null(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = record(session_uuid, content_type=None)

        assert query_value(
            legacy_db, "SELECT content_type IS NULL FROM uploaded_files WHERE id = %s", (row["id"],)
        )

    def test_stores_unicode_and_emoji_filenames_unchanged(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        filename = "résumé 📄 履歴書.pdf"

        row = record(session_uuid, filename, storage_key=f"uploads/{session_uuid}/{filename}")

        found = stored(legacy_db, row["id"])
        assert found is not None
        assert (found["filename"], found["storage_key"]) == (
            filename,
            f"uploads/{session_uuid}/{filename}",
        )

    def test_accepts_an_empty_file(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        assert record(session_uuid, size_bytes=0)["size_bytes"] == 0

    def test_stores_sizes_beyond_32_bits(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        row = record(session_uuid, size_bytes=5 * GIB)

        assert row["size_bytes"] == 5 * GIB
        assert query_value(
            legacy_db, "SELECT size_bytes FROM uploaded_files WHERE id = %s", (row["id"],)
        ) == (5 * GIB)

    def test_pads_a_short_sha256_with_spaces(self, legacy_db: Connection) -> None:
        # sha256 is CHAR(64): PostgreSQL pads, and psycopg2 returns the padding.
        session_uuid = seed_session(legacy_db)

        row = record(session_uuid, sha256="abc")

        assert row["sha256"] == "abc".ljust(64)

    def test_raises_foreign_key_violation_for_an_unknown_session(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = new_uuid()

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.ForeignKeyViolation) as caught:
            record(session_uuid)

        assert caught.value.pgcode == psycopg2.errorcodes.FOREIGN_KEY_VIOLATION
        assert caught.value.diag.constraint_name == "uploaded_files_session_uuid_fkey"
        assert self._count_for(legacy_db, session_uuid) == 0

    def test_raises_unique_violation_for_a_duplicate_storage_key(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = seed_session(legacy_db)
        first = record(session_uuid)

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.UniqueViolation) as caught:
            record(session_uuid, "copy.pdf", storage_key=first["storage_key"])

        assert caught.value.pgcode == psycopg2.errorcodes.UNIQUE_VIOLATION
        assert caught.value.diag.constraint_name == "uploaded_files_storage_key_key"
        assert self._count_for(legacy_db, session_uuid) == 1

    def test_keeps_the_storage_key_of_a_soft_deleted_upload_taken(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = seed_session(legacy_db)
        key = f"uploads/{session_uuid}/again.pdf"
        seed_upload(legacy_db, session_uuid, storage_key=key, deleted_at=db_now(legacy_db))

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.UniqueViolation):
            record(session_uuid, "again.pdf", storage_key=key)

    def test_raises_check_violation_for_a_negative_size(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.CheckViolation) as caught:
            record(session_uuid, size_bytes=-1)

        assert caught.value.pgcode == psycopg2.errorcodes.CHECK_VIOLATION
        assert caught.value.diag.constraint_name == "uploaded_files_size_bytes_check"
        assert self._count_for(legacy_db, session_uuid) == 0

    def test_raises_string_data_right_truncation_for_a_long_sha256(
        self, legacy_db: Connection
    ) -> None:
        session_uuid = seed_session(legacy_db)

        with savepoint(legacy_db), pytest.raises(psycopg2.errors.StringDataRightTruncation):
            record(session_uuid, sha256="f" * 65)

    @staticmethod
    def _count_for(conn: Connection, session_uuid: str) -> int:
        count: int = query_value(
            conn, "SELECT count(*) FROM uploaded_files WHERE session_uuid = %s", (session_uuid,)
        )
        return count


class TestGetUpload:
    def test_returns_a_live_upload(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, session_uuid, filename="a.txt", size_bytes=7)

        row = get_upload(upload_id)

        assert row is not None
        assert (row["session_uuid"], row["filename"], row["size_bytes"]) == (
            session_uuid,
            "a.txt",
            7,
        )
        assert row == stored(legacy_db, upload_id)

    def test_returns_none_for_a_soft_deleted_upload(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, session_uuid, deleted_at=db_now(legacy_db))

        assert get_upload(upload_id) is None

    def test_returns_none_for_a_missing_upload(self, legacy_db: Connection) -> None:
        assert get_upload(MISSING_ID) is None

    def test_returns_nulls_as_none(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, session_uuid, content_type=None)

        row = get_upload(upload_id)

        assert row is not None
        assert (row["content_type"], row["deleted_at"]) == (None, None)


class TestListUploads:
    def test_returns_the_session_live_uploads_oldest_first(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        now = db_now(legacy_db)
        newest = seed_upload(legacy_db, session_uuid, uploaded_at=now)
        oldest = seed_upload(legacy_db, session_uuid, uploaded_at=now - 2 * HOUR)
        middle = seed_upload(legacy_db, session_uuid, uploaded_at=now - HOUR)

        assert ids(list_uploads(session_uuid)) == [oldest, middle, newest]

    def test_breaks_ties_by_id(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        uploaded_at = db_now(legacy_db) - HOUR
        expected = [seed_upload(legacy_db, session_uuid, uploaded_at=uploaded_at) for _ in "abc"]

        assert ids(list_uploads(session_uuid)) == expected

    def test_leaves_out_soft_deleted_uploads(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        live = seed_upload(legacy_db, session_uuid)
        seed_upload(legacy_db, session_uuid, deleted_at=db_now(legacy_db))

        assert ids(list_uploads(session_uuid)) == [live]

    def test_leaves_out_other_sessions_uploads(self, legacy_db: Connection) -> None:
        mine, theirs = seed_session(legacy_db), seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, mine)
        seed_upload(legacy_db, theirs)

        assert ids(list_uploads(mine)) == [upload_id]

    def test_returns_whole_rows(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, session_uuid)

        assert list_uploads(session_uuid) == [stored(legacy_db, upload_id)]

    def test_is_empty_for_a_session_without_uploads(self, legacy_db: Connection) -> None:
        assert list_uploads(seed_session(legacy_db)) == []

    def test_is_empty_when_every_upload_is_deleted(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        seed_upload(legacy_db, session_uuid, deleted_at=db_now(legacy_db))

        assert list_uploads(session_uuid) == []

    def test_is_empty_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert list_uploads(new_uuid()) == []


class TestDeleteUpload:
    def test_soft_deletes_the_upload(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, session_uuid)

        assert delete_upload(upload_id) is True

        row = stored(legacy_db, upload_id)
        assert row is not None, "a soft delete keeps the row"
        assert row["deleted_at"] == db_now(legacy_db)

    def test_hides_the_upload_from_get_and_list(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        upload_id = seed_upload(legacy_db, session_uuid)

        delete_upload(upload_id)

        assert get_upload(upload_id) is None
        assert list_uploads(session_uuid) == []

    def test_deletes_only_that_upload(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        doomed, kept = seed_upload(legacy_db, session_uuid), seed_upload(legacy_db, session_uuid)

        delete_upload(doomed)

        kept_row = stored(legacy_db, kept)
        assert kept_row is not None
        assert kept_row["deleted_at"] is None

    def test_is_false_and_keeps_the_first_deletion_when_already_deleted(
        self, legacy_db: Connection
    ) -> None:
        deleted_at = db_now(legacy_db) - HOUR
        upload_id = seed_upload(legacy_db, seed_session(legacy_db), deleted_at=deleted_at)

        assert delete_upload(upload_id) is False

        row = stored(legacy_db, upload_id)
        assert row is not None
        assert row["deleted_at"] == deleted_at

    def test_is_false_the_second_time(self, legacy_db: Connection) -> None:
        upload_id = seed_upload(legacy_db, seed_session(legacy_db))

        assert [delete_upload(upload_id), delete_upload(upload_id)] == [True, False]

    def test_is_false_for_a_missing_upload(self, legacy_db: Connection) -> None:
        assert delete_upload(MISSING_ID) is False


class TestTotalUploadBytes:
    def test_sums_the_sizes_of_live_uploads(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        seed_upload(legacy_db, session_uuid, size_bytes=100)
        seed_upload(legacy_db, session_uuid, size_bytes=23)

        assert total_upload_bytes(session_uuid) == 123

    def test_leaves_out_soft_deleted_uploads(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        seed_upload(legacy_db, session_uuid, size_bytes=100)
        seed_upload(legacy_db, session_uuid, size_bytes=900, deleted_at=db_now(legacy_db))

        assert total_upload_bytes(session_uuid) == 100

    def test_leaves_out_other_sessions_uploads(self, legacy_db: Connection) -> None:
        mine, theirs = seed_session(legacy_db), seed_session(legacy_db)
        seed_upload(legacy_db, mine, size_bytes=5)
        seed_upload(legacy_db, theirs, size_bytes=500)

        assert total_upload_bytes(mine) == 5

    def test_returns_an_int_not_a_decimal(self, legacy_db: Connection) -> None:
        # SUM(bigint) is numeric in PostgreSQL, which psycopg2 returns as Decimal.
        session_uuid = seed_session(legacy_db)
        seed_upload(legacy_db, session_uuid, size_bytes=4 * GIB)
        seed_upload(legacy_db, session_uuid, size_bytes=1)

        total = total_upload_bytes(session_uuid)

        assert type(total) is int
        assert total == 4 * GIB + 1

    def test_is_zero_without_uploads(self, legacy_db: Connection) -> None:
        total = total_upload_bytes(seed_session(legacy_db))

        assert type(total) is int
        assert total == 0

    def test_is_zero_when_every_upload_is_deleted(self, legacy_db: Connection) -> None:
        session_uuid = seed_session(legacy_db)
        seed_upload(legacy_db, session_uuid, size_bytes=10, deleted_at=db_now(legacy_db))

        assert total_upload_bytes(session_uuid) == 0

    def test_is_zero_for_a_missing_session(self, legacy_db: Connection) -> None:
        assert total_upload_bytes(new_uuid()) == 0


class TestUploadStats:
    """Every test starts from empty tables: the stats cover the whole table."""

    def test_sums_up_each_session_live_uploads(self, empty_tables: Connection) -> None:
        now = db_now(empty_tables)
        session_uuid = seed_session(empty_tables, name="Zoë 🦊")
        seed_upload(empty_tables, session_uuid, size_bytes=100, uploaded_at=now - 2 * HOUR)
        seed_upload(empty_tables, session_uuid, size_bytes=50, uploaded_at=now - HOUR)

        assert upload_stats() == [
            {
                "session_uuid": session_uuid,
                "name": "Zoë 🦊",
                "file_count": 2,
                "total_bytes": 150,
                "last_upload_at": now - HOUR,
            }
        ]

    def test_returns_ints_and_a_str_uuid(self, empty_tables: Connection) -> None:
        seed_upload(empty_tables, seed_session(empty_tables), size_bytes=3 * GIB)

        [row] = upload_stats()

        assert set(row) == set(UploadStatsRow.__annotations__)
        assert (type(row["session_uuid"]), type(row["file_count"]), type(row["total_bytes"])) == (
            str,
            int,
            int,
        )

    def test_leaves_soft_deleted_uploads_out_of_every_figure(
        self, empty_tables: Connection
    ) -> None:
        now = db_now(empty_tables)
        session_uuid = seed_session(empty_tables)
        seed_upload(empty_tables, session_uuid, size_bytes=10, uploaded_at=now - HOUR)
        seed_upload(empty_tables, session_uuid, size_bytes=999, uploaded_at=now, deleted_at=now)

        [row] = upload_stats()

        assert (row["file_count"], row["total_bytes"], row["last_upload_at"]) == (
            1,
            10,
            now - HOUR,
        )

    def test_leaves_out_sessions_whose_uploads_are_all_deleted(
        self, empty_tables: Connection
    ) -> None:
        now = db_now(empty_tables)
        seed_upload(empty_tables, seed_session(empty_tables), deleted_at=now)

        assert upload_stats() == []

    def test_leaves_out_sessions_without_uploads(self, empty_tables: Connection) -> None:
        seed_session(empty_tables)

        assert upload_stats() == []

    def test_orders_by_total_bytes_descending(self, empty_tables: Connection) -> None:
        small, big, middle = (seed_session(empty_tables) for _ in range(3))
        seed_upload(empty_tables, small, size_bytes=1)
        seed_upload(empty_tables, big, size_bytes=300)
        seed_upload(empty_tables, middle, size_bytes=100)
        seed_upload(empty_tables, middle, size_bytes=100)

        assert [row["session_uuid"] for row in upload_stats()] == [big, middle, small]

    def test_breaks_ties_by_session_uuid_ascending(self, empty_tables: Connection) -> None:
        expected = sorted(new_uuid() for _ in range(8))
        for session_uuid in reversed(expected):
            seed_upload(empty_tables, seed_session(empty_tables, uuid=session_uuid), size_bytes=64)
        # A sorted GROUP BY would hand the groups over in uuid order already; hash
        # them instead, so that only the ORDER BY can put the tie in uuid order.
        with empty_tables.cursor() as cur:
            cur.execute("SET LOCAL enable_sort = off")

        assert [row["session_uuid"] for row in upload_stats()] == expected

    def test_returns_at_most_limit_sessions(self, empty_tables: Connection) -> None:
        biggest = [seed_session(empty_tables) for _ in range(3)]
        for size, session_uuid in zip((30, 20, 10), biggest, strict=True):
            seed_upload(empty_tables, session_uuid, size_bytes=size)

        assert [row["session_uuid"] for row in upload_stats(limit=2)] == biggest[:2]

    def test_returns_twenty_sessions_by_default(self, empty_tables: Connection) -> None:
        with empty_tables.cursor() as cur:
            cur.execute(
                "WITH s AS (INSERT INTO user_sessions (uuid, name) "
                "SELECT gen_random_uuid(), 'bulk' FROM generate_series(1, 21) RETURNING uuid) "
                "INSERT INTO uploaded_files (session_uuid, filename, storage_key, size_bytes, "
                "sha256) SELECT uuid, 'f', 'uploads/' || uuid || '/f', 1, repeat('0', 64) FROM s"
            )

        assert len(upload_stats()) == 20

    def test_returns_nothing_with_limit_zero(self, empty_tables: Connection) -> None:
        seed_upload(empty_tables, seed_session(empty_tables))

        assert upload_stats(limit=0) == []

    def test_is_empty_without_uploads(self, empty_tables: Connection) -> None:
        assert upload_stats() == []
