BEGIN;

DROP FUNCTION IF EXISTS suma_auth_in_time(timestamptz);

COMMIT;
