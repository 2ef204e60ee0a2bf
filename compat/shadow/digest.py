"""Compat layer: a large result reduced to its size, element types and hashes, for comparing paths.

`compat verify` on a whole table would otherwise hold both paths' results at
once (two sets of a million uuids). compat.verify.parity reduces each path's result
to a Digest as soon as that path has run, and compat.shadow.compare compares two
Digests as strictly as it compares the values: ``1`` and ``True``, a str and
a UUID, a list and a tuple stay different; lists are compared in order, sets
and mappings in any order.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

__all__ = ["DIGEST_ABOVE", "Digest", "digest_if_large"]

DIGEST_ABOVE: Final = 10_000
"""A list, tuple, set or frozenset with more elements than this is compared by its Digest."""

_HASH_BYTES: Final = 16
_MODULUS: Final = 1 << (8 * _HASH_BYTES)
_EPOCH: Final = datetime(1, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)
# Leaves whose repr is already what equality compares (no -0.0, no time zones).
_PLAIN: Final = frozenset({str, int, bool, bytes, type(None), uuid.UUID, date})


@dataclass(frozen=True, slots=True)
class Digest:
    """A collection as a type-strict comparison needs it, without its values.

    Two Digests are equal when their collections are of the same type, hold
    as many elements of each type, and hold equal elements (as
    compat.shadow.compare sees them): in the same order for a list or tuple, in any
    order for a set. Its repr shows sizes and type names only, never a value.
    """

    kind: str
    """The collection's type name."""
    count: int
    types: tuple[tuple[str, int], ...]
    """Each element type's name and how many elements have it, by name."""
    members: int
    """An order-independent hash of the elements: the sum of their hashes."""
    sequence: str | None
    """For a list or tuple, a hash of the elements in order; None for a set."""

    @classmethod
    def of(cls, values: Collection[Any], ignore: Collection[str] = ()) -> Digest:
        """Digest ``values``; mapping keys in ``ignore`` are skipped at any depth, as in compare."""
        skip = frozenset(ignore)
        ordered = hashlib.blake2b(digest_size=_HASH_BYTES) if _is_sequence(values) else None
        members = 0
        for value in values:
            element = hashlib.blake2b(_encode(value, skip), digest_size=_HASH_BYTES).digest()
            members += int.from_bytes(element, "big")
            if ordered is not None:
                ordered.update(element)
        types = Counter(_type_name(type(value)) for value in values)
        return cls(
            kind=_type_name(type(values)),
            count=len(values),
            types=tuple(sorted(types.items())),
            members=members % _MODULUS,
            sequence=None if ordered is None else ordered.hexdigest(),
        )

    def difference(self, other: Digest) -> str | None:
        """Why the two collections differ, as far as their digests tell; None when they agree."""
        if self == other:
            return None
        if self.kind != other.kind:
            return f"type {self.kind} != {other.kind}"
        if self.count != other.count:
            return f"lengths differ: {self.count:,} != {other.count:,} (compared by digest)"
        if self.types != other.types:
            return "element types differ (compared by digest)"
        if self.members != other.members:
            return "same length, different elements (compared by digest; values not kept)"
        return "the same elements in another order (compared by digest; values not kept)"

    def __repr__(self) -> str:
        if len(self.types) == 1:
            return f"<{self.kind} of {self.count:,} {self.types[0][0]}, digested>"
        shown = ", ".join(f"{count:,} {name}" for name, count in self.types)
        return f"<{self.kind} of {self.count:,}{': ' if shown else ''}{shown}, digested>"


def digest_if_large(value: Any, above: int, ignore: Collection[str] = ()) -> Any:
    """``value`` as a Digest when it is a list, tuple, set or frozenset of more than ``above``."""
    if isinstance(value, (list, tuple, set, frozenset)) and len(value) > above:
        return Digest.of(value, ignore)
    return value


def _is_sequence(values: Collection[Any]) -> bool:
    return isinstance(values, (list, tuple))


def _type_name(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _encode(value: Any, ignore: frozenset[str]) -> bytes:
    return _canonical(value, ignore).encode("utf-8", "backslashreplace")


def _canonical(value: Any, ignore: frozenset[str]) -> str:
    """Text that is the same for two values exactly when compare() finds no difference."""
    kind = type(value)
    name = _type_name(kind)
    if kind in _PLAIN:
        return f"{name}:{value!r}"
    if isinstance(value, Mapping):
        items = sorted(
            _framed(_canonical(key, ignore)) + _framed(_canonical(item, ignore))
            for key, item in value.items()
            if key not in ignore
        )
        return f"{name}{{{''.join(items)}}}"
    if isinstance(value, (list, tuple)):
        return f"{name}[{''.join(_framed(_canonical(item, ignore)) for item in value)}]"
    if isinstance(value, (set, frozenset)):
        return f"{name}{{{''.join(sorted(_framed(_canonical(item, ignore)) for item in value))}}}"
    if kind is float:
        # NaN agrees with NaN and -0.0 with 0.0, as in compat.shadow.compare.
        return f"{name}:{'nan' if math.isnan(value) else repr(value + 0.0)}"
    if kind is Decimal:
        return f"{name}:{_decimal(value)}"
    if isinstance(value, datetime) and value.tzinfo is not None:
        # Aware datetimes are equal when they are the same instant, whatever their zones.
        offset = value.utcoffset() or timedelta(0)
        instant = (value.replace(tzinfo=None) - _EPOCH) // _MICROSECOND - offset // _MICROSECOND
        return f"{name}:aware:{instant}"
    return f"{name}:{value!r}"


def _framed(text: str) -> str:
    # Length-prefixed, so that nested elements cannot run into each other.
    return f"{len(text)}:{text}"


def _decimal(value: Decimal) -> str:
    # Decimal("1.0") == Decimal("1.00"): drop trailing zeros (exactly; normalize() rounds).
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return str(value)
    if value == 0:
        return "0"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    kept = list(digits)
    while kept[-1] == 0:
        kept.pop()
        exponent += 1
    return f"{'-' if sign else ''}{''.join(map(str, kept))}e{exponent}"
