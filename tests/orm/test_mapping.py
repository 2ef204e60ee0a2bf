"""describe() and ColumnInfo: what a repository knows about its model, and how it checks values."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy import ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from orm.models import UserSession
from orm.repositories import (
    BaseRepository,
    Filter,
    Order,
    UploadedFileRepository,
    UploadStats,
    as_uuid,
)
from orm.repositories.bulk import CopyBatch
from orm.repositories.mapping import describe
from orm.repositories.query import Shape


class _OtherBase(DeclarativeBase):
    """Models of no table of ours: describe() reads only their mapping."""


class _TwoColumnKey(_OtherBase):
    __tablename__ = "two_column_key"

    left: Mapped[int] = mapped_column(primary_key=True)
    right: Mapped[int] = mapped_column(primary_key=True)


class _Parent(_OtherBase):
    __tablename__ = "parent"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str]
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "parent"}  # noqa: RUF012


class _Child(_Parent):
    """Joined inheritance: the ``id`` property maps child.child_id and parent.id."""

    __tablename__ = "child"

    id: Mapped[int] = mapped_column("child_id", ForeignKey("parent.id"), primary_key=True)
    __mapper_args__ = {"polymorphic_identity": "child"}  # noqa: RUF012


class _Opaque(sa.types.TypeDecorator[Any]):
    """A column type SQLAlchemy knows no Python type for."""

    impl = sa.Text
    cache_ok = True

    @property
    def python_type(self) -> type[Any]:
        raise NotImplementedError


class _WithOpaque(_OtherBase):
    __tablename__ = "with_opaque"

    id: Mapped[int] = mapped_column(primary_key=True)
    blob: Mapped[Any] = mapped_column(_Opaque)


class TestDescribe:
    def test_builds_one_description_per_model_and_shares_it(self) -> None:
        # The statement caches are keyed by the description, by identity.
        assert describe(UserSession) is describe(UserSession)

    def test_refuses_a_model_whose_primary_key_has_two_columns(self) -> None:
        with pytest.raises(TypeError, match="needs a single-column primary key"):
            describe(_TwoColumnKey)

    def test_names_the_column_of_the_models_own_table_under_joined_inheritance(self) -> None:
        assert describe(_Child).columns["id"].name == "child_id"

    def test_a_column_type_without_a_python_type_takes_any_value(self) -> None:
        blob = describe(_WithOpaque).columns["blob"]
        assert blob.python_type is object
        assert blob.mismatch(b"anything") is None


class TestColumnInfo:
    def test_a_mismatch_is_none_for_none_and_for_a_value_of_the_columns_type(self) -> None:
        name = describe(UserSession).columns["name"]
        assert name.mismatch(None) is None
        assert name.mismatch("Ann") is None
        assert name.mismatch(1) == (
            "name takes str, not int; convert it before calling (a uuid: uuid.UUID(text))"
        )


VALUES: dict[str, Any] = {
    "Filter": Filter("name", "eq", "Ann"),
    "Order": Order("name"),
    "Shape": Shape(count=True, filters=(), order=(), limit=False, offset=False, after_nulls=None),
    "UploadStats": UploadStats(uuid.uuid4(), "Ann", 1, 1, datetime(2024, 1, 1)),
    "ColumnInfo": describe(UserSession).columns["name"],
    "ModelInfo": describe(UserSession),
    "CopyBatch": CopyBatch(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier("t")), "", 0),
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_value_objects_are_immutable(value: Any) -> None:
    # A Filter changed after __post_init__ checked it would reach SQL unchecked.
    field = dataclasses.fields(value)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


class _LooksLikeAUuid(type):
    """A metaclass whose classes claim to equal every class: ``type(x) == uuid.UUID`` holds."""

    def __eq__(cls, other: object) -> bool:
        return True

    __hash__ = type.__hash__


class _Impostor(metaclass=_LooksLikeAUuid):
    """Not a uuid, nor an int, nor a str, whatever its class says when compared."""

    def __str__(self) -> str:
        return str(uuid.UUID(int=1))


class TestValuesAreCheckedByTheirTypeItself:
    """The type checks compare classes by identity, so no value slips through to SQL."""

    MESSAGE = r"takes a uuid\.UUID or its text, not _Impostor"

    def test_a_primary_key(self, session: Session) -> None:
        with pytest.raises(TypeError, match=self.MESSAGE):
            UserSessionKeys(session).get_by_id(_Impostor())

    def test_a_filter_value(self, session: Session) -> None:
        with pytest.raises(TypeError, match="uuid takes UUID, not _Impostor"):
            UserSessionKeys(session).list([Filter("uuid", "eq", _Impostor())])

    def test_a_column_value(self, session: Session) -> None:
        with pytest.raises(TypeError, match=self.MESSAGE):
            UserSessionKeys(session).create(uuid=_Impostor(), name="Ann")

    def test_a_session_uuid_of_an_upload_call(self, session: Session) -> None:
        with pytest.raises(TypeError, match=self.MESSAGE):
            UploadedFileRepository(session).total_bytes(_Impostor())  # type: ignore[arg-type]

    def test_a_uuid_argument(self) -> None:
        with pytest.raises(TypeError, match=self.MESSAGE):
            as_uuid(_Impostor(), "where", "argument")  # type: ignore[arg-type]

    def test_a_mismatch(self) -> None:
        assert describe(UserSession).columns["uuid"].mismatch(_Impostor()) is not None

    def test_a_bulk_row(self, session: Session) -> None:
        with pytest.raises(TypeError, match="row 0: uuid takes UUID, not _Impostor"):
            UserSessionKeys(session).create_many([{"uuid": _Impostor(), "name": "Ann"}])


class _ImpostorType(sa.types.TypeDecorator[Any]):
    """A column type whose Python type is _Impostor."""

    impl = sa.Text
    cache_ok = True

    @property
    def python_type(self) -> type[Any]:
        return _Impostor


class _WithImpostor(_OtherBase):
    __tablename__ = "with_impostor"

    id: Mapped[int] = mapped_column(primary_key=True)
    odd: Mapped[Any] = mapped_column(_ImpostorType)


def test_a_column_whose_type_claims_to_be_uuid_does_not_parse_text_as_a_uuid() -> None:
    odd = describe(_WithImpostor).columns["odd"]
    with pytest.raises(TypeError, match="odd takes _Impostor, not str"):
        odd.coerce(str(uuid.UUID(int=1)), "where")


class UserSessionKeys(BaseRepository[UserSession]):
    model = UserSession
