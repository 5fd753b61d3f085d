-- Every registration inserts a users row, and each index of the table takes
-- an entry for it; an update of an indexed column (the verification sets
-- email_verified) writes an entry into every index instead of staying
-- heap-only. Three were written and never read:
-- - idx_users_email: the UNIQUE constraint's index on email serves every
--   lookup by address (all of them also ask deleted_at IS NULL, which the
--   row answers);
-- - idx_users_email_verified and idx_users_is_active: no statement looks
--   accounts up by either flag (the sweep of unverified accounts selects by
--   created_at, which idx_users_created_at serves).
BEGIN;

DROP INDEX IF EXISTS idx_users_email;
DROP INDEX IF EXISTS idx_users_email_verified;
DROP INDEX IF EXISTS idx_users_is_active;

COMMIT;
