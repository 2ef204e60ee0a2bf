"""UploadService: upload metadata is recorded and listed per session, on every path."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from services import DuplicateUpload, InvalidInput, SessionNotFound, SessionService, UploadService

pytestmark = pytest.mark.usefixtures("routed")

DIGEST = hashlib.sha256(b"hello").hexdigest()


@pytest.fixture
def uploads() -> UploadService:
    return UploadService()


@pytest.fixture
def session_uuid() -> str:
    return SessionService().create(f"Ada {uuid.uuid4().hex[:8]}", None)["uuid"]


class TestRecord:
    def test_stores_the_metadata_under_a_key_made_without_the_file_name(
        self, uploads: UploadService, session_uuid: str
    ) -> None:
        row = uploads.record(
            session_uuid,
            filename="passport scan.pdf",
            size_bytes=1024,
            sha256=DIGEST.upper(),
            content_type="application/pdf",
        )
        assert (row["session_uuid"], row["filename"], row["size_bytes"]) == (
            session_uuid,
            "passport scan.pdf",
            1024,
        )
        assert row["sha256"] == DIGEST
        assert row["storage_key"].startswith(f"sessions/{session_uuid}/")
        assert "passport" not in row["storage_key"]

    def test_a_storage_key_already_recorded_raises_duplicate_upload_and_keeps_the_first(
        self, uploads: UploadService, session_uuid: str
    ) -> None:
        first = uploads.record(
            session_uuid, filename="a.txt", size_bytes=1, sha256=DIGEST, storage_key="k/1"
        )
        with pytest.raises(DuplicateUpload, match="k/1"):
            uploads.record(
                session_uuid, filename="b.txt", size_bytes=2, sha256=DIGEST, storage_key="k/1"
            )
        assert uploads.list_for_session(session_uuid) == [first]

    def test_for_a_missing_session_raises_session_not_found(self, uploads: UploadService) -> None:
        with pytest.raises(SessionNotFound):
            uploads.record(str(uuid.uuid4()), filename="a.txt", size_bytes=1, sha256=DIGEST)

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"filename": " "}, "filename"),
            ({"size_bytes": -1}, "size_bytes"),
            ({"size_bytes": True}, "size_bytes"),
            ({"sha256": "abc"}, "sha256"),
            ({"content_type": 5}, "content_type"),
        ],
    )
    def test_refuses_bad_metadata_naming_the_field(
        self,
        uploads: UploadService,
        session_uuid: str,
        changes: dict[str, object],
        field: str,
    ) -> None:
        metadata: dict[str, object] = {"filename": "a.txt", "size_bytes": 1, "sha256": DIGEST}
        with pytest.raises(InvalidInput) as refused:
            uploads.record(session_uuid, **{**metadata, **changes})
        assert refused.value.field == field
        assert uploads.list_for_session(session_uuid) == []


class TestListForSession:
    def test_lists_the_sessions_uploads_oldest_first(
        self, uploads: UploadService, session_uuid: str
    ) -> None:
        made = [
            uploads.record(session_uuid, filename=f"{i}.txt", size_bytes=i, sha256=DIGEST)
            for i in range(3)
        ]
        other = SessionService().create("Other", None)["uuid"]
        uploads.record(other, filename="x.txt", size_bytes=9, sha256=DIGEST)
        assert uploads.list_for_session(session_uuid) == made

    def test_a_session_without_uploads_lists_none(
        self, uploads: UploadService, session_uuid: str
    ) -> None:
        assert uploads.list_for_session(session_uuid) == []

    def test_a_missing_session_raises_session_not_found(self, uploads: UploadService) -> None:
        with pytest.raises(SessionNotFound):
            uploads.list_for_session(str(uuid.uuid4()))
