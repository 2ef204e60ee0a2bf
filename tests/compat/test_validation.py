"""Facade arguments are refused before any SQL, alike on every path; constraint errors match too."""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compat
from compat import InvalidArgument
from compat.routing.arguments import BIGINT_MAX, MAX_HOURS
from compat.routing.declaration import REGISTRY
from compat.shadow.compare import compare
from compat.shadow.observation import Side
from tests.compat.calls import CALLS, Call, new_session, new_upload
from tests.compat.test_routing import facade_function
from tests.fixtures.layer import LOG, Layer

MODES = ("legacy", "shadow", "live", "orm")

EVERY_ARGUMENT = [
    pytest.param(key, name, id=f"{key}:{name}")
    for key in sorted(REGISTRY)
    for name in REGISTRY[key].validators
]

# What no facade argument takes: bytes, arbitrary objects, lists, Decimals,
# uuid.UUID (legacy code passes uuids as str), complex numbers.
WRONG_TYPES: tuple[object, ...] = (
    b"bytes",
    object(),
    [],
    Decimal("1"),
    uuid.UUID("00000000-0000-4000-8000-000000000001"),
    1j,
)


def accepts(key: str, name: str, value: object) -> bool:
    try:
        REGISTRY[key].validators[name](key, name, value)
    except InvalidArgument:
        return False
    return True


UUID_FUNCTIONS = sorted(key for key, spec in REGISTRY.items() if "session_uuid" in spec.validators)
TEXT_ARGUMENTS = [
    pytest.param(key, name, id=f"{key}:{name}")
    for key in sorted(REGISTRY)
    for name in REGISTRY[key].validators
    if accepts(key, name, "abc")
]


def with_argument(key: str, call: Call, name: str, value: object) -> Call:
    """``call`` with argument ``name`` replaced by (or given as) ``value``, where it was."""
    positional = REGISTRY[key].positional
    if name in positional and positional.index(name) < len(call.args):
        args = list(call.args)
        args[positional.index(name)] = value
        return Call(tuple(args), dict(call.kwargs))
    return Call(call.args, {**call.kwargs, name: value})


def by_keyword(key: str, call: Call) -> Call:
    return Call((), REGISTRY[key].arguments(call.args, call.kwargs))


def invoke(key: str, call: Call) -> Any:
    return facade_function(key)(*call.args, **call.kwargs)


def refused(layer: Layer, key: str, call: Call) -> InvalidArgument:
    """The InvalidArgument the call raises; the call must not have sent any SQL."""
    layer.forget_statements()
    with pytest.raises(InvalidArgument) as raised:
        invoke(key, call)
    assert LOG.statements == [], "a refused call sent SQL"
    return raised.value


def refusals_in_every_mode(layer: Layer, key: str, calls: list[Call]) -> list[InvalidArgument]:
    """Refuse each call in each mode, with the same message in every mode; no observation."""
    messages: dict[str, list[str]] = {}
    for mode in MODES:
        layer.set_flags({key: mode})
        errors = [refused(layer, key, call) for call in calls]
        messages[mode] = [str(error) for error in errors]
    assert messages["shadow"] == messages["live"] == messages["orm"] == messages["legacy"]
    assert layer.observations() == []
    return errors


def refused_in_every_mode(layer: Layer, key: str, call: Call) -> InvalidArgument:
    [error] = refusals_in_every_mode(layer, key, [call])
    return error


def conn_of(layer: Layer) -> psycopg2.extensions.connection:
    assert layer.unit is not None
    return layer.unit.dbapi_connection


def on_each_path(layer: Layer, key: str, run: Callable[[], Any]) -> dict[str, Any]:
    """``run()`` in legacy mode and in ORM mode, each in a savepoint rolled back afterwards."""
    assert layer.unit is not None
    results = {}
    for mode in ("legacy", "orm"):
        with layer.unit.rolled_back_savepoint():
            layer.set_flags({key: mode})
            results[mode] = run()
    return results


def assert_alike(results: dict[str, Any], ignore: frozenset[str] = frozenset()) -> None:
    differences = compare(results["legacy"], results["orm"], ignore=ignore)
    assert differences == (), differences


