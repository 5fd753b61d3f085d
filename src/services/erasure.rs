//! The erasure of an account, shared by its owner's `DELETE /me`
//! ([`super::privacy`]) and the operator command ([`super::admin`]).

use uuid::Uuid;

use super::{Audit, AuthError, Parts};
use crate::clock::Clock;
use crate::domain::ClientContext;
use crate::mail::templates;
use crate::mail::Mailer;
use crate::security::SessionGuard;
use crate::storage::DynStore;
use crate::storage::{end_reason, Erasure, Revocation, UserRecord};
use crate::telemetry::metrics::Metrics;

/// The erasure of an account, for its owner (`DELETE /me`) and for an
/// operator. Cheap to clone.
#[derive(Clone)]
pub struct Eraser {
    store: DynStore,
    sessions: SessionGuard,
    mailer: Mailer,
    metrics: Metrics,
    clock: Clock,
    audit: Audit,
}

impl Eraser {
    pub fn new(parts: &Parts) -> Self {
        Self {
            store: parts.store.clone(),
            sessions: parts.sessions.clone(),
            mailer: parts.mailer.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
        }
    }
}

/// The erasure itself, once whoever asks for it is entitled to (the owner's
/// fresh proof, or an operator): every session ends at once on every
/// instance, the account is erased (see [`Erasure`]) and the farewell mail
/// queued. Returns how many sessions ended.
pub async fn erase_account(svc: &Eraser, user: &UserRecord) -> Result<usize, AuthError> {
    let now = svc.clock.now();
    // Every session ends through the revocation path (database, then this
    // instance's cache and Redis, which every instance asks).
    let mut ended = svc
        .sessions
        .end_user_sessions(
            None,
            Revocation::new(user.id, end_reason::ACCOUNT_ERASED, now),
        )
        .await?;

    let farewell = templates::account_erased(user.email.as_str());
    let queued = svc
        .mailer
        .prepare(&farewell)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let late = svc
        .store
        .erase_user(Erasure {
            user_id: user.id,
            placeholder_email: placeholder_email(user.id),
            recipient_tag: svc.mailer.recipient_tag(user.email.as_str()),
            lockout_key: user.email.as_str().to_string(),
            now,
            farewell: Some(queued),
        })
        .await?
        .ok_or(AuthError::Unauthorized("the account no longer exists"))?;
    // Sessions opened between the revocation and the erasure end too.
    svc.sessions.revoked(&late, now).await;
    ended.extend(late);
    svc.mailer.queued(farewell.template);
    svc.metrics
        .session_ended(end_reason::ACCOUNT_ERASED, ended.len());
    tracing::info!(sessions_ended = ended.len(), "account erased");
    // Only the pseudonymous id remains: no address, no agent.
    svc.audit
        .record(
            "account_erased",
            true,
            Some(user.id),
            &ClientContext::default(),
            serde_json::json!({"sessions_ended": ended.len()}),
        )
        .await;
    Ok(ended.len())
}

/// The non-routable address (RFC 2606 `.invalid`) an erased account keeps, so
/// that its own address can register again.
pub fn placeholder_email(user_id: Uuid) -> String {
    format!("erased-{}@erased.invalid", user_id.simple())
}
