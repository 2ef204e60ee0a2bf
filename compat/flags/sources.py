"""Compat layer: the flag sources beside the code default: the environment, a file, the table.

Each source is read entry by entry: a bad entry is reported and skipped, and
the valid entries beside it still apply (one typo must not drop a whole
rollout). Called without a ``problems`` list, a parser raises on the first
bad entry instead, which is what a strict check wants.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final, Protocol

import sqlalchemy as sa

from compat.errors import FlagError, InvalidFlagValue
from compat.flags.modes import Entries, Entry, check_key, parse_mode, parse_sample_rate

__all__ = [
    "READ_TIMEOUT_MS",
    "FlagSource",
    "parse_env_flags",
    "parse_file_flags",
    "read_table",
    "read_table_on",
]

_ROWS: Final = "SELECT key, mode, sample_rate, percent FROM compat_flags"

READ_TIMEOUT_MS: Final = 1000
"""How long a flag read may wait (on a lock, say) before the last good values are kept."""


class FlagSource(Protocol):
    """A source of flags besides ours (an OpenFeature provider): applied above the file,
    below the table, so that the guard's step backs and the kill switch still win."""

    @property
    def name(self) -> str:
        """What ``compat flags list`` shows as the source of the flags it gives."""
        ...

    def read(self, keys: Collection[str], problems: list[str]) -> Entries:
        """Each key's entry that this source has; a bad entry is a problem, never an exception."""
        ...

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the source's flags changed (a push); may never call it."""
        ...


def _entry(problems: list[str] | None, where: str, parse: Callable[[], None]) -> None:
    try:
        parse()
    except FlagError as error:
        if problems is None:
            raise
        problems.append(f"{where}: {error}")


def parse_env_flags(text: str, keys: Collection[str], problems: list[str] | None = None) -> Entries:
    """Parse ``COMPAT_FLAGS``: ``key=mode[:rate],key=mode``; ``*`` as a key means every key."""
    entries: Entries = {}
    for item in filter(None, (part.strip() for part in text.split(","))):

        def parse(item: str = item) -> None:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep:
                raise InvalidFlagValue(f"{item!r} is not key=mode")
            mode_text, _, rate_text = value.strip().partition(":")
            targets = sorted(keys) if key == "*" else [check_key(key, keys)]
            parsed = {
                target: Entry(
                    parse_mode(target, mode_text),
                    parse_sample_rate(target, rate_text) if rate_text else None,
                )
                for target in targets
            }
            entries.update(parsed)

        _entry(problems, f"entry {item!r}", parse)
    return entries


def parse_file_flags(
    path: Path, keys: Collection[str], problems: list[str] | None = None
) -> Entries:
    """Parse a TOML flags file: ``[flags]`` with ``key = "mode"`` or ``{mode, sample_rate}``.

    A file that cannot be read or parsed at all raises OSError, TOMLDecodeError
    or UnicodeDecodeError (not UTF-8), or FlagError when it has no table.
    """
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    table = document.get("flags", {})
    if not isinstance(table, dict):
        raise InvalidFlagValue(f"{path}: [flags] must be a table")
    entries: Entries = {}
    for key, value in table.items():

        def parse(key: str = key, value: object = value) -> None:
            check_key(key, keys)
            if isinstance(value, dict):
                unknown = set(value) - {"mode", "sample_rate"}
                if unknown:
                    raise InvalidFlagValue(f"{key} has unknown fields {sorted(unknown)}")
                rate = value.get("sample_rate")
                entries[key] = Entry(
                    parse_mode(key, value.get("mode")),
                    None if rate is None else parse_sample_rate(key, rate),
                )
            else:
                entries[key] = Entry(parse_mode(key, value))

        _entry(problems, f"{path}: entry {key!r}", parse)
    return entries


def read_table(engine: sa.Engine) -> Entries:
    """Every row of ``compat_flags``; a lock holds it up for READ_TIMEOUT_MS at most."""
    with engine.connect() as connection, connection.begin():
        # A locked table must not stall the first facade call, which waits for
        # the first read: give up quickly and serve the defaults meanwhile.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {READ_TIMEOUT_MS}")
        rows = connection.execute(sa.text(_ROWS))
        return {
            key: Entry(parse_mode(key, mode), float(rate), float(percent))
            for key, mode, rate, percent in rows
        }


def read_table_on(raw: Any) -> Entries:
    """Every row of ``compat_flags``, read on a psycopg2 connection in autocommit (the listener's).

    The listener reads on its own connection, so that pushed flips never take
    a connection from the application's pool.
    """
    with raw.cursor() as cursor:
        cursor.execute(_ROWS)
        return {
            key: Entry(parse_mode(key, mode), float(rate), float(percent))
            for key, mode, rate, percent in cursor.fetchall()
        }
