"""Compat layer: the flag store: each facade function's effective mode, and its audited changes."""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

import layer_settings
from compat.errors import FlagError, InvalidFlagValue
from compat.flags.modes import (
    MODES,
    Entries,
    FlagChange,
    FlagState,
    Mode,
    check_key,
    parse_mode,
    parse_sample_rate,
)
from compat.flags.sources import parse_env_flags, parse_file_flags
from compat.flags.sources import read_table as read_table_of
from orm.database import get_engine

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "MAX_BY_LENGTH",
    "MAX_REASON_LENGTH",
    "MODES",
    "FlagChange",
    "FlagState",
    "FlagStore",
    "Mode",
]

log = logging.getLogger("compat.flags")

DEFAULT_TTL_SECONDS: Final = 5.0
MAX_REASON_LENGTH: Final = 500
"""The longest ``--reason`` a flag change may have (characters)."""
MAX_BY_LENGTH: Final = 100
"""The longest ``--by`` a flag change may have (characters)."""


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
        keys: Mapping[str, Any] | Iterable[str],
        *,
        ttl_seconds: float | None = None,
        environ: Mapping[str, str] | None = None,
        engine: Callable[[], sa.Engine] = get_engine,
        read_table: Callable[[], Entries] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A registry (a mapping) is kept live: a function declared later is known too.
        self._keys: Collection[str] = keys if isinstance(keys, Mapping) else frozenset(keys)
        self._settings: Callable[[], layer_settings.Settings] = (
            layer_settings.current if environ is None else lambda: layer_settings.load(environ)
        )
        self._engine = engine
        self.ttl_seconds = (
            self._settings().flags_ttl_seconds if ttl_seconds is None else ttl_seconds
        )
        self._reads_started = 0
        self._read_applied = 0
        self._read_table = read_table or (lambda: read_table_of(self._engine()))
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

    @property
    def keys(self) -> Collection[str]:
        """The keys of every declared facade function."""
        return self._keys

    # -- reading ---------------------------------------------------------

    def resolve(self, key: str) -> FlagState:
        """The effective flag of ``key``; a dictionary lookup, plus a refresh when stale."""
        if self._clock() >= self._expires_at:
            self._refresh_soon()
        try:
            return self._states[key]
        except KeyError:  # declared after the store was built (a test's throwaway function)
            check_key(key, self.keys)
            self._rebuild()
            return self._states[key]

    def states(self) -> list[FlagState]:
        """Every key's effective flag, sorted by key (reads the table now if it is stale)."""
        if self._clock() >= self._expires_at:
            self.refresh()
        return [self._states[key] for key in sorted(self._states)]

    def refresh(self, *, strict: bool = False) -> None:
        """Read the table now (blocking) and rebuild the effective flags.

        A read that fails keeps the last good flags and warns once; with
        ``strict`` (the command line, which must not show defaults as if they
        were the table's) the error is raised too.
        """
        with self._lock:
            self._reads_started += 1
            ticket = self._reads_started
        try:
            table = self._read_table()
        except Exception as error:  # the store must keep serving whatever went wrong
            if strict:  # the caller reports it: no warning besides
                raise
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
        settings = self._settings()
        keys = self.keys
        states = {key: FlagState(key, Mode.LEGACY) for key in keys}
        file_name = settings.flags_file
        if file_name:
            self._apply(
                states,
                "file",
                lambda found: parse_file_flags(Path(file_name), keys, found),
                problems,
            )
        with self._lock:
            table = dict(self._table)
        self._apply(
            states, "table", lambda found: {k: v for k, v in table.items() if k in keys}, problems
        )
        env_text = settings.flags_text
        if env_text:
            self._apply(
                states, "env", lambda found: parse_env_flags(env_text, keys, found), problems
            )
        if settings.kill_switch:
            states = {
                key: FlagState(key, Mode.LEGACY, state.sample_rate, "kill-switch")
                for key, state in states.items()
            }
        unknown_rows = sorted(key for key in table if key not in keys)
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
        load: Callable[[list[str]], Entries],
        problems: list[str],
    ) -> None:
        found: list[str] = []
        try:
            entries = load(found)
        except (FlagError, OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            # A file that is not UTF-8 raises UnicodeDecodeError: refused like bad TOML.
            problems.append(f"{source}: {error}")
            return
        finally:
            problems.extend(f"{source}: {problem}" for problem in found)
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
        new_mode = parse_mode(key, mode)
        if not reason or not reason.strip():
            raise InvalidFlagValue(f"{key}: a reason is required for every flag change")
        if len(reason.strip()) > MAX_REASON_LENGTH:
            raise InvalidFlagValue(
                f"{key}: the reason is {len(reason.strip())} characters long; at most "
                f"{MAX_REASON_LENGTH} are allowed (link a ticket for the rest)"
            )
        if by is not None and len(by) > MAX_BY_LENGTH:
            raise InvalidFlagValue(
                f"{key}: --by is {len(by)} characters long; at most {MAX_BY_LENGTH} are allowed"
            )
        given_rate = None if sample_rate is None else parse_sample_rate(key, sample_rate)
        who = by or _os_user()
        with self._engine().begin() as connection:
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
        with self._engine().connect() as connection:
            rows = connection.execute(sa.text(query), {"key": key, "limit": limit})
            return [FlagChange(**row._asdict()) for row in rows]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
