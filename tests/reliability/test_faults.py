"""Every backend terminated mid-workload: calls in flight fail clearly, the next ones just work,
and no committed unit of work is lost or half-visible.

``pg_terminate_backend`` on every connection of the test's own database is what
a database restart looks like from the application (the shared server itself
is never restarted). The process is not restarted either: the pool's pre-ping
replaces dead connections, for the legacy seam as much as for the ORM.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import psycopg2
import psycopg2.extensions
import pytest

import compat
import legacy.user_sessions
from compat import email_verification, uploads, user_sessions
from compat.routing.declaration import REGISTRY
from tests.fixtures.layer import Layer
from tests.reliability.backends import terminate_every_backend

# One unit of work crosses both paths and both compared modes.
MIXED_FLAGS = {
    "user_sessions.insert_session": "legacy",
    "uploads.record_upload": "orm",
    "email_verification.set_verification_code": "live",
    "user_sessions.complete_session": "shadow",
    "user_sessions.get_session": "legacy",
    "user_sessions.check_uuid_exists": "orm",
}
WORKERS = 4
KILLS = 5
UNITS_BETWEEN_KILLS = 12
UNITS_AFTER_THE_LAST_KILL = 2
"""Per worker: each must commit this many units begun after the last kill."""
WAIT_SECONDS = 60.0
EXPIRES = datetime(2031, 1, 1, 12, 0)
# What the client reads from a socket the server closed; psycopg2's OperationalError.
LOST_CONNECTION = (
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
)


@dataclass(frozen=True, slots=True)
class Planned:
    """A unit of work's rows, known before it runs: one session, its code, two uploads."""

    session_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    code: str = field(default_factory=lambda: f"{uuid.uuid4().int % 10**6:06d}")

    @property
    def storage_keys(self) -> tuple[str, str]:
        return (f"uploads/{self.session_uuid}/a.txt", f"uploads/{self.session_uuid}/b.txt")


def unit_calls(planned: Planned) -> None:
    """Five facade calls on four differently-routed functions (the caller opens the unit)."""
    user_sessions.insert_session(planned.session_uuid, "Fault Tolerant", None)
    for key in planned.storage_keys:
        uploads.record_upload(planned.session_uuid, "notes.txt", key, 100, None, "a" * 64)
    email_verification.set_verification_code(planned.session_uuid, planned.code, EXPIRES)
    assert user_sessions.complete_session(planned.session_uuid) is True


def run_unit(planned: Planned) -> None:
    with compat.transaction():
        unit_calls(planned)


class Presence(StrEnum):
    WHOLE = "whole"
    ABSENT = "absent"
    PARTIAL = "partial"


def presence(observer: psycopg2.extensions.connection, units: list[Planned]) -> dict[str, Presence]:
    """Each unit's rows in the committed database: all of them, none, or some (never allowed)."""
    with observer.cursor() as cur:
        cur.execute(
            "SELECT uuid::text, verification_code, completed_at IS NOT NULL FROM user_sessions"
        )
        sessions = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        cur.execute("SELECT session_uuid::text, storage_key FROM uploaded_files")
        stored: dict[str, set[str]] = {}
        for session_uuid, key in cur.fetchall():
            stored.setdefault(session_uuid, set()).add(key)
    found = {}
    for unit in units:
        session = sessions.get(unit.session_uuid)
        keys = stored.get(unit.session_uuid, set())
        if session == (unit.code, True) and keys == set(unit.storage_keys):
            found[unit.session_uuid] = Presence.WHOLE
        elif session is None and not keys:
            found[unit.session_uuid] = Presence.ABSENT
        else:
            found[unit.session_uuid] = Presence.PARTIAL
    return found


def counts(observer: psycopg2.extensions.connection) -> tuple[int, int]:
    with observer.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM user_sessions), (SELECT count(*) FROM uploaded_files)"
        )
        row = cur.fetchone()
    assert row is not None
    return row[0], row[1]


def is_a_lost_connection(error: BaseException | None) -> bool:
    return isinstance(error, psycopg2.OperationalError) and any(
        text in str(error) for text in LOST_CONNECTION
    )


class Outcome(StrEnum):
    COMMITTED = "committed"
    FAILED = "failed"
    """Raised before the commit was sent: nothing of it may be visible."""
    COMMIT_FAILED = "commit failed"
    """The commit itself raised: the server may or may not have committed (never half)."""


