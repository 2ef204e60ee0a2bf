"""Example application: every error as a JSON answer of one line, and logs without personal data."""

from __future__ import annotations

import logging
import traceback
from typing import Final

import psycopg2
import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

import compat
from services import (
    AlreadyVerified,
    CodeExpired,
    DuplicateUpload,
    InvalidInput,
    NoCodeIssued,
    NoEmailToVerify,
    ResendLimitReached,
    ServiceError,
    SessionAlreadyCompleted,
    SessionNotFound,
    TooManyAttempts,
)

__all__ = ["STATUS", "register"]

log = logging.getLogger(__name__)

STATUS: Final[dict[type[ServiceError], int]] = {
    InvalidInput: 400,
    SessionNotFound: 404,
    SessionAlreadyCompleted: 409,
    NoEmailToVerify: 409,
    AlreadyVerified: 409,
    NoCodeIssued: 409,
    DuplicateUpload: 409,
    CodeExpired: 410,
    TooManyAttempts: 429,
    ResendLimitReached: 429,
}
"""The answer each domain error gets; a subclass not listed here is a 500 (a bug)."""


def _answer(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message.splitlines()[0] if message else "error"), status


def _service_error(error: ServiceError) -> tuple[Response, int]:
    status = STATUS.get(type(error))
    if status is None:
        return _unexpected(error)
    return _answer(status, str(error))


def _invalid_argument(error: compat.InvalidArgument) -> tuple[Response, int]:
    # The facade's message names the function and argument, never the value.
    return _answer(400, str(error))


def _http_error(error: HTTPException) -> tuple[Response, int]:
    return _answer(error.code or 500, error.description or error.name)


def _database_unavailable(error: Exception) -> tuple[Response, int]:
    log.error("database unavailable on %s %s: %s", request.method, request.endpoint, _kind(error))
    return _answer(503, "the database is unavailable; try again shortly")


def _unexpected(error: Exception) -> tuple[Response, int]:
    # The message is left out on purpose: a database error's DETAIL quotes row
    # values (names, emails). The frames say where; the class says what.
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled %s on %s %s\n%s", _kind(error), request.method, request.endpoint, frames)
    return _answer(500, "internal error")


def _kind(error: BaseException) -> str:
    code = getattr(error, "pgcode", None)
    return type(error).__name__ + (f" (SQLSTATE {code})" if code else "")


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(compat.InvalidArgument, _invalid_argument)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(psycopg2.OperationalError, _database_unavailable)
    # The facade raises psycopg2's classes once connected; a database it cannot
    # connect to at all surfaces as SQLAlchemy's OperationalError (the pool's).
    app.register_error_handler(sa.exc.OperationalError, _database_unavailable)
    # A pooled connection not free within the engine's pool_timeout, and a
    # connection the server closed under the call (a restart): unavailable too.
    app.register_error_handler(sa.exc.TimeoutError, _database_unavailable)
    app.register_error_handler(psycopg2.InterfaceError, _database_unavailable)
    # Behind PgBouncer a connection the pooler closed may fail SQLAlchemy's own
    # use of it (outside a facade call) as its InterfaceError: unavailable too.
    app.register_error_handler(sa.exc.InterfaceError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
