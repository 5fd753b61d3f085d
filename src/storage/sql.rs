//! SQL text that is the same in both dialects, written once. Statements use
//! `$1`-style parameters; the SQLite backend numbers them as `?1` when it
//! prepares them (see `sqlite::pool`).

use super::{CHALLENGE_COLUMNS, STEP_UP};

// Users.

/// The failed-login counters of a user: $1 id.
pub const LOGIN_COUNTERS: &str =
    "SELECT failed_login_attempts, locked_until FROM users WHERE id = $1";

/// The same, locked until the transaction ends (PostgreSQL).
pub const LOGIN_COUNTERS_FOR_UPDATE: &str =
    "SELECT failed_login_attempts, locked_until FROM users WHERE id = $1 FOR UPDATE";

/// Writes the failed-login counters: $1 id, $2 failures, $3 locked until, $4 locked now.
pub const SET_LOGIN_COUNTERS: &str =
    "UPDATE users SET failed_login_attempts = $2, locked_until = $3, is_locked = $4 WHERE id = $1";

// Sessions and refresh tokens.

/// A refresh token (id, spent time) with its session's columns from index 2.
/// PostgreSQL appends `FOR UPDATE OF rt, s`; SQLite's writer lock serialises.
pub const REFRESH_WITH_SESSION: &str = "SELECT rt.id, rt.revoked_at, s.id, s.user_id, s.device_id, \
     s.user_agent, s.ip_address, s.amr, s.created_at, s.last_activity_at, s.expires_at, s.invalidated_at \
     FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE rt.token_hash = $1";

/// Ends a live session: $1 id, $2 time, $3 reason.
pub const END_LIVE_SESSION: &str =
    "UPDATE sessions SET invalidated_at = $2, revoked_reason = $3 WHERE id = $1 AND invalidated_at IS NULL";

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

/// $1 id, $2 user, $3 hash, $4 end, $5 time.
pub const INSERT_RESET_TOKEN: &str = "INSERT INTO password_reset_tokens (id, user_id, token_hash, \
     expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";

// Outbox.

/// Queues a mail: $1 id, $2 template, $3 payload, $4 time.
pub const INSERT_OUTBOX: &str = "INSERT INTO mail_outbox (id, template, payload, next_attempt_at, \
     created_at) VALUES ($1, $2, $3, $4, $4)";