# -- Every argument of every facade function ---------------------------------------


@pytest.mark.parametrize(("key", "argument"), EVERY_ARGUMENT)
def test_a_wrong_type_is_refused_in_every_mode_before_any_sql_and_the_unit_goes_on(
    layer: Layer, key: str, argument: str
) -> None:
    call = CALLS[key](conn_of(layer))
    bad_calls = [
        bad_call
        for wrong in WRONG_TYPES
        for bad in [with_argument(key, call, argument, wrong)]
        for bad_call in (bad, by_keyword(key, bad))
    ]
    for error in refusals_in_every_mode(layer, key, bad_calls):
        assert isinstance(error, ValueError)
        assert (error.function, error.argument) == (key, argument)
        assert str(error).startswith(f"{key}: argument {argument!r} must be ")
    invoke(key, call)  # the unit of work is as usable as before


# -- uuids -------------------------------------------------------------------------

A_UUID = "0b6b5d1e-37c2-4e0f-9a6d-2f8c1e7b4a90"
MALFORMED_UUIDS = {
    "empty": "",
    "words": "not-a-uuid",
    "31 digits": A_UUID[:-1],
    "33 digits": A_UUID + "0",
    "a non-hex digit": A_UUID.replace("b", "g", 1),
    "urn prefix (Python accepts it)": f"urn:uuid:{A_UUID}",
    "hyphen inside a group of four": "0-b6b5d1e37c24e0f9a6d2f8c1e7b4a90",
    "two hyphens in a row": A_UUID.replace("-", "--", 1),
    "leading hyphen": f"-{A_UUID}",
    "trailing hyphen": f"{A_UUID}-",
    "opening brace only": f"{{{A_UUID}",
    "closing brace only": f"{A_UUID}}}",
    "double braces": f"{{{{{A_UUID}}}}}",
    "leading space": f" {A_UUID}",
    "trailing newline": f"{A_UUID}\n",
    "NUL byte": f"{A_UUID}\x00",
    "non-ASCII digits": A_UUID.replace("0", "\u0660"),
    "lone surrogate": f"{A_UUID[:-1]}\ud800",
}


class TestMalformedUuids:
    @pytest.mark.parametrize("key", UUID_FUNCTIONS)
    def test_are_refused_in_every_mode_before_any_sql(self, layer: Layer, key: str) -> None:
        call = CALLS[key](conn_of(layer))
        calls = [with_argument(key, call, "session_uuid", v) for v in MALFORMED_UUIDS.values()]
        errors = refusals_in_every_mode(layer, key, calls)
        for form, error in zip(MALFORMED_UUIDS, errors, strict=True):
            assert error.argument == "session_uuid", form
            assert error.problem.startswith("is not a valid uuid ("), form

    def test_the_message_does_not_echo_the_value_which_may_be_personal_data(
        self, layer: Layer
    ) -> None:
        error = refused_in_every_mode(
            layer, "user_sessions.get_session", Call(("ada@example.com",))
        )
        assert "ada@example.com" not in str(error)
        assert str(error).startswith(
            "user_sessions.get_session: argument 'session_uuid' is not a valid uuid "
            "(a 15-character str;"
        )


def hyphen_after_every_four(text: str) -> str:
    digits = text.replace("-", "")
    return "-".join(digits[i : i + 4] for i in range(0, 32, 4))


ACCEPTED_FORMS: dict[str, Callable[[str], str]] = {
    "upper-case": str.upper,
    "brace-wrapped": lambda text: f"{{{text}}}",
    "no hyphens": lambda text: text.replace("-", ""),
    "a hyphen after every four digits": hyphen_after_every_four,
    "braces, upper-case, no hyphens": lambda text: f"{{{text.replace('-', '').upper()}}}",
}


