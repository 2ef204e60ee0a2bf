"""Bench: what pinning the session time zone costs per connection, three ways (docs/pooler.md).

python -m bench.time_zone_pin [libpq DSN]; default the local server's postgres database.
Connect, one transaction with SELECT now(), close; the three ways interleaved at random.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable

import psycopg2


def main(dsn: str, cycles: int = 900) -> None:
    def query(conn: psycopg2.extensions.connection) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT now()")
        conn.commit()

    def startup_parameter() -> None:
        conn = psycopg2.connect(dsn, options="-c TimeZone=UTC")
        query(conn)
        conn.close()

    def set_on_connect() -> None:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        conn.autocommit = False
        query(conn)
        conn.close()

    def set_local_per_transaction() -> None:
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            cur.execute("SELECT now()")
        conn.commit()
        conn.close()

    ways: list[Callable[[], None]] = [startup_parameter, set_on_connect, set_local_per_transaction]
    timings: dict[str, list[float]] = {way.__name__: [] for way in ways}
    for _ in range(cycles):
        way = random.choice(ways)
        start = time.perf_counter()
        way()
        timings[way.__name__].append((time.perf_counter() - start) * 1000)
    for name, values in timings.items():
        print(f"{name:28} n={len(values):4}  median {statistics.median(values):.2f} ms")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
    )
