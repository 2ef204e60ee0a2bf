"""Benchmarks: what the facade adds to a call in `legacy` mode (validation, flag lookup, routing).

Both sides run inside one open unit of work on the same pooled connection, so
the difference between them is the facade's own work. The bare dispatch is
the same routed call with the legacy function swapped for one that does
nothing, minus an equally timed call of a function that does nothing.
"""

from __future__ import annotations

import dataclasses
import gc
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench.database import Seeded
from bench.measure import Samples, time_calls
from compat import transaction
from compat import user_sessions as facade
from compat.routing.declaration import REGISTRY
from legacy import user_sessions as legacy

__all__ = ["DISPATCH", "DISPATCH_VARIANTS", "measure_dispatch_round"]

DISPATCH = "dispatch: get_session in one unit"
DIRECT = "legacy function, lent connection"
FACADE = "facade, legacy mode"
NOOP_FACADE = "facade routed to a no-op"
NOOP = "a no-op call"
DISPATCH_VARIANTS = (DIRECT, FACADE, NOOP_FACADE, NOOP)

_KEY = "user_sessions.get_session"


@contextmanager
def _noop_legacy() -> Iterator[None]:
    spec = REGISTRY[_KEY]
    REGISTRY[_KEY] = dataclasses.replace(spec, legacy=lambda session_uuid: None)
    try:
        yield
    finally:
        REGISTRY[_KEY] = spec


def _nothing(session_uuid: str) -> None:
    return None


def measure_dispatch_round(
    samples: Samples, seeded: Seeded, rng: random.Random, calls: int, round_: int
) -> None:
    """One round: the variants interleaved call by call."""
    arguments = [rng.choice(seeded.session_uuids) for _ in range(calls)]
    pairs: list[tuple[str, Callable[[str], object]]] = [
        (DIRECT, legacy.get_session),
        (FACADE, facade.get_session),
    ]
    with transaction():
        _alternate(samples, pairs, arguments, rng)
    # The no-op pair: many more calls, since each is a few microseconds.
    noops: list[tuple[str, Callable[[str], object]]] = [
        (NOOP_FACADE, facade.get_session),
        (NOOP, _nothing),
    ]
    with transaction(), _noop_legacy():
        _alternate(samples, noops, arguments * 10, rng)


def _alternate(
    samples: Samples,
    variants: list[tuple[str, Callable[[str], object]]],
    arguments: list[str],
    rng: random.Random,
) -> None:
    """Each argument through every variant, in a new random order each time."""
    found: dict[str, list[float]] = {name: [] for name, _ in variants}
    gc.collect()
    for argument in arguments:
        rng.shuffle(variants)
        for name, call in variants:
            found[name] += time_calls(call, [argument], collect_garbage=False)
    for name, values in found.items():
        samples.add(DISPATCH, name, values)
