"""Benchmarks: inserting many sessions at once, the legacy way and the repository's COPY."""

from __future__ import annotations

import io
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import psycopg2.extensions
import psycopg2.extras
import sqlalchemy as sa

from orm.database import get_engine
from orm.models import UserSession
from orm.repositories import UserSessionRepository

__all__ = ["BULK_VARIANTS", "bulk_rows", "measure_bulk"]

_INSERT: Final = (
    "INSERT INTO user_sessions (uuid, name, email, ip_address, consent_user_data) "
    "VALUES (%s, %s, %s, %s, %s)"
)

Row = dict[str, Any]


def bulk_rows(count: int, rng: random.Random) -> list[Row]:
    """``count`` new sessions as create_many takes them (uuid.UUID keys)."""
    return [
        {
            "uuid": uuid.UUID(int=rng.getrandbits(128), version=4),
            "name": f"Bulk {i}",
            "email": f"bulk{i}@example.com",
            "ip_address": "10.9.8.7",
            "consent_user_data": bool(i % 2),
        }
        for i in range(count)
    ]


def _tuples(rows: list[Row]) -> list[tuple[Any, ...]]:
    # The legacy code passes uuids as str.
    return [
        (str(r["uuid"]), r["name"], r["email"], r["ip_address"], r["consent_user_data"])
        for r in rows
    ]


Work = Callable[[psycopg2.extensions.connection, list[Row]], None]


def _on_raw_connection(work: Work) -> Callable[[list[Row]], None]:
    """Run ``work`` on a pooled connection and commit, as a legacy bulk job would."""

    def run(rows: list[Row]) -> None:
        raw = get_engine().raw_connection()
        try:
            work(raw.dbapi_connection, rows)  # type: ignore[arg-type]
            raw.commit()
        finally:
            raw.close()

    return run


def _executemany(conn: psycopg2.extensions.connection, rows: list[Row]) -> None:
    with conn.cursor() as cur:
        cur.executemany(_INSERT, _tuples(rows))


def _execute_values(conn: psycopg2.extensions.connection, rows: list[Row]) -> None:
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO user_sessions (uuid, name, email, ip_address, consent_user_data) "
            "VALUES %s",
            _tuples(rows),
            page_size=1000,
        )


def _raw_copy(conn: psycopg2.extensions.connection, rows: list[Row]) -> None:
    # The floor: COPY with the text written by hand, no checks at all.
    text = "".join(
        f"{r['uuid']}\t{r['name']}\t{r['email']}\t{r['ip_address']}\t"
        f"{'t' if r['consent_user_data'] else 'f'}\n"
        for r in rows
    )
    with conn.cursor() as cur:
        cur.copy_expert(
            "COPY user_sessions (uuid, name, email, ip_address, consent_user_data) FROM STDIN",
            io.StringIO(text),
        )


def _core_insertmanyvalues(rows: list[Row]) -> None:
    with get_engine().begin() as connection:
        connection.execute(sa.insert(UserSession), rows)


def _create_many(rows: list[Row]) -> None:
    UserSessionRepository().create_many(rows)


BULK_VARIANTS: Final[dict[str, Callable[[list[Row]], None]]] = {
    "legacy executemany": _on_raw_connection(_executemany),
    "execute_values": _on_raw_connection(_execute_values),
    "Core insertmanyvalues": _core_insertmanyvalues,
    "create_many (COPY)": _create_many,
    "raw COPY (floor)": _on_raw_connection(_raw_copy),
}


def _remove(rows: list[Row]) -> None:
    with get_engine().begin() as connection:
        connection.execute(
            sa.text("DELETE FROM user_sessions WHERE uuid = ANY(:uuids)"),
            {"uuids": [r["uuid"] for r in rows]},
        )


def measure_bulk(count: int, rounds: int, rng: random.Random) -> dict[str, list[float]]:
    """Microseconds per row of each variant, one sample per round, variants interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in BULK_VARIANTS}
    names = list(BULK_VARIANTS)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            rows = bulk_rows(count, rng)
            started = time.perf_counter_ns()
            BULK_VARIANTS[name](rows)
            samples[name].append((time.perf_counter_ns() - started) / 1e3 / count)
            _remove(rows)
    return samples
