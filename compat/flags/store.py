"""Compat layer: the flag store: each facade function's effective mode, and its audited changes."""

from __future__ import annotations

import getpass
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

import layer_settings
from compat.errors import FlagChangedMeanwhile, FlagError, InvalidFlagValue
from compat.flags.listener import CHANNEL, FlagSubscriber
from compat.flags.modes import (
    MODES,
    Entries,
    Entry,
    FlagChange,
    FlagState,
    Mode,
    check_key,
    parse_mode,
    parse_percent,
    parse_sample_rate,
)
from compat.flags.sources import FlagSource, parse_env_flags, parse_file_flags
from compat.flags.sources import read_table as read_table_of
from compat.listening import Listener
from orm.database import get_engine

__all__ = [
    "MAX_BY_LENGTH",
    "MAX_REASON_LENGTH",
    "MODES",
    "FlagChange",
    "FlagState",
    "FlagStore",
    "Mode",
]

log = logging.getLogger("compat.flags")

MAX_REASON_LENGTH: Final = 500
"""The longest ``--reason`` a flag change may have (characters)."""
MAX_BY_LENGTH: Final = 100
"""The longest ``--by`` a flag change may have (characters)."""
FIRST_READ_WAIT_SECONDS: Final = 10.0
"""How long a call waits for another caller's first read of the table before it serves."""


