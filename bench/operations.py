"""Benchmarks: the facade functions measured, with the arguments of each call and its category."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bench.database import Seeded
from compat import email_verification as facade_verification
from compat import uploads as facade_uploads
from compat import user_sessions as facade_sessions
from legacy import email_verification as legacy_verification
from legacy import uploads as legacy_uploads
from legacy import user_sessions as legacy_sessions

__all__ = ["CATEGORIES", "OPERATIONS", "Call", "Operation"]

Call = tuple[tuple[Any, ...], dict[str, Any]]
"""One call's positional and keyword arguments."""

POINT_READ: Final = "point read"
WRITE: Final = "single-row write"
PAGE: Final = "100-row page"
AGGREGATE: Final = "aggregate"
OTHER: Final = "other read"
CATEGORIES: Final = (POINT_READ, WRITE, PAGE, AGGREGATE, OTHER)


@dataclass(frozen=True, slots=True)
class Operation:
    """One facade function as measured: its two implementations and how to call it."""

    name: str
    category: str
    facade: Callable[..., Any]
    legacy: Callable[..., Any]
    arguments: Callable[[Seeded, random.Random], Call]
    weight: float = 1.0
    """Scales the calls per batch: heavy operations (whole-table reads) get fewer."""


def _session(seeded: Seeded, rng: random.Random) -> Call:
    return (rng.choice(seeded.session_uuids),), {}


def _with_uploads(seeded: Seeded, rng: random.Random) -> Call:
    return (rng.choice(seeded.with_uploads),), {}


def _upload(seeded: Seeded, rng: random.Random) -> Call:
    return (rng.choice(seeded.upload_ids),), {}


def _page(seeded: Seeded, rng: random.Random) -> Call:
    offset = rng.randrange(0, max(1, len(seeded.session_uuids) - 100))
    return (), {"limit": 100, "offset": offset, "order": "-created_at"}


def _email(seeded: Seeded, rng: random.Random) -> Call:
    return (rng.choice(seeded.emails),), {}


def _nothing(seeded: Seeded, rng: random.Random) -> Call:
    return (), {}


def _stats(seeded: Seeded, rng: random.Random) -> Call:
    return (), {"limit": 20}


def _update(seeded: Seeded, rng: random.Random) -> Call:
    n = rng.randrange(10**6)
    data = {"name": f"Renamed {n}", "email": f"renamed{n}@example.com"}
    return (rng.choice(seeded.session_uuids), data), {}


def _insert(seeded: Seeded, rng: random.Random) -> Call:
    new = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return (new, "Bench insert", "insert@example.com", "10.1.2.3", True), {}


def _code(seeded: Seeded, rng: random.Random) -> Call:
    code = f"{rng.randrange(10**6):06d}"
    return (rng.choice(seeded.session_uuids), code, datetime(2030, 1, 1)), {}


def _record(seeded: Seeded, rng: random.Random) -> Call:
    owner = rng.choice(seeded.session_uuids)
    key = f"uploads/{owner}/bench-{rng.getrandbits(64):016x}.bin"
    sha = f"{rng.getrandbits(256):064x}"
    return (owner, "bench.bin", key, 1234, "application/octet-stream", sha), {}


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "user_sessions.get_session",
        POINT_READ,
        facade_sessions.get_session,
        legacy_sessions.get_session,
        _session,
    ),
    Operation(
        "user_sessions.check_uuid_exists",
        POINT_READ,
        facade_sessions.check_uuid_exists,
        legacy_sessions.check_uuid_exists,
        _session,
    ),
    Operation(
        "email_verification.get_verification",
        POINT_READ,
        facade_verification.get_verification,
        legacy_verification.get_verification,
        _session,
    ),
    Operation(
        "uploads.get_upload",
        POINT_READ,
        facade_uploads.get_upload,
        legacy_uploads.get_upload,
        _upload,
    ),
    Operation(
        "uploads.total_upload_bytes",
        POINT_READ,
        facade_uploads.total_upload_bytes,
        legacy_uploads.total_upload_bytes,
        _with_uploads,
    ),
    Operation(
        "user_sessions.update_session",
        WRITE,
        facade_sessions.update_session,
        legacy_sessions.update_session,
        _update,
    ),
    Operation(
        "user_sessions.insert_session",
        WRITE,
        facade_sessions.insert_session,
        legacy_sessions.insert_session,
        _insert,
    ),
    Operation(
        "email_verification.increment_verification_attempts",
        WRITE,
        facade_verification.increment_verification_attempts,
        legacy_verification.increment_verification_attempts,
        _session,
    ),
    Operation(
        "email_verification.set_verification_code",
        WRITE,
        facade_verification.set_verification_code,
        legacy_verification.set_verification_code,
        _code,
    ),
    Operation(
        "uploads.record_upload",
        WRITE,
        facade_uploads.record_upload,
        legacy_uploads.record_upload,
        _record,
    ),
    Operation(
        "user_sessions.list_sessions",
        PAGE,
        facade_sessions.list_sessions,
        legacy_sessions.list_sessions,
        _page,
        weight=0.5,
    ),
    Operation(
        "uploads.upload_stats",
        AGGREGATE,
        facade_uploads.upload_stats,
        legacy_uploads.upload_stats,
        _stats,
        weight=0.25,
    ),
    Operation(
        "user_sessions.count_sessions",
        AGGREGATE,
        facade_sessions.count_sessions,
        legacy_sessions.count_sessions,
        _nothing,
        weight=0.5,
    ),
    Operation(
        "user_sessions.find_sessions_by_email",
        OTHER,
        facade_sessions.find_sessions_by_email,
        legacy_sessions.find_sessions_by_email,
        _email,
        weight=0.5,
    ),
    Operation(
        "uploads.list_uploads",
        OTHER,
        facade_uploads.list_uploads,
        legacy_uploads.list_uploads,
        _with_uploads,
    ),
    Operation(
        "user_sessions.list_session_uuids",
        OTHER,
        facade_sessions.list_session_uuids,
        legacy_sessions.list_session_uuids,
        _nothing,
        weight=0.1,
    ),
)
