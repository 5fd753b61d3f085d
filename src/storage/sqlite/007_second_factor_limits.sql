-- Schema version 7: second factors limited per account, keyed code hashes
-- (see migrations/000007_second_factor_limits.up.sql).
ALTER TABLE recovery_codes ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_mfa_challenges_user_created ON mfa_challenges(user_id, created_at);
