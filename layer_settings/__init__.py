"""Both sides of the migration: every environment variable the layer reads, parsed in one place.

One policy for a bad value. What serving needs (the database settings) stops
loudly: ``Settings.database`` raises ``SettingsError`` with one line naming the
variable, its value and what is allowed, so the CLI exits 2 and an
application's first database call fails. A knob of the comparison or the
flags never stops serving: its problem is logged once, and its default (or
the safe side) applies.

The legacy and the ORM path read the same parsed ``DatabaseSettings``; no
other module reads ``os.environ``. Tests and ``compat verify`` give the layer
another database by building settings from a mapping (``load(environ)``)
instead of changing the process's environment.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

__all__ = [
    "VARIABLES",
    "DatabaseSettings",
    "Settings",
    "SettingsError",
    "Variable",
    "current",
    "load",
]

log = logging.getLogger("layer_settings")

MAX_STATEMENT_TIMEOUT_MS: Final = 2_147_483_647
"""PostgreSQL's largest statement_timeout (an int4 of milliseconds)."""
MAX_DRAIN_TIMEOUT_MS: Final = 600_000
"""Ten minutes: an exit that waits longer than that is a hang, not a drain."""
CONNECT_TIMEOUT_S: Final = 5
"""connect_timeout when neither the URL nor PGCONNECT_TIMEOUT gives one (libpq: for ever)."""
MAX_CONNECT_TIMEOUT_S: Final = 3600
"""An hour: a connect that may wait longer is a hung worker."""


class SettingsError(ValueError):
    """A setting the serving path needs has a bad value; the message is one line saying which."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its default as text (None: unset) and what a bad value does."""

    name: str
    default: str | None
    serving: bool
    """True: a bad value stops (CLI exit 2, first call raises); False: logged once, never stops."""
    inherited: bool = False
    """The process's own (PATH): the layer reads it, but no value of it is bad."""

    @property
    def documented_default(self) -> str:
        """The default as docs/configuration.md shows it."""
        if self.inherited:
            return "the process's"
        return "unset" if self.default is None else f"`{self.default}`"

    @property
    def documented_effect(self) -> str:
        """How docs/configuration.md's "A bad value" cell starts."""
        if self.inherited:
            return "— cannot be bad"
        return "stops" if self.serving else "logged once"


