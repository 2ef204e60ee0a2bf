"""Parity cases for compat.uploads: each function's happy path and its edges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg2.errors

from compat.errors import InvalidArgument
from compat.routing.arguments import BIGINT_MAX
from tests.parity.case import (
    Call,
    Case,
    Seed,
    after,
    call,
    case,
    fixed_uuid,
    has_length,
    returns,
    row_of,
    rows_of,
)
from tests.parity.case import Tag as T

__all__ = ["CASES"]

U1, U2, U3 = (fixed_uuid(n) for n in (1, 2, 3))
MISSING = fixed_uuid(999)
EARLY = datetime(2024, 1, 1, 9, 0)
MIDDLE = datetime(2024, 1, 2, 9, 0)
LATE = datetime(2024, 1, 3, 9, 0)
SHA = "0123456789abcdef" * 4
KEY = f"uploads/{U1}/report.pdf"
ONE_UPLOAD = 501
TIED_IDS = (9_000_000_003, 9_000_000_002, 9_000_000_001)
"""Inserted in this order with one uploaded_at: only the tie-breaker on id sorts them."""

_RECORD = "uploads.record_upload"
_GET = "uploads.get_upload"
_LIST = "uploads.list_uploads"
_DELETE = "uploads.delete_upload"
_TOTAL = "uploads.total_upload_bytes"
_STATS = "uploads.upload_stats"


def _record(db: Seed, **overrides: object) -> Call:
    """record_upload's arguments for a new upload of a seeded session U1."""
    db.session(U1)
    arguments: dict[str, object] = {
        "session_uuid": U1,
        "filename": "report.pdf",
        "storage_key": KEY,
        "size_bytes": 2048,
        "content_type": "application/pdf",
        "sha256": SHA,
    }
    arguments.update(overrides)
    return Call(tuple(arguments.values()))


def _history(db: Seed) -> None:
    """U1 uploaded three files (one deleted since), U2 one; U3 none."""
    db.session(U1)
    db.session(U2, name="Grace")
    db.session(U3, name="Barbara")
    db.upload(U1, upload_id=103, filename="c.txt", size_bytes=300, uploaded_at=LATE)
    db.upload(U1, upload_id=101, filename="a.txt", size_bytes=100, uploaded_at=EARLY)
    db.upload(U1, upload_id=102, filename="b.txt", size_bytes=5000, uploaded_at=MIDDLE)
    db.upload(U1, upload_id=104, size_bytes=1, uploaded_at=EARLY, deleted_at=MIDDLE)
    db.upload(U2, upload_id=201, size_bytes=50, uploaded_at=MIDDLE)


def _ties_by_id(db: Seed) -> None:
    db.session(U1)
    for upload_id in TIED_IDS:
        db.upload(U1, upload_id=upload_id, uploaded_at=MIDDLE)


def _equal_totals(db: Seed) -> None:
    """Three sessions with the same total, inserted in descending uuid order."""
    for session_uuid in (U3, U2, U1):
        db.session(session_uuid)
        db.upload(session_uuid, size_bytes=100, uploaded_at=MIDDLE)


def _two_of_the_largest(db: Seed) -> None:
    db.session(U1)
    db.upload(U1, size_bytes=BIGINT_MAX)
    db.upload(U1, size_bytes=BIGINT_MAX)


def _only_deleted(db: Seed) -> None:
    db.session(U1)
    db.upload(U1, deleted_at=EARLY)


def _duplicate_storage_key(db: Seed) -> Call:
    """Another session's upload already has the key the new one names."""
    db.upload(db.session(U2), storage_key=KEY)
    return _record(db)


def _largest_upload(db: Seed) -> Call:
    db.upload(db.session(U1), size_bytes=BIGINT_MAX)
    return call(U1)


def _one_upload(db: Seed, **columns: Any) -> Call:
    """One upload of U1, whose id is ONE_UPLOAD; the call names that id."""
    db.session(U1)
    return call(db.upload(U1, upload_id=ONE_UPLOAD, **columns))


