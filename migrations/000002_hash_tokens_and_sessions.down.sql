BEGIN;

DROP TABLE IF EXISTS login_lockouts;

DROP INDEX IF EXISTS idx_refresh_tokens_session_id;
ALTER TABLE refresh_tokens DROP COLUMN IF EXISTS replaced_by;
ALTER TABLE refresh_tokens DROP COLUMN IF EXISTS session_id;

ALTER TABLE sessions DROP COLUMN IF EXISTS revoked_reason;
ALTER TABLE sessions DROP COLUMN IF EXISTS amr;
-- Digests cannot be turned back into tokens: live sessions end with this step.
DELETE FROM sessions;
ALTER TABLE sessions ADD COLUMN session_token VARCHAR(128) UNIQUE;

ALTER TABLE otp_codes ALTER COLUMN code_hash TYPE VARCHAR(64);
ALTER TABLE otp_codes RENAME COLUMN code_hash TO code;
ALTER TABLE password_reset_tokens RENAME COLUMN token_hash TO token;
ALTER TABLE email_verification_tokens RENAME COLUMN token_hash TO token;

COMMIT;
