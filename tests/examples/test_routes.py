"""The example app's routes, in-process with Flask's test client: statuses and JSON shapes."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from compat.runtime import reset_runtime
from examples.maria_app import Services, create_app
from orm.database import dispose_engine
from services import SessionService, VerificationService
from tests.fixtures.layer import Layer
from tests.services.conftest import RecordingSender

DIGEST = hashlib.sha256(b"scan").hexdigest()
# Fixed, not random: parameter ids must be the same in every pytest-xdist worker.
MISSING = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def client(layer: Layer, sender: RecordingSender) -> Iterator[FlaskClient]:
    """The app on the test's rolled-back unit of work (legacy mode)."""
    app = create_app(Services.build(sender))
    with app.test_client() as test_client:
        yield test_client


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Ada", "email": "ada@example.com", **fields}
    answer = client.post("/sessions", json=body)
    assert answer.status_code == 201, answer.json
    created: dict[str, Any] = answer.json  # type: ignore[assignment]
    return created


class TestSessions:
    def test_create_answers_201_with_its_location_and_no_code_or_ip(
        self, client: FlaskClient
    ) -> None:
        answer = client.post(
            "/sessions", json={"name": "Ada", "email": None, "consent_user_data": True}
        )
        assert answer.status_code == 201
        body = answer.json
        assert body is not None
        assert answer.headers["Location"] == f"/sessions/{body['uuid']}"
        assert "ip_address" not in body
        assert "verification_code" not in body["verification"]
        assert body["created_at"].endswith("Z")

    def test_get_answers_what_create_answered(self, client: FlaskClient) -> None:
        created = create(client)
        assert client.get(f"/sessions/{created['uuid']}").json == created

    def test_patch_answers_the_updated_session(self, client: FlaskClient) -> None:
        created = create(client)
        answer = client.patch(f"/sessions/{created['uuid']}", json={"name": "Ada King"})
        assert answer.status_code == 200
        assert answer.json is not None
        assert answer.json["name"] == "Ada King"

    def test_complete_twice_answers_409_the_second_time(self, client: FlaskClient) -> None:
        created = create(client)
        assert client.post(f"/sessions/{created['uuid']}/complete").status_code == 200
        assert client.post(f"/sessions/{created['uuid']}/complete").status_code == 409

    def test_the_list_is_paged(self, client: FlaskClient) -> None:
        for _ in range(3):
            create(client)
        answer = client.get("/sessions?limit=2&offset=1")
        assert answer.status_code == 200
        assert answer.json is not None
        assert (len(answer.json["items"]), answer.json["limit"], answer.json["offset"]) == (2, 2, 1)
        assert answer.json["total"] >= 3


class TestRefusals:
    @pytest.mark.parametrize(
        ("method", "path", "body", "status"),
        [
            ("GET", "/sessions/not-a-uuid", None, 400),
            ("GET", f"/sessions/{MISSING}", None, 404),
            ("GET", "/sessions?limit=abc", None, 400),
            ("GET", "/sessions?limit=101", None, 400),
            ("POST", "/sessions", {"name": ""}, 400),
            ("POST", "/sessions", ["not", "an", "object"], 400),
            ("PATCH", f"/sessions/{MISSING}", {"name": "x"}, 404),
            ("GET", "/nowhere", None, 404),
            ("DELETE", "/sessions", None, 405),
        ],
    )
    def test_answers_one_json_line(
        self, client: FlaskClient, method: str, path: str, body: Any, status: int
    ) -> None:
        answer = client.open(path, method=method, json=body)
        assert answer.status_code == status
        assert answer.json is not None
        assert list(answer.json) == ["error"]
        assert "\n" not in answer.json["error"]

    def test_a_body_that_is_not_json_answers_400(self, client: FlaskClient) -> None:
        answer = client.post("/sessions", data="name=Ada")
        assert answer.status_code == 400
        assert answer.json == {
            "error": "body: must be a JSON object (Content-Type: application/json)"
        }

    def test_a_malformed_uuid_is_not_echoed(self, client: FlaskClient) -> None:
        answer = client.get("/sessions/ada@example.com")
        assert answer.status_code == 400
        assert answer.json is not None
        assert "ada@example.com" not in answer.json["error"]


