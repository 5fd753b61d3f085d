//! Records of consents, the data export and the erasure of an account (the
//! [`ConsentStore`](super::ConsentStore) and [`PrivacyStore`](super::PrivacyStore)
//! aggregates), with their column lists and row mappers, as in `models.rs`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::models::{ClientContext, Columns, NewConsent, OutboxMail, SessionRecord, UserRecord};

/// A consent statement as stored (`consent_records`).
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub consent_type: String,
    pub version: String,
    pub consented: bool,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The columns of [`ConsentRecord`], in the order [`consent_from`] reads them.
pub const CONSENT_COLUMNS: &str =
    "consent_type, consent_version, consented, ip_address, user_agent, created_at";

pub fn consent_from<R: Columns>(r: &R) -> Result<ConsentRecord, R::Error> {
    Ok(ConsentRecord {
        consent_type: r.text(0)?.unwrap_or_default(),
        version: r.text(1)?.unwrap_or_default(),
        consented: r.flag(2)?.unwrap_or(false),
        ip_address: r.ip(3)?,
        user_agent: r.text(4)?,
        created_at: r.time(5)?.unwrap_or_default(),
    })
}

/// Consent statements to append, where they were made; with `challenge`,
/// the sign-in step they answer is spent in the same transaction.
#[derive(Debug, Clone)]
pub struct ConsentChange {
    pub user_id: Uuid,
    pub consents: Vec<NewConsent>,
    pub client: ClientContext,
    pub now: DateTime<Utc>,
    pub challenge: Option<Uuid>,
}

/// A sign-in waiting for the current terms and privacy policy to be accepted.
#[derive(Debug, Clone)]
pub struct NewConsentChallenge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub device_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ConsentChallengeRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: Option<String>,
}

/// The columns of [`ConsentChallengeRecord`], in the order [`consent_challenge_from`] reads them.
pub const CONSENT_CHALLENGE_COLUMNS: &str = "id, user_id, device_id";

pub fn consent_challenge_from<R: Columns>(r: &R) -> Result<ConsentChallengeRecord, R::Error> {
    Ok(ConsentChallengeRecord {
        id: r.uuid(0)?,
        user_id: r.uuid(1)?,
        device_id: r.text(2)?,
    })
}

/// A device seen at sign-in (`device_fingerprints`; its hash is never read out).
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub id: Uuid,
    pub device_name: Option<String>,
    pub is_trusted: bool,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub flagged_at: Option<DateTime<Utc>>,
    pub flagged_reason: Option<String>,
    /// The user agent and address of the latest sign-in from the device.
    pub user_agent: Option<String>,
    pub ip_address: Option<IpAddr>,
}

/// The columns of [`DeviceRecord`], in the order [`device_from`] reads them.
pub const DEVICE_COLUMNS: &str = "id, device_name, is_trusted, first_seen_at, last_seen_at, \
     flagged_at, flagged_reason, user_agent, ip_address";

pub fn device_from<R: Columns>(r: &R) -> Result<DeviceRecord, R::Error> {
    Ok(DeviceRecord {
        id: r.uuid(0)?,
        device_name: r.text(1)?,
        is_trusted: r.flag(2)?.unwrap_or(false),
        first_seen_at: r.time(3)?,
        last_seen_at: r.time(4)?,
        flagged_at: r.time(5)?,
        flagged_reason: r.text(6)?,
        user_agent: r.text(7)?,
        ip_address: r.ip(8)?,
    })
}

/// An audit row as stored, read for the owner's export.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: Uuid,
    pub event_type: String,
    pub event_status: String,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The columns of [`AuditRecord`], in the order [`audit_from`] reads them.
pub const AUDIT_COLUMNS: &str =
    "id, event_type, event_status, ip_address, user_agent, metadata, created_at";

pub fn audit_from<R: Columns>(r: &R) -> Result<AuditRecord, R::Error> {
    Ok(AuditRecord {
        id: r.uuid(0)?,
        event_type: r.text(1)?.unwrap_or_default(),
        event_status: r.text(2)?.unwrap_or_default(),
        ip_address: r.ip(3)?,
        user_agent: r.text(4)?,
        metadata: r.json(5)?.unwrap_or_default(),
        created_at: r.time(6)?.unwrap_or_default(),
    })
}

/// A mail of the outbox, without its (sealed) content.
#[derive(Debug, Clone)]
pub struct MailRecord {
    pub template: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The columns of [`MailRecord`], in the order [`mail_record_from`] reads them.
pub const MAIL_RECORD_COLUMNS: &str = "template, status, created_at, sent_at";

pub fn mail_record_from<R: Columns>(r: &R) -> Result<MailRecord, R::Error> {
    Ok(MailRecord {
        template: r.text(0)?.unwrap_or_default(),
        status: r.text(1)?.unwrap_or_default(),
        created_at: r.time(2)?.unwrap_or_default(),
        sent_at: r.time(3)?,
    })
}

/// A session with why it ended, for the export.
#[derive(Debug, Clone)]
pub struct SessionHistory {
    pub session: SessionRecord,
    pub ended_reason: Option<String>,
}

/// Everything the store holds about one account (GDPR Art. 15/20). Secrets
/// and hashes stay out: only counts of recovery codes and old passwords.
#[derive(Debug, Clone)]
pub struct UserExport {
    pub user: UserRecord,
    pub password_changed_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub consents: Vec<ConsentRecord>,
    /// Every session still held (live, or ended within the retention), newest first.
    pub sessions: Vec<SessionHistory>,
    pub devices: Vec<DeviceRecord>,
    pub recovery_codes_unused: u64,
    pub recovery_codes_used: u64,
    pub previous_passwords: u64,
    /// Newest first.
    pub audit: Vec<AuditRecord>,
    /// Mail queued or recently sent to the account's address, newest first.
    pub mail: Vec<MailRecord>,
}

/// The erasure of an account (GDPR Art. 17), applied in one transaction:
/// its sessions, tokens, challenges, second factors, password history and
/// devices are deleted; its consent history and audit rows lose their IP
/// addresses and user agents; its lockout window and the mail queued to its
/// address are deleted; the user row keeps only its id, creation time and
/// `deleted_at`, under a placeholder address. The farewell mail, when given,
/// is queued after the purge.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub user_id: Uuid,
    /// A non-routable address unique to the account (`…@erased.invalid`).
    pub placeholder_email: String,
    pub recipient_tag: String,
    /// The lockout key of the address (its normalized form).
    pub lockout_key: String,
    pub now: DateTime<Utc>,
    pub farewell: Option<OutboxMail>,
}
