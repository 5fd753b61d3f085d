//! Password reset: one answer, in the same time, for every email (the
//! account is looked up after the answer); a single-use 256-bit token,
//! stored hashed, valid one hour, at most a few per account per hour, and
//! only the newest one works. The confirmation sets the password, ends every
//! session, clears the lockout.

use secrecy::SecretString;

use super::password::{ensure_not_reused, store_new_password};
use super::{AuthError, Credentials, ResetError};
use crate::auth::tokens;
use crate::domain::ClientContext;
use crate::domain::{reset, Email, NewPassword, PasswordContext};
use crate::mail::templates;
use crate::storage::NewResetToken;

/// Reset links mailed per account per hour, at most.
pub const MAX_PER_HOUR: u32 = 3;
const TOKEN_TTL: chrono::Duration = chrono::Duration::hours(1);

/// `POST /password-reset`: checks the address and answers; whether it has
/// an account is looked at only after the answer (see [`super::background`]),
/// so known and unknown addresses do the same work before answering.
pub async fn request(
    svc: &Credentials,
    email: &str,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let email = Email::parse(email, "email").map_err(|e| AuthError::Validation(vec![e]))?;
    let (svc2, client) = (svc.clone(), client.clone());
    svc.background.run(async move {
        if let Err(e) = mail_link(&svc2, email, &client).await {
            tracing::warn!(error = %e, "password reset request not completed");
        }
    })
}

/// Mails a reset link to an active account (under the hourly cap); a new
/// link ends the earlier ones.
#[tracing::instrument(skip_all)]
async fn mail_link(
    svc: &Credentials,
    email: Email,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let Some(user) = svc.store.find_user_by_email(&email).await? else {
        return Ok(());
    };
    if !user.is_active {
        return Ok(());
    }
    let token = tokens::random_token();
    let now = svc.clock.now();
    let mail = templates::password_reset(email.as_str(), svc.mailer.public_url(), &token);
    let mut queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    // Mails to one address go out in this order: the link's own time, so
    // the working link (the one created last) is the last delivered.
    queued.created_at = now;
    let stored = svc
        .store
        .add_reset_token(NewResetToken {
            user_id: user.id,
            token_hash: tokens::token_hash(&token),
            expires_at: now + TOKEN_TTL,
            now,
            admit: Box::new(move |created| reset::under_hourly_cap(created, now, MAX_PER_HOUR)),
            mail: Some(queued),
        })
        .await?;
    svc.audit
        .record(
            "password_reset_requested",
            stored,
            Some(user.id),
            client,
            serde_json::json!({"mailed": stored}),
        )
        .await;
    if stored {
        svc.mailer.queued(mail.template);
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn confirm(
    svc: &Credentials,
    token: &str,
    new_password: &SecretString,
    client: &ClientContext,
) -> Result<(), ResetError> {
    let token = token.trim();
    if !tokens::well_formed(token) {
        return Err(ResetError::InvalidLink);
    }
    let hash = tokens::token_hash(token);
    let now = svc.clock.now();
    // Check the new password before spending the token, so a weak one can be retried.
    let user_id = svc
        .store
        .peek_reset_token(&hash, now)
        .await?
        .ok_or(ResetError::InvalidLink)?;
    // A link mailed before the account was disabled sets nothing.
    let user = svc
        .store
        .find_user_by_id(user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(ResetError::InvalidLink)?;
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    let context = PasswordContext::new(
        Some(&user.email),
        user.first_name.as_deref(),
        user.last_name.as_deref(),
    );
    let new_password = NewPassword::parse(new_password, &context, "new_password")
        .map_err(ResetError::PasswordRefused)?;
    ensure_not_reused(svc, user.id, &user.password_hash, new_password.secret())
        .await
        .map_err(|e| match e {
            AuthError::Validation(errors) => ResetError::PasswordRefused(errors),
            e => ResetError::Other(e),
        })?;
    let password_hash = svc.hasher.hash(new_password.secret()).await?;
    if svc.store.consume_reset_token(&hash, now).await? != Some(user.id) {
        return Err(ResetError::InvalidLink);
    }
    let ended = store_new_password(svc, &user, &password_hash, None, now).await?;
    // The owner proved control of the mailbox: the lockout ends.
    if let Err(e) = svc.passwords.clear(user.email.as_str()).await {
        tracing::warn!(error = %e, "lockout not cleared after reset");
    }
    svc.audit
        .record(
            "password_reset",
            true,
            Some(user.id),
            client,
            serde_json::json!({"sessions_ended": ended}),
        )
        .await;
    Ok(())
}
