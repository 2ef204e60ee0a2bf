"""SQL injection strings in every parameter, on both paths: bound as data, never run as SQL.

No SQL is built by formatting caller input: legacy code interpolates only
module constants (column lists, the allow-listed ORDER BY clauses) and ruff's
S608 guards every other module. This test is the runtime half of that claim.
Every call commits for real (a fresh database), and plain SQL from another
connection checks afterwards that every table is still there, no row count
moved except by the inserts that were meant to happen, bystander rows are
byte-for-byte the same, and every accepted injection string was stored
verbatim.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from compat import InvalidArgument
from compat.routing.declaration import REGISTRY
from tests.compat.calls import CALLS, Call, new_session, new_upload
from tests.compat.test_routing import facade_function
from tests.fixtures.layer import Layer
from tests.reliability.hostile import INJECTIONS

TABLES = ("user_sessions", "uploaded_files", "compat_flags", "compat_flag_audit")
BYSTANDERS = 5
# The columns an accepted write stores each string argument in.
STORED_IN = {
    "user_sessions.insert_session": {"name": "name", "email": "email", "ip_address": "ip_address"},
    "uploads.record_upload": {
        "filename": "filename",
        "storage_key": "storage_key",
        "content_type": "content_type",
        "sha256": "sha256",
    },
    "email_verification.set_verification_code": {"code": "verification_code"},
}
FRESH_EACH_CALL = {"user_sessions.insert_session", "uploads.record_upload"}
"""Their baseline call inserts a row, so each injection needs a new uuid or storage key."""


def one(observer: psycopg2.extensions.connection, sql: str, *params: Any) -> Any:
    with observer.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    assert row is not None
    return row[0]


def tables_present(observer: psycopg2.extensions.connection) -> dict[str, bool]:
    return {t: one(observer, "SELECT to_regclass(%s) IS NOT NULL", t) for t in TABLES}


def counts(observer: psycopg2.extensions.connection) -> tuple[int, int]:
    return (
        one(observer, "SELECT count(*) FROM user_sessions"),
        one(observer, "SELECT count(*) FROM uploaded_files"),
    )


def rows_of(observer: psycopg2.extensions.connection, uuids: list[str]) -> str:
    """A digest of these sessions' rows and their uploads' rows, every column."""
    return str(
        one(
            observer,
            "SELECT md5(string_agg(s::text, '|' ORDER BY s.uuid) || (SELECT coalesce("
            "string_agg(f::text, '|' ORDER BY f.id), '') FROM uploaded_files f "
            "WHERE f.session_uuid = ANY(%s::uuid[]))) FROM user_sessions s "
            "WHERE s.uuid = ANY(%s::uuid[])",
            uuids,
            uuids,
        )
    )


def forget_injected_storage_keys(observer: psycopg2.extensions.connection) -> None:
    """Storage keys are unique: the other path must be free to store the same strings."""
    with observer.cursor() as cur:
        cur.execute("DELETE FROM uploaded_files WHERE storage_key = ANY(%s)", (list(INJECTIONS),))


@dataclass(frozen=True, slots=True)
class Injected:
    """One call with one injection string in one place."""

    key: str
    place: str
    call: Call
    value: str


def replaced(key: str, call: Call, name: str, value: object) -> Call:
    """``call`` with argument ``name`` set to ``value`` (by position when it was positional)."""
    positional = REGISTRY[key].positional
    if name in positional and positional.index(name) < len(call.args):
        args = list(call.args)
        args[positional.index(name)] = value
        return Call(tuple(args), dict(call.kwargs))
    return Call(call.args, {**call.kwargs, name: value})


def injected_calls(key: str, observer: psycopg2.extensions.connection) -> Iterator[Injected]:
    """Every injection string in every parameter of ``key``, on a call that is valid otherwise.

    update_session also gets them as keys and as the value of every text field.
    """
    baseline = CALLS[key](observer)
    for name in REGISTRY[key].validators:
        for value in INJECTIONS:
            call = CALLS[key](observer) if key in FRESH_EACH_CALL else baseline
            if name == "data":
                yield Injected(key, "data key", replaced(key, call, name, {value: "x"}), value)
                for field in ("name", "email", "ip_address"):
                    place = f"data[{field!r}]"
                    yield Injected(key, place, replaced(key, call, name, {field: value}), value)
            else:
                yield Injected(key, name, replaced(key, call, name, value), value)


def stored_verbatim(
    observer: psycopg2.extensions.connection, injected: Injected, result: Any
) -> bool:
    """Whether the accepted write kept the string exactly, in the column its argument names."""
    arguments = REGISTRY[injected.key].arguments(injected.call.args, injected.call.kwargs)
    if injected.key == "uploads.record_upload":
        column = STORED_IN[injected.key][injected.place]
        sql = f"SELECT {column} FROM uploaded_files WHERE id = %s"
        # sha256 is CHAR(64): PostgreSQL pads it with blanks, as it always did.
        expected = injected.value.ljust(64) if column == "sha256" else injected.value
        return bool(one(observer, sql, result["id"]) == expected)
    if injected.key == "user_sessions.update_session":
        column = injected.place.removeprefix("data['").removesuffix("']")
    else:
        column = STORED_IN[injected.key][injected.place]
    sql = f"SELECT {column} FROM user_sessions WHERE uuid = %s"
    return bool(one(observer, sql, arguments["session_uuid"]) == injected.value)


class TestInjectionStringsInEveryParameter:
    def test_leave_every_table_and_bystander_row_in_place_on_both_paths(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        bystanders = [new_session(observer, name=f"Bystander {i}") for i in range(BYSTANDERS)]
        for session_uuid in bystanders:
            new_upload(observer, session_uuid)
        before = rows_of(observer, bystanders)
        refused = accepted = 0
        for mode in ("legacy", "orm"):
            committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
            forget_injected_storage_keys(observer)
            for key in sorted(REGISTRY):
                calls = list(injected_calls(key, observer))
                counted = counts(observer)
                inserted = 0
                for injected in calls:
                    try:
                        result = facade_function(key)(*injected.call.args, **injected.call.kwargs)
                    except InvalidArgument:
                        refused += 1
                        continue
                    accepted += 1
                    if key in STORED_IN or injected.place.startswith("data["):
                        assert stored_verbatim(observer, injected, result), (mode, injected)
                    inserted += key in FRESH_EACH_CALL
                    assert tables_present(observer) == dict.fromkeys(TABLES, True), (
                        mode,
                        injected,
                    )
                sessions, uploads = counts(observer)
                expected = (
                    counted[0] + inserted * (key == "user_sessions.insert_session"),
                    counted[1] + inserted * (key == "uploads.record_upload"),
                )
                assert (sessions, uploads) == expected, (mode, key)
        assert rows_of(observer, bystanders) == before
        assert refused > 0
        assert accepted > 0

    def test_an_injection_in_update_data_keys_or_list_order_is_refused_before_any_sql(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = new_session(observer, name=f"Target {uuid.uuid4().hex[:6]}")
        before = rows_of(observer, [session_uuid])
        for mode in ("legacy", "orm"):
            committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
            for value in INJECTIONS:
                committed_layer.forget_statements()
                with pytest.raises(InvalidArgument, match="updatable fields are"):
                    facade_function("user_sessions.update_session")(session_uuid, {value: "x"})
                with pytest.raises(InvalidArgument, match="must be one of"):
                    facade_function("user_sessions.list_sessions")(order=value)
                assert committed_layer.paths_touching_data() == []
        assert rows_of(observer, [session_uuid]) == before
