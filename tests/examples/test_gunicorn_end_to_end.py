"""The example app under a real gunicorn: every route answers the same on every path.

gunicorn serves the app with several forked workers (and again with
``--preload``, its master having used the data layer before forking) on a
fresh migrated database. The test drives each route over HTTP, flips the
flags with the real ``compat`` command line through legacy, shadow, live
and orm while the server runs, and checks that the same reads give the same
JSON on each path, that the same writes give the same answers, and that the
comparisons recorded no mismatch.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest

from tests.examples.gunicorn_server import Answer, Gunicorn, running_gunicorn, server_environment
from tests.examples.warm_master_conf import MASTER_QUERY
from tests.fixtures.layer import observer_connection
from tests.fixtures.postgres import RUN, PgServer

ROOT = Path(__file__).resolve().parents[2]
WARM_MASTER_CONFIG = "python:tests.examples.warm_master_conf"
FLAGS_TTL = "0.2"

# Every facade function the app's routes reach, through the services.
APP_KEYS = (
    "user_sessions.insert_session",
    "user_sessions.update_session",
    "user_sessions.complete_session",
    "user_sessions.check_uuid_exists",
    "user_sessions.list_sessions",
    "user_sessions.count_sessions",
    "email_verification.get_verification",
    "email_verification.set_verification_code",
    "email_verification.increment_verification_attempts",
    "email_verification.increment_resend_attempts",
    "email_verification.mark_email_verified",
    "email_verification.reset_verification",
    "uploads.record_upload",
    "uploads.list_uploads",
)
# Flipped last: once a worker serves it in a mode, that worker re-read the
# table after every other key was flipped, so they are in that mode too.
PROBE_KEY = "user_sessions.get_session"
MODES = ("shadow", "live", "orm")
# The same personal data in every run of the writes (their answers are compared),
# looked for in the server's log at the end.
NAME = "Émilie du Châtelet 🧪"
EMAIL_DOMAIN = "example.org"


@pytest.fixture
def served_database_url(
    pg_server: PgServer, migrated_template: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh clone of the database migrated to Alembic head, dropped after the test."""
    name = f"{RUN}_g{abs(hash(request.node.nodeid)) % 10**10}"
    with pg_server.janitor(name, template=migrated_template):
        yield pg_server.url(name)


@pytest.fixture
def observer(served_database_url: str) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection to the served database: committed state only."""
    conn = observer_connection(served_database_url)
    try:
        yield conn
    finally:
        conn.close()


def compat_command() -> list[str]:
    """The installed ``compat`` command of this environment (else ``python -m compat``)."""
    script = Path(sys.executable).with_name("compat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "compat"]


def run_cli(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [*compat_command(), *args],
        env=server_environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"compat {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


# The command line's own entry point (what the installed `compat` script runs),
# once per key, in one process: a `compat` process per key costs about a
# second on this machine, which fourteen keys times three modes cannot afford.
_FLIP_EACH = """
import sys
from compat.cli import main
mode, keys = sys.argv[1], sys.argv[2:]
reason = f"end-to-end test: {mode}"
for key in keys:
    # --force: this test walks every mode in seconds; the gates have tests of their own.
    argv = ["flags", "set", key, mode, "--force", "--by", "e2e-test", "--reason", reason]
    status = main(argv)
    if status:
        sys.exit(status)
