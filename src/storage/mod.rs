//! Durable records behind one interface, [`Store`], with two backends that
//! pass the same contract tests: PostgreSQL (production, shared by every
//! instance) and embedded SQLite (the single-node default).
//!
//! Every multi-row change (an account with its consents, token and audit row)
//! is one transaction, so a crash never leaves half an account behind.

pub mod models;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use models::*;

use crate::domain::Email;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Query(String),
    #[error("migration error: {0}")]
    Migration(String),
}

pub type StoreResult<T> = Result<T, StorageError>;

/// The system of record.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A name for logs and `/ready` ("postgres" or "sqlite").
    fn kind(&self) -> &'static str;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// Open and idle pooled connections, where the backend pools them (gauges).
    fn pool_state(&self) -> Option<(u32, u32)> {
        None
    }

    /// Creates an account with its consents, first verification token and
    /// audit row, atomically. An already-registered email creates nothing.
    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome>;

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>>;

    async fn find_user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>>;

    /// Stores another verification token for a user (resend), with its mail.
    async fn add_verification_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()>;

    /// Spends a verification token and marks the email verified, atomically.
    /// `None` when the token is unknown, used or expired.
    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Records a successful sign-in: clears the lockout counters, stamps the
    /// time, and stores an upgraded hash when the parameters were raised.
    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        rehash: Option<String>,
    ) -> StoreResult<()>;

    /// Keeps `users.failed_login_attempts` / `locked_until` true.
    async fn record_login_failure(
        &self,
        user_id: Uuid,
        attempts: u32,
        locked_until: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    /// Opens a session with its first refresh token.
    async fn create_session(&self, session: NewSession) -> StoreResult<()>;

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>>;

    /// The session a refresh token (spent or not) belongs to.
    async fn find_session_by_refresh(&self, token_hash: &str) -> StoreResult<Option<Uuid>>;

    async fn insert_audit(&self, event: AuditEvent) -> StoreResult<()>;

    /// Spends a refresh token and issues its successor, atomically (the token
    /// and its session are row-locked). A spent token presented again
    /// revokes the whole session, unless it was spent within `grace`.
    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<RotateOutcome>;

    /// Ends one session (of `user_id` when given); true when it was live.
    async fn revoke_session(
        &self,
        session_id: Uuid,
        user_id: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Ends every live session of a user but `except`; returns their ids.
    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;

    /// Live sessions of a user (not revoked, not past their absolute end), newest first.
    async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionRecord>>;

    /// Writes batched session activity (never moving it backwards).
    async fn touch_sessions(&self, touches: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()>;

    /// Sets a new password hash, records it in the history, clears the lockout counters.
    async fn set_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()>;

    /// The last `limit` password hashes of a user, newest first.
    async fn password_history(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<String>>;

    /// Stores a password-reset token unless the user already has `max_per_hour`
    /// created in the last hour; true when stored.
    async fn add_reset_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        max_per_hour: u32,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool>;

    /// The user of a live (unused, unexpired) reset token, without spending it.
    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Spends a live reset token (and every other outstanding one of its user).
    async fn consume_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Queues a mail for delivery.
    async fn enqueue_mail(&self, mail: OutboxMail, now: DateTime<Utc>) -> StoreResult<()>;

    /// Leases up to `limit` due mails for `lease` (other workers, on any
    /// instance, skip leased ones: each mail is sent once).
    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMail>>;

    /// Marks a mail sent (its payload is cleared).
    async fn mail_sent(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    /// Schedules another attempt.
    async fn mail_retry(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()>;

    /// Gives up on a mail for good (its payload is cleared).
    async fn mail_dead(&self, id: Uuid, error: &str) -> StoreResult<()>;

    async fn outbox_stats(&self, now: DateTime<Utc>) -> StoreResult<OutboxStats>;

    async fn create_mfa_challenge(&self, c: NewMfaChallenge) -> StoreResult<()>;

    /// A live challenge: unspent, unexpired, under `max_attempts` checks.
    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallengeRecord>>;

    /// Stores a new email code unless `max_sends` were already sent; true when stored.
    async fn set_challenge_code(
        &self,
        id: Uuid,
        code_hash: &str,
        expires_at: DateTime<Utc>,
        max_sends: u32,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool>;

    /// Counts one check of a code, atomically; false when none is left.
    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool>;

    /// Spends a challenge; false when it was already spent.
    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;

    async fn set_email_otp(
        &self,
        user_id: Uuid,
        enabled: bool,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()>;

    async fn set_totp_pending(&self, user_id: Uuid, sealed: Option<&str>) -> StoreResult<()>;

    /// Makes the pending secret (still equal to `pending`) the active one,
    /// records `step` as used and replaces the recovery codes; false when the
    /// pending secret changed meanwhile.
    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &str,
        step: i64,
        recovery_hashes: &[String],
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool>;

    /// Records a TOTP step as used; false when it (or a later one) already was (replay).
    async fn advance_totp_step(&self, user_id: Uuid, step: i64) -> StoreResult<bool>;

    /// Spends an unused recovery code; false when there is none such.
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Turns every second factor off and forgets secrets and recovery codes.
    async fn disable_two_factor(&self, user_id: Uuid) -> StoreResult<()>;

    /// Deletes what has expired: sessions past their end (and their refresh
    /// tokens), ended sessions older than `keep_ended`, used or expired
    /// verification and reset tokens. Idempotent, so instances may overlap.
    async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        keep_ended: chrono::Duration,
    ) -> StoreResult<u64>;

    /// The lockout window of an account key (normalized email).
    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>>;

    async fn save_lockout(&self, key: &str, record: &LockoutRecord) -> StoreResult<()>;

    /// Applies `transition` to the lockout window of `key` atomically: the
    /// row is locked (Postgres `FOR UPDATE`; SQLite's single writer) from the
    /// read to the write, so instances sharing the database agree.
    async fn update_lockout(&self, key: &str, transition: LockoutTransition) -> StoreResult<()>;

    /// Audit rows of a user, newest first (for tests and `GET /me/audit`).
    async fn audit_for_user(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<AuditRecord>>;

    /// Audit rows of an event type, newest first (counting in tests and ops).
    async fn count_audit(&self, event_type: &str, status: &str) -> StoreResult<u64>;

    /// Consent rows of a user, newest first.
    async fn consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>>;
}

pub type DynStore = Arc<dyn Store>;

/// A change to a lockout window, applied inside the store's transaction.
pub type LockoutTransition = Box<dyn FnOnce(LockoutRecord) -> LockoutRecord + Send>;
