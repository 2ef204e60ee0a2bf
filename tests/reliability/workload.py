"""A bounded, threaded workload of facade calls whose final row counts are known in advance.

Used by tests/reliability/test_load.py at a small size, and runnable by hand
at a larger one against an empty scratch database that DATABASE_URL names and
that Alembic has migrated to head (the exit status is 1 unless every call
succeeded, nothing mismatched and the tables hold exactly the rows the work
implies)::

    python -m tests.reliability.workload --threads 8 --calls 200000 \
        --json bench/results/load.json

Both write calls per second per mode to a JSON file under bench/results/ (the
test to ``load-test.json``), which the README's reliability table cites.

Each thread works on its own sessions (so the expected counts are exact) and
shares the read functions that scan the whole table with every other thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import compat
from compat import email_verification, uploads, user_sessions
from compat.routing.declaration import REGISTRY
from compat.runtime import get_runtime
from orm.database import get_engine

MODES = ("legacy", "shadow", "live", "orm")


@dataclass
class Tally:
    """What one thread did, to check the database against afterwards."""

    calls: int = 0
    sessions_inserted: int = 0
    sessions_deleted: int = 0
    uploads_recorded: int = 0
    uploads_deleted: int = 0
    errors: list[str] = field(default_factory=list)

    def rows(self) -> tuple[int, int, int]:
        """The rows the work implies: sessions, uploads, soft-deleted uploads."""
        return (
            self.sessions_inserted - self.sessions_deleted,
            self.uploads_recorded,
            self.uploads_deleted,
        )

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.sessions_inserted += other.sessions_inserted
        self.sessions_deleted += other.sessions_deleted
        self.uploads_recorded += other.uploads_recorded
        self.uploads_deleted += other.uploads_deleted
        self.errors += other.errors


def _one_round(rng: random.Random, tally: Tally, tag: str) -> None:
    """About twenty facade calls on one new session: writes, reads, a unit of work."""
    session_uuid = str(uuid.uuid4())
    email = f"{tag}.{rng.randrange(10**9)}@example.com"
    user_sessions.insert_session(session_uuid, f"Load {tag} ✓", email, "10.1.2.3", True)
    tally.sessions_inserted += 1
    user_sessions.update_session(session_uuid, {"name": f"Renamed {tag}"})
    user_sessions.get_session(session_uuid)
    user_sessions.check_uuid_exists(session_uuid)
    user_sessions.find_sessions_by_email(email.upper())
    email_verification.set_verification_code(
        session_uuid, f"{rng.randrange(10**6):06d}", datetime(2030, 1, 1) + timedelta(hours=1)
    )
    email_verification.increment_verification_attempts(session_uuid)
    email_verification.increment_resend_attempts(session_uuid)
    email_verification.get_verification(session_uuid)
    upload_ids = []
    with compat.transaction():
        for index in range(2):
            row = uploads.record_upload(
                session_uuid,
                f"file-{index}.txt",
                f"uploads/{session_uuid}/{index}",
                rng.randrange(1, 10**6),
                "text/plain",
                f"{index:064d}",
            )
            upload_ids.append(row["id"])
        email_verification.mark_email_verified(session_uuid)
        user_sessions.complete_session(session_uuid)
    tally.uploads_recorded += 2
    uploads.list_uploads(session_uuid)
    uploads.total_upload_bytes(session_uuid)
    uploads.get_upload(upload_ids[0])
    if uploads.delete_upload(upload_ids[0]):
        tally.uploads_deleted += 1
    user_sessions.list_sessions(limit=20, verified=True, order="-name")
    uploads.upload_stats(5)
    user_sessions.count_sessions()
    # A rolled-back unit of work leaves nothing behind.
    with contextlib.suppress(_Abandon), compat.transaction():
        user_sessions.insert_session(str(uuid.uuid4()), "Never committed", None)
        raise _Abandon
    tally.calls += CALLS_PER_ROUND
    if rng.random() < 0.25:
        user_sessions.delete_session(session_uuid)
        tally.calls += 1
        tally.sessions_deleted += 1
        tally.uploads_recorded -= 2  # the cascade takes both rows, the soft-deleted one too
        tally.uploads_deleted -= 1


CALLS_PER_ROUND = 21
"""Facade calls in a round, not counting the occasional delete_session."""


class _Abandon(Exception):
    pass


def run(threads: int, calls: int, mode: str, seed: int = 7) -> tuple[Tally, float]:
    """Run about ``calls`` facade calls on ``threads`` threads with every flag at ``mode``.

    Returns what was done and how many seconds it took. Errors are collected,
    not raised, so one thread's failure is visible next to the others' work.
    """
    flags = get_runtime().flags
    for key in REGISTRY:
        flags.set(key, mode, reason=f"load test: everything {mode}", by="load-test")
    rounds = max(1, calls // CALLS_PER_ROUND // threads)
    tallies = [Tally() for _ in range(threads)]

    def work(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        tally = tallies[index]
        for _ in range(rounds):
            try:
                _one_round(rng, tally, f"{mode}{index}")
            except Exception as error:  # recorded and reported by the caller
                tally.errors.append(f"{type(error).__name__}: {error}")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total, time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Throughput:
    """How fast one mode's share of the workload ran."""

    mode: str
    calls: int
    seconds: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
