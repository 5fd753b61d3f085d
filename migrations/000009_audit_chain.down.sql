BEGIN;

DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs;
DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_no_truncate();
DROP FUNCTION IF EXISTS audit_logs_append_only();
DROP TABLE IF EXISTS audit_chain;
DROP INDEX IF EXISTS idx_audit_logs_user_seq;
DROP INDEX IF EXISTS idx_audit_logs_seq;
ALTER TABLE audit_logs
    DROP COLUMN IF EXISTS client_digest,
    DROP COLUMN IF EXISTS client_salt,
    DROP COLUMN IF EXISTS row_hash,
    DROP COLUMN IF EXISTS prev_hash,
    DROP COLUMN IF EXISTS seq;
UPDATE audit_logs SET user_id = NULL
WHERE user_id IS NOT NULL AND user_id NOT IN (SELECT id FROM users);
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE SET NULL;

COMMIT;
