"""Benchmarks: round trips per call of every facade function in every pooled variant."""

from __future__ import annotations

import random
from collections.abc import Sequence

from bench.database import Seeded
from bench.operations import Operation
from bench.peer import PEER, peer_caller, peer_pool
from bench.suite import ORIGINAL, VARIANTS, bench_runtime
from bench.wire import trace_round_trips
from orm.database import get_engine

__all__ = ["count_round_trips", "round_trips_table"]

POOLED = tuple(variant for variant in VARIANTS if variant != ORIGINAL and "0.01" not in variant)
"""The variants whose calls all take the same route (at rate 0.01 most calls skip the candidate)."""


def count_round_trips(
    operations: Sequence[Operation], seeded: Seeded
) -> dict[str, dict[str, list[str]]]:
    """Per operation and variant, the queries one call sent (after a warm-up call)."""
    rng = random.Random(3)
    sent: dict[str, dict[str, list[str]]] = {}
    # Without the observations table: its writes share the pool, from another thread.
    with (
        bench_runtime(table=False) as (runtime, stores),
        trace_round_trips(get_engine()) as trace,
        peer_pool(size=1) as pool,
    ):
        peer = pool.getconn()
        trace.follow(peer)
        pool.putconn(peer)
        for operation in operations:
            call = peer_caller(operation, pool)
            call(operation.arguments(seeded, rng))
            before = len(trace.queries())
            call(operation.arguments(seeded, rng))
            sent.setdefault(operation.name, {})[PEER] = trace.queries()[before:]
            for variant in POOLED:
                if variant == PEER:
                    continue
                runtime.flags = stores[variant]
                args, kwargs = operation.arguments(seeded, rng)
                operation.facade(*args, **kwargs)  # the connection gets traced on checkout
                before = len(trace.queries())
                args, kwargs = operation.arguments(seeded, rng)
                operation.facade(*args, **kwargs)
                runtime.dispatcher.drain(timeout=60)
                sent.setdefault(operation.name, {})[variant] = trace.queries()[before:]
    return sent


def round_trips_table(sent: dict[str, dict[str, list[str]]]) -> str:
    """A markdown table of the counts, then the queries of each variant of the first operation."""
    lines = [
        "| operation | " + " | ".join(POOLED) + " |",
        "|---|" + "---:|" * len(POOLED),
    ]
    for name, variants in sent.items():
        lines.append(f"| {name} | " + " | ".join(str(len(variants[v])) for v in POOLED) + " |")
    for name, variants in list(sent.items())[:1]:
        for variant in POOLED:
            lines += ["", f"{name}, {variant}:"]
            lines += [f"  {query[:110]}" for query in variants[variant]]
    return "\n".join(lines)