class TestUuidFormsPostgresqlAccepts:
    @pytest.mark.parametrize("key", UUID_FUNCTIONS)
    def test_give_the_same_result_on_both_paths_as_the_canonical_form(
        self, layer: Layer, key: str
    ) -> None:
        call = CALLS[key](conn_of(layer))
        canonical = REGISTRY[key].arguments(call.args, call.kwargs)["session_uuid"]
        volatile = REGISTRY[key].volatile
        expected = on_each_path(layer, key, lambda: invoke(key, call))["legacy"]
        for form, rewrite in ACCEPTED_FORMS.items():
            odd = with_argument(key, call, "session_uuid", rewrite(canonical))
            results = on_each_path(layer, key, functools.partial(invoke, key, odd))
            for mode, result in results.items():
                differences = compare(expected, result, ignore=volatile)
                assert differences == (), f"{form} in {mode} mode: {differences}"

    @pytest.mark.parametrize("form", ACCEPTED_FORMS.values(), ids=ACCEPTED_FORMS.keys())
    def test_a_session_inserted_under_any_form_gets_the_canonical_uuid(
        self, layer: Layer, form: Callable[[str], str]
    ) -> None:
        key = "user_sessions.insert_session"
        session_uuid = str(uuid.uuid4())
        results = on_each_path(
            layer,
            key,
            lambda: facade_function(key)(form(session_uuid), "Odd Form", None),
        )
        assert_alike(results)
        assert results["legacy"]["uuid"] == session_uuid


hex_digit = st.sampled_from("0123456789abcdefABCDEF")


@st.composite
def near_uuids(draw: st.DrawFn) -> str:
    """Strings that look like uuids: hex digits, hyphens and braces, often slightly off."""
    digits = list(draw(st.uuids()).hex)
    digits = [c.upper() if draw(st.booleans()) else c for c in digits]
    length = draw(st.sampled_from([32, 32, 32, 31, 33]))
    digits = [*digits, draw(hex_digit)][:length]
    where = st.one_of(st.sampled_from(range(4, 32, 4)), st.integers(0, length))
    hyphens = draw(st.sets(where, max_size=8))
    text = "".join(f"-{c}" if i in hyphens else c for i, c in enumerate(digits))
    if length in hyphens and draw(st.booleans()):
        text += "-"
    opening, closing = draw(st.sampled_from([("", ""), ("{", "}"), ("{", ""), ("", "}")]))
    return f"{opening}{text}{closing}"


def postgresql_reads(layer: Layer, text: str) -> uuid.UUID | None:
    """The uuid PostgreSQL's own input function makes of ``text``, or None when it refuses."""
    assert layer.unit is not None
    try:
        with layer.unit.rolled_back_savepoint():
            value = layer.unit.connection.exec_driver_sql(
                "SELECT %(text)s::uuid::text", {"text": text}
            ).scalar()
    except sa.exc.DataError:
        return None
    return uuid.UUID(value)


