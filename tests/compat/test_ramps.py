"""Percentage ramps: a share of sessions (or of calls) gets the mode, the rest the stage before;
a session keeps its side while the percentage stands, and a higher one only adds sessions."""

from __future__ import annotations

import random
import uuid

import psycopg2.extensions

from compat import user_sessions
from compat.routing.declaration import REGISTRY
from compat.routing.dispatch import _in_ramp
from compat.shadow.observation import Side
from tests.compat.calls import new_session
from tests.compat.test_cli import Cli, by_key, table
from tests.compat.test_flags import flip
from tests.fixtures.layer import Layer

KEY = "user_sessions.get_session"


def sessions(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


class TestARamp:
    def test_puts_about_its_share_of_sessions_in(self) -> None:
        spec = REGISTRY[KEY]
        inside = [s for s in sessions(4000) if _in_ramp(spec, 10.0, (s,), {})]
        assert 300 <= len(inside) <= 500  # 10% of 4000, with room for the hash

    def test_keeps_a_session_on_its_side_whatever_the_spelling_and_the_argument_form(
        self,
    ) -> None:
        spec = REGISTRY[KEY]
        for session in sessions(200):
            forms = [
                ((session,), {}),
                ((session.upper(),), {}),
                ((session.replace("-", ""),), {}),
                ((), {"session_uuid": f"{{{session}}}"}),
            ]
            assert len({_in_ramp(spec, 25.0, args, kwargs) for args, kwargs in forms}) == 1

    def test_at_a_higher_percentage_only_adds_sessions(self) -> None:
        spec = REGISTRY[KEY]
        population = sessions(2000)
        at = {p: {s for s in population if _in_ramp(spec, p, (s,), {})} for p in (5, 20, 60)}
        assert at[5] <= at[20] <= at[60]
        assert len(at[5]) < len(at[20]) < len(at[60])

    def test_chooses_per_call_for_a_function_without_a_session(self) -> None:
        spec = REGISTRY["user_sessions.count_sessions"]
        assert spec.sticky is None
        inside = sum(_in_ramp(spec, 30.0, (), {}) for _ in range(4000))
        assert 1000 <= inside <= 1400


class TestARampedFlag:
    def test_serves_the_mode_inside_the_ramp_and_the_stage_before_outside(
        self, committed_layer: Layer, observer: psycopg2.extensions.connection
    ) -> None:
        with observer.cursor() as cur:
            cur.execute(
                "INSERT INTO compat_flags (key, mode, sample_rate, percent, updated_by) "
                "VALUES (%s, 'live', 1, 50, 'test')",
                (KEY,),
            )
        committed_layer.runtime.flags.refresh()
        spec = REGISTRY[KEY]
        made = [new_session(observer) for _ in range(40)]
        for session in made:
            user_sessions.get_session(session)
        observations = {o.serving.value["uuid"]: o for o in committed_layer.observations()}
        for session in made:
            expected = Side.ORM if _in_ramp(spec, 50.0, (session,), {}) else Side.LEGACY
            assert observations[session].serving.side is expected, session
            assert observations[session].mode.value == (
                "live" if expected is Side.ORM else "shadow"
            )

    def test_is_set_listed_and_audited_by_the_command_line(
        self, cli: Cli, database: str, observer: psycopg2.extensions.connection
    ) -> None:
        flip(observer, KEY, "shadow")
        ran = cli("flags", "set", KEY, "live", "--percent", "10", "--reason", "ramp", "--force")
        assert ran.code == 0, ran.err
        assert ran.out.startswith(f"{KEY}: shadow -> live (sample 1, ramp 10%)")
        assert by_key(table(cli("flags", "list").out))[KEY] == ["live", "table", "1", "10%"]
        assert table(cli("flags", "history", KEY).out)[0][2] == "shadow -> live 10%"

    def test_outside_zero_to_a_hundred_is_refused_with_status_2(
        self, cli: Cli, database: str
    ) -> None:
        for percent in ("0", "101", "ten"):
            ran = cli("flags", "set", KEY, "shadow", "--percent", percent, "--reason", "r")
            assert ran.code == 2, (percent, ran.err)
