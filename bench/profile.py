"""Benchmarks: where one operation's time goes in one variant, as a pyinstrument call tree."""

from __future__ import annotations

import random

from bench.database import Seeded
from bench.operations import Operation
from bench.peer import PEER, peer_caller, peer_pool
from bench.suite import ORIGINAL, VARIANTS, bench_runtime

__all__ = ["profile"]


def profile(operation: Operation, variant: str, seeded: Seeded, calls: int) -> str:
    """Run ``calls`` calls of ``operation`` in ``variant`` under pyinstrument; its text report."""
    try:
        from pyinstrument import Profiler
    except ImportError:  # pragma: no cover - a dev extra
        return "pyinstrument is not installed: pip install -e '.[dev]'"
    if variant not in VARIANTS:
        return f"unknown variant {variant!r}; variants are {', '.join(VARIANTS)}"
    rng = random.Random(5)
    arguments = [operation.arguments(seeded, rng) for _ in range(calls)]
    with bench_runtime() as (runtime, stores), peer_pool() as pool:
        peer = peer_caller(operation, pool)
        function = operation.legacy
        if variant == PEER:
            function = lambda *args, **kwargs: peer((args, kwargs))  # noqa: E731
        elif variant != ORIGINAL:
            runtime.flags = stores[variant]
            function = operation.facade
        for args, kwargs in arguments[:20]:  # warm up
            function(*args, **kwargs)
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for args, kwargs in arguments:
            function(*args, **kwargs)
        profiler.stop()
    return str(profiler.output_text(unicode=False, color=False))
