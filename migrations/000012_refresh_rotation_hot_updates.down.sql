BEGIN;

ALTER TABLE sessions RESET (fillfactor);
ALTER TABLE refresh_tokens RESET (fillfactor);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_token_hash ON refresh_tokens(token_hash) WHERE revoked_at IS NULL;

COMMIT;
