"""layer_settings: every variable parsed once, with one policy for a bad value, and documented."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

import layer_settings
from layer_settings import VARIABLES, SettingsError, load

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def documented() -> dict[str, tuple[str, str]]:
    """docs/configuration.md's table: variable -> (default cell, bad-value cell)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (name := re.fullmatch(r"`([A-Z_]+)`", cells[0])):
            rows[name.group(1)] = (cells[1], cells[2])
    return rows


class TestTheConfigurationPage:
    def test_lists_every_variable_the_settings_module_reads_and_no_other(self) -> None:
        assert sorted(documented()) == sorted(v.name for v in VARIABLES)

    def test_gives_each_variable_its_default(self) -> None:
        table = documented()
        assert {v.name: table[v.name][0] for v in VARIABLES} == {
            v.name: v.documented_default for v in VARIABLES
        }

    def test_says_what_a_bad_value_of_each_variable_does(self) -> None:
        table = documented()
        wrong = [v.name for v in VARIABLES if not table[v.name][1].startswith(v.documented_effect)]
        assert wrong == []

    def test_defaults_are_what_an_empty_environment_gives(self) -> None:
        settings = load({})
        defaults = {v.name: v.default for v in VARIABLES}
        assert settings.flags_ttl_seconds == float(defaults["COMPAT_FLAGS_TTL"] or "")
        assert settings.candidate_timeout_ms == int(defaults["COMPAT_CANDIDATE_TIMEOUT_MS"] or "")
        assert settings.kill_switch is (defaults["COMPAT_KILL_SWITCH"] == "1")
        assert settings.redact is (defaults["COMPAT_REDACT"] == "1")
        assert settings.allow_data_loss is (defaults["COMPAT_ALLOW_DATA_LOSS"] == "1")
        assert settings.cache_backend == defaults["COMPAT_CACHE_BACKEND"]
        assert dict(settings.database.parameters) == {
            "host": defaults["POSTGRES_HOST"],
            "port": defaults["POSTGRES_PORT"],
            "dbname": defaults["POSTGRES_DB"],
            "user": defaults["POSTGRES_USER"],
        }
        assert settings.connect_timeout_s == int(defaults["PGCONNECT_TIMEOUT"] or "")
        assert settings.problems == ()


class TestTheConnectTimeout:
    """Both sides connect with a bound: libpq on its own waits for ever on a silent server."""

    def test_is_read_from_libpq_s_own_variable(self) -> None:
        assert load({"PGCONNECT_TIMEOUT": "7"}).connect_timeout_s == 7

    def test_a_bad_value_is_reported_and_the_default_used(self) -> None:
        settings = load({"PGCONNECT_TIMEOUT": "soon"})
        assert settings.connect_timeout_s == 5
        [problem] = settings.problems
        assert problem.startswith("PGCONNECT_TIMEOUT='soon' is not allowed (")


class TestADatabaseSetting:
    @pytest.mark.parametrize(
        ("environ", "message"),
        [
            ({"POSTGRES_PORT": "abc"}, "POSTGRES_PORT='abc' is not a port"),
            ({"POSTGRES_PORT": "70000"}, "POSTGRES_PORT='70000' is not a port"),
            ({"DATABASE_URL": "mysql://u:secret@h/db"}, "only postgresql:// (or"),
            ({"DATABASE_URL": "postgresql://u:secret@h:five/db"}, "DATABASE_URL cannot be parsed"),
            ({"DATABASE_URL": "postgresql://u:secret@h:0/db"}, "DATABASE_URL has the port 0"),
            ({"DATABASE_URL": "postgresql://u:secret%zz@h/db"}, "DATABASE_URL cannot be parsed"),
        ],
    )
    def test_that_is_bad_stops_with_one_line_naming_it_and_never_the_password(
        self, environ: dict[str, str], message: str
    ) -> None:
        settings = load(environ)
        with pytest.raises(SettingsError) as raised:
            settings.database  # noqa: B018  (the property raises)
        text = str(raised.value)
        assert message in text
        assert "\n" not in text
        assert "secret" not in text

    def test_is_shared_by_both_sides(self) -> None:
        settings = load({"DATABASE_URL": "postgresql+psycopg2://app:pw@db.internal:5433/maria"})
        assert settings.database.dsn() == "postgresql://app:pw@db.internal:5433/maria"
        assert dict(settings.database.parameters) == {
            "user": "app",
            "password": "pw",
            "host": "db.internal",
            "port": "5433",
            "dbname": "maria",
        }
        assert settings.database.display() == "postgresql://app@db.internal:5433/maria"

    def test_never_shows_the_password_in_a_repr(self) -> None:
        settings = load({"DATABASE_URL": "postgresql://app:secret@db/maria"})
        assert "secret" not in repr(settings)
        assert "secret" not in repr(settings.database)

    def test_a_bad_one_does_not_stop_the_knobs(self) -> None:
        settings = load({"POSTGRES_PORT": "abc", "COMPAT_FLAGS_TTL": "2"})
        assert settings.flags_ttl_seconds == 2.0


