"""Compat layer: argument checks that run before any SQL, identical whichever path serves."""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from compat.errors import InvalidArgument
from orm.models import Base
from orm.repositories.uuids import UUID_TEXT

__all__ = [
    "NON_NEGATIVE",
    "Validator",
    "boolean",
    "choice",
    "column_text",
    "hours",
    "integer",
    "moment",
    "optional",
    "rules_for",
    "text",
    "update_data",
    "uuid_text",
]

Validator = Callable[[str, str, Any], None]
"""Checks one argument: ``validator(function_key, argument_name, value)``."""

BIGINT_MAX: Final = 2**63 - 1
MAX_HOURS: Final = 10**7
"""About 1,100 years. CURRENT_TIMESTAMP minus some 59 million hours falls before
4713 BC, PostgreSQL's earliest timestamp, and the statement fails in the server."""

MAX_UTC_OFFSET: Final = timedelta(hours=16)
"""PostgreSQL refuses a time zone displacement of 16 hours or more ("out of range")."""

# Exactly what PostgreSQL's uuid input accepts (and Python's UUID() too):
# 32 hex digits, an optional hyphen after any group of four, optional braces.
_UUID = UUID_TEXT  # the ORM side's, so both sides accept exactly the same spellings
# The form nearly every caller passes, tried first: it matches three times faster.
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _type_name(value: object) -> str:
    return type(value).__name__


