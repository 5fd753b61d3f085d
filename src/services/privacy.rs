//! What the service holds about a person: the export (GDPR Art. 15/20) and
//! the erasure (Art. 17) of an account. What is kept, and for how long, is
//! `docs/retention.md` (`domain::retention`), enforced by the expiry sweep.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

use super::consent_book::{self as consents, ConsentState};
use super::principal::current_user;
use super::principal::Principal;
use super::{erasure, reauth, Account, AuthError};
use crate::domain::consent::ConsentVersions;
use crate::domain::ClientContext;
use crate::storage::UserExport;

/// The `format` of the export document.
pub const EXPORT_FORMAT: &str = "suma-auth.export.v1";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportProfile {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// One statement of the consent history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportConsent {
    #[serde(rename = "type")]
    pub consent_type: String,
    pub granted: bool,
    pub version: String,
    pub at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportConsents {
    pub current: ConsentState,
    /// Every statement, oldest first.
    pub history: Vec<ExportConsent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportSession {
    pub id: Uuid,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    /// How the session was opened: `pwd`, `otp`.
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportDevice {
    pub id: Uuid,
    pub name: Option<String>,
    pub trusted: bool,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub flagged_at: Option<DateTime<Utc>>,
    pub flagged_reason: Option<String>,
    /// The user agent and IP address of the latest sign-in from the device.
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
}

/// Second-factor settings: never a secret, a code or a hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportSecondFactor {
    pub enabled: bool,
    pub methods: Vec<String>,
    /// A TOTP secret was set up and awaits confirmation.
    pub totp_setup_pending: bool,
    pub recovery_codes_unused: u64,
    pub recovery_codes_used: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportCredentials {
    pub password_changed_at: Option<DateTime<Utc>>,
    /// Earlier passwords kept (as hashes, never exported) to refuse their reuse.
    pub previous_passwords_kept: u64,
    pub failed_login_attempts: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportAuditEvent {
    pub id: Uuid,
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A mail queued or recently sent to the account's address (its content is
/// never kept once sent).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportMail {
    pub template: String,
    pub status: String,
    pub queued_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// `GET /me/export`: everything held about the signed-in user, as one document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DataExport {
    /// `suma-auth.export.v1`.
    pub format: &'static str,
    pub exported_at: DateTime<Utc>,
    pub profile: ExportProfile,
    pub consents: ExportConsents,
    pub sessions: Vec<ExportSession>,
    /// Devices seen at sign-in.
    pub devices: Vec<ExportDevice>,
    pub second_factor: ExportSecondFactor,
    pub credentials: ExportCredentials,
    /// Security events about the user, newest first.
    pub audit_events: Vec<ExportAuditEvent>,
    pub mail: Vec<ExportMail>,
}

fn document(versions: &ConsentVersions, e: UserExport, now: DateTime<Utc>) -> DataExport {
    let u = e.user;
    let mut methods = Vec::new();
    if u.totp_enabled {
        methods.push("totp".to_string());
    }
    if u.email_otp_enabled {
        methods.push("email_otp".to_string());
    }
    let statements = consents::statements(&e.consents);
    DataExport {
        format: EXPORT_FORMAT,
        exported_at: now,
        profile: ExportProfile {
            id: u.id,
            email: u.email.as_str().to_string(),
            email_verified: u.email_verified,
            first_name: u.first_name,
            last_name: u.last_name,
            active: u.is_active,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        },
        consents: ExportConsents {
            current: consents::state_of(versions, &statements),
            history: e
                .consents
                .into_iter()
                .map(|c| ExportConsent {
                    consent_type: c.consent_type,
                    granted: c.consented,
                    version: c.version,
                    at: c.created_at,
                    ip_address: c.ip_address.map(|i| i.to_string()),
                    user_agent: c.user_agent,
                })
                .collect(),
        },
        sessions: e
            .sessions
            .into_iter()
            .map(|h| ExportSession {
                id: h.session.id,
                device_id: h.session.device_id,
                user_agent: h.session.user_agent,
                ip_address: h.session.ip_address.map(|i| i.to_string()),
                amr: h
                    .session
                    .amr
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                created_at: h.session.created_at,
                last_activity_at: h.session.last_activity_at,
                expires_at: h.session.expires_at,
                ended_at: h.session.invalidated_at,
                ended_reason: h.ended_reason,
            })
            .collect(),
        devices: e
            .devices
            .into_iter()
            .map(|d| ExportDevice {
                id: d.id,
                name: d.device_name,
                trusted: d.is_trusted,
                first_seen_at: d.first_seen_at,
                last_seen_at: d.last_seen_at,
                flagged_at: d.flagged_at,
                flagged_reason: d.flagged_reason,
                user_agent: d.user_agent,
                ip_address: d.ip_address.map(|ip| ip.to_string()),
            })
            .collect(),
        second_factor: ExportSecondFactor {
            enabled: u.two_factor_enabled || !methods.is_empty(),
            methods,
            totp_setup_pending: u.totp_pending_sealed.is_some(),
            recovery_codes_unused: e.recovery_codes_unused,
            recovery_codes_used: e.recovery_codes_used,
        },
        credentials: ExportCredentials {
            password_changed_at: e.password_changed_at,
            previous_passwords_kept: e.previous_passwords,
            failed_login_attempts: u.failed_login_attempts,
            locked_until: u.locked_until,
        },
        audit_events: e
            .audit
            .into_iter()
            .map(|a| ExportAuditEvent {
                id: a.id,
                event: a.event_type,
                outcome: a.event_status,
                at: a.created_at,
                ip_address: a.ip_address.map(|i| i.to_string()),
                user_agent: a.user_agent,
                details: a.metadata,
            })
            .collect(),
        mail: e
            .mail
            .into_iter()
            .map(|m| ExportMail {
                template: m.template,
                status: m.status,
                queued_at: m.created_at,
                sent_at: m.sent_at,
            })
            .collect(),
    }
}

/// `GET /me/export` (audited as `data_export`).
pub async fn export(
    svc: &Account,
    principal: &Principal,
    client: &ClientContext,
) -> Result<DataExport, AuthError> {
    let user = current_user(&svc.store, principal).await?;
    let tag = svc.mailer.recipient_tag(user.email.as_str());
    let held = svc
        .store
        .export_user(user.id, &tag)
        .await?
        .ok_or(AuthError::Unauthorized("the account no longer exists"))?;
    let now = svc.clock.now();
    let doc = document(svc.consents.versions(), held, now);
    svc.audit.record(
        "data_export",
        true,
        Some(user.id),
        client,
        serde_json::json!({"audit_events": doc.audit_events.len(), "sessions": doc.sessions.len()}),
    )
    .await;
    Ok(doc)
}

/// `DELETE /me`: a fresh proof as for changing second factors
/// ([`reauth::prove`]: the password, a wrong one counting toward the login
/// lockout, and while a second factor is enrolled a current code of one),
/// then [`erase_account`](super::erasure::erase_account): every session ends at once on every instance and
/// the account is erased (see [`Erasure`]). The farewell mail is queued after
/// the outbox was purged of everything else queued to the address.
#[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
pub async fn erase(
    svc: &Account,
    principal: &Principal,
    password: &SecretString,
    code: Option<&str>,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = current_user(&svc.store, principal).await?;
    reauth::prove(
        &svc.reauth,
        &user,
        reauth::Proof { password, code },
        client,
        "account_erasure",
    )
    .await?;
    erasure::erase_account(&svc.eraser, &user).await.map(|_| ())
}
