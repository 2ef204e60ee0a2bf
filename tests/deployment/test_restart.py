"""A server restart costs a worker seconds, not PgBouncer's 15 s login retry window.

On a cluster of the test's own, behind a PgBouncer of its own (transaction
pooling), threads call the facade while the server restarts. With the
pooler's settings of docs/pooler.md (server_login_retry = 1,
query_wait_timeout = 5) and the layer's own bounds (connect_timeout,
pool_timeout), no call blocks longer than a few seconds and calls succeed
again within seconds of the server being back. The figures are printed
(-s) and recorded in docs/deployment.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command

import layer_settings
from compat import user_sessions
from compat.runtime import build_runtime, use_runtime
from migrations.config import alembic_config
from tests.deployment.faults import Run, drive
from tests.fixtures.cluster import Cluster, own_cluster
from tests.fixtures.pgbouncer import have_pgbouncer, running_pgbouncer

DATABASE = "restart"
TUNED = {"server_login_retry": 1, "query_wait_timeout": 5, "server_connect_timeout": 3}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not have_pgbouncer():
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer")
    with own_cluster() as server:
        server.create_database(DATABASE)
        command.upgrade(alembic_config(server.url(DATABASE)), "head")
        yield server


def restart_behind(
    cluster: Cluster, settings: dict[str, Any], mode: str = "orm", after_seconds: float = 3
) -> Run:
    """Drive facade writes through PgBouncer while ``cluster`` restarts; the run's figures."""
    with running_pgbouncer(cluster.host, cluster.port, settings=settings) as bouncer:
        url = bouncer.url(DATABASE)
        runtime = build_runtime(
            layer_settings.load({"DATABASE_URL": url}),
            publishers=[],
            environ={"COMPAT_FLAGS": f"*={mode}"},
        )
        with use_runtime(runtime):

            def call(_number: int) -> None:
                user_sessions.insert_session(str(uuid.uuid4()), "restart", None)

            return drive(
                call, cluster.restart, threads=3, before_seconds=1, after_seconds=after_seconds
            )


class TestServerRestartBehindPgBouncer:
    @pytest.mark.parametrize("mode", ["legacy", "orm"])
    def test_a_restart_blocks_no_call_for_long_and_recovers_in_seconds(
        self, cluster: Cluster, mode: str
    ) -> None:
        run = restart_behind(cluster, TUNED, mode)
        print(f"restart behind PgBouncer, {mode}: {run.summary()}")

        assert run.longest_call < 8, run.summary()
        assert run.recovery < 5, run.summary()
        assert not run.failed_outside_the_fault(), run.summary()
