"""The example app under gunicorn survives restarts, killed backends and outages, losing no write.

On a cluster of the suite's own, directly and through a PgBouncer of its own
(transaction pooling, docs/pooler.md's settings): gunicorn with two
``--preload`` workers, client threads writing and reading sessions (a bounded
number of requests), flags flipped with the ``compat`` command line
(``--force``) while the load runs, then each fault in turn: a server restart,
every backend terminated, the server stopped for a few seconds. The flag
listener is on directly and off through PgBouncer (COMPAT_FLAGS_LISTEN=0:
LISTEN cannot work through transaction pooling; the TTL poll carries the
flips). Afterwards: only requests in flight during a fault (or before the app
recovered from it) failed, each with the app's 503; no request held its
worker for LONGEST_SECONDS (gunicorn's access log); a request started after
each fault succeeded within RECOVERY_SECONDS; every acknowledged write is in the database
exactly once and no refused one is; no comparison mismatched (a side that
lost its connection is a fault, not a mismatch); no worker was restarted;
the flags are as flipped; no connection is left once gunicorn stopped. The
figures are written to the test's log (-s) and recorded in
docs/deployment.md.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
from alembic import command

from compat.listening import APPLICATION_NAME as LISTENER_NAME
from compat.routing.declaration import REGISTRY
from migrations.config import alembic_config
from tests.deployment.test_restart import TUNED
from tests.examples.gunicorn_server import running_gunicorn, server_environment
from tests.examples.test_gunicorn_end_to_end import flip
from tests.examples.warm_master_conf import MASTER_QUERY
from tests.fixtures.cluster import Cluster, own_cluster
from tests.fixtures.pgbouncer import PgBouncer, have_pgbouncer, running_pgbouncer

DATABASE = "deployment"
WORKERS = 2
CLIENTS = 4
REQUESTS_PER_CLIENT = 5000  # an upper bound; the phases end the load first
GRACE_SECONDS = 3.0  # after a fault ends, the app may still answer 503 this long
# No request holds its worker longer (gunicorn's access log, %(D)s). Through
# PgBouncer a call queued during an outage waits up to its query_wait_timeout
# (5 s), and a read the connection loss cut short is retried once
# (compat.routing.unit_of_work): twice that, and a margin for a loaded machine.
# Directly, a request fails within milliseconds.
LONGEST_SECONDS = 12.0
# A request started after a fault's end succeeds within this (else the run fails).
RECOVERY_SECONDS = 15.0
SERVED = "served"  # the access log's lines: served <microseconds> <status>
STOP_SECONDS = 3.0
FLIPPED = "user_sessions."
FLIPS = ("shadow", "live")
FAULTS = ("restart", "terminate", "stop")
MASTER_CALL = "00000000-0000-0000-0000-000000000000"  # warm_master_conf's facade call


@dataclass(frozen=True, slots=True)
class Request:
    start: float
    end: float
    kind: str
    status: int  # 0: no HTTP answer at all
    name: str = ""


@dataclass
class Load:
    requests: list[Request] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not have_pgbouncer():
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer")
    with own_cluster() as server:
        server.create_database(DATABASE)
        command.upgrade(alembic_config(server.url(DATABASE)), "head")
        yield server


@pytest.fixture(scope="module")
def pgbouncer(cluster: Cluster) -> Iterator[PgBouncer]:
    with running_pgbouncer(cluster.host, cluster.port, settings=TUNED) as bouncer:
        yield bouncer


def _http(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _client(port: int, number: int, run: str, load: Load, stop: threading.Event) -> None:
    for n in range(REQUESTS_PER_CLIENT):
        if stop.is_set():
            return
        name = f"{run}-{number}-{n}"
        kind = "write" if n % 2 == 0 else "read"
        start = time.monotonic()
        try:
            if kind == "write":
                body = f'{{"name": "{name}"}}'.encode()
                status, _ = _http(port, "POST", "/sessions", body)
            else:
                status, _ = _http(port, "GET", "/sessions?limit=5")
        except OSError:
            status = 0
        with load.lock:
            load.requests.append(Request(start, time.monotonic(), kind, status, name))


def _flip(database_url: str, mode: str) -> None:
    """Every user_sessions key to ``mode`` with the command line, one key at a time, --force."""
    keys = sorted(key for key in REGISTRY if key.startswith(FLIPPED))
    flip(database_url, keys, mode)


def _flags(cluster: Cluster) -> dict[str, str]:
    conn = cluster.connect(DATABASE)  # a connection of its own: the faults kill the others
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT key, mode FROM compat_flags")
            return dict(cur.fetchall())
    finally:
        conn.close()


def _fault(cluster: Cluster, kind: str) -> Callable[[], None]:
    def stop_for_a_while() -> None:
        cluster.stop()
        time.sleep(STOP_SECONDS)  # the outage itself, not a wait for a race
        cluster.start()

    def terminate() -> None:
        cluster.terminate_backends(DATABASE)

    return {"restart": cluster.restart, "terminate": terminate, "stop": stop_for_a_while}[kind]


def _written(conn: psycopg2.extensions.connection, run: str) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name, count(*) FROM user_sessions WHERE name LIKE %s GROUP BY name",
            (f"{run}-%",),
        )
        return dict(cur.fetchall())


def _poll(condition: Callable[[], bool], deadline_seconds: float, what: str) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _recovered(load: Load, fault: str) -> bool:
    """Whether a request that started after ``fault`` ended has succeeded."""
    end = load.windows[fault][1]
    with load.lock:
        return any(r.start >= end and r.status in (200, 201) for r in load.requests)


def _figures(load: Load, fault: str) -> str:
    start, end = load.windows[fault]
    inside = [r for r in load.requests if r.end >= start and r.start <= end + GRACE_SECONDS]
    failed = [r for r in inside if r.status != 200 and r.status != 201]
    window = (max(r.end for r in failed) - min(r.start for r in failed)) if failed else 0.0
    ok_after = [r.end for r in load.requests if r.start >= end and r.status in (200, 201)]
    recovery = (min(ok_after) - end) if ok_after else float("inf")
    longest = max((r.end - r.start for r in inside), default=0.0)
    return (
        f"{fault}: {len(inside)} requests around it, {len(failed)} failed, failure window "
        f"{window:.2f} s, fault {end - start:.2f} s, recovery {recovery:.2f} s, "
        f"longest request (client's view) {longest:.2f} s"
    )


@pytest.mark.parametrize("path", ["direct", "pgbouncer"])
def test_the_app_loses_no_acknowledged_write_through_every_fault(
    path: str, cluster: Cluster, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    direct_url = cluster.url(DATABASE)
    served_url = direct_url if path == "direct" else pgbouncer.url(DATABASE)
    run = f"d{uuid.uuid4().hex[:8]}"
    load = Load()
    stop = threading.Event()
    # Behind a transaction-pooling PgBouncer LISTEN cannot work: the TTL poll
    # carries the flips there (docs/pooler.md); directly, the listener pushes them.
    listen = "1" if path == "direct" else "0"
    env = server_environment(
        served_url,
        COMPAT_FLAGS_TTL="0.2",
        COMPAT_FLAGS_LISTEN=listen,
        # How long each worker took over each request, as the worker saw it
        # (a client's own time includes waiting for a free worker).
        GUNICORN_CMD_ARGS=f"--access-logfile - --access-logformat '{SERVED} %(D)s %(s)s'",
    )
    with running_gunicorn(
        served_url, tmp_path / "gunicorn.log", workers=WORKERS, preload=True, env=env
    ) as server:
        clients = [
            threading.Thread(target=_client, args=(server.port, n, run, load, stop), daemon=True)
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        try:
            for mode in FLIPS:
                _flip(direct_url, mode)
                stop.wait(1.0)
            flags_before = _flags(cluster)
            for fault in FAULTS:
                start = time.monotonic()
                _fault(cluster, fault)()
                load.windows[fault] = (start, time.monotonic())
                stop.wait(GRACE_SECONDS + 1.0)
                recovered = functools.partial(_recovered, load, fault)
                _poll(recovered, RECOVERY_SECONDS, f"nothing succeeded after {fault}")
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=60)
        booted = len(re.findall(r"Booting worker with pid", server.output()))
        assert server.stop() == 0, server.output()
        log = server.output()
    figures = [_figures(load, fault) for fault in FAULTS]
    served = [int(us) / 1e6 for us in re.findall(rf"^{SERVED} (\d+) \d+$", log, re.MULTILINE)]
    print(
        f"\n{path}: {len(load.requests)} requests, a worker held by one at most "
        f"{max(served, default=0):.2f} s; " + "; ".join(figures)
    )

    settled = [(s, e + GRACE_SECONDS) for s, e in load.windows.values()]
    stray = [
        r
        for r in load.requests
        if r.status not in (200, 201) and not any(r.end >= s and r.start <= e for s, e in settled)
    ]
    assert stray == [], f"requests failed outside every fault: {stray[:5]}"
    wrong = [r for r in load.requests if r.status not in (200, 201, 503)]
    errors = sorted({line for line in log.splitlines() if "rror" in line})[:10]
    assert wrong == [], f"failures other than the app's 503: {wrong[:3]}; log: {errors}"

    observer = cluster.connect(DATABASE)
    written = _written(observer, run)
    acknowledged = {r.name for r in load.requests if r.kind == "write" and r.status == 201}
    refused = {r.name for r in load.requests if r.kind == "write" and r.status != 201}
    assert {n for n in acknowledged if written.get(n) != 1} == set(), "acknowledged, not once"
    assert refused & set(written) == set(), "a refused write is in the database"
    assert len(acknowledged) > 0

    with observer.cursor() as cur:
        cur.execute(
            "SELECT key, mode, candidate_error, diff FROM compat_observations "
            "WHERE NOT matched AND fault IS NULL"  # a lost connection is a fault, not a mismatch
        )
        mismatched = cur.fetchall()
    assert mismatched == [], f"comparisons mismatched: {mismatched[:3]}"
    assert booted == WORKERS, f"a worker was restarted ({booted} boots)"
    assert len(served) >= len(load.requests) - CLIENTS, "the access log misses requests"
    assert max(served) < LONGEST_SECONDS, f"a request held its worker {max(served):.2f} s"
    assert _flags(cluster) == flags_before, "the flags changed during the faults"

    def no_app_connections() -> bool:
        if path == "pgbouncer":
            # PgBouncer keeps its server connections (named after their last
            # client); what must be gone are gunicorn's client connections.
            return not [c for c in pgbouncer.admin("SHOW CLIENTS") if c["database"] == DATABASE]
        with observer.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND (application_name LIKE 'maria_app%%' OR application_name = %s)",
                (DATABASE, LISTENER_NAME),
            )
            return cur.fetchone() == (0,)

    try:
        _poll(no_app_connections, 10, f"{path}: connections left after gunicorn stopped")
    finally:
        observer.close()


def _socket_owners() -> dict[int, set[int]]:
    """Local TCP port on 127.0.0.1 -> the pids holding that socket open (from /proc)."""
    inode_port: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                inode_port[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    owners: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    port = inode_port.get(target[8:-1])
                    if port is not None:
                        owners.setdefault(port, set()).add(int(entry.name))
    return owners


def _children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


def test_preloaded_workers_use_only_connections_they_opened_themselves(
    cluster: Cluster, tmp_path: Path
) -> None:
    """With --preload and a master that used the layer, each worker's backends are its own.

    Proof by the socket: the TCP connection behind every backend named
    ``maria_app worker <pid>`` is held open by that worker and no other
    process (a socket opened in the master is held by the master and every
    worker); the master's own backend is still idle on its marking query.
    """
    # A database of its own: the module's PgBouncer keeps server connections
    # to DATABASE named after the clients they served last.
    forks = "forks"
    cluster.create_database(forks)
    url = cluster.url(forks)
    command.upgrade(alembic_config(url), "head")
    env = server_environment(url, COMPAT_FLAGS_TTL="0.2")
    with running_gunicorn(
        url,
        tmp_path / "gunicorn.log",
        workers=WORKERS,
        preload=True,
        config="python:tests.examples.warm_master_conf",
        env=env,
    ) as server:
        found = re.search(r"its backend pid is (\d+)", server.output())
        assert found, server.output()
        master_backend = int(found[1])
        _poll(lambda: len(_children(server.process.pid)) == WORKERS, 30, "workers not forked")
        workers = _children(server.process.pid)
        observer = cluster.connect(forks)
        try:

            def backends() -> dict[int, tuple[str, int, str, str]]:
                with observer.cursor() as cur:
                    cur.execute(
                        "SELECT pid, application_name, client_port, state, query "
                        "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (forks,),
                    )
                    return {row[0]: tuple(row[1:]) for row in cur.fetchall()}

            def every_worker_connected() -> bool:
                for _ in range(10):
                    _http(server.port, "GET", "/sessions?limit=1")
                names = {name for name, *_ in backends().values()}
                return {f"maria_app worker {pid}" for pid in workers} <= names

            _poll(every_worker_connected, 30, "not every worker connected")
            seen = backends()
            owners = _socket_owners()
        finally:
            observer.close()
        assert _children(server.process.pid) == workers, "a worker was restarted"
        assert server.stop() == 0, server.output()

    master = server.process.pid
    assert seen[master_backend][2:] == ("idle", MASTER_QUERY)
    # Its socket is inherited (fork copies descriptors; the layer drops the pool
    # without closing it, so that the master's connection survives), but unused:
    # the backend's last statement is still the master's own.
    assert master in owners.get(seen[master_backend][1], set())
    listeners: dict[int, int] = {}  # process -> its flag listener's backend
    for pid, (name, port, _state, query) in seen.items():
        holders = owners.get(port, set())
        if master in holders:
            # Opened by the master before the fork (its facade call's pooled
            # connection, its listener): inherited, but its last statement is
            # still the master's own, so no worker sent anything on it.
            assert holders <= {master, *workers}, f"backend {pid}: socket held by {holders}"
            if name == LISTENER_NAME:
                listeners[master] = pid
            else:
                assert query == MASTER_QUERY or MASTER_CALL in query, (
                    f"master's backend {pid} last ran {query!r}: a worker used it"
                )
            continue
        [worker] = holders  # one process alone holds it: not the master, not two workers
        assert worker in workers, f"backend {pid} ({name}): socket held by {worker}, not a worker"
        if name == LISTENER_NAME:
            assert worker not in listeners, f"worker {worker} has two listeners"
            listeners[worker] = pid
            continue
        assert name == f"maria_app worker {worker}", (
            f"backend {pid} named {name!r}, held by {worker}"
        )
    assert set(listeners) == {master, *workers}, f"flag listeners: {listeners}"
