"""The layer's Prometheus metrics: every call counted, every observation counted, across workers."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

import layer_settings
from compat import metrics
from compat.flags.modes import Mode
from compat.routing.declaration import REGISTRY
from compat.runtime import get_runtime
from compat.shadow.metrics import REGISTRY as METRICS
from compat.shadow.metrics import MetricsPublisher
from compat.shadow.observation import Observation, Outcome, Side
from tests.compat.test_routing import facade_function
from tests.fixtures.layer import Layer

ROOT = Path(__file__).resolve().parents[2]
SHADOWED = "user_sessions.count_sessions"
ALONE = "user_sessions.check_uuid_exists"
REQUESTS = 40
APP = "tests.compat.metrics_app:app"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def local() -> Samples:
    """This process's metrics, as a scrape of the single-process registry shows them."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in METRICS.collect()
        for sample in family.samples
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text: str = response.read().decode()
        return text


@dataclasses.dataclass
class Gunicorn:
    base: str
    process: subprocess.Popen[bytes]

    def scrape(self) -> Samples:
        return parse(get(f"{self.base}/metrics"))


@pytest.fixture
def gunicorn(committed_layer: Layer, tmp_path: Path) -> Iterator[Gunicorn]:
    """gunicorn, 2 sync workers, in multiprocess mode, on a fresh migrated database."""
    binary = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert binary is not None, "gunicorn is a test dependency: pip install -e '.[test]'"
    directory = tmp_path / "prometheus"
    directory.mkdir()
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("from compat.metrics import child_exit  # noqa: F401\n", encoding="utf-8")
    port = free_port()
    # A file, not a pipe: a pipe nobody reads would block gunicorn once full.
    log = (tmp_path / "gunicorn.log").open("wb")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": committed_layer.url,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "COMPAT_FLAGS": f"{SHADOWED}=shadow",
    }
    process = subprocess.Popen(
        [binary, "-w", "2", "-b", f"127.0.0.1:{port}", "-c", str(config), APP],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    server = Gunicorn(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                server.scrape()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                time.sleep(0.05)  # polling for the server to listen, not fixing a race
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class TestUnderGunicorn:
    def test_a_scrape_of_any_worker_counts_every_call_of_every_worker(
        self, gunicorn: Gunicorn
    ) -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            pids = set(pool.map(lambda _: get(f"{gunicorn.base}/call"), range(REQUESTS)))
        assert pids, "no request was served"
        deadline = time.monotonic() + 30
        while True:
            samples = gunicorn.scrape()
            # Observations are counted off the callers' threads: wait for the last.
            compared = value(samples, "compat_comparisons_total", key=SHADOWED, mode="shadow")
            if compared >= REQUESTS or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        calls = "compat_calls_total"
        assert value(samples, calls, key=SHADOWED, mode="shadow", side="legacy") == REQUESTS
        assert value(samples, calls, key=ALONE, mode="legacy", side="legacy") == REQUESTS
        assert compared == REQUESTS
        assert value(samples, "compat_mismatches_total", key=SHADOWED, mode="shadow") == 0
        assert value(samples, "compat_candidate_errors_total", key=SHADOWED, mode="shadow") == 0
        seconds = "compat_call_seconds_count"
        assert value(samples, seconds, key=SHADOWED, side="legacy", role="serving") == REQUESTS
        assert value(samples, seconds, key=SHADOWED, side="orm", role="candidate") == REQUESTS
        assert value(samples, seconds, key=ALONE, side="legacy", role="serving") == REQUESTS
        assert (
            value(samples, "compat_call_errors_total", key=ALONE, mode="legacy", side="legacy") == 0
        )
        assert value(samples, "compat_mode", key=SHADOWED, mode="shadow") == 1
        assert value(samples, "compat_mode", key=SHADOWED, mode="legacy") == 0
        assert value(samples, "compat_mode", key=ALONE, mode="legacy") == 1
        print(f"served by {len(pids)} worker(s): {sorted(pids)}")


class TestTheMultiprocessDirectory:
    def test_that_is_not_a_directory_is_logged_and_nothing_is_added_up(
        self, tmp_path: Path
    ) -> None:
        settings = layer_settings.load({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})
        assert settings.metrics_dir is None
        [problem] = settings.problems
        assert problem.startswith(f"PROMETHEUS_MULTIPROC_DIR='{tmp_path / 'missing'}' is not")
        assert metrics.registry(settings) is METRICS

    def test_that_exists_is_where_a_scrape_reads_every_process(self, tmp_path: Path) -> None:
        settings = layer_settings.load({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
        assert settings.metrics_dir == str(tmp_path)
        assert metrics.registry(settings) is not METRICS


class TestInOneProcess:
    def test_an_uncompared_call_is_counted_and_timed_on_its_serving_side(
        self, layer: Layer
    ) -> None:
        before = local()
        layer.set_flags({ALONE: "orm"})
        facade_function(ALONE)("00000000-0000-4000-8000-000000000001")
        after = local()
        labels = {"key": ALONE, "mode": "orm", "side": "orm"}
        assert (
            value(after, "compat_calls_total", **labels)
            - value(before, "compat_calls_total", **labels)
            == 1
        )
        timed = {"key": ALONE, "side": "orm", "role": "serving"}
        assert (
            value(after, "compat_call_seconds_count", **timed)
            - value(before, "compat_call_seconds_count", **timed)
            == 1
        )

    def test_an_error_the_caller_sees_is_counted_as_an_error_of_the_serving_side(
        self, layer: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = REGISTRY[SHADOWED]

        def fails(db: Session) -> int:
            db.execute(sa.text("SELECT 1/0"))
            return 0

        monkeypatch.setitem(REGISTRY, SHADOWED, dataclasses.replace(spec, orm=fails))
        layer.set_flags({SHADOWED: "orm"})
        labels = {"key": SHADOWED, "mode": "orm", "side": "orm"}
        before = value(local(), "compat_call_errors_total", **labels)
        with pytest.raises(Exception, match="division by zero"):
            facade_function(SHADOWED)()
        assert value(local(), "compat_call_errors_total", **labels) == before + 1

    def test_a_candidate_cut_off_by_its_budget_counts_as_a_timeout_and_an_error(
        self, layer: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = REGISTRY[SHADOWED]

        def hangs(db: Session) -> int:
            db.execute(sa.text("SELECT pg_sleep(30)"))
            return 0

        monkeypatch.setitem(REGISTRY, SHADOWED, dataclasses.replace(spec, orm=hangs))
        monkeypatch.setattr(get_runtime(), "candidate_timeout_ms", 100)
        layer.set_flags({SHADOWED: "shadow"})
        labels = {"key": SHADOWED, "mode": "shadow"}
        before = local()
        facade_function(SHADOWED)()
        layer.observations()  # waits until the publishers (the metrics one too) had it
        after = local()
        for name in (
            "compat_comparisons_total",
            "compat_mismatches_total",
            "compat_candidate_errors_total",
            "compat_candidate_timeouts_total",
        ):
            assert value(after, name, **labels) - value(before, name, **labels) == 1, name

    def test_the_metrics_app_shows_the_mode_of_every_key(self, layer: Layer) -> None:
        layer.set_flags({SHADOWED: "live"})
        body = io.BytesIO()
        started: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            started.append(status)

        for chunk in metrics.wsgi_app()(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}, start_response
        ):
            body.write(chunk)
        samples = parse(body.getvalue().decode())
        assert started == ["200 OK"]
        assert {
            key
            for (name, labels) in samples
            if name == "compat_mode"
            for k, key in labels
            if k == "key"
        } >= set(REGISTRY)
        assert value(samples, "compat_mode", key=SHADOWED, mode="live") == 1
        assert value(samples, "compat_mode", key=SHADOWED, mode="shadow") == 0


class TestAFault:
    def test_is_counted_as_a_fault_of_its_side_never_a_mismatch_or_candidate_error(self) -> None:
        lost = psycopg2.OperationalError("server closed the connection unexpectedly")
        observation = Observation.of(
            SHADOWED,
            Mode.SHADOW,
            Outcome(Side.LEGACY, value=[1]),
            Outcome(Side.ORM, error=lost),
        )
        labels = {"key": SHADOWED, "mode": "shadow"}
        before = local()
        MetricsPublisher().publish([observation])
        after = local()

        def moved(name: str, **extra: str) -> float:
            return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

        assert moved("compat_faults_total", side="orm") == 1
        assert moved("compat_mismatches_total") == 0
        assert moved("compat_candidate_errors_total") == 0
        assert moved("compat_comparisons_total") == 1
