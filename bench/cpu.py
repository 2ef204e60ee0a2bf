"""Benchmarks: CPU per call of a few operations, variants interleaved, and a cProfile of one.

Wall-clock medians on a shared machine carry the neighbours' load; the
process's own CPU time (``time.process_time``) mostly does not, so this is
what shows where microseconds of Python went. Not part of ``python -m
bench``, not in CI:

    python -m bench.cpu --only get_session,update_session --variants peer,legacy,orm
    python -m bench.cpu --only get_session --profile orm   # cProfile, by tottime

It makes its own scratch database (as ``python -m bench`` does), seeds it,
and runs ``--calls`` calls of every variant, interleaved call by call.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import time
from collections.abc import Callable

from bench.database import scratch_database, seed, server_url
from bench.operations import OPERATIONS, Call, Operation
from bench.peer import PEER, peer_caller, peer_pool
from bench.suite import bench_runtime

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Print CPU mean and wall median per call for each operation and variant."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--only", default="get_session", help="comma-separated facade keys")
    parser.add_argument("--variants", default="peer,legacy,orm,shadow@1")
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--profile", metavar="VARIANT", help="then cProfile this variant")
    args = parser.parse_args(argv)
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    variants: list[str] = args.variants.split(",")
    server, _ = server_url()
    with scratch_database(server):
        seeded = seed(args.sessions)
        with bench_runtime(table=False) as (runtime, stores), peer_pool() as pool:
            for operation in (op for op in OPERATIONS if any(w in op.name for w in wanted)):
                rng = random.Random(1)
                calls = [operation.arguments(seeded, rng) for _ in range(args.calls)]
                peer = peer_caller(operation, pool)

                def run(
                    variant: str,
                    call: Call,
                    operation: Operation = operation,
                    peer: Callable[[Call], object] = peer,
                ) -> object:
                    if variant == PEER:
                        return peer(call)
                    runtime.flags = stores[variant]
                    return operation.facade(*call[0], **call[1])

                _measure(operation.name, variants, calls, run, rng, runtime.dispatcher.drain)
                if args.profile:
                    print(_profiled(args.profile, calls, run))
    return 0


def _measure(
    name: str,
    variants: list[str],
    calls: list[Call],
    run: Callable[[str, Call], object],
    rng: random.Random,
    drain: Callable[..., object],
) -> None:
    for variant in variants:  # warm up
        for call in calls[:50]:
            run(variant, call)
    cpu: dict[str, list[int]] = {variant: [] for variant in variants}
    wall: dict[str, list[int]] = {variant: [] for variant in variants}
    order = list(variants)
    for call in calls:
        rng.shuffle(order)
        for variant in order:
            cpu_started, wall_started = time.process_time_ns(), time.perf_counter_ns()
            run(variant, call)
            wall[variant].append(time.perf_counter_ns() - wall_started)
            cpu[variant].append(time.process_time_ns() - cpu_started)
            drain(timeout=60)  # observations are published off the timed call
    for variant in variants:
        print(
            f"{name:45s} {variant:12s} cpu mean {statistics.mean(cpu[variant]) / 1e3:7.1f} us"
            f"   wall median {statistics.median(wall[variant]) / 1e3:7.1f} us"
        )


def _profiled(variant: str, calls: list[Call], run: Callable[[str, Call], object]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for call in calls:
        run(variant, call)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(35)
    return out.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