def text(max_length: int | None = None) -> Validator:
    """A str PostgreSQL can store: no NUL character, valid Unicode, at most ``max_length``."""

    def check(function: str, argument: str, value: Any) -> None:
        if type(value) is not str:
            raise InvalidArgument(function, argument, f"must be a str, not {_type_name(value)}")
        if "\x00" in value:
            raise InvalidArgument(
                function, argument, "contains a NUL character (PostgreSQL text cannot)"
            )
        if max_length is not None and len(value) > max_length:
            raise InvalidArgument(
                function,
                argument,
                f"is {len(value)} characters long; the column holds {max_length}",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidArgument(
                function, argument, f"is not valid Unicode ({error.reason} at {error.start})"
            ) from None

    return check


def uuid_text(function: str, argument: str, value: Any) -> None:
    """A uuid as a str, in any form PostgreSQL accepts (legacy code passes str, not UUID)."""
    if type(value) is not str:
        raise InvalidArgument(function, argument, f"must be a uuid as str, not {_type_name(value)}")
    if _CANONICAL_UUID.fullmatch(value) is None and _UUID.fullmatch(value) is None:
        # The value is not echoed: a caller that passes an email or a name here
        # by mistake would otherwise put personal data into its logs.
        raise InvalidArgument(
            function,
            argument,
            f"is not a valid uuid (a {len(value)}-character str; expected 32 hex digits, "
            "hyphens optional, e.g. 0b7f3c2e-1d5a-4c8e-9f00-3a2b1c4d5e6f)",
        )


def boolean(function: str, argument: str, value: Any) -> None:
    """A real bool (1 and 0 are not accepted: the comparison is type-strict)."""
    if type(value) is not bool:
        raise InvalidArgument(function, argument, f"must be a bool, not {_type_name(value)}")


def integer(minimum: int = -BIGINT_MAX - 1, maximum: int = BIGINT_MAX) -> Validator:
    """An int (not a bool) within ``minimum..maximum``; the default range is PostgreSQL's bigint."""

    def check(function: str, argument: str, value: Any) -> None:
        if type(value) is not int:
            raise InvalidArgument(function, argument, f"must be an int, not {_type_name(value)}")
        if not minimum <= value <= maximum:
            raise InvalidArgument(
                function, argument, f"must be between {minimum} and {maximum}, not {value}"
            )

    return check


def hours(function: str, argument: str, value: Any) -> None:
    """A finite, non-negative number of hours (int or float)."""
    if type(value) not in (int, float):
        raise InvalidArgument(
            function, argument, f"must be a number of hours, not {_type_name(value)}"
        )
    if not math.isfinite(value) or value < 0 or value > MAX_HOURS:
        raise InvalidArgument(
            function, argument, f"must be between 0 and {MAX_HOURS} hours, not {value}"
        )


def moment(function: str, argument: str, value: Any) -> None:
    """A datetime; naive means UTC, aware is converted to UTC by PostgreSQL on both paths.

    An aware one needs a UTC offset PostgreSQL reads (whole seconds, under 16
    hours; Python allows fractions and up to 24) and must stay within years 1
    to 9999 once in UTC: PostgreSQL stores ``datetime(1, 1, 1, tzinfo=+14:00)``
    as a date BC, which no later read of the row could turn back into a datetime.
    """
    if not isinstance(value, datetime):
        raise InvalidArgument(function, argument, f"must be a datetime, not {_type_name(value)}")
    offset = value.utcoffset()
    if offset is not None:
        if offset.microseconds or abs(offset) >= MAX_UTC_OFFSET:
            raise InvalidArgument(
                function,
                argument,
                f"has the UTC offset {value.strftime('%z')}; PostgreSQL reads offsets "
                "of whole seconds, under 16 hours",
            )
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidArgument(
                function,
                argument,
                f"is {value.isoformat()}, outside years 1 to 9999 once converted to UTC",
            ) from None


def choice(options: Collection[str]) -> Validator:
    """One of ``options``."""
    valid = sorted(options)

    def check(function: str, argument: str, value: Any) -> None:
        if type(value) is not str or value not in options:
            raise InvalidArgument(function, argument, f"must be one of {valid}, not {value!r}")

    return check


def optional(validator: Validator) -> Validator:
    """``None``, or what ``validator`` accepts."""

    def check(function: str, argument: str, value: Any) -> None:
        if value is not None:
            validator(function, argument, value)

    return check


def update_data(fields: Mapping[str, Validator]) -> Validator:
    """A mapping whose keys are among ``fields`` and whose values each pass their field's check."""
    valid = sorted(fields)

    def check(function: str, argument: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise InvalidArgument(function, argument, f"must be a mapping, not {_type_name(value)}")
        for field, field_value in value.items():
            field_check = fields.get(field) if type(field) is str else None
            if field_check is None:
                raise InvalidArgument(
                    function, argument, f"has the key {field!r}; updatable fields are {valid}"
                )
            field_check(function, f"{argument}[{field!r}]", field_value)

    return check


NON_NEGATIVE: Final = frozenset({"limit", "offset"})
"""Parameters that count rows, so cannot be negative."""


def rules_for(
    legacy: Callable[..., Any],
    tables: Sequence[str] = (),
    overrides: Mapping[str, Validator] | None = None,
) -> dict[str, Validator]:
    """The check of each parameter of ``legacy``, derived from its type hints.

    ``str`` is text, with the length of the column of that name in ``tables``
    (the tables the function touches) when it has one; a ``str`` named
    ``uuid`` or ``*_uuid`` is a uuid; ``X | None`` accepts None; ``bool``,
    ``int`` (bigint; ``limit`` and ``offset`` from 0; ``*_hours`` a number of
    hours), ``datetime``; a ``Literal`` is a choice; a ``TypedDict`` that is
    not total is an update mapping whose keys are its fields, each checked by
    its own type, also when it annotates a plain ``Mapping`` parameter
    (``Annotated[Mapping[str, Any], SessionUpdate]``, which keeps the legacy
    signature what callers type-check against). ``overrides`` replaces the
    rule of a parameter; a type with no rule is a TypeError at declaration,
    never a silent pass.
    """
    hints = typing.get_type_hints(legacy, include_extras=True)
    given = dict(overrides or {})
    rules: dict[str, Validator] = {}
    for name in inspect.signature(legacy).parameters:
        rule = given.pop(name, None)
        if rule is None:
            rule = _rule(name, hints.get(name), tables, f"{legacy.__name__}({name})")
        rules[name] = rule
    if given:
        raise TypeError(f"{legacy.__name__}: overrides for unknown parameters {sorted(given)}")
    return rules


def _rule(name: str, hint: Any, tables: Sequence[str], where: str) -> Validator:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        # Annotated[Mapping[str, Any], SomeUpdate]: the TypedDict names the keys.
        described = [m for m in hint.__metadata__ if typing.is_typeddict(m)]
        return _rule(name, described[0] if described else hint.__origin__, tables, where)
    if origin in (types.UnionType, typing.Union):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if len(members) == 1 and len(typing.get_args(hint)) == 2:
            return optional(_rule(name, members[0], tables, where))
    if origin is typing.Literal:
        return choice([str(value) for value in typing.get_args(hint)])
    if hint is str:
        if name == "uuid" or name.endswith("_uuid"):
            return uuid_text
        return text(max_length=_column_length(name, tables))
    if hint is bool:
        return boolean
    if hint is int:
        if name.endswith("_hours"):
            return hours
        return integer(0) if name in NON_NEGATIVE else integer()
    if hint is datetime:
        return moment
    if typing.is_typeddict(hint) and not getattr(hint, "__total__", True):
        fields = typing.get_type_hints(hint)
        return update_data(
            {field: _rule(field, fields[field], tables, f"{where}[{field!r}]") for field in fields}
        )
    raise TypeError(f"{where}: no argument rule for the type {hint!r}; give one in arguments=")


def _column_length(name: str, tables: Sequence[str]) -> int | None:
    for table in tables:
        column = Base.metadata.tables[table].columns.get(name)
        length = getattr(getattr(column, "type", None), "length", None)
        if length is not None:
            return int(length)
    return None


def column_text(column: Any) -> Validator:
    """Text no longer than ``column`` holds (for a parameter named unlike its column)."""
    return text(max_length=getattr(column.type, "length", None))
