-- Second factors limited per account, and keyed code hashes at rest.
-- * recovery codes are stored as HMAC-SHA-256 under a server key; `keyed`
--   marks the rows already in that form (earlier rows hold a bare SHA-256
--   digest until the server converts them, which it does on its own);
-- * login challenges are counted per account per hour: an index for that.
BEGIN;

ALTER TABLE recovery_codes ADD COLUMN keyed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX idx_mfa_challenges_user_created ON mfa_challenges(user_id, created_at);

COMMIT;
