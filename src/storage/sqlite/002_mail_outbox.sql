-- Schema version 2: the durable mail outbox (see migrations/000003_mail_outbox.up.sql).
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX idx_mail_outbox_due ON mail_outbox(status, next_attempt_at);
