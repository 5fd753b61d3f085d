-- Schema version 15: no statement looks audit rows up by event type, and
-- every audited action wrote an entry into this index
-- (see migrations/000015_drop_unread_audit_indexes.up.sql).
DROP INDEX IF EXISTS idx_audit_logs_event_type;
