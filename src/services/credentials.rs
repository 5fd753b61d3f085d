//! Credentials: the protocols every proof of a password shares. A check is
//! reserved with the lockout actors before the hash is verified (at most
//! `MAX_LOGIN_ATTEMPTS` verifications per window, whatever the concurrency or
//! instance count), and its outcome is recorded after: a success clears the
//! window, a failure counts and, when it locks the account, says so once
//! (metric, audit row, log line, the owner's mail).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use suma_auth_actors::{ActorError, FailureOutcome, Reservation};

use super::{Audit, AuthError, Parts};
use crate::auth::hashing::PasswordHasher;
use crate::clock::Clock;
use crate::domain::ClientContext;
use crate::mail::templates;
use crate::mail::Mailer;
use crate::security;
use crate::storage::DynStore;
use crate::storage::UserRecord;
use crate::telemetry::metrics::Metrics;

/// The password protocol: the lockout actors, the hashing pool, and what a
/// lock says (metric, audit row, log line, mail, user row). Cheap to clone.
#[derive(Clone)]
pub struct PasswordCheck {
    actors: suma_auth_actors::SecurityHandle,
    hasher: PasswordHasher,
    store: DynStore,
    mailer: Mailer,
    metrics: Metrics,
    clock: Clock,
    audit: Audit,
    max_login_attempts: u32,
    lockout_duration: Duration,
}

impl PasswordCheck {
    pub fn new(parts: &Parts) -> Self {
        Self {
            actors: parts.actors.clone(),
            hasher: parts.hasher.clone(),
            store: parts.store.clone(),
            mailer: parts.mailer.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            max_login_attempts: parts.config.security.max_login_attempts,
            lockout_duration: parts.config.security.lockout_duration,
        }
    }

    /// Ends the lockout window of `key` (the owner proved control of the
    /// mailbox).
    pub async fn clear(&self, key: &str) -> Result<(), ActorError> {
        self.actors.record_login_success(key).await
    }
}

/// Reserves a verification for `key`; a locked account answers `AccountLocked`.
pub async fn reserve(svc: &PasswordCheck, key: &str) -> Result<(), AuthError> {
    let now = security::to_timestamp(svc.clock.now());
    match svc
        .actors
        .reserve_login(key, now)
        .await
        .map_err(actor_error)?
    {
        Reservation::Allowed { .. } => Ok(()),
        Reservation::Locked { retry_after_ms } => Err(AuthError::AccountLocked {
            retry_after: Duration::from_millis(retry_after_ms.max(1000) as u64),
        }),
    }
}

/// The whole protocol for a signed-in user proving their password again
/// (password change, turning second factors off): reserve, verify, record.
/// A wrong or empty password counts toward the lockout and answers
/// `InvalidCredentials`; `audit_event`, when given, is written for it.
pub async fn prove_password(
    svc: &PasswordCheck,
    user: &UserRecord,
    password: &SecretString,
    client: &ClientContext,
    audit_event: Option<&'static str>,
) -> Result<(), AuthError> {
    let key = user.email.as_str();
    reserve(svc, key).await?;
    let verified = svc
        .hasher
        .verify(password, Some(user.password_hash.clone()))
        .await?;
    if !verified.matches || password.expose_secret().is_empty() {
        if let Some(event) = audit_event {
            let reason = serde_json::json!({"reason": "invalid_credentials"});
            svc.audit
                .record(event, false, Some(user.id), client, reason)
                .await;
        }
        record_failure(svc, key, Some(user), client).await;
        return Err(AuthError::InvalidCredentials);
    }
    record_success(svc, key).await;
    Ok(())
}

/// The password was proven: the window starts afresh.
pub async fn record_success(svc: &PasswordCheck, key: &str) {
    if let Err(e) = svc.actors.record_login_success(key).await {
        tracing::warn!(error = %e, "lockout reset not recorded");
    }
}

pub fn actor_error(e: ActorError) -> AuthError {
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
pub async fn record_failure(
    svc: &PasswordCheck,
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
            svc.audit
                .record(
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
                        svc.lockout_duration.as_secs().div_ceil(60),
                    ))
                    .await;
            }
            (
                svc.max_login_attempts,
                Some(security::from_timestamp(until)),
            )
        }
    };
    if let Some(user) = user {
        if let Err(e) = svc
            .store
            .record_login_failure(
                user.id,
                crate::storage::reported(failures, locked_until),
                svc.clock.now(),
            )
            .await
        {
            tracing::warn!(error = %e, "failed-login counters not updated");
        }
    }
}