class TestUuidCheckMatchesPostgresql:
    @settings(
        max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(text=near_uuids())
    def test_a_uuid_is_accepted_exactly_when_postgresql_accepts_it_and_means_the_same(
        self, layer: Layer, text: str
    ) -> None:
        server = postgresql_reads(layer, text)
        accepted = accepts("user_sessions.get_session", "session_uuid", text)
        assert accepted == (server is not None), f"check {accepted}, PostgreSQL {server}"
        if accepted:
            assert uuid.UUID(text) == server


# -- Text ----------------------------------------------------------------------------


class TestTextArguments:
    @pytest.mark.parametrize(("key", "argument"), TEXT_ARGUMENTS)
    def test_a_nul_character_is_refused_before_any_sql(
        self, layer: Layer, key: str, argument: str
    ) -> None:
        call = with_argument(key, CALLS[key](conn_of(layer)), argument, "ab\x00c")
        error = refused_in_every_mode(layer, key, call)
        assert (error.argument, error.problem) == (
            argument,
            "contains a NUL character (PostgreSQL text cannot)",
        )

    @pytest.mark.parametrize(("key", "argument"), TEXT_ARGUMENTS)
    def test_a_lone_surrogate_is_refused_before_any_sql(
        self, layer: Layer, key: str, argument: str
    ) -> None:
        call = with_argument(key, CALLS[key](conn_of(layer)), argument, "ab\udc80")
        error = refused_in_every_mode(layer, key, call)
        assert error.argument == argument
        assert error.problem.startswith("is not valid Unicode")


def set_code(layer: Layer, code: str, expires_at: datetime) -> dict[str, Any]:
    """Set a new session's code on each path; return what get_verification reads back."""
    session_uuid = new_session(conn_of(layer), email=None)
    key = "email_verification.set_verification_code"

    def run() -> Any:
        assert facade_function(key)(session_uuid, code, expires_at) is True
        return facade_function("email_verification.get_verification")(session_uuid)

    return on_each_path(layer, key, run)


def record(layer: Layer, **changes: Any) -> Call:
    session_uuid = new_session(conn_of(layer))
    arguments = {
        "session_uuid": session_uuid,
        "filename": "scan.png",
        "storage_key": f"uploads/{session_uuid}/scan.png",
        "size_bytes": 4096,
        "content_type": "image/png",
        "sha256": "c" * 64,
        **changes,
    }
    return Call((), arguments)


class TestColumnLengths:
    def test_a_verification_code_of_seven_characters_is_refused(self, layer: Layer) -> None:
        key = "email_verification.set_verification_code"
        call = with_argument(key, CALLS[key](conn_of(layer)), "code", "1234567")
        error = refused_in_every_mode(layer, key, call)
        assert error.problem == "is 7 characters long; the column holds 6"

    @pytest.mark.parametrize("code", ["246813", "\U0001d7d8\U0001d7d9\U0001d7da\U0001d7db"])
    def test_a_verification_code_that_fits_is_stored_alike_on_both_paths(
        self, layer: Layer, code: str
    ) -> None:
        results = set_code(layer, code, datetime(2031, 2, 3, 4, 5))
        assert_alike(results)
        assert results["orm"]["verification_code"] == code

    def test_a_sha256_of_sixty_five_characters_is_refused(self, layer: Layer) -> None:
        error = refused_in_every_mode(
            layer, "uploads.record_upload", record(layer, sha256="d" * 65)
        )
        assert (error.argument, error.problem) == (
            "sha256",
            "is 65 characters long; the column holds 64",
        )

    def test_a_sha256_of_sixty_four_characters_is_stored_alike_on_both_paths(
        self, layer: Layer
    ) -> None:
        call = record(layer, sha256="e" * 64)
        key = "uploads.record_upload"
        results = on_each_path(layer, key, lambda: invoke(key, call))
        assert_alike(results, REGISTRY[key].volatile)
        assert results["legacy"]["sha256"] == "e" * 64


code_characters = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\U0001f600", " ", "\ufffe"]),
)


class TestAnyVerificationCode:
    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(code=st.text(code_characters, max_size=8))
    def test_is_refused_alike_in_every_mode_or_stored_alike_by_both_paths(
        self, layer: Layer, code: str
    ) -> None:
        assert layer.unit is not None
        key = "email_verification.set_verification_code"
        expires_at = datetime(2032, 1, 1)
        with layer.unit.rolled_back_savepoint():
            if accepts(key, "code", code):
                results = set_code(layer, code, expires_at)
                assert_alike(results)
                assert results["legacy"]["verification_code"] == code
            else:
                session_uuid = new_session(conn_of(layer), email=None)
                refused_in_every_mode(layer, key, Call((session_uuid, code, expires_at)))


# -- Numbers ---------------------------------------------------------------------------


