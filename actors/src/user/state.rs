//! Owns `UserState`, the plain data a user actor caches, and its pure operations:
//! OTP challenge bookkeeping and the "may this actor be reaped?" rule.

use super::waiting::Waiting;
use crate::policy::lockout::{LockoutPolicy, LockoutState};
use crate::policy::otp::{OtpChallenge, OtpOutcome};
use crate::time::Timestamp;

/// One account's cached security state.
#[derive(Debug, Default)]
pub(super) struct UserState {
    pub(super) lockout: LockoutState,
    /// Pending challenges by id, oldest first (a handful at most).
    otps: Vec<(Box<str>, OtpChallenge)>,
    /// Reservations waiting for verifications in flight (at most `max_pending`).
    pub(super) waiting: Waiting,
}

impl UserState {
    /// Stores `challenge` under `id`, replacing one with the same id; beyond `max`
    /// challenges the oldest is evicted.
    pub(super) fn put_otp(&mut self, id: &str, challenge: OtpChallenge, max: usize) {
        self.otps.retain(|(held, c)| &**held != id && !c.is_dead());
        while self.otps.len() >= max.max(1) {
            self.otps.remove(0);
        }
        self.otps.push((id.into(), challenge));
    }

    /// Verifies `candidate_hash` against challenge `id`.
    pub(super) fn verify_otp(
        &mut self,
        id: &str,
        now: Timestamp,
        candidate_hash: &[u8; 32],
    ) -> OtpOutcome {
        match self.otps.iter_mut().find(|(held, _)| &**held == id) {
            Some((_, challenge)) => challenge.verify(now, candidate_hash),
            None => OtpOutcome::Unknown,
        }
    }

    /// Whether there is nothing worth keeping (a default window, no challenge, no
    /// waiting reservation).
    pub(super) fn is_empty(&self) -> bool {
        self.otps.is_empty() && self.lockout == LockoutState::default() && self.waiting.is_idle()
    }

    /// Drops challenges that can no longer accept a code.
    pub(super) fn prune_otps(&mut self, now: Timestamp) {
        self.otps.retain(|(_, c)| c.is_live(now));
    }

    /// Whether the actor may stop at `now` without losing state that exists nowhere else:
    /// no live OTP challenge, no waiting reservation, and (when lockout decisions are
    /// local) no lock or open window.
    pub(super) fn is_reapable(
        &self,
        lockout_is_local: bool,
        policy: &LockoutPolicy,
        now: Timestamp,
    ) -> bool {
        let otp_pending = self.otps.iter().any(|(_, c)| c.is_live(now));
        let lockout_pending = lockout_is_local && !self.lockout.is_disposable(policy, now);
        !otp_pending && !lockout_pending && self.waiting.is_idle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: [u8; 32] = [1; 32];

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + ms)
    }

    #[test]
    fn verify_finds_the_challenge_by_id() {
        let mut s = UserState::default();
        s.put_otp("a", OtpChallenge::new([9; 32], t(1000)), 4);
        s.put_otp("b", OtpChallenge::new(CODE, t(1000)), 4);
        assert_eq!(s.verify_otp("b", t(0), &CODE), OtpOutcome::Accepted);
        assert_eq!(s.verify_otp("b", t(1), &CODE), OtpOutcome::Dead);
        assert_eq!(s.verify_otp("c", t(1), &CODE), OtpOutcome::Unknown);
    }

    #[test]
    fn putting_beyond_the_maximum_evicts_the_oldest() {
        let mut s = UserState::default();
        for id in ["a", "b", "c"] {
            s.put_otp(id, OtpChallenge::new(CODE, t(1000)), 2);
        }
        assert_eq!(s.verify_otp("a", t(0), &CODE), OtpOutcome::Unknown);
        assert_eq!(s.verify_otp("c", t(0), &CODE), OtpOutcome::Accepted);
    }

    #[test]
    fn a_live_challenge_keeps_the_actor() {
        let p = LockoutPolicy::default();
        let mut s = UserState::default();
        assert!(s.is_reapable(true, &p, t(0)));
        s.put_otp("a", OtpChallenge::new(CODE, t(1000)), 4);
        assert!(!s.is_reapable(false, &p, t(999)));
        assert!(s.is_reapable(false, &p, t(1000)));
        s.prune_otps(t(1000));
        assert!(s.otps.is_empty());
    }

    #[test]
    fn a_waiting_reservation_keeps_the_actor_and_its_state() {
        let p = LockoutPolicy::default();
        let mut s = UserState::default();
        let (reply, _answer) = crate::user::messages::Reply::channel();
        s.waiting
            .push_back(crate::user::waiting::Waiter::new(t(0), reply));
        assert!(!s.is_reapable(false, &p, t(1)));
        assert!(!s.is_empty());
        assert!(s.waiting.pop_front().is_some());
        assert!(s.is_reapable(false, &p, t(1)));
        assert!(s.is_empty());
    }

    #[test]
    fn a_local_open_window_keeps_the_actor_but_a_shared_one_does_not() {
        let p = LockoutPolicy::default();
        let mut s = UserState::default();
        s.lockout.reserve(&p, t(0));
        assert!(!s.is_reapable(true, &p, t(1)));
        assert!(s.is_reapable(false, &p, t(1)));
        assert!(s.is_reapable(true, &p, t(p.lockout_ms)));
    }
}
