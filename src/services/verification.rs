//! Email verification: single-use 256-bit tokens, stored hashed, valid 24 h.

use super::{AuthError, Credentials};
use crate::auth::tokens;
use crate::domain::ClientContext;
use crate::domain::Email;
use crate::mail::templates;

#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn verify_email(
    svc: &Credentials,
    token: &str,
    client: ClientContext,
) -> Result<(), AuthError> {
    let token = token.trim();
    if !tokens::well_formed(token) {
        svc.metrics.email_verification("invalid");
        return Err(AuthError::InvalidToken);
    }
    let now = svc.clock.now();
    match svc
        .store
        .consume_verification_token(&tokens::token_hash(token), now)
        .await?
    {
        Some(user_id) => {
            tracing::Span::current().record("user_id", tracing::field::display(user_id));
            svc.metrics.email_verification("verified");
            svc.audit
                .record(
                    "email_verification",
                    true,
                    Some(user_id),
                    &client,
                    serde_json::json!({}),
                )
                .await;
            Ok(())
        }
        None => {
            svc.metrics.email_verification("invalid");
            Err(AuthError::InvalidToken)
        }
    }
}

/// `POST /verify-email/resend`: checks the address and answers; a fresh
/// link goes to an unverified account after the answer (see
/// [`super::background`]), so every address does the same work before
/// answering.
pub async fn resend(
    svc: &Credentials,
    email: &str,
    client: ClientContext,
) -> Result<(), AuthError> {
    let email = Email::parse(email, "email").map_err(|e| AuthError::Validation(vec![e]))?;
    let svc2 = svc.clone();
    svc.background.run(async move {
        if let Err(e) = mail_link(&svc2, email, &client).await {
            tracing::warn!(error = %e, "verification resend not completed");
        }
    })
}

/// Sends a fresh link to an unverified, active account.
#[tracing::instrument(skip_all)]
async fn mail_link(
    svc: &Credentials,
    email: Email,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let Some(user) = svc.store.find_user_by_email(&email).await? else {
        return Ok(());
    };
    if user.email_verified || !user.is_active {
        return Ok(());
    }
    if !svc
        .rate_limiter
        .admit_mail_to(&email, svc.clock.now().timestamp_millis())
        .await
    {
        tracing::info!("verification resend not mailed: the address had its mail for this hour");
        svc.metrics.mail_withheld("verify_resend");
        return Ok(());
    }
    let token = tokens::random_token();
    let expires = svc.clock.now()
        + chrono::Duration::from_std(svc.verification_ttl).unwrap_or(chrono::Duration::hours(24));
    let mail = templates::verification(email.as_str(), svc.mailer.public_url(), &token);
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    svc.store
        .add_verification_token(crate::storage::NewVerificationToken {
            user_id: user.id,
            token_hash: tokens::token_hash(&token),
            expires_at: expires,
            now: svc.clock.now(),
            mail: Some(queued),
        })
        .await?;
    svc.mailer.queued(mail.template);
    svc.audit
        .record(
            "email_verification_resend",
            true,
            Some(user.id),
            client,
            serde_json::json!({}),
        )
        .await;
    Ok(())
}