class TestIntegerArguments:
    @pytest.mark.parametrize(
        ("key", "call", "argument"),
        [
            ("user_sessions.list_sessions", Call(kwargs={"limit": -1}), "limit"),
            ("user_sessions.list_sessions", Call(kwargs={"offset": -1}), "offset"),
            ("user_sessions.list_sessions", Call(kwargs={"limit": BIGINT_MAX + 1}), "limit"),
            ("user_sessions.list_sessions", Call(kwargs={"offset": 2**64}), "offset"),
            ("uploads.upload_stats", Call((-5,)), "limit"),
            ("uploads.upload_stats", Call((BIGINT_MAX + 1,)), "limit"),
            ("uploads.get_upload", Call((BIGINT_MAX + 1,)), "upload_id"),
            ("uploads.delete_upload", Call((-BIGINT_MAX - 2,)), "upload_id"),
        ],
        ids=[
            "negative limit",
            "negative offset",
            "limit beyond bigint",
            "offset beyond bigint",
            "negative stats limit",
            "stats limit beyond bigint",
            "upload id beyond bigint",
            "upload id below bigint",
        ],
    )
    def test_a_value_out_of_range_is_refused_before_any_sql(
        self, layer: Layer, key: str, call: Call, argument: str
    ) -> None:
        error = refused_in_every_mode(layer, key, call)
        assert error.argument == argument
        assert error.problem.startswith("must be between ")

    def test_a_size_beyond_bigint_is_refused_before_any_sql(self, layer: Layer) -> None:
        error = refused_in_every_mode(
            layer, "uploads.record_upload", record(layer, size_bytes=BIGINT_MAX + 1)
        )
        assert error.argument == "size_bytes"

    def test_the_largest_bigint_limit_and_offset_work_alike_on_both_paths(
        self, layer: Layer
    ) -> None:
        new_session(conn_of(layer), name="Bigint Boundary")
        key = "user_sessions.list_sessions"
        everything = on_each_path(layer, key, lambda: facade_function(key)(limit=BIGINT_MAX))
        assert_alike(everything)
        assert everything["legacy"] != []
        beyond = on_each_path(
            layer, key, lambda: facade_function(key)(limit=BIGINT_MAX, offset=BIGINT_MAX)
        )
        assert beyond == {"legacy": [], "orm": []}
        stats = on_each_path(
            layer,
            "uploads.upload_stats",
            lambda: facade_function("uploads.upload_stats")(BIGINT_MAX),
        )
        assert_alike(stats)

    @pytest.mark.parametrize(
        ("key", "call", "argument"),
        [
            ("user_sessions.list_sessions", Call(kwargs={"limit": True}), "limit"),
            ("user_sessions.list_sessions", Call(kwargs={"offset": False}), "offset"),
            ("uploads.upload_stats", Call((True,)), "limit"),
            ("uploads.get_upload", Call((True,)), "upload_id"),
            ("user_sessions.delete_abandoned_sessions", Call((True,)), "older_than_hours"),
        ],
        ids=["limit", "offset", "stats limit", "upload id", "hours"],
    )
    def test_a_bool_where_a_number_is_expected_is_refused(
        self, layer: Layer, key: str, call: Call, argument: str
    ) -> None:
        error = refused_in_every_mode(layer, key, call)
        assert error.argument == argument
        assert error.problem.endswith("not bool")

    def test_a_bool_size_is_refused(self, layer: Layer) -> None:
        error = refused_in_every_mode(
            layer, "uploads.record_upload", record(layer, size_bytes=True)
        )
        assert (error.argument, error.problem) == ("size_bytes", "must be an int, not bool")


class TestBooleanArguments:
    @pytest.mark.parametrize(
        ("key", "call", "argument"),
        [
            (
                "user_sessions.insert_session",
                Call((A_UUID, "Int Consent", None, None, 1)),
                "consent_user_data",
            ),
            ("user_sessions.list_sessions", Call(kwargs={"verified": 0}), "verified"),
            ("user_sessions.list_sessions", Call(kwargs={"completed": 1}), "completed"),
            (
                "user_sessions.update_session",
                Call((A_UUID, {"consent_user_data": 1})),
                "data['consent_user_data']",
            ),
        ],
        ids=["consent", "verified", "completed", "consent in update data"],
    )
    def test_an_int_where_a_bool_is_expected_is_refused(
        self, layer: Layer, key: str, call: Call, argument: str
    ) -> None:
        error = refused_in_every_mode(layer, key, call)
        assert (error.argument, error.problem) == (argument, "must be a bool, not int")


