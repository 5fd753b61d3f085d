//! Owns the login lockout window: a pure state machine with the time passed in.
//!
//! An attempt is **reserved** (counted) *before* the password is verified, so at most
//! `max_attempts` verifications happen per window whatever the concurrency: the caller
//! reserves, verifies only on `Allowed`, then records the outcome.
//!
//! ```text
//!                      reserve [attempts < max] / attempts += 1 -> Allowed
//!                            +--------+
//!                            |        v
//!   +------+  reserve   +--------------------+ reserve [attempts == max]  +-------------+
//!   | Open |----------->|  Counting (window) |--------------------------->|  Exhausted  |
//!   +------+  window    +--------------------+  -> Pending                | (in flight) |
//!      ^      starts       |      |       |     (nothing changes)         +-------------+
//!      |                   |      |       |                               reserve -> Pending
//!      |<- record_success -+      |       |                               record_failure
//!      |<- window elapsed --------+       |                               [failures < max]
//!      |<- record_success / window elapsed ---- from Exhausted ------------- -> Counted
//!      |                                  |                                       |
//!      |                                  | record_failure [failures == max]      |
//!      |                                  | locked_until = now + lockout          |
//!      |                                  | -> FailureOutcome::Locked (ONCE)      |
//!      |                                  v                                       |
//!      |                            +----------+<---------------------------------+
//!      |<----- record_success ------|  Locked  |  reserve -> Locked{retry_after}
//!      |<----- lock served ---------+----------+  record_failure -> Counted
//!              (the first reserve/record at now >= locked_until resets all)
//! ```
//!
//! `attempts` counts reservations, `failures` counts recorded failures. A lock is set
//! only by failures: when `failures` reaches `max_attempts`, i.e. when every verification
//! the window allowed has failed, and it is *announced* (`FailureOutcome::Locked`) then,
//! exactly once per window. A reservation that finds every attempt of the window held by
//! verifications still in flight (`attempts == max`, `failures < max`, no lock) is
//! **`Pending`**: nothing is reserved and nothing changes; ask again once one of them has
//! recorded its outcome (a success reopens the window, the last failure locks it). So a
//! correct password is never answered "locked" because others were being checked.
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

/// The answer to "may I verify this password now?", as callers of the actors get it.
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

/// What the window says to one reservation request ([`LockoutState::reserve`], and every
/// backing): a [`Reservation`], or `Pending`. The actors wait on `Pending` and answer
/// callers with a `Reservation` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Verify; this is the `attempt`-th verification of the window (1-based).
    Allowed { attempt: u32 },
    /// Do not verify: the account is locked for this many more milliseconds.
    Locked { retry_after_ms: i64 },
    /// Do not verify yet: every attempt of the window is held by a verification still in
    /// flight and none of them has locked the account. Nothing was reserved or changed;
    /// ask again once one of them has recorded its outcome.
    Pending,
}

