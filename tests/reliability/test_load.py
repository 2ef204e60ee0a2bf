"""Under a threaded mixed workload the layer loses nothing, mismatches nothing, leaks nothing.

Calls per second per mode go to bench/results/load-test.json (and to the junit
XML, as properties); the README quotes a larger manual run (see workload.py).
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg2.extensions

from compat.runtime import get_runtime
from tests.fixtures.layer import Layer, observer_connection
from tests.reliability.workload import MODES, RESULTS, Tally, Throughput, run, save

THREADS = 8
CALLS = 20_000


def table_counts(conn: psycopg2.extensions.connection) -> tuple[int, int, int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM user_sessions), (SELECT count(*) FROM uploaded_files), "
            "(SELECT count(*) FROM uploaded_files WHERE deleted_at IS NOT NULL)"
        )
        row = cur.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_a_threaded_workload_in_every_mode_ends_with_the_exact_rows_it_implies(
    committed_layer: Layer, record_property: Callable[[str, object], None]
) -> None:
    total = Tally()
    measured = []
    for mode in MODES:
        tally, seconds = run(THREADS, CALLS // len(MODES), mode)
        assert tally.errors == [], tally.errors[:5]
        total.add(tally)
        measured.append(Throughput(mode, tally.calls, seconds, len(tally.errors)))
        record_property(f"{mode}_calls_per_second", round(tally.calls / seconds))
    assert total.calls >= CALLS * 0.95
    observer = observer_connection(committed_layer.url)
    try:
        assert table_counts(observer) == total.rows()
    finally:
        observer.close()
    assert committed_layer.runtime.dispatcher.drain(30)
    counts = get_runtime().counters.snapshot()
    assert sum(n for (_, outcome), n in counts.items() if outcome == "match") > 0
    assert [k for k, n in counts.items() if k[1] != "match" and n] == []
    assert committed_layer.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    save(RESULTS / "load-test.json", THREADS, measured, mismatches=0, rows=total.rows())
