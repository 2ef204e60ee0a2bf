"""Compat layer: realistic generated sessions and uploads, for `compat verify`'s throwaway database.

Deterministic for a given seed and anchor time: unicode names (accents,
scripts, emoji, quotes), NULL and mixed-case emails shared by several
sessions, every verification state (no code, pending, expired recently and
long ago, verified; attempts and resends), uploads live and soft-deleted,
with timestamps spread over weeks and some exact ties, so that orderings and
the time-based cleanups have real work. Rows go in through COPY.
"""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, cast

import psycopg2.extensions
import sqlalchemy as sa

__all__ = ["DEFAULT_SESSIONS", "Seeded", "person_name", "seed", "upload_file"]

DEFAULT_SESSIONS: Final = 3000

_FIRST: Final = (
    "Ada", "Grace", "José", "Zoë", "Åsa", "Søren", "Siobhán", "Chloé", "Dmitri", "Ольга",
    "Иван", "李", "王", "さくら", "한결", "محمد", "Fatma", "Nguyễn", "Łukasz", "Ñusta",
    "Ævar", "Björk", "Renée", "François", "Mary-Jane", "O'Neil", "Ana María", "Jean-Luc",
    "🦊 Fox", "Kai 🚀", "Θεοδώρα", "Avraham", "Ngozi", "Aarav", "Lϋ",
)  # fmt: skip
_LAST: Final = (
    "Lovelace", "Hopper", "Núñez", "Ångström", "Kierkegaard", "O'Brien", "Petrova", "Иванов",
    "小龙", "明", "山田", "김", "Özdemir", "Văn An", "Wałęsa", "Quispe", "d'Arcy", "van der Berg",
    "Smith", "Smith", "Müller", "Żółć", "Ben-David", "Okafor", "Sharma", "🌈", "\"Doc\" Brown",
    "Ñandú", "Ωmega", "",
)  # fmt: skip
_DOMAINS: Final = (
    "example.com", "Example.COM", "mail.example.org", "exämple.de", "例え.jp", "uni.example.ac.uk",
)  # fmt: skip
_FILES: Final = (
    ("Résumé 2024.pdf", "application/pdf"),
    ("фото.jpg", "image/jpeg"),
    ("🎉 party.png", "image/png"),
    ("report (final) v2.docx", None),
    ("notes.txt", "text/plain; charset=utf-8"),
    ("数据.csv", "text/csv"),
    ("scan 0001.tiff", "image/tiff"),
    ("voice memo.m4a", "audio/mp4"),
    ("archive.tar.gz", "application/gzip"),
    ("no extension", None),
)

_SESSION_COLUMNS: Final = (
    "uuid", "name", "email", "created_at", "updated_at", "completed_at", "ip_address",
    "consent_user_data", "verification_code", "verification_attempts",
    "max_verification_attempts", "verification_expires_at", "is_email_verified",
    "resend_attempts", "max_resend_attempts", "last_resend_at",
)  # fmt: skip
_UPLOAD_COLUMNS: Final = (
    "session_uuid", "filename", "storage_key", "size_bytes", "content_type", "sha256",
    "uploaded_at", "deleted_at",
)  # fmt: skip

Value = str | int | bool | datetime | None


@dataclass(frozen=True, slots=True)
class Seeded:
    """How many rows went in."""

    sessions: int
    uploads: int


def _copy_field(value: Value) -> str:
    # COPY's text format: \N is NULL; backslash, tab and line breaks are escaped.
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy(
    connection: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Value]]
) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_field(value) for value in row))
        buffer.write("\n")
    buffer.seek(0)
    raw = cast(psycopg2.extensions.connection, connection.connection.dbapi_connection)
    with raw.cursor() as cur:
        # Identifiers are this module's constants, never input.
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


def person_name(rng: random.Random) -> str:
    """A generated name: mostly "First Last" in many scripts, some emoji, a few very long."""
    roll = rng.random()
    if roll < 0.01:
        return rng.choice(_FIRST) * 40  # long, but TEXT has no limit
    if roll < 0.03:
        return rng.choice(_FIRST)
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}".strip()


def upload_file(rng: random.Random) -> tuple[str, str | None]:
    """A generated file name (unicode, spaces, emoji) and its content type (sometimes None)."""
    return rng.choice(_FILES)


def _email(rng: random.Random, name: str, index: int, earlier: list[str]) -> str | None:
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.22 and earlier:
        # The same person again, typed with other capitals: find-by-email ignores case.
        return rng.choice(earlier).swapcase()
    local = "".join(ch for ch in name.split(" ")[0] if ch.isalnum()) or "user"
    if rng.random() < 0.5:
        local = local.lower()
    email = f"{local}.{index}@{rng.choice(_DOMAINS)}"
    earlier.append(email)
    return email


