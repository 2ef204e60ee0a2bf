"""Hypothesis strategies for hostile facade arguments: valid values mixed with every bad kind.

Per parameter name (the names the legacy functions use), a strategy draws a
plausible value most of the time and otherwise one of: NUL bytes, lone
surrogates, a 1 MB string, SQL metacharacters, malformed / upper-case /
brace-wrapped uuids, negative and huge integers, naive and aware datetimes at
the edges of the calendar, and values of the wrong type.
"""

from __future__ import annotations

import math
import types
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from hypothesis import strategies as st

from compat.routing.declaration import REGISTRY

INJECTIONS: Final = (
    "'; DROP TABLE user_sessions; --",
    "'); DELETE FROM uploaded_files; --",
    "' OR '1'='1",
    '" OR ""="',
    "x' UNION SELECT uuid::text FROM user_sessions --",
    "1; TRUNCATE user_sessions CASCADE",
    "%s",
    "%(uuid)s",
    "$1",
    "{}",
    "\\",
    "*/ DROP TABLE uploaded_files; /*",
)
"""SQL metacharacters and the shapes of classic injections, for every string parameter."""

ONE_MB: Final = ("'; DROP TABLE user_sessions; -- " * (2**20 // 32 + 1))[: 2**20]
"""A 1 MB string of SQL metacharacters (text columns take it; short columns refuse it)."""

BROKEN_TEXT: Final = ("a\x00b", "\x00", "\ud800", "x\udfffy", "\ud83d", ONE_MB)
"""A NUL byte and lone surrogates (PostgreSQL text holds neither), and the 1 MB string."""

WRONG_TYPES: Final[tuple[object, ...]] = (
    None,
    b"bytes",
    bytearray(b"x"),
    0,
    1,
    -1,
    1.5,
    math.nan,
    True,
    False,
    [],
    ["a"],
    {},
    (),
    object(),
    Decimal("1"),
    1j,
    uuid.UUID("00000000-0000-4000-8000-000000000001"),
    date(2030, 1, 1),
    datetime(2030, 1, 1),
    "2030-01-01T00:00:00",
)
"""Values of every other type; some parameters take one of them (None, a bool, a datetime)."""

BIGINT: Final = 2**63
EDGE_INTEGERS: Final = (0, 1, -1, BIGINT - 1, BIGINT, -BIGINT, -BIGINT - 1, 10**30, -(10**30))
EDGE_HOURS: Final = (0, 0.5, 24, 10**7, 10**7 + 1, -1, -0.0, math.inf, -math.inf, math.nan)

_hex = st.sampled_from("0123456789abcdefABCDEF")


@st.composite
def near_uuids(draw: st.DrawFn) -> str:
    """Strings shaped like uuids, often slightly off: lengths, hyphens, braces, case."""
    digits = list(draw(st.uuids()).hex)
    digits = [c.upper() if draw(st.booleans()) else c for c in digits]
    length = draw(st.sampled_from([32, 32, 31, 33, 0, 36]))
    digits = [*digits, *draw(st.lists(_hex, min_size=4, max_size=4))][:length]
    hyphens = draw(st.sets(st.integers(0, max(length, 1)), max_size=8))
    text = "".join(f"-{c}" if i in hyphens else c for i, c in enumerate(digits))
    opening, closing = draw(st.sampled_from([("", ""), ("{", "}"), ("{", ""), ("", "}")]))
    return f"{opening}{text}{closing}"


def uuid_forms(canonical: str) -> list[str]:
    """Spellings PostgreSQL accepts for one uuid: upper-case, braces, no hyphens."""
    bare = canonical.replace("-", "")
    return [canonical, canonical.upper(), f"{{{canonical}}}", bare, f"{{{bare.upper()}}}"]


def _hostile_text() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(INJECTIONS),
        st.sampled_from(BROKEN_TEXT),
        st.sampled_from(WRONG_TYPES),
    )


def text_values(*plausible: str, max_size: int = 20) -> st.SearchStrategy[Any]:
    """A string parameter: plausible values, any unicode text, or something hostile."""
    return st.one_of(
        st.sampled_from(plausible) if plausible else st.nothing(),
        st.text(max_size=max_size),
        _hostile_text(),
    )


def integers(*plausible: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(plausible) if plausible else st.nothing(),
        st.integers(-10, 100),
        st.sampled_from(EDGE_INTEGERS),
        st.sampled_from(WRONG_TYPES),
        st.sampled_from(INJECTIONS),
    )


def hours() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(EDGE_HOURS),
        st.floats(min_value=-1e9, max_value=1e9),
        st.integers(-10, 10**8),
        st.sampled_from(WRONG_TYPES),
        st.sampled_from(INJECTIONS),
    )


def booleans() -> st.SearchStrategy[Any]:
    return st.one_of(st.booleans(), st.none(), st.sampled_from(WRONG_TYPES))


