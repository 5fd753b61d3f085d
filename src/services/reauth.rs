//! A fresh proof for changing second factors. An access token alone never
//! changes them: the request carries the password (a wrong one counts toward
//! the password lockout) and, while a second factor is enrolled, a code of
//! a current one — a TOTP code or a recovery code while TOTP is on, an
//! emailed step-up code (`POST /me/2fa/email/code`) while email codes are on
//! (a wrong one counts toward the second-factor limit).
//!
//! After a change, the owner is mailed (in the change's transaction), an
//! audit row is written and every other session of the user ends through
//! the revocation path (store, then every instance's session cache).

use secrecy::SecretString;
use uuid::Uuid;

use super::credentials::PasswordCheck;
use super::factor_check::{self, Checked, CodeCheck, CodeKind};
use super::principal::Principal;
use super::second_factor::{self, MAX_ATTEMPTS};
use super::{credentials, Audit, AuthError, Parts};
use crate::clock::Clock;
use crate::domain::{ClientContext, FieldError};
use crate::security::SessionGuard;
use crate::storage::DynStore;
use crate::storage::{end_reason, LiveChallenge, Revocation, UserRecord};
use crate::telemetry::metrics::Metrics;

/// The fresh proof of a change and what follows the change. Cheap to clone.
#[derive(Clone)]
pub struct Reauth {
    passwords: PasswordCheck,
    codes: CodeCheck,
    store: DynStore,
    sessions: SessionGuard,
    metrics: Metrics,
    clock: Clock,
    audit: Audit,
}

impl Reauth {
    pub fn new(parts: &Parts, passwords: PasswordCheck, codes: CodeCheck) -> Self {
        Self {
            passwords,
            codes,
            store: parts.store.clone(),
            sessions: parts.sessions.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
        }
    }
}

/// What the request proves with.
pub struct Proof<'a> {
    pub password: &'a SecretString,
    /// A current second factor's code (required while one is enrolled).
    pub code: Option<&'a str>,
}

/// Checks the proof for `user`; a refusal writes an audit row `event` (failure).
pub async fn prove(
    svc: &Reauth,
    user: &UserRecord,
    proof: Proof<'_>,
    client: &ClientContext,
    event: &'static str,
) -> Result<(), AuthError> {
    credentials::prove_password(&svc.passwords, user, proof.password, client, Some(event)).await?;
    if !second_factor::required(user) {
        return Ok(());
    }
    let code = proof
        .code
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            AuthError::Validation(vec![FieldError::new(
                "code",
                "code_required",
                "a code of a current second factor is required",
            )])
        })?;
    let step_up = if user.email_otp_enabled {
        svc.store
            .find_step_up_challenge(
                user.id,
                LiveChallenge {
                    now: svc.clock.now(),
                    max_attempts: MAX_ATTEMPTS,
                },
            )
            .await?
    } else {
        None
    };
    let checked = factor_check::limited(&svc.codes, user, client, || {
        factor_check::compare_code(&svc.codes, user, step_up.as_ref(), user.totp_enabled, code)
    })
    .await?;
    let refused = |reason: &'static str| serde_json::json!({"reason": reason});
    match checked {
        Checked::Accepted(kind) => {
            if let (CodeKind::Emailed, Some(challenge)) = (kind, &step_up) {
                svc.store
                    .consume_mfa_challenge(challenge.id, svc.clock.now())
                    .await?;
            }
            Ok(())
        }
        Checked::Wrong => {
            svc.audit
                .record(event, false, Some(user.id), client, refused("invalid_code"))
                .await;
            Err(AuthError::InvalidCode)
        }
        Checked::Locked { retry_after } => {
            svc.audit
                .record(
                    event,
                    false,
                    Some(user.id),
                    client,
                    refused("account_locked"),
                )
                .await;
            Err(AuthError::AccountLocked { retry_after })
        }
    }
}

/// After a change of second factors: every other session of the user ends
/// and the audit row `event` is written with `detail` (plus the count).
pub async fn changed(
    svc: &Reauth,
    principal: &Principal,
    client: &ClientContext,
    event: &'static str,
    mut detail: serde_json::Value,
) -> Result<(), AuthError> {
    let now = svc.clock.now();
    let ended: Vec<Uuid> = svc
        .sessions
        .end_user_sessions(
            Some(principal.session_id),
            Revocation::new(principal.user_id, end_reason::TWO_FACTOR_CHANGED, now),
        )
        .await?;
    svc.metrics
        .session_ended(end_reason::TWO_FACTOR_CHANGED, ended.len());
    if let Some(map) = detail.as_object_mut() {
        map.insert("sessions_ended".into(), ended.len().into());
    }
    svc.audit
        .record(event, true, Some(principal.user_id), client, detail)
        .await;
    Ok(())
}
