BEGIN;

DROP INDEX IF EXISTS idx_users_deleted_at;
DROP INDEX IF EXISTS idx_consent_records_user_type;
DROP INDEX IF EXISTS idx_mail_outbox_recipient_tag;
ALTER TABLE mail_outbox DROP COLUMN IF EXISTS recipient_tag;
DROP TABLE IF EXISTS consent_challenges;

COMMIT;
