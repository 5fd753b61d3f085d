-- The fingerprint of each key the stored data depends on (the data encryption
-- key seals outbox mail and TOTP secrets and keys the stored code digests).
-- The first instance to start records its key's; an instance configured with
-- another key refuses to start rather than seal and digest data the others
-- cannot read. The fingerprint is an HMAC under the key: it reveals nothing
-- of it.
BEGIN;
CREATE TABLE IF NOT EXISTS key_checks (
    purpose TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMIT;
