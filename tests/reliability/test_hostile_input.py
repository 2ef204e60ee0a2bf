"""Hostile arguments through every facade function: refused alike before any SQL, or served alike.

For each function, Hypothesis draws every argument from a hostile strategy
(tests/reliability/hostile.py). The layer's own check decides which case
applies: a refused call raises the same InvalidArgument in every mode without
sending a statement, and the unit of work goes on; an accepted call runs on
both paths from the same state (compat.verify.parity.compare_paths, each path in a
rolled-back savepoint) and must give type-strictly equal results, and may fail
in the database only as both paths do, with a constraint's SQLSTATE (class
23) or an index's size limit, never with bad data (class 22) that the check
should have refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat import InvalidArgument
from compat.routing.declaration import REGISTRY
from compat.verify.parity import compare_paths
from tests.compat.calls import new_session, new_upload
from tests.compat.test_routing import facade_function
from tests.fixtures.layer import LOG, Layer
from tests.reliability.hostile import Drawn, Existing, calls

MODES = ("legacy", "shadow", "live", "orm")
EXAMPLES = 15 if settings().max_examples <= 25 else settings().max_examples
"""Per function: 360 calls in all, about 15 s, under the "ci" profile (whose 25 would double
that); a longer profile keeps its own count (``--hypothesis-profile=deep``: 500 per function)."""

SERVER_REFUSALS = (psycopg2.IntegrityError, psycopg2.errors.ProgramLimitExceeded)
"""What the server alone may refuse of an accepted argument, alike on both paths: a constraint
(a duplicate, a missing row), or an email too long for its index (54000; how long is too long
depends on how well PostgreSQL compresses it, so no check before SQL can say, and legacy code
got the same error)."""

DIGEST = (
    "SELECT (SELECT count(*) || ':' || coalesce(md5(string_agg(s::text, '|' ORDER BY uuid)), '') "
    "FROM user_sessions s), (SELECT count(*) || ':' || "
    "coalesce(md5(string_agg(f::text, '|' ORDER BY id)), '') FROM uploaded_files f)"
)


def digest(layer: Layer) -> tuple[Any, ...]:
    """Every row of both data tables, as seen inside the test's transaction, in two hashes."""
    assert layer.unit is not None
    row = layer.unit.connection.exec_driver_sql(DIGEST).one()
    return tuple(row)


def arrange(layer: Layer) -> Existing:
    assert layer.unit is not None
    conn = layer.unit.dbapi_connection
    email = "Hostile.Input@Example.com"
    session_uuid = new_session(conn, name="Hostile Input", email=email, code="246810")
    return Existing(session_uuid, new_upload(conn, session_uuid), email)


def refused_alike_in_every_mode(layer: Layer, key: str, call: Drawn) -> None:
    before = digest(layer)
    messages = set()
    for mode in MODES:
        layer.set_flags({key: mode})
        layer.forget_statements()
        with pytest.raises(InvalidArgument) as raised:
            facade_function(key)(*call.args, **call.kwargs)
        assert LOG.statements == [], f"{mode}: a refused call sent SQL"
        assert raised.value.function == key
        messages.add(str(raised.value))
    assert len(messages) == 1, messages
    assert layer.unit is not None
    layer.unit.check_usable()  # the transaction is not aborted: it still runs statements
    assert digest(layer) == before


def served_alike_by_both_paths(layer: Layer, key: str, call: Drawn) -> None:
    assert layer.unit is not None
    comparison = compare_paths(key, call.args, call.kwargs, unit=layer.unit)
    assert comparison.matched, comparison.report()
    for outcome in (comparison.legacy, comparison.orm):
        if outcome.error is not None:
            assert isinstance(outcome.error, SERVER_REFUSALS), outcome.error_text
    layer.unit.check_usable()


@pytest.mark.parametrize("key", sorted(REGISTRY))
class TestHostileArguments:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def test_are_refused_alike_before_any_sql_or_served_alike_by_both_paths(
        self, layer: Layer, key: str, data: st.DataObject
    ) -> None:
        assert layer.unit is not None
        with layer.unit.rolled_back_savepoint():
            call = data.draw(calls(key, arrange(layer)), label=key)
            try:
                REGISTRY[key].validate(call.args, call.kwargs)
            except InvalidArgument:
                refused_alike_in_every_mode(layer, key, call)
            else:
                served_alike_by_both_paths(layer, key, call)


def offset(**parts: float) -> timezone:
    return timezone(timedelta(**parts))


class TestAwareDatetimesPostgresqlCannotTakeBack:
    """Found by the property above: each reached the server, or stored a row no one could read."""

    @pytest.mark.parametrize(
        "moment",
        [
            datetime(2000, 1, 1, tzinfo=offset(microseconds=1)),
            datetime(2000, 1, 1, tzinfo=offset(hours=16)),
            datetime(2000, 1, 1, tzinfo=offset(hours=-23, minutes=-59)),
            datetime(1, 1, 1, tzinfo=offset(hours=14)),
            datetime(9999, 12, 31, 23, tzinfo=offset(hours=-14)),
        ],
        ids=["a fraction of a second", "16 hours", "minus 23:59", "year 0 in UTC", "year 10000"],
    )
    def test_are_refused_in_every_mode_before_any_sql(self, layer: Layer, moment: datetime) -> None:
        key = "email_verification.set_verification_code"
        call = Drawn((arrange(layer).session_uuid, "123456", moment), {})
        refused_alike_in_every_mode(layer, key, call)
        with pytest.raises(InvalidArgument, match="argument 'created_after' "):
            facade_function("user_sessions.list_sessions")(created_after=moment)

    @pytest.mark.parametrize(
        "moment",
        [
            datetime(2000, 1, 1, tzinfo=offset(hours=15, minutes=59, seconds=59)),
            datetime(1900, 1, 1, tzinfo=offset(minutes=19, seconds=32)),  # Amsterdam's old LMT
            datetime(1, 1, 1, 14, tzinfo=offset(hours=14)),
        ],
        ids=["15:59:59", "seconds", "the first instant in UTC"],
    )
    def test_at_the_edge_are_stored_alike_by_both_paths(
        self, layer: Layer, moment: datetime
    ) -> None:
        key = "email_verification.set_verification_code"
        served_alike_by_both_paths(
            layer, key, Drawn((arrange(layer).session_uuid, "123456", moment), {})
        )
