-- Every sign-in and every refresh inserts a refresh_tokens row, and each
-- index of the table takes an entry for it. No statement looks refresh
-- tokens up by device_id, so idx_refresh_tokens_device_id was written on
-- every insert and never read.
BEGIN;

DROP INDEX IF EXISTS idx_refresh_tokens_device_id;

COMMIT;
