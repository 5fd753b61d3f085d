//! The expiry sweep: deletes sessions past their end (and their refresh
//! tokens), long-ended sessions, used or expired one-time tokens, and
//! accounts left unverified past `UNVERIFIED_ACCOUNT_MAX_AGE_DAYS`; enforces
//! the retention table (`docs/retention.md`, `domain::retention`): audit rows
//! and erased accounts past their period; and converts recovery codes left
//! from before keyed hashes. The deletes are idempotent and batched, so
//! instances running it at the same time only share the work.

use std::time::Duration;

use crate::domain::retention;
use crate::services::Parts;

/// Ended sessions stay this long (their spent tokens keep detecting reuse).
const KEEP_ENDED: chrono::Duration = retention::ENDED_RECORDS;

pub async fn run(services: Parts) {
    let interval = services.config.sweep_interval;
    // Instances started together should not sweep in lockstep.
    let jitter = Duration::from_millis(rand::random_range(
        0..interval.as_millis().clamp(1, 60_000) as u64,
    ));
    tokio::time::sleep(jitter).await;
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        sweep_once(&services).await;
    }
}

/// One pass; returns the rows deleted. Also converts recovery codes still
/// stored as a bare digest to their keyed form (see `auth::codes`).
pub async fn sweep_once(services: &Parts) -> u64 {
    rekey_recovery_codes(services).await;
    let now = services.clock.now();
    let expired = match services.store.sweep_expired(now, KEEP_ENDED).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(deleted = n, "expired sessions and tokens pruned");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "expiry sweep failed; will retry");
            0
        }
    };
    expired + sweep_unverified(services, now).await + sweep_retention(services, now).await
}

/// Deletes accounts left unverified past `UNVERIFIED_ACCOUNT_MAX_AGE_DAYS`.
async fn sweep_unverified(services: &Parts, now: chrono::DateTime<chrono::Utc>) -> u64 {
    let max_age = chrono::Duration::from_std(services.config.security.unverified_account_max_age)
        .unwrap_or(chrono::Duration::days(7));
    match services.store.delete_unverified_users(now - max_age).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(deleted = n, "unverified accounts past their age deleted");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "unverified account sweep failed; will retry");
            0
        }
    }
}

/// Deletes what the retention table (`docs/retention.md`) keeps no longer.
async fn sweep_retention(services: &Parts, now: chrono::DateTime<chrono::Utc>) -> u64 {
    match services
        .store
        .sweep_retention(retention::Cutoffs::at(now))
        .await
    {
        Ok(n) => {
            if n > 0 {
                tracing::info!(deleted = n, "records past their retention period deleted");
            }
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, "retention sweep failed; will retry");
            0
        }
    }
}

/// Converts legacy recovery-code hashes, a batch at a time, until none is left.
pub async fn rekey_recovery_codes(services: &Parts) -> u64 {
    let mut total = 0;
    loop {
        let mailer = services.mailer.clone();
        let rekey: crate::storage::CodeRekey =
            Box::new(move |legacy| crate::auth::codes::rekey(mailer.sealer(), legacy));
        match services.store.rekey_recovery_codes(rekey).await {
            Ok(0) => return total,
            Ok(n) => {
                total += n;
                tracing::info!(converted = n, "recovery codes moved to keyed hashes");
            }
            Err(e) => {
                tracing::warn!(error = %e, "recovery codes not converted; will retry");
                return total;
            }
        }
    }
}
