"""Example application: the HTTP routes; each one parses JSON, calls a service, shapes JSON."""

from __future__ import annotations

import re
from typing import Any, Final

from flask import Blueprint, Response, jsonify, request, url_for

from examples.maria_app import views
from examples.maria_app.wiring import current_services
from services import InvalidInput

__all__ = ["blueprint"]

blueprint = Blueprint("maria", __name__)

_DECIMAL: Final = re.compile(r"[0-9]{1,19}")


def _body() -> dict[str, Any]:
    """The request's JSON object; anything else is refused with one line that says why."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object (Content-Type: application/json)")
    return body


def _query_int(name: str, default: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if _DECIMAL.fullmatch(text) is None:
        raise InvalidInput(name, "must be a whole number of at most 19 digits")
    return int(text)


def _created(payload: dict[str, Any], location: str) -> tuple[Response, int, dict[str, str]]:
    return jsonify(payload), 201, {"Location": location}


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    if current_services().health.database_answers():
        return jsonify(status="ok"), 200
    return jsonify(status="unavailable", error="the database does not answer"), 503


@blueprint.post("/sessions")
def create_session() -> tuple[Response, int, dict[str, str]]:
    body = _body()
    row = current_services().sessions.create(
        body.get("name"),
        body.get("email"),
        consent_user_data=body.get("consent_user_data", False),
        ip_address=request.remote_addr,
    )
    return _created(views.session(row), url_for(".get_session", session_uuid=row["uuid"]))


@blueprint.get("/sessions")
def list_sessions() -> Response:
    page = current_services().sessions.list_page(
        limit=_query_int("limit", 50), offset=_query_int("offset", 0)
    )
    return jsonify(views.session_page(page))


@blueprint.get("/sessions/<session_uuid>")
def get_session(session_uuid: str) -> Response:
    return jsonify(views.session(current_services().sessions.get(session_uuid)))


@blueprint.patch("/sessions/<session_uuid>")
def update_session(session_uuid: str) -> Response:
    row = current_services().sessions.update(session_uuid, _body())
    return jsonify(views.session(row))


@blueprint.post("/sessions/<session_uuid>/complete")
def complete_session(session_uuid: str) -> Response:
    return jsonify(views.session(current_services().sessions.complete(session_uuid)))


@blueprint.post("/sessions/<session_uuid>/verification")
def set_verification_code(session_uuid: str) -> tuple[Response, int]:
    issued = current_services().verification.set_code(session_uuid)
    return jsonify(views.issued_code(issued)), 201


@blueprint.post("/sessions/<session_uuid>/verification/resend")
def resend_verification_code(session_uuid: str) -> tuple[Response, int]:
    issued = current_services().verification.resend(session_uuid)
    return jsonify(views.issued_code(issued)), 201


@blueprint.post("/sessions/<session_uuid>/verification/check")
def check_verification_code(session_uuid: str) -> Response:
    result = current_services().verification.verify(session_uuid, _body().get("code"))
    return jsonify(views.check_result(result))


@blueprint.post("/sessions/<session_uuid>/uploads")
def record_upload(session_uuid: str) -> tuple[Response, int, dict[str, str]]:
    body = _body()
    row = current_services().uploads.record(
        session_uuid,
        filename=body.get("filename"),
        size_bytes=body.get("size_bytes"),
        sha256=body.get("sha256"),
        content_type=body.get("content_type"),
        storage_key=body.get("storage_key"),
    )
    location = url_for(".list_uploads", session_uuid=session_uuid)
    return _created(views.upload(row), location)


@blueprint.get("/sessions/<session_uuid>/uploads")
def list_uploads(session_uuid: str) -> Response:
    return jsonify(views.uploads(current_services().uploads.list_for_session(session_uuid)))