impl ReserveOutcome {
    /// The caller's answer, or `None` while pending.
    pub fn decided(self) -> Option<Reservation> {
        match self {
            Self::Allowed { attempt } => Some(Reservation::Allowed { attempt }),
            Self::Locked { retry_after_ms } => Some(Reservation::Locked { retry_after_ms }),
            Self::Pending => None,
        }
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
    /// Reserves one verification; refuses while locked; is `Pending` (and changes
    /// nothing) while every attempt of the window is held by a verification in flight.
    pub fn reserve(&mut self, policy: &LockoutPolicy, now: Timestamp) -> ReserveOutcome {
        if let Some(retry_after_ms) = self.is_locked(now) {
            return ReserveOutcome::Locked { retry_after_ms };
        }
        self.expire(policy, now);
        if self.attempts >= policy.max_attempts {
            // No lock in force, so fewer than `max` failures: some are still in flight.
            return ReserveOutcome::Pending;
        }
        self.attempts += 1;
        self.window_started.get_or_insert(now);
        ReserveOutcome::Allowed {
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
        decided: ReserveOutcome,
    ) {
        match decided {
            ReserveOutcome::Allowed { attempt } => {
                self.expire(policy, now);
                if attempt <= 1 {
                    *self = Self::default();
                }
                self.attempts = attempt;
                self.failures = self.failures.min(attempt.saturating_sub(1));
                self.window_started.get_or_insert(now);
                self.locked_until = None;
            }
            ReserveOutcome::Locked { retry_after_ms } => {
                self.locked_until = Some(now.plus_ms(retry_after_ms));
            }
            ReserveOutcome::Pending => {
                // every attempt in flight, no lock in force (one may have been lifted)
                self.expire(policy, now);
                self.locked_until = None;
                self.attempts = self.attempts.max(policy.max_attempts);
                self.failures = self.failures.min(policy.max_attempts.saturating_sub(1));
                self.window_started.get_or_insert(now);
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
    fn five_reservations_then_the_sixth_is_pending_and_nothing_is_locked() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 1..=5 {
            assert_eq!(
                s.reserve(&p, t(n)),
                ReserveOutcome::Allowed { attempt: n as u32 }
            );
        }
        let before = s.clone();
        assert_eq!(s.reserve(&p, t(6)), ReserveOutcome::Pending);
        assert_eq!(s.reserve(&p, t(7)), ReserveOutcome::Pending);
        assert_eq!(s, before, "a pending reservation changes nothing");
        assert_eq!(s.is_locked(t(7)), None);
        assert_eq!(s.locked_until, None);
    }

    #[test]
    fn a_pending_reservation_gets_a_place_once_one_in_flight_succeeds() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            s.reserve(&p, t(n));
        }
        assert_eq!(s.reserve(&p, t(5)), ReserveOutcome::Pending);
        s.record_success();
        assert_eq!(s.reserve(&p, t(5)), ReserveOutcome::Allowed { attempt: 1 });
    }

    #[test]
    fn a_pending_reservation_stays_pending_through_failures_then_is_locked_by_the_last() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            s.reserve(&p, t(n));
        }
        for n in 0..4 {
            assert_eq!(
                s.record_failure(&p, t(10 + n)),
                FailureOutcome::Counted {
                    failures: n as u32 + 1
                }
            );
            assert_eq!(s.reserve(&p, t(10 + n)), ReserveOutcome::Pending);
        }
        assert_eq!(
            s.record_failure(&p, t(20)),
            FailureOutcome::Locked {
                until: t(20 + 15 * MINUTE)
            }
        );
        assert_eq!(
            s.reserve(&p, t(21)),
            ReserveOutcome::Locked {
                retry_after_ms: 15 * MINUTE - 1
            }
        );
    }