"""Where benchmark output goes (ignored by git)."""


def rows_in_database() -> tuple[int, int, int]:
    """What the tables hold: sessions, uploads, soft-deleted uploads (compare with Tally.rows)."""
    with get_engine().connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM user_sessions), "
                "(SELECT count(*) FROM uploaded_files), "
                "(SELECT count(*) FROM uploaded_files WHERE deleted_at IS NOT NULL)"
            )
        ).one()
    return row[0], row[1], row[2]


def save(
    path: Path,
    threads: int,
    measured: list[Throughput],
    mismatches: int,
    rows: tuple[int, int, int] | None = None,
) -> None:
    """Write the figures as JSON, with what a reader needs to compare runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "workload": "tests.reliability.workload",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "threads": threads,
        "calls": sum(t.calls for t in measured),
        "mismatches": mismatches,
        "rows": None
        if rows is None
        else dict(zip(("sessions", "uploads", "soft_deleted_uploads"), rows, strict=True)),
        "modes": {
            t.mode: {
                "calls": t.calls,
                "seconds": round(t.seconds, 3),
                "calls_per_second": round(t.per_second, 1),
                "errors": t.errors,
            }
            for t in measured
        },
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the workload once per mode and print throughput."""
    parser = argparse.ArgumentParser(description="threaded facade workload")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=20_000, help="in all, split over the modes")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    measured = []
    total = Tally()
    for mode in MODES:
        tally, seconds = run(args.threads, args.calls // len(MODES), mode)
        total.add(tally)
        measured.append(Throughput(mode, tally.calls, seconds, len(tally.errors)))
        print(
            f"{mode:7} {tally.calls:7d} calls in {seconds:6.2f} s: {tally.calls / seconds:8.0f}/s"
        )
        for error in tally.errors[:5]:
            print(f"  error: {error}")
    counts: Callable[[], Any] = get_runtime().counters.snapshot
    assert get_runtime().dispatcher.drain(60), "observations still queued after a minute"
    mismatches = sum(n for (_, outcome), n in counts().items() if outcome == "mismatch")
    print(f"mismatches: {mismatches}")
    found = rows_in_database()
    print(
        f"rows (sessions, uploads, soft-deleted uploads): {found}; the workload implies "
        f"{total.rows()}"
    )
    if args.json:
        save(args.json, args.threads, measured, mismatches, found)
    return 1 if any(t.errors for t in measured) or mismatches or found != total.rows() else 0


if __name__ == "__main__":
    raise SystemExit(main())
