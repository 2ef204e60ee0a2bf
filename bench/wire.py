"""Benchmarks: count the round trips a call makes, from libpq's own protocol trace.

On a machine shared with other work the microseconds of a call move by tens
of percent from one run to the next; the number of messages it sends to the
server does not. psycopg2 speaks PostgreSQL's simple query protocol, so every
round trip is one frontend ``Query`` message (a ``BEGIN``, a statement, a
``COMMIT``, the pool's pre-ping alike). libpq writes each message it sends
to a trace stream (``PQtrace``); this module points that stream of every
pooled connection at a temporary file and reads the frontend's queries back.
It reaches libpq through ctypes: the one that psycopg2-binary bundles, or the
system's for a psycopg2 built from source.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy import event

__all__ = ["WireTrace", "trace_round_trips"]

_SUPPRESS_TIMESTAMPS = 1  # PQTRACE_SUPPRESS_TIMESTAMPS


def _libpq() -> ctypes.CDLL:
    bundled = Path(psycopg2.__file__).resolve().parent.parent / "psycopg2_binary.libs"
    found = sorted(glob.glob(str(bundled / "libpq-*.so*")))
    path = found[0] if found else ctypes.util.find_library("pq")
    if path is None:
        raise RuntimeError("libpq not found: install psycopg2-binary or the system's libpq")
    libpq = ctypes.CDLL(path)
    libpq.PQtrace.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    libpq.PQtrace.restype = None
    libpq.PQuntrace.argtypes = [ctypes.c_void_p]
    libpq.PQuntrace.restype = None
    libpq.PQsetTraceFlags.argtypes = [ctypes.c_void_p, ctypes.c_int]
    libpq.PQsetTraceFlags.restype = None
    return libpq


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fopen.restype = ctypes.c_void_p
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.fclose.restype = ctypes.c_int
    libc.fflush.argtypes = [ctypes.c_void_p]
    libc.fflush.restype = ctypes.c_int
    return libc


@dataclass
class WireTrace:
    """What the traced connections sent: one entry per round trip, in order."""

    path: Path
    _stream: int
    _libc: ctypes.CDLL
    _libpq: ctypes.CDLL
    _traced: list[Any] = field(default_factory=list)

    def follow(self, dbapi_connection: Any) -> None:
        """Trace ``dbapi_connection`` (a psycopg2 connection) too, from now on; once is enough."""
        if not any(traced is dbapi_connection for traced in self._traced):
            pointer = ctypes.c_void_p(dbapi_connection.pgconn_ptr)
            self._libpq.PQtrace(pointer, ctypes.c_void_p(self._stream))
            self._libpq.PQsetTraceFlags(pointer, _SUPPRESS_TIMESTAMPS)
            self._traced.append(dbapi_connection)

    def queries(self) -> list[str]:
        """The text of every ``Query`` message sent so far (one round trip each)."""
        self._libc.fflush(ctypes.c_void_p(self._stream))
        sent = []
        for line in self.path.read_text(errors="replace").splitlines():
            direction, _, rest = line.partition("\t")
            if direction != "F":
                continue
            _length, _, message = rest.partition("\t")
            kind, _, text = message.partition("\t")
            if kind == "Query":
                text = text.strip()  # libpq quotes the whole query: "SELECT ..."
                sent.append(text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text)
        return sent

    def mark(self) -> int:
        """How many round trips so far: take two marks around a call to count its own."""
        return len(self.queries())


@contextmanager
def trace_round_trips(engine: sa.Engine) -> Iterator[WireTrace]:
    """Trace every connection the engine's pool hands out inside the block.

    A connection is traced from its first checkout in the block, after that
    checkout's liveness check: warm up with one call before taking marks.
    ``WireTrace.follow`` adds a connection from elsewhere (the bench's peer pool).
    """
    libpq, libc = _libpq(), _libc()
    with tempfile.TemporaryDirectory(prefix="wire-") as directory:
        path = Path(directory) / "trace.txt"
        stream = libc.fopen(os.fsencode(path), b"w")
        if not stream:
            raise OSError(f"cannot open {path} for libpq's trace")
        trace = WireTrace(path, stream, libc, libpq)

        def on_checkout(dbapi_connection: Any, *_: Any) -> None:
            trace.follow(dbapi_connection)

        event.listen(engine, "checkout", on_checkout)
        try:
            yield trace
        finally:
            event.remove(engine, "checkout", on_checkout)
            for connection in trace._traced:
                if not connection.closed:  # a closed one's PGconn is freed
                    libpq.PQuntrace(ctypes.c_void_p(connection.pgconn_ptr))
            libc.fclose(ctypes.c_void_p(stream))
