//! Passwords of signed-in users and of reset links: the change, the rule
//! that a new password repeats none of the recent ones, and what storing a
//! new password does (the owner's mail, every other session ends).

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use super::principal::{current_user, Principal};
use super::reauth::{self, Proof};
use super::{AuthError, Credentials};
use crate::domain::ClientContext;
use crate::domain::{FieldError, NewPassword, PasswordContext};
use crate::mail::templates;
use crate::storage::{end_reason, PasswordChange, Revocation};

/// Password hashes a new password may not repeat (the current one included).
pub const PASSWORD_HISTORY: u32 = 6;

/// Changes the password: the current one is required (a wrong one counts
/// toward the lockout) and, while a second factor is enrolled, a code of a
/// current one (`code`; a wrong one counts toward the second-factor limit); the new one must pass the policy and differ from the
/// recent ones; every other session ends.
pub async fn change_password(
    svc: &Credentials,
    principal: &Principal,
    current: &SecretString,
    code: Option<&str>,
    new: &SecretString,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = current_user(&svc.store, principal).await?;
    let proof = Proof {
        password: current,
        code,
    };
    reauth::prove(&svc.reauth, &user, proof, client, "password_change").await?;
    let context = PasswordContext::new(
        Some(&user.email),
        user.first_name.as_deref(),
        user.last_name.as_deref(),
    );
    let new_password =
        NewPassword::parse(new, &context, "new_password").map_err(AuthError::Validation)?;
    ensure_not_reused(svc, user.id, &user.password_hash, new_password.secret()).await?;
    let hash = svc.hasher.hash(new_password.secret()).await?;
    let now = svc.clock.now();
    let ended = store_new_password(svc, &user, &hash, Some(principal.session_id), now).await?;
    let detail = serde_json::json!({"sessions_ended": ended});
    svc.audit
        .record("password_change", true, Some(user.id), client, detail)
        .await;
    Ok(())
}

/// Stores a new password hash with the "password changed" mail (one
/// transaction), and ends every session of the user but `keep`.
pub async fn store_new_password(
    svc: &Credentials,
    user: &crate::storage::UserRecord,
    password_hash: &str,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<usize, AuthError> {
    let mail = templates::password_changed(user.email.as_str());
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    svc.store
        .set_password(PasswordChange {
            user_id: user.id,
            password_hash: password_hash.to_string(),
            now,
            mail: Some(queued),
        })
        .await?;
    svc.mailer.queued(mail.template);
    let ended = svc
        .sessions
        .end_user_sessions(
            keep,
            Revocation::new(user.id, end_reason::PASSWORD_CHANGED, now),
        )
        .await?;
    svc.metrics
        .session_ended(end_reason::PASSWORD_CHANGED, ended.len());
    Ok(ended.len())
}

/// Refuses a new password equal to the current one or a recent one
/// (checked against the stored Argon2id hashes on the hashing pool).
pub async fn ensure_not_reused(
    svc: &Credentials,
    user_id: Uuid,
    current_hash: &str,
    new: &SecretString,
) -> Result<(), AuthError> {
    let mut hashes = vec![current_hash.to_string()];
    for h in svc
        .store
        .password_history(user_id, PASSWORD_HISTORY - 1)
        .await?
    {
        if !hashes.contains(&h) {
            hashes.push(h);
        }
    }
    for h in hashes {
        if svc.hasher.verify(new, Some(h)).await?.matches {
            return Err(AuthError::Validation(vec![FieldError::new(
                "new_password",
                "password_reused",
                "choose a password you have not used recently",
            )]));
        }
    }
    Ok(())
}
