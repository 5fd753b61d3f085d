//! Owns the login lockout window: a pure state machine with the time passed in.
//!
//! An attempt is **reserved** (counted) *before* the password is verified, so at most
//! `max_attempts` verifications happen per window whatever the concurrency: the caller
//! reserves, verifies only on `Allowed`, then records the outcome.
//!
//! ```text
//!                        reserve [attempts < max] / attempts += 1
//!                              +--------+
//!                              |        v
//!   +------+  reserve    +--------------------+  reserve [attempts == max]
//!   | Open |------------>|  Counting (window) |---------------------------+
//!   +------+  window     +--------------------+  locked_until = now+lockout |
//!      ^      starts         |     |       |     (enforced, not announced)  |
//!      |                     |     |       | record_failure [failures == max]
//!      |<-- record_success --+     |       | locked_until = now+lockout      |
//!      |<-- window elapsed --------+       | -> FailureOutcome::Locked (ONCE)|
//!      |                                   v                                 |
//!      |                             +----------+<---------------------------+
//!      |<----- record_success -------|  Locked  |  reserve -> Locked{retry_after}
//!      |<----- lock served ----------+----------+  record_failure -> Counted
//!              (the first reserve/record at now >= locked_until resets all)
//! ```
//!
//! `attempts` counts reservations, `failures` counts recorded failures. The lock is
//! *announced* (`FailureOutcome::Locked`) exactly once per window: when `failures` reaches
//! `max_attempts`, i.e. when every verification the window allowed has failed. A lock set
//! by an exhausting reservation (requests still in flight) is enforced but not announced,
//! so an in-flight success can still lift it and a lock is never reported twice.
//!
//! The window is fixed: it starts at the first reservation and lasts `lockout_ms`.
//! A Redis (Lua) or database backing must implement exactly these transitions.

use std::time::Duration;

use crate::time::{duration_ms, Timestamp};

/// How many verifications a window allows and how long a lock (and a window) lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Verifications allowed per window (`MAX_LOGIN_ATTEMPTS`).
    pub max_attempts: u32,
    /// Length of the window and of a lock, in milliseconds (`LOCKOUT_DURATION_MINUTES`).
    pub lockout_ms: i64,
}

impl LockoutPolicy {
    /// A policy of `max_attempts` per window of length `lockout`.
    pub fn new(max_attempts: u32, lockout: Duration) -> Self {
        Self {
            max_attempts,
            lockout_ms: duration_ms(lockout),
        }
    }
}

impl Default for LockoutPolicy {
    /// 5 attempts per 15 minutes.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(15 * 60))
    }
}

/// The answer to "may I verify this password now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Verify; this is the `attempt`-th verification of the window (1-based).
    Allowed { attempt: u32 },
    /// Do not verify; answer "locked" and retry after this many milliseconds.
    Locked { retry_after_ms: i64 },
}

impl Reservation {
    /// Whether the caller may verify the password.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// What recording a failed verification did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; `failures` failed verifications so far in this window.
    Counted { failures: u32 },
    /// This failure locked the account until `until`. Reported exactly once per lock:
    /// emit the lockout metric, audit event and mail on this outcome only.
    Locked { until: Timestamp },
}

/// One account's lockout window. A plain value: actors cache it, backings persist it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockoutState {
    /// Verifications reserved in the current window.
    pub attempts: u32,
    /// Failed verifications recorded in the current window.
    pub failures: u32,
    /// When the current window started (its first reservation).
    pub window_started: Option<Timestamp>,
    /// The account is locked while `now < locked_until`.
    pub locked_until: Option<Timestamp>,
}

impl LockoutState {
    /// Reserves one verification, or refuses while locked or when the window is used up.
    pub fn reserve(&mut self, policy: &LockoutPolicy, now: Timestamp) -> Reservation {
        if let Some(retry_after_ms) = self.is_locked(now) {
            return Reservation::Locked { retry_after_ms };
        }
        self.expire(policy, now);
        if self.attempts >= policy.max_attempts {
            let until = *self
                .locked_until
                .get_or_insert(now.plus_ms(policy.lockout_ms));
            return Reservation::Locked {
                retry_after_ms: now.ms_until(until),
            };
        }
        self.attempts += 1;
        self.window_started.get_or_insert(now);
        Reservation::Allowed {
            attempt: self.attempts,
        }
    }

    /// Records a failed verification (already counted by `reserve`).
    pub fn record_failure(&mut self, policy: &LockoutPolicy, now: Timestamp) -> FailureOutcome {
        self.expire(policy, now);
        self.window_started.get_or_insert(now);
        self.failures = self.failures.saturating_add(1);
        if self.failures == policy.max_attempts {
            let fresh = now.plus_ms(policy.lockout_ms);
            let until = self.locked_until.map_or(fresh, |u| u.max(fresh));
            self.locked_until = Some(until);
            return FailureOutcome::Locked { until };
        }
        FailureOutcome::Counted {
            failures: self.failures,
        }
    }