class FlagStore:
    """The effective flags of every facade function, read on each call from memory.

    Sources, weakest first: the code default (``legacy``), the TOML file named
    by ``COMPAT_FLAGS_FILE``, an OpenFeature provider (``COMPAT_FLAGS_PROVIDER``,
    or ``sources``), the ``compat_flags`` table (shared by every
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
        listen: bool = False,
        listener: Listener | None = None,
        settings: layer_settings.Settings | None = None,
        sources: Sequence[FlagSource] | None = None,
    ) -> None:
        # A registry (a mapping) is kept live: a function declared later is known too.
        self._keys: Collection[str] = keys if isinstance(keys, Mapping) else frozenset(keys)
        self._settings: Callable[[], layer_settings.Settings] = (
            (lambda: settings)
            if settings is not None
            else layer_settings.current
            if environ is None
            else lambda: layer_settings.load(environ)
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
        self._rebuilding = threading.Lock()
        """One rebuild at a time: each composes the newest table, so none lands stale."""
        self._first_read = threading.Event()
        self._table: Entries = {}
        self._table_ok = False
        self._warned = False
        self._refreshing = False
        self._thread: threading.Thread | None = None
        self._expires_at = float("-inf")
        self._states: dict[str, FlagState] = {}
        self.problems: tuple[str, ...] = ()
        # ``listener``: the process's, shared with the read cache (its runtime owns
        # it); ``listen`` without one: a listener of this store's own.
        self._owns_listener = listen and listener is None
        if self._owns_listener:
            listener = Listener(engine)
        if listener is not None:
            listener.subscribe(CHANNEL, FlagSubscriber(self.refresh))
        self.listener = listener
        """Pushes flips (compat.flags.listener); started by the first facade call."""
        self._source_problems: tuple[str, ...] = ()
        self.sources: tuple[FlagSource, ...] = (
            tuple(sources) if sources is not None else self._configured_sources()
        )
        for source in self.sources:
            # The provider's own push: its values are read again, the table is not.
            source.on_change(self._rebuild)
        self._rebuild()

    @property
    def keys(self) -> Collection[str]:
        """The keys of every declared facade function."""
        return self._keys

    # -- reading ---------------------------------------------------------

    def resolve(self, key: str) -> FlagState:
        """The effective flag of ``key``; a dictionary lookup, plus a refresh when stale.

        A copy up to two TTLs old is served while a background read renews it;
        an older one (a process that sat idle) is read again before the call,
        so that a flip made while it was idle is never served late.
        """
        now = self._clock()
        if now >= self._expires_at:
            listener = self.listener
            if listener is not None and not listener.started:
                # Started by the first facade calls, not by a command that only reads.
                listener.start()
            if now >= self._expires_at + self.ttl_seconds and self._table_ok:
                self.refresh()
            else:
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

    def refresh(self, read: Callable[[], Entries] | None = None, *, strict: bool = False) -> None:
        """Read the table now (blocking) and rebuild the effective flags.

        ``read`` reads it another way (the listener's own connection). A read
        that fails keeps the last good flags and warns once; with ``strict``
        (the command line, which must not show defaults as if they were the
        table's) the error is raised too.
        """
        with self._lock:
            self._reads_started += 1
            ticket = self._reads_started
        try:
            table = (read or self._read_table)()
        except Exception as error:  # the store must keep serving whatever went wrong
            if strict:  # the caller reports it: no warning besides
                self._first_read.set()  # nothing better is coming for whoever waits
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
        self._first_read.set()  # after the rebuild: a waiting caller finds the table's modes

    def close(self) -> None:
        """Stop pushing flips to this store (its own listener's thread and connection)."""
        if self.listener is not None and self._owns_listener:
            self.listener.stop()

    def _refresh_soon(self) -> None:
        with self._lock:
            first = not self._table_ok and not self._warned
            busy, self._refreshing = self._refreshing, True
        if busy:
            if first:
                # Another caller is making the first read: serving the code default
                # meanwhile would send this call down a path the table may not hold.
                self._first_read.wait(FIRST_READ_WAIT_SECONDS)
            return
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
        self._rebuilding = threading.Lock()
        self._refreshing = False
        self._thread = None
        if not self._first_read.is_set():
            self._first_read = threading.Event()
        if self.listener is not None and self._owns_listener:
            self.listener.after_fork()
        # Expired now, so the first call starts a read; a copy that was already
        # older than two TTLs stays so, and that call reads before it serves.
        self._expires_at = min(self._expires_at, self._clock())

    def _configured_sources(self) -> tuple[FlagSource, ...]:
        """The provider ``COMPAT_FLAGS_PROVIDER`` names; none (and a problem) when it is bad."""
        named = self._settings().flags_provider
        if named is None:
            return ()
        from compat.flags.provider import from_setting  # the optional extra, only when named

        try:
            return (from_setting(named),)
        except FlagError as error:
            self._source_problems = (f"provider: {error}",)
            return ()

    # -- composing -------------------------------------------------------

    def _rebuild(self) -> None:
        # Two rebuilds at once (a background refresh, a pushed flip, the provider's
        # event) must not let the one that read the older table assign last.
        with self._rebuilding:
            self._compose()

    def _compose(self) -> None:
        problems: list[str] = list(self._source_problems)
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
        for source in self.sources:
            self._apply(
                states,
                source.name,
                lambda found, source=source: source.read(keys, found),  # type: ignore[misc]
                problems,
            )
        with self._lock:
            table = dict(self._table)
        rows = {k: v for k, v in table.items() if k in keys}
        self._apply(states, "table", lambda found: rows, problems)
        env_text = settings.flags_text
        if env_text:
            self._apply(
                states, "env", lambda found: parse_env_flags(env_text, keys, found), problems
            )
        if settings.kill_switch or KILL_SWITCH_KEY in table:
            states = {
                key: FlagState(key, Mode.LEGACY, state.sample_rate, "kill-switch")
                for key, state in states.items()
            }
        unknown_rows = sorted(key for key in table if key not in keys and key != KILL_SWITCH_KEY)
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
        for key, value in entries.items():
            entry = Entry(*value)
            current = states[key]
            states[key] = replace(
                current,
                mode=entry.mode,
                sample_rate=current.sample_rate if entry.sample_rate is None else entry.sample_rate,
                source=source,
                percent=100.0 if entry.percent is None else entry.percent,
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
        percent: float = 100.0,
    ) -> FlagChange:
        """Set a flag in the ``compat_flags`` table and write the audit row, in one transaction."""
        check_key(key, self.keys)
        [change] = self.set_many(
            [key], mode, reason=reason, by=by, sample_rate=sample_rate, percent=percent
        )
        return change

    def set_many(
        self,
        keys: Sequence[str],
        mode: str,
        *,
        reason: str,
        by: str | None = None,
        sample_rate: float | None = None,
        percent: float = 100.0,
        expected: Mapping[str, Mode] | None = None,
        forced: Mapping[str, str] | None = None,
    ) -> list[FlagChange]:
        """Set every key's flag and write an audit row for each, all in one transaction.

        With ``expected`` (key -> the mode the table held when the change was
        decided; legacy for no row), a key whose row holds another mode now
        raises FlagChangedMeanwhile and nothing is written. ``forced`` (key ->
        the gate's verdict at that moment) goes into that key's audit row after
        the reason; it is the layer's own text, so the reason's bound is the
        caller's alone.
        ``KILL_SWITCH_KEY`` is the one key that is not a facade function: its row
        (mode ``legacy``) sends every function back to legacy (see kill_switch()).
        """
        for key in keys:
            if key != KILL_SWITCH_KEY:
                check_key(key, self.keys)
        first = keys[0] if keys else "flags"
        new_mode = parse_mode(first, mode)
        if not reason or not reason.strip():
            raise InvalidFlagValue(f"{first}: a reason is required for every flag change")
        _check_audit_text(first, reason, by)
        given_rate = None if sample_rate is None else parse_sample_rate(first, sample_rate)
        ramp = parse_percent(first, percent)
        who = by or _os_user()
        changes = []
        with self._engine().begin() as connection:
            for key in keys:
                if expected is not None and key in expected:
                    _check_unchanged(connection, key, expected[key])
                why = reason.strip()
                if forced and key in forced:
                    why = f"{why} [forced past the gate: {forced[key]}]"
                changes.append(_write_change(connection, key, new_mode, given_rate, who, why, ramp))
            _notify(connection)
        self.refresh()
        return changes

    def step_back(
        self, key: str, expected: Mode, to: Mode, *, reason: str, by: str
    ) -> FlagChange | None:
        """Move ``key`` from ``expected`` to ``to`` in one transaction, only if it is still there.

        None when the table no longer holds ``expected`` for it (someone moved
        it meanwhile): a step back is never applied twice.
        """
        check_key(key, self.keys)
        with self._engine().begin() as connection:
            row = connection.execute(
                sa.text("SELECT mode FROM compat_flags WHERE key = :key FOR UPDATE"), {"key": key}
            ).first()
            if row is None or row.mode != expected.value:
                return None
            change = _write_change(connection, key, to, None, by, reason)
            _notify(connection)
        self.refresh()
        return change

    def table_modes(self) -> dict[str, Mode]:
        """Each key's mode as the shared table holds it now (legacy where it has no row)."""
        with self._engine().connect() as connection:
            found = connection.execute(sa.text("SELECT key, mode FROM compat_flags"))
            rows: dict[str, str] = {row.key: row.mode for row in found}
        return {key: Mode(rows[key]) if key in rows else Mode.LEGACY for key in self.keys}

    def kill_switch(self, on: bool, *, reason: str, by: str | None = None) -> FlagChange | None:
        """Turn the shared kill switch on (every function on legacy, in every process) or off.

        Stored as the ``*`` row of compat_flags and audited like a flag; off
        deletes the row (audited as ``legacy -> off``). None when it already
        was as asked.
        """
        if not reason or not reason.strip():
            raise InvalidFlagValue("kill-switch: a reason is required for every change")
        _check_audit_text("kill-switch", reason, by)
        who = by or _os_user()
        with self._engine().begin() as connection:
            present = connection.execute(
                sa.text("SELECT mode FROM compat_flags WHERE key = :key FOR UPDATE"),
                {"key": KILL_SWITCH_KEY},
            ).first()
            found: FlagChange | None = None
            if on and present is None:
                found = _write_change(
                    connection, KILL_SWITCH_KEY, Mode.LEGACY, None, who, reason.strip()
                )
            elif not on and present is not None:
                connection.execute(
                    sa.text("DELETE FROM compat_flags WHERE key = :key"), {"key": KILL_SWITCH_KEY}
                )
                found = _audit(
                    connection,
                    FlagChange(
                        KILL_SWITCH_KEY,
                        "legacy",
                        "off",
                        1.0,
                        1.0,
                        who,
                        reason.strip(),
                        datetime.min,
                    ),
                )
            if found is not None:
                _notify(connection)
        self.refresh()
        return found

    @property
    def kill_switch_on(self) -> bool:
        """Whether the shared kill switch (the table's ``*`` row) is on, as last read."""
        with self._lock:
            return KILL_SWITCH_KEY in self._table

    def history(self, key: str | None = None, limit: int = 100) -> list[FlagChange]:
        """The audited changes, newest first; of one key when given."""
        if key is not None and key != KILL_SWITCH_KEY:
            check_key(key, self.keys)
        query = (
            "SELECT key, old_mode, new_mode, old_sample_rate, new_sample_rate, changed_by, "
            "reason, changed_at, old_percent, new_percent FROM compat_flag_audit "
            "WHERE CAST(:key AS text) IS NULL OR key = :key "
            "ORDER BY changed_at DESC, id DESC LIMIT :limit"
        )
        with self._engine().connect() as connection:
            rows = connection.execute(sa.text(query), {"key": key, "limit": limit})
            return [FlagChange(**row._asdict()) for row in rows]


KILL_SWITCH_KEY: Final = "*"
"""The compat_flags row that, present, sends every facade function to legacy."""


def _check_unchanged(connection: sa.Connection, key: str, expected: Mode) -> None:
    """Lock ``key``'s row; FlagChangedMeanwhile when it no longer holds ``expected``."""
    row = connection.execute(
        sa.text("SELECT mode FROM compat_flags WHERE key = :key FOR UPDATE"), {"key": key}
    ).first()
    now = Mode(row.mode) if row is not None else Mode.LEGACY
    if now is not expected:
        raise FlagChangedMeanwhile(
            f"{key} is in {now.value} now, not {expected.value} as when its gate was decided"
        )


def _check_audit_text(key: str, reason: str, by: str | None) -> None:
    """Refuse audit text past its bounds (before any SQL): the audit keeps it for good."""
    if len(reason.strip()) > MAX_REASON_LENGTH:
        raise InvalidFlagValue(
            f"{key}: the reason is {len(reason.strip())} characters long; at most "
            f"{MAX_REASON_LENGTH} are allowed (link a ticket for the rest)"
        )
    if by is not None and len(by) > MAX_BY_LENGTH:
        raise InvalidFlagValue(
            f"{key}: --by is {len(by)} characters long; at most {MAX_BY_LENGTH} are allowed"
        )


def _notify(connection: sa.Connection) -> None:
    # Delivered when the transaction commits, to every process listening.
    connection.exec_driver_sql(f"NOTIFY {CHANNEL}")


def _write_change(
    connection: sa.Connection,
    key: str,
    mode: Mode,
    given_rate: float | None,
    who: str,
    reason: str,
    percent: float = 100.0,
) -> FlagChange:
    old = connection.execute(
        sa.text("SELECT mode, sample_rate, percent FROM compat_flags WHERE key = :key FOR UPDATE"),
        {"key": key},
    ).first()
    rate = given_rate if given_rate is not None else (float(old.sample_rate) if old else 1.0)
    connection.execute(
        sa.text(
            "INSERT INTO compat_flags (key, mode, sample_rate, percent, updated_by) "
            "VALUES (:key, :mode, :rate, :percent, :by) ON CONFLICT (key) DO UPDATE SET "
            "mode = EXCLUDED.mode, sample_rate = EXCLUDED.sample_rate, "
            "percent = EXCLUDED.percent, updated_by = EXCLUDED.updated_by, "
            "updated_at = CURRENT_TIMESTAMP"
        ),
        {"key": key, "mode": mode.value, "rate": rate, "percent": percent, "by": who},
    )
    before = FlagChange(
        key,
        old.mode if old else None,
        mode.value,
        float(old.sample_rate) if old else None,
        rate,
        who,
        reason,
        changed_at=datetime.min,
        old_percent=float(old.percent) if old else None,
        new_percent=percent,
    )
    return _audit(connection, before)


def _audit(connection: sa.Connection, change: FlagChange) -> FlagChange:
    """Write ``change`` to the audit; it comes back with the database's time of it."""
    changed_at = connection.execute(
        sa.text(
            "INSERT INTO compat_flag_audit (key, old_mode, new_mode, old_sample_rate, "
            "new_sample_rate, old_percent, new_percent, changed_by, reason) "
            "VALUES (:key, :old_mode, :new_mode, :old_sample_rate, :new_sample_rate, "
            ":old_percent, :new_percent, :changed_by, :reason) RETURNING changed_at"
        ),
        {
            "key": change.key,
            "old_mode": change.old_mode,
            "new_mode": change.new_mode,
            "old_sample_rate": change.old_sample_rate,
            "new_sample_rate": change.new_sample_rate,
            "old_percent": change.old_percent,
            "new_percent": change.new_percent,
            "changed_by": change.changed_by,
            "reason": change.reason,
        },
    ).scalar_one()
    return replace(change, changed_at=changed_at)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
