"""ORM side: the models, matching the migrated schema (legacy/schema.sql, then revisions)."""

from __future__ import annotations

import uuid as uuid_
from datetime import datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "CompatCacheAudit",
    "CompatCacheSetting",
    "CompatFlag",
    "CompatFlagAudit",
    "CompatObservation",
    "CompatObservationDrop",
    "UploadedFile",
    "UserSession",
]

# PostgreSQL's own default names, which the hand-run SQL got, plus the
# idx_<table>_<columns> names it gave its indexes.
NAMING_CONVENTION = {
    "ix": "idx_%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}

_NOW = text("CURRENT_TIMESTAMP")


class Base(DeclarativeBase):
    """Declarative base whose metadata names constraints as the legacy schema does."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserSession(Base):
    """A chat session and its email-verification state."""

    __tablename__ = "user_sessions"

    uuid: Mapped[uuid_.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text, index=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, server_default=_NOW, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, server_default=_NOW, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    ip_address: Mapped[str | None] = mapped_column(Text)
    consent_user_data: Mapped[bool | None] = mapped_column(
        Boolean, server_default=false(), index=True
    )
    verification_code: Mapped[str | None] = mapped_column(String(6))
    verification_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_verification_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    verification_expires_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    is_email_verified: Mapped[bool] = mapped_column(Boolean, server_default=false(), index=True)
    resend_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_resend_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    last_resend_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index(
            "idx_user_sessions_is_email_verified_completed_at", "is_email_verified", "completed_at"
        ),
        Index(
            "idx_user_sessions_pending_verification_expiry",
            "verification_expires_at",
            postgresql_where=text("verification_expires_at IS NOT NULL"),
        ),
        # Revision 0003: serves find_sessions_by_email's lower(email) = lower(:email).
        Index("idx_user_sessions_lower_email", text("lower(email)")),
    )


class UploadedFile(Base):
    """Metadata of one file a session uploaded to object storage; soft-deleted via deleted_at."""

    __tablename__ = "uploaded_files"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    session_uuid: Mapped[uuid_.UUID] = mapped_column(
        Uuid, ForeignKey("user_sessions.uuid", ondelete="CASCADE")
    )
    filename: Mapped[str] = mapped_column(Text)
    storage_key: Mapped[str] = mapped_column(Text, unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(CHAR(64))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, server_default=_NOW)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
        Index("idx_uploaded_files_session_uuid_uploaded_at", "session_uuid", "uploaded_at"),
    )


# -- The migration layer's own tables (compat/ reads and writes them) --------


class CompatFlag(Base):
    """The shared flag of one facade function, set through `compat flags set`."""

    __tablename__ = "compat_flags"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    mode: Mapped[str] = mapped_column(Text)
    sample_rate: Mapped[float] = mapped_column(Double, server_default=text("1"))
    updated_by: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=_NOW)
    percent: Mapped[float] = mapped_column(Double, server_default=text("100"))
    """The share of calls (by session where the function has one) the mode serves."""

    __table_args__ = (
        CheckConstraint("mode IN ('legacy', 'shadow', 'live', 'orm')", name="mode"),
        CheckConstraint("sample_rate >= 0 AND sample_rate <= 1", name="sample_rate"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent"),
    )


class CompatFlagAudit(Base):
    """One flag change: who, when, from what to what, and why. Append-only (a trigger says so)."""

    __tablename__ = "compat_flag_audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    old_mode: Mapped[str | None] = mapped_column(Text)
    new_mode: Mapped[str] = mapped_column(Text)
    old_sample_rate: Mapped[float | None] = mapped_column(Double)
    new_sample_rate: Mapped[float] = mapped_column(Double)
    changed_by: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime, server_default=_NOW)
    old_percent: Mapped[float | None] = mapped_column(Double)
    new_percent: Mapped[float | None] = mapped_column(Double)

    __table_args__ = (
        CheckConstraint("btrim(reason) <> ''", name="reason"),
        Index("idx_compat_flag_audit_key_changed_at", "key", "changed_at"),
    )


class CompatObservation(Base):
    """One compared facade call, as the table publisher records it (values redacted)."""

    __tablename__ = "compat_observations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime, server_default=_NOW)
    key: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(Text)
    serving: Mapped[str] = mapped_column(Text)
    matched: Mapped[bool] = mapped_column(Boolean)
    legacy_ms: Mapped[float | None] = mapped_column(Double)
    orm_ms: Mapped[float | None] = mapped_column(Double)
    candidate_error: Mapped[str | None] = mapped_column(Text)
    diff: Mapped[str | None] = mapped_column(Text)
    fault: Mapped[str | None] = mapped_column(Text)
    """The side whose connection failed (then nothing was compared), else NULL."""

    __table_args__ = (
        CheckConstraint("fault IN ('legacy', 'orm')", name="fault"),
        Index("idx_compat_observations_key_observed_at", "key", "observed_at"),
    )


class CompatObservationDrop(Base):
    """How many observations of one key a process made but could not store, and why."""

    __tablename__ = "compat_observation_drops"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, server_default=_NOW)
    key: Mapped[str] = mapped_column(Text)
    dropped: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("dropped > 0", name="dropped"),
        Index("idx_compat_observation_drops_key_recorded_at", "key", "recorded_at"),
    )


class CompatObservationRollup(Base):
    """Every observation of one key in one mode in one minute, counted (the only record of matches).

    Written by a trigger on compat_observations (migration 0006); each side's
    time is counted in the buckets of compat_call_seconds (0.5 ms .. 10 s, and
    one above).
    """

    __tablename__ = "compat_observation_rollups"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    mode: Mapped[str] = mapped_column(Text, primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    compared: Mapped[int] = mapped_column(BigInteger)
    mismatches: Mapped[int] = mapped_column(BigInteger)
    candidate_errors: Mapped[int] = mapped_column(BigInteger)
    legacy_ms_buckets: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    orm_ms_buckets: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))


class CompatServedRollup(Base):
    """The calls one side served for one key in one mode in one minute, and how many raised.

    Added to by every process (compat/shadow/served.py; migration 0007);
    ``errors`` are the calls' own failures, ``faults`` failures of the
    connection or the server. The orm guard's evidence, where nothing is compared.
    """

    __tablename__ = "compat_served_rollups"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    mode: Mapped[str] = mapped_column(Text, primary_key=True)
    side: Mapped[str] = mapped_column(Text, primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    faults: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("side IN ('legacy', 'orm')", name="side"),
        CheckConstraint("calls >= errors + faults AND errors >= 0 AND faults >= 0", name="counts"),
    )


class CompatCacheSetting(Base):
    """A read function that is cached, and for how long; set through `compat cache set`."""

    __tablename__ = "compat_cache_settings"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    ttl_seconds: Mapped[float] = mapped_column(Double)
    updated_by: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)

    __table_args__ = (
        CheckConstraint("ttl_seconds > 0 AND ttl_seconds <= 86400", name="ttl_seconds"),
    )


class CompatCacheAudit(Base):
    """One cache setting change (a TTL of None: off). Append-only (a trigger says so)."""

    __tablename__ = "compat_cache_audit"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    old_ttl_seconds: Mapped[float | None] = mapped_column(Double)
    new_ttl_seconds: Mapped[float | None] = mapped_column(Double)
    changed_by: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)

    __table_args__ = (
        CheckConstraint("btrim(reason) <> ''", name="reason"),
        Index("idx_compat_cache_audit_key_changed_at", "key", "changed_at"),
    )
