BEGIN;

DROP INDEX IF EXISTS idx_device_fingerprints_user_fingerprint;
ALTER TABLE device_fingerprints DROP COLUMN IF EXISTS ip_address;
ALTER TABLE device_fingerprints DROP COLUMN IF EXISTS user_agent;

COMMIT;
