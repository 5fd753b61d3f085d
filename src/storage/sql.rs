//! SQL text that is the same in both dialects, written once. Statements use
//! `$1`-style parameters; the SQLite backend numbers them as `?1` when it
//! prepares them (see `sqlite::pool`).

use super::{
    AUDIT_COLUMNS, CHAIN_COLUMNS, CHALLENGE_COLUMNS, CONSENT_CHALLENGE_COLUMNS, CONSENT_COLUMNS,
    DEVICE_COLUMNS, MAIL_RECORD_COLUMNS, SESSION_COLUMNS, STEP_UP, USER_COLUMNS,
};

// Users.

/// A new account, unless its address is taken: $1 id, $2 email, $3 password
/// hash, $4 first name, $5 last name, $6 time.
pub const INSERT_USER: &str = "INSERT INTO users (id, email, password_hash, first_name, \
     last_name, created_at, updated_at, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6) \
     ON CONFLICT (email) DO NOTHING";

/// What a replaced registration leaves of the one before (links, consents,
/// password history): $1 user.
pub const REPLACED_REGISTRATION_ROWS: &[&str] = &[
    "DELETE FROM email_verification_tokens WHERE user_id = $1",
    "DELETE FROM consent_records WHERE user_id = $1",
    "DELETE FROM password_history WHERE user_id = $1",
];

/// $1 id, $2 user, $3 password hash, $4 time.
pub const INSERT_PASSWORD_HISTORY: &str =
    "INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES ($1, $2, $3, $4)";

/// $1 id, $2 user, $3 hash, $4 end, $5 time.
pub const INSERT_VERIFICATION_TOKEN: &str = "INSERT INTO email_verification_tokens (id, user_id, \
     token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";

/// How a one-time token is spent, in one transaction: `token` spends a live
/// one ($1 hash, $2 time) and returns its user; `then` follows for that user
/// ($1 user, $2 time). When `then` is `required` and changes no row, nothing
/// is written.
pub struct TokenSpend {
    pub token: &'static str,
    pub then: &'static str,
    pub required: bool,
}

/// An email verification: the address of a live account becomes verified.
pub const VERIFY_EMAIL: TokenSpend = TokenSpend {
    token: "UPDATE email_verification_tokens SET verified_at = $2 \
     WHERE token_hash = $1 AND verified_at IS NULL AND expires_at > $2 RETURNING user_id",
    then: "UPDATE users SET email_verified = true, updated_at = $2 \
     WHERE id = $1 AND deleted_at IS NULL",
    required: true,
};

/// A password reset: every other outstanding link of the user ends with it.
pub const USE_RESET_TOKEN: TokenSpend = TokenSpend {
    token: "UPDATE password_reset_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
    then: SUPERSEDE_RESET_TOKENS,
    required: false,
};

/// The failed-login counters of a user: $1 id.
pub const LOGIN_COUNTERS: &str =
    "SELECT failed_login_attempts, locked_until FROM users WHERE id = $1";

/// The same, locked until the transaction ends (PostgreSQL).
pub const LOGIN_COUNTERS_FOR_UPDATE: &str =
    "SELECT failed_login_attempts, locked_until FROM users WHERE id = $1 FOR UPDATE";

/// Writes the failed-login counters: $1 id, $2 failures, $3 locked until, $4 locked now.
pub const SET_LOGIN_COUNTERS: &str =
    "UPDATE users SET failed_login_attempts = $2, locked_until = $3, is_locked = $4 WHERE id = $1";

/// Whether an account may sign in: $1 id, $2 active, $3 time. An erased
/// account is left as it is.
pub const SET_USER_ACTIVE: &str =
    "UPDATE users SET is_active = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL";

// Sessions and refresh tokens.

/// A refresh token (id, spent time) with its session's columns from index 2.
/// PostgreSQL appends `FOR UPDATE OF rt, s`; SQLite's writer lock serialises.
pub const REFRESH_WITH_SESSION: &str = "SELECT rt.id, rt.revoked_at, s.id, s.user_id, s.device_id, \
     s.user_agent, s.ip_address, s.amr, s.created_at, s.last_activity_at, s.expires_at, s.invalidated_at \
     FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE rt.token_hash = $1";

