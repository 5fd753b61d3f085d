-- A statement that writes on a request's behalf can carry the request's
-- deadline: `suma_auth_in_time(deadline)` is true while the database's clock
-- is before `deadline` (or when there is none) and raises `query_canceled`
-- after it, which aborts the whole statement. A refresh whose request was
-- answered 503 at its deadline (its statement waited on a row lock, or the
-- database stalled) must not spend the token the client still holds: the
-- rotation calls it in the condition on the rows its locking steps
-- produced, so it runs once those locks are held, and nothing commits when
-- it comes too late. It is VOLATILE, so it is never evaluated once in
-- advance as a constant.
BEGIN;

CREATE OR REPLACE FUNCTION suma_auth_in_time(deadline timestamptz)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
        RAISE EXCEPTION USING
            ERRCODE = 'query_canceled',
            MESSAGE = 'the request''s deadline passed before this statement finished';
    END IF;
    RETURN true;
END;
$$;

COMMIT;
