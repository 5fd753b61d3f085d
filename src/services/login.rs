//! Login: password check on the hashing pool, then a session and a token pair.
//!
//! Unknown emails are verified against a dummy hash so that they cost the same
//! time as wrong passwords and get the same answer. `email_not_verified` is
//! only said after a correct password, so it reveals nothing to a guesser.

use secrecy::SecretString;
use serde::Serialize;

use super::credentials::{self, record_failure};
use super::tokens::open_session;
pub use super::tokens::TokenPair;
use super::{AuthError, Services};
use crate::domain::ClientContext;
use crate::domain::Email;
use crate::security;

pub struct LoginInput {
    pub email: String,
    pub password: SecretString,
    pub device_id: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn login(
    svc: &Services,
    input: LoginInput,
    client: ClientContext,
) -> Result<LoginOutcome, AuthError> {
    let device_id = input
        .device_id
        .map(|d| d.trim().chars().take(255).collect::<String>())
        .filter(|d| !d.is_empty());
    // A malformed address cannot have an account: same path as an unknown one.
    let email = Email::parse(&input.email, "email").ok();
    let key = security::account_key(&input.email);
    let user = match &email {
        Some(email) => svc.store.find_user_by_email(email).await?,
        None => None,
    };

    // Reserve the attempt before verifying: at most MAX_LOGIN_ATTEMPTS
    // verifications per window, whatever the concurrency or instance count.
    if let Err(e) = credentials::reserve(svc, &key).await {
        if matches!(e, AuthError::AccountLocked { .. }) {
            refused(svc, "account_locked", user.as_ref().map(|u| u.id), &client).await;
        }
        return Err(e);
    }

    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = svc.hasher.verify(&input.password, stored).await?;
    let user = match (user, verified.matches) {
        (Some(user), true) => user,
        (user, _) => {
            let user_id = user.as_ref().map(|u| u.id);
            tracing::info!(
                known_account = user_id.is_some(),
                "login failed: invalid credentials"
            );
            refused(svc, "invalid_credentials", user_id, &client).await;
            record_failure(svc, &key, user.as_ref(), &client).await;
            return Err(AuthError::InvalidCredentials);
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // The password is proven: the window starts afresh.
    credentials::record_success(svc, &key).await;
    if !user.is_active {
        refused(svc, "inactive", Some(user.id), &client).await;
        return Err(AuthError::AccountDisabled);
    }
    if !user.email_verified {
        refused(svc, "email_not_verified", Some(user.id), &client).await;
        return Err(AuthError::EmailNotVerified);
    }
    let rehash = if verified.needs_rehash {
        svc.hasher.hash(&input.password).await.ok()
    } else {
        None
    };
    // New terms or privacy versions are accepted before anything else.
    if let Some(required) = super::consents::gate(svc, &user, device_id.clone()).await? {
        if let Some(hash) = rehash {
            svc.store
                .record_login_success(user.id, svc.clock.now(), Some(hash))
                .await?;
        }
        refused(svc, "consent_required", Some(user.id), &client).await;
        return Err(AuthError::ConsentRequired(required));
    }
    // A device new to an account without a second factor may have to pass
    // an emailed code first (NEW_DEVICE_STEP_UP).
    let new_device =
        super::devices::step_up_required(svc, &user, device_id.as_deref(), &client).await?;
    if super::mfa::required(&user) || new_device {
        if let Some(hash) = rehash {
            svc.store
                .record_login_success(user.id, svc.clock.now(), Some(hash))
                .await?;
        }
        let challenge = if new_device {
            super::mfa::new_device_challenge(svc, &user, device_id, &client).await?
        } else {
            super::mfa::challenge(svc, &user, device_id, &client).await?
        };
        let detail = serde_json::json!({
            "mfa_required": true, "methods": challenge.methods, "new_device": new_device,
        });
        svc.audit("login_password", true, Some(user.id), &client, detail)
            .await;
        return Ok(LoginOutcome::MfaRequired(challenge));
    }
    let pair = open_session(svc, &user, device_id.clone(), &client, &["pwd"]).await?;
    super::devices::record_sign_in(svc, &user, device_id.as_deref(), &client, pair.session_id)
        .await?;
    svc.store
        .record_login_success(user.id, svc.clock.now(), rehash)
        .await?;
    svc.metrics.login_success(false);
    svc.audit(
        "login",
        true,
        Some(user.id),
        &client,
        serde_json::json!({"session_id": pair.session_id, "amr": ["pwd"]}),
    )
    .await;
    Ok(LoginOutcome::Tokens(pair))
}

/// What a correct password leads to.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    /// A second factor is on: the client continues at `/otp/verify`.
    MfaRequired(super::mfa::MfaRequired),
}

/// A refused sign-in, said once: the metric by reason and the audit row.
async fn refused(
    svc: &Services,
    reason: &'static str,
    user_id: Option<uuid::Uuid>,
    client: &ClientContext,
) {
    svc.metrics.login_failure(reason);
    let detail = serde_json::json!({"reason": reason});
    svc.audit("login", false, user_id, client, detail).await;
}