/// Ends a live session: $1 id, $2 time, $3 reason.
pub const END_LIVE_SESSION: &str =
    "UPDATE sessions SET invalidated_at = $2, revoked_reason = $3 WHERE id = $1 AND invalidated_at IS NULL";

/// Ends every live session of every user: $1 time, $2 reason.
pub const END_ALL_LIVE_SESSIONS: &str =
    "UPDATE sessions SET invalidated_at = $1, revoked_reason = $2 WHERE invalidated_at IS NULL RETURNING id";

/// Revokes every unspent refresh token (their sessions have all ended): $1 time.
pub const REVOKE_ALL_UNSPENT_TOKENS: &str =
    "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL";

/// Revokes the unspent refresh tokens of a session: $1 session, $2 time.
pub const REVOKE_SESSION_TOKENS: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL";

/// Spends a refresh token: $1 id, $2 time, $3 successor.
pub const SPEND_REFRESH_TOKEN: &str =
    "UPDATE refresh_tokens SET revoked_at = $2, last_used_at = $2, replaced_by = $3 WHERE id = $1";

/// Issues the successor of a spent token: $1 id, $2 hash, $3 time, $4 spent token.
pub const ISSUE_SUCCESSOR: &str =
    "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, \
     device_id, user_agent, ip_address, expires_at, created_at, rotation_count) \
     SELECT $1, user_id, session_id, $2, device_id, user_agent, ip_address, expires_at, $3, \
     COALESCE(rotation_count, 0) + 1 FROM refresh_tokens WHERE id = $4";

/// Records activity on a session: $1 id, $2 time.
pub const SET_SESSION_ACTIVITY: &str = "UPDATE sessions SET last_activity_at = $2 WHERE id = $1";

/// Opens a session: $1 id, $2 user, $3 device, $4 user agent, $5 ip, $6 amr, $7 end, $8 time.
pub const INSERT_SESSION: &str =
    "INSERT INTO sessions (id, user_id, device_id, user_agent, ip_address, \
     amr, expires_at, created_at, last_activity_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

/// A session's first refresh token: $1 id, $2 user, $3 session, $4 hash, $5 device,
/// $6 user agent, $7 ip, $8 end, $9 time.
pub const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, \
     device_id, user_agent, ip_address, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The session of a refresh token: $1 hash.
pub const SESSION_OF_REFRESH: &str = "SELECT session_id FROM refresh_tokens WHERE token_hash = $1";

// Second factors.

/// A live login challenge: $1 token hash, $2 time, $3 attempts allowed.
pub fn find_challenge() -> String {
    format!(
        "SELECT {CHALLENGE_COLUMNS} FROM mfa_challenges \
         WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3 \
         AND methods <> '{STEP_UP}'"
    )
}

/// The newest live step-up challenge of a user: $1 user, $2 time, $3 attempts allowed.
pub fn find_step_up_challenge() -> String {
    format!(
        "SELECT {CHALLENGE_COLUMNS} FROM mfa_challenges \
         WHERE user_id = $1 AND methods = '{STEP_UP}' AND consumed_at IS NULL \
         AND expires_at > $2 AND attempts < $3 ORDER BY created_at DESC LIMIT 1"
    )
}

/// Creation times of a user's challenges: $1 user.
pub const CHALLENGE_TIMES: &str = "SELECT created_at FROM mfa_challenges WHERE user_id = $1";

/// $1 id, $2 user, $3 token hash, $4 device, $5 methods, $6 end, $7 time.
pub const INSERT_CHALLENGE: &str = "INSERT INTO mfa_challenges (id, user_id, token_hash, \
     device_id, methods, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A new email code for a challenge, unless its sends are spent: $1 id,
/// $2 code hash, $3 end, $4 sends allowed.
pub const SET_CHALLENGE_CODE: &str = "UPDATE mfa_challenges SET otp_code_hash = $2, \
     otp_expires_at = $3, otp_sends = otp_sends + 1 \
     WHERE id = $1 AND otp_sends < $4 AND consumed_at IS NULL";

