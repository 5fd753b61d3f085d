//! Owns `UserState`, the plain data a user actor caches, and its pure "may this actor be
//! reaped?" rule.

use crate::policy::lockout::{LockoutPolicy, LockoutState};
use crate::time::Timestamp;

/// One account's cached security state.
#[derive(Debug, Default)]
pub(super) struct UserState {
    pub(super) lockout: LockoutState,
}

impl UserState {
    /// Whether there is nothing worth keeping (a default window).
    pub(super) fn is_empty(&self) -> bool {
        self.lockout == LockoutState::default()
    }

    /// Whether the actor may stop at `now` without losing state that exists nowhere else:
    /// when lockout decisions are local, no lock or open window.
    pub(super) fn is_reapable(
        &self,
        lockout_is_local: bool,
        policy: &LockoutPolicy,
        now: Timestamp,
    ) -> bool {
        !lockout_is_local || self.lockout.is_disposable(policy, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + ms)
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
