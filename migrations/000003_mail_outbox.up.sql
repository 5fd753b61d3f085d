-- The durable mail outbox: every mail is queued here and delivered by a
-- background worker with retries. Payloads are sealed (AES-256-GCM) because
-- they carry links and codes, and are cleared once the mail is sent or dead.
BEGIN;

CREATE TABLE mail_outbox (
    id UUID PRIMARY KEY,
    template VARCHAR(50) NOT NULL,
    payload TEXT NOT NULL,
    status VARCHAR(10) NOT NULL DEFAULT 'pending', -- 'pending', 'sent', 'dead'
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL,
    leased_until TIMESTAMP WITH TIME ZONE,
    last_error TEXT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    sent_at TIMESTAMP WITH TIME ZONE
);
CREATE INDEX idx_mail_outbox_due ON mail_outbox(next_attempt_at) WHERE status = 'pending';
CREATE INDEX idx_mail_outbox_created_at ON mail_outbox(created_at);

COMMIT;
