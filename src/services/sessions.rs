//! Sessions and tokens: refresh rotation with reuse detection, logout,
//! logout everywhere, the session list (the [`Sessions`] area, which also
//! authenticates bearer tokens, see [`super::me::authenticate`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::principal::Principal;
use super::tokens::{pair, TokenPair};
use super::{Audit, AuthError, Parts, RefreshError};
use crate::auth::jwt::{JwtService, TokenError};
use crate::auth::tokens;
use crate::clock::Clock;
use crate::config::SecurityPolicy;
use crate::domain::refresh::{RefreshDecision, RefreshPolicy};
use crate::domain::ClientContext;
use crate::mail::templates;
use crate::mail::Mailer;
use crate::security::SessionGuard;
use crate::storage::DynStore;
use crate::storage::{end_reason, Revocation, RotateOutcome, Rotation, SessionRecord, StoreResult};
use crate::telemetry::metrics::Metrics;

/// The sessions area: bearer authentication, refresh, logout, the session
/// list. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pub(super) store: DynStore,
    pub(super) jwt: JwtService,
    pub(super) sessions: SessionGuard,
    pub(super) mailer: Mailer,
    pub(super) metrics: Metrics,
    pub(super) clock: Clock,
    pub(super) audit: Audit,
    pub(super) security: SecurityPolicy,
}

impl Sessions {
    pub fn new(parts: &Parts) -> Self {
        Self {
            store: parts.store.clone(),
            jwt: parts.jwt.clone(),
            sessions: parts.sessions.clone(),
            mailer: parts.mailer.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            security: parts.config.security,
        }
    }

    /// Writes an audit row (see [`Audit::record`]).
    async fn audit(
        &self,
        event_type: &'static str,
        success: bool,
        user_id: Option<Uuid>,
        client: &ClientContext,
        metadata: serde_json::Value,
    ) {
        self.audit
            .record(event_type, success, user_id, client, metadata)
            .await;
    }
}

