"""Benchmarks: a throwaway database on the chosen server, migrated to head and seeded."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg2
import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from compat.runtime import reset_runtime
from migrations.config import alembic_config
from orm.database import create_engine, database_url, dispose_engine
from orm.repositories import UploadedFileRepository, UserSessionRepository

__all__ = ["Seeded", "scratch_database", "seed", "server_url"]

SOCKET_DIR = "/var/run/postgresql"


def server_url() -> tuple[sa.URL, str]:
    """The server to use and how it was chosen: DATABASE_URL, else the local unix socket."""
    if os.environ.get("DATABASE_URL"):
        return database_url(), "DATABASE_URL"
    if Path(SOCKET_DIR, ".s.PGSQL.5432").exists() and not os.environ.get("POSTGRES_HOST"):
        url = sa.make_url(f"postgresql+psycopg2://postgres@/postgres?host={SOCKET_DIR}")
        return url, f"the local unix socket ({SOCKET_DIR})"
    return database_url(), "POSTGRES_* variables (or their defaults)"


def describe_url(url: sa.URL) -> str:
    """The URL without its password, for the report."""
    return url.render_as_string(hide_password=True)


@contextmanager
def scratch_database(server: sa.URL, prefix: str = "bench") -> Iterator[str]:
    """A migrated throwaway database on ``server``; DATABASE_URL names it while the block runs.

    The layer's engine and runtime are rebuilt for it and forgotten afterwards;
    the database is dropped even when the block raises.
    """
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(
        server.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    dispose_engine()
    reset_runtime(None)
    try:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        engine.dispose()
        yield url
    finally:
        stale = reset_runtime(None)
        if stale is not None:
            # Its listening connection would otherwise chase the dropped database.
            stale.close()
        dispose_engine()
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the seed put in the database, for building call arguments."""

    session_uuids: tuple[str, ...]
    """Every seeded session, as the legacy code passes uuids (str)."""
    with_uploads: tuple[str, ...]
    """Sessions that have uploads."""
    upload_ids: tuple[int, ...]
    emails: tuple[str, ...]


EPOCH = datetime(2024, 1, 1)


def seed(sessions: int, uploads_per_session: int = 4, *, rng_seed: int = 7) -> Seeded:
    """Insert ``sessions`` sessions and uploads for half of them (through COPY), then ANALYZE."""
    rng = random.Random(rng_seed)
    uuids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(sessions)]
    emails = [f"user{i % max(1, sessions // 4)}@example.com" for i in range(sessions)]
    rows = [
        {
            "uuid": session_uuid,
            "name": f"Session {i}",
            "email": emails[i] if i % 10 else None,
            "created_at": EPOCH + timedelta(seconds=rng.randrange(86_400 * 365)),
            "ip_address": f"10.0.{i % 256}.{i // 256 % 256}",
            "consent_user_data": bool(i % 2),
            "is_email_verified": i % 3 == 0,
            "completed_at": EPOCH + timedelta(days=400) if i % 5 == 0 else None,
        }
        for i, session_uuid in enumerate(uuids)
    ]
    UserSessionRepository().create_many(rows)
    owners = uuids[: sessions // 2]
    files = [
        {
            "session_uuid": owner,
            "filename": f"file{j}.pdf",
            "storage_key": f"uploads/{owner}/file{j}.pdf",
            "size_bytes": rng.randrange(1, 10_000_000),
            "content_type": "application/pdf",
            "sha256": f"{rng.getrandbits(256):064x}",
        }
        for owner in owners
        for j in range(uploads_per_session)
    ]
    UploadedFileRepository().create_many(files)
    engine = create_engine(database_url(), poolclass=NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE user_sessions")
        connection.exec_driver_sql("ANALYZE uploaded_files")
        ids = connection.exec_driver_sql("SELECT id FROM uploaded_files ORDER BY id").scalars()
        upload_ids = tuple(int(i) for i in ids)
    engine.dispose()
    return Seeded(
        session_uuids=tuple(str(u) for u in uuids),
        with_uploads=tuple(str(u) for u in owners),
        upload_ids=upload_ids,
        emails=tuple(sorted(set(emails))),
    )
