//! Checking a second-factor code: the protocol every code shares (a login's
//! `/otp/verify`, the fresh proof of a factor change, the confirmation of a
//! new authenticator). A check is reserved with the per-account limit
//! ([`crate::security::FactorLockout`]) before the code is compared, and its
//! outcome is recorded after: a right code starts the window afresh, a wrong
//! one counts and, when it locks the step, says so once (metric with
//! `factor:second_factor`, audit row, log line, the owner's mail).

use std::future::Future;
use std::time::Duration;

use super::credentials::actor_error;
use super::{Audit, AuthError, Parts};
use crate::auth::{codes, totp};
use crate::clock::Clock;
use crate::domain::ClientContext;
use crate::mail::templates;
use crate::mail::Mailer;
use crate::security::FactorLockout;
use crate::security::{self, FactorCheck};
use crate::storage::DynStore;
use crate::storage::{MfaChallengeRecord, PresentedCode, SecondFactorUpdate, UserRecord};
use crate::telemetry::metrics::Metrics;

/// What a limited check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked<T> {
    /// The code was right.
    Accepted(T),
    /// The code was wrong (counted).
    Wrong,
    /// Nothing was compared: the step is locked.
    Locked { retry_after: Duration },
}

/// Which kind of code was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    Emailed,
    Totp,
    Recovery,
}

/// The second-factor code protocol: the per-account limit, the comparison
/// of codes, and what a lock says. Cheap to clone.
#[derive(Clone)]
pub struct CodeCheck {
    factor_lockout: FactorLockout,
    store: DynStore,
    mailer: Mailer,
    metrics: Metrics,
    clock: Clock,
    audit: Audit,
}

impl CodeCheck {
    pub fn new(parts: &Parts) -> Self {
        Self {
            factor_lockout: parts.factor_lockout.clone(),
            store: parts.store.clone(),
            mailer: parts.mailer.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
        }
    }
}

/// Runs `compare` (`Ok(Some(_))`: right, `Ok(None)`: wrong) under the
/// per-account limit of `user`'s second factor.
pub async fn limited<T, Fut>(
    svc: &CodeCheck,
    user: &UserRecord,
    client: &ClientContext,
    compare: impl FnOnce() -> Fut,
) -> Result<Checked<T>, AuthError>
where
    Fut: Future<Output = Result<Option<T>, AuthError>>,
{
    let now = security::to_timestamp(svc.clock.now());
    match svc
        .factor_lockout
        .reserve(user.id, now)
        .await
        .map_err(actor_error)?
    {
        FactorCheck::Allowed => {}
        FactorCheck::Locked { retry_after } => return Ok(Checked::Locked { retry_after }),
    }
    match compare().await? {
        Some(found) => {
            svc.factor_lockout.record_success(user.id).await;
            Ok(Checked::Accepted(found))
        }
        None => {
            let now = security::to_timestamp(svc.clock.now());
            if let Some(until) = svc.factor_lockout.record_failure(user.id, now).await {
                announce_lock(svc, user, client, until).await;
            }
            Ok(Checked::Wrong)
        }
    }
}

/// Says once that wrong codes locked `user`'s second factor until `until`.
async fn announce_lock(
    svc: &CodeCheck,
    user: &UserRecord,
    client: &ClientContext,
    until: suma_auth_actors::Timestamp,
) {
    let until = security::from_timestamp(until);
    svc.metrics.second_factor_lockout();
    tracing::warn!("second factor locked after repeated wrong codes");
    svc.audit
        .record(
            "account_locked",
            true,
            Some(user.id),
            client,
            serde_json::json!({"factor": "second_factor", "until": until}),
        )
        .await;
    let seconds = (until - svc.clock.now()).num_seconds().max(60) as u64;
    svc.mailer
        .dispatch(templates::second_factor_locked(
            user.email.as_str(),
            seconds.div_ceil(60),
        ))
        .await;
}

/// Compares `code` with what `user` may present: the emailed code of
/// `emailed` (a login or step-up challenge), and, when `totp` is true, a
/// TOTP code (each time step once) or an unused recovery code (spent).
pub async fn compare_code(
    svc: &CodeCheck,
    user: &UserRecord,
    emailed: Option<&MfaChallengeRecord>,
    totp: bool,
    code: &str,
) -> Result<Option<CodeKind>, AuthError> {
    let code = code.trim();
    let now = svc.clock.now();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(challenge) = emailed {
            if let (Some(stored), Some(expires)) =
                (&challenge.otp_code_hash, challenge.otp_expires_at)
            {
                let scope = challenge.id.to_string();
                let keyed = codes::keyed_hash(svc.mailer.sealer(), &scope, code);
                let legacy = codes::legacy_hash(&scope, code);
                // `|` not `||`: both comparisons always run
                if expires > now && (constant_eq(stored, &keyed) | constant_eq(stored, &legacy)) {
                    return Ok(Some(CodeKind::Emailed));
                }
            }
        }
        if totp {
            if let Some(secret) = totp_secret(svc, user)? {
                if let Some(step) = totp::matching_step(&secret, code, now.timestamp()) {
                    // A code already used in its step is refused (replay).
                    let fresh = svc
                        .store
                        .update_second_factors(
                            user.id,
                            SecondFactorUpdate {
                                change: Box::new(move |f| f.accept_step(step)),
                                recovery: None,
                                now,
                                mail: None,
                            },
                        )
                        .await?;
                    if fresh {
                        return Ok(Some(CodeKind::Totp));
                    }
                }
            }
        }
    } else if totp && code.len() >= 10 {
        let scope = user.id.to_string();
        let normalized = codes::normalize_recovery(code);
        let presented = PresentedCode {
            keyed_hash: codes::keyed_hash(svc.mailer.sealer(), &scope, &normalized),
            legacy_hash: codes::legacy_hash(&scope, &normalized),
            at: now,
        };
        if svc.store.use_recovery_code(user.id, presented).await? {
            return Ok(Some(CodeKind::Recovery));
        }
    }
    Ok(None)
}

/// The active TOTP secret of `user`, opened.
pub fn totp_secret(svc: &CodeCheck, user: &UserRecord) -> Result<Option<Vec<u8>>, AuthError> {
    match &user.totp_secret_sealed {
        Some(sealed) => svc
            .mailer
            .sealer()
            .open(sealed)
            .map(Some)
            .map_err(|e| AuthError::Internal(e.into())),
        None => Ok(None),
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_eq_compares_whole_strings() {
        assert!(constant_eq("abc", "abc"));
        assert!(!constant_eq("abc", "abd"));
        assert!(!constant_eq("abc", "ab"));
    }
}