class TestAKnob:
    @pytest.mark.parametrize(
        ("name", "value", "attribute", "used"),
        [
            ("COMPAT_FLAGS_TTL", "soon", "flags_ttl_seconds", 5.0),
            ("COMPAT_CANDIDATE_TIMEOUT_MS", "-1", "candidate_timeout_ms", 2000),
            ("COMPAT_KILL_SWITCH", "maybe", "kill_switch", True),
            ("COMPAT_REDACT", "false", "redact", True),
            ("COMPAT_ALLOW_DATA_LOSS", "sure", "allow_data_loss", False),
        ],
    )
    def test_that_is_bad_is_reported_in_one_line_and_the_safe_value_used(
        self, name: str, value: str, attribute: str, used: object
    ) -> None:
        settings = load({name: value})
        assert getattr(settings, attribute) == used
        [problem] = settings.problems
        assert problem.startswith(f"{name}={value!r} is not allowed (")

    def test_a_bad_cache_backend_turns_the_cache_off_and_never_shows_its_value(self) -> None:
        """A Redis URL may carry a password: the message names the variable, not the value."""
        settings = load({"COMPAT_CACHE_BACKEND": "memcached://:secret@cache:11211"})
        assert settings.cache_backend == "off"
        [problem] = settings.problems
        assert problem.startswith("COMPAT_CACHE_BACKEND is not allowed (")
        assert "secret" not in problem

    @pytest.mark.parametrize(
        ("value", "used"),
        [
            ("", "memory"),
            ("OFF", "off"),
            ("redis://:pw@127.0.0.1:6379/0", "redis://:pw@127.0.0.1:6379/0"),
        ],
    )
    def test_a_cache_backend_is_memory_off_or_a_redis_url(self, value: str, used: str) -> None:
        settings = load({"COMPAT_CACHE_BACKEND": value})
        assert (settings.cache_backend, settings.problems) == (used, ())

    def test_that_is_bad_is_logged_once_however_often_the_settings_are_read(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setenv("COMPAT_FLAGS_TTL", "soon-ish")
        with caplog.at_level(logging.ERROR, logger="layer_settings"):
            for _ in range(5):
                layer_settings.current()
        assert [r.getMessage() for r in caplog.records].count(
            "configuration: COMPAT_FLAGS_TTL='soon-ish' is not allowed (seconds, a number from 0 "
            "up); using 5"
        ) == 1


class TestARuntimeBuiltForOtherSettings:
    def test_takes_its_flag_knobs_from_them_not_from_the_process_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from compat.flags.modes import Mode
        from compat.flags.store import FlagStore
        from compat.routing.declaration import REGISTRY

        monkeypatch.setenv("COMPAT_FLAGS", "user_sessions.get_session=shadow")
        mine = load({"COMPAT_FLAGS": "user_sessions.get_session=orm", "COMPAT_FLAGS_TTL": "9"})
        store = FlagStore(REGISTRY, settings=mine, read_table=dict)
        assert store.ttl_seconds == 9.0
        assert store.resolve("user_sessions.get_session").mode is Mode.ORM


class TestReadingTheSettingsReentrantly:
    def test_a_signal_handler_that_reads_them_while_they_are_read_does_not_deadlock(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """gunicorn's child_exit hook runs in its SIGCHLD handler, on the thread it interrupted."""
        import signal

        seen: list[layer_settings.Settings] = []
        raised: list[bool] = []
        real_load = layer_settings.load

        def load_interrupted(environ: Mapping[str, str] | None = None) -> layer_settings.Settings:
            if not raised:
                raised.append(True)
                signal.raise_signal(signal.SIGUSR1)  # arrives while current() holds its lock
            return real_load(environ)

        previous = signal.signal(signal.SIGUSR1, lambda *_: seen.append(layer_settings.current()))
        monkeypatch.setattr(layer_settings, "load", load_interrupted)
        monkeypatch.setenv("COMPAT_FLAGS_TTL", "7")  # a new environment: current() parses again
        try:
            settings = layer_settings.current()
        finally:
            signal.signal(signal.SIGUSR1, previous)
        assert settings.flags_ttl_seconds == 7.0
        assert [s.flags_ttl_seconds for s in seen] == [7.0]
