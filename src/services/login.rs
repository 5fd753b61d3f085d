//! Login: password check on the hashing pool, then a session and a token pair.
//!
//! Unknown emails are verified against a dummy hash so that they cost the same
//! time as wrong passwords and get the same answer. `email_not_verified` is
//! only said after a correct password, so it reveals nothing to a guesser.

use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;
use suma_auth_actors::{ActorError, FailureOutcome, Reservation};
use uuid::Uuid;

use super::{AuthError, Services};
use crate::auth::tokens;
use crate::domain::Email;
use crate::mail::templates;
use crate::security;
use crate::storage::{ClientContext, NewSession, UserRecord};

pub struct LoginInput {
    pub email: String,
    pub password: SecretString,
    pub device_id: Option<String>,
}

/// The token pair of API.md.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the session's absolute end.
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
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
    let now = security::to_timestamp(svc.clock.now());
    match svc
        .actors
        .reserve_login(&key, now)
        .await
        .map_err(actor_error)?
    {
        Reservation::Allowed { .. } => {}
        Reservation::Locked { retry_after_ms } => {
            svc.metrics.login_failure("account_locked");
            let user_id = user.as_ref().map(|u| u.id);
            let reason = serde_json::json!({"reason": "account_locked"});
            svc.audit("login", false, user_id, &client, reason).await;
            return Err(AuthError::AccountLocked {
                retry_after: Duration::from_millis(retry_after_ms.max(1000) as u64),
            });
        }
    }

    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = svc.hasher.verify(&input.password, stored).await?;
    let user = match (user, verified.matches) {
        (Some(user), true) => user,
        (user, _) => {
            let user_id = user.as_ref().map(|u| u.id);
            svc.metrics.login_failure("invalid_credentials");
            tracing::info!(
                known_account = user_id.is_some(),
                "login failed: invalid credentials"
            );
            let reason = serde_json::json!({"reason": "invalid_credentials"});
            svc.audit("login", false, user_id, &client, reason).await;
            record_failure(svc, &key, user.as_ref(), &client).await;
            return Err(AuthError::InvalidCredentials);
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // The password is proven: the window starts afresh.
    if let Err(e) = svc.actors.record_login_success(&key).await {
        tracing::warn!(error = %e, "lockout reset not recorded");
    }
    if !user.is_active {
        svc.metrics.login_failure("inactive");
        svc.audit(
            "login",
            false,
            Some(user.id),
            &client,
            serde_json::json!({"reason": "inactive"}),
        )
        .await;
        return Err(AuthError::AccountDisabled);
    }
    if !user.email_verified {
        svc.metrics.login_failure("email_not_verified");
        svc.audit(
            "login",
            false,
            Some(user.id),
            &client,
            serde_json::json!({"reason": "email_not_verified"}),
        )
        .await;
        return Err(AuthError::EmailNotVerified);
    }
    let rehash = if verified.needs_rehash {
        svc.hasher.hash(&input.password).await.ok()
    } else {
        None
    };
    if super::mfa::required(&user) {
        if let Some(hash) = rehash {
            svc.store
                .record_login_success(user.id, svc.clock.now(), Some(hash))
                .await?;
        }
        let challenge = super::mfa::challenge(svc, &user, device_id).await?;
        let detail = serde_json::json!({"mfa_required": true, "methods": challenge.methods});
        svc.audit("login_password", true, Some(user.id), &client, detail)
            .await;
        return Ok(LoginOutcome::MfaRequired(challenge));
    }
    let pair = open_session(svc, &user, device_id, &client, &["pwd"]).await?;
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

pub(crate) fn actor_error(e: ActorError) -> AuthError {
    match e {
        // Every attempt of the window is being checked and none settled in
        // time: busy, not locked, and not a failure.
        ActorError::Overloaded | ActorError::AttemptsInFlight => AuthError::Busy {
            retry_after: Duration::from_secs(1),
        },
        ActorError::Unavailable => {
            AuthError::Unavailable("the security actors did not answer".into())
        }
    }
}

/// Counts a failed verification; when it locks the account, says so once:
/// metric, audit row, the owner's mail, and the user row.
pub(crate) async fn record_failure(
    svc: &Services,
    key: &str,
    user: Option<&UserRecord>,
    client: &ClientContext,
) {
    let now = security::to_timestamp(svc.clock.now());
    let outcome = match svc.actors.record_login_failure(key, now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(error = %e, "login failure not recorded by the actor");
            return;
        }
    };
    let (failures, locked_until) = match outcome {
        FailureOutcome::Counted { failures } => (failures, None),
        FailureOutcome::Locked { until } => {
            svc.metrics.account_lockout();
            tracing::warn!(
                known_account = user.is_some(),
                "account locked after repeated failures"
            );
            svc.audit(
                "account_locked",
                true,
                user.map(|u| u.id),
                client,
                serde_json::json!({"until": security::from_timestamp(until)}),
            )
            .await;
            if let Some(user) = user {
                svc.mailer
                    .dispatch(templates::account_locked(
                        user.email.as_str(),
                        svc.config.security.lockout_duration.as_secs().div_ceil(60),
                    ))
                    .await;
            }
            (
                svc.config.security.max_login_attempts,
                Some(security::from_timestamp(until)),
            )
        }
    };
    if let Some(user) = user {
        if let Err(e) = svc
            .store
            .record_login_failure(user.id, failures, locked_until)
            .await
        {
            tracing::warn!(error = %e, "failed-login counters not updated");
        }
    }
}

/// Opens a session with its first refresh token and signs an access token.
pub async fn open_session(
    svc: &Services,
    user: &UserRecord,
    device_id: Option<String>,
    client: &ClientContext,
    amr: &[&str],
) -> Result<TokenPair, AuthError> {
    let now = svc.clock.now();
    let absolute = svc.config.security.session_absolute_timeout;
    let session_id = Uuid::new_v4();
    let refresh_token = tokens::random_token();
    svc.store
        .create_session(NewSession {
            id: session_id,
            user_id: user.id,
            refresh_token_id: Uuid::new_v4(),
            refresh_token_hash: tokens::token_hash(&refresh_token),
            device_id,
            client: client.clone(),
            amr: amr.join(" "),
            created_at: now,
            expires_at: now
                + chrono::Duration::from_std(absolute).unwrap_or(chrono::Duration::hours(8)),
        })
        .await?;
    let (access_token, _) = svc.jwt.issue(user.id, session_id, amr, now.timestamp())?;
    Ok(TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: svc.jwt.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: absolute.as_secs(),
        session_id,
    })
}
