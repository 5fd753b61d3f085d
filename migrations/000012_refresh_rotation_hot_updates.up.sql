-- A refresh rotation spends a token (UPDATE of revoked_at, last_used_at,
-- replaced_by) and records the session's activity (UPDATE of
-- last_activity_at). PostgreSQL can write such updates without touching any
-- index (HOT) when no indexed column changes and the row's page has room.
--
-- idx_refresh_tokens_token_hash duplicated the index of the UNIQUE
-- constraint on token_hash, and its predicate read revoked_at: every spend
-- wrote a new entry into each of the table's indexes. The unique index
-- serves every lookup by token_hash (spent tokens included).
BEGIN;

DROP INDEX IF EXISTS idx_refresh_tokens_token_hash;

-- Room on each page for the updated versions of its rows.
ALTER TABLE refresh_tokens SET (fillfactor = 80);
ALTER TABLE sessions SET (fillfactor = 80);

COMMIT;
