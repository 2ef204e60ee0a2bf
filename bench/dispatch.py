"""Benchmark: what the facade adds to a call in `legacy` mode (dispatch, validation, flag lookup).

Run: python -m bench.dispatch [--iterations N] [--repeats R]

It makes a throwaway database on the server that DATABASE_URL names (default:
postgres@127.0.0.1:5432), migrates and seeds it, measures, and drops it. Both
sides run inside one open unit of work on the same pooled connection, so the
difference between them is the facade's own work. Figures are medians of
repeats of per-call means, in microseconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from compat import transaction
from compat import user_sessions as facade
from compat.registry import REGISTRY
from compat.runtime import get_runtime, reset_runtime
from legacy import user_sessions as legacy
from migrations.config import alembic_config
from orm.database import create_engine, database_url, dispose_engine


@contextmanager
def scratch_database() -> Iterator[str]:
    """A migrated throwaway database; DATABASE_URL points at it while the block runs."""
    server = database_url()
    name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(
        server.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        engine.dispose()
        yield url
    finally:
        dispose_engine()
        reset_runtime(None)
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def per_call_us(call: Callable[[], Any], iterations: int, repeats: int) -> list[float]:
    """Per-call mean in microseconds, for each of ``repeats`` runs of ``iterations`` calls."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(iterations):
            call()
        runs.append((time.perf_counter_ns() - started) / iterations / 1e3)
    return runs


def bare_dispatch_us(session_uuid: str, iterations: int, repeats: int) -> float:
    """The facade's own cost: the same call routed to a legacy function that does nothing."""
    key = "user_sessions.get_session"
    spec = REGISTRY[key]
    REGISTRY[key] = dataclasses.replace(spec, legacy=lambda session_uuid: None)
    try:
        noop = lambda: facade.get_session(session_uuid)  # noqa: E731
        nothing = lambda: None  # noqa: E731
        routed = per_call_us(noop, iterations, repeats)
        baseline = per_call_us(nothing, iterations, repeats)
    finally:
        REGISTRY[key] = spec
    return statistics.median(routed) - statistics.median(baseline)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the legacy-mode dispatch overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    with scratch_database():
        session_uuid = str(uuid.uuid4())
        legacy_row = facade.insert_session(session_uuid, "Bench", "bench@example.com")
        get_runtime().flags.refresh()
        with transaction() as unit:
            unit.connection.execute(sa.text("SELECT 1"))

            def direct() -> object:
                return legacy.get_session(session_uuid)

            def routed() -> object:
                return facade.get_session(session_uuid)

            assert direct() == routed() == legacy_row
            per_call_us(direct, args.iterations // 4, 2)  # warm up both
            per_call_us(routed, args.iterations // 4, 2)
            samples: dict[str, list[float]] = {"direct": [], "facade": []}
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                samples["direct"] += per_call_us(direct, args.iterations, 1)
                samples["facade"] += per_call_us(routed, args.iterations, 1)
            bare = bare_dispatch_us(session_uuid, args.iterations * 5, args.repeats)
    direct_us = statistics.median(samples["direct"])
    facade_us = statistics.median(samples["facade"])
    print("get_session in one unit of work, same pooled connection (medians):")
    print(f"  legacy function, lent connection : {direct_us:8.2f} us/call")
    print(f"  facade, legacy mode              : {facade_us:8.2f} us/call")
    print(f"  facade overhead                  : {facade_us - direct_us:8.2f} us/call")
    print(f"  ratio facade / direct            : {facade_us / direct_us:8.3f}x")
    print(f"  bare dispatch (no-op function)   : {bare:8.2f} us/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
