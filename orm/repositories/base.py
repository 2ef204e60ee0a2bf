"""ORM side: BaseRepository[ModelT], the generic repository every model's repository builds on.

One method per operation; two views of what reads return:

- A repository (``UserSessionRepository(session)``) returns model instances.
- Its row view (``UserSessionRows(session)``, or ``repository.rows`` on the
  same session) has the very same methods, returning SQLAlchemy ``Row``s of
  the columns instead: for callers that only read values, such as the compat
  layer building the legacy dicts. Rows skip instance loading, the identity
  map and the Session's execution pipeline (see ``_connection``).

The view is chosen by the class, not by an argument, so neither view pays a
branch per call and each method has one signature that mypy types exactly:
``BaseRepository[ModelT, ReadT]`` is generic in what reads return (ModelT
unless said otherwise), and ``RowView`` is the mixin that makes ReadT a Row.

Every public operation is an ``@operation``: ``repo.get_by_id(key)`` runs in
``repo``'s scope, and ``UserSessionRepository.get_by_id(key)`` on the class
is a standalone call (a session of its own, committed and closed).

Rules every repository follows:

- The caller owns the transaction. A repository bound to a session only ever
  flushes; a standalone one (no session given) runs each call in its own
  session from ``orm.database.get_db_session()``, which commits.
- Time comes from the database (``CURRENT_TIMESTAMP``), never from Python.
- Every statement that returns instances runs with ``populate_existing``: an
  instance already in the identity map is overwritten with the row just read
  or written, never handed back stale. No statement synchronizes or expires
  the session's other instances, so an instance handed out earlier stays
  readable after its session closed (it may be older than the row by then).
- Column names from a caller are looked up among the model's mapped columns,
  never passed to ``getattr``; values are type-checked before any SQL runs, so
  bad input cannot abort the caller's transaction. A uuid may be given as a
  ``uuid.UUID`` or as its text in any spelling PostgreSQL accepts; other text
  is a ValueError naming the method and the argument.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Final, Generic, cast

import psycopg2.extensions
from sqlalchemy import Connection, CursorResult, Executable, Row
from sqlalchemy.orm import Session
from typing_extensions import TypeVar

from orm.database import get_db_session
from orm.models import Base
from orm.repositories.bulk import copy_batches, send
from orm.repositories.mapping import PK_PARAM, describe
from orm.repositories.operation import operation
from orm.repositories.query import (
    Filter,
    FilterOp,
    Order,
    OrderSpec,
    Shape,
    SortKey,
    insert_statement,
    select_statement,
    update_statement,
)

__all__ = ["BaseRepository", "ModelT", "ReadT", "RowView"]

ModelT = TypeVar("ModelT", bound=Base)
#: What reads return: instances of the model, or rows of its columns (RowView).
ReadT = TypeVar("ReadT", default=ModelT)

# Instances come back fresh from their rows; nothing else in the session is
# touched (see the module docstring).
_FRESH: Final[Mapping[str, Any]] = {"populate_existing": True, "synchronize_session": False}
# Rows per round trip when streaming: large enough that the round trips do not
# show, small enough that a batch is a few megabytes.
_STREAM_BATCH: Final = 10_000


class BaseRepository(Generic[ModelT, ReadT]):
    """Generic reads and writes of one model, and the session scope every repository uses.

    A subclass names its model: ``class Things(BaseRepository[Thing]): model = Thing``;
    ``class ThingRows(RowView[Thing]): model = Thing`` is its row view.
    Given a Session the caller owns, the repository runs every call in it
    and never commits; given none, each call runs in a session of its own
    that commits when the call succeeds.

    Models with a ``deleted_at`` column are soft-deleted: ``delete`` stamps
    it and every read skips stamped rows. Models with an ``updated_at``
    column get it set to CURRENT_TIMESTAMP by every write.
    """

    model: type[ModelT]
    #: How errors name the primary key a caller passes (``session_uuid``, say).
    key_argument: ClassVar[str] = "id"

    def __init__(self, session: Session | None = None) -> None:
        self._model = describe(self.model)
        self._session = session
        # Built once: entering it costs next to nothing on every call.
        self._bound = None if session is None else nullcontext(session)

    def _scope(self) -> AbstractContextManager[Session]:
        """The caller's session; or, standalone, a new one committed when the block succeeds."""
        if self._bound is not None:
            return self._bound
        return get_db_session()

    def _where(self, method: str) -> str:
        """How errors name the method: ``UserSessionRepository.update``."""
        return f"{type(self).__name__}.{method}"

    def _key(self, key: Any, method: str) -> Any:
        """``key`` as the primary key's type: a UUID (or a uuid's text), an int; else raise."""
        pk = self._model.pk
        if type(key) is pk.python_type:
            return key
        return pk.coerce(key, self._where(method), self.key_argument)

    # The only places that talk to the session.

    def _one(self, statement: Executable, params: Mapping[str, Any]) -> ReadT | None:
        """What a read returns for the statement's one row: its instance, fresh, or None.

        RowView overrides this and ``_all`` to return rows instead.
        """
        with self._scope() as session:
            found = session.scalars(statement, params, execution_options=_FRESH).one_or_none()
        return cast("ReadT | None", found)

    def _all(self, statement: Executable, params: Mapping[str, Any]) -> builtins.list[ReadT]:
        """What a read returns for every row of the statement: instances, fresh, in order."""
        with self._scope() as session:
            found = session.scalars(statement, params, execution_options=_FRESH).all()
        return cast("builtins.list[ReadT]", found)

    # Statements whose results are not instances need none of the ORM's
    # execution pipeline (identity map, loading, ORM compile state at run
    # time): they run as Core on the session's connection, in its
    # transaction, which costs a fraction of Session.execute. What
    # Session.execute would add is autoflush, so that is done here first.

    @staticmethod
    def _connection(session: Session) -> Connection:
        """The connection ``session`` runs on, after the autoflush Session.execute would do."""
        if session.autoflush:
            session.flush()  # returns at once when nothing is pending
        transaction = session.get_transaction()
        if transaction is not None and not transaction.is_active:
            # A failed flush left it to be rolled back: session.connection()
            # raises PendingRollbackError, as Session.execute would.
            return session.connection()
        bind = session.get_bind()
        # Bound to the caller's connection: that one (and its transaction) is
        # what session.connection() would hand back too, at a higher price.
        return bind if isinstance(bind, Connection) else session.connection()

    def _rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Row[Any]]:
        """Every row of a statement, as columns (never instances), whatever the view."""
        with self._scope() as session:
            return self._connection(session).execute(statement, params).all()

    def _scalar(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """The first column of the first row."""
        with self._scope() as session:
            return self._connection(session).execute(statement, params).scalar()

    def _scalars(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        """The first column of every row."""
        with self._scope() as session:
            return self._connection(session).execute(statement, params).scalars().all()

    def _stream_scalars(
        self, statement: Executable, params: Mapping[str, Any], batch: int = _STREAM_BATCH
    ) -> Iterator[Sequence[Any]]:
        """The first column of every row, in lists of up to ``batch`` (a server-side cursor).

        Memory stays flat however many rows there are. Consume it to the end
        while the session is open; a standalone repository commits when it is.
        """
        options = {"stream_results": True, "yield_per": batch}
        with self._scope() as session:
            result = self._connection(session).execute(statement, params, execution_options=options)
            yield from result.scalars().partitions()

    def _rowcount(self, statement: Executable, params: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; return how many rows it touched."""
        with self._scope() as session:
            result = self._connection(session).execute(statement, params)
            return cast("CursorResult[Any]", result).rowcount

    # Generic operations.

    @operation
    def get_by_id(self, id: Any, /) -> ReadT | None:
        """The row with this primary key (a live one, for soft-deleted models), or None."""
        return self._one(self._model.get_by_id, {PK_PARAM: self._key(id, "get_by_id")})

    @operation
    def exists(self, id: Any, /) -> bool:
        """Whether a row with this primary key exists (and is live)."""
        return bool(self._scalar(self._model.exists, {PK_PARAM: self._key(id, "exists")}))

    @operation
    def create(self, /, **values: Any) -> ReadT:
        """Insert one row from column values; return it as stored, with its defaults."""
        keys, params = self._model.set_values(values, self._where("create"))
        created = self._one(insert_statement(self._model, keys), params)
        assert created is not None  # INSERT ... RETURNING returns the row or raises
        return created

    @operation
    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert many rows (mappings of column values) through COPY; return how many.

        Every row is checked before anything is sent; columns a row leaves
        out take their defaults. A database error (a duplicate key, a missing
        NOT NULL column) raises the SQLAlchemy exception an INSERT would, and
        leaves the transaction aborted, as any failed statement does.
        """
        batches = copy_batches(self._model, rows, self._where("create_many"))
        with self._scope() as session:
            # COPY bypasses the unit of work: send what is pending first, in order.
            session.flush()
            dbapi = session.connection().connection.dbapi_connection
            return send(cast(psycopg2.extensions.connection, dbapi), batches)

    @operation
    def update(self, id: Any, data: Mapping[str, Any], /) -> ReadT | None:
        """Set these columns (and updated_at, where the model has it); return the new row.

        None when there is no such (live) row.
        """
        key = self._key(id, "update")
        keys, params = self._model.set_values(data, self._where("update"))
        if not keys and self._model.touch is None:
            return self.get_by_id(key)
        params[PK_PARAM] = key
        return self._one(update_statement(self._model, keys), params)

    @operation
    def delete(self, id: Any, /) -> bool:
        """Delete the row: soft (stamp deleted_at) where the model has that column, else for good.

        False when there is no such (live) row.
        """
        return self._rowcount(self._model.delete, {PK_PARAM: self._key(id, "delete")}) == 1

    @operation
    def count(self, filters: Sequence[Filter] = ()) -> int:
        """How many (live) rows match every filter."""
        statement, params = self._select(
            "count", filters, order=(), limit=None, offset=0, after=None, count=True
        )
        return int(self._scalar(statement, params))

    @operation
    def list(
        self,
        filters: Sequence[Filter] = (),
        *,
        order: OrderSpec | Sequence[OrderSpec] = (),
        limit: int | None = None,
        offset: int = 0,
        after: SortKey | None = None,
    ) -> builtins.list[ReadT]:
        """One page of (live) rows matching every filter.

        ``order`` takes ``Order`` values or strings (``"-created_at"`` is
        descending); NULLs sort last and the primary key, ascending, always
        breaks ties, so pages never overlap. Page with ``limit`` and either
        ``offset`` or ``after=`` the ``sort_key()`` of the previous page's
        last row (keyset pagination; pass the same ``order``).
        """
        statement, params = self._select(
            "list", filters, order=order, limit=limit, offset=offset, after=after, count=False
        )
        return self._all(statement, params)

    def sort_key(self, row: ReadT, order: OrderSpec | Sequence[OrderSpec] = ()) -> SortKey:
        """The row's values of the ordering columns, primary key last: for ``list(after=...)``."""
        resolved = self._order(order, self._where("sort_key"))
        return tuple(getattr(row, key) for key, _ in resolved)

    def _order(
        self, order: OrderSpec | Sequence[OrderSpec], where: str
    ) -> tuple[tuple[str, bool], ...]:
        """The ordering as checked (column, descending) pairs, the primary key last."""
        specs: Sequence[OrderSpec] = (order,) if isinstance(order, str | Order) else order
        resolved: builtins.list[tuple[str, bool]] = []
        for spec in specs:
            item = Order.parse(spec) if isinstance(spec, str) else spec
            key = self._model.column(item.column, where).key
            resolved.append((key, item.descending))
            if key == self._model.pk.key:
                # The primary key is unique: nothing after it ever decides.
                return tuple(resolved)
        resolved.append((self._model.pk.key, False))
        return tuple(resolved)

    def _select(
        self,
        method: str,
        filters: Sequence[Filter],
        *,
        order: OrderSpec | Sequence[OrderSpec],
        limit: int | None,
        offset: int,
        after: SortKey | None,
        count: bool,
    ) -> tuple[Executable, dict[str, Any]]:
        """The cached statement for this shape of call, and the values to bind to it."""
        where = self._where(method)
        params: dict[str, Any] = {}
        shape: builtins.list[tuple[str, FilterOp, bool]] = []
        for i, condition in enumerate(filters):
            column = self._model.column(condition.column, where)
            if condition.op == "is_null":
                shape.append((column.key, "is_null", bool(condition.value)))
                continue
            values = condition.value if condition.op == "in" else (condition.value,)
            for value in cast(tuple[object, ...], values):
                column.check(value, where)
            params[f"f{i}"] = condition.value
            shape.append((column.key, condition.op, False))
        if limit is not None:
            if limit < 0:
                raise ValueError(f"{where}: limit must not be negative, not {limit}")
            params["limit"] = limit
        if offset < 0:
            raise ValueError(f"{where}: offset must not be negative, not {offset}")
        if offset:
            params["offset"] = offset
        resolved = () if count else self._order(order, where)
        after_nulls = None if after is None else self._bind_after(resolved, after, params, where)
        query = Shape(
            count=count,
            filters=tuple(shape),
            order=resolved,
            limit=limit is not None,
            offset=bool(offset),
            after_nulls=after_nulls,
        )
        return select_statement(self._model, query), params

    def _bind_after(
        self,
        resolved: Sequence[tuple[str, bool]],
        after: SortKey,
        params: dict[str, Any],
        where: str,
    ) -> tuple[bool, ...]:
        """Bind the keyset values as k0, k1, ...; return which are NULL (part of the shape)."""
        if len(after) != len(resolved):
            raise ValueError(
                f"{where}: after= needs one value per ordering column, primary key last "
                f"({', '.join(key for key, _ in resolved)}), not {len(after)}; "
                f"pass sort_key(row, order) of the previous page's last row"
            )
        nulls: builtins.list[bool] = []
        for i, ((key, _), value) in enumerate(zip(resolved, after, strict=True)):
            column = self._model.columns[key]
            if value is None and not column.nullable:
                raise ValueError(f"{where}: after= has None for {key}, which is never NULL")
            column.check(value, where)
            nulls.append(value is None)
            if value is not None:
                params[f"k{i}"] = value
        return tuple(nulls)


class RowView(BaseRepository[ModelT, Row[Any]]):
    """Mixin: the same repository whose reads return rows of columns, not instances.

    Rows are the model's columns in table order (or what the statement
    selects), read on the session's connection without the Session's
    execution pipeline: no instance loading, no identity map.
    ``class ThingRows(RowView[Thing], ThingOperations[Row[Any]])`` is the
    row view of a repository whose operations live in ``ThingOperations``.
    """

    def _one(self, statement: Executable, params: Mapping[str, Any]) -> Row[Any] | None:
        """The one row the statement returns, as columns, or None."""
        with self._scope() as session:
            return self._connection(session).execute(statement, params).one_or_none()

    def _all(self, statement: Executable, params: Mapping[str, Any]) -> builtins.list[Row[Any]]:
        """Every row of the statement, as columns, in order."""
        with self._scope() as session:
            # Result.all() builds a list; typing.cast would cost a call on every read.
            rows: builtins.list[Row[Any]] = (
                self._connection(session).execute(statement, params).all()  # type: ignore[assignment]
            )
        return rows
