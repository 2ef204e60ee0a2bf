-- The schema production has today, as the hand-run SQL files left it.
-- Alembic's baseline revision reproduces exactly this; a test compares the two
-- through the catalog. Timestamps are naive TIMESTAMP on purpose: that is what
-- production has, and every connection pins its session time zone to UTC.

CREATE TABLE user_sessions (
    uuid UUID PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    completed_at TIMESTAMP,
    ip_address TEXT,
    consent_user_data BOOLEAN DEFAULT FALSE,
    verification_code VARCHAR(6),
    verification_attempts INTEGER NOT NULL DEFAULT 0,
    max_verification_attempts INTEGER NOT NULL DEFAULT 3,
    verification_expires_at TIMESTAMP,
    is_email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    resend_attempts INTEGER NOT NULL DEFAULT 0,
    max_resend_attempts INTEGER NOT NULL DEFAULT 3,
    last_resend_at TIMESTAMP
);

CREATE INDEX idx_user_sessions_email ON user_sessions (email);
CREATE INDEX idx_user_sessions_created_at ON user_sessions (created_at);
CREATE INDEX idx_user_sessions_updated_at ON user_sessions (updated_at);
CREATE INDEX idx_user_sessions_completed_at ON user_sessions (completed_at);
CREATE INDEX idx_user_sessions_consent_user_data ON user_sessions (consent_user_data);
CREATE INDEX idx_user_sessions_verification_expires_at ON user_sessions (verification_expires_at);
CREATE INDEX idx_user_sessions_is_email_verified ON user_sessions (is_email_verified);
CREATE INDEX idx_user_sessions_is_email_verified_completed_at
    ON user_sessions (is_email_verified, completed_at);
CREATE INDEX idx_user_sessions_pending_verification_expiry
    ON user_sessions (verification_expires_at)
    WHERE verification_expires_at IS NOT NULL;

CREATE TABLE uploaded_files (
    id BIGSERIAL PRIMARY KEY,
    session_uuid UUID NOT NULL REFERENCES user_sessions (uuid) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    storage_key TEXT NOT NULL UNIQUE,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    content_type TEXT,
    sha256 CHAR(64) NOT NULL,
    uploaded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    deleted_at TIMESTAMP
);

CREATE INDEX idx_uploaded_files_session_uuid_uploaded_at
    ON uploaded_files (session_uuid, uploaded_at);