"""


def flip(database_url: str, keys: Sequence[str], mode: str) -> None:
    """``compat flags set KEY MODE --reason ...`` for each key: the CLI in one subprocess."""
    done = subprocess.run(
        [sys.executable, "-c", _FLIP_EACH, mode, *keys],
        env=server_environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"flags set ... {mode}: {done.returncode}\n{done.stderr}"
    assert done.stdout.count(f"-> {mode}") == len(keys), done.stdout


def flip_probe(database_url: str, mode: str) -> None:
    """The probe key last, with the installed ``compat`` command itself."""
    out = run_cli(
        database_url,
        "flags",
        "set",
        PROBE_KEY,
        mode,
        "--force",
        "--by",
        "e2e-test",
        "--reason",
        "e2e probe",
    )
    assert f"{PROBE_KEY}: " in out
    assert f"-> {mode}" in out


def observations(
    observer: psycopg2.extensions.connection, key: str, mode: str | None = None
) -> int:
    with observer.cursor() as cur:
        cur.execute(
            # Every compared call is counted in the rollups (matches keep no row).
            "SELECT coalesce(sum(compared), 0) FROM compat_observation_rollups "
            "WHERE key = %s AND (%s IS NULL OR mode = %s)",
            (key, mode, mode),
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def burst(server: Gunicorn, path: str, size: int) -> None:
    """``size`` concurrent GETs, so that every worker is likely to take some."""
    with ThreadPoolExecutor(size) as pool:
        answers = list(pool.map(lambda _: server.request("GET", path), range(size)))
    assert {a.status for a in answers} == {200}


def wait_until_serving(
    server: Gunicorn, observer: psycopg2.extensions.connection, mode: str, probe: str, workers: int
) -> None:
    """Poll until whole bursts of probe reads are served in ``mode`` (within a deadline).

    Workers re-read the flags at most COMPAT_FLAGS_TTL seconds after their
    last read, on their next call. In shadow and live every probe read leaves
    one observation in its mode: a burst is done when all of it was observed
    in ``mode``. In orm nothing is observed: done when two bursts in a row add
    no observation at all (one burst's rows have been published by the time
    the next burst was answered).
    """
    path = f"/sessions/{probe}"
    size = 2 * workers
    deadline = time.monotonic() + 20.0
    quiet_bursts = 0
    seen = observations(observer, PROBE_KEY)
    while time.monotonic() < deadline:
        before = observations(observer, PROBE_KEY, mode)
        burst(server, path, size)
        if mode == "orm":
            now = observations(observer, PROBE_KEY)
            quiet_bursts = quiet_bursts + 1 if now == seen else 0
            seen = now
            if quiet_bursts == 2:
                return
            continue
        # Published within milliseconds; a burst partly served in the old mode
        # never gets there, and the next burst tries again.
        settle = time.monotonic() + 0.3
        while time.monotonic() < settle:
            if observations(observer, PROBE_KEY, mode) - before == size:
                return
            time.sleep(0.02)
    raise AssertionError(f"the workers did not all serve {PROBE_KEY} in {mode} within 20 s")


def read_everything(server: Gunicorn, sessions: Sequence[str]) -> dict[str, Answer]:
    """Every read route on the sessions made so far, plus the missing and the malformed."""
    reads = {"GET /sessions?limit=100": "/sessions?limit=100"}
    for offset in (0, 2, 4, 1000):
        reads[f"GET /sessions?limit=2&offset={offset}"] = f"/sessions?limit=2&offset={offset}"
    for session_uuid in sessions:
        reads[f"GET {session_uuid}"] = f"/sessions/{session_uuid}"
        reads[f"GET {session_uuid}/uploads"] = f"/sessions/{session_uuid}/uploads"
    missing = "00000000-0000-4000-8000-000000000000"
    reads["GET missing"] = f"/sessions/{missing}"
    reads["GET missing/uploads"] = f"/sessions/{missing}/uploads"
    reads["GET malformed"] = "/sessions/not-a-uuid"
    reads["GET bad page"] = "/sessions?limit=0"
    return {name: server.request("GET", path) for name, path in reads.items()}


def pending_code(observer: psycopg2.extensions.connection, session_uuid: str) -> str:
    """The code the app would have mailed, read with plain SQL (it is in no answer)."""
    with observer.cursor() as cur:
        cur.execute("SELECT verification_code FROM user_sessions WHERE uuid = %s", (session_uuid,))
        row = cur.fetchone()
    assert row is not None
    assert row[0] is not None
    return str(row[0])


def write_scenario(
    server: Gunicorn, observer: psycopg2.extensions.connection
) -> tuple[str, list[tuple[str, int, Any]]]:
    """Every write route, the happy path and its refusals; returns the session and the answers."""
    answers: list[tuple[str, int, Any]] = []

    def call(
        label: str, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> Answer:
        answer = server.request(method, path, body, raw=raw)
        answers.append((label, answer.status, answer.body))
        return answer

    name = NAME
    created = call(
        "create",
        "POST",
        "/sessions",
        {"name": name, "email": f"first@{EMAIL_DOMAIN}", "consent_user_data": True},
    )
    assert created.status == 201, created
    session_uuid = created.body["uuid"]
    assert created.location == f"/sessions/{session_uuid}"
    base = f"/sessions/{session_uuid}"
    call("rename", "PATCH", base, {"name": f"{name} II"})
    call("new email", "PATCH", base, {"email": f"second@{EMAIL_DOMAIN}"})
    call("set code", "POST", f"{base}/verification")
    call("resend", "POST", f"{base}/verification/resend")
    call("wrong code", "POST", f"{base}/verification/check", {"code": "000000"})
    call(
        "right code",
        "POST",
        f"{base}/verification/check",
        {"code": pending_code(observer, session_uuid)},
    )
    call("again", "POST", f"{base}/verification/check", {"code": "000000"})
    digest = hashlib.sha256(name.encode()).hexdigest()
    for n in range(2):
        upload = call(
            "upload",
            "POST",
            f"{base}/uploads",
            {
                "filename": f"scan {n}.pdf",
                "size_bytes": 100 + n,
                "sha256": digest,
                "content_type": "application/pdf",
            },
        )
        assert upload.status == 201, upload
    call("uploads", "GET", f"{base}/uploads")
    call("read", "GET", base)
    call("complete", "POST", f"{base}/complete")
    call("complete again", "POST", f"{base}/complete")
    call("blank name", "POST", "/sessions", {"name": " "})
    call("not json", "POST", "/sessions", raw=b"name=Ada")
    call("ip edit", "PATCH", base, {"ip_address": "192.0.2.1"})
    call("short code", "POST", f"{base}/verification/check", {"code": "12"})
    call(
        "upload, no session",
        "POST",
        f"/sessions/{uuid.uuid4()}/uploads",
        {"filename": "a", "size_bytes": 1, "sha256": digest},
    )
    call("malformed", "PATCH", "/sessions/not-a-uuid", {"name": "x"})
    return session_uuid, answers


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_VARYING = {"id", "storage_key"}


def normalized(value: Any) -> Any:
    """An answer with what two runs of the same writes differ in masked: uuids, times, ids."""
    if isinstance(value, dict):
        return {k: "<varies>" if k in _VARYING else normalized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalized(v) for v in value]
    if isinstance(value, str):
        return _TIME.sub("<time>", _UUID.sub("<uuid>", value))
    return value


def unmatched(observer: psycopg2.extensions.connection) -> int:
    with observer.cursor() as cur:
        cur.execute("SELECT coalesce(sum(mismatches), 0) FROM compat_observation_rollups")
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def compared_keys(observer: psycopg2.extensions.connection, mode: str) -> set[str]:
    with observer.cursor() as cur:
        cur.execute("SELECT DISTINCT key FROM compat_observation_rollups WHERE mode = %s", (mode,))
        return {key for (key,) in cur.fetchall()}


def worker_connection_names(observer: psycopg2.extensions.connection) -> set[str]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'maria_app worker %%'"
        )
        return {name for (name,) in cur.fetchall()}


def personal_data_in(text: str) -> list[str]:
    needles = [NAME, "Châtelet", EMAIL_DOMAIN, "192.0.2.1"]
    return [needle for needle in needles if needle in text]


def migrate_through_every_mode(
    server: Gunicorn,
    observer: psycopg2.extensions.connection,
    database_url: str,
    *,
    workers: int,
    keys: Sequence[str],
) -> None:
    sessions: list[str] = []
    first, baseline = write_scenario(server, observer)
    sessions.append(first)
    expected = normalized(baseline)
    for mode in MODES:
        before = read_everything(server, sessions)
        flip(database_url, keys, mode)
        flip_probe(database_url, mode)
        wait_until_serving(server, observer, mode, first, workers)
        after = read_everything(server, sessions)
        changed = [name for name in before if before[name] != after[name]]
        assert not changed, f"{mode}: reads answered differently than before the flip: {changed}"
        made, answers = write_scenario(server, observer)
        sessions.append(made)
        assert normalized(answers) == expected, f"{mode}: the writes answered differently"
    assert unmatched(observer) == 0
    # Each worker served, on connections of its own (named by the post_fork hook).
    assert len(worker_connection_names(observer)) == workers
    for mode in ("shadow", "live"):
        missing = {*keys, PROBE_KEY} - compared_keys(observer, mode)
        assert not missing, f"never compared in {mode}: {sorted(missing)}"


def assert_status_shows_no_mismatch(database_url: str, keys: Sequence[str]) -> None:
    status = run_cli(database_url, "status")
    rows = {line.split()[0]: line.split() for line in status.splitlines()[3:] if line.strip()}
    for key in (*keys, PROBE_KEY):
        assert rows[key][1] == "orm", rows[key]
        assert int(rows[key][2]) > 0, rows[key]
        assert rows[key][3] == "0", rows[key]


def backend_state(observer: psycopg2.extensions.connection, pid: int) -> tuple[str, str] | None:
    with observer.cursor() as cur:
        cur.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = cur.fetchone()
    return None if row is None else (row[0], row[1])


def stop_cleanly(server: Gunicorn) -> None:
    assert server.stop() == 0, server.output()
    log = server.output()
    assert "Traceback" not in log, log
    assert personal_data_in(log) == [], log


class TestUnderGunicorn:
    def test_three_workers_answer_the_same_through_every_mode(
        self, served_database_url: str, observer: psycopg2.extensions.connection, tmp_path: Path
    ) -> None:
        database_url = served_database_url
        env = server_environment(database_url, COMPAT_FLAGS_TTL=FLAGS_TTL)
        with running_gunicorn(
            database_url, tmp_path / "gunicorn.log", workers=3, env=env
        ) as server:
            migrate_through_every_mode(server, observer, database_url, workers=3, keys=APP_KEYS)
            assert_status_shows_no_mismatch(database_url, APP_KEYS)
            stop_cleanly(server)

    def test_preloaded_workers_forked_from_a_master_that_used_the_layer(
        self, served_database_url: str, observer: psycopg2.extensions.connection, tmp_path: Path
    ) -> None:
        database_url = served_database_url
        env = server_environment(database_url, COMPAT_FLAGS_TTL=FLAGS_TTL)
        with running_gunicorn(
            database_url,
            tmp_path / "gunicorn.log",
            workers=2,
            preload=True,
            config=WARM_MASTER_CONFIG,
            env=env,
        ) as server:
            found = re.search(r"its backend pid is (\d+)", server.output())
            assert found, server.output()
            migrate_through_every_mode(server, observer, database_url, workers=2, keys=APP_KEYS)
            assert_status_shows_no_mismatch(database_url, APP_KEYS)
            # No worker sent a statement on, or closed, the connection it inherited.
            assert backend_state(observer, int(found[1])) == ("idle", MASTER_QUERY)
            stop_cleanly(server)
