//! Rows read from and written to the [`Store`](super::Store).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::login_counters::LoginCounters;
use crate::domain::refresh::{RefreshDecision, RefreshState};
use crate::domain::second_factor::{SecondFactorChange, SecondFactors};
pub use crate::domain::ClientContext;
use crate::domain::Email;

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
    /// A new hash of the proven password, stored with the sign-in when the
    /// hashing parameters were raised.
    pub rehash: Option<String>,
    /// The fingerprint of the sign-in's device: when the account knows that
    /// device, the opening records the sighting (last seen, user agent,
    /// address) with the session. A device it does not know is left to
    /// `DeviceStore::record_device`, which announces new ones.
    pub device_fingerprint: Option<String>,
    /// When given, the opening must not commit after this instant (its
    /// request has been answered 503 by then, and a session its client never
    /// received would only be left behind): a store checks it once the
    /// account's row is locked and opens nothing when it is past.
    pub commit_by: Option<std::time::Instant>,
    /// The second-factor challenge whose code the sign-in has just proven:
    /// the opening spends it with the session, and opens nothing when it is
    /// spent already (so the step either spends its challenge and opens its
    /// session, or does neither, and a client that got no answer can send
    /// the same code again).
    pub completes_challenge: Option<Uuid>,
}

/// What opening a sign-in's session found of the account
/// ([`SessionStore::open_session`](super::SessionStore::open_session)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOpening {
    /// The session is open; `device_known`: the account knew the device of
    /// `NewSession::device_fingerprint` and its sighting is recorded.
    Opened { device_known: bool },
    /// The account is disabled: nothing was written.
    AccountDisabled,
    /// No such account (or it was erased): nothing was written.
    NoAccount,
    /// `NewSession::completes_challenge` was spent already: nothing was written.
    ChallengeSpent,
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
    /// When given, a store may first try the rotation that needs no
    /// decision: an unspent token of a session that is live, before its
    /// end, and active after this instant (the idle cutoff) is rotated by
    /// one conditional statement. Anything else is decided by the rule.
    pub active_since: Option<DateTime<Utc>>,
    /// When given, the rotation must not commit after this instant: by then
    /// its request has been answered 503, so its client still holds the
    /// presented token and will send it again, which a committed rotation
    /// would count as reuse. A store checks it once the rows are locked and
    /// commits nothing when it is past.
    pub commit_by: Option<std::time::Instant>,
}

/// The rotation rule, applied by the store under lock (see [`crate::domain::refresh`]).
pub type RefreshRule = Box<dyn Fn(&RefreshState) -> RefreshDecision + Send + Sync>;

/// Where a store tells the rotated session as soon as its rotation is
/// decided, before it is committed (see
/// `SessionStore::rotate_refresh_token`).
pub type EarlyRotation = tokio::sync::oneshot::Sender<SessionRecord>;

/// A new password for a user, with the mail that tells its owner.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub user_id: Uuid,
    pub password_hash: String,
    pub now: DateTime<Utc>,
    pub mail: Option<OutboxMail>,
}

/// How live sessions of `owner` end: the reason recorded in
/// `sessions.revoked_reason` (see [`end_reason`]) and the time.
#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    pub owner: Uuid,
    pub reason: &'static str,
    pub at: DateTime<Utc>,
}

impl Revocation {
    pub fn new(owner: Uuid, reason: &'static str, at: DateTime<Utc>) -> Self {
        Self { owner, reason, at }
    }
}

/// Another verification token for a user (a resend), with its mail.
#[derive(Debug, Clone)]
pub struct NewVerificationToken {
    pub user_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
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

/// An hourly cap (reset links, challenges), applied by the store under lock
/// to the creation times of the user's earlier ones (see [`crate::domain::reset`]).
pub type ResetAdmission = Box<dyn FnOnce(&[DateTime<Utc>]) -> bool + Send>;

impl SessionRecord {
    /// A spent token of this session was presented: its family is revoked
    /// (the session ended now when `was_live`).
    pub fn reused(&self, was_live: bool) -> RotateOutcome {
        RotateOutcome::Reused {
            session_id: self.id,
            user_id: self.user_id,
            was_live,
        }
    }

