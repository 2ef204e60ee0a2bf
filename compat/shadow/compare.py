"""Compat layer: the type-strict comparison of the two paths' results, with a readable diff."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from compat.shadow.digest import Digest

__all__ = ["Difference", "compare", "render"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the two values disagree: ``path`` is like ``[0]['email']``."""

    path: str
    legacy: Any
    orm: Any
    reason: str
    field: str | None = None
    """The innermost mapping key on the path: what the value is (for redaction)."""


def compare(legacy: Any, orm: Any, *, ignore: Collection[str] = ()) -> tuple[Difference, ...]:
    """Every difference between two values, type-strictly.

    ``1 != True``, ``'a' != UUID(...)``, a naive datetime differs from an aware
    one, a list from a tuple. Mapping keys named in ``ignore`` are skipped at
    any depth (values that legitimately differ between two runs, such as a
    sequence-generated id). A large collection may be replaced by its
    compat.shadow.digest.Digest on both sides; two Digests are compared as strictly,
    and the difference says what the digests tell (lengths, element types,
    elements, order), without values.
    """
    ignored = frozenset(ignore)
    if _strictly_equal(legacy, orm, ignored):
        return ()
    found: list[Difference] = []
    _compare(legacy, orm, "", None, ignored, found)
    return tuple(found)


_SCALARS = frozenset({str, int, bool, type(None), datetime, date, time, UUID, bytes})


def _strictly_equal(left: Any, right: Any, ignore: frozenset[str]) -> bool:
    """A fast yes for the usual outcome, two equal results; False means "look closer".

    Python's ``==`` alone would call ``1 == True``, ``1 == 1.0`` and
    ``{1} == frozenset({1})`` equal, so types are matched at every level,
    and only the plain shapes results come in are walked here (dicts with str
    keys, lists, tuples, sets of one scalar type, scalars); anything else,
    and every difference, goes to ``_compare``, which says where and why.
    Comparing every call of a shadowed function is on the caller's time:
    this is several times faster.
    """
    kind = type(left)
    if kind is not type(right):
        return False
    if kind in _SCALARS:
        return bool(left == right)
    if kind is float:
        return bool(left == right)  # NaN != NaN: _compare knows two NaNs agree
    if kind is dict:
        # Equal key sets can still differ in key types (a str subclass on one side).
        if left.keys() != right.keys() or any(type(key) is not str for key in right):
            return False
        for key, value in left.items():
            if type(key) is not str:
                return False
            if key not in ignore and not _strictly_equal(value, right[key], ignore):
                return False
        return True
    if kind is list or kind is tuple:
        return len(left) == len(right) and all(
            _strictly_equal(a, b, ignore) for a, b in zip(left, right, strict=True)
        )
    if kind is set or kind is frozenset:
        # Members all of one scalar type on both sides: equal sets are then strictly
        # equal. (A tuple member could hide a 1 against a True inside it.)
        if len(left) != len(right) or left != right:
            return False
        member = type(next(iter(left), None))
        return (
            member in _SCALARS
            and all(type(item) is member for item in left)
            and all(type(item) is member for item in right)
        )
    return False


