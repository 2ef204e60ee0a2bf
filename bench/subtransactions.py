"""Bench: how many transaction ids one long unit of work takes: shadowed writes, nested units.

python -m bench.subtransactions; a cluster of its own (PostgreSQL's server binaries;
as root they run as the postgres account). See docs/deployment.md, Subtransactions.
"""

from __future__ import annotations

import uuid

from alembic import command

import compat
import layer_settings
from compat import user_sessions
from compat.runtime import build_runtime, use_runtime
from migrations.config import alembic_config
from tests.fixtures.cluster import own_cluster

WRITES = 100


class _Abort(Exception):
    pass


def main() -> None:
    with own_cluster() as cluster:
        cluster.create_database("subtransactions")
        url = cluster.url("subtransactions")
        command.upgrade(alembic_config(url), "head")
        watcher = cluster.connect("subtransactions")

        def next_xid() -> int:
            with watcher.cursor() as cur:
                cur.execute("SELECT pg_current_xact_id()::text::bigint")  # takes one itself
                row = cur.fetchone()
            return int(row[0]) if row else 0

        for label, mode, nested in (
            ("shadowed writes, one unit", "shadow", False),
            ("live writes, one unit", "live", False),
            ("legacy writes, one unit", "legacy", False),
            ("nested units, each one write", "legacy", True),
        ):
            settings = layer_settings.load({"DATABASE_URL": url})
            runtime = build_runtime(settings, publishers=[], environ={"COMPAT_FLAGS": f"*={mode}"})
            with use_runtime(runtime):
                before = next_xid()
                try:
                    with compat.transaction():
                        for _ in range(WRITES):
                            if nested:
                                with compat.transaction():
                                    user_sessions.insert_session(str(uuid.uuid4()), "n", None)
                            else:
                                user_sessions.insert_session(str(uuid.uuid4()), "s", None)
                        raise _Abort
                except _Abort:
                    pass
                used = next_xid() - before - 1
            print(f"{label:30} {WRITES} writes: {used} transaction ids (1 top + {used - 1} sub)")
        watcher.close()


if __name__ == "__main__":
    main()
