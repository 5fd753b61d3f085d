-- Every audited action (each sign-in among them) inserts an audit_logs row,
-- and each index of the table takes an entry for it. Three were written on
-- every insert and never read:
-- - idx_audit_logs_metadata, a GIN index over the metadata: no statement
--   searches the metadata, and a GIN index's pending list is merged by
--   whichever insert finds it full (a sign-in, then, waits for it);
-- - idx_audit_logs_event_type: no statement looks rows up by event type (the
--   runbooks' counts by type are bounded by time, which
--   idx_audit_logs_created_at serves);
-- - idx_audit_logs_user_id: idx_audit_logs_user_seq (user_id, seq DESC)
--   serves every lookup by user.
BEGIN;

DROP INDEX IF EXISTS idx_audit_logs_metadata;
DROP INDEX IF EXISTS idx_audit_logs_event_type;
DROP INDEX IF EXISTS idx_audit_logs_user_id;

COMMIT;
