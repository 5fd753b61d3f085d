//! The second-factor limit: wrong codes (email, TOTP, recovery) count per
//! account, across challenges and instances, with the password lockout's own
//! machinery under keys of their own.
//!
//! Two windows, both the actors crate's `LockoutState` transitions applied by
//! the lockout backing ([`LockoutStore`]: Redis first, the database when
//! Redis is absent or down):
//!
//! * **the window** (`SECOND_FACTOR_MAX_ATTEMPTS` per
//!   `SECOND_FACTOR_LOCKOUT_MINUTES`): per-user actors of their own — a
//!   second `SecurityActors` whose policy is this one — reserve each check
//!   before a code is compared and record its outcome after, exactly as for
//!   passwords; the failure that uses up the window locks the step for the
//!   window's length, and a right code starts it afresh;
//! * **the day** (`SECOND_FACTOR_MAX_FAILURES_PER_DAY` per 24 hours): only
//!   wrong codes count and a right code does not reset it, so an attacker
//!   who knows the password gets at most that many guesses a day (plus at
//!   most the window's checks already in flight), however often the owner
//!   signs in. It is checked before each check (a lock check: its budget of
//!   reservations is unbounded) and counted after each wrong code.
//!
//! Keys: `2FA:<USER ID>` and `2FA-DAY:<USER ID>`, in capitals. Password
//! lockout keys are lowercase ([`super::account_key`]), so no sign-in input
//! can ever name a second-factor window (a unit test holds this).

use std::time::Duration;

use suma_auth_actors::{
    ActorError, Backing, FailureOutcome, LockoutBacking, LockoutPolicy, Reservation,
    ReserveOutcome, SecurityActors, SecurityConfig, SecurityHandle, StartError, Timestamp, UserKey,
};
use uuid::Uuid;

use super::LockoutStore;
use crate::config::SecondFactorPolicy;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The per-account second-factor limit. Cheap to clone.
#[derive(Clone)]
pub struct FactorLockout {
    actors: SecurityHandle,
    backing: LockoutStore,
    /// The day's failures: a lock when they reach the maximum.
    day: LockoutPolicy,
    /// The day's lock check: reservations never exhaust it.
    day_check: LockoutPolicy,
}

/// What a check may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorCheck {
    /// Compare the code, then record the outcome.
    Allowed,
    /// Do not compare; the step is locked for this long.
    Locked { retry_after: Duration },
}

impl FactorLockout {
    /// Starts the window's actors (on the current arbiter) over `backing`.
    pub fn start(
        policy: &SecondFactorPolicy,
        idle_timeout: Duration,
        backing: LockoutStore,
    ) -> Result<Self, StartError> {
        let actors = SecurityActors::start(
            SecurityConfig {
                lockout: LockoutPolicy::new(policy.max_attempts, policy.lockout_duration),
                idle_timeout,
                request_timeout: Duration::from_secs(5),
                backing_timeout: Duration::from_secs(3),
                ..SecurityConfig::default()
            },
            Backing::shared(backing.clone()),
        )?;
        Ok(Self {
            actors,
            backing,
            day: LockoutPolicy::new(policy.max_failures_per_day, DAY),
            day_check: LockoutPolicy::new(u32::MAX, DAY),
        })
    }

    /// The window's key of a user.
    pub fn key(user_id: Uuid) -> String {
        format!("2FA:{}", user_id.simple().to_string().to_uppercase())
    }

    /// The day's key of a user.
    pub fn day_key_of(user_id: Uuid) -> String {
        format!("2FA-DAY:{}", user_id.simple().to_string().to_uppercase())
    }

    fn day_key(user_id: Uuid) -> UserKey {
        UserKey::new(&Self::day_key_of(user_id))
    }

    /// Reserves one check of a code for `user_id` at `now`.
    pub async fn reserve(&self, user_id: Uuid, now: Timestamp) -> Result<FactorCheck, ActorError> {
        let day = self
            .backing
            .reserve(&Self::day_key(user_id), self.day_check, now)
            .await;
        match day {
            Ok(ReserveOutcome::Locked { retry_after_ms }) => return Ok(locked(retry_after_ms)),
            // (never pending: the check's budget of reservations is unbounded)
            Ok(ReserveOutcome::Allowed { .. } | ReserveOutcome::Pending) => {}
            // The window still bounds every check; the day resumes with its store.
            Err(e) => tracing::warn!(error = %e, "second-factor day limit unavailable"),
        }
        Ok(
            match self.actors.reserve_login(&Self::key(user_id), now).await? {
                Reservation::Allowed { .. } => FactorCheck::Allowed,
                Reservation::Locked { retry_after_ms } => locked(retry_after_ms),
            },
        )
    }

    /// Records a wrong code; `Some(until)` when this failure locked the step
    /// (said once per lock: announce it then).
    pub async fn record_failure(&self, user_id: Uuid, now: Timestamp) -> Option<Timestamp> {
        let window = match self
            .actors
            .record_login_failure(&Self::key(user_id), now)
            .await
        {
            Ok(FailureOutcome::Locked { until }) => Some(until),
            Ok(FailureOutcome::Counted { .. }) => None,
            Err(e) => {
                tracing::warn!(error = %e, "second-factor failure not recorded by the actor");
                None
            }
        };
        let day = match self
            .backing
            .record_failure(&Self::day_key(user_id), self.day, now)
            .await
        {
            Ok(FailureOutcome::Locked { until }) => Some(until),
            Ok(FailureOutcome::Counted { .. }) => None,
            Err(e) => {
                tracing::warn!(error = %e, "second-factor failure not counted for the day");
                None
            }
        };
        window.max(day)
    }

    /// Records a right code: the window starts afresh (the day does not).
    pub async fn record_success(&self, user_id: Uuid) {
        if let Err(e) = self.actors.record_login_success(&Self::key(user_id)).await {
            tracing::warn!(error = %e, "second-factor window not reset");
        }
    }
}

fn locked(retry_after_ms: i64) -> FactorCheck {
    FactorCheck::Locked {
        retry_after: Duration::from_millis(retry_after_ms.max(1000) as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::account_key;

    #[test]
    fn no_sign_in_input_names_a_second_factor_window() {
        let id = Uuid::new_v4();
        for key in [
            FactorLockout::key(id),
            FactorLockout::day_key(id).as_str().to_string(),
        ] {
            assert_ne!(account_key(&key), key);
            assert_ne!(account_key(&format!(" {key} ")), key);
        }
    }
}
