"""`compat verify`: both paths on real rows, the report, the exit status, and no change."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
import pytest
from psycopg2 import sql
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from compat.cli import main
from compat.routing.declaration import REGISTRY
from compat.runtime import reset_runtime
from compat.shadow.digest import DIGEST_ABOVE
from compat.user_sessions import SessionRow
from compat.verify import seeding
from compat.verify.embedded import (
    EmbeddedUnavailable,
    choose_account,
    embedded_postgres,
    find_binaries,
)
from compat.verify.runner import CONFIGURATION_VARIABLES
from orm.database import create_engine, dispose_engine
from tests.fixtures.layer import Layer, observer_connection

SESSIONS = 200
KEY = "user_sessions.get_session"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Ran:
    """One `compat verify` run: exit status, stdout (the report) and stderr (progress, errors)."""

    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        return document

    def by_key(self) -> dict[str, dict[str, Any]]:
        return {f["key"]: f for f in self.json()["functions"]}


Verify = Callable[..., Ran]


@pytest.fixture
def verify(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Verify:
    """Runs `compat verify ARGS` in this process against whatever DATABASE_URL names."""
    for name in ("COMPAT_FLAGS", "COMPAT_FLAGS_FILE", "COMPAT_KILL_SWITCH", "COMPAT_REDACT"):
        monkeypatch.delenv(name, raising=False)

    def run(*argv: str) -> Ran:
        capsys.readouterr()
        out = io.StringIO()
        code = main(["verify", *argv], out=out)
        return Ran(code, out.getvalue(), capsys.readouterr().err)

    return run


@pytest.fixture
def seeded(committed_layer: Layer) -> Layer:
    """A fresh migrated database with generated sessions and uploads, committed."""
    with committed_layer.engine.begin() as connection:
        seeding.seed(connection, SESSIONS)
    return committed_layer


@pytest.fixture
def unmigrated(fresh_database: str) -> Iterator[str]:
    """DATABASE_URL: legacy/schema.sql alone (as production before adoption), seeded, committed."""
    engine = create_engine(fresh_database, poolclass=NullPool)
    with engine.begin() as connection:
        seeding.seed(connection, SESSIONS)
    engine.dispose()
    # The layer builds its engine and runtime from DATABASE_URL, as a new process would.
    previous = reset_runtime(None)
    dispose_engine()
    try:
        yield fresh_database
    finally:
        reset_runtime(previous)
        dispose_engine()


@pytest.fixture
def observer(seeded: Layer) -> Iterator[psycopg2.extensions.connection]:
    conn = observer_connection(seeded.url)
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")  # LOCALTIMESTAMP as the layer sees it
    try:
        yield conn
    finally:
        conn.close()


def rows(conn: psycopg2.extensions.connection, query: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def fingerprint(conn: psycopg2.extensions.connection) -> dict[str, tuple[int, str]]:
    """Every table of the schema: its row count and an md5 of every row's text, in order."""
    found: dict[str, tuple[int, str]] = {}
    for (table,) in rows(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' "
                    "ORDER BY t::text), '')) FROM {} AS t"
                ).format(sql.Identifier(table))
            )
            count, digest = cur.fetchone() or (0, "")
        found[table] = (count, digest)
    return found


