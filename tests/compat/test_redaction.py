"""Personal data (names, emails, IP addresses, codes) never reaches logs or mismatch reports."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
import pytest
from sqlalchemy.orm import Session

import compat
from compat import user_sessions
from compat.flags.store import Mode
from compat.routing.declaration import REGISTRY
from compat.shadow.compare import compare
from compat.shadow.observation import Observation, Outcome, Side
from compat.shadow.publishers import LogPublisher, TablePublisher
from compat.shadow.redact import PERSONAL_FIELDS, redact, redact_text, show
from tests.compat.calls import CALLS, Call
from tests.compat.test_routing import facade_function, tampered
from tests.fixtures.layer import Layer

# Letters that are not hex digits: a code made of them cannot turn up by chance
# inside a digest or a duration.
_CODE_LETTERS = "GHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class Person:
    """Distinctive personal data, new for every test."""

    name: str
    email: str
    ip_address: str
    code: str

    @classmethod
    def new(cls) -> Person:
        tag = secrets.token_hex(4)
        return cls(
            name=f"Wilhelmina Quackenbush-{tag}",
            email=f"w.quackenbush.{tag}@example.org",
            ip_address=f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}",
            code="".join(secrets.choice(_CODE_LETTERS) for _ in range(6)),
        )

    def values(self) -> tuple[str, ...]:
        return (self.name, self.email, self.ip_address, self.code)


def assert_none_of(values: Iterable[str], text: str) -> None:
    leaked = [value for value in values if value in text]
    assert not leaked, f"personal data leaked: {leaked!r} in:\n{text}"


def seed(conn: psycopg2.extensions.connection, person: Person) -> str:
    """Insert a session carrying ``person``'s data with plain SQL; return its uuid."""
    session_uuid = str(uuid.uuid4())
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO user_sessions (uuid, name, email, ip_address, verification_code) "
            "VALUES (%s, %s, %s, %s, %s)",
            (session_uuid, person.name, person.email, person.ip_address, person.code),
        )
    return session_uuid


def impersonated(row: Mapping[str, Any] | None, impostor: Person) -> dict[str, Any] | None:
    """The row with every personal value swapped for the impostor's: a wrong ORM's answer."""
    if row is None:
        return None
    return {
        **row,
        "name": impostor.name,
        "email": impostor.email,
        "ip_address": impostor.ip_address,
        "verification_code": impostor.code,
    }


@pytest.fixture
def swap_orm(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable[..., Any]], None]:
    """Replace a facade function's ORM adapter for this test."""

    def swap(key: str, adapter: Callable[..., Any]) -> None:
        monkeypatch.setitem(REGISTRY, key, dataclasses.replace(REGISTRY[key], orm=adapter))

    return swap


def mismatch_on_get_session(
    layer: Layer,
    swap_orm: Callable[[str, Callable[..., Any]], None],
    conn: psycopg2.extensions.connection,
    person: Person,
    impostor: Person,
) -> Observation:
    """Serve get_session in shadow mode against an ORM that returns the impostor's data."""
    key = "user_sessions.get_session"
    right = REGISTRY[key].orm
    swap_orm(key, lambda db, session_uuid: impersonated(right(db, session_uuid), impostor))
    layer.set_flags({key: "shadow"})
    row = user_sessions.get_session(seed(conn, person))
    assert row is not None
    assert row["email"] == person.email
    [observation] = layer.observations()
    assert not observation.matched
    return observation


# -- compat.shadow.redact -------------------------------------------------------------


class TestRedact:
    @pytest.mark.parametrize("field", sorted(PERSONAL_FIELDS))
    def test_replaces_the_value_of_every_personal_field(self, field: str) -> None:
        secret = f"value-of-{field}-{secrets.token_hex(3)}"
        redacted = redact({field: secret, "other": "kept"})
        assert redacted["other"] == "kept"
        assert redacted[field].startswith("<redacted str #")
        assert secret not in show({field: secret})

    def test_the_same_value_gets_the_same_token_so_a_reader_can_tell_equal_from_unequal(
        self,
    ) -> None:
        tokens = redact([{"email": "fay@example.com"}, {"email": "fay@example.com"}])
        other = redact({"email": "FAY@example.com"})
        assert tokens[0]["email"] == tokens[1]["email"]
        assert other["email"] != tokens[0]["email"]

    def test_keeps_none_so_that_null_against_a_value_stays_visible(self) -> None:
        assert redact({"email": None, "name": "Gus"})["email"] is None

    def test_a_token_names_the_type_so_a_type_mismatch_stays_visible(self) -> None:
        assert redact(123456, "code").startswith("<redacted int #")
        assert redact("123456", "code").startswith("<redacted str #")

    def test_recurses_into_lists_tuples_and_nested_mappings(self) -> None:
        value = {"result": [{"name": "Hal"}], "pair": ({"email": "hal@example.com"}, 1)}
        redacted = redact(value)
        assert "Hal" not in repr(redacted)
        assert "hal@example.com" not in repr(redacted)
        assert type(redacted["pair"]) is tuple

    def test_a_collection_under_a_personal_key_is_redacted_whole(self) -> None:
        assert "ivy@example.com" not in show({"email": ["ivy@example.com", "x"]})

    def test_finds_emails_and_ip_addresses_in_values_of_other_fields(self) -> None:
        redacted = redact({"note": "mail lee@example.com from 192.0.2.10", "n": 3})
        assert redacted == {"note": "mail <redacted email> from <redacted ip>", "n": 3}

    def test_a_token_cannot_be_reversed_by_hashing_candidate_values(self) -> None:
        # A six-digit code has a million candidates: a plain hash of each finds it.
        code = f"{secrets.randbelow(10**6):06d}"
        digest = re.fullmatch(r"<redacted str #([0-9a-f]{8})>", redact(code, "code"))
        assert digest is not None
        plain = {
            hashlib.new(algorithm, text.encode()).hexdigest()[:8]
            for algorithm in ("sha256", "sha1", "md5", "blake2b")
            for text in (code, repr(code))
        }
        assert digest.group(1) not in plain


