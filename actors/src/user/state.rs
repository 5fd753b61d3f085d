//! Owns `UserState`, the plain data a user actor caches, and its pure operations:
//! the "may this actor be reaped?" rule.

use super::waiting::Waiting;
use crate::policy::lockout::{LockoutPolicy, LockoutState};
use crate::time::Timestamp;

/// One account's cached security state.
#[derive(Debug, Default)]
pub(super) struct UserState {
    pub(super) lockout: LockoutState,
    /// Reservations waiting for verifications in flight (at most `max_pending`).
    pub(super) waiting: Waiting,
}

impl UserState {
    /// Whether there is nothing worth keeping (a default window, no waiting
    /// reservation).
    pub(super) fn is_empty(&self) -> bool {
        self.lockout == LockoutState::default() && self.waiting.is_idle()
    }

    /// Whether the actor may stop at `now` without losing state that exists nowhere else:
    /// no waiting reservation and (when lockout decisions are local) no lock or open
    /// window.
    pub(super) fn is_reapable(
        &self,
        lockout_is_local: bool,
        policy: &LockoutPolicy,
        now: Timestamp,
    ) -> bool {
        let lockout_pending = lockout_is_local && !self.lockout.is_disposable(policy, now);
        !lockout_pending && self.waiting.is_idle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + ms)
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