def _compare(
    left: Any,
    right: Any,
    path: str,
    field: str | None,
    ignore: frozenset[str],
    found: list[Difference],
) -> None:
    if isinstance(left, Digest) or isinstance(right, Digest):
        _compare_digests(left, right, path, field, found)
        return
    if type(left) is not type(right):
        reason = f"type {type(left).__name__} != {type(right).__name__}"
        found.append(Difference(path, left, right, reason, field))
        return
    if isinstance(left, Mapping):
        # Keys are matched type-strictly too: {1: x} and {True: x} differ.
        left_keys = {_strict(key): key for key in left}
        right_keys = {_strict(key): key for key in right}
        for strict_key in _ordered_union(left_keys, right_keys):
            key = left_keys.get(strict_key, right_keys.get(strict_key))
            if key in ignore:
                continue
            where = f"{path}[{key!r}]"
            name = key if isinstance(key, str) else field
            if strict_key not in right_keys:
                found.append(
                    Difference(where, left[key], _MISSING, "missing on the ORM path", name)
                )
            elif strict_key not in left_keys:
                found.append(
                    Difference(where, _MISSING, right[key], "missing on the legacy path", name)
                )
            else:
                _compare(left[key], right[right_keys[strict_key]], where, name, ignore, found)
        return
    if isinstance(left, (list, tuple)):
        _compare_sequences(left, right, path, field, ignore, found)
        return
    if isinstance(left, (set, frozenset)):
        # Members are matched type-strictly: Python's own {1} == {True} is true.
        left_members = {_strict(item): item for item in left}
        right_members = {_strict(item): item for item in right}
        if left_members.keys() != right_members.keys():
            found.append(
                Difference(
                    path,
                    sorted(
                        (left_members[k] for k in left_members.keys() - right_members), key=repr
                    ),
                    sorted(
                        (right_members[k] for k in right_members.keys() - left_members), key=repr
                    ),
                    "sets differ (only-legacy, only-ORM shown)",
                    field,
                )
            )
        return
    if isinstance(left, datetime) and (left.tzinfo is None) != (right.tzinfo is None):
        found.append(Difference(path, left, right, "naive vs aware datetime", field))
        return
    if not (_is_nan(left) and _is_nan(right)) and left != right:
        found.append(Difference(path, left, right, "values differ", field))


def _compare_sequences(
    left: Sequence[Any],
    right: Sequence[Any],
    path: str,
    field: str | None,
    ignore: frozenset[str],
    found: list[Difference],
) -> None:
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        _compare(a, b, f"{path}[{index}]", field, ignore, found)
    if len(left) != len(right):
        found.append(
            Difference(
                f"{path}[len]",
                len(left),
                len(right),
                f"lengths differ: {len(left)} != {len(right)}",
            )
        )


def _compare_digests(
    left: Any, right: Any, path: str, field: str | None, found: list[Difference]
) -> None:
    if isinstance(left, Digest) and isinstance(right, Digest):
        reason = left.difference(right)
    else:
        # compat.verify.parity digests both sides when either is large: the other is no collection.
        reason = f"type {_kind(left)} != {_kind(right)}"
    if reason is not None:
        found.append(Difference(path, left, right, reason, field))


def _kind(value: Any) -> str:
    return value.kind if isinstance(value, Digest) else type(value).__name__


def _ordered_union(left: Mapping[Any, Any], right: Mapping[Any, Any]) -> list[Any]:
    return [*left, *(key for key in right if key not in left)]


def _is_nan(value: Any) -> bool:
    # NaN != NaN in Python, but two paths that both return NaN agree.
    if type(value) is float:
        return math.isnan(value)
    return type(value) is Decimal and value.is_nan()


def _strict(value: Any) -> Any:
    """A hashable stand-in for a set member or mapping key that tells 1, 1.0 and True apart."""
    if _is_nan(value):
        return (type(value), "NaN")
    if type(value) is tuple:
        return (tuple, tuple(_strict(item) for item in value))
    if type(value) is frozenset:
        return (frozenset, frozenset(_strict(item) for item in value))
    return (type(value), value)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _plain(value: Any, field: str | None) -> str:
    return repr(value)


def render(
    differences: Sequence[Difference],
    show: Callable[[Any, str | None], str] = _plain,
    limit: int = 10,
) -> str:
    """The differences as lines a person reads: ``path: legacy=... orm=... (reason)``.

    ``show(value, field)`` turns a value into text; pass compat.shadow.redact.show for
    logs and reports.
    """
    lines = [
        f"{d.path or '<value>'}: legacy={show(d.legacy, d.field)} orm={show(d.orm, d.field)} "
        f"({d.reason})"
        for d in differences[:limit]
    ]
    if len(differences) > limit:
        lines.append(f"... and {len(differences) - limit} more")
    return "\n".join(lines)
