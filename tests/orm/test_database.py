"""orm.database as standalone repositories use it: the lazily built engine and session factory."""

from __future__ import annotations

import threading

import pytest

from orm.database import dispose_engine, get_engine, get_session_factory


@pytest.mark.usefixtures("standalone")
class TestGetSessionFactory:
    def test_builds_the_engine_on_first_use_without_deadlocking(self) -> None:
        """The factory builds the engine while it holds the module's lock: the lock must re-enter.

        Run in a thread so that a regression fails here instead of hanging the run.
        """
        dispose_engine()
        worker = threading.Thread(target=get_session_factory, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "get_session_factory() deadlocked building the engine"

    def test_binds_its_sessions_to_the_process_engine(self) -> None:
        assert get_session_factory().kw["bind"] is get_engine()
