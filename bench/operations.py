"""Benchmarks: the facade functions measured, read from the registry, with each call's arguments.

Every declared facade function is measured except the deletes and the bulk
maintenance writes (``Shape.benchmarked``): each would remove the rows the
next calls need. A function's calls are its declared verify calls (the
sampled ones, never the edge cases), built on the bench's seeded rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import compat  # noqa: F401  (declares every facade function)
from bench.database import Seeded
from compat.routing.declaration import REGISTRY, FacadeFunction, Shape
from compat.verify.calls import Samples

__all__ = ["AGGREGATE", "CATEGORIES", "OPERATIONS", "PAGE", "POINT_READ", "WRITE", "Call"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""One call's positional and keyword arguments."""

POINT_READ: Final = Shape.POINT_READ.value
WRITE: Final = Shape.ROW_WRITE.value
PAGE: Final = Shape.PAGE.value
AGGREGATE: Final = Shape.AGGREGATE.value
CATEGORIES: Final = tuple(shape.value for shape in Shape if shape.benchmarked)

_PICK: Final = 3
"""Seeded rows of each kind offered to a function's call builder, per call."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One facade function as measured: its two implementations and how to call it."""

    name: str
    category: str
    facade: Callable[..., Any]
    legacy: Callable[..., Any]
    arguments: Callable[[Seeded, random.Random], Call]
    weight: float = 1.0
    """Scales the calls per batch: heavy operations (whole-table reads) get fewer."""
    autocommit: bool = False
    """Whether the facade runs it in autocommit (a read); the peer does the same."""


def _arguments(spec: FacadeFunction) -> Callable[[Seeded, random.Random], Call]:
    builder = spec.calls
    assert builder is not None, f"{spec.key} declares no calls"

    def arguments(seeded: Seeded, rng: random.Random) -> Call:
        # A few random seeded rows, so that successive calls touch different rows.
        samples = Samples(
            sessions=tuple(rng.sample(seeded.session_uuids, _PICK)),
            emails=tuple(rng.sample(seeded.emails, _PICK)),
            uploads=tuple(rng.sample(seeded.upload_ids, _PICK)),
            sessions_with_uploads=tuple(rng.sample(seeded.with_uploads, _PICK)),
        )
        call = rng.choice([c for c in builder(samples, _PICK, rng) if not c.edge])
        return tuple(call.args), dict(call.kwargs)

    return arguments


def operations() -> tuple[Operation, ...]:
    """One operation per benchmarked facade function in the registry, by shape, then key."""
    chosen = sorted(
        (spec for spec in REGISTRY.values() if spec.shape.benchmarked and spec.calls is not None),
        key=lambda spec: (CATEGORIES.index(spec.shape.value), spec.key),
    )
    return tuple(
        Operation(
            spec.key,
            spec.shape.value,
            spec.routed,
            spec.legacy,
            _arguments(spec),
            spec.shape.weight,
            spec.autocommit,
        )
        for spec in chosen
    )


OPERATIONS: Final = operations()
"""The facade functions the bench measures, as declared when the bench was imported."""
