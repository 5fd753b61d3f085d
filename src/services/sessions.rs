//! Sessions and tokens: refresh rotation with reuse detection, logout,
//! logout everywhere, the session list, and password change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

use super::credentials;
use super::me::{self, Principal};
use super::tokens::{issue_pair, TokenPair};
use super::{AuthError, RefreshError, Services};
use crate::auth::tokens;
use crate::domain::refresh::{RefreshDecision, RefreshPolicy};
use crate::domain::ClientContext;
use crate::domain::{FieldError, NewPassword, PasswordContext};
use crate::mail::templates;
use crate::storage::{end_reason, PasswordChange, Revocation, RotateOutcome, Rotation};

/// Password hashes a new password may not repeat (the current one included).
pub const PASSWORD_HISTORY: u32 = 6;

fn chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Spends a refresh token and returns a new pair for its session.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn refresh(
    svc: &Services,
    refresh_token: &str,
    client: &ClientContext,
) -> Result<TokenPair, RefreshError> {
    let token = refresh_token.trim();
    if !tokens::well_formed(token) {
        svc.metrics.token_refresh("invalid");
        return Err(RefreshError::Invalid);
    }
    let presented_hash = tokens::token_hash(token);
    let now = svc.clock.now();
    let new_token = tokens::random_token();
    let policy = RefreshPolicy {
        idle_timeout: chrono(svc.config.security.session_timeout),
        reuse_grace: chrono(svc.config.security.refresh_reuse_grace),
    };
    let rotation = Rotation {
        presented_hash,
        new_id: Uuid::new_v4(),
        new_hash: tokens::token_hash(&new_token),
        now,
    };
    // The row decides alone unless it says the session is idle: activity
    // other instances saw may not have reached it yet, so only then is that
    // activity looked up (a query and a Redis call) and the rotation decided
    // again with it. The first attempt changes nothing when it defers.
    let deferred = Arc::new(AtomicBool::new(false));
    let first = {
        let deferred = deferred.clone();
        svc.store
            .rotate_refresh_token(
                rotation.clone(),
                Box::new(move |state| match policy.decide(state, None, now) {
                    RefreshDecision::EndIdle => {
                        deferred.store(true, Ordering::Relaxed);
                        RefreshDecision::Refuse
                    }
                    decision => decision,
                }),
            )
            .await?
    };
    let outcome = if deferred.load(Ordering::Relaxed) {
        let hint = match svc
            .store
            .find_session_by_refresh(&rotation.presented_hash)
            .await?
        {
            Some(session_id) => svc.sessions.last_activity(session_id).await,
            None => None,
        };
        svc.store
            .rotate_refresh_token(
                rotation,
                Box::new(move |state| policy.decide(state, hint, now)),
            )
            .await?
    } else {
        first
    };
    let session = match outcome {
        RotateOutcome::Rotated(session) => session,
        RotateOutcome::Invalid => {
            svc.metrics.token_refresh("invalid");
            return Err(RefreshError::Invalid);
        }
        RotateOutcome::Expired => {
            svc.metrics.token_refresh("invalid");
            return Err(RefreshError::Expired);
        }
        RotateOutcome::Reused {
            session_id,
            user_id,
            was_live,
        } => {
            tracing::Span::current().record("user_id", tracing::field::display(user_id));
            svc.metrics.token_refresh("reuse");
            svc.sessions.revoked(&[session_id], now).await;
            if was_live {
                tracing::warn!(%session_id, "spent refresh token presented again: session revoked");
                svc.metrics.refresh_token_reuse();
                svc.metrics
                    .session_ended(end_reason::REFRESH_TOKEN_REUSE, 1);
                svc.audit(
                    "refresh_token_reuse",
                    false,
                    Some(user_id),
                    client,
                    serde_json::json!({"session_id": session_id}),
                )
                .await;
                if let Some(user) = svc.store.find_user_by_id(user_id).await? {
                    svc.mailer
                        .dispatch(templates::refresh_token_reuse(user.email.as_str()))
                        .await;
                }
            }
            return Err(RefreshError::Reused);
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(session.user_id));
    svc.metrics.token_refresh("rotated");
    let amr: Vec<&str> = session.amr.split_whitespace().collect();
    let (user_id, session_id, end) = (session.user_id, session.id, session.expires_at);
    svc.sessions.refreshed(&session, now);
    Ok(issue_pair(
        svc, user_id, session_id, &amr, new_token, end, now,
    )?)
}

/// Ends the caller's session (and the session of `refresh_token`, when it is the caller's).
pub async fn logout(
    svc: &Services,
    principal: &Principal,
    refresh_token: Option<&str>,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let now = svc.clock.now();
    let mut ended = Vec::new();
    if svc
        .store
        .revoke_session(
            principal.session_id,
            Revocation::new(principal.user_id, end_reason::LOGOUT, now),
        )
        .await?
    {
        ended.push(principal.session_id);
    }
    // Only a session of the caller's own: another user's token changes nothing.
    if let Some(token) = refresh_token
        .map(str::trim)
        .filter(|t| tokens::well_formed(t))
    {
        if let Some(other) = svc
            .store
            .revoke_session_by_refresh(
                &tokens::token_hash(token),
                Revocation::new(principal.user_id, end_reason::LOGOUT, now),
            )
            .await?
        {
            ended.push(other);
        }
    }
    svc.sessions.revoked(&ended, now).await;
    svc.metrics.session_ended(end_reason::LOGOUT, ended.len());
    svc.audit(
        "logout",
        true,
        Some(principal.user_id),
        client,
        serde_json::json!({"sessions": ended}),
    )
    .await;
    Ok(())
}

/// Ends every session of the caller.
pub async fn logout_all(
    svc: &Services,
    principal: &Principal,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let now = svc.clock.now();
    let ended = svc
        .store
        .revoke_user_sessions(
            None,
            Revocation::new(principal.user_id, end_reason::LOGOUT_ALL, now),
        )
        .await?;
    svc.sessions.revoked(&ended, now).await;
    svc.metrics
        .session_ended(end_reason::LOGOUT_ALL, ended.len());
    svc.audit(
        "logout_all",
        true,
        Some(principal.user_id),
        client,
        serde_json::json!({"sessions": ended.len()}),
    )
    .await;
    Ok(())
}

/// One entry of `GET /me/sessions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub device_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// True for the session of the token making this request.
    pub current: bool,
}

