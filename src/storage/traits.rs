//! The store, one trait per aggregate. [`Store`] joins them into the one
//! object callers hold.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::login_counters::LoginCounters;
use crate::domain::rate_window::{SlidingWindow, WindowHit};
use crate::domain::Email;

/// Accounts: the user row, its password history and consents.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates an account with its consents, first verification token and
    /// audit row, atomically. An already-registered email creates nothing.
    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome>;

    /// Replaces the pending registration of the address's account when it is
    /// unverified and active: password, names, consents, password history
    /// and a verification token that voids every earlier one, with the audit
    /// row (`registration_replaced`) and the mail, atomically. The account
    /// keeps its id; its age counts from now. `None` (nothing written) when
    /// the address has no such account.
    async fn replace_unverified_user(&self, new: NewUser) -> StoreResult<Option<Uuid>>;

    /// Deletes accounts still unverified that were registered before
    /// `registered_before` (their tokens, consents and history go with them,
    /// their audit rows stay without a user); returns how many.
    async fn delete_unverified_users(&self, registered_before: DateTime<Utc>) -> StoreResult<u64>;

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>>;

    async fn find_user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>>;

    /// The user for display (`GET /me`): may come from a per-instance cache
    /// that every change to the row invalidates; decisions read
    /// [`find_user_by_id`](Self::find_user_by_id).
    async fn find_user_profile(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        self.find_user_by_id(id).await
    }

    /// True while [`find_user_profile`](Self::find_user_profile) may answer
    /// from memory (PostgreSQL: while change notices are received).
    fn profile_cache_on(&self) -> bool {
        false
    }

    /// Records a successful sign-in: clears the lockout counters, stamps the
    /// time, and stores an upgraded hash when the parameters were raised.
    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        rehash: Option<String>,
    ) -> StoreResult<()>;

    /// Keeps `users.failed_login_attempts` / `locked_until` true.
    /// `failure` is the failure as the lockout reported it (see [`reported`]).
    async fn record_login_failure(
        &self,
        user_id: Uuid,
        failure: LoginCounters,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Sets a new password hash, records it in the history, clears the lockout counters.
    async fn set_password(&self, change: PasswordChange) -> StoreResult<()>;

    /// Whether the account may sign in (`users.is_active`); false when there
    /// is no such account (or it was erased).
    async fn set_user_active(
        &self,
        user_id: Uuid,
        active: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Clears `users.failed_login_attempts` / `locked_until` (an operator's unlock).
    async fn clear_login_counters(&self, user_id: Uuid) -> StoreResult<()>;

    /// The last `limit` password hashes of a user, newest first.
    async fn password_history(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<String>>;
}

/// Sessions and their refresh-token families.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Opens the session of a finished sign-in with its first refresh token,
    /// in one transaction with the sign-in's mark on the account (as
    /// [`UserStore::record_login_success`], with `session.rehash`), and only
    /// while the account is active: an account disabled before that
    /// transaction commits gets no session. PostgreSQL takes the account's
    /// row lock first, so a disable still uncommitted is waited for and seen;
    /// a disable that comes after finds the session and ends it.
    async fn open_session(&self, session: NewSession) -> StoreResult<SessionOpening>;

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>>;

    /// The session a refresh token (spent or not) belongs to.
    async fn find_session_by_refresh(&self, token_hash: &str) -> StoreResult<Option<Uuid>>;

    /// Reads the presented refresh token and its session, asks `decide`
    /// (see [`crate::domain::refresh`]) and writes what it says: the successor
    /// token, the idle end of the session, or the revocation of the family.
    /// What it writes is written only if what it read still holds: SQLite
    /// reads and writes in one transaction on its single writer (committed
    /// with other rotations waiting at the time); PostgreSQL reads without a
    /// lock and rotates with one conditional statement, deciding again under
    /// row locks when that statement finds the token spent or the session
    /// ended (and for the decisions that end sessions). `decide` may
    /// therefore be called twice.
    ///
    /// When `early` is given, the rotated session is sent on it once the
    /// rotation is decided, before it is committed: the caller can sign the
    /// new access token while the commit runs. Only the returned outcome
    /// says that the rotation holds: whatever the caller made of the early
    /// word stays unreleased until this returns `Rotated` for the same
    /// session. SQLite tells it from inside the group's transaction;
    /// PostgreSQL after its unlocked read, before the statement that writes
    /// the rotation (a rotation decided under lock says nothing early, nor
    /// does PostgreSQL's one-statement rotation of `rotation.active_since`).
    async fn rotate_refresh_token(
        &self,
        rotation: Rotation,
        decide: RefreshRule,
        early: Option<EarlyRotation>,
    ) -> StoreResult<RotateOutcome>;

    /// Ends one live session of `by.owner` with its unspent refresh tokens;
    /// true when it was live. Scoped to the owner: another user's session id
    /// changes nothing (no token of theirs is spent).
    async fn revoke_session(&self, session_id: Uuid, by: Revocation) -> StoreResult<bool>;

    /// Ends the live session of `by.owner` that the refresh token (spent or
    /// not) belongs to, as [`SessionStore::revoke_session`]; its id when it
    /// was live. Another user's token changes nothing.
    async fn revoke_session_by_refresh(
        &self,
        token_hash: &str,
        by: Revocation,
    ) -> StoreResult<Option<Uuid>>;

    /// Ends every live session of `by.owner` but `except`; returns their ids.
    async fn revoke_user_sessions(
        &self,
        except: Option<Uuid>,
        by: Revocation,
    ) -> StoreResult<Vec<Uuid>>;

    /// Ends every live session of every user with its unspent refresh tokens
    /// (revoked with their session, so presenting one later is no theft
    /// alarm); returns the sessions ended.
    async fn revoke_all_sessions(
        &self,
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
}

/// One-time tokens: email verification and password reset.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores another verification token for a user (resend), with its mail.
    async fn add_verification_token(&self, token: NewVerificationToken) -> StoreResult<()>;

    /// Spends a verification token and marks the email verified, atomically.
    /// `None` when the token is unknown, used or expired.
    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;

    /// Locks the user, hands the creation times of its reset tokens to
    /// `admit`, and stores the new token (with its mail) when it agrees,
    /// ending the user's earlier live reset tokens; true when stored.
    async fn add_reset_token(&self, token: NewResetToken) -> StoreResult<bool>;

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
}

/// Second factors: login challenges, email OTP, TOTP and recovery codes.
#[async_trait]
pub trait SecondFactorStore: Send + Sync {
    /// Locks the user, hands the creation times of its challenges to
    /// `c.admit`, and stores the challenge when it agrees; true when stored.
    async fn create_mfa_challenge(&self, c: NewMfaChallenge) -> StoreResult<bool>;

    /// A live login challenge.
    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>>;

    /// Stores a new email code unless `code.max_sends` were already sent; true when stored.
    async fn set_challenge_code(&self, id: Uuid, code: ChallengeCode) -> StoreResult<bool>;

    /// Counts one check of a code, atomically; false when none is left.
    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool>;

    /// Spends a challenge; false when it was already spent.
    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Locks the user, applies the change to its second factors and writes
    /// them with their derived flags, the recovery codes and the mail; false
    /// (nothing written) when the change refuses.
    async fn update_second_factors(
        &self,
        user_id: Uuid,
        update: SecondFactorUpdate,
    ) -> StoreResult<bool>;

    /// The newest live step-up challenge of a user (see [`STEP_UP`]).
    async fn find_step_up_challenge(
        &self,
        user_id: Uuid,
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>>;

    /// Spends an unused recovery code whose keyed hash is `code.keyed_hash`
    /// (or, on a row not yet converted, whose legacy hash is
    /// `code.legacy_hash`); false when there is none such.
    async fn use_recovery_code(&self, user_id: Uuid, code: PresentedCode) -> StoreResult<bool>;

    /// Converts a batch of legacy recovery-code hashes with `rekey`; returns
    /// how many were converted (0: none is left). Safe on several instances.
    async fn rekey_recovery_codes(&self, rekey: CodeRekey) -> StoreResult<u64>;
}

/// The durable mail outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a mail for delivery.
    async fn enqueue_mail(&self, mail: OutboxMail, now: DateTime<Utc>) -> StoreResult<()>;

    /// Leases up to `claim.limit` due mails for `claim.lease` (other
    /// workers, on any instance, skip leased ones: each mail is sent once).
    /// A store shared by several instances also holds back every mail to an
    /// address while another one to it is leased, so one address's mails
    /// keep their order across instances.
    async fn claim_mail(&self, claim: MailClaim) -> StoreResult<Vec<OutboxMail>>;

    /// Marks a mail sent (its payload is cleared).
    async fn mail_sent(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    /// Schedules another attempt.
    async fn mail_retry(&self, id: Uuid, retry: MailRetry) -> StoreResult<()>;

    /// Gives up on a mail (its sealed payload stays until the sweep deletes
    /// the row, so an operator can queue it again).
    async fn mail_dead(&self, id: Uuid, error: &str) -> StoreResult<()>;

    async fn outbox_stats(&self, now: DateTime<Utc>) -> StoreResult<OutboxStats>;

    /// Puts dead mail back in the queue, due now, with its attempts counted
    /// afresh; returns how many. Only mail that still holds its payload can.
    async fn retry_dead_mail(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// Lockout windows keyed by account (normalized email).
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// The lockout window of an account key (normalized email).
    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>>;

    /// Applies `update.transition` to the lockout window of `key` atomically:
    /// the row is locked (Postgres `FOR UPDATE`; SQLite's single writer) from
    /// the read to the write, so instances sharing the database agree.
    async fn update_lockout(&self, key: &str, update: LockoutUpdate) -> StoreResult<()>;

    /// Resets the lockout window of `key` at `at`, writing only a window that
    /// holds something (no row, or a row at its default, stays as it is).
    async fn reset_lockout(&self, key: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

/// Rate-limit windows kept where every instance sees them: the fallback of
/// the limiter while Redis is unreachable (or not configured).
#[async_trait]
pub trait RateStore: Send + Sync {
    /// Counts one request under `key` against `window` in one short
    /// transaction holding the key's row: the logged times are read, the pure
    /// rule decides ([`SlidingWindow::hit`]) and the log is written. `None`
    /// where the backend is not shared (the embedded database has one
    /// instance, whose memory decides).
    async fn rate_hit(
        &self,
        key: &str,
        window: SlidingWindow,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WindowHit>>;
}

/// The audit log: one hash chain of rows (`docs/audit.md`). Every row any
/// write path adds is appended under the chain's lock (PostgreSQL: the
/// `audit_chain` row, `FOR UPDATE`; SQLite: the write transaction).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one row, in its own transaction.
    async fn insert_audit(&self, event: AuditEvent) -> StoreResult<()>;

    /// Appends `events` in this order, all in one transaction under one
    /// acquisition of the chain's lock: all are written or none.
    async fn insert_audit_batch(&self, events: &[AuditEvent]) -> StoreResult<()>;

    /// The chain's head (last row appended) and anchor (last row pruned).
    async fn audit_chain_state(&self) -> StoreResult<ChainState>;

    /// Rows in chain order with `page.past < seq <= upto`.
    async fn audit_chain_rows(&self, page: Page, upto: i64) -> StoreResult<Vec<ChainRow>>;

    /// A user's rows with `seq < page.past`, newest first.
    async fn audit_of_user(&self, user_id: Uuid, page: Page) -> StoreResult<Vec<ChainRow>>;

    /// Rows created in `span` with `seq > page.past`, in chain order.
    async fn audit_between(
        &self,
        span: std::ops::Range<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<ChainRow>>;
}

/// Consents: the append-only history, and the sign-in step that waits for the
/// current terms and privacy policy to be accepted.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// A user's consent statements, oldest first.
    async fn consent_history(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>>;

    /// Appends statements (a record is never updated). With a challenge, it
    /// is spent first in the same transaction; false (nothing written) when
    /// it was already spent or has expired.
    async fn append_consents(&self, change: ConsentChange) -> StoreResult<bool>;

    async fn create_consent_challenge(&self, c: NewConsentChallenge) -> StoreResult<()>;

    /// A live (unspent, unexpired) consent challenge.
    async fn find_consent_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsentChallengeRecord>>;
}

/// What the service holds about a person: export, erasure and retention
/// (GDPR Art. 15, 17, 20; `docs/retention.md`).
#[async_trait]
pub trait PrivacyStore: Send + Sync {
    /// Everything held about a live account; `recipient_tag` finds its mail.
    async fn export_user(
        &self,
        user_id: Uuid,
        recipient_tag: &str,
    ) -> StoreResult<Option<UserExport>>;

    /// Erases an account in one transaction (see [`Erasure`]); returns the
    /// sessions that were live, or `None` when there is no such live account.
    async fn erase_user(&self, erasure: Erasure) -> StoreResult<Option<Vec<Uuid>>>;

    /// Deletes what the retention table keeps no longer: audit rows (a
    /// prune of the chain's oldest rows that records the new anchor and
    /// appends an `audit_pruned` row) and erased accounts (with their consent
    /// history) past their period. Idempotent and batched, so instances may
    /// overlap.
    async fn sweep_retention(&self, cutoffs: crate::domain::retention::Cutoffs)
        -> StoreResult<u64>;
}

/// Devices seen at sign-in, per user, identified by a keyed fingerprint.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Records a successful sign-in in one transaction holding the user's
    /// row: a known fingerprint gets its last sighting (time, user agent,
    /// IP) updated; an unknown one is inserted, and announced (the mail
    /// queued with it) unless it is the first device of an account that had
    /// never signed in.
    async fn record_device(&self, sighting: DeviceSighting) -> StoreResult<DeviceSeen>;

    /// Whether a sign-in from `probe.fingerprint` would be announced: the
    /// device is unknown to the account and the account has a device or
    /// signed in before.
    async fn device_would_be_new(&self, probe: DeviceProbe) -> StoreResult<bool>;

    /// The user's devices, first seen first; `current` marks the one whose
    /// fingerprint is `current`.
    async fn list_devices(
        &self,
        user_id: Uuid,
        current: Option<String>,
    ) -> StoreResult<Vec<ListedDevice>>;

    /// Deletes one device of `owner`; false when `owner` has no such device
    /// (another user's device is left alone).
    async fn forget_device(&self, owner: Uuid, device_id: Uuid) -> StoreResult<bool>;
}

/// The system of record: every aggregate, plus what spans them.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + TokenStore
    + SecondFactorStore
    + OutboxStore
    + LockoutStore
    + RateStore
    + AuditStore
    + ConsentStore
    + PrivacyStore
    + DeviceStore
    + Send
    + Sync
    + 'static
{
    /// A name for logs and `/ready` ("postgres" or "sqlite").
    fn kind(&self) -> &'static str;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// The fingerprint recorded for the key of `purpose`, recording
    /// `fingerprint` first when there is none: the first instance's key.
    async fn key_fingerprint(&self, purpose: &str, fingerprint: &str) -> StoreResult<String>;

    /// Records `fingerprint` for the key of `purpose` in place of any
    /// (an operator adopting a new key).
    async fn replace_key_fingerprint(&self, purpose: &str, fingerprint: &str) -> StoreResult<()>;

    /// Grows whenever another process wrote to this database and said so
    /// (the operator commands beside an embedded server); constant where
    /// every instance reads the rows anyway. In-memory copies of rows are
    /// dropped when it moves.
    fn external_writes(&self) -> u64 {
        0
    }

    /// Open and idle pooled connections, where the backend pools them (gauges).
    fn pool_state(&self) -> Option<(u32, u32)> {
        None
    }

    /// Deletes what has expired: sessions past their end (and their refresh
    /// tokens), ended sessions older than `keep_ended`, used or expired
    /// verification and reset tokens. Idempotent, so instances may overlap.
    async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        keep_ended: chrono::Duration,
    ) -> StoreResult<u64>;
}
