"""Benchmarks: the read cache: a hit against an uncached read and the peer, hits, trigger cost.

Run from the repository root (not part of CI's default run):

    python -m bench.cache                    # a few minutes; prints a markdown table
    python -m bench.cache --redis redis://127.0.0.1:6379/0   # the Redis backend too

It creates a throwaway database as ``python -m bench`` does (DATABASE_URL,
else the local unix socket, else POSTGRES_*), migrated to head and seeded,
and drops it afterwards. Variants run interleaved, batch by batch.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import psycopg2

import layer_settings
from bench.database import describe_url, scratch_database, seed, server_url
from bench.operations import OPERATIONS, Operation
from bench.peer import PEER, peer_caller, peer_pool
from compat import uploads, user_sessions
from compat.runtime import Runtime, build_runtime, get_runtime, reset_runtime

KEY = "user_sessions.get_session"
LIST_KEY = "uploads.list_uploads"


def _uploads_of(session_uuid: str) -> object:
    return uploads.list_uploads(session_uuid)


def _heard(runtime: Runtime, key: str) -> None:
    deadline = time.monotonic() + 10
    pause = threading.Event()
    while runtime.cache.ttl_of(key) is None:
        assert time.monotonic() < deadline, "the cache setting was not heard"
        pause.wait(0.01)


def _median_us(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1e6


def _timed(call: Callable[[], object], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _reader(picks: Iterator[str]) -> Callable[[], object]:
    return lambda: user_sessions.get_session(next(picks))


def _cached_runtime(backend: str) -> Runtime:
    runtime = build_runtime(cache_backend=backend)
    assert runtime.cache.wait_ready(10), "the cache listener did not start"
    settings = runtime.cache_settings
    assert settings is not None
    settings.set(KEY, 600, reason="bench", by="bench")
    _heard(runtime, KEY)
    return runtime


def _point_reads(
    runtimes: dict[str, Runtime], uuids: Sequence[str], rounds: int, batch: int
) -> dict[str, float]:
    """Median get_session per variant: the peer and the uncached facade on random sessions,
    the cached runtimes on one session they already hold (every call a hit)."""
    rng = random.Random(3)
    variants = [PEER, *runtimes]
    times: dict[str, list[float]] = {name: [] for name in variants}
    hot = uuids[0]
    for runtime in runtimes.values():
        reset_runtime(runtime)
        user_sessions.get_session(hot)  # the one miss: from here on, hits
    with peer_pool() as pool:
        peer = peer_caller(_operation(KEY), pool)
        for _ in range(rounds):
            for name in rng.sample(variants, len(variants)):
                picks = iter(rng.choices(uuids, k=batch))
                if name == PEER:
                    times[name] += _timed(_peer_reader(peer, picks), batch)
                    continue
                reset_runtime(runtimes[name])
                if name == "uncached":
                    times[name] += _timed(_reader(picks), batch)
                else:
                    times[name] += _timed(lambda: user_sessions.get_session(hot), batch)
    return {name: _median_us(samples) for name, samples in times.items()}


def _peer_reader(
    peer: Callable[[tuple[tuple[object, ...], dict[str, object]]], object], picks: Iterator[str]
) -> Callable[[], object]:
    return lambda: peer(((next(picks),), {}))


def _operation(key: str) -> Operation:
    found = [operation for operation in OPERATIONS if operation.name == key]
    assert found, f"{key} is not benchmarked"
    return found[0]


def _zipf(
    uuids: Sequence[str],
    n: int,
    writes: float,
    read: Callable[[str], object] = user_sessions.get_session,
    s: float = 1.1,
) -> dict[str, float]:
    """Hit ratio of ``n`` calls on Zipf-ranked sessions, a share ``writes`` of them updates.

    ``read`` is called with the session's uuid. From an empty cache: the first
    read of each session is a miss.
    """
    rng = random.Random(11)
    weights = [1.0 / (rank**s) for rank in range(1, len(uuids) + 1)]
    picks = rng.choices(uuids, weights=weights, k=n)
    cache = get_runtime().cache
    cache.clear()  # each workload starts cold
    stats = cache.stats
    hits, misses = stats.hits, stats.misses
    for index, session_uuid in enumerate(picks):
        if writes and rng.random() < writes:
            user_sessions.update_session(session_uuid, {"name": f"renamed {index}"})
        else:
            read(session_uuid)
    hit = stats.hits - hits
    missed = stats.misses - misses
    return {"hit_ratio": hit / max(1, hit + missed), "reads": hit + missed}


def _trigger_cost(url: str, uuids: Sequence[str], rounds: int, batch: int) -> dict[str, float]:
    """Median time of a one-row and a 1,000-row UPDATE and COMMIT, the trigger on and off."""
    connection = psycopg2.connect(url)
    with connection.cursor() as cursor:
        # Without waiting for the WAL flush: a durable commit's fsync jitter (milliseconds
        # here) would hide the trigger's cost, which is CPU and the notification queue.
        cursor.execute("SET synchronous_commit = off")
    connection.commit()
    rng = random.Random(5)
    single: dict[str, list[float]] = {"on": [], "off": []}
    bulk: dict[str, list[float]] = {"on": [], "off": []}
    block = list(uuids[:1000])
    try:
        for round_ in range(rounds):
            for state in rng.sample(["on", "off"], 2):
                with connection.cursor() as cursor:
                    verb = "ENABLE" if state == "on" else "DISABLE"
                    cursor.execute(f"ALTER TABLE user_sessions {verb} TRIGGER compat_cache_notify")
                connection.commit()
                for index in range(batch):
                    target = rng.choice(uuids)
                    started = time.perf_counter()
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "UPDATE user_sessions SET name = %s WHERE uuid = %s",
                            (f"bench {round_} {index}", target),
                        )
                    connection.commit()
                    single[state].append(time.perf_counter() - started)
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    cursor.execute(
                        "UPDATE user_sessions SET name = name || '.' WHERE uuid = ANY(%s::uuid[])",
                        (block,),
                    )
                connection.commit()
                bulk[state].append(time.perf_counter() - started)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE user_sessions ENABLE TRIGGER compat_cache_notify")
        connection.commit()
    finally:
        connection.close()
    return {
        "single_on_us": _median_us(single["on"]),
        "single_off_us": _median_us(single["off"]),
        "bulk_on_ms": _median_us(bulk["on"]) / 1000,
        "bulk_off_ms": _median_us(bulk["off"]) / 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--zipf-calls", type=int, default=20_000)
    parser.add_argument("--redis", metavar="URL", help="also measure the Redis backend")
    args = parser.parse_args(argv)
    server, chosen = server_url()
    print(f"# python -m bench.cache, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"server: {describe_url(server)} ({chosen}); {platform.platform()}, "
        f"Python {platform.python_version()}"
    )
    with scratch_database(server, prefix="bench_cache") as url:
        seeded = seed(args.sessions)
        uuids = seeded.session_uuids
        runtimes = {
            "uncached": build_runtime(cache_backend="off"),
            "memory hit": _cached_runtime("memory"),
        }
        if args.redis:
            runtimes["redis hit"] = _cached_runtime(args.redis)
        try:
            reads = _point_reads(runtimes, uuids, args.rounds, args.batch)
            print("\n| get_session (legacy mode) | median per call | / peer | / uncached |")
            print("|---|---:|---:|---:|")
            for name, micros in reads.items():
                print(
                    f"| {name} | {micros:.1f} us | {micros / reads[PEER]:.2f}x | "
                    f"{micros / reads['uncached']:.2f}x |"
                )
            reset_runtime(runtimes["memory hit"])
            read_only = _zipf(uuids, args.zipf_calls, writes=0.0)
            mixed = _zipf(uuids, args.zipf_calls, writes=0.01)
            settings = runtimes["memory hit"].cache_settings
            assert settings is not None
            settings.set(LIST_KEY, 600, reason="bench", by="bench")
            _heard(runtimes["memory hit"], LIST_KEY)
            lists = _zipf(uuids, args.zipf_calls, writes=0.0, read=_uploads_of)
            lists_mixed = _zipf(uuids, args.zipf_calls, writes=0.01, read=_uploads_of)
            print(
                f"\nZipf s=1.1 over {len(uuids)} sessions, {args.zipf_calls} calls, memory backend:"
            )
            print(f"- reads only: hit ratio {read_only['hit_ratio']:.1%}")
            print(
                f"- 1% of calls update a session through the facade: hit ratio "
                f"{mixed['hit_ratio']:.1%} (a point read: a write drops only its row's entries)"
            )
            print(
                f"- uploads.list_uploads (a list, per-table): reads only {lists['hit_ratio']:.1%}, "
                f"with 1% session updates {lists_mixed['hit_ratio']:.1%}"
            )
        finally:
            reset_runtime(None)
            for runtime in runtimes.values():
                runtime.close()
        cost = _trigger_cost(
            layer_settings.current().database.dsn(), uuids, args.rounds, args.batch // 4
        )
        print("\n| write (psycopg2, synchronous_commit off) | trigger off | trigger on |")
        print("|---|---|---|")
        one = (cost["single_off_us"], cost["single_on_us"])
        many = (cost["bulk_off_ms"], cost["bulk_on_ms"])
        print(f"| UPDATE one row + COMMIT | {one[0]:.0f} us | {one[1]:.0f} us |")
        print(f"| UPDATE 1,000 rows + COMMIT | {many[0]:.1f} ms | {many[1]:.1f} ms |")
        del url
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