def _ip(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.2:
        return None
    if roll < 0.8:
        return ".".join(str(rng.randint(1, 223 if i == 0 else 254)) for i in range(4))
    return f"2001:db8:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def _session_rows(
    rng: random.Random, count: int, now: datetime
) -> tuple[list[tuple[Value, ...]], list[tuple[str, datetime]]]:
    rows: list[tuple[Value, ...]] = []
    created: list[tuple[str, datetime]] = []
    emails: list[str] = []
    for index in range(count):
        session_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        name = person_name(rng)
        if created and rng.random() < 0.03:
            created_at = rng.choice(created)[1]  # an exact tie: ordering falls back to uuid
        else:
            created_at = now - timedelta(seconds=rng.uniform(60, 45 * 86400))
        updated_at = created_at + timedelta(seconds=rng.uniform(0, 3600))
        completed_at = (
            created_at + timedelta(minutes=rng.uniform(1, 240)) if rng.random() < 0.55 else None
        )
        consent = None if rng.random() < 0.03 else rng.random() < 0.6
        # Verification: none, pending, expired in the last day, expired long ago, verified.
        state = rng.random()
        code: str | None = None
        expires: datetime | None = None
        verified = False
        if state < 0.3:
            pass
        elif state < 0.45:
            code, expires = (
                f"{rng.randint(0, 999999):06d}",
                now + timedelta(minutes=rng.uniform(1, 30)),
            )
        elif state < 0.55:
            code, expires = (
                f"{rng.randint(0, 999999):06d}",
                now - timedelta(hours=rng.uniform(0.1, 23)),
            )
        elif state < 0.75:
            code, expires = (
                f"{rng.randint(0, 999999):06d}",
                now - timedelta(days=rng.uniform(1.1, 40)),
            )
        else:
            verified = True
        attempts = rng.randint(0, 3) if code or verified else 0
        resends = rng.randint(0, 3) if code else 0
        last_resend = now - timedelta(minutes=rng.uniform(1, 5000)) if resends else None
        rows.append(
            (
                session_uuid,
                name,
                _email(rng, name, index, emails),
                created_at,
                updated_at,
                completed_at,
                _ip(rng),
                consent,
                code,
                attempts,
                3 if rng.random() < 0.9 else 5,
                expires,
                verified,
                resends,
                3,
                last_resend,
            )
        )
        created.append((session_uuid, created_at))
    return rows, created


def _upload_rows(
    rng: random.Random, sessions: Sequence[tuple[str, datetime]], now: datetime
) -> list[tuple[Value, ...]]:
    rows: list[tuple[Value, ...]] = []
    for session_uuid, created_at in sessions:
        if rng.random() >= 0.6:
            continue
        for number in range(rng.randint(1, 6)):
            filename, content_type = upload_file(rng)
            roll = rng.random()
            size = (
                0
                if roll < 0.03
                else 5_000_000_000 + number
                if roll < 0.05
                else rng.randint(1, 50_000_000)
            )
            uploaded_at = min(created_at + timedelta(seconds=rng.uniform(1, 7 * 86400)), now)
            deleted_at = (
                uploaded_at + timedelta(hours=rng.uniform(1, 200)) if rng.random() < 0.12 else None
            )
            rows.append(
                (
                    session_uuid,
                    filename,
                    f"uploads/{session_uuid}/{number}-{filename}",
                    size,
                    content_type,
                    hashlib.sha256(f"{session_uuid}/{number}".encode()).hexdigest(),
                    uploaded_at,
                    deleted_at,
                )
            )
    return rows


def seed(
    connection: sa.Connection, sessions: int = DEFAULT_SESSIONS, *, seed: int = 20240601
) -> Seeded:
    """Insert ``sessions`` generated sessions and their uploads (the caller commits).

    Times are spread over the 45 days before the database's current time (UTC,
    naive, as the columns hold them).
    """
    rng = random.Random(seed)
    now = connection.execute(sa.text("SELECT LOCALTIMESTAMP(0)")).scalar_one()
    session_rows, created = _session_rows(rng, sessions, now)
    upload_rows = _upload_rows(rng, created, now)
    _copy(connection, "user_sessions", _SESSION_COLUMNS, session_rows)
    _copy(connection, "uploaded_files", _UPLOAD_COLUMNS, upload_rows)
    connection.execute(sa.text("ANALYZE user_sessions"))
    connection.execute(sa.text("ANALYZE uploaded_files"))
    return Seeded(sessions=len(session_rows), uploads=len(upload_rows))