/// Counts one check of a code, unless none is left: $1 id, $2 attempts allowed.
pub const RESERVE_CHALLENGE_ATTEMPT: &str = "UPDATE mfa_challenges SET attempts = attempts + 1 \
     WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL";

/// Spends a challenge: $1 id, $2 time.
pub const SPEND_CHALLENGE: &str =
    "UPDATE mfa_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL";

/// Recovery codes still in their legacy (bare digest) form, a batch: id, hash.
pub const LEGACY_RECOVERY_CODES: &str =
    "SELECT id, code_hash FROM recovery_codes WHERE keyed = FALSE LIMIT 500";

/// Converts one legacy recovery code: $1 id, $2 keyed hash.
pub const REKEY_RECOVERY_CODE: &str =
    "UPDATE recovery_codes SET code_hash = $2, keyed = TRUE WHERE id = $1 AND keyed = FALSE";

/// The second-factor columns of a user: $1 id. PostgreSQL appends `FOR UPDATE`.
pub const SECOND_FACTORS: &str = "SELECT email_otp_enabled, totp_enabled, totp_secret_sealed, \
     totp_pending_sealed, totp_last_step FROM users WHERE id = $1";

/// Writes the second-factor columns and their derived flags: $1 id, $2 email OTP,
/// $3 TOTP, $4 secret, $5 pending secret, $6 last step, $7 enabled, $8 method.
pub const SET_SECOND_FACTORS: &str = "UPDATE users SET email_otp_enabled = $2, totp_enabled = $3, \
     totp_secret_sealed = $4, totp_pending_sealed = $5, totp_last_step = $6, two_factor_enabled = $7, \
     two_factor_method = $8 WHERE id = $1";

pub const DELETE_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";

/// $1 id, $2 user, $3 keyed hash, $4 time.
pub const INSERT_RECOVERY_CODE: &str = "INSERT INTO recovery_codes (id, user_id, code_hash, \
     keyed, created_at) VALUES ($1, $2, $3, TRUE, $4)";

// One-time tokens.

/// Creation times of a user's reset tokens: $1 user.
pub const RESET_TOKEN_TIMES: &str =
    "SELECT created_at FROM password_reset_tokens WHERE user_id = $1";

/// Ends the live reset tokens of a user (a newer link replaces them): $1 user, $2 time.
pub const SUPERSEDE_RESET_TOKENS: &str =
    "UPDATE password_reset_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL";

/// Ends the live reset links of a user created no later than a new one:
/// $1 user, $2 the new link's creation time. Requests for one user commit in
/// any order, so the link created last is the one that stays, whichever
/// committed last (its mail is the last one delivered to the address).
pub const SUPERSEDE_OLDER_RESET_TOKENS: &str = "UPDATE password_reset_tokens SET used_at = $2 \
     WHERE user_id = $1 AND used_at IS NULL AND created_at <= $2";

/// The user of a live reset token: $1 hash, $2 time.
pub const PEEK_RESET_TOKEN: &str = "SELECT user_id FROM password_reset_tokens \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";

/// $1 id, $2 user, $3 hash, $4 end, $5 time. A link whose user already has
/// a newer one (created later, committed first) is stored already ended.
pub const INSERT_RESET_TOKEN: &str = "INSERT INTO password_reset_tokens (id, user_id, token_hash, \
     expires_at, created_at, used_at) VALUES ($1, $2, $3, $4, $5, \
     CASE WHEN EXISTS (SELECT 1 FROM password_reset_tokens WHERE user_id = $2 AND created_at > $5) \
     THEN $5 END)";

// Outbox.

/// Queues a mail: $1 id, $2 template, $3 payload, $4 time, $5 recipient tag.
pub const INSERT_OUTBOX: &str = "INSERT INTO mail_outbox (id, template, payload, next_attempt_at, \
     created_at, recipient_tag) VALUES ($1, $2, $3, $4, $4, $5)";

/// Dead mail that still holds its payload goes back to the queue, due now:
/// $1 time.
pub const RETRY_DEAD_MAIL: &str = "UPDATE mail_outbox SET status = 'pending', attempts = 0, \
     next_attempt_at = $1, leased_until = NULL WHERE status = 'dead' AND payload <> ''";

