"""Benchmarks: peak memory of the list operations and `compat verify` on a large table.

Run from the repository root (not in CI: it generates a million rows):

    python -m bench.memory                     # 1,000,000 sessions
    python -m bench.memory --sessions 100000   # a smaller table

It makes a throwaway database on the server DATABASE_URL names (else the local
unix socket), migrates it, generates the sessions (and 4 uploads for every
tenth session) inside PostgreSQL, then runs each operation in a process of its
own and reports that process's peak resident set size (ru_maxrss) next to the
peak of a process that only imports the layer and connects.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Final

import sqlalchemy as sa

from bench.database import describe_url, scratch_database, server_url
from orm.database import get_engine

__all__ = ["main"]

LIMIT_MB: Final = 300

_GENERATE_SESSIONS: Final = """
INSERT INTO user_sessions (uuid, name, email, created_at, ip_address, consent_user_data,
                           is_email_verified, completed_at)
SELECT gen_random_uuid(), 'Session ' || i, 'user' || (i % 250000) || '@example.com',
       TIMESTAMP '2024-01-01' + i * INTERVAL '1 second', '10.0.0.1', i % 2 = 0,
       i % 3 = 0, CASE WHEN i % 5 = 0 THEN TIMESTAMP '2025-01-01' END
FROM generate_series(1, :count) AS i
"""
_GENERATE_UPLOADS: Final = """
INSERT INTO uploaded_files (session_uuid, filename, storage_key, size_bytes, content_type, sha256)
SELECT s.uuid, 'file' || j || '.pdf', 'uploads/' || s.uuid || '/file' || j || '.pdf',
       (hashtext(s.uuid::text || j) & 1048575) + 1, 'application/pdf',
       md5(s.uuid::text || j) || md5(j || s.uuid::text)
FROM (SELECT uuid FROM user_sessions TABLESAMPLE BERNOULLI (10) REPEATABLE (7)) AS s,
     generate_series(1, 4) AS j
"""

# What each child process runs; each prints nothing, its peak RSS is read by the parent.
_OPERATIONS: Final[dict[str, str]] = {
    "baseline (import, connect)": (
        "import compat\nfrom orm.database import get_engine\nget_engine().connect().close()\n"
    ),
    "list_session_uuids, legacy": (
        "from compat.runtime import get_runtime\n"
        "from compat import user_sessions as f\n"
        "get_runtime().flags.refresh()\n"
        "assert len(f.list_session_uuids()) > 0\n"
    ),
    "list_session_uuids, orm": (
        "import os\n"
        "os.environ['COMPAT_FLAGS'] = 'user_sessions.list_session_uuids=orm'\n"
        "from compat import user_sessions as f\n"
        "assert len(f.list_session_uuids()) > 0\n"
    ),
    "list_sessions, every page of 100 (orm)": (
        "import os\n"
        "os.environ['COMPAT_FLAGS'] = 'user_sessions.list_sessions=orm'\n"
        "from compat import user_sessions as f\n"
        "offset = 0\n"
        "while len(f.list_sessions(limit=100, offset=offset, order='created_at')) == 100:\n"
        "    offset += 100\n"
        "    if offset >= 200_000:\n"
        "        break  # OFFSET paging is quadratic; 2,000 pages show the trend\n"
    ),
    "compat verify (every function, sample 20)": (
        "from compat.cli import main\nraise SystemExit(main(['verify', '--quiet']))\n"
    ),
}


def _peak_mb(code: str, env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``code`` in a new interpreter; its peak RSS in MB, its seconds and its exit status."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.stderr is not None:
        errors = process.stderr.read().decode(errors="replace").strip()
        if errors and process.returncode != 0:
            print(errors.splitlines()[-1], file=sys.stderr)
        process.stderr.close()
    # ru_maxrss is in kilobytes on Linux.
    return usage.ru_maxrss / 1024, time.perf_counter() - started, process.returncode


def main(argv: list[str] | None = None) -> int:
    """Generate the table, measure each operation's peak RSS, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--only", help="measure only the operations whose name contains this")
    args = parser.parse_args(argv)
    server, how = server_url()
    print(f"server: {describe_url(server)} (from {how})", flush=True)
    with scratch_database(server, prefix="benchmem") as url:
        started = time.perf_counter()
        with get_engine().begin() as connection:
            connection.execute(sa.text(_GENERATE_SESSIONS), {"count": args.sessions})
            connection.execute(sa.text(_GENERATE_UPLOADS))
        with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE user_sessions")
            connection.exec_driver_sql("VACUUM ANALYZE uploaded_files")
            uploads = connection.exec_driver_sql("SELECT count(*) FROM uploaded_files").scalar()
        print(
            f"generated {args.sessions:,} sessions and {uploads:,} uploads "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        env = {**os.environ, "DATABASE_URL": url}
        print("\n| operation | peak RSS (MB) | seconds | exit |\n|---|---:|---:|---:|")
        for name, code in _OPERATIONS.items():
            if args.only and args.only not in name and not name.startswith("baseline"):
                continue
            peak, seconds, status = _peak_mb(code, env)
            print(f"| {name} | {peak:,.0f} | {seconds:,.1f} | {status} |", flush=True)
    print(f"\ntarget: verifying a {args.sessions:,}-row table under {LIMIT_MB} MB peak RSS")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