class TestHours:
    @pytest.mark.parametrize("hours", [-1, -0.5, math.nan, math.inf, MAX_HOURS + 1], ids=str)
    def test_a_number_out_of_range_is_refused(self, layer: Layer, hours: float) -> None:
        for key in (
            "user_sessions.delete_abandoned_sessions",
            "email_verification.cleanup_expired_verifications",
        ):
            error = refused_in_every_mode(layer, key, Call((hours,)))
            assert error.argument == "older_than_hours"

    @pytest.mark.parametrize("hours", [MAX_HOURS, 1.5, 0])
    def test_an_accepted_number_works_alike_on_both_paths(self, layer: Layer, hours: float) -> None:
        # The largest accepted number must not overflow PostgreSQL's timestamp range.
        conn = conn_of(layer)
        new_session(conn, created_at=datetime(2001, 1, 1))
        new_session(conn, code="135790", expires_at=datetime(2001, 1, 1))
        for key in (
            "user_sessions.delete_abandoned_sessions",
            "email_verification.cleanup_expired_verifications",
        ):
            results = on_each_path(layer, key, functools.partial(facade_function(key), hours))
            assert_alike(results)
            assert type(results["legacy"]) is int


# -- Datetimes --------------------------------------------------------------------------

PLUS_FIVE_THIRTY = timezone(timedelta(hours=5, minutes=30))
MINUS_EIGHT = timezone(timedelta(hours=-8))


class TestDatetimeArguments:
    def test_a_naive_datetime_is_stored_as_given_on_both_paths(self, layer: Layer) -> None:
        results = set_code(layer, "112233", datetime(2030, 6, 7, 8, 9, 10))
        assert_alike(results)
        assert results["legacy"]["verification_expires_at"] == datetime(2030, 6, 7, 8, 9, 10)

    def test_an_aware_datetime_is_stored_in_utc_alike_on_both_paths(self, layer: Layer) -> None:
        results = set_code(layer, "445566", datetime(2030, 6, 7, 8, 9, 10, tzinfo=PLUS_FIVE_THIRTY))
        assert_alike(results)
        assert results["orm"]["verification_expires_at"] == datetime(2030, 6, 7, 2, 39, 10)

    def test_an_aware_completed_at_is_stored_in_utc_alike_on_both_paths(self, layer: Layer) -> None:
        session_uuid = new_session(conn_of(layer), name="Aware Completion")
        key = "user_sessions.update_session"
        moment = datetime(2029, 12, 31, 20, 0, tzinfo=MINUS_EIGHT)
        results = on_each_path(
            layer, key, lambda: facade_function(key)(session_uuid, {"completed_at": moment})
        )
        assert_alike(results)
        assert results["legacy"]["completed_at"] == datetime(2030, 1, 1, 4, 0)

    def test_an_aware_bound_selects_by_the_utc_instant_alike_on_both_paths(
        self, layer: Layer
    ) -> None:
        conn = conn_of(layer)
        created = datetime(2021, 5, 6, 7, 8, 9)
        inside = new_session(conn, name="Inside Window", created_at=created)
        new_session(conn, name="Before Window", created_at=created - timedelta(microseconds=1))
        key = "user_sessions.list_sessions"
        after = created.replace(tzinfo=UTC).astimezone(PLUS_FIVE_THIRTY)
        before = (created + timedelta(seconds=1)).replace(tzinfo=UTC).astimezone(MINUS_EIGHT)
        results = on_each_path(
            layer,
            key,
            lambda: facade_function(key)(created_after=after, created_before=before),
        )
        assert_alike(results)
        assert [row["uuid"] for row in results["orm"]] == [inside]

    @pytest.mark.parametrize(
        "value", [date(2030, 1, 1), "2030-01-01T00:00:00", 1893456000], ids=["date", "iso", "epoch"]
    )
    def test_something_else_than_a_datetime_is_refused(self, layer: Layer, value: object) -> None:
        key = "email_verification.set_verification_code"
        call = with_argument(key, CALLS[key](conn_of(layer)), "expires_at", value)
        error = refused_in_every_mode(layer, key, call)
        assert error.argument == "expires_at"


# -- update_session data and list_sessions order ------------------------------------------


