-- Security follow-up to the initial schema:
-- * every token is stored only as a SHA-256 digest (hex, 64 characters);
-- * refresh tokens belong to a session, which is their rotation family;
-- * sessions carry the authentication methods used to open them;
-- * the login lockout of an email (known or not) survives restarts.
BEGIN;

ALTER TABLE email_verification_tokens RENAME COLUMN token TO token_hash;
ALTER TABLE password_reset_tokens RENAME COLUMN token TO token_hash;
ALTER TABLE otp_codes RENAME COLUMN code TO code_hash;
ALTER TABLE otp_codes ALTER COLUMN code_hash TYPE VARCHAR(64);

-- Sessions are named by id (the `sid` claim); their credentials are refresh tokens.
ALTER TABLE sessions DROP COLUMN session_token;
ALTER TABLE sessions ADD COLUMN amr VARCHAR(64) NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN revoked_reason VARCHAR(50);

ALTER TABLE refresh_tokens ADD COLUMN session_id UUID REFERENCES sessions(id) ON DELETE CASCADE;
ALTER TABLE refresh_tokens ADD COLUMN replaced_by UUID;
CREATE INDEX idx_refresh_tokens_session_id ON refresh_tokens(session_id);

-- Login lockout windows, keyed by normalized email so unknown emails lock too.
CREATE TABLE login_lockouts (
    account_key VARCHAR(255) PRIMARY KEY,
    attempts INT NOT NULL DEFAULT 0,
    failures INT NOT NULL DEFAULT 0,
    window_started_at TIMESTAMP WITH TIME ZONE,
    locked_until TIMESTAMP WITH TIME ZONE,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_login_lockouts_updated_at ON login_lockouts(updated_at);

COMMIT;
