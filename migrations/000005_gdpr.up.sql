-- The account's whole life under GDPR: sign-in waits for new versions of the
-- terms or the privacy policy to be accepted (a consent challenge, token
-- stored hashed, single use); queued mail is found by a keyed digest of its
-- recipient, so that erasing an account removes the mail still queued to it;
-- erased accounts are found by their erasure time for the retention sweep.
BEGIN;

CREATE TABLE consent_challenges (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    device_id VARCHAR(255),
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    consumed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_consent_challenges_user_id ON consent_challenges(user_id);
CREATE INDEX idx_consent_challenges_expires_at ON consent_challenges(expires_at);

ALTER TABLE mail_outbox ADD COLUMN recipient_tag VARCHAR(64);
CREATE INDEX idx_mail_outbox_recipient_tag ON mail_outbox(recipient_tag);

CREATE INDEX idx_consent_records_user_type ON consent_records(user_id, consent_type, created_at);
CREATE INDEX idx_users_deleted_at ON users(deleted_at) WHERE deleted_at IS NOT NULL;

COMMIT;