class TestUpdateData:
    def test_an_unknown_key_is_refused_naming_it_and_the_updatable_fields(
        self, layer: Layer
    ) -> None:
        session_uuid = new_session(conn_of(layer), name="Unknown Key")
        error = refused_in_every_mode(
            layer,
            "user_sessions.update_session",
            Call((session_uuid, {"name": "Renamed", "verification_code": "000000"})),
        )
        assert error.argument == "data"
        assert error.problem == (
            "has the key 'verification_code'; updatable fields are "
            "['completed_at', 'consent_user_data', 'email', 'ip_address', 'name']"
        )

    def test_a_key_that_is_not_a_str_is_refused(self, layer: Layer) -> None:
        session_uuid = new_session(conn_of(layer), name="Int Key")
        error = refused_in_every_mode(
            layer, "user_sessions.update_session", Call((session_uuid, {1: "x"}))
        )
        assert error.argument == "data"

    @pytest.mark.parametrize(
        ("data", "argument"),
        [
            ({"name": None}, "data['name']"),
            ({"name": 42}, "data['name']"),
            ({"email": b"e@example.com"}, "data['email']"),
            ({"ip_address": "10.0.0.1\x00"}, "data['ip_address']"),
            ({"completed_at": "2030-01-01"}, "data['completed_at']"),
        ],
        ids=["null name", "int name", "bytes email", "NUL in ip", "str completed_at"],
    )
    def test_a_bad_value_for_a_known_key_is_refused_naming_the_key(
        self, layer: Layer, data: dict[str, object], argument: str
    ) -> None:
        session_uuid = new_session(conn_of(layer), name="Bad Value")
        error = refused_in_every_mode(
            layer, "user_sessions.update_session", Call((session_uuid, data))
        )
        assert error.argument == argument


class TestOrder:
    @pytest.mark.parametrize("order", ["age", "created_at ", "-uuid", "NAME", 1, None])
    def test_an_unknown_order_is_refused_listing_the_valid_ones(
        self, layer: Layer, order: object
    ) -> None:
        error = refused_in_every_mode(
            layer, "user_sessions.list_sessions", Call(kwargs={"order": order})
        )
        assert error.argument == "order"
        assert error.problem == (
            "must be one of ['-created_at', '-email', '-name', 'created_at', 'email', 'name'], "
            f"not {order!r}"
        )


# -- The shape of the call ------------------------------------------------------------------


class TestCallShape:
    @pytest.mark.parametrize(
        ("key", "call", "message"),
        [
            ("user_sessions.get_session", Call(), "missing required arguments ['session_uuid']"),
            (
                "user_sessions.insert_session",
                Call((A_UUID,), {"email": None}),
                "missing required arguments ['name']",
            ),
            (
                "user_sessions.get_session",
                Call((A_UUID,), {"session_uuid": A_UUID}),
                "got multiple values for arguments ['session_uuid']",
            ),
            (
                "user_sessions.get_session",
                Call((A_UUID,), {"uuid": A_UUID}),
                "got an unexpected keyword argument 'uuid'",
            ),
            (
                "user_sessions.list_sessions",
                Call((5,)),
                "takes 0 positional arguments but 1 were given",
            ),
        ],
        ids=["missing", "missing among several", "twice", "unexpected keyword", "too many"],
    )
    def test_a_call_python_would_refuse_raises_type_error_before_any_sql(
        self, layer: Layer, key: str, call: Call, message: str
    ) -> None:
        for mode in MODES:
            layer.set_flags({key: mode})
            layer.forget_statements()
            with pytest.raises(TypeError, match=re.escape(message)):
                invoke(key, call)
            assert LOG.statements == []
        assert layer.observations() == []


# -- Constraint violations --------------------------------------------------------------------


def duplicate_uuid(conn: psycopg2.extensions.connection) -> Call:
    return Call((new_session(conn, name="First Holder"), "Second Holder", None))


def duplicate_storage_key(conn: psycopg2.extensions.connection) -> Call:
    session_uuid = new_session(conn)
    upload_id = new_upload(conn, session_uuid)
    with conn.cursor() as cur:
        cur.execute("SELECT storage_key FROM uploaded_files WHERE id = %s", (upload_id,))
        row = cur.fetchone()
    assert row is not None
    return Call((session_uuid, "again.txt", row[0], 10, None, "f" * 64))


def missing_session(conn: psycopg2.extensions.connection) -> Call:
    session_uuid = str(uuid.uuid4())
    return Call(
        (session_uuid, "orphan.txt", f"uploads/{session_uuid}/orphan.txt", 1, None, "0" * 64)
    )


