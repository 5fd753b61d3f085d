-- Rate-limit windows in the database, shared by every instance while Redis
-- is unreachable (or not configured): one row per route and client with the
-- times (unix ms) of the requests admitted in its sliding window. UNLOGGED:
-- a window lasts minutes, so a crash may forget one rather than pay WAL.
BEGIN;

CREATE UNLOGGED TABLE rate_windows (
    key VARCHAR(200) PRIMARY KEY,
    hits BIGINT[] NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX idx_rate_windows_expires_at ON rate_windows(expires_at);

COMMIT;
