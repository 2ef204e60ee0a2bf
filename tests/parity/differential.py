"""Parity suite: a Hypothesis state machine driving both paths in lockstep, one database each.

Every step makes one facade call on the legacy path in one database and on
the ORM path in its twin, and compares the two outcomes type-strictly (a
value, or an error's class and SQLSTATE); after every step the two databases'
tables are compared too. Each example runs in one transaction per database,
rolled back at its end; each step in a savepoint, so a database error undoes
that step alone and the sequence goes on.

The twins start each example from the same state, with the id sequence
restarted, so ids agree without being ignored. Their transactions start at
different instants, though: CURRENT_TIMESTAMP (what every write stamps) is
compared as "this database's transaction time", never as a raw value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Final

import sqlalchemy as sa
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from compat.routing.arguments import BIGINT_MAX, MAX_HOURS
from compat.routing.declaration import REGISTRY, FacadeFunction
from compat.routing.sides import run_side
from compat.routing.unit_of_work import UnitOfWork, unwrap
from compat.shadow.compare import compare, render
from compat.shadow.observation import Outcome, Side, differences
from compat.verify.parity import Comparison
from legacy.db import lend_connection
from legacy.user_sessions import ORDERS
from tests.parity.catalog import REFUSED_ERRORS
from tests.parity.tables import read_tables

__all__ = ["TRANSACTION_TIME", "DifferentialMachine", "Twins", "normalized"]


@dataclass(frozen=True, slots=True)
class Twins:
    """The two databases, cloned from one template: one for each path."""

    legacy: sa.Engine
    orm: sa.Engine


class _TransactionTime:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<CURRENT_TIMESTAMP>"


TRANSACTION_TIME: Final = _TransactionTime()
"""Stands in for a timestamp equal to its own database's transaction time."""


def normalized(value: Any, now: datetime) -> Any:
    """``value`` with every naive datetime equal to ``now`` replaced by TRANSACTION_TIME."""
    if type(value) is datetime and value.tzinfo is None and value == now:
        return TRANSACTION_TIME
    if isinstance(value, Mapping):
        return {key: normalized(item, now) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item, now) for item in value]
    return value


class _Side:
    """One path, its database, and the transaction an example runs in."""

    def __init__(self, path: Side, engine: sa.Engine) -> None:
        self.path = path
        self.connection = engine.connect()
        self.transaction = self.connection.begin()
        self.unit = UnitOfWork(self.connection)
        # nextval is not transactional: the twins hand out the same ids only
        # if each example starts their sequences from the same value.
        self.connection.exec_driver_sql("SELECT setval('uploaded_files_id_seq', 1, false)")
        self.now: datetime = self.connection.exec_driver_sql("SELECT LOCALTIMESTAMP").scalar_one()

    def run(
        self, spec: FacadeFunction, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Outcome:
        """Make the call in a savepoint, released on success and rolled back on an error."""
        try:
            with self.unit.savepoint():
                if self.path is Side.LEGACY:
                    with lend_connection(self.unit.dbapi_connection):
                        value = run_side(spec, self.path, self.unit, args, kwargs)
                else:
                    value = run_side(spec, self.path, self.unit, args, kwargs)
        except Exception as error:
            return Outcome(self.path, error=unwrap(error))
        return Outcome(self.path, value=normalized(value, self.now))

    def tables(self) -> Any:
        return normalized(read_tables(self.connection), self.now)

    def close(self) -> None:
        try:
            self.transaction.rollback()
        finally:
            self.connection.close()


# What the steps are made of. Text never holds NUL (the facade refuses it
# before any SQL, on both paths alike, which would make a dull step).
_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_NAMES = st.one_of(
    st.sampled_from(["Ada", "ada", "Grace", "Zoë", "🦄 Unicorn", "李小龍", ""]), _TEXT
)
_EMAILS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "ada@example.com",
            "ADA@Example.com",
            "grace@example.com",
            "zoë@例え.jp",
            "ZOË@例え.JP",
            "",
        ]
    ),
)
_IPS = st.one_of(st.none(), st.sampled_from(["10.0.0.1", "2001:db8::1"]))
# Moments far from the transactions' own time, so that no comparison with
# CURRENT_TIMESTAMP can fall between the twins' two transaction times.
_MOMENTS = st.one_of(
    st.sampled_from([datetime(2001, 1, 1), datetime(2024, 1, 1, 9, 0), datetime(2099, 12, 31)]),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2020, 1, 1)),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2020, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
    ),
)
_HOURS = st.one_of(st.sampled_from([0, 1, 24, 1.5, 24 * 365 * 30]), st.integers(0, MAX_HOURS))
_UPDATES = st.fixed_dictionaries(
    {},
    optional={
        "name": _NAMES,
        "email": _EMAILS,
        "ip_address": _IPS,
        "consent_user_data": st.one_of(st.none(), st.booleans()),
        "completed_at": st.one_of(st.none(), _MOMENTS),
    },
)
_PAGES = st.fixed_dictionaries(
    {},
    optional={
        "limit": st.integers(0, 6),
        "offset": st.integers(0, 8),
        "verified": st.one_of(st.none(), st.booleans()),
        "completed": st.one_of(st.none(), st.booleans()),
        "created_after": st.one_of(st.none(), _MOMENTS),
        "created_before": st.one_of(st.none(), _MOMENTS),
        "order": st.sampled_from(sorted(ORDERS)),
    },
)
_CODES = st.one_of(st.text("0123456789", max_size=6), st.sampled_from(["", "🦄١٢٣"]))
_STORAGE_KEYS = st.one_of(st.sampled_from(["uploads/a.txt", "uploads/b.pdf", "🦄.png"]), _TEXT)
_SIZES = st.one_of(st.sampled_from([-1, 0, 1, 100, BIGINT_MAX]), st.integers(0, 10**9))
_CONTENT_TYPES = st.one_of(st.none(), st.sampled_from(["text/plain", "application/pdf", ""]))
_SHA256S = st.one_of(
    st.sampled_from(["a" * 64, "abc"]), st.text("0123456789abcdef", min_size=64, max_size=64)
)


