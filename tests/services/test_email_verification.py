"""VerificationService: codes are issued, checked and resent atomically, on every path."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import psycopg2.extensions
import pytest

from services import (
    AlreadyVerified,
    CheckResult,
    CodeExpired,
    InvalidInput,
    NoCodeIssued,
    NoEmailToVerify,
    ResendLimitReached,
    SessionNotFound,
    TooManyAttempts,
    VerificationService,
)
from services.clock import utc_now
from tests.fixtures.layer import Layer
from tests.services.conftest import RecordingSender, route_everything

CODE = "123456"
WRONG = "654321"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def verification(clock: Clock, sender: RecordingSender) -> VerificationService:
    codes = iter([CODE, "111111", "222222", "333333", "444444"])
    return VerificationService(sender, clock=clock, new_code=lambda: next(codes))


def insert_session(
    observer: psycopg2.extensions.connection, email: str | None = "ada@example.com"
) -> str:
    session_uuid = str(uuid.uuid4())
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email) VALUES (%s, 'Ada', %s)",
            (session_uuid, email),
        )
    return session_uuid


def committed_state(
    observer: psycopg2.extensions.connection, session_uuid: str
) -> tuple[str | None, int, bool, int]:
    """Code, attempts, verified flag and resends as committed, read with plain SQL."""
    with observer.cursor() as cur:
        cur.execute(
            "SELECT verification_code, verification_attempts, is_email_verified, resend_attempts "
            "FROM user_sessions WHERE uuid = %s",
            (session_uuid,),
        )
        row = cur.fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


@pytest.mark.usefixtures("routed_committed")
class TestSetCode:
    def test_stores_the_code_and_sends_it_after_the_commit(
        self,
        verification: VerificationService,
        sender: RecordingSender,
        clock: Clock,
        observer: psycopg2.extensions.connection,
    ) -> None:
        session_uuid = insert_session(observer)
        issued = verification.set_code(session_uuid)
        assert issued.expires_at == clock.now + timedelta(minutes=10)
        assert sender.sent == [(session_uuid, "ada@example.com", CODE)]
        assert committed_state(observer, session_uuid) == (CODE, 0, False, 0)

    def test_refuses_a_session_without_an_email_and_sends_nothing(
        self,
        verification: VerificationService,
        sender: RecordingSender,
        observer: psycopg2.extensions.connection,
    ) -> None:
        session_uuid = insert_session(observer, email=None)
        with pytest.raises(NoEmailToVerify):
            verification.set_code(session_uuid)
        assert sender.sent == []
        assert committed_state(observer, session_uuid) == (None, 0, False, 0)

    def test_of_a_missing_session_raises_session_not_found(
        self, verification: VerificationService
    ) -> None:
        with pytest.raises(SessionNotFound):
            verification.set_code(str(uuid.uuid4()))


@pytest.mark.usefixtures("routed_committed")
class TestVerify:
    def test_the_right_code_marks_the_email_verified_and_clears_the_code(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        assert verification.verify(session_uuid, CODE) == CheckResult(True, 2)
        assert committed_state(observer, session_uuid) == (None, 1, True, 0)

    def test_a_wrong_code_commits_the_counted_attempt(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        assert verification.verify(session_uuid, WRONG) == CheckResult(False, 2)
        assert verification.verify(session_uuid, WRONG) == CheckResult(False, 1)
        assert committed_state(observer, session_uuid) == (CODE, 2, False, 0)

    def test_after_the_last_attempt_even_the_right_code_is_refused_and_not_counted(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        for remaining in (2, 1, 0):
            assert verification.verify(session_uuid, WRONG) == CheckResult(False, remaining)
        with pytest.raises(TooManyAttempts):
            verification.verify(session_uuid, CODE)
        # The refused attempt's increment was rolled back with its transaction.
        assert committed_state(observer, session_uuid) == (CODE, 3, False, 0)

    def test_an_expired_code_is_refused_and_the_attempt_rolled_back(
        self,
        verification: VerificationService,
        clock: Clock,
        observer: psycopg2.extensions.connection,
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        clock.now += timedelta(minutes=10)
        with pytest.raises(CodeExpired):
            verification.verify(session_uuid, CODE)
        assert committed_state(observer, session_uuid) == (CODE, 0, False, 0)

    def test_without_a_pending_code_raises_no_code_issued(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        with pytest.raises(NoCodeIssued):
            verification.verify(session_uuid, CODE)
        assert committed_state(observer, session_uuid) == (None, 0, False, 0)

    def test_a_verified_email_raises_already_verified(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        verification.verify(session_uuid, CODE)
        with pytest.raises(AlreadyVerified):
            verification.verify(session_uuid, CODE)
        assert committed_state(observer, session_uuid) == (None, 1, True, 0)

    @pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", 123456, None])
    def test_a_malformed_code_is_refused_before_any_attempt_is_counted(
        self,
        verification: VerificationService,
        observer: psycopg2.extensions.connection,
        code: object,
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        with pytest.raises(InvalidInput, match="code"):
            verification.verify(session_uuid, code)
        assert committed_state(observer, session_uuid) == (CODE, 0, False, 0)

    def test_of_a_missing_session_raises_session_not_found(
        self, verification: VerificationService
    ) -> None:
        with pytest.raises(SessionNotFound):
            verification.verify(str(uuid.uuid4()), CODE)


class TestConcurrentVerify:
    def test_concurrent_checks_never_count_more_attempts_than_allowed(
        self,
        committed_layer: Layer,
        mode: str,
        verification: VerificationService,
        observer: psycopg2.extensions.connection,
    ) -> None:
        """Six wrong codes at once against three allowed: three answers, three refusals.

        In the compared modes the comparison itself may report a mismatch here
        (a false one, not raised): the facade runs a write's candidate in a
        savepoint it rolls back, which releases the candidate's row lock, so a
        concurrent writer can commit between the candidate and the serving
        path. What the service promises holds on every path regardless.
        """
        route_everything(committed_layer, mode)
        committed_layer.runtime.raise_on_mismatch = False
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        start = threading.Barrier(6)

        def attempt() -> CheckResult | type[Exception]:
            start.wait(timeout=10)
            try:
                return verification.verify(session_uuid, WRONG)
            except TooManyAttempts:
                return TooManyAttempts

        with ThreadPoolExecutor(6) as pool:
            outcomes = [f.result(timeout=30) for f in [pool.submit(attempt) for _ in range(6)]]
        answered = sorted(o.attempts_remaining for o in outcomes if isinstance(o, CheckResult))
        assert answered == [0, 1, 2]
        assert outcomes.count(TooManyAttempts) == 3
        assert committed_state(observer, session_uuid) == (CODE, 3, False, 0)


@pytest.mark.usefixtures("routed_committed")
class TestResend:
    def test_issues_a_new_code_and_counts_the_resend(
        self,
        verification: VerificationService,
        sender: RecordingSender,
        observer: psycopg2.extensions.connection,
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        verification.verify(session_uuid, WRONG)
        issued = verification.resend(session_uuid)
        assert (issued.resend_attempts, issued.max_resend_attempts) == (1, 3)
        assert [code for _, _, code in sender.sent] == [CODE, "111111"]
        # The new code starts with every attempt available again.
        assert committed_state(observer, session_uuid) == ("111111", 0, False, 1)

    def test_refuses_beyond_the_limit_and_keeps_the_last_code(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        verification.set_code(session_uuid)
        for _ in range(3):
            verification.resend(session_uuid)
        with pytest.raises(ResendLimitReached):
            verification.resend(session_uuid)
        assert committed_state(observer, session_uuid) == ("333333", 0, False, 3)

    def test_without_a_pending_code_raises_no_code_issued(
        self, verification: VerificationService, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = insert_session(observer)
        with pytest.raises(NoCodeIssued):
            verification.resend(session_uuid)
        assert committed_state(observer, session_uuid) == (None, 0, False, 0)


def test_random_codes_are_six_digits() -> None:
    from services.email_verification import random_code

    make: Callable[[], str] = random_code
    codes = {make() for _ in range(50)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 1