// Consents.

/// Appends a consent statement: $1 id, $2 user, $3 type, $4 version, $5 answer,
/// $6 ip, $7 user agent, $8 time.
pub const INSERT_CONSENT: &str = "INSERT INTO consent_records (id, user_id, consent_type, \
     consent_version, consented, ip_address, user_agent, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

/// A user's consent statements, oldest first: $1 user.
pub fn consent_history() -> String {
    format!("SELECT {CONSENT_COLUMNS} FROM consent_records WHERE user_id = $1 ORDER BY created_at")
}

/// $1 id, $2 user, $3 hash, $4 device, $5 end, $6 time.
pub const INSERT_CONSENT_CHALLENGE: &str = "INSERT INTO consent_challenges (id, user_id, \
     token_hash, device_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// A live consent challenge: $1 token hash, $2 time.
pub fn find_consent_challenge() -> String {
    format!(
        "SELECT {CONSENT_CHALLENGE_COLUMNS} FROM consent_challenges \
         WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > $2"
    )
}

/// Spends a live consent challenge of a user: $1 id, $2 time, $3 user.
pub const SPEND_CONSENT_CHALLENGE: &str = "UPDATE consent_challenges SET consumed_at = $2 \
     WHERE id = $1 AND user_id = $3 AND consumed_at IS NULL AND expires_at > $2";

// Devices seen at sign-in.

/// The device of a user with a fingerprint: $1 user, $2 fingerprint.
pub const DEVICE_BY_FINGERPRINT: &str =
    "SELECT id FROM device_fingerprints WHERE user_id = $1 AND fingerprint_hash = $2";

/// How many devices a user has: $1 user.
pub const COUNT_DEVICES: &str = "SELECT COUNT(*) FROM device_fingerprints WHERE user_id = $1";

/// A known device seen again, found by its owner and fingerprint: $1 user,
/// $2 fingerprint, $3 time, $4 user agent, $5 ip.
pub const TOUCH_KNOWN_DEVICE: &str = "UPDATE device_fingerprints SET last_seen_at = $3, \
     user_agent = $4, ip_address = $5 WHERE user_id = $1 AND fingerprint_hash = $2";

/// A new device: $1 id, $2 user, $3 fingerprint, $4 user agent, $5 ip, $6 time.
pub const INSERT_DEVICE: &str = "INSERT INTO device_fingerprints (id, user_id, fingerprint_hash, \
     user_agent, ip_address, first_seen_at, last_seen_at, is_trusted) \
     VALUES ($1, $2, $3, $4, $5, $6, $6, false)";

/// A user's devices, first seen first, each with whether its fingerprint
/// is $2 (NULL: none is): $1 user, $2 fingerprint.
pub fn list_devices() -> String {
    format!(
        "SELECT {DEVICE_COLUMNS}, fingerprint_hash = $2 FROM device_fingerprints \
         WHERE user_id = $1 ORDER BY first_seen_at, id"
    )
}

/// Deletes a device of its owner: $1 id, $2 owner.
pub const FORGET_DEVICE: &str = "DELETE FROM device_fingerprints WHERE id = $1 AND user_id = $2";

// Export ($1 user, or $1 recipient tag for mail).

pub fn export_user() -> String {
    format!("SELECT {USER_COLUMNS}, password_changed_at FROM users WHERE id = $1 AND deleted_at IS NULL")
}

pub fn export_sessions() -> String {
    format!(
        "SELECT {SESSION_COLUMNS}, revoked_reason FROM sessions WHERE user_id = $1 \
         ORDER BY created_at DESC"
    )
}

pub fn export_devices() -> String {
    format!("SELECT {DEVICE_COLUMNS} FROM device_fingerprints WHERE user_id = $1 ORDER BY first_seen_at")
}

pub fn export_audit() -> String {
    format!("SELECT {AUDIT_COLUMNS} FROM audit_logs WHERE user_id = $1 ORDER BY seq DESC")
}

pub fn export_mail() -> String {
    format!(
        "SELECT {MAIL_RECORD_COLUMNS} FROM mail_outbox WHERE recipient_tag = $1 \
         ORDER BY created_at DESC"
    )
}

