-- The audit trail becomes a hash chain (docs/audit.md): every row gets a
-- sequence number, the previous row's hash and its own; the IP address and
-- user agent enter the hash only through a salted digest, so erasure can
-- clear them (and the salt) without breaking the chain. `audit_chain` holds
-- the head (locked by every append) and the anchor (the last pruned row).
-- Rows written before this migration are numbered, not chained: they sit at
-- or below the first anchor and verification starts after them.
-- Triggers make the table append-only: an UPDATE may only clear ip_address,
-- user_agent and client_salt together; a DELETE may only remove rows at or
-- below the anchor; TRUNCATE is refused.
BEGIN;

-- The user id stays as a pseudonymous id after the account row is gone.
ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS audit_logs_user_id_fkey;

ALTER TABLE audit_logs
    ADD COLUMN seq BIGINT,
    ADD COLUMN prev_hash VARCHAR(64),
    ADD COLUMN row_hash VARCHAR(64),
    ADD COLUMN client_salt VARCHAR(32),
    ADD COLUMN client_digest VARCHAR(64);

UPDATE audit_logs a SET seq = n.seq
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS seq FROM audit_logs) n
WHERE a.id = n.id;

ALTER TABLE audit_logs ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX idx_audit_logs_seq ON audit_logs(seq);
CREATE INDEX idx_audit_logs_user_seq ON audit_logs(user_id, seq DESC);

CREATE TABLE audit_chain (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    head_seq BIGINT NOT NULL,
    head_hash VARCHAR(64) NOT NULL,
    anchor_seq BIGINT NOT NULL,
    anchor_hash VARCHAR(64) NOT NULL
);
INSERT INTO audit_chain (id, head_seq, head_hash, anchor_seq, anchor_hash)
SELECT 1, COUNT(*), repeat('0', 64), COUNT(*), repeat('0', 64) FROM audit_logs;

CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id IS DISTINCT FROM OLD.id
            OR NEW.seq IS DISTINCT FROM OLD.seq
            OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash
            OR NEW.row_hash IS DISTINCT FROM OLD.row_hash
            OR NEW.user_id IS DISTINCT FROM OLD.user_id
            OR NEW.event_type IS DISTINCT FROM OLD.event_type
            OR NEW.event_status IS DISTINCT FROM OLD.event_status
            OR NEW.metadata IS DISTINCT FROM OLD.metadata
            OR NEW.created_at IS DISTINCT FROM OLD.created_at
            OR NEW.client_digest IS DISTINCT FROM OLD.client_digest
        THEN
            RAISE EXCEPTION 'audit_logs is append-only: row % may not be changed', OLD.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        -- Erasure: ip_address, user_agent and client_salt are cleared together.
        IF (NEW.ip_address, NEW.user_agent, NEW.client_salt)
                IS DISTINCT FROM (OLD.ip_address, OLD.user_agent, OLD.client_salt)
            AND NOT (NEW.ip_address IS NULL AND NEW.user_agent IS NULL AND NEW.client_salt IS NULL)
        THEN
            RAISE EXCEPTION 'audit_logs: row % may only have ip_address, user_agent and client_salt cleared together', OLD.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.seq > (SELECT anchor_seq FROM audit_chain WHERE id = 1) THEN
        RAISE EXCEPTION 'audit_logs: row % is above the anchor and may not be deleted', OLD.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();

CREATE FUNCTION audit_logs_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only: TRUNCATE is refused'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_no_truncate();

COMMIT;