    /// The session continues with a new token, active at `now`.
    pub fn rotated(self, now: DateTime<Utc>) -> RotateOutcome {
        RotateOutcome::Rotated(SessionRecord {
            last_activity_at: now,
            ..self
        })
    }

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
    pub const ACCOUNT_ERASED: &str = "account_erased";
    pub const TWO_FACTOR_CHANGED: &str = "two_factor_changed";
    /// An operator disabled the account (`suma-auth admin user disable`).
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
    /// An operator ended the session (`suma-auth admin sessions revoke`).
    pub const ADMIN_REVOKED: &str = "admin_revoked";
}

/// A queued mail. The payload is sealed by the mail module; storage never reads it.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: Uuid,
    pub template: String,
    pub payload: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// A keyed digest of the recipient's address (see `Mailer::recipient_tag`):
    /// erasing an account deletes the mail still queued to it.
    pub recipient_tag: Option<String>,
}

/// A worker's claim on due mail at `now`: up to `limit` mails, leased for
/// `lease`.
#[derive(Debug, Clone, Copy)]
pub struct MailClaim {
    pub now: DateTime<Utc>,
    pub lease: chrono::Duration,
    pub limit: u32,
}

/// Another attempt of a mail at `at`, after `error`.
#[derive(Debug, Clone)]
pub struct MailRetry {
    pub at: DateTime<Utc>,
    pub error: String,
}

/// Outbox depth and the age of its oldest pending mail.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutboxStats {
    pub pending: u64,
    pub dead: u64,
    pub oldest_pending_secs: f64,
}

/// A login challenge waiting for a second factor (or a step-up code of a
/// signed-in user, `methods` = [`STEP_UP`]), stored if `admit` agrees.
pub struct NewMfaChallenge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub device_id: Option<String>,
    /// Space-separated: `totp`, `email_otp`; or [`STEP_UP`].
    pub methods: String,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The hourly cap, applied by the store under the user's lock to the
    /// creation times of the user's challenges.
    pub admit: ResetAdmission,
}

/// A new email code for a challenge, stored unless `max_sends` were already
/// sent, with its mail.
#[derive(Debug, Clone)]
pub struct ChallengeCode {
    pub code_hash: String,
    pub expires_at: DateTime<Utc>,
    pub max_sends: u32,
    pub mail: Option<OutboxMail>,
}

/// A recovery code as presented at `at`, in both forms a stored one can
/// have: its keyed hash, and its legacy hash (a bare digest, on rows not yet
/// converted).
#[derive(Debug, Clone)]
pub struct PresentedCode {
    pub keyed_hash: String,
    pub legacy_hash: String,
    pub at: DateTime<Utc>,
}

/// Which challenges are live: unspent, unexpired at `now` and checked fewer
/// than `max_attempts` times.
#[derive(Debug, Clone, Copy)]
pub struct LiveChallenge {
    pub now: DateTime<Utc>,
    pub max_attempts: u32,
}

/// The `methods` of a step-up challenge: an emailed code that confirms a
/// change of second factors. Never a login challenge (its token is never
/// handed out, and login lookups skip it).
pub const STEP_UP: &str = "step_up";

/// Turns a stored legacy recovery-code hash into its keyed form (`None`:
/// leave the row as it is). See `auth::codes`.
pub type CodeRekey = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct MfaChallengeRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<String>,
    pub methods: String,
    pub otp_code_hash: Option<String>,
    pub otp_expires_at: Option<DateTime<Utc>>,
}

/// How a backend reads one typed column of a row. Each backend implements it
/// for its own row type (PostgreSQL's native uuid/timestamptz/inet columns,
/// SQLite's text and millisecond integers); the mappers below, written once,
/// say which column is which field. A value of the wrong type is an error,
/// never a panic.
pub trait Columns {
    type Error;
    fn uuid(&self, i: usize) -> Result<Uuid, Self::Error>;
    fn text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn flag(&self, i: usize) -> Result<Option<bool>, Self::Error>;
    fn time(&self, i: usize) -> Result<Option<DateTime<Utc>>, Self::Error>;
    fn int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn ip(&self, i: usize) -> Result<Option<IpAddr>, Self::Error>;
    fn json(&self, i: usize) -> Result<Option<serde_json::Value>, Self::Error>;
}

/// The columns of [`UserRecord`], in the order [`user_from`] reads them.
pub const USER_COLUMNS: &str = "id, email, email_verified, password_hash, first_name, last_name, \
     two_factor_enabled, two_factor_method, is_active, failed_login_attempts, locked_until, \
     created_at, last_login_at, email_otp_enabled, totp_enabled, totp_secret_sealed, totp_pending_sealed";