    #[test]
    fn a_pending_reservation_gets_a_place_when_the_window_elapses() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            s.reserve(&p, t(n));
        }
        // outcomes never recorded (requests dropped mid-check): the window still ends
        assert_eq!(s.reserve(&p, t(15 * MINUTE - 1)), ReserveOutcome::Pending);
        assert_eq!(
            s.reserve(&p, t(15 * MINUTE)),
            ReserveOutcome::Allowed { attempt: 1 }
        );
    }

    #[test]
    fn decided_maps_to_the_callers_reservation() {
        assert_eq!(
            ReserveOutcome::Allowed { attempt: 2 }.decided(),
            Some(Reservation::Allowed { attempt: 2 })
        );
        assert_eq!(
            ReserveOutcome::Locked { retry_after_ms: 9 }.decided(),
            Some(Reservation::Locked { retry_after_ms: 9 })
        );
        assert_eq!(ReserveOutcome::Pending.decided(), None);
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
        assert_eq!(s.reserve(&p, t(11)), ReserveOutcome::Allowed { attempt: 1 });
    }

    #[test]
    fn five_failures_lock_and_the_lock_expires_after_lockout() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            assert!(s.reserve(&p, t(n)).decided().unwrap().is_allowed());
            s.record_failure(&p, t(n));
        }
        // locked at t(4) until t(4) + 15 min
        assert_eq!(
            s.reserve(&p, t(14 * MINUTE)),
            ReserveOutcome::Locked {
                retry_after_ms: MINUTE + 4
            }
        );
        assert_eq!(s.is_locked(t(4 + 15 * MINUTE - 1)), Some(1));
        assert_eq!(s.is_locked(t(4 + 15 * MINUTE)), None);
        assert_eq!(
            s.reserve(&p, t(4 + 15 * MINUTE)),
            ReserveOutcome::Allowed { attempt: 1 }
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
            ReserveOutcome::Allowed { attempt: 4 }
        );
        assert_eq!(
            s.reserve(&p, t(15 * MINUTE)),
            ReserveOutcome::Allowed { attempt: 1 }
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
    fn concurrent_failures_lock_exactly_once_and_only_on_the_last_failure() {
        let (p, mut s) = (policy(), LockoutState::default());
        for n in 0..5 {
            assert!(s.reserve(&p, t(n)).decided().unwrap().is_allowed());
        }
        // a sixth request arrives while five verifications are in flight
        assert_eq!(s.reserve(&p, t(5)), ReserveOutcome::Pending);
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
                } else if s.reserve(&p, now).decided().is_some_and(|r| r.is_allowed()) {
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

    /// Any interleaving of reservations and outcomes (successes included): `Locked` is
    /// answered only once `max` failures have been recorded since the last success,
    /// `Pending` only while the window's attempts are used up without that many
    /// failures, and nothing stays pending once every verification in flight has
    /// recorded its outcome.
    #[test]
    fn locked_only_after_max_failures_and_pending_only_while_checks_are_in_flight() {
        let p = policy();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _round in 0..500 {
            let mut s = LockoutState::default();
            // in flight overall; reservations and failures since the last success
            let (mut in_flight, mut attempts, mut failures) = (0u32, 0u32, 0u32);
            for step in 0..60 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let now = t(step);
                match (seed >> 33) % 4 {
                    0 if in_flight > 0 => {
                        in_flight -= 1;
                        failures += 1;
                        s.record_failure(&p, now);
                    }
                    1 if in_flight > 0 => {
                        in_flight -= 1;
                        (attempts, failures) = (0, 0);
                        s.record_success();
                    }
                    _ => match s.reserve(&p, now) {
                        ReserveOutcome::Allowed { attempt } => {
                            in_flight += 1;
                            attempts += 1;
                            assert_eq!(attempt, attempts);
                        }
                        ReserveOutcome::Locked { .. } => {
                            assert!(failures >= p.max_attempts, "locked after {failures}")
                        }
                        ReserveOutcome::Pending => {
                            assert!(failures < p.max_attempts);
                            assert_eq!(attempts, p.max_attempts);
                            assert!(in_flight > 0);
                        }
                    },
                }
            }
            // the checks in flight all fail: whoever waited is now decided
            while in_flight > 0 {
                in_flight -= 1;
                s.record_failure(&p, t(100));
            }
            assert_ne!(s.reserve(&p, t(100)), ReserveOutcome::Pending);
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
        s.adopt_reservation(&p, t(0), ReserveOutcome::Allowed { attempt: 4 });
        s.adopt_failure(&p, t(1), FailureOutcome::Counted { failures: 4 });
        // backing now down: local policy allows the fifth, then locks on its failure
        assert_eq!(s.reserve(&p, t(2)), ReserveOutcome::Allowed { attempt: 5 });
        assert!(matches!(
            s.record_failure(&p, t(3)),
            FailureOutcome::Locked { .. }
        ));
        assert!(matches!(s.reserve(&p, t(4)), ReserveOutcome::Locked { .. }));
    }

    #[test]
    fn adopting_a_remote_lock_locks_locally() {
        let (p, mut s) = (policy(), LockoutState::default());
        s.adopt_reservation(
            &p,
            t(0),
            ReserveOutcome::Locked {
                retry_after_ms: MINUTE,
            },
        );
        assert_eq!(s.is_locked(t(1)), Some(MINUTE - 1));
        s.adopt_reservation(&p, t(MINUTE), ReserveOutcome::Allowed { attempt: 1 });
        assert_eq!(s.is_locked(t(MINUTE)), None);
        assert_eq!(s.attempts, 1);
    }

    #[test]
    fn adopting_a_remote_pending_mirrors_an_exhausted_window_without_a_lock() {
        let (p, mut s) = (policy(), LockoutState::default());
        s.adopt_reservation(
            &p,
            t(0),
            ReserveOutcome::Locked {
                retry_after_ms: MINUTE,
            },
        );
        // the lock was lifted elsewhere and five checks are in flight there
        s.adopt_reservation(&p, t(1), ReserveOutcome::Pending);
        assert_eq!(s.is_locked(t(1)), None);
        // backing now down: the local policy keeps waiting, it does not allow a sixth
        assert_eq!(s.reserve(&p, t(2)), ReserveOutcome::Pending);
        s.record_success();
        assert_eq!(s.reserve(&p, t(3)), ReserveOutcome::Allowed { attempt: 1 });
    }
}