VARIABLES: Final[tuple[Variable, ...]] = (
    Variable("DATABASE_URL", None, serving=True),
    Variable("POSTGRES_HOST", "127.0.0.1", serving=True),
    Variable("POSTGRES_PORT", "5432", serving=True),
    Variable("POSTGRES_DB", "postgres", serving=True),
    Variable("POSTGRES_USER", "postgres", serving=True),
    Variable("POSTGRES_PASSWORD", None, serving=True),
    Variable("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_S), serving=False),
    Variable("COMPAT_FLAGS", None, serving=False),
    Variable("COMPAT_FLAGS_FILE", None, serving=False),
    Variable("COMPAT_FLAGS_TTL", "5", serving=False),
    Variable("COMPAT_FLAGS_LISTEN", "1", serving=False),
    Variable("COMPAT_FLAGS_PROVIDER", None, serving=False),
    Variable("COMPAT_KILL_SWITCH", "0", serving=False),
    Variable("COMPAT_CANDIDATE_TIMEOUT_MS", "2000", serving=False),
    Variable("COMPAT_DRAIN_TIMEOUT_MS", "5000", serving=False),
    Variable("COMPAT_REDACT", "1", serving=False),
    Variable("COMPAT_ALLOW_DATA_LOSS", "0", serving=False),
    Variable("COMPAT_CACHE_BACKEND", "memory", serving=False),
    Variable("PROMETHEUS_MULTIPROC_DIR", None, serving=False),
    Variable("PATH", None, serving=False, inherited=True),
)
"""Every variable the layer reads (docs/configuration.md lists them; a test keeps it true)."""

_NAMES: Final = tuple(variable.name for variable in VARIABLES)
DATABASE_VARIABLES: Final = tuple(v.name for v in VARIABLES if v.serving)
_SCHEMES: Final = ("postgresql", "postgres")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Where the database is, as libpq keywords (``host``, ``port``, ``dbname``, ...).

    ``url`` is DATABASE_URL as given (a libpq URI or a SQLAlchemy URL, its
    driver suffix dropped), or None when the POSTGRES_* variables apply.
    """

    parameters: Mapping[str, str] = field(repr=False)
    url: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never the password, wherever a repr ends up (logs, tracebacks)
        return f"DatabaseSettings({self.display()!r})"

    def dsn(self) -> str:
        """The libpq connection string: the URL when one was given, else keywords."""
        if self.url is not None:
            return self.url
        return psycopg2.extensions.make_dsn(**self.parameters)

    def display(self) -> str:
        """``postgresql://user@host:port/dbname``: never the password, safe to print."""
        p = self.parameters
        user = f"{p['user']}@" if "user" in p else ""
        port = f":{p['port']}" if "port" in p else ""
        return f"postgresql://{user}{p.get('host', '')}{port}/{p.get('dbname', '')}"


@dataclass(frozen=True, slots=True)
class Settings:
    """The parsed settings. ``database`` raises SettingsError when they are bad."""

    database_or_error: DatabaseSettings | str
    connect_timeout_s: int = CONNECT_TIMEOUT_S
    """PGCONNECT_TIMEOUT: seconds both sides wait to connect when the URL gives no connect_timeout.

    libpq waits for ever on a server that does not answer; a worker must not
    (docs/deployment.md). 0 waits for ever, as in libpq."""
    flags_text: str | None = None
    flags_file: str | None = None
    flags_ttl_seconds: float = 5.0
    flags_listen: bool = True
    """Flips pushed by LISTEN/NOTIFY (off behind a transaction-pooling PgBouncer)."""
    flags_provider: str | None = None
    """An OpenFeature provider as a flag source: ``openfeature`` or ``module:attribute``."""
    kill_switch: bool = False
    candidate_timeout_ms: int = 2000
    drain_timeout_ms: int = 5000
    """How long exit and compat.shutdown() wait for queued observations to be stored."""
    redact: bool = True
    allow_data_loss: bool = False
    cache_backend: str = "memory"
    """Where cached reads live: ``memory`` (each process), ``off``, or a ``redis://`` URL."""
    search_path: str = "/usr/bin:/bin"
    metrics_dir: str | None = None
    """PROMETHEUS_MULTIPROC_DIR: where prometheus-client's multiprocess mode keeps its files.

    None when unset, or when it is not a directory (then nothing is recorded)."""
    configured: bool = False
    """Whether the environment names a database (DATABASE_URL or any POSTGRES_* variable)."""
    problems: tuple[str, ...] = field(default=())
    """One line per knob whose value was bad (already logged)."""

    @property
    def database(self) -> DatabaseSettings:
        """The database settings; SettingsError (one line) when a variable is bad."""
        if isinstance(self.database_or_error, str):
            raise SettingsError(self.database_or_error)
        return self.database_or_error


def _database(environ: Mapping[str, str]) -> DatabaseSettings | str:
    raw = environ.get("DATABASE_URL") or None
    if raw is not None:
        return _from_url(raw)
    parameters = {
        "host": environ.get("POSTGRES_HOST") or "127.0.0.1",
        "port": environ.get("POSTGRES_PORT") or "5432",
        "dbname": environ.get("POSTGRES_DB") or "postgres",
        "user": environ.get("POSTGRES_USER") or "postgres",
    }
    password = environ.get("POSTGRES_PASSWORD")
    if password:
        parameters["password"] = password
    problem = _port_problem("POSTGRES_PORT", parameters["port"])
    return problem or DatabaseSettings(parameters)


def _port_problem(name: str, text: str) -> str | None:
    if text.isdigit() and 1 <= int(text) <= 65535:
        return None
    return f"{name}={text!r} is not a port; give a whole number from 1 to 65535"


def _from_url(raw: str) -> DatabaseSettings | str:
    if "://" not in raw:
        # A libpq keyword string (host=... dbname=...), which libpq reads as it is.
        try:
            parameters = psycopg2.extensions.parse_dsn(raw)
        except psycopg2.ProgrammingError:
            return (
                "DATABASE_URL cannot be parsed; give postgresql://user@host:port/dbname "
                "or libpq keywords (host=... dbname=...)"
            )
        problem = _port_problem("the port in DATABASE_URL", parameters.get("port", "5432"))
        return problem or DatabaseSettings(parameters, url=raw)
    scheme = raw.split("://", 1)[0]
    # Never the URL itself in a message: it may carry a password.
    if scheme.split("+", 1)[0].lower() not in _SCHEMES or scheme.count("+") > 1:
        return (
            f"DATABASE_URL has the scheme {scheme!r}; only postgresql:// (or "
            "postgresql+psycopg2://) is accepted"
        )
    parts = urlsplit(raw)
    libpq = urlunsplit(("postgresql", *parts[1:]))
    try:
        port = parts.port
        parameters = psycopg2.extensions.parse_dsn(libpq)
    except (ValueError, psycopg2.ProgrammingError):
        # Never libpq's own words: they quote the offending part, which may be the password.
        return "DATABASE_URL cannot be parsed; give postgresql://user@host:port/dbname"
    if port is not None and not 1 <= port <= 65535:
        return f"DATABASE_URL has the port {port}; give a whole number from 1 to 65535"
    return DatabaseSettings(parameters, url=libpq)


def _flag(
    environ: Mapping[str, str],
    name: str,
    problems: list[str],
    *,
    default: bool,
    when_bad: bool | None = None,
) -> bool:
    text = environ.get(name)
    if text is None or not text.strip():
        return default
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    used = default if when_bad is None else when_bad
    problems.append(
        f"{name}={text!r} is not allowed (1/true/yes/on or 0/false/no/off); "
        f"using {'on' if used else 'off'}"
    )
    return used


def _redact(environ: Mapping[str, str], problems: list[str]) -> bool:
    # Personal data is shown only when asked for in exactly the documented way.
    text = environ.get("COMPAT_REDACT")
    if text is None or text.strip() in ("", "1"):
        return True
    if text.strip() == "0":
        return False
    problems.append(
        f"COMPAT_REDACT={text!r} is not allowed (1, or 0 to show personal data); using 1"
    )
    return True


def _ttl(environ: Mapping[str, str], problems: list[str]) -> float:
    text = environ.get("COMPAT_FLAGS_TTL")
    if text is None:
        return 5.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        problems.append(
            f"COMPAT_FLAGS_TTL={text!r} is not allowed (seconds, a number from 0 up); using 5"
        )
        return 5.0
    return value


def _timeout(environ: Mapping[str, str], problems: list[str]) -> int:
    text = environ.get("COMPAT_CANDIDATE_TIMEOUT_MS")
    if text is None:
        return 2000
    stripped = text.strip()
    if stripped.isdigit() and int(stripped) <= MAX_STATEMENT_TIMEOUT_MS:
        return int(stripped)
    problems.append(
        f"COMPAT_CANDIDATE_TIMEOUT_MS={text!r} is not allowed (whole milliseconds, "
        f"0..{MAX_STATEMENT_TIMEOUT_MS}; 0: no budget); using 2000"
    )
    return 2000


def _drain_timeout(environ: Mapping[str, str], problems: list[str]) -> int:
    text = environ.get("COMPAT_DRAIN_TIMEOUT_MS")
    if text is None:
        return 5000
    stripped = text.strip()
    if stripped.isdigit() and int(stripped) <= MAX_DRAIN_TIMEOUT_MS:
        return int(stripped)
    problems.append(
        f"COMPAT_DRAIN_TIMEOUT_MS={text!r} is not allowed (whole milliseconds, "
        f"0..{MAX_DRAIN_TIMEOUT_MS}); using 5000"
    )
    return 5000


def _connect_timeout(environ: Mapping[str, str], problems: list[str]) -> int:
    text = environ.get("PGCONNECT_TIMEOUT")
    if text is None or not text.strip():
        return CONNECT_TIMEOUT_S
    stripped = text.strip()
    if stripped.isdigit() and int(stripped) <= MAX_CONNECT_TIMEOUT_S:
        return int(stripped)
    problems.append(
        f"PGCONNECT_TIMEOUT={text!r} is not allowed (whole seconds, 0..{MAX_CONNECT_TIMEOUT_S}; "
        f"0: wait for ever); using {CONNECT_TIMEOUT_S}"
    )
    return CONNECT_TIMEOUT_S


def _metrics_dir(environ: Mapping[str, str], problems: list[str]) -> str | None:
    # prometheus-client reads the variable itself, at import; the layer reads it
    # to add up every process's files when it is scraped.
    text = environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    if text is not None and not os.path.isdir(text):
        problems.append(
            f"PROMETHEUS_MULTIPROC_DIR={text!r} is not a directory; create it (empty) before "
            "the processes start; the layer's metrics are not recorded"
        )
        return None
    return text


_CACHE_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def _cache_backend(environ: Mapping[str, str], problems: list[str]) -> str:
    text = environ.get("COMPAT_CACHE_BACKEND")
    if text is None or not text.strip():
        return "memory"
    value = text.strip()
    if value.lower() in ("memory", "off"):
        return value.lower()
    if value.lower().startswith(_CACHE_SCHEMES) and len(value) > len("unix://"):
        return value
    # Never the value itself: a Redis URL may carry a password.
    problems.append(
        "COMPAT_CACHE_BACKEND is not allowed (memory, off, or redis://host:port/db); "
        "using off (no read is cached)"
    )
    return "off"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the settings from ``environ`` (the process's environment when None)."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    flags_text = env.get("COMPAT_FLAGS") or None
    flags_file = env.get("COMPAT_FLAGS_FILE") or None
    return Settings(
        database_or_error=_database(env),
        connect_timeout_s=_connect_timeout(env, problems),
        flags_text=flags_text,
        flags_file=flags_file,
        flags_ttl_seconds=_ttl(env, problems),
        flags_listen=_flag(env, "COMPAT_FLAGS_LISTEN", problems, default=True),
        # Checked where it is loaded (compat.flags.provider): a bad one is logged there.
        flags_provider=(env.get("COMPAT_FLAGS_PROVIDER") or "").strip() or None,
        # A garbled kill switch errs on the safe side: every function on legacy.
        kill_switch=_flag(env, "COMPAT_KILL_SWITCH", problems, default=False, when_bad=True),
        candidate_timeout_ms=_timeout(env, problems),
        drain_timeout_ms=_drain_timeout(env, problems),
        redact=_redact(env, problems),
        allow_data_loss=_flag(env, "COMPAT_ALLOW_DATA_LOSS", problems, default=False),
        cache_backend=_cache_backend(env, problems),
        search_path=env.get("PATH") or "/usr/bin:/bin",
        metrics_dir=_metrics_dir(env, problems),
        configured=any(env.get(name) for name in DATABASE_VARIABLES),
        problems=tuple(problems),
    )


# Reentrant: gunicorn runs its child_exit hook (compat.metrics.child_exit, which
# reads the settings) inside its SIGCHLD handler, which may interrupt this very
# thread while it holds the lock; a plain Lock deadlocks the master there.
_lock = threading.RLock()
_cached: tuple[tuple[str | None, ...], Settings] | None = None


def current() -> Settings:
    """The process's settings, parsed once; parsed again only when the environment changed.

    (Tests change the environment; a running application does not.) Each bad
    knob is logged once, when its value is first seen.
    """
    global _cached
    snapshot = tuple(os.environ.get(name) for name in _NAMES)
    cached = _cached
    if cached is not None and cached[0] == snapshot:
        return cached[1]
    with _lock:
        if _cached is not None and _cached[0] == snapshot:
            return _cached[1]
        settings = load()
        for problem in settings.problems:
            log.error("configuration: %s", problem)
        _cached = (snapshot, settings)
        return settings
