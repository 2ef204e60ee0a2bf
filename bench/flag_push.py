"""Benchmarks: how soon a flip reaches other processes through LISTEN/NOTIFY (not run in CI).

`python -m bench.flag_push [--processes N] [--flips N]` starts N watcher
processes on a scratch database, each resolving one key in a tight loop
with a TTL of ten minutes (so only the push can deliver a flip in time), flips
that key N times from here, and prints the delay from each flip (from before it is sent) to each
process serving the new mode: median, p99 and max, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Final

from bench.database import scratch_database, server_url
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY

KEY: Final = "user_sessions.get_session"
_MODES: Final = ("shadow", "legacy")

_WATCHER = """
import sys, time
import compat
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY

key, flips = sys.argv[1], int(sys.argv[2])
store = FlagStore(REGISTRY, ttl_seconds=600, listen=True)
store.resolve(key)  # the first call starts the listener
assert store.listener is not None and store.listener.connected.wait(20)
print("ready", flush=True)
seen, changes = store.resolve(key).mode, 0
deadline = time.monotonic() + 10 + flips
while changes < flips and time.monotonic() < deadline:
    mode = store.resolve(key).mode
    if mode != seen:
        print(time.monotonic(), flush=True)
        seen, changes = mode, changes + 1
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flag_push", description=__doc__)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--flips", type=int, default=50)
    args = parser.parse_args(argv)
    import compat  # noqa: F401  (declares every facade function)

    server, _ = server_url()
    with scratch_database(server, "bench_push") as url:
        watchers = [
            subprocess.Popen(
                [sys.executable, "-c", _WATCHER, KEY, str(args.flips)],
                env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.processes)
        ]
        try:
            for watcher in watchers:
                assert watcher.stdout is not None
                assert watcher.stdout.readline().strip() == "ready"
            store = FlagStore(REGISTRY, environ={}, ttl_seconds=3600)
            delays: list[float] = []
            for index in range(args.flips):
                # From before the change is sent: an upper bound that includes its commit.
                committed = time.monotonic()
                store.set(KEY, _MODES[index % 2], reason="bench.flag_push", by="bench")
                for watcher in watchers:
                    assert watcher.stdout is not None
                    delays.append(float(watcher.stdout.readline()) - committed)
        finally:
            for watcher in watchers:
                watcher.kill()
                watcher.wait(timeout=30)
                if watcher.stdout is not None:
                    watcher.stdout.close()
    ordered = sorted(delays)
    p99 = ordered[max(0, round(0.99 * len(ordered)) - 1)]
    print(
        f"flip -> served, {args.processes} processes x {args.flips} flips: "
        f"median {statistics.median(ordered) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
        f"max {ordered[-1] * 1e3:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
