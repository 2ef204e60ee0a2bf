"""Test harness: the example application under a real gunicorn, and a small HTTP client for it.

The server listens on a socket the test binds to a free port of 127.0.0.1 and
hands over by file descriptor (gunicorn's ``fd://``), so no other process can
take the port in between. It runs in a process group of its own: gunicorn
forks its workers, and a failed test kills the whole group.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "maria_app" / "gunicorn.conf.py"
APP = "examples.maria_app:create_app()"
# Variables that would override the shared flag table the test flips.
_FLAG_OVERRIDES = ("COMPAT_FLAGS", "COMPAT_FLAGS_FILE", "COMPAT_KILL_SWITCH")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, decoded JSON body, and the headers the tests look at."""

    status: int
    body: Any
    location: str | None = None


def server_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a process of the layer: this database, no flag overrides."""
    env = {k: v for k, v in os.environ.items() if k not in _FLAG_OVERRIDES}
    env.update(DATABASE_URL=database_url, PYTHONUNBUFFERED="1", **extra)
    return env


class Gunicorn:
    """A running gunicorn master and its workers."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> Answer:
        """Send one request (JSON body, or ``raw`` bytes) and read the JSON answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {}
            payload = raw
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return Answer(
                status=response.status,
                body=json.loads(data) if data else None,
                location=response.getheader("Location"),
            )
        finally:
            connection.close()

    def wait_until_healthy(self, deadline_seconds: float = 30.0) -> None:
        """Poll /healthz until it answers 200; fail with the server's log if it never does."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"gunicorn exited with {self.process.returncode}:\n{self.output()}"
                )
            with contextlib.suppress(OSError):
                if self.request("GET", "/healthz").status == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"/healthz did not answer in {deadline_seconds} s:\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM to the master (a graceful shutdown); wait for it and return its exit status."""
        self.process.terminate()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL to the whole process group: master and every worker it forked."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_gunicorn(
    database_url: str,
    log: Path,
    *,
    workers: int,
    preload: bool = False,
    config: str = str(EXAMPLE_CONFIG),
    env: Mapping[str, str] | None = None,
) -> Iterator[Gunicorn]:
    """Start gunicorn on a free 127.0.0.1 port; kill its process group if the block fails."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    command: Sequence[str] = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        config,
        "--workers",
        str(workers),
        "--bind",
        f"fd://{listener.fileno()}",
        *(["--preload"] if preload else []),
        APP,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env or server_environment(database_url)),
            stdout=sink,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
            start_new_session=True,
        )
    listener.close()  # gunicorn holds its own copy
    server = Gunicorn(process, port, log)
    try:
        server.wait_until_healthy()
        yield server
    finally:
        if process.poll() is None:
            server.kill()
