"""Service layer: whether the data layer can reach its database, for health checks."""

from __future__ import annotations

from typing import Final

import psycopg2
import sqlalchemy as sa

from compat import user_sessions

__all__ = ["HealthService"]

# A uuid no session has: the check is one indexed point read, whatever the table's size.
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"


class HealthService:
    """Answers health checks with one cheap facade read."""

    def database_answers(self) -> bool:
        """True when a facade read reached PostgreSQL and came back."""
        try:
            user_sessions.check_uuid_exists(_NIL_UUID)
        except (psycopg2.Error, sa.exc.SQLAlchemyError):
            return False
        return True
