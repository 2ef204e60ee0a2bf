"""Compat layer: a private, throwaway PostgreSQL for `compat verify` when no database is configured.

It runs the machine's own PostgreSQL binaries (``pg_config --bindir``, the
newest ``/usr/lib/postgresql/*/bin``, or ``initdb`` on PATH); only where none
exist, those bundled in an installed ``pgserver`` package, run the same way
(never through that package's API, which as root creates an OS user and opens
the permissions of every parent directory). PostgreSQL refuses to run as root:
as root the server runs under the existing ``postgres`` account, in a new
temporary directory made for it. It listens only on a Unix socket in that
directory (mode 0700), and is stopped and removed when the block ends, however
it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final
from urllib.parse import quote

import psycopg2
import sqlalchemy as sa

import layer_settings

__all__ = [
    "ACCOUNT",
    "Binaries",
    "EmbeddedPostgres",
    "EmbeddedUnavailable",
    "choose_account",
    "embedded_postgres",
    "find_binaries",
]

ACCOUNT: Final = "postgres"
"""The OS account the server runs under when we are root (PostgreSQL refuses root)."""

PORT: Final = 5432
"""Only names the socket file (``.s.PGSQL.5432``) inside our own directory: no TCP port."""

SYSTEM_ROOTS: Final = (Path("/usr/lib/postgresql"),)
"""Where Debian and Ubuntu install each major version's binaries (``<root>/<major>/bin``)."""

START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 15.0
_SOCKET_PATH_MAX: Final = 107  # sun_path holds 108 bytes, NUL included
_INSTALL_HINT: Final = (
    "install PostgreSQL's server binaries (Debian/Ubuntu: apt-get install postgresql; "
    "elsewhere the distribution's postgresql-server package), or set DATABASE_URL to verify "
    "an existing database instead"
)

Progress = Callable[[str], None]


class EmbeddedUnavailable(RuntimeError):
    """No throwaway PostgreSQL can be started here; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Binaries:
    """A directory holding ``initdb`` and ``postgres``, and where it was found."""

    bindir: Path
    source: str

    @property
    def initdb(self) -> Path:
        return self.bindir / "initdb"

    @property
    def postgres(self) -> Path:
        return self.bindir / "postgres"


def _usable(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres"))


def _major(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (-1,)


def _pg_config_bindir(environ: Mapping[str, str]) -> Path | None:
    pg_config = shutil.which("pg_config", path=environ.get("PATH", ""))
    if pg_config is None:
        return None
    try:
        done = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def _pgserver_bindir() -> Path | None:
    # Located without importing it: importing pgserver runs nothing of ours to
    # worry about, but its API is exactly what we avoid.
    import importlib.util

    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def find_binaries(
    environ: Mapping[str, str] | None = None,
    roots: Sequence[Path] = SYSTEM_ROOTS,
    *,
    packaged: bool = True,
) -> Binaries:
    """The machine's PostgreSQL server binaries, else an installed pgserver's; else raise.

    Looked for in order: ``pg_config --bindir``, the newest ``<root>/<major>/bin``
    of ``roots``, the directory of ``initdb`` on PATH, and (``packaged``) the
    binaries inside an installed ``pgserver`` package.
    """
    environ = {"PATH": layer_settings.current().search_path} if environ is None else environ
    candidates: list[tuple[Path | None, str]] = [(_pg_config_bindir(environ), "pg_config")]
    for root in roots:
        versions = sorted(
            (path for path in root.glob("*/bin") if path.is_dir()),
            key=lambda path: _major(path.parent),
            reverse=True,
        )
        candidates.extend((path, str(root)) for path in versions)
    initdb = shutil.which("initdb", path=environ.get("PATH", ""))
    if initdb is not None:
        candidates.append((Path(initdb).resolve().parent, "PATH"))
    if packaged:
        candidates.append((_pgserver_bindir(), "the pgserver package"))
    for bindir, source in candidates:
        if bindir is not None and _usable(bindir):
            return Binaries(bindir, source)
    raise EmbeddedUnavailable(
        f"no PostgreSQL server binaries (initdb, postgres) found via pg_config, under "
        f"{', '.join(str(root) for root in roots) or 'no system directory'}, or on PATH: "
        f"{_INSTALL_HINT}"
    )


def choose_account(euid: int, account: str = ACCOUNT) -> pwd.struct_passwd | None:
    """The account to run the server under: None (ourselves) unless we are root.

    As root it is the existing ``account``; we never create one.
    """
    if euid != 0:
        return None
    try:
        return pwd.getpwnam(account)
    except KeyError:
        raise EmbeddedUnavailable(
            f"running as root, and PostgreSQL refuses to run as root; the usual {account!r} "
            f"account that it would run under does not exist here (compat never creates "
            f"accounts). Either {_INSTALL_HINT} (the package creates the {account!r} "
            f"account), or run compat verify as a user that is not root"
        ) from None


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` (by uid and primary gid) can traverse every directory down to ``path``."""
    for directory in [path, *path.parents]:
        try:
            info = directory.stat()
        except OSError:
            return False
        if info.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


