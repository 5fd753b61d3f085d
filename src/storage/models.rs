//! Rows read from and written to the [`Store`](super::Store).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::refresh::{RefreshDecision, RefreshState};
use crate::domain::second_factor::SecondFactorChange;
use crate::domain::Email;

/// Where a request came from, recorded with consents, sessions and audit rows.
#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewConsent {
    pub consent_type: &'static str,
    pub version: String,
    pub consented: bool,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: Email,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub consents: Vec<NewConsent>,
    pub verification_token_hash: String,
    pub verification_expires_at: DateTime<Utc>,
    pub client: ClientContext,
    pub now: DateTime<Utc>,
    /// The verification mail, queued in the same transaction.
    pub mail: Option<OutboxMail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateUserOutcome {
    Created,
    EmailTaken,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: Email,
    pub email_verified: bool,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub two_factor_enabled: bool,
    pub two_factor_method: Option<String>,
    pub is_active: bool,
    pub failed_login_attempts: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub email_otp_enabled: bool,
    pub totp_enabled: bool,
    /// The TOTP secret, sealed (AES-256-GCM).
    pub totp_secret_sealed: Option<String>,
    /// A secret set up but not yet confirmed with a code, sealed.
    pub totp_pending_sealed: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub refresh_token_id: Uuid,
    pub refresh_token_hash: String,
    pub device_id: Option<String>,
    pub client: ClientContext,
    pub amr: String,
    pub created_at: DateTime<Utc>,
    /// The absolute end of the session.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<IpAddr>,
    pub amr: String,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub invalidated_at: Option<DateTime<Utc>>,
}

/// One security event for `audit_logs`. Never a password or a raw token.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub user_id: Option<Uuid>,
    pub event_type: &'static str,
    pub success: bool,
    pub client: ClientContext,
    pub metadata: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// A persisted lockout window (see the actors crate's lockout policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockoutRecord {
    pub attempts: u32,
    pub failures: u32,
    pub window_started_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// A refresh to perform: the presented token's hash and its successor.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub presented_hash: String,
    pub new_id: Uuid,
    pub new_hash: String,
    pub now: DateTime<Utc>,
}

/// The rotation rule, applied by the store under lock (see [`crate::domain::refresh`]).
pub type RefreshRule = Box<dyn FnOnce(&RefreshState) -> RefreshDecision + Send>;

/// A new password for a user, with the mail that tells its owner.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub user_id: Uuid,
    pub password_hash: String,
    pub now: DateTime<Utc>,
    pub mail: Option<OutboxMail>,
}

/// A password-reset token to store if `admit` agrees, with its mail.
pub struct NewResetToken {
    pub user_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub admit: ResetAdmission,
    pub mail: Option<OutboxMail>,
}

/// A change to a user's second factors (see [`crate::domain::second_factor`]):
/// `recovery` replaces the recovery codes by these hashes (empty: deletes
/// them); the mail is queued in the same transaction.
pub struct SecondFactorUpdate {
    pub change: SecondFactorChange,
    pub recovery: Option<Vec<String>>,
    pub now: DateTime<Utc>,
    pub mail: Option<OutboxMail>,
}

/// The hourly reset cap, applied by the store under lock to the creation
/// times of the user's reset tokens (see [`crate::domain::reset`]).
pub type ResetAdmission = Box<dyn FnOnce(&[DateTime<Utc>]) -> bool + Send>;

impl SessionRecord {
    /// What the rotation rule needs of this session and a presented token.
    pub fn refresh_state(&self, spent_at: Option<DateTime<Utc>>) -> RefreshState {
        RefreshState {
            spent_at,
            session_ended: self.invalidated_at.is_some(),
            session_expires_at: self.expires_at,
            last_activity_at: self.last_activity_at,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RotateOutcome {
    /// The token was live; the session continues with the new token.
    Rotated(SessionRecord),
    /// A spent token: the session was revoked (when it was still live).
    Reused {
        session_id: Uuid,
        user_id: Uuid,
        was_live: bool,
    },
    /// Unknown token, spent within the grace, or its session was revoked.
    Invalid,
    /// Its session reached its absolute end, or was ended now for idleness.
    Expired,
}

/// Why a session ends, as recorded in `sessions.revoked_reason`.
pub mod end_reason {
    pub const LOGOUT: &str = "logout";
    pub const LOGOUT_ALL: &str = "logout_all";
    pub const REVOKED: &str = "revoked";
    pub const PASSWORD_CHANGED: &str = "password_changed";
    pub const REFRESH_TOKEN_REUSE: &str = "refresh_token_reuse";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
}

/// A queued mail. The payload is sealed by the mail module; storage never reads it.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: Uuid,
    pub template: String,
    pub payload: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// Outbox depth and the age of its oldest pending mail.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutboxStats {
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_secs: f64,
}

/// A login challenge waiting for a second factor.
#[derive(Debug, Clone)]
pub struct NewMfaChallenge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub device_id: Option<String>,
    /// Space-separated: `totp`, `email_otp`.
    pub methods: String,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct MfaChallengeRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<String>,
    pub methods: String,
    pub otp_code_hash: Option<String>,
    pub otp_expires_at: Option<DateTime<Utc>>,
}
