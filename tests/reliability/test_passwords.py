"""A password in DATABASE_URL never shows: not in what the layer raises, logs, or prints.

Each case names a database the layer cannot use (a refused port, a missing
database, a URL that does not parse, a port that is not a number) with a
password in the URL; trust authentication would ignore it anyway. The layer
fails, and every piece of text that failure produces is searched for the
password: the exception's message, repr and full traceback (causes, contexts
and notes included), every log record, stdout and stderr.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import compat
import legacy.user_sessions
from compat import user_sessions
from compat.cli import main
from compat.runtime import get_runtime, reset_runtime
from orm.database import dispose_engine
from tests.fixtures.postgres import PgServer

PASSWORD = "s3cr3t-pw"
COMPAT_VARIABLES = ("COMPAT_FLAGS", "COMPAT_FLAGS_FILE", "COMPAT_KILL_SWITCH", "COMPAT_FLAGS_TTL")

BrokenUrl = Callable[[PgServer], str]
BROKEN_URLS: dict[str, BrokenUrl] = {
    # Nothing listens on the discard port: the connection is refused at once.
    "a refused port": lambda server: f"postgresql://{server.user}:{PASSWORD}@127.0.0.1:9/app",
    "a missing database": lambda server: (
        f"postgresql://{server.user}:{PASSWORD}@{server.host}:{server.port}/"
        f"no_such_database_{uuid.uuid4().hex[:8]}"
    ),
    "a url that does not parse": lambda server: f"postgres ql://u:{PASSWORD}@127.0.0.1/app",
    "a port that is not a number": lambda server: (
        f"postgresql://{server.user}:{PASSWORD}@{server.host}:five/app"
    ),
}


def text_of(error: BaseException) -> str:
    """Everything an exception shows: message, repr, and the traceback with its whole chain."""
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


@pytest.fixture(params=sorted(BROKEN_URLS))
def broken_url(
    request: pytest.FixtureRequest,
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[str]:
    """DATABASE_URL, with a password, naming a database the layer cannot use; a fresh layer."""
    url = BROKEN_URLS[request.param](pg_server)
    monkeypatch.setenv("DATABASE_URL", url)
    for name in COMPAT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)
    previous = reset_runtime(None)
    dispose_engine()
    try:
        yield url
    finally:
        reset_runtime(previous)
        dispose_engine()


def fails_without_the_password(call: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as raised:  # noqa: PT011  (whatever it is, it must not tell)
        call()
    assert PASSWORD not in text_of(raised.value)
    return raised.value


def nothing_shown(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    captured = capsys.readouterr()
    logged = "\n".join(
        f"{record.getMessage()}\n{record.exc_text or ''}" for record in caplog.records
    )
    assert PASSWORD not in captured.out + captured.err + caplog.text + logged


class TestAPasswordInDatabaseUrl:
    def test_is_not_in_what_a_facade_call_raises_on_either_path(
        self,
        broken_url: str,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        session_uuid = str(uuid.uuid4())
        for mode in ("legacy", "shadow", "live", "orm"):
            monkeypatch.setenv("COMPAT_FLAGS", f"*={mode}")
            reset_runtime(None)
            fails_without_the_password(lambda: user_sessions.get_session(session_uuid))
            fails_without_the_password(
                lambda: user_sessions.insert_session(session_uuid, "Ada", None)
            )
        nothing_shown(caplog, capsys)

    def test_is_not_in_what_opening_a_unit_of_work_raises(
        self,
        broken_url: str,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        def open_a_unit() -> None:
            with compat.transaction():
                user_sessions.count_sessions()

        fails_without_the_password(open_a_unit)
        nothing_shown(caplog, capsys)

    def test_is_not_in_what_the_legacy_function_connecting_per_call_raises(
        self,
        broken_url: str,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        fails_without_the_password(legacy.user_sessions.count_sessions)
        nothing_shown(caplog, capsys)

    def test_is_not_in_the_one_warning_of_a_flag_store_that_cannot_read_its_table(
        self,
        broken_url: str,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        flags = get_runtime().flags
        for _ in range(5):
            flags.resolve("user_sessions.get_session")
            flags.refresh()
        warnings = [r for r in caplog.records if r.name == "compat.flags"]
        assert [r.levelno for r in warnings] == [logging.WARNING]
        assert "cannot read the compat_flags table" in warnings[0].getMessage()
        nothing_shown(caplog, capsys)

    @pytest.mark.parametrize(
        "argv",
        [("flags", "list"), ("verify", "--functions", "uploads.*")],
        ids=["flags list", "verify uploads"],
    )
    def test_is_not_in_what_the_command_line_prints(
        self,
        broken_url: str,
        argv: tuple[str, ...],
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        out = io.StringIO()
        # A URL the layer cannot parse is a configuration error (2); one it cannot reach, 1.
        unparseable = "://" in broken_url and not broken_url.startswith("postgresql://")
        unparseable = unparseable or ":five/" in broken_url
        assert main(list(argv), out=out) == (2 if unparseable else 1)
        assert PASSWORD not in out.getvalue()
        nothing_shown(caplog, capsys)


class TestTheInstalledCommand:
    @pytest.mark.parametrize("case", ["a refused port", "a missing database"])
    def test_prints_no_password_when_verify_cannot_reach_the_database(
        self, pg_server: PgServer, case: str
    ) -> None:
        script = Path(sys.executable).with_name("compat")
        environ = {k: v for k, v in os.environ.items() if k not in COMPAT_VARIABLES}
        done = subprocess.run(
            [str(script), "verify", "--functions", "uploads.*"],
            env={**environ, "DATABASE_URL": BROKEN_URLS[case](pg_server)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "compat: the database at postgresql+psycopg2://" in done.stderr
        assert ":***@" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr
