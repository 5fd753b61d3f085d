-- Schema version 14: the fingerprint of each key the stored data depends on
-- (see migrations/000014_key_checks.up.sql).
CREATE TABLE key_checks (
    purpose TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
