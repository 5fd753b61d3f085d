//! Operator actions (`suma-auth admin`): each goes through the path the API's
//! own use cases take (the revocation path, the erasure, the lockout backing)
//! and writes an audit row `admin_*` that names the operator.
//!
//! Ending sessions is always two steps, as for a logout: the database records
//! the end (and revokes the unspent refresh tokens with their session, so a
//! refresh token presented later is refused as invalid, never taken for a
//! stolen one), then [`SessionGuard::revoked`](crate::security::SessionGuard::revoked)
//! tells every instance.

use serde::Serialize;
use uuid::Uuid;

use super::erasure::{self, Eraser};
use super::{Audit, AuthError, Parts};
use crate::clock::Clock;
use crate::domain::{ClientContext, Email};
use crate::redis::RedisError;
use crate::redis::RedisStore;
use crate::security::SessionGuard;
use crate::security::{self, FactorLockout};
use crate::storage::DynStore;
use crate::storage::{end_reason, LockoutRecord, LockoutUpdate, Revocation, UserRecord};
use crate::telemetry::metrics::Metrics;

/// The operator area: what `suma-auth admin` does. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    store: DynStore,
    sessions: SessionGuard,
    redis: Option<RedisStore>,
    metrics: Metrics,
    clock: Clock,
    audit: Audit,
    eraser: Eraser,
}

impl Admin {
    pub fn new(parts: &Parts, eraser: Eraser) -> Self {
        Self {
            store: parts.store.clone(),
            sessions: parts.sessions.clone(),
            redis: parts.redis.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            eraser,
        }
    }
}

/// Who acts: recorded in every audit row of an operator action.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The operating-system account that ran the command.
    pub os_user: String,
}

impl Operator {
    /// The audit rows' user agent: the tool and the operator.
    fn client(&self) -> ClientContext {
        ClientContext {
            ip: None,
            user_agent: Some(format!("suma-auth admin ({})", self.os_user)),
        }
    }

    fn detail(&self, mut extra: serde_json::Value) -> serde_json::Value {
        if let Some(map) = extra.as_object_mut() {
            map.insert("actor".into(), "admin".into());
            map.insert("os_user".into(), self.os_user.clone().into());
        }
        extra
    }
}

async fn audited(
    svc: &Admin,
    op: &Operator,
    event: &'static str,
    user_id: Option<Uuid>,
    extra: serde_json::Value,
) {
    svc.audit
        .record(event, true, user_id, &op.client(), op.detail(extra))
        .await;
}

/// An account by id or email address (erased accounts are not found).
pub async fn find_user(svc: &Admin, who: &str) -> Result<Option<UserRecord>, AuthError> {
    let who = who.trim();
    if let Ok(id) = Uuid::parse_str(who) {
        return Ok(svc.store.find_user_by_id(id).await?);
    }
    match Email::parse(who, "email") {
        Ok(email) => Ok(svc.store.find_user_by_email(&email).await?),
        Err(_) => Ok(None),
    }
}

/// Ends every live session of a user through the revocation path; returns how many.
pub async fn end_sessions_of(
    svc: &Admin,
    user_id: Uuid,
    reason: &'static str,
) -> Result<usize, AuthError> {
    let now = svc.clock.now();
    let ended = svc
        .sessions
        .end_user_sessions(None, Revocation::new(user_id, reason, now))
        .await?;
    svc.metrics.session_ended(reason, ended.len());
    Ok(ended.len())
}

/// What disabling did.
#[derive(Debug, Serialize)]
pub struct Disabled {
    pub user_id: Uuid,
    /// False when the account was already disabled.
    pub was_active: bool,
    pub sessions_ended: usize,
}

/// Disables an account: it may no longer sign in (a right password answers
/// `account_disabled`, a reset link is not mailed) and every session ends at
/// once on every instance. The flag is set first and the sessions ended
/// after: a sign-in under way reads the account again once its session
/// exists (`tokens::open_session`), so no session outlives the disabling.
pub async fn disable(svc: &Admin, op: &Operator, user: &UserRecord) -> Result<Disabled, AuthError> {
    let changed = svc
        .store
        .set_user_active(user.id, false, svc.clock.now())
        .await?;
    if !changed {
        return Err(AuthError::Unauthorized("the account no longer exists"));
    }
    let sessions_ended = end_sessions_of(svc, user.id, end_reason::ACCOUNT_DISABLED).await?;
    tracing::info!(user_id = %user.id, sessions_ended, "account disabled by an operator");
    audited(
        svc,
        op,
        "admin_user_disabled",
        Some(user.id),
        serde_json::json!({"was_active": user.is_active, "sessions_ended": sessions_ended}),
    )
    .await;
    Ok(Disabled {
        user_id: user.id,
        was_active: user.is_active,
        sessions_ended,
    })
}

/// Enables an account again: it signs in as before.
pub async fn enable(svc: &Admin, op: &Operator, user: &UserRecord) -> Result<bool, AuthError> {
    let changed = svc
        .store
        .set_user_active(user.id, true, svc.clock.now())
        .await?;
    if !changed {
        return Err(AuthError::Unauthorized("the account no longer exists"));
    }
    audited(
        svc,
        op,
        "admin_user_enabled",
        Some(user.id),
        serde_json::json!({"was_active": user.is_active}),
    )
    .await;
    Ok(!user.is_active)
}