_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
    ),
)
EDGE_MOMENTS: Final = (
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-14))),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8),
)


def moments() -> st.SearchStrategy[Any]:
    """Naive and aware datetimes (fixed offsets up to a day), the calendar's edges, other types."""
    return st.one_of(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
        st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.one_of(st.just(UTC), _offsets),
        ),
        st.sampled_from(EDGE_MOMENTS),
        st.sampled_from(WRONG_TYPES),
        st.sampled_from(INJECTIONS),
    )


ORDERS: Final = ("created_at", "-created_at", "name", "-name", "email", "-email")
BAD_ORDERS: Final = (
    "NAME",
    "name DESC",
    "-uuid",
    "uuid",
    "name; DROP TABLE user_sessions",
    "1",
    "",
)
UPDATABLE: Final = ("name", "email", "ip_address", "consent_user_data", "completed_at")
BAD_KEYS: Final[tuple[object, ...]] = (
    "uuid",
    "NAME",
    "name ",
    "verification_code",
    "name = 'x'; DROP TABLE user_sessions; --",
    'name" = 1; --',
    1,
    None,
    b"name",
)


@dataclass(frozen=True)
class Existing:
    """What the database holds for the drawn calls to hit: a session with one upload."""

    session_uuid: str
    upload_id: int
    email: str


def _field_values(name: str) -> st.SearchStrategy[Any]:
    if name == "consent_user_data":
        return booleans()
    if name == "completed_at":
        return st.one_of(st.none(), moments())
    return st.one_of(st.none(), text_values("Ada Lovelace", "ada@example.com", "10.0.0.1", "::1"))


def update_data() -> st.SearchStrategy[Any]:
    """update_session's mapping: known fields with hostile values, odd keys, odd types."""
    entries = st.dictionaries(
        st.one_of(
            st.sampled_from(UPDATABLE), st.sampled_from(BAD_KEYS), st.sampled_from(INJECTIONS)
        ),
        st.nothing(),
        max_size=4,
    ).flatmap(
        lambda keys: st.fixed_dictionaries(
            {key: _field_values(key) if key in UPDATABLE else text_values() for key in keys}
        )
    )
    return st.one_of(
        entries,
        entries.map(types.MappingProxyType),
        st.sampled_from([None, [], "name", [("name", "x")], 1]),
    )


def argument(name: str, existing: Existing) -> st.SearchStrategy[Any]:
    """The hostile strategy for one parameter, by the name the legacy functions give it."""
    if name == "session_uuid":
        return st.one_of(
            st.sampled_from(uuid_forms(existing.session_uuid)),
            st.uuids().map(str),
            near_uuids(),
            _hostile_text(),
        )
    if name in ("limit", "offset", "size_bytes"):
        return integers(5, 100)
    if name == "upload_id":
        return integers(existing.upload_id)
    if name == "older_than_hours":
        return hours()
    if name in ("verified", "completed", "consent_user_data"):
        return booleans()
    if name in ("created_after", "created_before", "expires_at"):
        return moments()
    if name == "order":
        return st.one_of(st.sampled_from(ORDERS), st.sampled_from(BAD_ORDERS), _hostile_text())
    if name == "data":
        return update_data()
    if name == "code":
        return text_values("123456", "000000", "ab", max_size=8)
    if name == "sha256":
        return text_values("a" * 64, "F" * 64, "a" * 65, max_size=70)
    if name == "email":
        return text_values(existing.email, existing.email.upper(), "nobody@example.com")
    if name == "storage_key":
        return text_values(f"uploads/{existing.session_uuid}/new.txt", max_size=40)
    return text_values("Ada Lovelace", "notes.txt", "text/plain", "10.0.0.1")


@dataclass(frozen=True, repr=False)
class Drawn:
    """One facade call's arguments, positional and by keyword."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __repr__(self) -> str:
        """The call as Python would spell it, each argument cut to 80 characters (1 MB is long)."""
        shown = [_short(value) for value in self.args]
        shown += [f"{name}={_short(value)}" for name, value in self.kwargs.items()]
        return f"({', '.join(shown)})"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...<{len(text)} characters>"


@st.composite
def calls(draw: st.DrawFn, key: str, existing: Existing) -> Drawn:
    """A call of ``key`` with a hostile strategy per parameter; optional ones sometimes left out,
    positional ones sometimes passed by keyword."""
    spec = REGISTRY[key]
    by_keyword = draw(st.booleans())
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name in spec.validators:
        if name not in spec.required and draw(st.booleans()):
            by_keyword = True  # a later positional argument can no longer follow
            continue
        value = draw(argument(name, existing), label=name)
        if name in spec.positional and not by_keyword:
            args.append(value)
        else:
            kwargs[name] = value
    return Drawn(tuple(args), kwargs)