pub const COUNT_UNUSED_RECOVERY_CODES: &str =
    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";
pub const COUNT_USED_RECOVERY_CODES: &str =
    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL";
pub const COUNT_PASSWORD_HISTORY: &str = "SELECT COUNT(*) FROM password_history WHERE user_id = $1";

// Erasure.

/// The live sessions of a user: $1 user.
pub const LIVE_SESSIONS_OF_USER: &str =
    "SELECT id FROM sessions WHERE user_id = $1 AND invalidated_at IS NULL";

/// What an erasure deletes or strips of personal data, in order: $1 user.
/// Sessions before their refresh tokens (which they cascade to), the order
/// in which a rotation locks them.
pub const ERASE_USER_ROWS: &[&str] = &[
    "DELETE FROM sessions WHERE user_id = $1",
    "DELETE FROM refresh_tokens WHERE user_id = $1",
    "DELETE FROM email_verification_tokens WHERE user_id = $1",
    "DELETE FROM password_reset_tokens WHERE user_id = $1",
    "DELETE FROM mfa_challenges WHERE user_id = $1",
    "DELETE FROM consent_challenges WHERE user_id = $1",
    "DELETE FROM recovery_codes WHERE user_id = $1",
    "DELETE FROM password_history WHERE user_id = $1",
    "DELETE FROM device_fingerprints WHERE user_id = $1",
    "UPDATE consent_records SET ip_address = NULL, user_agent = NULL WHERE user_id = $1",
    "UPDATE audit_logs SET ip_address = NULL, user_agent = NULL, client_salt = NULL \
     WHERE user_id = $1",
];

/// A proven password resets the lockout window of an account: $1 key, $2
/// time. Only a window that holds something is written, so a sign-in of an
/// account with nothing to reset costs a lookup and writes nothing.
pub const RESET_LOCKOUT: &str = "UPDATE login_lockouts SET attempts = 0, failures = 0, \
     window_started_at = NULL, locked_until = NULL, updated_at = $2 WHERE account_key = $1 \
     AND (attempts <> 0 OR failures <> 0 OR window_started_at IS NOT NULL OR locked_until IS NOT NULL)";

/// The lockout window of the erased address: $1 key.
pub const ERASE_LOCKOUT: &str = "DELETE FROM login_lockouts WHERE account_key = $1";

/// Mail queued (or kept) for the erased address: $1 recipient tag.
pub const ERASE_MAIL: &str = "DELETE FROM mail_outbox WHERE recipient_tag = $1";

/// The user row reduced to its id, times and a placeholder address: $1 id,
/// $2 placeholder, $3 time.
pub const ERASE_USER: &str = "UPDATE users SET email = $2, email_verified = false, \
     password_hash = '', first_name = NULL, last_name = NULL, two_factor_enabled = false, \
     two_factor_method = NULL, email_otp_enabled = false, totp_enabled = false, \
     totp_secret_sealed = NULL, totp_pending_sealed = NULL, totp_last_step = NULL, \
     is_active = false, is_locked = false, failed_login_attempts = 0, locked_until = NULL, \
     last_login_at = NULL, password_changed_at = NULL, deleted_at = $3, updated_at = $3 \
     WHERE id = $1";

// Retention (see `domain::retention`).

/// Expired consent challenges: $1 time.
pub const RETENTION_CONSENT_CHALLENGES: &str = "DELETE FROM consent_challenges WHERE id IN \
     (SELECT id FROM consent_challenges WHERE expires_at < $1 LIMIT 5000)";

/// Audit rows past their period go as a prune of the chain's oldest rows
/// (see `docs/audit.md`): the first row to keep after the anchor $1, at or
/// after the cut-off $2. Everything before it, up to [`AUDIT_PRUNE_BATCH`]
/// rows a sweep, is pruned ([`PRUNE_AUDIT`]) under a new anchor.
pub const RETENTION_AUDIT: &str =
    "SELECT MIN(seq) FROM audit_logs WHERE seq > $1 AND created_at >= $2";

