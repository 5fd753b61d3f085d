//! The end of a sign-in, shared by its three paths: a password (`/login`),
//! the consent acceptance that continues one (`/consents/accept`) and the
//! code step (`/otp/verify`). It stands below them so that each finishes a
//! sign-in the same way without importing another.
//!
//! [`SignIn`] is the area of those three paths.

use serde::Serialize;
use uuid::Uuid;

use super::consent_book::ConsentBook;
use super::credentials::PasswordCheck;
use super::devices::Devices;
use super::factor_check::CodeCheck;
use super::second_factor::{self, Challenges, MfaRequired};
use super::tokens::{open_session, Opening, SessionOpener, TokenPair};
use super::{devices, Audit, AuthError, Parts};
use crate::auth::hashing::PasswordHasher;
use crate::clock::Clock;
use crate::domain::ClientContext;
use crate::storage::DynStore;
use crate::storage::UserRecord;
use crate::telemetry::metrics::Metrics;

/// The sign-in area: login, the consent acceptance that continues one, and
/// the code step. Cheap to clone.
#[derive(Clone)]
pub struct SignIn {
    pub(super) store: DynStore,
    pub(super) hasher: PasswordHasher,
    pub(super) metrics: Metrics,
    pub(super) clock: Clock,
    pub(super) audit: Audit,
    pub(super) passwords: PasswordCheck,
    pub(super) codes: CodeCheck,
    pub(super) challenges: Challenges,
    pub(super) devices: Devices,
    pub(super) opener: SessionOpener,
    pub(super) consents: ConsentBook,
}

impl SignIn {
    pub fn new(
        parts: &Parts,
        passwords: PasswordCheck,
        codes: CodeCheck,
        challenges: Challenges,
        devices: Devices,
        consents: ConsentBook,
    ) -> Self {
        Self {
            store: parts.store.clone(),
            hasher: parts.hasher.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            passwords,
            codes,
            challenges,
            devices,
            opener: SessionOpener::new(parts),
            consents,
        }
    }
}

/// What a correct password leads to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    /// A second factor is on: the client continues at `/otp/verify`.
    MfaRequired(MfaRequired),
}

/// After a correct password and accepted terms: the second-factor step when
/// a factor is on or the device must pass an emailed code first
/// (`NEW_DEVICE_STEP_UP`), else the session. `rehash`, a new hash of the
/// password, is stored either way.
pub async fn after_password(
    svc: &SignIn,
    user: &UserRecord,
    device_id: Option<String>,
    client: &ClientContext,
    rehash: Option<String>,
) -> Result<LoginOutcome, AuthError> {
    let new_device =
        devices::step_up_required(&svc.devices, user, device_id.as_deref(), client).await?;
    if !second_factor::required(user) && !new_device {
        let pair = open(svc, user, device_id, client, &["pwd"], rehash, None).await?;
        return Ok(LoginOutcome::Tokens(pair));
    }
    keep_rehash(svc, user, rehash).await?;
    let opened = if new_device {
        second_factor::new_device_challenge(&svc.challenges, user, device_id).await
    } else {
        second_factor::challenge(&svc.challenges, user, device_id).await
    };
    let challenge = match opened {
        Ok(challenge) => challenge,
        Err(e) => {
            if matches!(e, AuthError::RateLimited { .. }) {
                refused(svc, "login", "too_many_challenges", Some(user.id), client).await;
            }
            return Err(e);
        }
    };
    let detail = serde_json::json!({
        "mfa_required": true, "methods": challenge.methods, "new_device": new_device,
    });
    svc.audit
        .record("login_password", true, Some(user.id), client, detail)
        .await;
    Ok(LoginOutcome::MfaRequired(challenge))
}

/// Opens the session of a finished sign-in (`amr`: how it was proven) with
/// the user's last login (and `rehash`, a new password hash), the spending
/// of the second-factor challenge it completes (`completes`) and, when the
/// account knows it, the device's sighting; records the rest: a device new
/// to the account, the metric and the audit row.
pub async fn open(
    svc: &SignIn,
    user: &UserRecord,
    device_id: Option<String>,
    client: &ClientContext,
    amr: &[&str],
    rehash: Option<String>,
    completes: Option<Uuid>,
) -> Result<TokenPair, AuthError> {
    // A device the account knows is recorded with the session; any other
    // after it, where a new one is announced.
    let fingerprint = devices::fingerprint_of(&svc.devices, device_id.as_deref(), client);
    let opening = Opening {
        device_id: device_id.clone(),
        device_fingerprint: Some(fingerprint),
        amr,
        rehash,
        completes_challenge: completes,
    };
    let (pair, device_known) = open_session(&svc.opener, user, client, opening).await?;
    if !device_known {
        devices::record_sign_in(
            &svc.devices,
            user,
            device_id.as_deref(),
            client,
            pair.session_id,
        )
        .await?;
    }
    svc.metrics.login_success(amr.contains(&"otp"));
    svc.audit
        .record(
            "login",
            true,
            Some(user.id),
            client,
            serde_json::json!({"session_id": pair.session_id, "amr": amr}),
        )
        .await;
    Ok(pair)
}

/// Stores `rehash`, a new hash of a proven password, when the sign-in stops
/// short of a session (which would store it with the last login).
pub async fn keep_rehash(
    svc: &SignIn,
    user: &UserRecord,
    rehash: Option<String>,
) -> Result<(), AuthError> {
    if let Some(hash) = rehash {
        svc.store
            .record_login_success(user.id, svc.clock.now(), Some(hash))
            .await?;
    }
    Ok(())
}

/// A refused sign-in step, said once: the metric by reason and the audit
/// row `event`.
pub async fn refused(
    svc: &SignIn,
    event: &'static str,
    reason: &'static str,
    user_id: Option<Uuid>,
    client: &ClientContext,
) {
    svc.metrics.login_failure(reason);
    let detail = serde_json::json!({"reason": reason});
    svc.audit
        .record(event, false, user_id, client, detail)
        .await;
}