fn chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Spends a refresh token and returns a new pair for its session.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn refresh(
    svc: &Sessions,
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
        idle_timeout: chrono(svc.security.session_timeout),
        reuse_grace: chrono(svc.security.refresh_reuse_grace),
    };
    let rotation = Rotation {
        presented_hash,
        new_id: tokens::token_row_id(),
        new_hash: tokens::token_hash(&new_token),
        now,
        active_since: now.checked_sub_signed(policy.idle_timeout),
        commit_by: crate::clock::commit_by(),
    };
    // The row decides alone unless it says the session is idle: activity
    // other instances saw may not have reached it yet, so only then is that
    // activity looked up (a query and a Redis call) and the rotation decided
    // again with it. The first attempt changes nothing when it defers.
    let deferred = Arc::new(AtomicBool::new(false));
    let (early, decided) = tokio::sync::oneshot::channel();
    let (first, signed_early) = {
        let deferred = deferred.clone();
        let rotating = svc.store.rotate_refresh_token(
            rotation.clone(),
            Box::new(move |state| match policy.decide(state, None, now) {
                RefreshDecision::EndIdle => {
                    deferred.store(true, Ordering::Relaxed);
                    RefreshDecision::Refuse
                }
                decision => decision,
            }),
            Some(early),
        );
        sign_meanwhile(rotating, decided, |session| sign(&svc.jwt, session, now)).await
    };
    let first = first?;
    let outcome = if deferred.load(Ordering::Relaxed) {
        let hint = match svc
            .store
            .find_session_by_refresh(&rotation.presented_hash)
            .await?
        {
            Some(session_id) => svc.sessions.last_activity(session_id).await,
            None => None,
        };
        let rotation = Rotation {
            active_since: None,
            ..rotation
        };
        svc.store
            .rotate_refresh_token(
                rotation,
                Box::new(move |state| policy.decide(state, hint, now)),
                None,
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
    let access_token = access_token_for(&session, signed_early, |s| sign(&svc.jwt, s, now))?;
    svc.sessions.refreshed(&session, now);
    Ok(pair(
        &svc.jwt,
        access_token,
        new_token,
        session.id,
        session.expires_at,
        now,
    ))
}

/// The access token of a rotated session.
fn sign(
    jwt: &JwtService,
    session: &SessionRecord,
    now: DateTime<Utc>,
) -> Result<String, TokenError> {
    let amr: Vec<&str> = session.amr.split_whitespace().collect();
    let (token, _) = jwt.issue(session.user_id, session.id, &amr, now.timestamp())?;
    Ok(token)
}

/// The access token of the rotated `session`: the one signed while its
/// rotation committed when it was signed for this session, else a new one.
fn access_token_for(
    session: &SessionRecord,
    signed_early: Option<(Uuid, Result<String, TokenError>)>,
    sign: impl FnOnce(&SessionRecord) -> Result<String, TokenError>,
) -> Result<String, TokenError> {
    match signed_early {
        Some((id, signed)) if id == session.id => signed,
        _ => sign(session),
    }
}

/// Awaits `rotating`; when the store tells the rotated session on `decided`
/// before its commit, signs its access token meanwhile,
/// so that the signature and the commit overlap instead of following each
/// other. The signature is returned with the session it was made for; it
/// is used only if the outcome rotated that same session.
async fn sign_meanwhile<F>(
    rotating: F,
    decided: tokio::sync::oneshot::Receiver<SessionRecord>,
    sign: impl FnOnce(&SessionRecord) -> Result<String, TokenError>,
) -> (
    StoreResult<RotateOutcome>,
    Option<(Uuid, Result<String, TokenError>)>,
)
where
    F: std::future::Future<Output = StoreResult<RotateOutcome>>,
{
    let mut rotating = std::pin::pin!(rotating);
    tokio::select! {
        biased;
        outcome = &mut rotating => (outcome, None),
        Ok(session) = decided => {
            let signed = sign(&session);
            (rotating.await, Some((session.id, signed)))
        }
    }
}

/// Ends the caller's session (and the session of `refresh_token`, when it is the caller's).
pub async fn logout(
    svc: &Sessions,
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
    svc: &Sessions,
    principal: &Principal,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let now = svc.clock.now();
    let ended = svc
        .sessions
        .end_user_sessions(
            None,
            Revocation::new(principal.user_id, end_reason::LOGOUT_ALL, now),
        )
        .await?;
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

pub async fn list(svc: &Sessions, principal: &Principal) -> Result<Vec<SessionView>, AuthError> {
    let now = svc.clock.now();
    let idle = chrono(svc.security.session_timeout);
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
    svc: &Sessions,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    fn session(id: Uuid) -> SessionRecord {
        let now = Utc::now();
        SessionRecord {
            id,
            user_id: Uuid::new_v4(),
            device_id: None,
            user_agent: None,
            ip_address: None,
            amr: "pwd".into(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(8),
            last_activity_at: now,
            invalidated_at: None,
        }
    }

    /// Told the rotated session before the rotation answers, the access
    /// token is signed while the rotation is still under way.
    #[tokio::test]
    async fn the_token_is_signed_while_the_rotation_commits() {
        let id = Uuid::new_v4();
        let (early, decided) = tokio::sync::oneshot::channel();
        let (commit, committed) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let rotating = {
            let done = done.clone();
            async move {
                early.send(session(id)).unwrap();
                // The commit waits for the signature (at most a while).
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), committed).await;
                done.store(true, Ordering::SeqCst);
                Ok(RotateOutcome::Rotated(session(id)))
            }
        };
        let (outcome, signed) = sign_meanwhile(rotating, decided, |s| {
            assert!(!done.load(Ordering::SeqCst), "signed after the commit");
            commit.send(()).unwrap();
            Ok(format!("token of {}", s.id))
        })
        .await;
        assert!(matches!(outcome, Ok(RotateOutcome::Rotated(_))));
        let (signed_for, token) = signed.expect("signed before the commit");
        assert_eq!(signed_for, id);
        assert_eq!(token.unwrap(), format!("token of {id}"));
    }

    /// A signature made early is used only for the session it was made for.
    #[test]
    fn an_early_signature_serves_only_its_own_session() {
        let rotated = session(Uuid::new_v4());
        let fresh = |s: &SessionRecord| Ok(format!("fresh for {}", s.id));
        let other = Some((Uuid::new_v4(), Ok("early".to_owned())));
        assert_eq!(
            access_token_for(&rotated, other, fresh).unwrap(),
            format!("fresh for {}", rotated.id)
        );
        let own = Some((rotated.id, Ok("early".to_owned())));
        assert_eq!(access_token_for(&rotated, own, fresh).unwrap(), "early");
        assert_eq!(
            access_token_for(&rotated, None, fresh).unwrap(),
            format!("fresh for {}", rotated.id)
        );
    }

    /// A store that says nothing early (or a rotation that is not one)
    /// leaves the signature for after the outcome.
    #[tokio::test]
    async fn without_an_early_word_nothing_is_signed_meanwhile() {
        let (early, decided) = tokio::sync::oneshot::channel::<SessionRecord>();
        let rotating = async move {
            drop(early);
            tokio::task::yield_now().await;
            Ok(RotateOutcome::Invalid)
        };
        let (outcome, signed) =
            sign_meanwhile(rotating, decided, |_| -> Result<String, TokenError> {
                panic!("nothing to sign")
            })
            .await;
        assert!(matches!(outcome, Ok(RotateOutcome::Invalid)));
        assert!(signed.is_none());
    }
}
