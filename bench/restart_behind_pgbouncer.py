"""Bench: a server restart behind PgBouncer, its defaults against docs/pooler.md's settings.

python -m bench.restart_behind_pgbouncer; needs pgbouncer and PostgreSQL's server binaries
(a cluster of its own on a free port; as root they run as the postgres account).
"""

from __future__ import annotations

from alembic import command

from migrations.config import alembic_config
from tests.deployment.test_restart import DATABASE, TUNED, restart_behind
from tests.fixtures.cluster import own_cluster


def main() -> None:
    with own_cluster() as cluster:
        cluster.create_database(DATABASE)
        command.upgrade(alembic_config(cluster.url(DATABASE)), "head")
        for name, settings in (("PgBouncer defaults", {}), ("docs/pooler.md", TUNED)):
            for mode in ("legacy", "orm"):
                run = restart_behind(cluster, settings, mode, after_seconds=20)
                print(f"{name:18} {mode:6} {run.summary()}", flush=True)


if __name__ == "__main__":
    main()
