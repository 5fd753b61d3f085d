-- Schema version 10: devices seen at sign-in (PostgreSQL has had the table
-- since its first migration; see migrations/000010_devices.up.sql).
CREATE TABLE device_fingerprints (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint_hash TEXT NOT NULL,
    device_name TEXT,
    is_trusted INTEGER DEFAULT 0,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    flagged_at INTEGER,
    flagged_reason TEXT,
    user_agent TEXT,
    ip_address TEXT
);
CREATE UNIQUE INDEX idx_device_fingerprints_user_fingerprint
    ON device_fingerprints(user_id, fingerprint_hash);