def tables(conn: psycopg2.extensions.connection) -> list[str]:
    return sorted(
        t for (t,) in rows(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    )


def sequences(conn: psycopg2.extensions.connection) -> dict[str, int | None]:
    return dict(
        rows(conn, "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences")
    )


def table(text: str) -> list[list[str]]:
    """The rows of the report's table (cells are separated by two or more spaces)."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line))
    found = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        found.append(re.split(r"\s{2,}", line.strip()))
    return found


def broken_get_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap in an ORM adapter that gets every name and email wrong (so a diff would show both)."""
    spec = REGISTRY[KEY]

    def broken(db: Session, session_uuid: str) -> SessionRow | None:
        row: SessionRow | None = spec.orm(db, session_uuid)
        if row is None:
            return None
        return {**row, "name": row["name"] + "!", "email": (row["email"] or "") + "!"}

    monkeypatch.setitem(REGISTRY, KEY, dataclasses.replace(spec, orm=broken))


class TestReport:
    def test_every_function_matches_on_sampled_rows_and_the_json_says_ready(
        self, verify: Verify, seeded: Layer
    ) -> None:
        ran = verify("--json", "--sample", "5")
        assert ran.code == 0, ran.err
        document = ran.json()
        assert document["verdict"] == "ready"
        assert document["embedded"] is False
        assert document["sample"] == 5
        assert datetime.fromisoformat(document["started_at"]).tzinfo is not None
        functions = ran.by_key()
        assert sorted(functions) == sorted(REGISTRY)
        for key, result in functions.items():
            assert result["cases"] > 0, key
            assert (result["matches"], result["mismatches"]) == (result["cases"], 0), key
            assert (result["verdict"], result["first_diff"]) == ("ready", None), key
            assert result["kind"] == REGISTRY[key].kind.value
            for path in ("legacy_ms", "orm_ms"):
                assert 0 < result[path]["p50"] <= result[path]["p95"], (key, path)
        assert document["cases"] == sum(f["cases"] for f in functions.values())
        assert f"[{len(REGISTRY)}/{len(REGISTRY)}] " in ran.err  # progress, on stderr

    def test_the_text_report_has_a_row_per_function_and_a_ready_verdict(
        self, verify: Verify, seeded: Layer
    ) -> None:
        ran = verify("--sample", "3", "--quiet")
        assert (ran.code, ran.err) == (0, "")
        found = {row[0]: row[1:] for row in table(ran.out)}
        assert sorted(found) == sorted(REGISTRY)
        for key, (kind, mode, cases, matches, mismatches, legacy, orm, verdict) in found.items():
            assert (kind, mode, verdict) == (REGISTRY[key].kind.value, "legacy", "ready")
            assert cases == matches
            assert mismatches == "0"
            assert re.fullmatch(r"\d+\.\d\d / \d+\.\d\d", legacy)
            assert re.fullmatch(r"\d+\.\d\d / \d+\.\d\d", orm)
        assert ran.out.splitlines()[-1].startswith(
            f"verdict: ready: all {len(REGISTRY)} functions matched on all "
        )

    def test_the_mode_column_shows_each_function_flag(self, verify: Verify, seeded: Layer) -> None:
        seeded.set_flags({KEY: "shadow", "uploads.get_upload": "orm"})
        functions = verify("--json", "--sample", "2", "--functions", "*.get_*").by_key()
        assert functions[KEY]["mode"] == "shadow"
        assert functions["uploads.get_upload"]["mode"] == "orm"
        assert functions["email_verification.get_verification"]["mode"] == "legacy"

    def test_a_glob_selects_the_functions_it_matches(self, verify: Verify, seeded: Layer) -> None:
        ran = verify("--json", "--sample", "2", "--functions", "uploads.*")
        assert ran.code == 0
        assert sorted(ran.by_key()) == sorted(k for k in REGISTRY if k.startswith("uploads."))

    def test_a_glob_that_matches_nothing_exits_2_listing_the_valid_keys(
        self, verify: Verify
    ) -> None:
        ran = verify("--functions", "uplaods.*")
        assert (ran.code, ran.out) == (2, "")
        assert "--functions 'uplaods.*' matches no function" in ran.err
        assert all(key in ran.err for key in REGISTRY)

    def test_a_sample_below_one_is_a_usage_error(self, verify: Verify) -> None:
        ran = verify("--sample", "0")
        assert (ran.code, ran.out) == (2, "")
        assert "--sample: must be at least 1" in ran.err

    def test_every_registered_function_has_calls_declared(self) -> None:
        """A new facade function without calls would be reported blocked, never silently skipped."""
        assert [key for key, spec in sorted(REGISTRY.items()) if spec.calls is None] == []


class TestMismatch:
    def test_a_broken_orm_adapter_blocks_its_function_exits_1_and_shows_a_redacted_diff(
        self, verify: Verify, seeded: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broken_get_session(monkeypatch)
        ran = verify("--json", "--sample", "4")
        assert ran.code == 1
        document = ran.json()
        assert document["verdict"] == "blocked"
        functions = ran.by_key()
        result = functions[KEY]
        assert result["verdict"] == "blocked"
        # Every call on an existing session; only the missing uuid still matches (None).
        assert result["mismatches"] == result["cases"] - 1 >= 4
        diff = result["first_diff"]
        assert diff.startswith(f"{KEY} [sampled session 1]: MISMATCH")
        assert "['result']['name']: legacy='<redacted str #" in diff
        assert "['result']['email']: legacy=" in diff
        assert all(f["verdict"] == "ready" for k, f in functions.items() if k != KEY)

    def test_the_text_report_names_the_blocked_function_and_its_first_diff(
        self, verify: Verify, seeded: Layer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broken_get_session(monkeypatch)
        ran = verify("--sample", "2", "--functions", "user_sessions.*")
        assert ran.code == 1
        assert [row[-1] for row in table(ran.out) if row[0] == KEY] == ["blocked"]
        assert "first difference of each blocked function (personal data redacted):" in ran.out
        assert f"{KEY} [sampled session 1]: MISMATCH between the legacy and the ORM path" in ran.out
        selected = len([k for k in REGISTRY if k.startswith("user_sessions.")])
        assert ran.out.splitlines()[-1].startswith(f"verdict: blocked: 1 of {selected} functions")

    def test_no_seeded_name_or_email_appears_in_any_report(
        self,
        verify: Verify,
        seeded: Layer,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        broken_get_session(monkeypatch)
        reports = [verify("--json", "--sample", "30"), verify("--sample", "30")]
        people = rows(observer, "SELECT name, email FROM user_sessions")
        # Names of one short word ("Ada") could match any text; full names cannot by chance.
        personal = {n for n, _ in people if " " in n} | {e for _, e in people if e}
        assert len(personal) > SESSIONS
        for ran in reports:
            assert ran.code == 1
            leaked = sorted(p for p in personal if p in ran.out or p in ran.err)
            assert leaked == []


class TestWholeTableResults:
    """A result above DIGEST_ABOVE elements is compared by digest on each path."""

    UUIDS = "user_sessions.list_session_uuids"

    @pytest.fixture
    def large(self, seeded: Layer, observer: psycopg2.extensions.connection) -> int:
        """Enough committed sessions that every uuid of the table is one digested result."""
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO user_sessions (uuid, name) SELECT gen_random_uuid(), 'Bulk ' || i "
                "FROM generate_series(1, %s) AS i",
                (DIGEST_ABOVE,),
            )
        return SESSIONS + DIGEST_ABOVE

    def test_a_large_table_matches_by_digest(self, verify: Verify, large: int) -> None:
        ran = verify("--json", "--functions", self.UUIDS)
        assert ran.code == 0, ran.err
        assert ran.by_key()[self.UUIDS]["verdict"] == "ready"

    def test_a_missing_uuid_blocks_it_with_both_lengths_and_no_uuid_in_the_report(
        self,
        verify: Verify,
        large: int,
        observer: psycopg2.extensions.connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        spec = REGISTRY[self.UUIDS]
        [(dropped,)] = rows(observer, "SELECT uuid::text FROM user_sessions ORDER BY uuid LIMIT 1")

        def missing_one(db: Session) -> set[str]:
            return set(spec.orm(db)) - {dropped}

        monkeypatch.setitem(REGISTRY, self.UUIDS, dataclasses.replace(spec, orm=missing_one))
        ran = verify("--json", "--functions", self.UUIDS)
        assert ran.code == 1
        result = ran.by_key()[self.UUIDS]
        assert (result["verdict"], result["mismatches"]) == ("blocked", result["cases"])
        assert result["first_diff"] == (
            f"{self.UUIDS} [whole table, run 1]: MISMATCH between the legacy and the ORM path\n"
            f"['result']: legacy=<set of {large:,} str, digested> "
            f"orm=<set of {large - 1:,} str, digested> "
            f"(lengths differ: {large:,} != {large - 1:,} (compared by digest))"
        )
        uuids = {u for (u,) in rows(observer, "SELECT uuid::text FROM user_sessions")}
        assert not [u for u in uuids if u in ran.out or u in ran.err]


class TestChangesNothing:
    def test_every_row_of_every_table_is_the_same_afterwards(
        self, verify: Verify, seeded: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        """Content means rows: sequences advance on rolled-back inserts, and the report says so."""
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO compat_flags (key, mode, sample_rate, updated_by) "
                "VALUES (%s, 'shadow', 0.5, 'ops')",
                (KEY,),
            )
        tables_before, sequences_before = fingerprint(observer), sequences(observer)
        assert tables_before["user_sessions"][0] == SESSIONS
        ran = verify("--json", "--sample", "10")
        assert ran.code == 0, ran.err
        assert fingerprint(observer) == tables_before
        sequences_after = sequences(observer)
        moved = {s["name"]: s for s in ran.json()["sequences"]}
        record_calls = ran.by_key()["uploads.record_upload"]["cases"]
        # Each record_upload call inserts once on each path, and each insert draws a value.
        assert {name: s["drawn"] for name, s in moved.items()} == {
            "public.uploaded_files_id_seq": 2 * record_calls
        }
        for name, value in sequences_before.items():
            expected = moved[name]["after"] if name in moved else value
            assert sequences_after[name] == expected, name

    def test_a_database_that_was_never_migrated_is_verified_and_left_unmigrated(
        self, verify: Verify, unmigrated: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Production before the compat revisions: no flag table, no alembic_version; none made."""
        observer = observer_connection(unmigrated)
        try:
            assert tables(observer) == ["uploaded_files", "user_sessions"]
            before = fingerprint(observer)
            ran = verify("--json", "--sample", "5")
            assert ran.code == 0, ran.err
            assert {f["mode"] for f in ran.json()["functions"]} == {"legacy"}
            assert 'relation "compat_flags" does not exist' in caplog.text  # one warning, no stop
            assert tables(observer) == ["uploaded_files", "user_sessions"]
            assert fingerprint(observer) == before
        finally:
            observer.close()


def _processes_inside(directory: Path) -> list[int]:
    """Processes whose working directory or command line lies in ``directory`` (a /proc scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if cwd.startswith(str(directory)) or str(directory) in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def tmpdir_for_servers() -> Iterator[Path]:
    """A new directory for TMPDIR that the server's account can traverse (ours, so we open it)."""
    base = Path(tempfile.mkdtemp(prefix="verify-test-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


class TestEmbeddedDefault:
    def test_without_database_url_it_verifies_everything_on_a_throwaway_server_and_leaves_nothing(
        self, tmpdir_for_servers: Path
    ) -> None:
        env = {k: v for k, v in os.environ.items() if k not in CONFIGURATION_VARIABLES}
        env = {k: v for k, v in env.items() if not k.startswith("COMPAT_")}
        env["TMPDIR"] = str(tmpdir_for_servers)
        done = subprocess.run(
            [sys.executable, "-m", "compat", "verify", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert (document["verdict"], document["embedded"]) == ("ready", True)
        assert document["seeded"].startswith(f"{seeding.DEFAULT_SESSIONS} sessions, ")
        assert sorted(f["key"] for f in document["functions"]) == sorted(REGISTRY)
        assert all(f["cases"] > 0 and f["mismatches"] == 0 for f in document["functions"])
        if os.geteuid() == 0:  # PostgreSQL refuses root: it ran under the postgres account
            assert "as the 'postgres' account" in done.stderr
        [directory] = re.findall(r"PostgreSQL.* in (/\S+)\n", done.stderr)
        assert Path(directory).parent == tmpdir_for_servers
        assert f"stopped the throwaway PostgreSQL and removed {directory}" in done.stderr
        assert list(tmpdir_for_servers.iterdir()) == []
        assert _processes_inside(tmpdir_for_servers) == []

    def test_the_server_is_stopped_and_removed_when_the_block_is_interrupted(
        self, tmpdir_for_servers: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TMPDIR", str(tmpdir_for_servers))
        monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
        with pytest.raises(KeyboardInterrupt), embedded_postgres() as server:
            assert server.process is not None
            assert server.process.poll() is None
            assert _processes_inside(server.directory) != []
            raise KeyboardInterrupt
        assert not server.directory.exists()
        assert server.process is not None
        assert server.process.returncode is not None
        assert _processes_inside(tmpdir_for_servers) == []

    def test_as_root_without_the_postgres_account_it_says_what_to_do_and_creates_nothing(
        self,
    ) -> None:
        with pytest.raises(EmbeddedUnavailable) as raised:
            choose_account(0, "compat-no-such-account")
        message = str(raised.value)
        assert "'compat-no-such-account' account" in message
        assert "apt-get install postgresql" in message
        assert "DATABASE_URL" in message
        assert choose_account(1000, "compat-no-such-account") is None  # not root: runs as itself

    def test_without_binaries_it_says_what_to_install(self, tmp_path: Path) -> None:
        with pytest.raises(EmbeddedUnavailable) as raised:
            find_binaries({"PATH": str(tmp_path)}, roots=(tmp_path,), packaged=False)
        assert "apt-get install postgresql" in str(raised.value)
        assert "DATABASE_URL" in str(raised.value)


class TestSeeding:
    def test_generated_data_has_the_cases_the_functions_branch_on(
        self, seeded: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        [(null_emails, mixed_case, non_ascii, emoji, tied)] = rows(
            observer,
            "SELECT count(*) FILTER (WHERE email IS NULL), "
            "count(*) FILTER (WHERE email <> lower(email)), "
            "count(*) FILTER (WHERE name ~ '[^[:ascii:]]'), "
            "count(*) FILTER (WHERE name ~ '[\\U0001F300-\\U0001FAFF]'), "
            "count(*) - count(DISTINCT created_at) FROM user_sessions",
        )
        assert min(null_emails, mixed_case, non_ascii, emoji, tied) > 0
        [(pending, expired_recently, expired_long_ago, verified)] = rows(
            observer,
            "SELECT count(*) FILTER (WHERE verification_expires_at > LOCALTIMESTAMP), "
            "count(*) FILTER (WHERE verification_expires_at BETWEEN LOCALTIMESTAMP - "
            "INTERVAL '24 hours' AND LOCALTIMESTAMP), "
            "count(*) FILTER (WHERE verification_expires_at < LOCALTIMESTAMP - "
            "INTERVAL '24 hours'), count(*) FILTER (WHERE is_email_verified) FROM user_sessions",
        )
        assert min(pending, expired_recently, expired_long_ago, verified) > 0
        [(uploads, deleted, sessions_with_uploads)] = rows(
            observer,
            "SELECT count(*), count(deleted_at), count(DISTINCT session_uuid) FROM uploaded_files",
        )
        assert uploads > sessions_with_uploads > SESSIONS // 3
        assert deleted > 0
