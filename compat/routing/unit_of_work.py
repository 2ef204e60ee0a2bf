"""Compat layer: one connection and one transaction for every facade call in a unit of work."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import TypeVar, cast

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy.orm import Session

from compat.cache.region import Change
from compat.errors import UnitOfWorkAborted
from compat.runtime import get_runtime
from layer_settings import MAX_STATEMENT_TIMEOUT_MS
from legacy.db import lend_connection

__all__ = [
    "DATABASE_ERRORS",
    "MAX_STATEMENT_TIMEOUT_MS",
    "SavepointFailed",
    "UnitOfWork",
    "as_psycopg2",
    "current_unit",
    "end_snapshot",
    "in_unit",
    "legacy_alone",
    "snapshot_unit",
    "transaction",
    "unwrap",
]

T = TypeVar("T")

DATABASE_ERRORS = (psycopg2.Error, sa.exc.DBAPIError)


class SavepointFailed(Exception):
    """The SQL that opens a rolled-back savepoint failed in the unit's own transaction.

    Raised instead of the database error so that whoever runs a candidate in
    the savepoint can tell it from the candidate's own failure: ``error`` is
    the psycopg2 error, which the caller must see as the serving side would.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class UnitOfWork:
    """A pooled connection in a transaction, shared by the legacy and the ORM path.

    Legacy functions reach it through ``legacy.db.lend_connection`` (their own
    commit and close do nothing); ORM code gets a ``Session`` joined to it. A
    database error on a serving path aborts the transaction (PostgreSQL's
    rule); the unit remembers the first one and refuses further calls until the
    enclosing (possibly nested) unit rolls back.
    """

    __slots__ = (
        "_failure",
        "_opening",
        "_opening_raw",
        "connection",
        "snapshot",
        "was_lost",
        "written",
    )

    def __init__(
        self, connection: sa.Connection, opening: str | None = None, *, snapshot: bool = False
    ) -> None:
        _hook(connection.engine)
        self.connection = connection
        self._failure: str | None = None
        self._opening = opening
        """SQL the transaction must start with (its isolation level), not sent yet."""
        self.snapshot = snapshot
        """Opened as one snapshot (REPEATABLE READ or SERIALIZABLE): a cached value may be
        newer than what it sees, so it never reads the cache."""
        self.written: set[Change] | None = None
        """What facade writes in this unit may have changed: dropped from this process's cache
        when the unit ends, and until then reads in the unit bypass the cache."""
        self._opening_raw = False
        """Send the opening on the psycopg2 cursor (a ``snapshot_unit``'s own BEGIN)."""
        self.was_lost = False
        """Whether the unit ended because its connection was lost (a unit of its own only)."""

    @property
    def reads_cache(self) -> bool:
        """Whether a cached read in this unit may be served a cached value (read-your-writes)."""
        return not self.snapshot and not self.written

    def wrote(self, changes: list[Change]) -> None:
        """A facade write in this unit may change these rows (marked before it runs)."""
        if self.written is None:
            self.written = set()
        self.written.update(changes)

    @property
    def lost(self) -> bool:
        """Whether the server ended this unit's connection (a restart, a terminated backend)."""
        if self.connection.invalidated:
            return True
        raw = self.connection.connection.dbapi_connection
        return raw is None or bool(raw.closed)

    def open(self) -> None:
        """Send the transaction's opening SQL now if no statement has carried it yet."""
        if self._opening is not None:
            opening, self._opening = self._opening, None
            if self._opening_raw:
                # SQLAlchemy's execution machinery costs more CPU than this round
                # trip; the statement returns nothing. A lost connection shows in
                # ``lost`` (psycopg2 marks it closed), which the retry reads.
                with self.dbapi_connection.cursor() as cursor:
                    cursor.execute(opening)
            else:
                self.connection.exec_driver_sql(opening)

    @property
    def dbapi_connection(self) -> psycopg2.extensions.connection:
        """The psycopg2 connection under the SQLAlchemy one (what legacy code runs on)."""
        raw = self.connection.connection.dbapi_connection
        assert raw is not None, "the unit's connection was closed"
        return raw  # type: ignore[return-value]

    def session(self) -> Session:
        """A new ORM session on this unit's connection and transaction.

        It never commits or closes the transaction ("rollback_only"); inside a
        savepoint its rollback (after a failed flush) only reaches the savepoint.
        One session per call keeps no identity map across calls, so an ORM read
        always sees what a legacy write did before it.
        """
        return Session(
            bind=self.connection,
            join_transaction_mode="rollback_only",
            expire_on_commit=False,
            autoflush=False,
        )

    @contextmanager
    def call_session(self) -> Iterator[Session]:
        """A session for one facade call, closed when the call returns: nothing outlives the call.

        Closing empties the identity map and ends the session's transaction,
        which leaves a Session as good as new. So each thread keeps its closed
        one and lends it, bound to the current unit's connection, to its next
        call: building and closing a Session per call cost about a tenth of an
        ORM point read. A call that starts while another holds it (one nested
        in the other) gets a session of its own.
        """
        session: Session | None = getattr(_spare, "session", None)
        if session is None:
            session = self.session()
        else:
            _spare.session = None
            session.bind = self.connection
        try:
            yield session
        finally:
            # Most compat adapters run Core on the session's connection and leave
            # the Session untouched: closing one costs ~10 us for nothing.
            if session.in_transaction() or session.identity_map or session.new or session.deleted:
                session.close()
            _spare.session = session

    def check_usable(self) -> None:
        """Raise UnitOfWorkAborted when an earlier call in this unit failed in the database."""
        if self._failure is not None:
            raise UnitOfWorkAborted(self._failure)

    def record_failure(self, where: str, error: BaseException) -> None:
        """Remember the first database failure; PostgreSQL has aborted the transaction."""
        if self._failure is None:
            code = getattr(error, "pgcode", None) or getattr(
                getattr(error, "orig", None), "pgcode", None
            )
            self._failure = f"{where} raised {type(error).__name__}" + (
                f" (SQLSTATE {code})" if code else ""
            )

    def run(self, where: str, call: Callable[[UnitOfWork], T]) -> T:
        """Run one serving call in this unit, recording a database failure if it raises one."""
        self.check_usable()
        try:
            return call(self)
        except DATABASE_ERRORS as error:
            self.record_failure(where, error)
            original = unwrap(error)
            if original is error:
                raise
            raise original from error  # psycopg2's class on both paths, as documented

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested unit: a SAVEPOINT that is released on success, rolled back on error."""
        self.check_usable()
        with as_psycopg2():
            nested = self.connection.begin_nested()
        outer_failure = self._failure
        try:
            yield
        except BaseException as error:
            _roll_back_after(error, nested)
            self._failure = outer_failure
            raise
        if self._failure is not None:
            failure, self._failure = self._failure, outer_failure
            with as_psycopg2():
                nested.rollback()
            raise UnitOfWorkAborted(failure)
        with as_psycopg2():
            nested.commit()

    @contextmanager
    def rolled_back_savepoint(
        self, statement_timeout_ms: int = 0, first: str = ""
    ) -> Iterator[None]:
        """A SAVEPOINT that is always rolled back: the unit is exactly as before, errors or not.

        With ``statement_timeout_ms``, every statement inside is bounded by it
        (a ``SET LOCAL``, which the rollback undoes). The transaction's opening
        SQL, the SAVEPOINT and the timeout go in one round trip, and the
        rollback releases the savepoint in the same round trip, so that a
        long unit does not stack one subtransaction per candidate.
        """
        self.check_usable()
        if not 0 <= statement_timeout_ms <= MAX_STATEMENT_TIMEOUT_MS:
            # Checked before any SQL: a SET LOCAL that failed after its SAVEPOINT
            # would leave the caller's transaction aborted.
            raise ValueError(
                f"statement timeout {statement_timeout_ms!r} ms is out of range "
                f"0..{MAX_STATEMENT_TIMEOUT_MS} (0: none)"
            )
        before = "" if self._opening is None else f"{self._opening}; "
        if first:
            # SQL ready to send (values already quoted), in the same round trip.
            before += f"{first.replace('%', '%%')}; "
        after = f"; SET LOCAL statement_timeout = {int(statement_timeout_ms)}"
        self._opening = None
        _savepoint_setup.pending = (before, after if statement_timeout_ms else "")
        try:
            nested = self.connection.begin_nested()
        except sa.exc.DBAPIError as error:
            # The opening, the row locks or the SAVEPOINT itself failed: that is
            # the unit's transaction failing (a deadlock, a lock timeout), before
            # anything of the candidate ran.
            raise SavepointFailed(unwrap(error)) from error
        finally:
            _savepoint_setup.pending = None
        try:
            yield
        except BaseException as error:
            if nested.is_active:
                _roll_back_after(error, nested)
            raise
        if nested.is_active:
            nested.rollback()
            return
        # Something inside rolled the savepoint back itself and carried on: a
        # Session whose flush failed rolls back the savepoint it joined, and if
        # the error is swallowed and the Session used again, it writes into the
        # enclosing transaction, where no rollback of ours reaches. Abort the
        # unit rather than let those writes commit.
        failure = (
            "code inside a rolled-back savepoint (a candidate) rolled it back itself and went "
            "on; let database errors propagate out of ORM adapters"
        )
        if self._failure is None:
            self._failure = failure
        raise UnitOfWorkAborted(failure)


# What the next SAVEPOINT this thread sends must carry (set around begin_nested only).
_savepoint_setup = threading.local()
_hooked: weakref.WeakSet[sa.engine.Dialect] = weakref.WeakSet()


def _hook(engine: sa.Engine) -> None:
    """Give this engine's dialect the layer's savepoint statements (once per dialect).

    SQLAlchemy sends ``SAVEPOINT``, ``ROLLBACK TO SAVEPOINT`` and ``RELEASE
    SAVEPOINT`` on their own, compiled anew each time. These send them as
    plain SQL, with what must come before and after the savepoint in the same
    round trip, and release a savepoint as soon as it is rolled back to
    (SQLAlchemy never reuses it), so that it costs no subtransaction until
    the end of the transaction.
    """
    dialect = engine.dialect
    if dialect in _hooked:
        return
    quote = dialect.identifier_preparer.quote

    def do_savepoint(connection: sa.Connection, name: str) -> None:
        before, after = getattr(_savepoint_setup, "pending", None) or ("", "")
        connection.exec_driver_sql(f"{before}SAVEPOINT {quote(name)}{after}")

    def do_rollback_to_savepoint(connection: sa.Connection, name: str) -> None:
        name = quote(name)
        connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")

    def do_release_savepoint(connection: sa.Connection, name: str) -> None:
        connection.exec_driver_sql(f"RELEASE SAVEPOINT {quote(name)}")

    # Instance attributes: only this engine's dialect changes, not the class.
    vars(dialect).update(
        do_savepoint=do_savepoint,
        do_rollback_to_savepoint=do_rollback_to_savepoint,
        do_release_savepoint=do_release_savepoint,
    )
    _hooked.add(dialect)


_current: ContextVar[UnitOfWork | None] = ContextVar("compat_unit_of_work", default=None)
# One closed Session per thread, lent to the next facade call (UnitOfWork.call_session).
_spare = threading.local()


def current_unit() -> UnitOfWork | None:
    """The unit of work open in this thread or task, if any."""
    return _current.get()


@contextmanager
def transaction(isolation_level: str | None = None) -> Iterator[UnitOfWork]:
    """Open a unit of work: every facade call inside runs on one connection, in one transaction.

    Commits once at the end; rolls everything back when the block raises. A
    nested ``transaction()`` is a savepoint, so an expected failure inside it
    (a duplicate, say) can be caught without losing the unit's earlier work.
    ``isolation_level`` (e.g. ``"REPEATABLE READ"``) applies to an outermost
    unit only, and to its transaction only: the connection goes back to the
    pool as it came.
    """
    with _unit(isolation_level) as unit:
        with as_psycopg2():
            unit.open()
        yield unit


_ISOLATION_LEVELS = frozenset(
    {"READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}
)
_SNAPSHOTS = frozenset({"REPEATABLE READ", "SERIALIZABLE"})


@contextmanager
def _unit(
    isolation_level: str | None, *, autocommit: bool = False, lend: bool = True
) -> Iterator[UnitOfWork]:
    """A unit of work whose opening SQL, if any, waits for the first statement to carry it.

    ``autocommit`` (a unit of its own only) runs it without a transaction:
    psycopg2 sends no BEGIN and no COMMIT, two round trips of four for a
    point read. Only for reads (FacadeFunction.autocommit); the connection
    goes back to the pool as it came. ``lend=False`` (a call that runs only
    the ORM side) skips lending the connection to legacy code.
    """
    unit = _current.get()
    if unit is not None:
        with unit.savepoint():
            yield unit
        return
    opening = None
    snapshot = False
    if isolation_level is not None:
        if isolation_level.upper() not in _ISOLATION_LEVELS:
            raise ValueError(
                f"unknown isolation level {isolation_level!r}; "
                f"use one of {', '.join(sorted(_ISOLATION_LEVELS))}"
            )
        opening = f"SET TRANSACTION ISOLATION LEVEL {isolation_level.upper()}"
        snapshot = isolation_level.upper() in _SNAPSHOTS
    # Plain try/finally rather than an ExitStack: this runs on every standalone call.
    with as_psycopg2():
        # The pool's connect (and its liveness check) raise SQLAlchemy's class; a
        # legacy function connecting itself raises psycopg2's: the caller gets that.
        connection = get_runtime().engine.connect()
    try:
        raw = cast(psycopg2.extensions.connection, connection.connection.dbapi_connection)
        # Put back as it came (an application's own engine may be in autocommit).
        before = raw.autocommit
        if autocommit:
            raw.autocommit = True  # on the client only: nothing is sent
        try:
            with as_psycopg2():
                outer = connection.begin()
            unit = UnitOfWork(connection, opening, snapshot=snapshot)
            token = _current.set(unit)
            try:
                with lend_connection(raw) if lend else nullcontext():
                    try:
                        yield unit
                    except BaseException as error:
                        unit.was_lost = unit.lost
                        if outer.is_active:
                            _roll_back_after(error, outer)
                        raise
                    if unit._failure is not None:
                        with as_psycopg2():
                            outer.rollback()
                        raise UnitOfWorkAborted(unit._failure)
                    # As every facade call does: psycopg2's class, whichever path ran.
                    with as_psycopg2():
                        outer.commit()
            finally:
                _current.reset(token)
                if unit.written:
                    # After the commit (or the rollback): this process's cached reads of what
                    # the unit wrote are never served again. Other processes hear the trigger.
                    get_runtime().cache.written(unit.written)
        finally:
            if autocommit:
                _restore_autocommit(raw, before)
    finally:
        connection.close()


def _restore_autocommit(raw: psycopg2.extensions.connection, autocommit: bool) -> None:
    if not raw.closed:  # a lost connection is discarded by the pool anyway
        raw.autocommit = autocommit


def _roll_back_after(error: BaseException, transaction: sa.Transaction) -> None:
    """Roll back because ``error`` was raised; a lost connection must not hide that error.

    When the server restarted or ended the backend, the rollback fails too (a
    vaguer "connection already closed") and would replace the error that
    stopped the work. SQLAlchemy has invalidated the connection by then, the
    server has discarded the transaction, and the pool replaces the connection
    on the next checkout: the original error goes on, with a note.
    """
    try:
        transaction.rollback()
    except sa.exc.DBAPIError as failed:
        if not failed.connection_invalidated:
            original = unwrap(failed)
            if original is failed:
                raise
            raise original from failed
        reason = next(iter(str(failed.orig).splitlines()), "")
        error.add_note(
            f"the rollback that followed failed too (the connection was lost): "
            f"{type(failed.orig).__name__}: {reason}"
        )


def in_unit(
    where: str,
    call: Callable[[UnitOfWork], T],
    isolation_level: str | None = None,
    *,
    autocommit: bool = False,
    retry_lost: bool = False,
    lend: bool = True,
) -> T:
    """Run ``call`` in the current unit of work, or in a unit of its own when there is none.

    ``isolation_level`` and ``autocommit`` apply only to a unit of its own;
    ``call`` sends the isolation level with its first savepoint
    (``rolled_back_savepoint``) or calls ``open()``; ``lend=False`` when only
    the ORM side runs. With ``retry_lost`` (reads
    only: running one twice changes nothing), a unit of its own whose
    connection turns out dead runs once more on a fresh one: the pool trusts
    a recently used connection without a ping (``orm.liveness``), so a
    restart can surface as the first statement's error. A write is never
    retried: whether a lost COMMIT committed is unknown.
    """
    unit = _current.get()
    if unit is not None:
        return unit.run(where, call)
    if retry_lost:
        own: UnitOfWork | None = None
        try:
            with _unit(isolation_level, autocommit=autocommit, lend=lend) as own:
                return own.run(where, call)
        except DATABASE_ERRORS:
            if own is None or not own.was_lost:
                raise
    with _unit(isolation_level, autocommit=autocommit, lend=lend) as own:
        return own.run(where, call)


@contextmanager
def as_psycopg2() -> Iterator[None]:
    """Re-raise a SQLAlchemy database error from the block as the psycopg2 error under it.

    A legacy function raises psycopg2's class (``OperationalError`` when the
    server is unreachable, the database missing, the password wrong), so the
    facade's own steps (the pool's connect, BEGIN, COMMIT) raise that too.
    """
    try:
        yield
    except sa.exc.DBAPIError as error:
        original = unwrap(error)
        if original is error:
            raise
        raise original from error


def legacy_alone(call: Callable[[], T], *, autocommit: bool = False, retry_lost: bool = False) -> T:
    """Run a legacy function outside any unit, on a pooled connection and nothing else.

    What a unit of its own does for a call in ``legacy`` mode, without the
    SQLAlchemy ``Connection`` and ``Transaction`` objects only the ORM path
    needs: the pool's connection (with its liveness check) is lent to the
    legacy code, in autocommit for a read, else committed once at the end.
    ``retry_lost`` (reads only) runs the call once more on a fresh connection
    when the first turned out dead, as ``in_unit`` does.
    """
    try:
        return _legacy_once(call, autocommit)
    except _Lost as lost:
        if not retry_lost:
            raise lost.error from None
    try:
        return _legacy_once(call, autocommit)
    except _Lost as lost:
        raise lost.error from None


class _Lost(Exception):
    """The connection died under a legacy call; carries the error the caller should get."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _legacy_once(call: Callable[[], T], autocommit: bool) -> T:
    with as_psycopg2():
        fairy = get_runtime().engine.raw_connection()
    raw = cast(psycopg2.extensions.connection, fairy.dbapi_connection)
    before = raw.autocommit
    try:
        if autocommit and not before:
            raw.autocommit = True  # on the client only: nothing is sent
        with lend_connection(raw):
            result = call()
        if not raw.autocommit:
            raw.commit()
        return result
    except BaseException as error:
        if raw.closed:
            fairy.invalidate(error if isinstance(error, Exception) else None)
            if isinstance(error, psycopg2.Error):
                raise _Lost(error) from error
            raise
        if not raw.autocommit:
            try:
                raw.rollback()
            except psycopg2.Error:
                # The rollback's own failure must not hide the error that stopped the call.
                fairy.invalidate()
        raise
    finally:
        if not raw.closed and raw.autocommit is not before:
            raw.autocommit = before
        fairy.close()


