//! Login: password check on the hashing pool, then the consent gate and the
//! end of the sign-in ([`super::sign_in`]): a session, or the second-factor step.
//!
//! Unknown emails are verified against a dummy hash so that they cost the same
//! time as wrong passwords and get the same answer. `email_not_verified` is
//! only said after a correct password, so it reveals nothing to a guesser.

use secrecy::SecretString;

use super::credentials::{self, record_failure};
use super::sign_in::{self, LoginOutcome};
pub use super::tokens::TokenPair;
use super::{consent_book, AuthError, LoginError, SignIn};
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
    svc: &SignIn,
    input: LoginInput,
    client: ClientContext,
) -> Result<LoginOutcome, LoginError> {
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
    match credentials::reserve(&svc.passwords, &key).await {
        Ok(()) => {}
        Err(AuthError::AccountLocked { retry_after }) => {
            sign_in::refused(
                svc,
                "login",
                "account_locked",
                user.as_ref().map(|u| u.id),
                &client,
            )
            .await;
            return Err(LoginError::Locked { retry_after });
        }
        Err(e) => return Err(e.into()),
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
            sign_in::refused(svc, "login", "invalid_credentials", user_id, &client).await;
            record_failure(&svc.passwords, &key, user.as_ref(), &client).await;
            return Err(LoginError::InvalidCredentials);
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // The password is proven: the window starts afresh.
    credentials::record_success(&svc.passwords, &key).await;
    if !user.is_active {
        sign_in::refused(svc, "login", "inactive", Some(user.id), &client).await;
        return Err(LoginError::AccountDisabled);
    }
    if !user.email_verified {
        sign_in::refused(svc, "login", "email_not_verified", Some(user.id), &client).await;
        return Err(LoginError::EmailNotVerified);
    }
    let rehash = if verified.needs_rehash {
        svc.hasher.hash(&input.password).await.ok()
    } else {
        None
    };
    // New terms or privacy versions are accepted before anything else.
    if let Some(required) = consent_book::gate(&svc.consents, &user, device_id.clone()).await? {
        sign_in::keep_rehash(svc, &user, rehash).await?;
        sign_in::refused(svc, "login", "consent_required", Some(user.id), &client).await;
        return Err(LoginError::ConsentRequired(required));
    }
    Ok(sign_in::after_password(svc, &user, device_id, &client, rehash).await?)
}
