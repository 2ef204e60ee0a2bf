"""Parity cases for compat.user_sessions: each function's happy path and its edges."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone

import psycopg2.errors

from compat.errors import InvalidArgument
from compat.routing.arguments import MAX_HOURS
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

U1, U2, U3, U4 = (fixed_uuid(n) for n in (1, 2, 3, 4))
MISSING = fixed_uuid(999)
EARLY = datetime(2024, 1, 1, 9, 0)
MIDDLE = datetime(2024, 1, 2, 9, 0)
LATE = datetime(2024, 1, 3, 9, 0)
LONG_TEXT = "x" * 9_999 + "🦄"
"""Text columns declare no limit: a long value, ending in a character outside the BMP."""
EMOJI_NAME = "Zoë 🦄 李小龍 \u202eʇxǝʇ"
PLUS_TWO = timezone(timedelta(hours=2))


# Ties are inserted in descending uuid order: without the tie-breaker the rows
# come back in the order they were inserted, and the comparison sees it.
def _ties(db: Seed, created_at: datetime = MIDDLE, name: str = "Ada") -> None:
    for session_uuid in (U3, U2, U1):
        db.session(session_uuid, name=name, email="Ada@Example.com", created_at=created_at)


def _three_ages(db: Seed) -> None:
    db.session(U2, name="Grace", email="grace@example.com", created_at=MIDDLE)
    db.session(U1, name="Ada", email="ada@example.com", created_at=LATE)
    db.session(U3, name="Barbara", email=None, created_at=EARLY)


def _mixed_states(db: Seed) -> None:
    db.session(U1, created_at=EARLY, is_email_verified=True, completed_at=MIDDLE)
    db.session(U2, created_at=MIDDLE, is_email_verified=True)
    db.session(U3, created_at=LATE, completed_at=LATE)
    db.session(U4, created_at=LATE + timedelta(hours=1))


def _everything_set(db: Seed) -> Call:
    db.session(
        U1,
        name="Ada Lovelace",
        email="ada@example.com",
        created_at=EARLY,
        completed_at=LATE,
        ip_address="2001:db8::1",
        consent_user_data=True,
        verification_code="123456",
        verification_attempts=2,
        verification_expires_at=MIDDLE,
        is_email_verified=True,
        resend_attempts=1,
        last_resend_at=MIDDLE,
    )
    return call(U1)


def _nulls(db: Seed) -> Call:
    db.session(U1, email=None, consent_user_data=None, created_at=None)
    return call(U1)


def _with_uploads(db: Seed) -> Call:
    db.session(U1)
    db.session(U2)
    db.upload(U1)
    db.upload(U1, deleted_at=EARLY)
    db.upload(U2)
    return call(U1)


def _null_created_at_among_others(db: Seed) -> None:
    db.session(U2, name="Grace", email=None, created_at=None)
    db.session(U1, name="Ada", email="ada@example.com", created_at=EARLY)
    db.session(U3, name="Barbara", email="barbara@example.com", created_at=LATE)


def _list(**kwargs: object) -> Call:
    return Call((), kwargs)


_CHECK = "user_sessions.check_uuid_exists"
_GET = "user_sessions.get_session"
_INSERT = "user_sessions.insert_session"
_UPDATE = "user_sessions.update_session"
_COMPLETE = "user_sessions.complete_session"
_DELETE = "user_sessions.delete_session"
_COUNT = "user_sessions.count_sessions"
_UUIDS = "user_sessions.list_session_uuids"
_FIND = "user_sessions.find_sessions_by_email"
_LIST = "user_sessions.list_sessions"
_ABANDONED = "user_sessions.delete_abandoned_sessions"


def _rename_before_others(db: Seed) -> Call:
    """Rename U1 while U2 and U3, which sort after it, sit beside it untouched."""
    db.session(U2)
    db.session(U3)
    return call(db.session(U1), {"name": "Ada King"})


CASES: list[Case] = [
    # check_uuid_exists
    case(
        _CHECK, "existing-session", {T.HAPPY}, lambda db: call(db.session()), expect=returns(True)
    ),
    case(_CHECK, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(False)),
    case(
        _CHECK,
        "uuid-in-capitals",
        {T.ALTERNATE_FORM},
        lambda db: call(db.session().upper()),
        expect=returns(True),
    ),
    case(
        _CHECK,
        "uuid-in-braces-without-hyphens",
        {T.ALTERNATE_FORM},
        lambda db: call("{" + db.session().replace("-", "") + "}"),
        expect=returns(True),
    ),
    case(
        _CHECK,
        "malformed-uuid",
        {T.BAD_INPUT},
        lambda db: call("not-a-uuid"),
        raises=InvalidArgument,
    ),
    case(
        _CHECK,
        "uuid-object-not-str",
        {T.BAD_INPUT},
        lambda db: call(uuid.UUID(db.session())),
        raises=InvalidArgument,
    ),
    # get_session
    case(_GET, "every-column-set", {T.HAPPY}, _everything_set, expect=row_of(U1)),
    case(
        _GET,
        "defaults-of-a-fresh-row",
        {T.HAPPY},
        lambda db: call(db.session(U1)),
        expect=row_of(U1),
    ),
    case(_GET, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(None)),
    case(_GET, "null-columns", {T.NULL}, _nulls, expect=row_of(U1)),
    case(
        _GET,
        "unicode-and-emoji",
        {T.UNICODE},
        lambda db: call(db.session(U1, name=EMOJI_NAME, email="zoë@例え.jp")),
        expect=row_of(U1),
    ),
    case(
        _GET,
        "longest-name-and-code",
        {T.LONGEST},
        lambda db: call(db.session(U1, name=LONG_TEXT, verification_code="999999")),
        expect=row_of(U1),
    ),
    case(
        _GET,
        "uuid-in-capitals",
        {T.ALTERNATE_FORM},
        lambda db: call(db.session(U1).upper()),
        expect=row_of(U1),
    ),
    case(_GET, "malformed-uuid", {T.BAD_INPUT}, lambda db: call("123"), raises=InvalidArgument),
    case(
        _GET, "none-for-uuid", {T.BAD_INPUT, T.NULL}, lambda db: call(None), raises=InvalidArgument
    ),
    # insert_session
    case(
        _INSERT,
        "every-argument",
        {T.HAPPY},
        lambda db: call(U1, "Grace Hopper", "grace@example.com", "10.0.0.1", True),
        expect=row_of(U1),
    ),
    case(
        _INSERT,
        "defaults-for-optional-arguments",
        {T.HAPPY},
        lambda db: call(U1, "Grace Hopper", "grace@example.com"),
        expect=row_of(U1),
    ),
    case(
        _INSERT,
        "keyword-arguments",
        {T.HAPPY},
        lambda db: call(
            session_uuid=U1, name="Grace", email=None, consent_user_data=True, ip_address="::1"
        ),
        expect=row_of(U1),
    ),
    case(_INSERT, "null-email", {T.NULL}, lambda db: call(U1, "Grace", None), expect=row_of(U1)),
    case(
        _INSERT,
        "unicode-and-emoji",
        {T.UNICODE},
        lambda db: call(U1, EMOJI_NAME, "zoë@例え.jp", "fe80::1%eth0"),
        expect=row_of(U1),
    ),
    case(
        _INSERT,
        "longest-name",
        {T.LONGEST},
        lambda db: call(U1, LONG_TEXT, LONG_TEXT),
        expect=row_of(U1),
    ),
    case(_INSERT, "empty-name", {T.BOUNDARY}, lambda db: call(U1, "", ""), expect=row_of(U1)),
    case(
        _INSERT,
        "uuid-in-capitals-is-stored-lower-case",
        {T.ALTERNATE_FORM},
        lambda db: call(U1.upper(), "Grace", None),
        expect=row_of(U1),
    ),
    case(
        _INSERT,
        "duplicate-uuid",
        {T.CONSTRAINT},
        lambda db: call(db.session(U1), "Grace", None),
        raises=psycopg2.errors.UniqueViolation,
        sqlstate="23505",
    ),
    case(
        _INSERT,
        "duplicate-uuid-spelled-otherwise",
        {T.CONSTRAINT, T.ALTERNATE_FORM},
        lambda db: call(db.session(U1).upper().replace("-", ""), "Grace", None),
        raises=psycopg2.errors.UniqueViolation,
        sqlstate="23505",
    ),
    case(
        _INSERT,
        "none-for-name",
        {T.BAD_INPUT},
        lambda db: call(U1, None, None),
        raises=InvalidArgument,
    ),
    case(
        _INSERT,
        "nul-character-in-name",
        {T.BAD_INPUT},
        lambda db: call(U1, "Ada\x00", None),
        raises=InvalidArgument,
    ),
    case(
        _INSERT,
        "lone-surrogate-in-name",
        {T.BAD_INPUT, T.UNICODE},
        lambda db: call(U1, "Ada \ud83e", None),
        raises=InvalidArgument,
    ),
    case(
        _INSERT,
        "int-for-consent",
        {T.BAD_INPUT},
        lambda db: call(U1, "Ada", None, None, 1),
        raises=InvalidArgument,
    ),
    case(
        _INSERT,
        "missing-required-argument",
        {T.BAD_INPUT},
        lambda db: call(U1, "Ada"),
        raises=TypeError,
    ),
    # update_session
    case(
        _UPDATE,
        "name-and-email",
        {T.HAPPY},
        lambda db: call(db.session(U1), {"name": "Ada King", "email": "ada.king@example.com"}),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "every-updatable-field",
        {T.HAPPY},
        lambda db: call(
            db.session(U1),
            {
                "name": "Ada King",
                "email": "ada@example.org",
                "ip_address": "192.0.2.7",
                "consent_user_data": True,
                "completed_at": LATE,
            },
        ),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "sessions-after-it-are-left-alone",
        {T.HAPPY, T.BOUNDARY},
        _rename_before_others,
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "missing-session",
        {T.MISSING},
        lambda db: call(MISSING, {"name": "Nobody"}),
        expect=returns(None),
    ),
    case(
        _UPDATE,
        "empty-data-touches-only-updated-at",
        {T.EMPTY, T.BOUNDARY},
        lambda db: call(db.session(U1, created_at=EARLY), {}),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "set-columns-to-null",
        {T.NULL},
        lambda db: call(
            db.session(U1, completed_at=LATE, consent_user_data=True),
            {"email": None, "ip_address": None, "consent_user_data": None, "completed_at": None},
        ),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "unicode-and-emoji",
        {T.UNICODE},
        lambda db: call(db.session(U1), {"name": EMOJI_NAME, "email": "zoë@例え.jp"}),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "longest-name",
        {T.LONGEST},
        lambda db: call(db.session(U1), {"name": LONG_TEXT}),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "aware-completed-at-is-stored-in-utc",
        {T.ALTERNATE_FORM},
        lambda db: call(
            db.session(U1), {"completed_at": datetime(2024, 5, 1, 14, 0, tzinfo=PLUS_TWO)}
        ),
        expect=row_of(U1),
    ),
    case(
        _UPDATE,
        "key-that-is-not-updatable",
        {T.BAD_INPUT},
        lambda db: call(db.session(U1), {"created_at": EARLY}),
        raises=InvalidArgument,
    ),
    case(
        _UPDATE,
        "none-for-name",
        {T.BAD_INPUT, T.NULL},
        lambda db: call(db.session(U1), {"name": None}),
        raises=InvalidArgument,
    ),
    case(
        _UPDATE,
        "data-that-is-not-a-mapping",
        {T.BAD_INPUT},
        lambda db: call(db.session(U1), [("name", "Ada")]),
        raises=InvalidArgument,
    ),
    # complete_session
    case(
        _COMPLETE, "open-session", {T.HAPPY}, lambda db: call(db.session(U1)), expect=returns(True)
    ),
    case(
        _COMPLETE,
        "already-completed",
        {T.REPEATED},
        lambda db: call(db.session(U1, completed_at=EARLY)),
        expect=returns(False),
    ),
    case(
        _COMPLETE, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(False)
    ),
    case(
        _COMPLETE,
        "uuid-in-capitals",
        {T.ALTERNATE_FORM},
        lambda db: call(db.session(U1).upper()),
        expect=returns(True),
    ),
    case(_COMPLETE, "malformed-uuid", {T.BAD_INPUT}, lambda db: call(""), raises=InvalidArgument),
    # delete_session
    case(
        _DELETE,
        "session-and-its-uploads",
        {T.HAPPY},
        _with_uploads,
        expect=returns(True),
    ),
    case(
        _DELETE,
        "session-without-uploads",
        {T.HAPPY, T.EMPTY},
        lambda db: call(db.session(U1)),
        expect=returns(True),
    ),
    case(_DELETE, "missing-session", {T.MISSING}, lambda db: call(MISSING), expect=returns(False)),
    case(_DELETE, "malformed-uuid", {T.BAD_INPUT}, lambda db: call("🦄"), raises=InvalidArgument),
    # count_sessions
    case(_COUNT, "three-sessions", {T.HAPPY}, after(_three_ages, call()), expect=returns(3)),
    case(_COUNT, "empty-table", {T.EMPTY}, lambda db: call(), expect=returns(0)),
    case(_COUNT, "an-argument", {T.BAD_INPUT}, lambda db: call(1), raises=TypeError),
    # list_session_uuids
    case(
        _UUIDS,
        "three-sessions",
        {T.HAPPY},
        after(_three_ages, call()),
        expect=returns({U1, U2, U3}),
    ),
    case(_UUIDS, "empty-table", {T.EMPTY}, lambda db: call(), expect=returns(set())),
    case(_UUIDS, "an-argument", {T.BAD_INPUT}, lambda db: call(limit=1), raises=TypeError),
    # find_sessions_by_email
    case(
        _FIND,
        "case-insensitive-oldest-first",
        {T.HAPPY},
        after(
            lambda db: (
                db.session(U1, email="ADA@example.com", created_at=LATE),
                db.session(U2, email="ada@EXAMPLE.com", created_at=EARLY),
                db.session(U3, email="grace@example.com", created_at=MIDDLE),
            ),
            call("Ada@Example.COM"),
        ),
        expect=rows_of(U2, U1),
    ),
    case(
        _FIND,
        "ties-by-uuid",
        {T.TIES},
        after(_ties, call("ada@example.com")),
        expect=rows_of(U1, U2, U3),
    ),
    case(
        _FIND,
        "null-created-at-sorts-last",
        {T.NULL},
        after(
            lambda db: (
                db.session(U1, email="ada@example.com", created_at=None),
                db.session(U2, email="ada@example.com", created_at=LATE),
            ),
            call("ada@example.com"),
        ),
        expect=rows_of(U2, U1),
    ),
    case(
        _FIND,
        "no-match",
        {T.NO_MATCH},
        after(_three_ages, call("nobody@example.com")),
        expect=returns([]),
    ),
    case(
        _FIND,
        "none-matches-no-null-email",
        {T.NULL, T.NO_MATCH},
        after(_three_ages, call(None)),
        expect=returns([]),
    ),
    case(
        _FIND,
        "empty-string",
        {T.EMPTY, T.BOUNDARY},
        after(lambda db: (db.session(U1, email=""), db.session(U2, email=None)), call("")),
        expect=rows_of(U1),
    ),
    case(
        _FIND,
        "unicode-and-emoji",
        {T.UNICODE},
        after(
            lambda db: (
                db.session(U1, email="zoë.🦄@例え.jp", created_at=EARLY),
                db.session(U2, email="ZOË.🦄@例え.JP", created_at=LATE),
            ),
            call("Zoë.🦄@例え.jp"),
        ),
        expect=rows_of(U1, U2),
    ),
    case(_FIND, "int-for-email", {T.BAD_INPUT}, lambda db: call(42), raises=InvalidArgument),
    # list_sessions
    case(
        _LIST,
        "newest-first-by-default",
        {T.HAPPY},
        after(_three_ages, _list()),
        expect=rows_of(U1, U2, U3),
    ),
    case(
        _LIST,
        "by-name",
        {T.HAPPY},
        after(_three_ages, _list(order="name")),
        expect=rows_of(U1, U3, U2),
    ),
    case(
        _LIST,
        "by-email-descending-nulls-last",
        {T.HAPPY, T.NULL},
        after(_three_ages, _list(order="-email")),
        expect=rows_of(U2, U1, U3),
    ),
    case(
        _LIST,
        "by-email-ascending-nulls-last",
        {T.NULL},
        after(_three_ages, _list(order="email")),
        expect=rows_of(U1, U2, U3),
    ),
    case(
        _LIST,
        "null-created-at-last-newest-first",
        {T.NULL},
        after(_null_created_at_among_others, _list(order="-created_at")),
        expect=rows_of(U3, U1, U2),
    ),
    case(
        _LIST,
        "null-created-at-last-oldest-first",
        {T.NULL},
        after(_null_created_at_among_others, _list(order="created_at")),
        expect=rows_of(U1, U3, U2),
    ),
    case(
        _LIST,
        "ties-by-uuid",
        {T.TIES},
        after(_ties, _list()),
        expect=rows_of(U1, U2, U3),
    ),
    case(
        _LIST,
        "ties-by-uuid-oldest-first",
        {T.TIES},
        after(_ties, _list(order="created_at")),
        expect=rows_of(U1, U2, U3),
    ),
    case(
        _LIST,
        "ties-by-uuid-on-name-descending",
        {T.TIES},
        after(_ties, _list(order="-name")),
        expect=rows_of(U1, U2, U3),
    ),
    case(
        _LIST,
        "ties-by-uuid-across-pages",
        {T.TIES},
        after(_ties, _list(limit=2, offset=1)),
        expect=rows_of(U2, U3),
    ),
    case(
        _LIST,
        "second-page",
        {T.HAPPY},
        after(_mixed_states, _list(limit=2, offset=2, order="created_at")),
        expect=rows_of(U3, U4),
    ),
    case(
        _LIST,
        "page-past-the-end",
        {T.PAST_END},
        after(_three_ages, _list(limit=2, offset=3)),
        expect=returns([]),
    ),
    case(
        _LIST,
        "last-partial-page",
        {T.PAST_END},
        after(_three_ages, _list(limit=2, offset=2)),
        expect=has_length(1),
    ),
    case(
        _LIST,
        "limit-zero",
        {T.EMPTY, T.BOUNDARY},
        after(_three_ages, _list(limit=0)),
        expect=returns([]),
    ),
    case(_LIST, "empty-table", {T.EMPTY}, lambda db: _list(), expect=returns([])),
    case(
        _LIST,
        "verified-and-not-completed",
        {T.HAPPY},
        after(_mixed_states, _list(verified=True, completed=False)),
        expect=rows_of(U2),
    ),
    case(
        _LIST,
        "unverified-and-completed",
        {T.HAPPY},
        after(_mixed_states, _list(verified=False, completed=True)),
        expect=rows_of(U3),
    ),
    case(
        _LIST,
        "created-window-includes-after-and-excludes-before",
        {T.BOUNDARY},
        after(_mixed_states, _list(created_after=MIDDLE, created_before=LATE)),
        expect=rows_of(U2),
    ),
    case(
        _LIST,
        "aware-window-bounds-are-compared-in-utc",
        {T.ALTERNATE_FORM},
        after(
            _mixed_states,
            _list(
                created_after=MIDDLE.replace(hour=11, tzinfo=PLUS_TWO),
                created_before=LATE.replace(hour=11, tzinfo=PLUS_TWO),
            ),
        ),
        expect=rows_of(U2),
    ),
    case(
        _LIST,
        "filters-that-match-nothing",
        {T.NO_MATCH},
        after(_mixed_states, _list(verified=True, completed=True, created_after=LATE)),
        expect=returns([]),
    ),
    case(
        _LIST,
        "every-filter-none",
        {T.NULL},
        after(
            _mixed_states,
            _list(verified=None, completed=None, created_after=None, created_before=None),
        ),
        expect=has_length(4),
    ),
    case(
        _LIST,
        "unicode-names-by-name",
        {T.UNICODE},
        after(
            lambda db: (
                db.session(U1, name="Émile"),
                db.session(U2, name="emile"),
                db.session(U3, name="🦄"),
                db.session(U4, name="李"),
            ),
            _list(order="name"),
        ),
        expect=has_length(4),
    ),
    case(
        _LIST,
        "unknown-order",
        {T.BAD_INPUT},
        lambda db: _list(order="uuid"),
        raises=InvalidArgument,
    ),
    case(
        _LIST,
        "negative-limit",
        {T.BAD_INPUT},
        lambda db: _list(limit=-1),
        raises=InvalidArgument,
    ),
    case(
        _LIST,
        "bool-for-offset",
        {T.BAD_INPUT},
        lambda db: _list(offset=True),
        raises=InvalidArgument,
    ),
    case(
        _LIST,
        "date-string-for-created-after",
        {T.BAD_INPUT},
        lambda db: _list(created_after="2024-01-01"),
        raises=InvalidArgument,
    ),
    case(_LIST, "positional-argument", {T.BAD_INPUT}, lambda db: call(10), raises=TypeError),
    # delete_abandoned_sessions
    case(
        _ABANDONED,
        "old-and-open-only",
        {T.HAPPY},
        after(
            lambda db: (
                db.session(U1, created_at=EARLY),
                db.session(U2, created_at=EARLY, completed_at=MIDDLE),
                db.session(U3, raw_created_at="CURRENT_TIMESTAMP"),
                db.upload(U1),
            ),
            call(24),
        ),
        expect=returns(1),
    ),
    case(
        _ABANDONED,
        "exactly-on-the-cutoff-is-kept",
        {T.BOUNDARY},
        after(
            lambda db: db.session(U1, raw_created_at="CURRENT_TIMESTAMP - INTERVAL '24 hours'"),
            call(24),
        ),
        expect=returns(0),
    ),
    case(
        _ABANDONED,
        "just-before-the-cutoff-is-deleted",
        {T.BOUNDARY},
        after(
            lambda db: db.session(
                U1, raw_created_at="CURRENT_TIMESTAMP - INTERVAL '24 hours 1 microsecond'"
            ),
            call(24),
        ),
        expect=returns(1),
    ),
    case(
        _ABANDONED,
        "fractional-hours",
        {T.BOUNDARY},
        after(
            lambda db: (
                db.session(U1, raw_created_at="CURRENT_TIMESTAMP - INTERVAL '100 minutes'"),
                db.session(U2, raw_created_at="CURRENT_TIMESTAMP - INTERVAL '80 minutes'"),
            ),
            call(1.5),
        ),
        expect=returns(1),
    ),
    case(
        _ABANDONED,
        "zero-hours-spares-this-transaction",
        {T.BOUNDARY},
        after(
            lambda db: (
                db.session(U1, raw_created_at="CURRENT_TIMESTAMP"),
                db.session(U2, created_at=EARLY),
            ),
            call(0),
        ),
        expect=returns(1),
    ),
    case(
        _ABANDONED,
        "null-created-at-is-kept",
        {T.NULL},
        after(lambda db: db.session(U1, created_at=None), call(0)),
        expect=returns(0),
    ),
    case(
        _ABANDONED,
        "nothing-old-enough",
        {T.NO_MATCH},
        after(_three_ages, call(MAX_HOURS)),
        expect=returns(0),
    ),
    case(_ABANDONED, "empty-table", {T.EMPTY}, lambda db: call(24), expect=returns(0)),
    case(_ABANDONED, "negative-hours", {T.BAD_INPUT}, lambda db: call(-1), raises=InvalidArgument),
    case(
        _ABANDONED,
        "nan-hours",
        {T.BAD_INPUT},
        lambda db: call(math.nan),
        raises=InvalidArgument,
    ),
    case(
        _ABANDONED,
        "more-hours-than-timestamps-reach",
        {T.BAD_INPUT, T.LONGEST},
        lambda db: call(MAX_HOURS + 1),
        raises=InvalidArgument,
    ),
    case(
        _ABANDONED, "bool-for-hours", {T.BAD_INPUT}, lambda db: call(True), raises=InvalidArgument
    ),
]