class TestRedactText:
    @pytest.mark.parametrize(
        "address",
        [
            "mo@example.com",
            "first.last+tag@sub.example.co.uk",
            "203.0.113.9",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "2001:db8::8a2e:370:7334",
            "::1",
            "fe80::1%eth0",
        ],
    )
    def test_replaces_an_address_inside_free_text(self, address: str) -> None:
        redacted = redact_text(f"failed for ({address}); retry")
        assert address not in redacted
        assert redacted.startswith("failed for (<redacted ")
        assert redacted.endswith("); retry")

    def test_leaves_a_clock_time_alone(self) -> None:
        assert redact_text("timed out at 12:30:45") == "timed out at 12:30:45"

    def test_leaves_text_without_addresses_unchanged(self) -> None:
        text = 'duplicate key value violates unique constraint "user_sessions_pkey"'
        assert redact_text(text) == text


class TestTurningRedactionOff:
    def test_compat_redact_0_shows_values_for_local_debugging(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("COMPAT_REDACT", "0")
        value = {"email": "nia@example.com", "note": "from 192.0.2.44"}
        assert redact(value) == value
        assert redact_text("nia@example.com") == "nia@example.com"

    @pytest.mark.parametrize("setting", ["1", "", "false", "off"])
    def test_any_other_setting_keeps_it_on(
        self, monkeypatch: pytest.MonkeyPatch, setting: str
    ) -> None:
        monkeypatch.setenv("COMPAT_REDACT", setting)
        assert "oz@example.com" not in show({"email": "oz@example.com"})


# -- Observations ----------------------------------------------------------------


def an_observation(legacy: Any, orm: Any, error: BaseException | None = None) -> Observation:
    return Observation(
        key="user_sessions.get_session",
        mode=Mode.SHADOW,
        serving=Outcome(Side.LEGACY, value=legacy),
        candidate=Outcome(Side.ORM, value=orm, error=error),
        differences=compare({"result": legacy}, {"result": orm}),
    )


class TestObservationText:
    def test_the_diff_locates_a_difference_without_showing_either_value(self) -> None:
        person, impostor = Person.new(), Person.new()
        row = {"uuid": str(uuid.uuid4()), "name": person.name, "email": person.email}
        observation = an_observation(row, impersonated(row, impostor))
        text = observation.diff_text()
        assert "['result']['name']: legacy='<redacted str #" in text
        assert_none_of([*person.values(), *impostor.values()], text)

    def test_an_email_and_an_ip_address_in_a_candidate_error_are_redacted(self) -> None:
        person = Person.new()
        error = RuntimeError(f"cannot load {person.email} seen at {person.ip_address}")
        observation = an_observation({"email": person.email}, None, error)
        assert observation.candidate.error_text == (
            "RuntimeError: cannot load <redacted email> seen at <redacted ip>"
        )
        assert_none_of(person.values(), observation.summary())


# -- End to end: a shadow-mode mismatch ------------------------------------------


class TestShadowMismatchOnASession:
    def test_the_summary_and_the_diff_contain_no_personal_data(
        self, layer: Layer, swap_orm: Callable[[str, Callable[..., Any]], None]
    ) -> None:
        assert layer.unit is not None
        person, impostor = Person.new(), Person.new()
        observation = mismatch_on_get_session(
            layer, swap_orm, layer.unit.dbapi_connection, person, impostor
        )
        text = f"{observation.summary()}\n{observation.diff_text()}"
        for field in ("name", "email", "ip_address", "verification_code"):
            assert f"['result'][{field!r}]: legacy='<redacted str #" in text
        assert_none_of([*person.values(), *impostor.values()], text)

    def test_the_log_publisher_writes_no_personal_data(
        self,
        layer: Layer,
        swap_orm: Callable[[str, Callable[..., Any]], None],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        assert layer.unit is not None
        person, impostor = Person.new(), Person.new()
        layer.runtime.dispatcher.publishers.append(LogPublisher())
        with caplog.at_level(logging.DEBUG, logger="compat.observations"):
            mismatch_on_get_session(layer, swap_orm, layer.unit.dbapi_connection, person, impostor)
        [record] = [r for r in caplog.records if r.name == "compat.observations"]
        assert record.levelno == logging.WARNING
        assert "MISMATCH" in record.getMessage()
        assert_none_of([*person.values(), *impostor.values()], caplog.text)

    def test_a_mismatch_error_raised_in_tests_carries_no_personal_data(
        self,
        layer: Layer,
        swap_orm: Callable[[str, Callable[..., Any]], None],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        assert layer.unit is not None
        person, impostor = Person.new(), Person.new()
        monkeypatch.setattr(layer.runtime, "raise_on_mismatch", True)
        with pytest.raises(compat.MismatchError) as raised:
            mismatch_on_get_session(layer, swap_orm, layer.unit.dbapi_connection, person, impostor)
        assert_none_of([*person.values(), *impostor.values()], str(raised.value))

    def test_a_write_whose_rows_differ_reports_them_redacted(
        self, layer: Layer, swap_orm: Callable[[str, Callable[..., Any]], None]
    ) -> None:
        assert layer.unit is not None
        key = "user_sessions.update_session"
        person, impostor, update = Person.new(), Person.new(), Person.new()
        right = REGISTRY[key].orm

        def writes_the_impostor(db: Session, session_uuid: str, data: Any) -> Any:
            return right(db, session_uuid, {**data, "name": impostor.name})

        swap_orm(key, writes_the_impostor)
        layer.set_flags({key: "shadow"})
        session_uuid = seed(layer.unit.dbapi_connection, person)
        user_sessions.update_session(session_uuid, {"name": update.name, "email": update.email})
        [observation] = layer.observations()
        text = observation.summary()
        assert "['rows'][0][0]['name']" in text
        assert_none_of([*person.values(), *impostor.values(), *update.values()], text)

    def test_with_compat_redact_0_the_report_shows_the_values(
        self,
        layer: Layer,
        swap_orm: Callable[[str, Callable[..., Any]], None],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        assert layer.unit is not None
        monkeypatch.setenv("COMPAT_REDACT", "0")
        person, impostor = Person.new(), Person.new()
        observation = mismatch_on_get_session(
            layer, swap_orm, layer.unit.dbapi_connection, person, impostor
        )
        text = observation.summary()
        for value in (*person.values(), *impostor.values()):
            assert value in text


def test_the_observations_table_holds_no_personal_data(
    committed_layer: Layer,
    observer: psycopg2.extensions.connection,
    swap_orm: Callable[[str, Callable[..., Any]], None],
) -> None:
    person, impostor = Person.new(), Person.new()
    committed_layer.runtime.dispatcher.publishers.append(TablePublisher())
    mismatch_on_get_session(committed_layer, swap_orm, observer, person, impostor)
    with observer.cursor() as cur:
        cur.execute(
            "SELECT key, mode, serving, matched, candidate_error, diff FROM compat_observations"
        )
        [(key, mode, serving, matched, candidate_error, diff)] = cur.fetchall()
    assert (key, mode, serving, matched) == ("user_sessions.get_session", "shadow", "legacy", False)
    assert diff is not None
    assert "['result']['email']" in diff
    assert_none_of([*person.values(), *impostor.values()], f"{candidate_error}\n{diff}")


# -- Every facade function ---------------------------------------------------------


def scrambled(value: Any) -> Any:
    """Every personal string in ``value`` reversed: a wrong answer that shows personal data."""
    if isinstance(value, dict):
        return {
            key: f"{item[::-1]}~"
            if key in PERSONAL_FIELDS and isinstance(item, str)
            else scrambled(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scrambled(item) for item in value]
    return value


def personal_values_in_database(conn: psycopg2.extensions.connection) -> set[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name, email, ip_address, verification_code FROM user_sessions "
            "UNION ALL SELECT filename, storage_key, NULL, NULL FROM uploaded_files"
        )
        return {value for row in cur.fetchall() for value in row if value is not None}


def personal_arguments(key: str, call: Call) -> set[str]:
    named = REGISTRY[key].arguments(call.args, call.kwargs)
    data = named.get("data") or {}
    return {
        value
        for name, value in [*named.items(), *data.items()]
        if name in PERSONAL_FIELDS and isinstance(value, str)
    }


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_no_function_reports_personal_data_in_a_mismatch(
    layer: Layer,
    key: str,
    swap_orm: Callable[[str, Callable[..., Any]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert layer.unit is not None
    conn = layer.unit.dbapi_connection
    right = REGISTRY[key].orm
    swap_orm(key, lambda db, *args, **kwargs: tampered(scrambled(right(db, *args, **kwargs))))
    call = CALLS[key](conn)
    personal = personal_values_in_database(conn) | personal_arguments(key, call)
    layer.set_flags({key: "shadow"})
    facade_function(key)(*call.args, **call.kwargs)
    personal |= personal_values_in_database(conn)
    [observation] = layer.observations()
    assert not observation.matched
    with caplog.at_level(logging.DEBUG, logger="compat.observations"):
        LogPublisher().publish([observation])
    forbidden = personal | {f"{value[::-1]}~" for value in personal}
    assert_none_of(forbidden, f"{observation.summary()}\n{caplog.text}")