    /// Records a successful verification: the window and any lock are forgotten.
    pub fn record_success(&mut self) {
        *self = Self::default();
    }

    /// Milliseconds until the lock ends, if the account is locked at `now`.
    pub fn is_locked(&self, now: Timestamp) -> Option<i64> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| now.ms_until(until))
    }

    /// Whether this state holds nothing that must outlive its cache at `now`
    /// (no lock in force and no open window with counted attempts).
    pub fn is_disposable(&self, policy: &LockoutPolicy, now: Timestamp) -> bool {
        let mut probe = self.clone();
        probe.expire(policy, now);
        probe == Self::default()
    }

    /// Mirrors a reservation decided by the shared backing, so that if the backing later
    /// fails the local policy continues from the last known state.
    pub fn adopt_reservation(
        &mut self,
        policy: &LockoutPolicy,
        now: Timestamp,
        decided: Reservation,
    ) {
        match decided {
            Reservation::Allowed { attempt } => {
                self.expire(policy, now);
                if attempt <= 1 {
                    *self = Self::default();
                }
                self.attempts = attempt;
                self.failures = self.failures.min(attempt.saturating_sub(1));
                self.window_started.get_or_insert(now);
                self.locked_until = None;
            }
            Reservation::Locked { retry_after_ms } => {
                self.locked_until = Some(now.plus_ms(retry_after_ms));
            }
        }
    }

    /// Mirrors a failure outcome decided by the shared backing.
    pub fn adopt_failure(
        &mut self,
        policy: &LockoutPolicy,
        now: Timestamp,
        decided: FailureOutcome,
    ) {
        self.window_started.get_or_insert(now);
        match decided {
            FailureOutcome::Counted { failures } => self.failures = failures,
            FailureOutcome::Locked { until } => {
                self.failures = policy.max_attempts;
                self.locked_until = Some(until);
            }
        }
    }

    /// Forgets a lock that has been served, or a window that has elapsed.
    fn expire(&mut self, policy: &LockoutPolicy, now: Timestamp) {
        if self.locked_until.is_some_and(|until| until <= now) {
            *self = Self::default();
            return;
        }
        if self.locked_until.is_none()
            && self
                .window_started
                .is_some_and(|start| now >= start.plus_ms(policy.lockout_ms))
        {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MINUTE: i64 = 60_000;

    fn policy() -> LockoutPolicy {
        LockoutPolicy::new(5, Duration::from_secs(15 * 60))
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + ms)
    }

    #[test]
    fn five_reservations_then_the_sixth_is_locked() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 1..=5 {
            assert_eq!(
                s.reserve(&p, t(n)),
                Reservation::Allowed { attempt: n as u32 }
            );
        }
        assert_eq!(
            s.reserve(&p, t(6)),
            Reservation::Locked {
                retry_after_ms: 15 * MINUTE
            }
        );
        assert_eq!(s.is_locked(t(7)), Some(15 * MINUTE - 1));
    }

    #[test]
    fn success_resets_the_window() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..4 {
            s.reserve(&p, t(n));
            s.record_failure(&p, t(n));
        }
        s.reserve(&p, t(10));
        s.record_success();
        assert_eq!(s, LockoutState::default());
        assert_eq!(s.reserve(&p, t(11)), Reservation::Allowed { attempt: 1 });
    }

    #[test]
    fn five_failures_lock_and_the_lock_expires_after_lockout() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            assert!(s.reserve(&p, t(n)).is_allowed());
            s.record_failure(&p, t(n));
        }
        // locked at t(4) until t(4) + 15 min
        assert_eq!(
            s.reserve(&p, t(14 * MINUTE)),
            Reservation::Locked {
                retry_after_ms: MINUTE + 4
            }
        );
        assert_eq!(s.is_locked(t(4 + 15 * MINUTE - 1)), Some(1));
        assert_eq!(s.is_locked(t(4 + 15 * MINUTE)), None);
        assert_eq!(
            s.reserve(&p, t(4 + 15 * MINUTE)),
            Reservation::Allowed { attempt: 1 }
        );
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn the_window_resets_once_lockout_has_elapsed_since_its_start() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..3 {
            s.reserve(&p, t(n * MINUTE));
            s.record_failure(&p, t(n * MINUTE));
        }
        assert_eq!(
            s.reserve(&p, t(15 * MINUTE - 1)),
            Reservation::Allowed { attempt: 4 }
        );
        assert_eq!(
            s.reserve(&p, t(15 * MINUTE)),
            Reservation::Allowed { attempt: 1 }
        );
        assert_eq!(s.failures, 0);
        assert_eq!(s.window_started, Some(t(15 * MINUTE)));
    }

    #[test]
    fn record_failure_reports_locked_exactly_once() {
        let (p, mut s) = (policy(), LockoutState::default());
        let mut locks = 0;
        for n in 0..5 {
            s.reserve(&p, t(n));
            match s.record_failure(&p, t(n)) {
                FailureOutcome::Locked { until } => {
                    locks += 1;
                    assert_eq!(until, t(4 + 15 * MINUTE));
                }
                FailureOutcome::Counted { failures } => assert_eq!(failures, n as u32 + 1),
            }
        }
        // stragglers after the lock are counted, never announced again
        assert!(matches!(
            s.record_failure(&p, t(6)),
            FailureOutcome::Counted { .. }
        ));
        assert_eq!(locks, 1);
    }

    #[test]
    fn concurrent_attempts_lock_exactly_once_even_when_a_reservation_locked_first() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            assert!(s.reserve(&p, t(n)).is_allowed());
        }
        // a sixth request arrives while five verifications are in flight
        assert!(!s.reserve(&p, t(5)).is_allowed());
        let outcomes: Vec<_> = (0..5).map(|n| s.record_failure(&p, t(10 + n))).collect();
        let locks = outcomes
            .iter()
            .filter(|o| matches!(o, FailureOutcome::Locked { .. }))
            .count();
        assert_eq!(locks, 1);
        assert_eq!(
            outcomes[4],
            FailureOutcome::Locked {
                until: t(14 + 15 * MINUTE)
            }
        );
    }

    #[test]
    fn an_in_flight_success_lifts_an_exhaustion_lock() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            s.reserve(&p, t(n));
        }
        assert!(!s.reserve(&p, t(5)).is_allowed());
        s.record_success();
        assert_eq!(s.is_locked(t(6)), None);
        assert!(s.reserve(&p, t(6)).is_allowed());
    }

    #[test]
    fn at_most_max_verifications_per_window_in_any_interleaving() {
        let p = policy();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _round in 0..200 {
            let mut s = LockoutState::default();
            let mut allowed = 0;
            let mut in_flight = 0u32;
            for step in 0..40 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let now = t(step);
                if in_flight > 0 && (seed >> 33) % 2 == 0 {
                    in_flight -= 1;
                    s.record_failure(&p, now);
                } else if s.reserve(&p, now).is_allowed() {
                    allowed += 1;
                    in_flight += 1;
                }
            }
            assert!(
                allowed <= p.max_attempts,
                "{allowed} verifications in one window"
            );
        }
    }

    #[test]
    fn disposable_only_without_an_open_window_or_lock() {
        let (p, mut s) = (policy(), LockoutState::default());
        assert!(s.is_disposable(&p, t(0)));
        s.reserve(&p, t(0));
        assert!(!s.is_disposable(&p, t(1)));
        assert!(s.is_disposable(&p, t(15 * MINUTE)));
        for n in 1..6 {
            s.reserve(&p, t(n));
            s.record_failure(&p, t(n));
        }
        assert!(!s.is_disposable(&p, t(15 * MINUTE)));
        assert!(s.is_disposable(&p, t(5 + 15 * MINUTE)));
    }

    #[test]
    fn adopting_backing_decisions_lets_local_fallback_continue() {
        let (p, mut s) = (policy(), LockoutState::default());
        s.adopt_reservation(&p, t(0), Reservation::Allowed { attempt: 4 });
        s.adopt_failure(&p, t(1), FailureOutcome::Counted { failures: 4 });
        // backing now down: local policy allows the fifth, then locks on its failure
        assert_eq!(s.reserve(&p, t(2)), Reservation::Allowed { attempt: 5 });
        assert!(matches!(
            s.record_failure(&p, t(3)),
            FailureOutcome::Locked { .. }
        ));
        assert!(!s.reserve(&p, t(4)).is_allowed());
    }

    #[test]
    fn adopting_a_remote_lock_locks_locally() {
        let (p, mut s) = (policy(), LockoutState::default());
        s.adopt_reservation(
            &p,
            t(0),
            Reservation::Locked {
                retry_after_ms: MINUTE,
            },
        );
        assert_eq!(s.is_locked(t(1)), Some(MINUTE - 1));
        s.adopt_reservation(&p, t(MINUTE), Reservation::Allowed { attempt: 1 });
        assert_eq!(s.is_locked(t(MINUTE)), None);
        assert_eq!(s.attempts, 1);
    }
}
