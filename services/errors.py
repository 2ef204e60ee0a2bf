"""Service layer: the domain errors the services raise, for routes to map to answers."""

from __future__ import annotations

__all__ = [
    "AlreadyVerified",
    "CodeExpired",
    "DuplicateUpload",
    "InvalidInput",
    "NoCodeIssued",
    "NoEmailToVerify",
    "ResendLimitReached",
    "ServiceError",
    "SessionAlreadyCompleted",
    "SessionNotFound",
    "TooManyAttempts",
]


class ServiceError(Exception):
    """Base of every error a service raises on purpose."""


class InvalidInput(ServiceError, ValueError):
    """A caller's value was refused before any database call; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class SessionNotFound(ServiceError, LookupError):
    """No session has this uuid (it never existed, or it was deleted)."""

    def __init__(self, session_uuid: str) -> None:
        super().__init__(f"no session with uuid {session_uuid}")
        self.session_uuid = session_uuid


class SessionAlreadyCompleted(ServiceError):
    """The session was completed before; completing it again would move its completed_at."""

    def __init__(self, session_uuid: str) -> None:
        super().__init__(f"session {session_uuid} is already completed")
        self.session_uuid = session_uuid


class NoEmailToVerify(ServiceError):
    """The session has no email address: set one (PATCH the session) before asking for a code."""

    def __init__(self, session_uuid: str) -> None:
        super().__init__(f"session {session_uuid} has no email to verify; set an email on it first")
        self.session_uuid = session_uuid


class AlreadyVerified(ServiceError):
    """The session's email is verified already; there is nothing to check or resend."""

    def __init__(self, session_uuid: str) -> None:
        super().__init__(f"the email of session {session_uuid} is already verified")
        self.session_uuid = session_uuid


class NoCodeIssued(ServiceError):
    """No verification code is pending for the session: issue one first."""

    def __init__(self, session_uuid: str) -> None:
        super().__init__(
            f"session {session_uuid} has no pending verification code; request one first"
        )
        self.session_uuid = session_uuid


class CodeExpired(ServiceError):
    """The pending code expired; the caller should ask for a new one."""

    def __init__(self, session_uuid: str) -> None:
        super().__init__(
            f"the verification code of session {session_uuid} expired; request a new one"
        )
        self.session_uuid = session_uuid


class TooManyAttempts(ServiceError):
    """Every allowed attempt at the pending code was used; only a new code allows more."""

    def __init__(self, session_uuid: str, max_attempts: int) -> None:
        super().__init__(
            f"session {session_uuid} used all {max_attempts} attempts at its code; "
            "request a new code"
        )
        self.session_uuid = session_uuid
        self.max_attempts = max_attempts


class ResendLimitReached(ServiceError):
    """The code was resent as often as the session allows."""

    def __init__(self, session_uuid: str, max_resends: int) -> None:
        super().__init__(
            f"the code of session {session_uuid} was resent {max_resends} times, the most allowed"
        )
        self.session_uuid = session_uuid
        self.max_resends = max_resends


class DuplicateUpload(ServiceError):
    """Another upload already uses this storage key (keys are unique across all sessions)."""

    def __init__(self, storage_key: str) -> None:
        super().__init__(f"an upload with storage key {storage_key!r} is already recorded")
        self.storage_key = storage_key
