-- Schema version 5: consent challenges, the outbox's recipient tag, and the
-- indexes of erasure and retention (see migrations/000005_gdpr.up.sql).
-- Embedded versions follow the PostgreSQL migration numbers.
CREATE TABLE consent_challenges (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    device_id TEXT,
    expires_at INTEGER NOT NULL,
    consumed_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX idx_consent_challenges_user_id ON consent_challenges(user_id);
CREATE INDEX idx_consent_challenges_expires_at ON consent_challenges(expires_at);

ALTER TABLE mail_outbox ADD COLUMN recipient_tag TEXT;
CREATE INDEX idx_mail_outbox_recipient_tag ON mail_outbox(recipient_tag);

CREATE INDEX idx_consent_records_user_type ON consent_records(user_id, consent_type, created_at);
CREATE INDEX idx_users_deleted_at ON users(deleted_at);
