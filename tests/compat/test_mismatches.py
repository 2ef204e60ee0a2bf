"""`compat mismatches` and `compat status --json`: stored mismatches as an operator reads them."""

from __future__ import annotations

import json

import psycopg2.extensions

from compat.routing.declaration import REGISTRY
from compat.shadow.fingerprint import fingerprint, kind_of, shape_of
from tests.compat.test_cli import Cli, flip, table

KEY = "user_sessions.get_session"
OTHER = "uploads.get_upload"

EMAIL_NONE = "['result']['email']: legacy='<redacted str #{}>' orm=None (values differ)"
COUNT_TYPE = "['result'][{}]['size_bytes']: legacy=3 orm=3.0 (types differ)"


def mismatch(
    observer: psycopg2.extensions.connection,
    key: str,
    diff: str,
    *,
    minutes_ago: float = 1,
    candidate_error: str | None = None,
) -> None:
    """One stored mismatch, as the table publisher leaves it."""
    with observer.cursor() as cur:
        cur.execute(
            "INSERT INTO compat_observations "
            "(observed_at, key, mode, serving, matched, legacy_ms, orm_ms, candidate_error, diff) "
            "VALUES ((CURRENT_TIMESTAMP AT TIME ZONE 'UTC') - %s * INTERVAL '1 minute', "
            "%s, 'shadow', 'legacy', false, 1.0, 2.0, %s, %s)",
            (minutes_ago, key, candidate_error, diff),
        )


class TestAFingerprint:
    def test_is_the_same_for_the_same_fields_and_kinds_whatever_the_values_and_rows(self) -> None:
        assert fingerprint(KEY, EMAIL_NONE.format("1a2b3c4d")) == fingerprint(
            KEY, EMAIL_NONE.format("99999999")
        )
        assert fingerprint(OTHER, COUNT_TYPE.format(0)) == fingerprint(OTHER, COUNT_TYPE.format(7))

    def test_differs_by_function_field_and_kind_of_value(self) -> None:
        base = fingerprint(KEY, EMAIL_NONE.format("1a2b3c4d"))
        assert fingerprint(OTHER, EMAIL_NONE.format("1a2b3c4d")) != base
        assert fingerprint(KEY, EMAIL_NONE.replace("email", "name").format("1")) != base
        assert fingerprint(KEY, "['result']['email']: legacy=None orm='x' (values differ)") != base

    def test_sees_kinds_the_way_a_diff_shows_them(self) -> None:
        kinds = [
            kind_of(shown)
            for shown in (
                "'<redacted str #0badf00d>'",
                "None",
                "True",
                "'text'",
                "12",
                "1.5",
                "datetime.datetime(2026, 1, 1, 0, 0)",
                "UUID('5f0c...')",
                "Decimal('1.0')",
                "{'a': 1}",
                "[1]",
            )
        ]
        assert kinds == [
            "redacted str",
            "None",
            "bool",
            "str",
            "int",
            "float",
            "datetime",
            "UUID",
            "Decimal",
            "dict",
            "list",
        ]

    def test_ignores_the_line_that_counts_the_differences_left_out(self) -> None:
        shape = shape_of(KEY, COUNT_TYPE.format(1) + "\n... and 4 more")
        assert shape.lines == ("['result'][*]['size_bytes']: int -> float (types differ)",)


class TestMismatches:
    def test_groups_the_stored_mismatches_by_fingerprint_with_a_count_and_the_latest_diff(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        for minutes_ago, digest in ((30, "00000001"), (20, "00000002"), (10, "00000003")):
            mismatch(observer, KEY, EMAIL_NONE.format(digest), minutes_ago=minutes_ago)
        mismatch(observer, OTHER, COUNT_TYPE.format(4), minutes_ago=5)
        ran = cli("mismatches")
        assert (ran.code, ran.err) == (0, "")
        assert ran.out.splitlines()[0].endswith("; 4 stored mismatches")
        rows = table(ran.out)
        assert [(row[1], row[2]) for row in rows] == [("3", KEY), ("1", OTHER)]
        assert rows[0][0] == fingerprint(KEY, EMAIL_NONE.format("0000000f"))
        assert rows[0][4] == EMAIL_NONE.format("00000003")
        assert rows[1][4] == COUNT_TYPE.format(4)

    def test_of_one_key_shows_only_its_groups_as_json(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        mismatch(observer, KEY, EMAIL_NONE.format("00000001"))
        mismatch(
            observer,
            OTHER,
            "<raised>: legacy=None orm='QueryCanceled [57014]: canceling statement' "
            "(one side raised, or they raised differently)",
            candidate_error="QueryCanceled [57014]: canceling statement",
        )
        ran = cli("mismatches", OTHER, "--json")
        assert (ran.code, ran.err) == (0, "")
        [group] = json.loads(ran.out)
        assert group["key"] == OTHER
        assert group["count"] == 1
        assert group["fields"] == ["<raised>"]
        assert group["latest_candidate_error"] == "QueryCanceled [57014]: canceling statement"

    def test_of_an_unknown_key_is_refused_with_status_2(self, cli: Cli, database: str) -> None:
        ran = cli("mismatches", "uploads.get_uplod")
        assert ran.code == 2
        assert "valid keys are" in ran.err


class TestStatusAsJson:
    def test_gives_every_key_its_mode_and_counts(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        flip(observer, KEY, "shadow")
        mismatch(observer, KEY, EMAIL_NONE.format("00000001"), minutes_ago=3)
        ran = cli("status", "--json")
        assert (ran.code, ran.err) == (0, "")
        document = json.loads(ran.out)
        assert document["window_minutes"] == 60
        functions = {f["key"]: f for f in document["functions"]}
        assert sorted(functions) == sorted(REGISTRY)
        assert functions[KEY]["mode"] == "shadow"
        assert (functions[KEY]["observations"], functions[KEY]["mismatches"]) == (1, 1)
        assert functions[KEY]["last_mismatch"] is not None
        assert functions[OTHER]["observations"] == 0