/// What an unlock cleared.
#[derive(Debug, Serialize)]
pub struct Unlocked {
    pub user_id: Uuid,
    /// The lockout windows cleared: the password's and the second factor's
    /// (its window and its day), in the database and in Redis.
    pub windows: usize,
    /// Whether Redis was cleared too (false without Redis).
    pub redis: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the database was cleared, Redis was not: {0}")]
    Redis(#[source] RedisError),
}

/// Clears the password lockout and the second-factor lockout of an account,
/// where every instance reads them: the database rows (the lockout windows
/// and the user row's counters) and Redis's copies (which would otherwise
/// keep deciding until they expire).
pub async fn unlock(
    svc: &Admin,
    op: &Operator,
    user: &UserRecord,
) -> Result<Unlocked, UnlockError> {
    let keys = [
        security::account_key(user.email.as_str()),
        FactorLockout::key(user.id),
        FactorLockout::day_key_of(user.id),
    ];
    let now = svc.clock.now();
    for key in &keys {
        svc.store
            .update_lockout(
                key,
                LockoutUpdate::new(now, Box::new(|_| LockoutRecord::default())),
            )
            .await
            .map_err(AuthError::from)?;
    }
    svc.store
        .clear_login_counters(user.id)
        .await
        .map_err(AuthError::from)?;
    let redis = match &svc.redis {
        Some(redis) => {
            for key in &keys {
                redis
                    .lockout(
                        key,
                        "success",
                        crate::redis::LockoutArgs {
                            now_ms: now.timestamp_millis(),
                            max: 0,
                            lockout_ms: 0,
                        },
                    )
                    .await
                    .map_err(UnlockError::Redis)?;
            }
            true
        }
        None => false,
    };
    audited(
        svc,
        op,
        "admin_user_unlocked",
        Some(user.id),
        serde_json::json!({"redis": redis}),
    )
    .await;
    Ok(Unlocked {
        user_id: user.id,
        windows: keys.len(),
        redis,
    })
}

/// Erases an account as `DELETE /me` does, without the owner's proof.
pub async fn erase(svc: &Admin, op: &Operator, user: &UserRecord) -> Result<usize, AuthError> {
    let sessions_ended = erasure::erase_account(&svc.eraser, user).await?;
    audited(
        svc,
        op,
        "admin_user_erased",
        Some(user.id),
        serde_json::json!({"sessions_ended": sessions_ended}),
    )
    .await;
    Ok(sessions_ended)
}

/// Ends every session of one user.
pub async fn revoke_sessions_of(
    svc: &Admin,
    op: &Operator,
    user: &UserRecord,
) -> Result<usize, AuthError> {
    let ended = end_sessions_of(svc, user.id, end_reason::ADMIN_REVOKED).await?;
    audited(
        svc,
        op,
        "admin_sessions_revoked",
        Some(user.id),
        serde_json::json!({"sessions_ended": ended}),
    )
    .await;
    Ok(ended)
}

/// Ends every session of every user.
pub async fn revoke_all_sessions(svc: &Admin, op: &Operator) -> Result<usize, AuthError> {
    let now = svc.clock.now();
    let ended = svc
        .store
        .revoke_all_sessions(end_reason::ADMIN_REVOKED, now)
        .await?;
    svc.sessions.revoked(&ended, now).await;
    svc.metrics
        .session_ended(end_reason::ADMIN_REVOKED, ended.len());
    tracing::warn!(
        sessions_ended = ended.len(),
        "every session ended by an operator"
    );
    audited(
        svc,
        op,
        "admin_all_sessions_revoked",
        None,
        serde_json::json!({"sessions_ended": ended.len()}),
    )
    .await;
    Ok(ended.len())
}

/// Puts dead mail back in the queue; returns how many.
pub async fn retry_dead_mail(svc: &Admin, op: &Operator) -> Result<u64, AuthError> {
    let moved = svc.store.retry_dead_mail(svc.clock.now()).await?;
    audited(
        svc,
        op,
        "admin_outbox_retry_dead",
        None,
        serde_json::json!({"moved": moved}),
    )
    .await;
    Ok(moved)
}

/// Verifies the audit chain (`admin audit verify`); the verification itself
/// is audited, with its verdict.
pub async fn verify_audit(
    svc: &Admin,
    op: &Operator,
) -> Result<super::audit::ChainReport, super::audit::AuditError> {
    let report = super::audit::verify_chain(svc.store.as_ref()).await?;
    audited(
        svc,
        op,
        "admin_audit_verified",
        None,
        serde_json::json!({
            "ok": report.ok,
            "rows_checked": report.rows_checked,
            "broken_seq": report.broken.as_ref().map(|b| b.seq),
        }),
    )
    .await;
    Ok(report)
}

/// Exports the audit rows of `[from, to)` (`admin audit export`); audited.
pub async fn export_audit(
    svc: &Admin,
    op: &Operator,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<super::audit::AuditExport, super::audit::AuditError> {
    let export = super::audit::export(svc.store.as_ref(), from, to).await?;
    audited(
        svc,
        op,
        "admin_audit_exported",
        None,
        serde_json::json!({"from": from, "to": to, "rows": export.rows.len()}),
    )
    .await;
    Ok(export)
}
