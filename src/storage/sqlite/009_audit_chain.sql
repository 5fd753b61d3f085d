-- The audit trail becomes a hash chain (docs/audit.md; mirrors PostgreSQL
-- migration 000009). The table is rebuilt without its foreign key (the user
-- id stays as a pseudonymous id after the account row is gone); rows from
-- before are numbered, not chained, and sit at or below the first anchor.
CREATE TABLE audit_logs_chained (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    user_id TEXT,
    event_type TEXT NOT NULL,
    event_status TEXT NOT NULL,
    ip_address TEXT,
    user_agent TEXT,
    client_salt TEXT,
    client_digest TEXT,
    metadata TEXT,
    created_at INTEGER NOT NULL,
    prev_hash TEXT,
    row_hash TEXT
);
INSERT INTO audit_logs_chained (id, seq, user_id, event_type, event_status, ip_address,
    user_agent, metadata, created_at)
SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, rowid), user_id, event_type, event_status,
    ip_address, user_agent, metadata, created_at
FROM audit_logs;
DROP TABLE audit_logs;
ALTER TABLE audit_logs_chained RENAME TO audit_logs;
CREATE INDEX idx_audit_logs_user_id ON audit_logs(user_id, seq);
CREATE INDEX idx_audit_logs_event_type ON audit_logs(event_type);
CREATE INDEX idx_audit_logs_created_at ON audit_logs(created_at);

CREATE TABLE audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    anchor_seq INTEGER NOT NULL,
    anchor_hash TEXT NOT NULL
);
INSERT INTO audit_chain (id, head_seq, head_hash, anchor_seq, anchor_hash)
SELECT 1, COUNT(*), '0000000000000000000000000000000000000000000000000000000000000000',
    COUNT(*), '0000000000000000000000000000000000000000000000000000000000000000'
FROM audit_logs;

-- Append-only: an UPDATE may only clear ip_address, user_agent and
-- client_salt together; a DELETE may only remove rows at or below the anchor.
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
WHEN NEW.id IS NOT OLD.id OR NEW.seq IS NOT OLD.seq OR NEW.prev_hash IS NOT OLD.prev_hash
    OR NEW.row_hash IS NOT OLD.row_hash OR NEW.user_id IS NOT OLD.user_id
    OR NEW.event_type IS NOT OLD.event_type OR NEW.event_status IS NOT OLD.event_status
    OR NEW.metadata IS NOT OLD.metadata OR NEW.created_at IS NOT OLD.created_at
    OR NEW.client_digest IS NOT OLD.client_digest
    OR ((NEW.ip_address IS NOT OLD.ip_address OR NEW.user_agent IS NOT OLD.user_agent
            OR NEW.client_salt IS NOT OLD.client_salt)
        AND NOT (NEW.ip_address IS NULL AND NEW.user_agent IS NULL AND NEW.client_salt IS NULL))
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only');
END;

CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
WHEN OLD.seq > (SELECT anchor_seq FROM audit_chain WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit_logs: rows above the anchor may not be deleted');
END;