@contextmanager
def snapshot_unit(statement_timeout_ms: int = 0) -> Iterator[UnitOfWork]:
    """A unit of its own for a compared read: one REPEATABLE READ transaction, always rolled back.

    Both sides of a compared read see one snapshot, and the transaction is
    this call's alone: a failed candidate cannot abort anyone else's work,
    and the rollback undoes whatever a read's candidate might have done, so
    no savepoint is needed. The connection runs in autocommit on the client
    and the unit sends its own ``BEGIN`` (with the candidate's statement
    timeout, which the rollback undoes) in the first statement's round trip
    and its ``ROLLBACK``: four round trips for a point read. ``end_snapshot``
    ends the snapshot early (after a failed candidate); the serving side then
    runs in autocommit.
    """
    if not 0 <= statement_timeout_ms <= MAX_STATEMENT_TIMEOUT_MS:
        raise ValueError(
            f"statement timeout {statement_timeout_ms!r} ms is out of range "
            f"0..{MAX_STATEMENT_TIMEOUT_MS} (0: none)"
        )
    budget = f"; SET LOCAL statement_timeout = {int(statement_timeout_ms)}"
    with _unit(None, autocommit=True) as unit:
        unit._opening = "BEGIN ISOLATION LEVEL REPEATABLE READ" + (
            budget if statement_timeout_ms else ""
        )
        unit._opening_raw = True
        try:
            yield unit
        finally:
            end_snapshot(unit)


def end_snapshot(unit: UnitOfWork) -> None:
    """Roll back a ``snapshot_unit``'s transaction if it began; never leave it open in the pool."""
    unit._opening = None
    if unit.lost:
        return
    raw = unit.dbapi_connection
    if raw.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        return
    try:
        with raw.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except psycopg2.Error as error:
        # A connection whose transaction cannot be ended must not go back to the pool.
        unit.connection.invalidate(error)
        raise


def unwrap(error: BaseException) -> BaseException:
    """The psycopg2 error under a SQLAlchemy one, so both paths raise the same class."""
    if isinstance(error, sa.exc.DBAPIError) and isinstance(error.orig, BaseException):
        return error.orig
    return error
