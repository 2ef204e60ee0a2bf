"""Compat layer: the calls `compat verify` makes to each facade function, from rows sampled live.

Sampling runs on the server (``ORDER BY random() LIMIT n`` after ``setseed``),
so a table of any size costs a scan, never memory here. Each function gets up
to ``n`` calls on sampled rows plus a few edge calls (a missing uuid, another
spelling of an existing one, a duplicate, a boundary value). Labels name the
kind of call, never a value: they appear in reports.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import sqlalchemy as sa

from compat.routing.arguments import BIGINT_MAX
from compat.routing.declaration import REGISTRY
from compat.verify.seeding import person_name, upload_file

__all__ = [
    "Call",
    "Samples",
    "abandoned_sweeps",
    "by_email",
    "by_session",
    "by_session_with_uploads",
    "by_upload",
    "calls_for",
    "expiry_sweeps",
    "new_sessions",
    "new_uploads",
    "sample",
    "session_pages",
    "session_updates",
    "stats_pages",
    "verification_codes",
    "whole_table",
]

WHOLE_TABLE_CALLS: Final = 3
"""Functions that scan a whole table (counts, every uuid, cleanups) get at most this many calls."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call to make on both paths: what it is (for the report) and its arguments."""

    label: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    edge: bool = False
    """An edge case (a missing row, a duplicate, a boundary): verify makes it, the bench not."""


@dataclass(frozen=True, slots=True)
class Samples:
    """Rows sampled from the database under verification (values only, a few per kind)."""

    sessions: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uploads: tuple[int, ...] = ()
    sessions_with_uploads: tuple[str, ...] = ()
    storage_keys: tuple[str, ...] = ()
    first_created: datetime | None = None
    last_created: datetime | None = None


def sample(connection: sa.Connection, n: int, seed: int = 0) -> Samples:
    """Sample ``n`` rows of each kind on the server; repeatable for the same seed and table."""
    # setseed() takes -1..1; random() after it repeats for the same table contents.
    connection.execute(sa.text("SELECT setseed(:seed)"), {"seed": (seed % 2000) / 1000 - 1})
    sessions = connection.execute(
        sa.text("SELECT uuid::text FROM user_sessions ORDER BY random() LIMIT :n"), {"n": n}
    ).scalars()
    emails = connection.execute(
        sa.text(
            "SELECT email FROM user_sessions WHERE email IS NOT NULL ORDER BY random() LIMIT :n"
        ),
        {"n": n},
    ).scalars()
    uploads = connection.execute(
        sa.text(
            "SELECT id, session_uuid::text AS session_uuid, storage_key FROM uploaded_files "
            "ORDER BY random() LIMIT :n"
        ),
        {"n": n},
    ).all()
    first, last = connection.execute(
        sa.text("SELECT min(created_at), max(created_at) FROM user_sessions")
    ).one()
    return Samples(
        sessions=tuple(sessions),
        emails=tuple(emails),
        uploads=tuple(row.id for row in uploads),
        sessions_with_uploads=tuple(dict.fromkeys(row.session_uuid for row in uploads)),
        storage_keys=tuple(row.storage_key for row in uploads),
        first_created=first,
        last_created=last,
    )


Builder = Callable[[Samples, int, random.Random], list[Call]]
"""How to call a facade function: its declaration names one (``@facade(..., calls=...)``)."""


def calls_for(key: str, samples: Samples, n: int, seed: int = 0) -> list[Call]:
    """The calls for ``key`` (empty when none is declared); its own seeded random per key.

    A function that reads or rewrites a whole table gets at most
    WHOLE_TABLE_CALLS of them.
    """
    spec = REGISTRY[key]
    if spec.calls is None:
        return []
    calls = list(spec.calls(samples, n, random.Random(f"{seed}:{key}")))
    return calls[:WHOLE_TABLE_CALLS] if spec.shape.whole_table else calls


def _new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _sampled(values: Sequence[Any], n: int, what: str) -> list[tuple[str, Any]]:
    return [(f"sampled {what} {index + 1}", value) for index, value in enumerate(values[:n])]


def _uuid_edges(samples: Samples, rng: random.Random) -> list[Call]:
    edges = [Call("missing uuid", (_new_uuid(rng),), edge=True)]
    if samples.sessions:
        existing = samples.sessions[0]
        edges.append(Call("sampled uuid in upper case", (existing.upper(),), edge=True))
        edges.append(
            Call(
                "sampled uuid in braces, no hyphens",
                (f"{{{existing.replace('-', '')}}}",),
                edge=True,
            )
        )
    return edges