class TestVerification:
    def test_a_code_is_sent_not_answered_and_checks_count_attempts(
        self, client: FlaskClient, sender: RecordingSender
    ) -> None:
        base = f"/sessions/{create(client)['uuid']}/verification"
        issued = client.post(base)
        assert issued.status_code == 201
        ((_, _, code),) = sender.sent
        assert code not in issued.get_data(as_text=True)
        wrong = client.post(f"{base}/check", json={"code": "000000" if code != "000000" else "1"})
        assert wrong.json == {"verified": False, "attempts_remaining": 2}
        right = client.post(f"{base}/check", json={"code": code})
        assert right.json == {"verified": True, "attempts_remaining": 1}
        assert client.post(f"{base}/check", json={"code": code}).status_code == 409

    def test_attempts_used_up_answer_429(self, client: FlaskClient) -> None:
        base = f"/sessions/{create(client)['uuid']}/verification"
        client.post(base)
        statuses = [
            client.post(f"{base}/check", json={"code": "abcdef"}).status_code,
            *[
                client.post(f"{base}/check", json={"code": f"00000{i}"}).status_code
                for i in range(4)
            ],
        ]
        # The first is malformed (400, not counted); three counted tries, then 429 (assuming
        # the random code is none of 000000-000002, a one in 333,333 chance).
        assert statuses == [400, 200, 200, 200, 429]

    def test_a_session_without_email_answers_409(self, client: FlaskClient) -> None:
        session = create(client, email=None)
        assert client.post(f"/sessions/{session['uuid']}/verification").status_code == 409


class TestUploads:
    def test_record_then_list(self, client: FlaskClient) -> None:
        base = f"/sessions/{create(client)['uuid']}/uploads"
        made = client.post(base, json={"filename": "a.pdf", "size_bytes": 5, "sha256": DIGEST})
        assert made.status_code == 201
        assert client.get(base).json == {"items": [made.json]}

    def test_a_taken_storage_key_answers_409(self, client: FlaskClient) -> None:
        base = f"/sessions/{create(client)['uuid']}/uploads"
        body = {"filename": "a.pdf", "size_bytes": 5, "sha256": DIGEST, "storage_key": "k/1"}
        assert client.post(base, json=body).status_code == 201
        assert client.post(base, json=body).status_code == 409


PERSONAL = "Ada Lovelace <ada@example.com> from 192.0.2.1"


class _Exploding(SessionService):
    def get(self, session_uuid: str) -> Any:
        raise RuntimeError(PERSONAL)  # as a driver error's DETAIL would quote a row


def test_an_unexpected_error_answers_500_and_logs_no_personal_data(
    layer: Layer, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Services(sessions=_Exploding(), verification=VerificationService()))
    with caplog.at_level(logging.ERROR), app.test_client() as client:
        answer = client.get(f"/sessions/{uuid.uuid4()}")
    assert answer.status_code == 500
    assert answer.json == {"error": "internal error"}
    assert "RuntimeError" in caplog.text
    for personal in ("Ada", "ada@example.com", "192.0.2.1"):
        assert personal not in caplog.text


def test_an_unreachable_database_answers_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    dispose_engine()
    previous = reset_runtime(None)  # a runtime of its own, gone after the test
    try:
        with create_app().test_client() as client:
            health = client.get("/healthz")
            read = client.get(f"/sessions/{uuid.uuid4()}")
    finally:
        reset_runtime(previous)
        dispose_engine()
    assert (health.status_code, read.status_code) == (503, 503)
    assert read.json == {"error": "the database is unavailable; try again shortly"}