pub async fn list(svc: &Services, principal: &Principal) -> Result<Vec<SessionView>, AuthError> {
    let now = svc.clock.now();
    let idle = chrono(svc.config.security.session_timeout);
    let sessions = svc.store.list_sessions(principal.user_id, now).await?;
    let mut known = Vec::with_capacity(sessions.len());
    for s in sessions {
        let last = svc
            .sessions
            .last_activity(s.id)
            .await
            .map_or(s.last_activity_at, |h| h.max(s.last_activity_at));
        known.push((s, last));
    }
    Ok(known
        .into_iter()
        .filter(|(_, last)| *last + idle > now)
        .map(|(s, last)| SessionView {
            id: s.id,
            device_id: s.device_id,
            user_agent: s.user_agent,
            ip_address: s.ip_address.map(|ip| ip.to_string()),
            created_at: s.created_at,
            last_activity_at: last,
            current: s.id == principal.session_id,
        })
        .collect())
}

/// Ends one of the caller's sessions; `false` when there is no such live session.
pub async fn revoke(
    svc: &Services,
    principal: &Principal,
    session_id: Uuid,
    client: &ClientContext,
) -> Result<bool, AuthError> {
    let now = svc.clock.now();
    let ended = svc
        .store
        .revoke_session(
            session_id,
            Revocation::new(principal.user_id, end_reason::REVOKED, now),
        )
        .await?;
    if ended {
        svc.sessions.revoked(&[session_id], now).await;
        svc.metrics.session_ended(end_reason::REVOKED, 1);
        svc.audit(
            "session_revoked",
            true,
            Some(principal.user_id),
            client,
            serde_json::json!({"session_id": session_id}),
        )
        .await;
    }
    Ok(ended)
}

/// Changes the password: the current one is required (a wrong one counts
/// toward the lockout); the new one must pass the policy and differ from the
/// recent ones; every other session ends.
pub async fn change_password(
    svc: &Services,
    principal: &Principal,
    current: &SecretString,
    new: &SecretString,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = me::current_user(svc, principal).await?;
    credentials::prove_password(svc, &user, current, client, Some("password_change")).await?;
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
    svc.audit("password_change", true, Some(user.id), client, detail)
        .await;
    Ok(())
}

/// Stores a new password hash with the "password changed" mail (one
/// transaction), and ends every session of the user but `keep`.
pub async fn store_new_password(
    svc: &Services,
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
        .store
        .revoke_user_sessions(
            keep,
            Revocation::new(user.id, end_reason::PASSWORD_CHANGED, now),
        )
        .await?;
    svc.sessions.revoked(&ended, now).await;
    svc.metrics
        .session_ended(end_reason::PASSWORD_CHANGED, ended.len());
    Ok(ended.len())
}

/// Refuses a new password equal to the current one or a recent one
/// (checked against the stored Argon2id hashes on the hashing pool).
pub async fn ensure_not_reused(
    svc: &Services,
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