def by_session(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = [Call(label, (value,)) for label, value in _sampled(samples.sessions, n, "session")]
    return calls + _uuid_edges(samples, rng)


def by_session_with_uploads(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    half = max(1, n // 2)
    with_uploads = _sampled(samples.sessions_with_uploads, n - half, "session with uploads")
    calls = [Call(label, (value,)) for label, value in with_uploads]
    calls += [Call(label, (value,)) for label, value in _sampled(samples.sessions, half, "session")]
    return calls + _uuid_edges(samples, rng)


def new_sessions(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = []
    for index in range(n):
        name = person_name(rng)
        email = None if index % 5 == 0 else f"Verify.{index}@Example.com"
        kwargs: dict[str, Any] = {}
        if index % 3 == 1:
            kwargs["ip_address"] = f"192.0.2.{index % 250 + 1}"
        if index % 4 == 2:
            kwargs["consent_user_data"] = True
        calls.append(Call(f"new session {index + 1}", (_new_uuid(rng), name, email), kwargs))
    calls.append(Call("very long name", (_new_uuid(rng), "Ä" * 10_000, None), edge=True))
    if samples.sessions:
        calls.append(
            Call("uuid that exists already", (samples.sessions[0], "Dup", None), edge=True)
        )
    return calls


def session_updates(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    completed_at = samples.last_created or datetime(2024, 1, 1)
    changes: list[tuple[str, dict[str, Any]]] = [
        ("new name", {"name": person_name(rng)}),
        ("email to NULL", {"email": None}),
        ("mixed-case email", {"email": "Changed.Address@Example.COM"}),
        ("completed_at", {"completed_at": completed_at}),
        ("consent and ip", {"consent_user_data": True, "ip_address": "198.51.100.7"}),
        ("nothing", {}),
    ]
    calls = []
    for index, (label, value) in enumerate(_sampled(samples.sessions, n, "session")):
        what, data = changes[index % len(changes)]
        calls.append(Call(f"{label}: {what}", (value, data)))
    calls.append(Call("missing uuid", (_new_uuid(rng), {"name": "Nobody"}), edge=True))
    return calls


def whole_table(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    return [Call(f"whole table, run {index + 1}") for index in range(min(n, WHOLE_TABLE_CALLS))]


def by_email(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = [Call(label, (value,)) for label, value in _sampled(samples.emails, n, "email")]
    if samples.emails:
        calls.append(
            Call("sampled email in other case", (samples.emails[0].swapcase(),), edge=True)
        )
    calls.append(
        Call("missing email", (f"nobody.{rng.getrandbits(32):x}@example.invalid",), edge=True)
    )
    calls.append(Call("empty string", ("",), edge=True))
    return calls


_ORDERS: Final = ("-created_at", "created_at", "name", "-name", "email", "-email")


def session_pages(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    first, last = samples.first_created, samples.last_created
    middle = first + (last - first) / 2 if first and last else None
    calls = [Call("defaults")]
    for index in range(max(0, n - 1)):
        kwargs: dict[str, Any] = {
            "order": _ORDERS[index % len(_ORDERS)],
            "limit": rng.choice((1, 10, 50, 200)),
            "offset": rng.choice((0, 0, 3, 100)),
        }
        filters = rng.random()
        if filters < 0.25:
            kwargs["verified"] = rng.choice((True, False))
        elif filters < 0.5:
            kwargs["completed"] = rng.choice((True, False))
        elif filters < 0.75 and middle is not None:
            kwargs["created_after" if rng.random() < 0.5 else "created_before"] = middle
        elif middle is not None:
            kwargs.update(
                verified=False, completed=True, created_after=first, created_before=middle
            )
        calls.append(Call(f"page {index + 1} by {kwargs['order']}", (), kwargs))
    calls.append(Call("offset past the end", (), {"offset": 10**9}, edge=True))
    calls.append(Call("limit 0", (), {"limit": 0}, edge=True))
    return calls


def abandoned_sweeps(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    hours = (24, 24 * 7, 0.5)
    return [Call(f"older than {h} hours", (h,)) for h in hours[: min(n, WHOLE_TABLE_CALLS)]]


def expiry_sweeps(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = [
        Call("default (24 hours)"),
        Call("older than 1 hour", (1,)),
        Call("older than 168 hours", (168,)),
    ]
    return calls[: min(n, WHOLE_TABLE_CALLS)]


def verification_codes(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    base = samples.last_created or datetime(2024, 1, 1)
    calls = [
        Call(label, (value, f"{rng.randint(0, 999999):06d}", base + timedelta(minutes=15)))
        for label, value in _sampled(samples.sessions, n, "session")
    ]
    if samples.sessions:
        aware = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        calls.append(Call("expiry with a time zone", (samples.sessions[0], "000000", aware)))
    calls.append(Call("missing uuid", (_new_uuid(rng), "123456", base), edge=True))
    return calls


def new_uploads(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = []
    for label, session in _sampled(samples.sessions, n, "session"):
        filename, content_type = upload_file(rng)
        key = f"uploads/{session}/verify-{rng.getrandbits(64):016x}-{filename}"
        size = rng.choice((0, 1, rng.randint(2, 50_000_000), 5_000_000_000))
        digest = hashlib.sha256(key.encode()).hexdigest()
        calls.append(Call(label, (session, filename, key, size, content_type, digest)))
    digest = "0" * 64
    calls.append(
        Call(
            "missing session",
            (_new_uuid(rng), "x.txt", f"verify/{rng.getrandbits(64):x}", 1, None, digest),
            edge=True,
        )
    )
    if samples.sessions and samples.storage_keys:
        duplicate = (samples.sessions[0], "dup.txt", samples.storage_keys[0], 1, None, digest)
        calls.append(Call("storage key that exists already", duplicate, edge=True))
    return calls


def by_upload(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = [Call(label, (value,)) for label, value in _sampled(samples.uploads, n, "upload")]
    calls.append(Call("missing id 0", (0,), edge=True))
    calls.append(Call("largest bigint id", (BIGINT_MAX,), edge=True))
    return calls


def stats_pages(samples: Samples, n: int, rng: random.Random) -> list[Call]:
    calls = [Call("default limit"), Call("limit 1", (1,)), Call("limit 0", (0,), edge=True)]
    return calls[: min(n, WHOLE_TABLE_CALLS)]