pub fn user_from<R: Columns>(r: &R) -> Result<UserRecord, R::Error> {
    Ok(UserRecord {
        id: r.uuid(0)?,
        email: Email::from_stored(r.text(1)?.unwrap_or_default()),
        email_verified: r.flag(2)?.unwrap_or(false),
        password_hash: r.text(3)?.unwrap_or_default(),
        first_name: r.text(4)?,
        last_name: r.text(5)?,
        two_factor_enabled: r.flag(6)?.unwrap_or(false),
        two_factor_method: r.text(7)?,
        is_active: r.flag(8)?.unwrap_or(true),
        failed_login_attempts: r.int(9)?.unwrap_or(0) as i32,
        locked_until: r.time(10)?,
        created_at: r.time(11)?.unwrap_or_default(),
        last_login_at: r.time(12)?,
        email_otp_enabled: r.flag(13)?.unwrap_or(false),
        totp_enabled: r.flag(14)?.unwrap_or(false),
        totp_secret_sealed: r.text(15)?,
        totp_pending_sealed: r.text(16)?,
    })
}

/// The failed-login counters of a user row (see [`LOGIN_COUNTERS`](super::sql::LOGIN_COUNTERS)).
pub fn counters_from<R: Columns>(r: &R) -> Result<LoginCounters, R::Error> {
    Ok(LoginCounters {
        failed_attempts: r.int(0)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        locked_until: r.time(1)?,
    })
}

/// A failure as the lockout reported it: the window's failures and the lock it caused.
pub fn reported(failed_attempts: u32, locked_until: Option<DateTime<Utc>>) -> LoginCounters {
    LoginCounters {
        failed_attempts,
        locked_until,
    }
}

/// The columns of [`SessionRecord`], in the order [`session_from`] reads them.
pub const SESSION_COLUMNS: &str =
    "id, user_id, device_id, user_agent, ip_address, amr, created_at, \
     last_activity_at, expires_at, invalidated_at";

/// A session whose columns start at index `at`.
pub fn session_from<R: Columns>(r: &R, at: usize) -> Result<SessionRecord, R::Error> {
    Ok(SessionRecord {
        id: r.uuid(at)?,
        user_id: r.uuid(at + 1)?,
        device_id: r.text(at + 2)?,
        user_agent: r.text(at + 3)?,
        ip_address: r.ip(at + 4)?,
        amr: r.text(at + 5)?.unwrap_or_default(),
        created_at: r.time(at + 6)?.unwrap_or_default(),
        last_activity_at: r.time(at + 7)?.unwrap_or_default(),
        expires_at: r.time(at + 8)?.unwrap_or_default(),
        invalidated_at: r.time(at + 9)?,
    })
}

/// The columns of [`LockoutRecord`], in the order [`lockout_from`] reads them.
pub const LOCKOUT_COLUMNS: &str = "attempts, failures, window_started_at, locked_until";

pub fn lockout_from<R: Columns>(r: &R) -> Result<LockoutRecord, R::Error> {
    let count = |v: Option<i64>| v.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
    Ok(LockoutRecord {
        attempts: count(r.int(0)?),
        failures: count(r.int(1)?),
        window_started_at: r.time(2)?,
        locked_until: r.time(3)?,
    })
}

/// The columns of [`MfaChallengeRecord`], in the order [`challenge_from`] reads them.
pub const CHALLENGE_COLUMNS: &str =
    "id, user_id, device_id, methods, otp_code_hash, otp_expires_at";

pub fn challenge_from<R: Columns>(r: &R) -> Result<MfaChallengeRecord, R::Error> {
    Ok(MfaChallengeRecord {
        id: r.uuid(0)?,
        user_id: r.uuid(1)?,
        device_id: r.text(2)?,
        methods: r.text(3)?.unwrap_or_default(),
        otp_code_hash: r.text(4)?,
        otp_expires_at: r.time(5)?,
    })
}

/// The second-factor columns of a user row (see
/// [`SECOND_FACTORS`](super::sql::SECOND_FACTORS)).
pub fn second_factors_from<R: Columns>(r: &R) -> Result<SecondFactors, R::Error> {
    Ok(SecondFactors {
        email_otp: r.flag(0)?.unwrap_or(false),
        totp: r.flag(1)?.unwrap_or(false),
        totp_secret_sealed: r.text(2)?,
        totp_pending_sealed: r.text(3)?,
        totp_last_step: r.int(4)?,
    })
}

/// A claimed [`OutboxMail`] from the columns `id, template, payload, attempts,
/// created_at, recipient_tag`, in that order.
pub fn mail_from<R: Columns>(r: &R) -> Result<OutboxMail, R::Error> {
    Ok(OutboxMail {
        id: r.uuid(0)?,
        template: r.text(1)?.unwrap_or_default(),
        payload: r.text(2)?.unwrap_or_default(),
        attempts: r.int(3)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        created_at: r.time(4)?.unwrap_or_default(),
        recipient_tag: r.text(5)?,
    })
}
