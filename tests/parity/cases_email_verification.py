"""Parity cases for compat.email_verification: each function's happy path and its edges."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from compat.errors import InvalidArgument
from compat.routing.arguments import MAX_HOURS
from tests.parity.case import Call, Case, Seed, after, call, case, fixed_uuid, returns, row_of
from tests.parity.case import Tag as T

__all__ = ["CASES"]

U1, U2, U3, U4 = (fixed_uuid(n) for n in (1, 2, 3, 4))
MISSING = fixed_uuid(999)
EXPIRED = datetime(2024, 1, 1, 9, 0)
FUTURE = datetime(2099, 12, 31, 23, 59, 59, 999999)
PLUS_TWO = timezone(timedelta(hours=2))

_GET = "email_verification.get_verification"
_SET = "email_verification.set_verification_code"
_ATTEMPT = "email_verification.increment_verification_attempts"
_RESEND = "email_verification.increment_resend_attempts"
_VERIFIED = "email_verification.mark_email_verified"
_RESET = "email_verification.reset_verification"
_CLEANUP = "email_verification.cleanup_expired_verifications"


def _pending(db: Seed) -> Call:
    """A session with a code sent twice and tried twice: every verification column set."""
    return call(
        db.session(
            U1,
            verification_code="123456",
            verification_attempts=2,
            verification_expires_at=FUTURE,
            resend_attempts=2,
            last_resend_at=EXPIRED,
        )
    )


def _verified(db: Seed) -> Call:
    return call(db.session(U1, is_email_verified=True, verification_attempts=1))


def _at_the_maximum(db: Seed) -> Call:
    """Counters already at their maximum (3): the functions count on, as legacy did."""
    return call(db.session(U1, verification_attempts=3, resend_attempts=3))


def _expiries(db: Seed) -> None:
    db.session(U1, verification_code="111111", verification_expires_at=EXPIRED)
    db.session(
        U2, verification_code="222222", verification_expires_at=EXPIRED, is_email_verified=True
    )
    db.session(U3, verification_code="333333", verification_expires_at=FUTURE)
    db.session(U4, verification_code="444444")


def _at_the_cutoff(db: Seed) -> None:
    db.session(U1, verification_code="111111")
    db.session(U2, verification_code="222222")
    with db.conn.cursor() as cur:
        cur.execute(
            "UPDATE user_sessions SET verification_expires_at = CASE uuid "
            "WHEN %s THEN CURRENT_TIMESTAMP - INTERVAL '24 hours' "
            "ELSE CURRENT_TIMESTAMP - INTERVAL '24 hours 1 microsecond' END",
            (U1,),
        )


def _one_write_per_function(key: str) -> list[Case]:
    """The cases every single-session write shares: a session, a missing one, bad uuids."""
    return [
        case(
            key, "fresh-session", {T.HAPPY}, lambda db: call(db.session(U1)), expect=returns(True)
        ),
        case(key, "pending-verification", {T.HAPPY}, _pending, expect=returns(True)),
        case(key, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(False)),
        case(
            key,
            "uuid-in-capitals",
            {T.ALTERNATE_FORM},
            lambda db: call(db.session(U1).upper()),
            expect=returns(True),
        ),
        case(key, "malformed-uuid", {T.BAD_INPUT}, lambda db: call("U1"), raises=InvalidArgument),
        case(
            key,
            "none-for-uuid",
            {T.BAD_INPUT, T.NULL},
            lambda db: call(None),
            raises=InvalidArgument,
        ),
    ]


CASES: list[Case] = [
    # get_verification
    case(_GET, "pending-verification", {T.HAPPY}, _pending, expect=row_of(U1)),
    case(_GET, "verified", {T.HAPPY}, _verified, expect=row_of(U1)),
    case(
        _GET,
        "null-verification-columns",
        {T.NULL},
        lambda db: call(db.session(U1, email=None)),
        expect=row_of(U1),
    ),
    case(_GET, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(None)),
    case(
        _GET,
        "unicode-email",
        {T.UNICODE},
        lambda db: call(db.session(U1, email="🦄@例え.jp")),
        expect=row_of(U1),
    ),
    case(
        _GET,
        "uuid-in-capitals",
        {T.ALTERNATE_FORM},
        lambda db: call(db.session(U1).upper()),
        expect=row_of(U1),
    ),
    case(_GET, "malformed-uuid", {T.BAD_INPUT}, lambda db: call("{}"), raises=InvalidArgument),
    # set_verification_code
    case(
        _SET,
        "fresh-session",
        {T.HAPPY},
        lambda db: call(db.session(U1), "123456", FUTURE),
        expect=returns(True),
    ),
    case(
        _SET,
        "resets-attempts-and-verified-flag",
        {T.HAPPY},
        lambda db: call(_verified(db).args[0], "654321", FUTURE),
        expect=returns(True),
    ),
    case(
        _SET,
        "missing-session",
        {T.MISSING},
        lambda db: call(MISSING, "123456", FUTURE),
        expect=returns(False),
    ),
    case(
        _SET,
        "longest-code",
        {T.LONGEST},
        lambda db: call(db.session(U1), "999999", FUTURE),
        expect=returns(True),
    ),
    case(
        _SET,
        "six-emoji-fill-the-column",
        {T.LONGEST, T.UNICODE},
        lambda db: call(db.session(U1), "🦄" * 6, FUTURE),
        expect=returns(True),
    ),
    case(
        _SET,
        "empty-code",
        {T.EMPTY, T.BOUNDARY},
        lambda db: call(db.session(U1), "", FUTURE),
        expect=returns(True),
    ),
    case(
        _SET,
        "unicode-code",
        {T.UNICODE},
        lambda db: call(db.session(U1), "🦄١٢٣٤٥", FUTURE),
        expect=returns(True),
    ),
    case(
        _SET,
        "aware-expiry-is-stored-in-utc",
        {T.ALTERNATE_FORM},
        lambda db: call(db.session(U1), "123456", datetime(2030, 6, 1, 12, 0, tzinfo=PLUS_TWO)),
        expect=returns(True),
    ),
    case(
        _SET,
        "expiry-in-the-past",
        {T.BOUNDARY},
        lambda db: call(db.session(U1), "123456", EXPIRED),
        expect=returns(True),
    ),
    case(
        _SET,
        "code-longer-than-the-column",
        {T.BAD_INPUT, T.LONGEST},
        lambda db: call(db.session(U1), "1234567", FUTURE),
        raises=InvalidArgument,
    ),
    case(
        _SET,
        "none-for-expiry",
        {T.BAD_INPUT, T.NULL},
        lambda db: call(db.session(U1), "123456", None),
        raises=InvalidArgument,
    ),
    case(
        _SET,
        "int-for-code",
        {T.BAD_INPUT},
        lambda db: call(db.session(U1), 123456, FUTURE),
        raises=InvalidArgument,
    ),
    # increment_verification_attempts
    *_one_write_per_function(_ATTEMPT),
    case(
        _ATTEMPT,
        "beyond-the-maximum",
        {T.BOUNDARY},
        _at_the_maximum,
        expect=returns(True),
    ),
    # increment_resend_attempts
    *_one_write_per_function(_RESEND),
    case(
        _RESEND,
        "beyond-the-maximum",
        {T.BOUNDARY},
        _at_the_maximum,
        expect=returns(True),
    ),
    # mark_email_verified
    *_one_write_per_function(_VERIFIED),
    case(_VERIFIED, "already-verified", {T.REPEATED}, _verified, expect=returns(True)),
    # reset_verification
    *_one_write_per_function(_RESET),
    case(
        _RESET,
        "nothing-to-reset",
        {T.NULL, T.REPEATED},
        lambda db: call(db.session(U1)),
        expect=returns(True),
    ),
    case(_RESET, "verified-session", {T.HAPPY}, _verified, expect=returns(True)),
    # cleanup_expired_verifications
    case(
        _CLEANUP,
        "expired-and-unverified-only",
        {T.HAPPY, T.NULL},
        after(_expiries, call(24)),
        expect=returns(1),
    ),
    case(
        _CLEANUP,
        "default-hours",
        {T.HAPPY},
        after(_expiries, call()),
        expect=returns(1),
    ),
    case(
        _CLEANUP,
        "exactly-on-the-cutoff-is-kept",
        {T.BOUNDARY},
        after(_at_the_cutoff, call(24)),
        expect=returns(1),
    ),
    case(
        _CLEANUP,
        "zero-hours",
        {T.BOUNDARY},
        after(_at_the_cutoff, call(0)),
        expect=returns(2),
    ),
    case(
        _CLEANUP,
        "fractional-hours",
        {T.BOUNDARY},
        after(_at_the_cutoff, call(23.5)),
        expect=returns(2),
    ),
    case(
        _CLEANUP,
        "nothing-expired-long-enough",
        {T.NO_MATCH, T.LONGEST},
        after(_expiries, call(MAX_HOURS)),
        expect=returns(0),
    ),
    case(_CLEANUP, "empty-table", {T.EMPTY}, lambda db: call(24), expect=returns(0)),
    case(_CLEANUP, "negative-hours", {T.BAD_INPUT}, lambda db: call(-0.5), raises=InvalidArgument),
    case(_CLEANUP, "hours-as-text", {T.BAD_INPUT}, lambda db: call("24"), raises=InvalidArgument),
    case(
        _CLEANUP,
        "infinite-hours",
        {T.BAD_INPUT},
        lambda db: call(float("inf")),
        raises=InvalidArgument,
    ),
]
