BEGIN;

DROP INDEX IF EXISTS idx_mfa_challenges_user_created;
-- Keyed hashes cannot be turned back into bare digests: those codes stop
-- working under the earlier release, which reads every row as a digest.
ALTER TABLE recovery_codes DROP COLUMN IF EXISTS keyed;

COMMIT;