@dataclass
class EmbeddedPostgres:
    """A running throwaway server: where it lives, how to reach it, who runs it."""

    directory: Path
    binaries: Binaries
    account: str
    process: subprocess.Popen[bytes] | None = None
    version: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_directory(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> sa.URL:
        """SQLAlchemy URL: user postgres, database postgres, the Unix socket in our directory."""
        return sa.URL.create(
            "postgresql+psycopg2",
            username="postgres",
            database="postgres",
            query={"host": str(self.directory), "port": str(PORT)},
        )

    @property
    def libpq_url(self) -> str:
        """The same as a libpq URI (what DATABASE_URL holds)."""
        return f"postgresql://postgres@/postgres?host={quote(str(self.directory))}&port={PORT}"

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and remove its directory; safe to call twice."""
        if self._stopped:
            return
        process = self.process
        if process is not None and process.poll() is None:
            # SIGQUIT is PostgreSQL's immediate shutdown: no checkpoint for data
            # that is about to be deleted; the postmaster ends its children first.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
        # Only now: a signal that cut the above short leaves it for the next call to finish.
        self._stopped = True


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


@dataclass(frozen=True, slots=True)
class _Child:
    """How a child process runs: in the server's directory, as ``user`` (None: as ourselves)."""

    cwd: Path
    env: dict[str, str]
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _child(server: EmbeddedPostgres, user: pwd.struct_passwd | None) -> _Child:
    env = {
        "PATH": layer_settings.current().search_path,
        "LC_ALL": "C",
        "TZ": "UTC",
        "PGTZ": "UTC",
    }
    if user is None:
        return _Child(server.directory, env)
    env.update(HOME=str(server.directory), USER=user.pw_name, LOGNAME=user.pw_name)
    return _Child(server.directory, env, user.pw_uid, user.pw_gid, [])


def _wait_until_ready(server: EmbeddedPostgres, log: Path) -> None:
    process = server.process
    assert process is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise EmbeddedUnavailable(
                f"the throwaway PostgreSQL exited at start (status {process.returncode}); "
                f"its log ends:\n{_log_tail(log)}"
            )
        try:
            conn = psycopg2.connect(
                host=str(server.directory),
                port=PORT,
                user="postgres",
                dbname="postgres",
                connect_timeout=5,
            )
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise EmbeddedUnavailable(
                    f"the throwaway PostgreSQL did not accept connections within "
                    f"{START_TIMEOUT_SECONDS:g} s; its log ends:\n{_log_tail(log)}"
                ) from None
            # Waits for the server to exit or for the next attempt, whichever is first.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.02)
            continue
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                row = cur.fetchone()
                server.version = str(row[0]) if row else ""
        finally:
            conn.close()
        return


def _start(server: EmbeddedPostgres, user: pwd.struct_passwd | None) -> None:
    log = server.directory / "server.log"
    child = _child(server, user)
    with log.open("ab") as out:
        initdb = subprocess.run(
            [
                str(server.binaries.initdb),
                "--pgdata",
                str(server.data_directory),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            cwd=child.cwd,
            env=child.env,
            user=child.user,
            group=child.group,
            extra_groups=child.extra_groups,
        )
    if initdb.returncode != 0:
        raise EmbeddedUnavailable(
            f"initdb ({server.binaries.initdb}) failed with status {initdb.returncode}; "
            f"its output ends:\n{_log_tail(log)}"
        )
    settings = {
        "listen_addresses": "",
        "unix_socket_directories": str(server.directory),
        "unix_socket_permissions": "0700",
        "port": str(PORT),
        # Durability is pointless for data deleted within the minute.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "TimeZone": "UTC",
        "max_connections": "20",
    }
    argv = [str(server.binaries.postgres), "-D", str(server.data_directory)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    with log.open("ab") as out:
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
        server.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=child.cwd,
            env=child.env,
            user=child.user,
            group=child.group,
            extra_groups=child.extra_groups,
        )
    _wait_until_ready(server, log)


def _make_directory(user: pwd.struct_passwd | None) -> Path:
    base = Path(tempfile.gettempdir()).resolve()
    if user is not None and not _reachable(base, user):
        raise EmbeddedUnavailable(
            f"the {user.pw_name!r} account cannot reach the temporary directory {base} "
            f"(a parent of it is closed to that account, and compat never changes the "
            f"permissions of directories it did not make): set TMPDIR to a directory every "
            f"account can traverse, such as /tmp"
        )
    directory = Path(tempfile.mkdtemp(prefix="compat-verify-", dir=base))  # mode 0700
    if len(str(directory / f".s.PGSQL.{PORT}.lock")) > _SOCKET_PATH_MAX:
        shutil.rmtree(directory, ignore_errors=True)
        raise EmbeddedUnavailable(
            f"the temporary directory {directory} is too long a path for a Unix socket: "
            f"set TMPDIR to a shorter one, such as /tmp"
        )
    if user is not None:
        # Our own new directory (still mode 0700) handed to the account that runs the server.
        os.chown(directory, user.pw_uid, user.pw_gid)
    return directory


def _current_account() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a container's uid with no passwd entry
        return str(os.geteuid())


@contextlib.contextmanager
def _stopped_on_termination(server: EmbeddedPostgres) -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit (so the finally clauses run), and stop at exit."""
    atexit.register(server.stop)
    previous: list[tuple[signal.Signals, Any]] = []
    if threading.current_thread() is threading.main_thread():

        def exit_on(signum: int, _frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous.append((signum, signal.signal(signum, exit_on)))
    try:
        yield
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)
        atexit.unregister(server.stop)


@contextlib.contextmanager
def embedded_postgres(
    progress: Progress = lambda _message: None,
    *,
    binaries: Binaries | None = None,
    account: str = ACCOUNT,
) -> Iterator[EmbeddedPostgres]:
    """Start a throwaway PostgreSQL; stop it and delete its directory when the block ends.

    Raises EmbeddedUnavailable, saying what to install or set, when there are no
    binaries, or when we are root and there is no ``account`` to run them under.
    """
    user = choose_account(os.geteuid(), account)
    binaries = binaries or find_binaries()
    if user is not None and not _reachable(binaries.postgres, user):
        raise EmbeddedUnavailable(
            f"the {user.pw_name!r} account cannot reach PostgreSQL's binaries in "
            f"{binaries.bindir} (found via {binaries.source}); compat never changes the "
            f"permissions of directories it did not make: {_INSTALL_HINT}"
        )
    started = time.monotonic()
    directory = _make_directory(user)
    server = EmbeddedPostgres(directory, binaries, user.pw_name if user else _current_account())
    try:
        with _stopped_on_termination(server):
            try:
                who = f" as the {user.pw_name!r} account" if user is not None else ""
                progress(
                    f"starting a throwaway PostgreSQL{who} from {binaries.bindir} in {directory}"
                )
                _start(server, user)
                progress(
                    f"PostgreSQL {server.version} ready in {time.monotonic() - started:.1f} s "
                    f"(Unix socket only, fsync off)"
                )
                yield server
            finally:
                server.stop()
                progress(f"stopped the throwaway PostgreSQL and removed {directory}")
    finally:
        # Nothing left to do after the above, unless a signal came before it began or cut it short.
        server.stop()