@dataclass(frozen=True, slots=True)
class Ran:
    planned: Planned
    worker: int
    began_after_kill: int
    outcome: Outcome
    error: BaseException | None = None


class Workload:
    """Worker threads running mixed units of work back to back until told to stop."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.kills = 0
        self.ran: list[Ran] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(index,), name=f"fault-worker-{index}")
            for index in range(workers)
        ]

    def _work(self, worker: int) -> None:
        while not self._stop.is_set():
            planned, began_after_kill, body_done = Planned(), self.kills, False
            try:
                with compat.transaction():
                    unit_calls(planned)
                    body_done = True
            except Exception as error:  # recorded; the test judges every one
                outcome = Outcome.COMMIT_FAILED if body_done else Outcome.FAILED
                ran = Ran(planned, worker, began_after_kill, outcome, error)
            else:
                ran = Ran(planned, worker, began_after_kill, Outcome.COMMITTED)
            with self._changed:
                self.ran.append(ran)
                self._changed.notify_all()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_until(self, condition: Callable[[list[Ran]], bool], what: str) -> None:
        with self._changed:
            reached = self._changed.wait_for(lambda: condition(self.ran), WAIT_SECONDS)
        assert reached, f"the workload did not reach: {what}"

    def killed(self) -> None:
        with self._changed:
            self.kills += 1

    def stop(self) -> list[Ran]:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT_SECONDS)
            assert not thread.is_alive(), f"{thread.name} is stuck"
        return list(self.ran)


def committed(ran: list[Ran]) -> int:
    return sum(r.outcome is Outcome.COMMITTED for r in ran)


def committed_at_least(target: int) -> Callable[[list[Ran]], bool]:
    return lambda ran: committed(ran) >= target


def recovered(kills: int, workers: int) -> Callable[[list[Ran]], bool]:
    def condition(ran: list[Ran]) -> bool:
        after = [r.worker for r in ran if r.began_after_kill == kills]
        return all(after.count(worker) >= UNITS_AFTER_THE_LAST_KILL for worker in range(workers))

    return condition


def next_calls_on_both_paths_succeed(session_uuid: str) -> None:
    """Right after a kill: a legacy-routed and an ORM-routed facade call, and the legacy
    function that opens a connection of its own."""
    row = user_sessions.get_session(session_uuid)  # legacy, through the seam
    assert row is not None
    assert row["uuid"] == session_uuid
    assert user_sessions.check_uuid_exists(session_uuid) is True  # the ORM
    direct = legacy.user_sessions.get_session(session_uuid)  # connect-per-call
    assert direct == row


class TestEveryBackendTerminatedMidWorkload:
    def test_loses_no_committed_unit_shows_no_half_unit_and_the_next_calls_just_work(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        committed_layer.set_flags(MIXED_FLAGS)
        workload = Workload(WORKERS)
        terminated = 0
        workload.start()
        try:
            for kill in range(KILLS):
                target = (kill + 1) * UNITS_BETWEEN_KILLS
                workload.wait_until(committed_at_least(target), f"{target} units committed")
                terminated += terminate_every_backend(observer)
                workload.killed()
                last_whole = next(r for r in workload.ran if r.outcome is Outcome.COMMITTED)
                next_calls_on_both_paths_succeed(last_whole.planned.session_uuid)
            workload.wait_until(recovered(KILLS, WORKERS), "every worker working again")
        finally:
            ran = workload.stop()

        assert terminated >= KILLS
        failures = [r for r in ran if r.outcome is not Outcome.COMMITTED]
        assert failures, "no call was in flight when the backends were terminated"
        unclear = [repr(r.error) for r in failures if not is_a_lost_connection(r.error)]
        assert unclear == []
        # No process restart: every unit begun after the last kill committed.
        assert all(r.outcome is Outcome.COMMITTED for r in ran if r.began_after_kill == KILLS)

        found = presence(observer, [r.planned for r in ran])
        for r in ran:
            expected = {
                Outcome.COMMITTED: {Presence.WHOLE},
                Outcome.FAILED: {Presence.ABSENT},
                Outcome.COMMIT_FAILED: {Presence.WHOLE, Presence.ABSENT},
            }[r.outcome]
            assert found[r.planned.session_uuid] in expected, (r.outcome, r.error)
        whole = sum(state is Presence.WHOLE for state in found.values())
        assert counts(observer) == (whole, 2 * whole)
        assert whole >= committed(ran) >= KILLS * UNITS_BETWEEN_KILLS

        assert committed_layer.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        for observation in committed_layer.observations():
            if observation.serving.error is None and observation.candidate.error is None:
                assert observation.matched, observation.summary()


class TestABackendTerminatedInsideAUnitOfWork:
    def test_the_next_call_fails_with_a_lost_connection_and_the_unit_leaves_nothing(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        for mode in ("legacy", "orm"):
            committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
            first, second = str(uuid.uuid4()), str(uuid.uuid4())
            with pytest.raises(psycopg2.OperationalError) as raised, compat.transaction():
                user_sessions.insert_session(first, "Before The Kill", None)
                terminate_every_backend(observer)
                user_sessions.insert_session(second, "After The Kill", None)
            assert is_a_lost_connection(raised.value), (mode, raised.value)
            assert legacy.user_sessions.check_uuid_exists(first) is False, mode
            assert legacy.user_sessions.check_uuid_exists(second) is False, mode
            assert committed_layer.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            assert user_sessions.insert_session(second, "Again", None)["uuid"] == second

    def test_a_commit_on_a_terminated_backend_fails_with_a_lost_connection_and_leaves_nothing(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        for mode in ("legacy", "orm"):
            committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
            planned = Planned()
            with pytest.raises(psycopg2.OperationalError) as raised, compat.transaction():
                unit_calls(planned)
                terminate_every_backend(observer)
            assert is_a_lost_connection(raised.value), (mode, raised.value)
            assert presence(observer, [planned]) == {planned.session_uuid: Presence.ABSENT}
            run_unit(planned)
            assert presence(observer, [planned]) == {planned.session_uuid: Presence.WHOLE}

    def test_a_nested_unit_raises_the_lost_connection_not_the_failed_rollback_after_it(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        session_uuid = str(uuid.uuid4())
        with (
            pytest.raises(psycopg2.OperationalError) as raised,
            compat.transaction(),
            compat.transaction(),  # nested: a savepoint
        ):
            terminate_every_backend(observer)
            user_sessions.insert_session(session_uuid, "Nested", None)  # legacy
        assert is_a_lost_connection(raised.value), repr(raised.value)
        assert "the connection was lost" in "".join(raised.value.__notes__)
        assert legacy.user_sessions.check_uuid_exists(session_uuid) is False

    def test_a_compared_call_whose_candidate_lost_the_connection_raises_that_loss(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        for mode in ("shadow", "live"):
            committed_layer.set_flags({"user_sessions.insert_session": mode})
            session_uuid = str(uuid.uuid4())
            with pytest.raises(psycopg2.OperationalError) as raised, compat.transaction():
                terminate_every_backend(observer)
                user_sessions.insert_session(session_uuid, "Compared", None)
            assert is_a_lost_connection(raised.value), (mode, raised.value)
            assert legacy.user_sessions.check_uuid_exists(session_uuid) is False, mode
        assert committed_layer.observations() == []


class TestAfterEveryIdleConnectionWasTerminated:
    def test_the_next_facade_calls_succeed_in_every_mode_without_a_restart(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        for mode in ("legacy", "shadow", "live", "orm"):
            committed_layer.set_flags(dict.fromkeys(REGISTRY, mode))
            planned = Planned()
            run_unit(planned)  # the pool now holds a connection, about to be ended
            assert terminate_every_backend(observer) >= 1
            assert user_sessions.get_session(planned.session_uuid) is not None, mode
            other = Planned()
            run_unit(other)
            assert presence(observer, [planned, other]) == {
                planned.session_uuid: Presence.WHOLE,
                other.session_uuid: Presence.WHOLE,
            }, mode
        assert [o.summary() for o in committed_layer.observations() if not o.matched] == []

    def test_the_legacy_function_that_connects_per_call_succeeds(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        planned = Planned()
        run_unit(planned)
        terminate_every_backend(observer)
        assert legacy.user_sessions.check_uuid_exists(planned.session_uuid) is True
        assert legacy.user_sessions.insert_session(str(uuid.uuid4()), "Direct", None)
        assert counts(observer) == (2, 2)
