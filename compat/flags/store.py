"""Compat layer: which path serves each facade function, from code, file, table and environment."""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from compat.errors import UnknownFlag
from orm.database import get_engine

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "FlagChange",
    "FlagState",
    "FlagStore",
    "Mode",
    "parse_env_flags",
    "parse_file_flags",
]

log = logging.getLogger("compat.flags")

DEFAULT_TTL_SECONDS: Final = 5.0


class Mode(StrEnum):
    """What a facade call runs: who serves the caller, and whether the other path is compared."""

    LEGACY = "legacy"
    """Legacy serves; nothing else runs."""
    SHADOW = "shadow"
    """Legacy serves; the ORM runs as a candidate and is compared."""
    LIVE = "live"
    """The ORM serves; legacy runs as a candidate and is compared."""
    ORM = "orm"
    """The ORM serves; nothing else runs."""


MODES: Final = tuple(mode.value for mode in Mode)


@dataclass(frozen=True, slots=True)
class FlagState:
    """A facade function's effective flag and where it came from."""

    key: str
    mode: Mode
    sample_rate: float = 1.0
    source: str = "default"


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One audited change of a flag."""

    key: str
    old_mode: str | None
    new_mode: str
    old_sample_rate: float | None
    new_sample_rate: float
    changed_by: str
    reason: str
    changed_at: datetime


Entries = dict[str, tuple[Mode, float | None]]


def _mode(key: str, value: object) -> Mode:
    try:
        return Mode(str(value))
    except ValueError:
        raise UnknownFlag(
            f"{key}: unknown mode {value!r}; valid modes are {', '.join(MODES)}"
        ) from None


def _sample_rate(key: str, value: object) -> float:
    if type(value) not in (int, float) and not isinstance(value, str):
        raise UnknownFlag(f"{key}: sample rate must be a number from 0 to 1, not {value!r}")
    try:
        rate = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise UnknownFlag(
            f"{key}: sample rate must be a number from 0 to 1, not {value!r}"
        ) from None
    if not 0.0 <= rate <= 1.0:
        raise UnknownFlag(f"{key}: sample rate must be from 0 to 1, not {rate}")
    return rate


def check_key(key: str, keys: Collection[str]) -> str:
    """Return ``key`` when it names a facade function; else UnknownFlag listing the valid ones."""
    if key not in keys:
        raise UnknownFlag(f"unknown flag key {key!r}; valid keys are: {', '.join(sorted(keys))}")
    return key


def parse_env_flags(text: str, keys: Collection[str]) -> Entries:
    """Parse ``COMPAT_FLAGS``: ``key=mode[:rate],key=mode``; ``*`` as a key means every key."""
    entries: Entries = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise UnknownFlag(f"COMPAT_FLAGS: {item!r} is not key=mode")
        mode_text, _, rate_text = value.strip().partition(":")
        targets = sorted(keys) if key == "*" else [check_key(key, keys)]
        for target in targets:
            entries[target] = (
                _mode(target, mode_text),
                _sample_rate(target, rate_text) if rate_text else None,
            )
    return entries


def parse_file_flags(path: Path, keys: Collection[str]) -> Entries:
    """Parse a TOML flags file: ``[flags]`` with ``key = "mode"`` or ``{mode, sample_rate}``."""
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    table = document.get("flags", {})
    if not isinstance(table, dict):
        raise UnknownFlag(f"{path}: [flags] must be a table")
    entries: Entries = {}
    for key, value in table.items():
        check_key(key, keys)
        if isinstance(value, dict):
            unknown = set(value) - {"mode", "sample_rate"}
            if unknown:
                raise UnknownFlag(f"{path}: {key} has unknown fields {sorted(unknown)}")
            rate = value.get("sample_rate")
            entries[key] = (
                _mode(key, value.get("mode")),
                None if rate is None else _sample_rate(key, rate),
            )
        else:
            entries[key] = (_mode(key, value), None)
    return entries


READ_TIMEOUT_MS: Final = 1000
"""How long a flag read may wait (on a lock, say) before the last good values are kept."""


def _read_table() -> Entries:
    with get_engine().connect() as connection, connection.begin():
        # A locked table must not stall the first facade call, which waits for
        # the first read: give up quickly and serve the defaults meanwhile.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {READ_TIMEOUT_MS}")
        rows = connection.execute(sa.text("SELECT key, mode, sample_rate FROM compat_flags"))
        return {key: (_mode(key, mode), float(rate)) for key, mode, rate in rows}


class FlagStore:
    """The effective flags of every facade function, read on each call from memory.

    Sources, weakest first: the code default (``legacy``), the TOML file named
    by ``COMPAT_FLAGS_FILE``, the ``compat_flags`` table (shared by every
    process), the ``COMPAT_FLAGS`` variable; ``COMPAT_KILL_SWITCH=1`` forces
    ``legacy`` everywhere. The table is read again in a background thread when
    its copy is older than the TTL; when it cannot be read, the last good copy
    stays in force and one warning is logged until it can be read again.
    """

    def __init__(
        self,
        keys: Iterable[str],
        *,
        ttl_seconds: float | None = None,
        environ: Mapping[str, str] | None = None,
        read_table: Callable[[], Entries] = _read_table,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys: frozenset[str] = frozenset(keys)
        self._environ = os.environ if environ is None else environ
        self.ttl_seconds = self._ttl_from_environment() if ttl_seconds is None else ttl_seconds
        self._reads_started = 0
        self._read_applied = 0
        self._read_table = read_table
        self._clock = clock
        self._lock = threading.Lock()
        self._table: Entries = {}
        self._table_ok = False
        self._warned = False
        self._refreshing = False
        self._thread: threading.Thread | None = None
        self._expires_at = float("-inf")
        self._states: dict[str, FlagState] = {}
        self.problems: tuple[str, ...] = ()
        self._rebuild()

    def _ttl_from_environment(self) -> float:
        text = self._environ.get("COMPAT_FLAGS_TTL")
        if text is None:
            return DEFAULT_TTL_SECONDS
        try:
            ttl = float(text)
        except ValueError:
            ttl = -1.0
        if not 0.0 <= ttl < float("inf"):
            log.error(
                "compat flags: COMPAT_FLAGS_TTL=%r is not a number of seconds; using %s",
                text,
                DEFAULT_TTL_SECONDS,
            )
            return DEFAULT_TTL_SECONDS
        return ttl

    # -- reading ---------------------------------------------------------

    def resolve(self, key: str) -> FlagState:
        """The effective flag of ``key``; a dictionary lookup, plus a refresh when stale."""
        if self._clock() >= self._expires_at:
            self._refresh_soon()
        return self._states[key]

    def states(self) -> list[FlagState]:
        """Every key's effective flag, sorted by key (reads the table now if it is stale)."""
        if self._clock() >= self._expires_at:
            self.refresh()
        return [self._states[key] for key in sorted(self._states)]

    def refresh(self) -> None:
        """Read the table now (blocking) and rebuild the effective flags."""
        with self._lock:
            self._reads_started += 1
            ticket = self._reads_started
        try:
            table = self._read_table()
        except Exception as error:  # the store must keep serving whatever went wrong
            self._table_failed(error)
        else:
            with self._lock:
                # Two reads can overlap (a blocking one from `set`, a background
                # one): an older read that finishes last must not win.
                if ticket > self._read_applied:
                    self._read_applied = ticket
                    self._table, self._table_ok, self._warned = table, True, False
        finally:
            with self._lock:
                self._expires_at = self._clock() + self.ttl_seconds
                self._refreshing = False
        self._rebuild()

    def _refresh_soon(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
            first = not self._table_ok and not self._warned
        if first:
            # Nothing was ever read: wait once, so that the first call already
            # honours the table rather than the code default.
            self.refresh()
            return
        thread = threading.Thread(target=self.refresh, name="compat-flags-refresh", daemon=True)
        self._thread = thread
        thread.start()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for the background refresh in flight, if any; False when it is still running."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _table_failed(self, error: Exception) -> None:
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            kept = "the last good values" if self._table_ok else "the defaults"
            log.warning(
                "compat flags: cannot read the compat_flags table (%s: %s); keeping %s "
                "until it can be read again",
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
                kept,
            )

    def after_fork(self) -> None:
        """In a forked child: the parent's refresher thread is gone, so refresh on its own."""
        self._lock = threading.Lock()
        self._refreshing = False
        self._thread = None
        self._expires_at = float("-inf")

    # -- composing -------------------------------------------------------

    def _rebuild(self) -> None:
        problems: list[str] = []
        states = {key: FlagState(key, Mode.LEGACY) for key in self.keys}
        file_name = self._environ.get("COMPAT_FLAGS_FILE")
        if file_name:
            self._apply(
                states, "file", lambda: parse_file_flags(Path(file_name), self.keys), problems
            )
        with self._lock:
            table = dict(self._table)
        self._apply(
            states, "table", lambda: {k: v for k, v in table.items() if k in self.keys}, problems
        )
        env_text = self._environ.get("COMPAT_FLAGS")
        if env_text:
            self._apply(states, "env", lambda: parse_env_flags(env_text, self.keys), problems)
        if self._environ.get("COMPAT_KILL_SWITCH", "") not in ("", "0"):
            states = {
                key: FlagState(key, Mode.LEGACY, state.sample_rate, "kill-switch")
                for key, state in states.items()
            }
        unknown_rows = sorted(set(table) - self.keys)
        if unknown_rows:
            problems.append(f"compat_flags has rows for unknown keys: {', '.join(unknown_rows)}")
        if problems != list(self.problems):
            for problem in problems:
                log.error("compat flags: %s (entry ignored)", problem)
        self.problems = tuple(problems)
        self._states = states

    @staticmethod
    def _apply(
        states: dict[str, FlagState],
        source: str,
        load: Callable[[], Entries],
        problems: list[str],
    ) -> None:
        try:
            entries = load()
        except (UnknownFlag, OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            # A file that is not UTF-8 raises UnicodeDecodeError: refused like bad TOML.
            problems.append(f"{source}: {error}")
            return
        for key, (mode, rate) in entries.items():
            current = states[key]
            states[key] = replace(
                current,
                mode=mode,
                sample_rate=current.sample_rate if rate is None else rate,
                source=source,
            )

    # -- writing ---------------------------------------------------------

    def set(
        self,
        key: str,
        mode: str,
        *,
        reason: str,
        by: str | None = None,
        sample_rate: float | None = None,
    ) -> FlagChange:
        """Set a flag in the ``compat_flags`` table and write the audit row, in one transaction."""
        check_key(key, self.keys)
        new_mode = _mode(key, mode)
        if not reason or not reason.strip():
            raise UnknownFlag(f"{key}: a reason is required for every flag change")
        given_rate = None if sample_rate is None else _sample_rate(key, sample_rate)
        who = by or _os_user()
        with get_engine().begin() as connection:
            old = connection.execute(
                sa.text("SELECT mode, sample_rate FROM compat_flags WHERE key = :key FOR UPDATE"),
                {"key": key},
            ).first()
            rate = (
                given_rate if given_rate is not None else (float(old.sample_rate) if old else 1.0)
            )
            connection.execute(
                sa.text(
                    "INSERT INTO compat_flags (key, mode, sample_rate, updated_by) "
                    "VALUES (:key, :mode, :rate, :by) ON CONFLICT (key) DO UPDATE SET "
                    "mode = EXCLUDED.mode, sample_rate = EXCLUDED.sample_rate, "
                    "updated_by = EXCLUDED.updated_by, updated_at = CURRENT_TIMESTAMP"
                ),
                {"key": key, "mode": new_mode.value, "rate": rate, "by": who},
            )
            changed_at = connection.execute(
                sa.text(
                    "INSERT INTO compat_flag_audit (key, old_mode, new_mode, old_sample_rate, "
                    "new_sample_rate, changed_by, reason) "
                    "VALUES (:key, :old_mode, :new_mode, :old_rate, :new_rate, :by, :reason) "
                    "RETURNING changed_at"
                ),
                {
                    "key": key,
                    "old_mode": old.mode if old else None,
                    "new_mode": new_mode.value,
                    "old_rate": float(old.sample_rate) if old else None,
                    "new_rate": rate,
                    "by": who,
                    "reason": reason.strip(),
                },
            ).scalar_one()
        self.refresh()
        return FlagChange(
            key=key,
            old_mode=old.mode if old else None,
            new_mode=new_mode.value,
            old_sample_rate=float(old.sample_rate) if old else None,
            new_sample_rate=rate,
            changed_by=who,
            reason=reason.strip(),
            changed_at=changed_at,
        )

    def history(self, key: str | None = None, limit: int = 100) -> list[FlagChange]:
        """The audited changes, newest first; of one key when given."""
        if key is not None:
            check_key(key, self.keys)
        query = (
            "SELECT key, old_mode, new_mode, old_sample_rate, new_sample_rate, changed_by, "
            "reason, changed_at FROM compat_flag_audit "
            "WHERE CAST(:key AS text) IS NULL OR key = :key "
            "ORDER BY changed_at DESC, id DESC LIMIT :limit"
        )
        with get_engine().connect() as connection:
            rows = connection.execute(sa.text(query), {"key": key, "limit": limit})
            return [FlagChange(**row._asdict()) for row in rows]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