class DifferentialMachine(RuleBasedStateMachine):
    """Random sequences of facade calls, each made on both paths; everything must agree."""

    sessions: Bundle[str] = Bundle("sessions")
    uploads: Bundle[int] = Bundle("uploads")
    twins: ClassVar[Twins | None] = None
    """The two databases; the test sets them (Hypothesis makes machines with no arguments)."""

    def __init__(self) -> None:
        super().__init__()
        twins = self.twins
        assert twins is not None, "set DifferentialMachine.twins before running the machine"
        self.steps = 0
        # How many values the bundles hold: a rule drawing from a bundle or
        # from elsewhere may run only once its bundle has something in it.
        self.sessions_drawn = 0
        self.uploads_drawn = 0
        self.legacy = _Side(Side.LEGACY, twins.legacy)
        try:
            self.orm = _Side(Side.ORM, twins.orm)
        except BaseException:
            self.legacy.close()
            raise

    def teardown(self) -> None:
        try:
            self.legacy.close()
        finally:
            self.orm.close()

    def both(self, key: str, *args: Any, **kwargs: Any) -> Outcome | None:
        """Make the call on each path; fail with a readable diff unless they agree.

        Returns the legacy outcome, or None when the facade refuses the
        arguments before any SQL (the same on both paths: it checks first).
        """
        self.steps += 1
        spec = REGISTRY[key]
        try:
            spec.validate(args, kwargs)
        except REFUSED_ERRORS:
            return None
        legacy = self.legacy.run(spec, args, kwargs)
        orm = self.orm.run(spec, args, kwargs)
        comparison = Comparison(
            key,
            legacy,
            orm,
            differences(legacy, orm),
            label=f"step {self.steps}",
            arguments=spec.arguments(args, kwargs),
        )
        assert comparison.matched, comparison.report(redacted=False)
        return legacy

    def has_sessions(self) -> bool:
        return self.sessions_drawn > 0

    def has_uploads(self) -> bool:
        return self.uploads_drawn > 0

    @invariant()
    def tables_match(self) -> None:
        found = compare(self.legacy.tables(), self.orm.tables())
        assert not found, f"the tables differ after step {self.steps}:\n{render(found, limit=20)}"

    @initialize(
        target=sessions,
        people=st.lists(
            st.tuples(st.uuids(version=4).map(str), _NAMES, _EMAILS),
            min_size=1,
            max_size=5,
            unique_by=lambda person: person[0],
        ),
        files=st.lists(st.tuples(st.integers(0, 4), _STORAGE_KEYS, _SIZES), max_size=4),
    )
    def start_with_sessions_and_uploads(
        self, people: list[tuple[str, str, str | None]], files: list[tuple[int, str, int]]
    ) -> Any:
        """Every sequence starts from a few sessions, some with uploads (made on both paths)."""
        for session_uuid, name, email in people:
            self.both("user_sessions.insert_session", session_uuid, name, email)
        for owner, storage_key, size_bytes in files:
            session_uuid = people[owner % len(people)][0]
            self.both(
                "uploads.record_upload",
                session_uuid,
                "file",
                storage_key,
                size_bytes,
                None,
                "a" * 64,
            )
        self.sessions_drawn += len(people)
        return multiple(*(session_uuid for session_uuid, _, _ in people))

    # user_sessions

    @rule(
        target=sessions,
        session_uuid=st.uuids(version=4).map(str),
        name=_NAMES,
        email=_EMAILS,
        ip_address=_IPS,
        consent=st.booleans(),
    )
    def insert_session(
        self, session_uuid: str, name: str, email: str | None, ip_address: str | None, consent: bool
    ) -> str:
        self.both("user_sessions.insert_session", session_uuid, name, email, ip_address, consent)
        self.sessions_drawn += 1
        return session_uuid

    @rule(session_uuid=sessions, name=_NAMES)
    def insert_duplicate_session(self, session_uuid: str, name: str) -> None:
        self.both("user_sessions.insert_session", session_uuid, name, None)

    @rule(session_uuid=sessions, data=_UPDATES)
    def update_session(self, session_uuid: str, data: dict[str, Any]) -> None:
        self.both("user_sessions.update_session", session_uuid, data)

    @rule(session_uuid=sessions)
    def complete_session(self, session_uuid: str) -> None:
        self.both("user_sessions.complete_session", session_uuid)

    @rule(session_uuid=sessions)
    def delete_session(self, session_uuid: str) -> None:
        self.both("user_sessions.delete_session", session_uuid)

    @precondition(has_sessions)
    @rule(session_uuid=st.one_of(sessions, st.uuids().map(str), st.just("not-a-uuid")))
    def read_session(self, session_uuid: str) -> None:
        self.both("user_sessions.check_uuid_exists", session_uuid)
        self.both("user_sessions.get_session", session_uuid)

    @rule()
    def count_and_list_uuids(self) -> None:
        self.both("user_sessions.count_sessions")
        self.both("user_sessions.list_session_uuids")

    @rule(email=_EMAILS)
    def find_sessions_by_email(self, email: str | None) -> None:
        self.both("user_sessions.find_sessions_by_email", email)

    @rule(page=_PAGES)
    def list_sessions(self, page: dict[str, Any]) -> None:
        self.both("user_sessions.list_sessions", **page)

    @rule(hours=_HOURS)
    def delete_abandoned_sessions(self, hours: float) -> None:
        self.both("user_sessions.delete_abandoned_sessions", hours)

    @rule(session_uuid=sessions, created_at=_MOMENTS)
    def backdate_session(self, session_uuid: str, created_at: datetime) -> None:
        """Arrange (the same plain SQL on both): give a session an older created_at."""
        for side in (self.legacy, self.orm):
            side.connection.execute(
                sa.text("UPDATE user_sessions SET created_at = :at WHERE uuid = :uuid"),
                {"at": created_at, "uuid": session_uuid},
            )

    # email_verification

    @rule(session_uuid=sessions, code=_CODES, expires_at=_MOMENTS)
    def set_verification_code(self, session_uuid: str, code: str, expires_at: datetime) -> None:
        self.both("email_verification.set_verification_code", session_uuid, code, expires_at)

    @rule(
        session_uuid=sessions,
        function=st.sampled_from(
            [
                "get_verification",
                "increment_verification_attempts",
                "increment_resend_attempts",
                "mark_email_verified",
                "reset_verification",
            ]
        ),
    )
    def verification_step(self, session_uuid: str, function: str) -> None:
        self.both(f"email_verification.{function}", session_uuid)

    @rule(hours=_HOURS)
    def cleanup_expired_verifications(self, hours: float) -> None:
        self.both("email_verification.cleanup_expired_verifications", hours)

    # uploads

    @precondition(has_sessions)
    @rule(
        target=uploads,
        session_uuid=st.one_of(sessions, st.uuids().map(str)),
        filename=_NAMES,
        storage_key=_STORAGE_KEYS,
        size_bytes=_SIZES,
        content_type=_CONTENT_TYPES,
        sha256=_SHA256S,
    )
    def record_upload(
        self,
        session_uuid: str,
        filename: str,
        storage_key: str,
        size_bytes: int,
        content_type: str | None,
        sha256: str,
    ) -> Any:
        outcome = self.both(
            "uploads.record_upload",
            session_uuid,
            filename,
            storage_key,
            size_bytes,
            content_type,
            sha256,
        )
        if outcome is None or outcome.error is not None:
            return multiple()
        self.uploads_drawn += 1
        return outcome.value["id"]

    @precondition(has_uploads)
    @rule(upload_id=st.one_of(uploads, st.integers(-1, 30)))
    def get_upload(self, upload_id: int) -> None:
        self.both("uploads.get_upload", upload_id)

    @rule(upload_id=uploads)
    def delete_upload(self, upload_id: int) -> None:
        self.both("uploads.delete_upload", upload_id)

    @rule(session_uuid=sessions)
    def session_uploads(self, session_uuid: str) -> None:
        self.both("uploads.list_uploads", session_uuid)
        self.both("uploads.total_upload_bytes", session_uuid)

    @rule(limit=st.integers(0, 5))
    def upload_stats(self, limit: int) -> None:
        self.both("uploads.upload_stats", limit)
