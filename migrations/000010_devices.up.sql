-- Devices seen at sign-in (`device_fingerprints`, created by 000001):
-- * the user agent and IP address of the latest sign-in from the device;
-- * one row per user and fingerprint (a keyed hash of the client's device
--   id and user-agent family), so concurrent sign-ins cannot record a
--   device twice.
BEGIN;

ALTER TABLE device_fingerprints ADD COLUMN user_agent TEXT;
ALTER TABLE device_fingerprints ADD COLUMN ip_address INET;
DELETE FROM device_fingerprints a USING device_fingerprints b
    WHERE a.user_id = b.user_id AND a.fingerprint_hash = b.fingerprint_hash AND a.ctid < b.ctid;
CREATE UNIQUE INDEX idx_device_fingerprints_user_fingerprint
    ON device_fingerprints(user_id, fingerprint_hash);

COMMIT;
