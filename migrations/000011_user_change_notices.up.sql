BEGIN;

-- Every change to an account row is announced on the channel
-- `suma_auth_user_changed` (payload: the user's id), so that each instance
-- forgets its cached copy of that user as soon as the change commits
-- (NOTIFY is delivered at commit, and not at all on rollback).
CREATE OR REPLACE FUNCTION suma_auth_notify_user_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('suma_auth_user_changed', OLD.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS users_change_notice ON users;
CREATE TRIGGER users_change_notice
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION suma_auth_notify_user_change();

COMMIT;
