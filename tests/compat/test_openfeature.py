"""Flags from an OpenFeature provider: a source above the file and below the table, read entry
by entry, pushed when the provider says it changed, and loadable by name in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg2.extensions
import pytest
from openfeature import api
from openfeature.event import ProviderEventDetails
from openfeature.provider.in_memory_provider import InMemoryProvider

from compat.flags.modes import FlagState, Mode
from compat.flags.provider import DOMAIN, OpenFeatureSource
from compat.flags.store import FlagStore
from compat.routing.declaration import REGISTRY
from tests.compat.openfeature_flags import flag
from tests.compat.test_flags import by_key, flip
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"
OTHER = "uploads.get_upload"
THIRD = "user_sessions.list_sessions"


class ChangingProvider(InMemoryProvider):
    """The SDK's in-memory provider, whose flags a test changes as an operator would in its UI."""

    def change(self, flags: dict[str, str]) -> None:
        self._flags = {f"compat.{key}": flag(value) for key, value in flags.items()}
        self.emit_provider_configuration_changed(ProviderEventDetails())


@pytest.fixture
def provider() -> Iterator[ChangingProvider]:
    made = ChangingProvider({})
    api.set_provider(made, domain=DOMAIN)
    yield made
    api.clear_providers()


def store_on(environ: dict[str, str] | None = None) -> FlagStore:
    """A store reading the provider the ``provider`` fixture registered for the domain."""
    return FlagStore(
        REGISTRY, environ=environ or {}, sources=[OpenFeatureSource(api.get_client(DOMAIN))]
    )


class TestAnOpenFeatureSource:
    def test_gives_the_modes_ramps_and_rates_the_provider_holds(
        self, layer: Layer, provider: ChangingProvider
    ) -> None:
        provider.change({KEY: "live@10", OTHER: "shadow:0.25"})
        states = by_key(store_on().states())
        assert states[KEY] == FlagState(KEY, Mode.LIVE, 1.0, "openfeature", 10.0)
        assert states[OTHER] == FlagState(OTHER, Mode.SHADOW, 0.25, "openfeature")
        assert states[THIRD] == FlagState(THIRD, Mode.LEGACY, 1.0, "default")

    def test_a_bad_value_is_reported_and_the_entries_beside_it_still_apply(
        self, layer: Layer, provider: ChangingProvider
    ) -> None:
        provider.change({KEY: "sideways", OTHER: "live:2", THIRD: "shadow"})
        store = store_on()
        states = by_key(store.states())
        assert states[THIRD].mode is Mode.SHADOW
        assert states[KEY].mode is Mode.LEGACY
        assert states[OTHER].mode is Mode.LEGACY
        assert len(store.problems) == 2
        assert any(
            "compat.user_sessions.get_session" in p and "sideways" in p for p in store.problems
        )

    def test_the_table_overrides_it_so_the_guard_and_a_person_still_step_back(
        self,
        committed_layer: Layer,
        provider: ChangingProvider,
        observer: psycopg2.extensions.connection,
    ) -> None:
        provider.change({KEY: "orm", OTHER: "live"})
        flip(observer, KEY, "live")
        states = by_key(store_on().states())
        assert (states[KEY].mode, states[KEY].source) == (Mode.LIVE, "table")
        assert (states[OTHER].mode, states[OTHER].source) == (Mode.LIVE, "openfeature")

    def test_the_file_is_weaker_and_the_environment_stronger(
        self, layer: Layer, provider: ChangingProvider, tmp_path: os.PathLike[str]
    ) -> None:
        path = os.path.join(tmp_path, "flags.toml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f'[flags]\n"{KEY}" = "shadow"\n"{THIRD}" = "shadow"\n')
        provider.change({KEY: "live", OTHER: "live"})
        environ = {"COMPAT_FLAGS_FILE": path, "COMPAT_FLAGS": f"{OTHER}=legacy"}
        states = by_key(store_on(environ).states())
        assert (states[KEY].mode, states[KEY].source) == (Mode.LIVE, "openfeature")
        assert (states[THIRD].mode, states[THIRD].source) == (Mode.SHADOW, "file")
        assert (states[OTHER].mode, states[OTHER].source) == (Mode.LEGACY, "env")

    def test_a_change_in_the_provider_applies_at_once_without_waiting_for_the_poll(
        self, layer: Layer, provider: ChangingProvider
    ) -> None:
        provider.change({KEY: "shadow"})
        store = store_on()
        assert store.resolve(KEY).mode is Mode.SHADOW
        provider.change({KEY: "live"})  # its configuration-changed event
        assert store.resolve(KEY).mode is Mode.LIVE

    def test_a_provider_that_raises_is_a_problem_not_a_failed_call(
        self, layer: Layer, provider: ChangingProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*args: object, **kwargs: object) -> object:
            raise ConnectionError("flag service unreachable")

        monkeypatch.setattr(provider, "resolve_string_details", broken)
        store = store_on()
        assert store.resolve(KEY).mode is Mode.LEGACY
        assert store.problems
        assert all("flag service unreachable" in p for p in store.problems)


def compat(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compat", *args],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestAProviderNamedInTheEnvironment:
    def test_every_process_loads_it_the_cli_included(self, committed_layer: Layer) -> None:
        ran = compat(
            "flags",
            "list",
            DATABASE_URL=committed_layer.url,
            COMPAT_FLAGS_PROVIDER="tests.compat.openfeature_flags:provider",
        )
        assert ran.returncode == 0, ran.stderr
        rows = {line.split()[0]: line.split() for line in ran.stdout.splitlines()[2:] if line}
        assert rows[KEY][1:] == ["live", "openfeature", "1", "10%"]
        assert rows[OTHER][1:3] == ["legacy", "default"]
        assert "compat.uploads.get_upload" in ran.stdout  # its bad value, as a warning
        assert "sideways" in ran.stdout

    def test_a_name_that_cannot_be_loaded_is_one_line_and_serving_goes_on(
        self, committed_layer: Layer
    ) -> None:
        ran = compat(
            "flags",
            "list",
            DATABASE_URL=committed_layer.url,
            COMPAT_FLAGS_PROVIDER="no_such_module:provider",
        )
        assert ran.returncode == 0, ran.stderr
        assert "Traceback" not in ran.stderr
        warnings = [line for line in ran.stdout.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1
        assert "COMPAT_FLAGS_PROVIDER='no_such_module:provider' cannot be loaded" in warnings[0]

    def test_the_plan_says_when_a_provider_moved_a_function_without_the_evidence(
        self, committed_layer: Layer
    ) -> None:
        ran = compat(
            "flags",
            "plan",
            DATABASE_URL=committed_layer.url,
            COMPAT_FLAGS_PROVIDER="tests.compat.openfeature_flags:provider",
        )
        assert ran.returncode == 0, ran.stderr
        notes = [line for line in ran.stdout.splitlines() if line.startswith("note:")]
        assert notes == [
            f"note: {KEY} is live from openfeature without the evidence its gate asks for: "
            "0 of 1000 compared calls in shadow (last 1440 minutes), 0 mismatches, "
            "0 candidate errors; run longer or lower --min-calls"
        ]
