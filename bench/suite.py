"""Benchmarks: every measured facade function in every variant, interleaved round by round."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from bench.bulk import measure_bulk
from bench.database import Seeded
from bench.dispatch import measure_dispatch_round
from bench.measure import Samples, time_calls
from bench.operations import Call, Operation
from bench.peer import PEER, peer_caller, peer_pool
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY
from compat.runtime import Runtime, build_runtime, use_runtime
from compat.shadow.publishers import LogPublisher, Publisher, TablePublisher

__all__ = ["COMPARED", "ORIGINAL", "PEER", "VARIANTS", "Settings", "run_suite"]

ORIGINAL: Final = "original"
"""The legacy function as production calls it today: a new connection per call."""
VARIANTS: Final[dict[str, str | None]] = {
    ORIGINAL: None,
    PEER: None,
    "legacy": "legacy",
    "orm": "orm",
    "shadow@1": "shadow:1",
    "shadow@0.01": "shadow:0.01",
    "live@1": "live:1",
    "live@0.01": "live:0.01",
}
"""Variant name -> the COMPAT_FLAGS value every facade function gets (None: no facade)."""
COMPARED: Final = frozenset(name for name, flag in VARIANTS.items() if flag and ":" in flag)


@dataclass(frozen=True, slots=True)
class Settings:
    """How much to measure."""

    rounds: int
    batch: int
    """Calls per (operation, variant) per round, scaled by the operation's weight."""
    dispatch_calls: int
    bulk_rows: int
    bulk_rounds: int


def _stores() -> dict[str, FlagStore]:
    stores: dict[str, FlagStore] = {}
    for name, flag in VARIANTS.items():
        if flag is None:
            continue
        store = FlagStore(
            REGISTRY,
            environ={"COMPAT_FLAGS": f"*={flag}"},
            ttl_seconds=1e9,
            read_table=dict,
        )
        store.refresh()
        assert not store.problems, store.problems
        stores[name] = store
    return stores


@contextmanager
def bench_runtime(*, table: bool = True) -> Iterator[tuple[Runtime, dict[str, FlagStore]]]:
    """The layer's runtime with production publishers and one flag store per variant.

    ``table=False`` leaves out the observations table, whose writes share the pool.
    """
    stores = _stores()
    publishers: list[Publisher] = [LogPublisher()]
    if table:
        publishers.append(TablePublisher())
    runtime = build_runtime(publishers=publishers)
    runtime.flags = stores["legacy"]
    with use_runtime(runtime):
        yield runtime, stores


def _caller(function: Callable[..., Any]) -> Callable[[Call], object]:
    def call(arguments: Call) -> object:
        args, kwargs = arguments
        return function(*args, **kwargs)

    return call


def run_suite(
    operations: Sequence[Operation],
    seeded: Seeded,
    settings: Settings,
    *,
    progress: Callable[[str], None] = print,
    include_dispatch: bool = True,
    include_bulk: bool = True,
) -> tuple[Samples, dict[str, list[float]], dict[tuple[str, str], int]]:
    """Measure; return per-call samples, bulk per-row samples and the comparison counters.

    The facade's variants are interleaved call by call: on a shared machine
    the load changes from one millisecond to the next, and a variant measured
    a batch at a time would catch a different share of it than the others.
    """
    rng = random.Random(11)
    samples = Samples()
    with bench_runtime() as (runtime, stores), peer_pool() as pool:
        variants = list(VARIANTS)
        peers = {operation.name: peer_caller(operation, pool) for operation in operations}
        # Warm up every path (connections, compiled caches) without recording.
        for operation in operations:
            _interleaved(operation, variants, seeded, rng, 3, runtime, stores, None, peers)
        for round_ in range(settings.rounds):
            progress(f"round {round_ + 1}/{settings.rounds}")
            for operation in operations:
                calls = max(1, round(settings.batch * operation.weight))
                _interleaved(
                    operation, variants, seeded, rng, calls, runtime, stores, samples, peers
                )
            if include_dispatch:
                runtime.flags = stores["legacy"]
                measure_dispatch_round(samples, seeded, rng, settings.dispatch_calls, round_)
        counts = runtime.counters.snapshot()
    bulk: dict[str, list[float]] = {}
    if include_bulk:
        progress(f"bulk insert of {settings.bulk_rows} rows, {settings.bulk_rounds} round(s)")
        bulk = measure_bulk(settings.bulk_rows, settings.bulk_rounds, rng)
    return samples, bulk, counts


def _interleaved(
    operation: Operation,
    variants: Sequence[str],
    seeded: Seeded,
    rng: random.Random,
    calls: int,
    runtime: Runtime,
    stores: dict[str, FlagStore],
    samples: Samples | None,
    peers: dict[str, Callable[[Call], object]],
) -> None:
    """``calls`` calls of every variant: the facade's interleaved call by call, then the original.

    The facade variants run in a new random order for every call, so none
    always follows the same neighbour. The original variant runs in a block
    of its own afterwards: each of its calls makes the server start a backend
    and tear it down after the call returns, which would slow whichever
    call came next. The peer (the legacy SQL on a psycopg2 pool, no facade)
    is interleaved with the facade's variants.
    """
    pooled = [variant for variant in variants if variant != ORIGINAL]
    durations: dict[str, list[float]] = {variant: [] for variant in variants}
    gc.collect()
    for _ in range(calls):
        rng.shuffle(pooled)
        for variant in pooled:
            if variant == PEER:
                call = peers[operation.name]
            else:
                runtime.flags = stores[variant]
                call = _caller(operation.facade)
            durations[variant] += time_calls(
                call, [operation.arguments(seeded, rng)], collect_garbage=False
            )
            if variant in COMPARED:
                # Publishing runs off the caller's thread, as in production;
                # it is finished here so that it does not slow the next
                # variant's call down.
                runtime.dispatcher.drain(timeout=60)
    if ORIGINAL in durations:
        arguments = [operation.arguments(seeded, rng) for _ in range(calls)]
        durations[ORIGINAL] = time_calls(_caller(operation.legacy), arguments)
        time.sleep(0.05)  # let the server finish closing those connections
    if samples is not None:
        for variant, values in durations.items():
            samples.add(operation.name, variant, values)