CASES: list[Case] = [
    # record_upload
    case(_RECORD, "every-column", {T.HAPPY}, _record, expect=row_of(KEY, key="storage_key")),
    case(
        _RECORD,
        "null-content-type",
        {T.NULL},
        lambda db: _record(db, content_type=None),
        expect=row_of(KEY, key="storage_key"),
    ),
    case(
        _RECORD,
        "unicode-and-emoji-names",
        {T.UNICODE},
        lambda db: _record(db, filename="résumé 🦄.pdf", storage_key="uploads/李/🦄.pdf"),
        expect=row_of("uploads/李/🦄.pdf", key="storage_key"),
    ),
    case(
        _RECORD,
        "largest-size",
        {T.LONGEST},
        lambda db: _record(db, size_bytes=BIGINT_MAX),
        expect=row_of(KEY, key="storage_key"),
    ),
    case(
        _RECORD,
        "zero-bytes",
        {T.BOUNDARY, T.EMPTY},
        lambda db: _record(db, size_bytes=0, filename="", content_type=""),
        expect=row_of(KEY, key="storage_key"),
    ),
    case(
        _RECORD,
        "short-sha256-is-blank-padded",
        {T.BOUNDARY},
        lambda db: _record(db, sha256="abc"),
        expect=row_of(KEY, key="storage_key"),
    ),
    case(
        _RECORD,
        "uuid-in-capitals",
        {T.ALTERNATE_FORM},
        lambda db: _record(db, session_uuid=U1.upper()),
        expect=row_of(U1, key="session_uuid"),
    ),
    case(
        _RECORD,
        "duplicate-storage-key",
        {T.CONSTRAINT},
        _duplicate_storage_key,
        raises=psycopg2.errors.UniqueViolation,
        sqlstate="23505",
    ),
    case(
        _RECORD,
        "session-that-does-not-exist",
        {T.CONSTRAINT, T.MISSING},
        lambda db: _record(db, session_uuid=MISSING),
        raises=psycopg2.errors.ForeignKeyViolation,
        sqlstate="23503",
    ),
    case(
        _RECORD,
        "negative-size",
        {T.CONSTRAINT},
        lambda db: _record(db, size_bytes=-1),
        raises=psycopg2.errors.CheckViolation,
        sqlstate="23514",
    ),
    case(
        _RECORD,
        "size-beyond-bigint",
        {T.BAD_INPUT, T.LONGEST},
        lambda db: _record(db, size_bytes=BIGINT_MAX + 1),
        raises=InvalidArgument,
    ),
    case(
        _RECORD,
        "sha256-longer-than-the-column",
        {T.BAD_INPUT, T.LONGEST},
        lambda db: _record(db, sha256=SHA + "0"),
        raises=InvalidArgument,
    ),
    case(
        _RECORD,
        "none-for-filename",
        {T.BAD_INPUT, T.NULL},
        lambda db: _record(db, filename=None),
        raises=InvalidArgument,
    ),
    case(
        _RECORD,
        "size-as-text",
        {T.BAD_INPUT},
        lambda db: _record(db, size_bytes="2048"),
        raises=InvalidArgument,
    ),
    # get_upload
    case(_GET, "live-upload", {T.HAPPY}, _one_upload, expect=row_of(ONE_UPLOAD, key="id")),
    case(
        _GET,
        "null-content-type",
        {T.NULL},
        lambda db: _one_upload(db, content_type=None),
        expect=row_of(ONE_UPLOAD, key="id"),
    ),
    case(
        _GET,
        "unicode-names",
        {T.UNICODE},
        lambda db: _one_upload(db, filename="🦄.png", storage_key="uploads/李/🦄.png"),
        expect=row_of(ONE_UPLOAD, key="id"),
    ),
    case(
        _GET,
        "soft-deleted-upload",
        {T.REPEATED, T.MISSING},
        lambda db: _one_upload(db, deleted_at=EARLY),
        expect=returns(None),
    ),
    case(
        _GET,
        "missing-upload",
        {T.MISSING},
        lambda db: call(db.absent_upload_id()),
        expect=returns(None),
    ),
    case(
        _GET,
        "largest-id",
        {T.LONGEST, T.MISSING},
        lambda db: call(BIGINT_MAX),
        expect=returns(None),
    ),
    case(_GET, "id-as-text", {T.BAD_INPUT}, lambda db: call("1"), raises=InvalidArgument),
    case(_GET, "bool-for-id", {T.BAD_INPUT}, lambda db: call(True), raises=InvalidArgument),
    case(
        _GET,
        "id-beyond-bigint",
        {T.BAD_INPUT, T.LONGEST},
        lambda db: call(BIGINT_MAX + 1),
        raises=InvalidArgument,
    ),
    # list_uploads
    case(
        _LIST,
        "oldest-first-live-only",
        {T.HAPPY},
        after(_history, call(U1)),
        expect=rows_of(101, 102, 103, key="id"),
    ),
    case(
        _LIST,
        "ties-by-id",
        {T.TIES},
        after(_ties_by_id, call(U1)),
        expect=rows_of(*sorted(TIED_IDS), key="id"),
    ),
    case(
        _LIST,
        "session-without-uploads",
        {T.EMPTY},
        after(_history, call(U3)),
        expect=returns([]),
    ),
    case(
        _LIST,
        "only-deleted-uploads",
        {T.NO_MATCH},
        after(_only_deleted, call(U1)),
        expect=returns([]),
    ),
    case(
        _LIST,
        "missing-session",
        {T.MISSING},
        after(_history, call(MISSING)),
        expect=returns([]),
    ),
    case(
        _LIST,
        "uuid-in-capitals",
        {T.ALTERNATE_FORM},
        after(_history, call(U1.upper())),
        expect=has_length(3),
    ),
    case(
        _LIST, "malformed-uuid", {T.BAD_INPUT}, lambda db: call("uploads/"), raises=InvalidArgument
    ),
    # delete_upload
    case(_DELETE, "live-upload", {T.HAPPY}, _one_upload, expect=returns(True)),
    case(
        _DELETE,
        "already-deleted",
        {T.REPEATED},
        lambda db: _one_upload(db, deleted_at=EARLY),
        expect=returns(False),
    ),
    case(
        _DELETE,
        "missing-upload",
        {T.MISSING},
        lambda db: call(db.absent_upload_id()),
        expect=returns(False),
    ),
    case(
        _DELETE,
        "negative-id",
        {T.MISSING, T.BOUNDARY},
        lambda db: call(-1),
        expect=returns(False),
    ),
    case(_DELETE, "float-id", {T.BAD_INPUT}, lambda db: call(1.0), raises=InvalidArgument),
    # total_upload_bytes
    case(_TOTAL, "live-uploads-only", {T.HAPPY}, after(_history, call(U1)), expect=returns(5400)),
    case(
        _TOTAL, "session-without-uploads", {T.EMPTY}, after(_history, call(U3)), expect=returns(0)
    ),
    case(
        _TOTAL,
        "only-deleted-uploads",
        {T.NO_MATCH},
        after(_only_deleted, call(U1)),
        expect=returns(0),
    ),
    case(_TOTAL, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(0)),
    case(
        _TOTAL,
        "largest-size",
        {T.LONGEST},
        _largest_upload,
        expect=returns(BIGINT_MAX),
    ),
    case(
        _TOTAL,
        "sum-beyond-bigint",
        {T.LONGEST, T.CONSTRAINT},
        after(_two_of_the_largest, call(U1)),
        raises=psycopg2.errors.NumericValueOutOfRange,
        sqlstate="22003",
    ),
    case(
        _TOTAL,
        "none-for-uuid",
        {T.BAD_INPUT, T.NULL},
        lambda db: call(None),
        raises=InvalidArgument,
    ),
    # upload_stats
    case(
        _STATS,
        "biggest-first",
        {T.HAPPY},
        after(_history, call()),
        expect=rows_of(U1, U2, key="session_uuid"),
    ),
    case(
        _STATS,
        "ties-by-session-uuid",
        {T.TIES},
        after(_equal_totals, call(10)),
        expect=rows_of(U1, U2, U3, key="session_uuid"),
    ),
    case(
        _STATS,
        "ties-cut-by-the-limit",
        {T.TIES},
        after(_equal_totals, call(limit=2)),
        expect=rows_of(U1, U2, key="session_uuid"),
    ),
    case(_STATS, "limit-zero", {T.EMPTY, T.BOUNDARY}, after(_history, call(0)), expect=returns([])),
    case(
        _STATS,
        "limit-beyond-the-rows",
        {T.PAST_END},
        after(_history, call(BIGINT_MAX)),
        expect=has_length(2),
    ),
    case(_STATS, "no-uploads", {T.EMPTY}, lambda db: call(), expect=returns([])),
    case(
        _STATS,
        "only-deleted-uploads",
        {T.NO_MATCH},
        after(_only_deleted, call()),
        expect=returns([]),
    ),
    case(
        _STATS,
        "unicode-session-name",
        {T.UNICODE},
        after(
            lambda db: db.upload(db.session(U1, name="Zoë 🦄 李小龍")),
            call(),
        ),
        expect=has_length(1),
    ),
    case(
        _STATS,
        "sum-beyond-bigint",
        {T.LONGEST, T.CONSTRAINT},
        after(_two_of_the_largest, call()),
        raises=psycopg2.errors.NumericValueOutOfRange,
        sqlstate="22003",
    ),
    case(_STATS, "negative-limit", {T.BAD_INPUT}, lambda db: call(-1), raises=InvalidArgument),
    case(
        _STATS,
        "none-for-limit",
        {T.BAD_INPUT, T.NULL},
        lambda db: call(None),
        raises=InvalidArgument,
    ),
]
