"""Service layer: email verification codes (issue, check with counted attempts, resend)."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import compat
from compat import email_verification
from compat.email_verification import VerificationRow
from services.clock import Clock, utc_now
from services.errors import (
    AlreadyVerified,
    CodeExpired,
    InvalidInput,
    NoCodeIssued,
    NoEmailToVerify,
    ResendLimitReached,
    SessionNotFound,
    TooManyAttempts,
)

__all__ = [
    "CODE_LENGTH",
    "CheckResult",
    "CodeSender",
    "DiscardingSender",
    "IssuedCode",
    "VerificationService",
    "random_code",
]

log = logging.getLogger(__name__)

CODE_LENGTH: Final = 6
_CODE: Final = re.compile(rf"[0-9]{{{CODE_LENGTH}}}")


def random_code() -> str:
    """Six decimal digits from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


class CodeSender(Protocol):
    """Delivers a code to the address it verifies (an email gateway, in production)."""

    def send(self, session_uuid: str, email: str, code: str) -> None: ...


class DiscardingSender:
    """A sender for examples and tests: delivers nothing, and logs neither address nor code."""

    def send(self, session_uuid: str, email: str, code: str) -> None:
        log.info("verification code issued for session %s; no sender configured", session_uuid)


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A code was stored and handed to the sender; the code itself stays out of answers."""

    session_uuid: str
    expires_at: datetime
    resend_attempts: int
    max_resend_attempts: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one counted attempt: verified, or how many attempts are left."""

    verified: bool
    attempts_remaining: int


class VerificationService:
    """Issues and checks the codes that prove a session owns its email address.

    Each operation that reads the state and then changes it runs in one
    ``compat.transaction()``, and starts with the write that locks the row
    (PostgreSQL's row lock on UPDATE), so that two concurrent checks cannot
    both read the same attempt count.
    """

    def __init__(
        self,
        sender: CodeSender | None = None,
        *,
        code_lifetime: timedelta = timedelta(minutes=10),
        clock: Clock = utc_now,
        new_code: Callable[[], str] = random_code,
    ) -> None:
        self._sender: CodeSender = sender or DiscardingSender()
        self._lifetime = code_lifetime
        self._clock = clock
        self._new_code = new_code

    def state(self, session_uuid: str) -> VerificationRow:
        """The session's verification state; SessionNotFound when there is no session."""
        row = email_verification.get_verification(session_uuid)
        if row is None:
            raise SessionNotFound(session_uuid)
        return row

    def set_code(self, session_uuid: str) -> IssuedCode:
        """Issue a new code (attempts start again at zero) and send it once it is committed.

        Not counted against the resend limit: the application should rate-limit
        the route that calls it.
        """
        code = self._new_code()
        expires_at = self._clock() + self._lifetime
        with compat.transaction():
            # Read before writing: storing a code clears the verified flag.
            state = self._pending_state(session_uuid)
            if not email_verification.set_verification_code(session_uuid, code, expires_at):
                raise SessionNotFound(session_uuid)  # deleted since the read
        return self._send(state, code, expires_at)

    def resend(self, session_uuid: str) -> IssuedCode:
        """Issue a fresh code for a pending verification, counted against the resend limit."""
        code = self._new_code()
        expires_at = self._clock() + self._lifetime
        with compat.transaction():
            if not email_verification.increment_resend_attempts(session_uuid):
                raise SessionNotFound(session_uuid)
            state = self._pending_state(session_uuid)
            if state["verification_code"] is None:
                raise NoCodeIssued(session_uuid)
            if state["resend_attempts"] > state["max_resend_attempts"]:
                raise ResendLimitReached(session_uuid, state["max_resend_attempts"])
            email_verification.set_verification_code(session_uuid, code, expires_at)
        return self._send(state, code, expires_at)

    def verify(self, session_uuid: str, code: Any) -> CheckResult:
        """Count one attempt at the pending code; on a match, mark the email verified.

        Only a real comparison counts: when the code expired, none is pending,
        the email is verified already or the attempts are used up, the
        transaction is rolled back and the matching error raised.
        """
        if not isinstance(code, str) or _CODE.fullmatch(code) is None:
            raise InvalidInput("code", f"must be a string of {CODE_LENGTH} digits")
        with compat.transaction():
            # The increment comes first: it locks the row until this transaction
            # ends, so the state read next cannot change under us.
            if not email_verification.increment_verification_attempts(session_uuid):
                raise SessionNotFound(session_uuid)
            state = self.state(session_uuid)
            if state["is_email_verified"]:
                raise AlreadyVerified(session_uuid)
            pending = state["verification_code"]
            expires_at = state["verification_expires_at"]
            if pending is None:
                raise NoCodeIssued(session_uuid)
            attempts, allowed = state["verification_attempts"], state["max_verification_attempts"]
            if attempts > allowed:
                raise TooManyAttempts(session_uuid, allowed)
            if expires_at is not None and expires_at <= self._clock():
                raise CodeExpired(session_uuid)
            if not hmac.compare_digest(pending.encode(), code.encode()):
                return CheckResult(verified=False, attempts_remaining=allowed - attempts)
            email_verification.mark_email_verified(session_uuid)
            return CheckResult(verified=True, attempts_remaining=allowed - attempts)

    def _pending_state(self, session_uuid: str) -> VerificationRow:
        state = self.state(session_uuid)
        if state["email"] is None:
            raise NoEmailToVerify(session_uuid)
        if state["is_email_verified"]:
            raise AlreadyVerified(session_uuid)
        return state

    def _send(self, state: VerificationRow, code: str, expires_at: datetime) -> IssuedCode:
        email = state["email"]
        assert email is not None, "checked by _pending_state"
        self._sender.send(state["uuid"], email, code)
        return IssuedCode(
            session_uuid=state["uuid"],
            expires_at=expires_at,
            resend_attempts=state["resend_attempts"],
            max_resend_attempts=state["max_resend_attempts"],
        )