/// Rows at or below the anchor $1 that are past the cut-off $2: rows written
/// before the chain existed (never chained, so no anchor moves for them).
pub const RETENTION_AUDIT_BELOW_ANCHOR: &str = "DELETE FROM audit_logs WHERE id IN \
     (SELECT id FROM audit_logs WHERE seq <= $1 AND (created_at < $2 OR created_at IS NULL) \
     LIMIT 5000)";

/// The most audit rows one sweep prunes.
pub const AUDIT_PRUNE_BATCH: i64 = 5000;

/// The hash of the row at $1 (the new anchor's).
pub const AUDIT_ROW_HASH_AT: &str = "SELECT row_hash FROM audit_logs WHERE seq = $1";

/// Records the anchor: $1 seq, $2 hash of the last pruned row.
pub const SET_AUDIT_ANCHOR: &str =
    "UPDATE audit_chain SET anchor_seq = $1, anchor_hash = $2 WHERE id = 1";

/// Deletes the rows at or below the anchor just recorded: $1 anchor seq.
pub const PRUNE_AUDIT: &str = "DELETE FROM audit_logs WHERE seq <= $1";

/// Erased accounts past their period (their consent history goes with them): $1 cut-off.
pub const RETENTION_ERASED: &str = "DELETE FROM users WHERE id IN \
     (SELECT id FROM users WHERE deleted_at IS NOT NULL AND deleted_at < $1 LIMIT 1000)";

// The audit chain (see `docs/audit.md`).

/// The head of the chain (PostgreSQL appends `FOR UPDATE`; SQLite's write
/// transaction serialises).
pub const AUDIT_HEAD: &str = "SELECT head_seq, head_hash FROM audit_chain WHERE id = 1";

/// Head and anchor.
pub const AUDIT_CHAIN_STATE: &str =
    "SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_chain WHERE id = 1";

/// Moves the head to the row just appended: $1 seq, $2 hash.
pub const ADVANCE_AUDIT_HEAD: &str =
    "UPDATE audit_chain SET head_seq = $1, head_hash = $2 WHERE id = 1";

/// One chained row: $1 seq, $2 id, $3 user, $4 event, $5 status, $6 ip, $7 agent,
/// $8 salt, $9 client digest, $10 metadata, $11 time, $12 previous hash, $13 hash.
pub const INSERT_AUDIT: &str = "INSERT INTO audit_logs (seq, id, user_id, event_type, \
     event_status, ip_address, user_agent, client_salt, client_digest, metadata, created_at, \
     prev_hash, row_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Rows of the chain, one array per column in the order of [`INSERT_AUDIT`]'s
/// parameters ($1–$13, one element per row, in chain order), inserted in one
/// statement that also moves the head to $14 seq, $15 hash (PostgreSQL).
pub const APPEND_AUDIT_ROWS: &str = "WITH appended AS (
       INSERT INTO audit_logs (seq, id, user_id, event_type, event_status, ip_address,
         user_agent, client_salt, client_digest, metadata, created_at, prev_hash, row_hash)
       SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
         $6::inet[], $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[],
         $12::text[], $13::text[]))
     UPDATE audit_chain SET head_seq = $14, head_hash = $15 WHERE id = 1";

/// Rows in chain order: after seq $1, up to seq $2, at most $3.
pub fn audit_chain_rows() -> String {
    format!(
        "SELECT {CHAIN_COLUMNS} FROM audit_logs WHERE seq > $1 AND seq <= $2 \
         ORDER BY seq LIMIT $3"
    )
}

/// A user's rows, newest first: $1 user, before seq $2, at most $3.
pub fn audit_of_user() -> String {
    format!(
        "SELECT {CHAIN_COLUMNS} FROM audit_logs WHERE user_id = $1 AND seq < $2 \
         ORDER BY seq DESC LIMIT $3"
    )
}

/// Rows in chain order created in [$1, $2), after seq $3, at most $4.
pub fn audit_between() -> String {
    format!(
        "SELECT {CHAIN_COLUMNS} FROM audit_logs WHERE created_at >= $1 AND created_at < $2 \
         AND seq > $3 ORDER BY seq LIMIT $4"
    )
}
