"""SessionService: its rules hold on a real PostgreSQL, whichever path the facade routes to."""

from __future__ import annotations

import uuid

import psycopg2.extensions
import pytest

import compat
from services import InvalidInput, SessionAlreadyCompleted, SessionNotFound, SessionService
from tests.fixtures.layer import Layer

pytestmark = pytest.mark.usefixtures("routed")


@pytest.fixture
def sessions() -> SessionService:
    return SessionService()


def unique_name(stem: str = "Ada") -> str:
    return f"{stem} {uuid.uuid4().hex[:8]}"


class TestCreate:
    def test_stores_a_new_session_under_a_fresh_uuid(self, sessions: SessionService) -> None:
        created = sessions.create(unique_name(), "ada@example.com")
        assert uuid.UUID(created["uuid"]).version == 4
        assert sessions.get(created["uuid"]) == created

    def test_strips_the_name_and_leaves_the_email_unverified(
        self, sessions: SessionService
    ) -> None:
        created = sessions.create("  Grace Hopper  ", "grace@example.com")
        assert created["name"] == "Grace Hopper"
        assert created["is_email_verified"] is False

    def test_keeps_the_ip_address_only_with_consent(self, sessions: SessionService) -> None:
        without = sessions.create(unique_name(), None, ip_address="192.0.2.7")
        with_consent = sessions.create(
            unique_name(), None, consent_user_data=True, ip_address="192.0.2.8"
        )
        assert without["ip_address"] is None
        assert with_consent["ip_address"] == "192.0.2.8"

    @pytest.mark.parametrize(
        ("name", "email", "field"),
        [("   ", None, "name"), (42, None, "name"), ("Ada", "not-an-address", "email")],
    )
    def test_refuses_bad_input_naming_the_field(
        self, sessions: SessionService, name: object, email: object, field: str
    ) -> None:
        with pytest.raises(InvalidInput) as refused:
            sessions.create(name, email)
        assert refused.value.field == field

    def test_refuses_consent_that_is_not_a_bool(self, sessions: SessionService) -> None:
        with pytest.raises(InvalidInput, match="consent_user_data"):
            sessions.create(unique_name(), None, consent_user_data="yes")


class TestGet:
    def test_raises_session_not_found_for_an_unknown_uuid(self, sessions: SessionService) -> None:
        missing = str(uuid.uuid4())
        with pytest.raises(SessionNotFound, match=missing):
            sessions.get(missing)

    def test_lets_the_facade_refuse_a_malformed_uuid_as_a_value_error(
        self, sessions: SessionService
    ) -> None:
        with pytest.raises(compat.InvalidArgument, match="session_uuid"):
            sessions.get("not-a-uuid")


class TestCheckUuidExists:
    def test_tells_an_existing_session_from_a_missing_one(self, sessions: SessionService) -> None:
        created = sessions.create(unique_name(), None)
        assert sessions.check_uuid_exists(created["uuid"]) is True
        assert sessions.check_uuid_exists(str(uuid.uuid4())) is False


class TestUpdate:
    def test_changes_the_name_and_returns_the_stored_row(self, sessions: SessionService) -> None:
        created = sessions.create(unique_name(), None)
        updated = sessions.update(created["uuid"], {"name": "Ada King"})
        assert updated["name"] == "Ada King"
        assert sessions.get(created["uuid"]) == updated

    def test_a_new_email_resets_the_verification_of_the_old_one(
        self, sessions: SessionService, legacy_verified: str
    ) -> None:
        updated = sessions.update(legacy_verified, {"email": "new@example.com"})
        assert updated["email"] == "new@example.com"
        assert updated["is_email_verified"] is False
        assert updated["resend_attempts"] == 0

    def test_the_same_email_keeps_the_verification(
        self, sessions: SessionService, legacy_verified: str
    ) -> None:
        updated = sessions.update(legacy_verified, {"email": "ada@example.com", "name": "Ada"})
        assert updated["is_email_verified"] is True

    def test_withdrawn_consent_drops_the_ip_address(self, sessions: SessionService) -> None:
        created = sessions.create(
            unique_name(), None, consent_user_data=True, ip_address="192.0.2.9"
        )
        updated = sessions.update(created["uuid"], {"consent_user_data": False})
        assert (updated["consent_user_data"], updated["ip_address"]) == (False, None)

    @pytest.mark.parametrize(
        "changes",
        [{}, {"ip_address": "192.0.2.1"}, {"completed_at": None}, {"name": ""}],
        ids=["nothing", "ip_address", "completed_at", "blank-name"],
    )
    def test_refuses_changes_it_does_not_allow(
        self, sessions: SessionService, changes: dict[str, object]
    ) -> None:
        created = sessions.create(unique_name(), None)
        with pytest.raises(InvalidInput):
            sessions.update(created["uuid"], changes)
        assert sessions.get(created["uuid"]) == created

    def test_of_a_missing_session_raises_session_not_found(self, sessions: SessionService) -> None:
        with pytest.raises(SessionNotFound):
            sessions.update(str(uuid.uuid4()), {"name": "Nobody"})


class TestComplete:
    def test_completes_a_session_once(self, sessions: SessionService) -> None:
        created = sessions.create(unique_name(), None)
        completed = sessions.complete(created["uuid"])
        assert completed["completed_at"] is not None
        with pytest.raises(SessionAlreadyCompleted):
            sessions.complete(created["uuid"])
        assert sessions.get(created["uuid"])["completed_at"] == completed["completed_at"]

    def test_of_a_missing_session_raises_session_not_found(self, sessions: SessionService) -> None:
        with pytest.raises(SessionNotFound):
            sessions.complete(str(uuid.uuid4()))


class TestListPage:
    def test_pages_newest_first_with_the_total(self, sessions: SessionService) -> None:
        before = sessions.list_page(limit=1).total
        made = [sessions.create(unique_name(f"S{i}"), None)["uuid"] for i in range(3)]
        first = sessions.list_page(limit=2, offset=0)
        second = sessions.list_page(limit=2, offset=2)
        assert first.total == second.total == before + 3
        # Made in one transaction, the three share created_at: ties go by uuid.
        assert [s["uuid"] for s in first.items] == sorted(made)[:2]
        assert second.items[0]["uuid"] == sorted(made)[2]
        assert (first.limit, first.offset, second.offset) == (2, 0, 2)

    @pytest.mark.parametrize(
        ("limit", "offset", "field"),
        [(0, 0, "limit"), (101, 0, "limit"), (10, -1, "offset"), ("10", 0, "limit")],
    )
    def test_refuses_a_page_out_of_bounds(
        self, sessions: SessionService, limit: object, offset: object, field: str
    ) -> None:
        with pytest.raises(InvalidInput) as refused:
            sessions.list_page(limit=limit, offset=offset)
        assert refused.value.field == field


@pytest.fixture
def legacy_verified(layer: Layer) -> str:
    """A session whose email ada@example.com is verified and which was resent a code once."""
    session_uuid = str(uuid.uuid4())
    raw: psycopg2.extensions.connection = layer.unit.dbapi_connection  # type: ignore[union-attr]
    with raw.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email, is_email_verified, resend_attempts) "
            "VALUES (%s, 'Ada', 'ada@example.com', TRUE, 1)",
            (session_uuid,),
        )
    return session_uuid
