BEGIN;

DROP TRIGGER IF EXISTS users_change_notice ON users;
DROP FUNCTION IF EXISTS suma_auth_notify_user_change();

COMMIT;