def negative_size(conn: psycopg2.extensions.connection) -> Call:
    session_uuid = new_session(conn)
    return Call(
        (session_uuid, "minus.txt", f"uploads/{session_uuid}/minus.txt", -1, None, "1" * 64)
    )


VIOLATIONS = [
    pytest.param(
        "user_sessions.insert_session",
        duplicate_uuid,
        psycopg2.errors.UniqueViolation,
        "23505",
        id="duplicate uuid",
    ),
    pytest.param(
        "uploads.record_upload",
        duplicate_storage_key,
        psycopg2.errors.UniqueViolation,
        "23505",
        id="duplicate storage key",
    ),
    pytest.param(
        "uploads.record_upload",
        missing_session,
        psycopg2.errors.ForeignKeyViolation,
        "23503",
        id="upload of a missing session",
    ),
    pytest.param(
        "uploads.record_upload",
        negative_size,
        psycopg2.errors.CheckViolation,
        "23514",
        id="negative size",
    ),
]


@contextmanager
def recovered() -> Iterator[None]:
    """A nested unit of work: the expected failure rolls back to here, earlier work stays."""
    with compat.transaction():
        yield


@pytest.mark.parametrize(("key", "arrange", "error_class", "sqlstate"), VIOLATIONS)
class TestConstraintViolations:
    def test_raise_the_same_psycopg2_class_and_sqlstate_in_every_mode(
        self,
        layer: Layer,
        key: str,
        arrange: Callable[[psycopg2.extensions.connection], Call],
        error_class: type[psycopg2.Error],
        sqlstate: str,
    ) -> None:
        call = arrange(conn_of(layer))
        raised: dict[str, tuple[type[BaseException], str | None]] = {}
        for mode in MODES:
            layer.set_flags({key: mode})
            with pytest.raises(psycopg2.Error) as error, recovered():
                invoke(key, call)
            raised[mode] = (type(error.value), error.value.pgcode)
        assert raised == dict.fromkeys(MODES, (error_class, sqlstate))

    def test_the_unit_keeps_its_earlier_work_after_recovering(
        self,
        layer: Layer,
        key: str,
        arrange: Callable[[psycopg2.extensions.connection], Call],
        error_class: type[psycopg2.Error],
        sqlstate: str,
    ) -> None:
        call = arrange(conn_of(layer))
        earlier = str(uuid.uuid4())
        layer.set_flags({key: "orm"})
        facade_function("user_sessions.insert_session")(earlier, "Earlier Work", None)
        with pytest.raises(error_class), recovered():
            invoke(key, call)
        assert facade_function("user_sessions.check_uuid_exists")(earlier) is True

    @pytest.mark.parametrize("mode", ["shadow", "live"])
    def test_a_compared_call_records_both_paths_failing_alike(
        self,
        layer: Layer,
        key: str,
        arrange: Callable[[psycopg2.extensions.connection], Call],
        error_class: type[psycopg2.Error],
        sqlstate: str,
        mode: str,
    ) -> None:
        call = arrange(conn_of(layer))
        layer.set_flags({key: mode})
        with pytest.raises(error_class), recovered():
            invoke(key, call)
        [observation] = layer.observations()
        assert observation.matched, observation.summary()
        assert observation.serving.side is (Side.LEGACY if mode == "shadow" else Side.ORM)
        for outcome in (observation.serving, observation.candidate):
            assert type(outcome.error) is error_class
            assert outcome.error_text is not None
            assert f"[{sqlstate}]" in outcome.error_text


class TestNoneConsent:
    def test_is_stored_as_null_on_both_paths_as_legacy_code_always_did(self, layer: Layer) -> None:
        session_uuid = str(uuid.uuid4())
        results = on_each_path(
            layer,
            "user_sessions.insert_session",
            lambda: facade_function("user_sessions.insert_session")(
                session_uuid,
                "No Consent Given",
                None,
                None,
                None,
            ),
        )
        assert_alike(results)
        assert results["legacy"]["consent_user_data"] is None
