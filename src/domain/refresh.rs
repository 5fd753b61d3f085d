//! Refresh-token rotation as a pure decision. The store reads the presented
//! token and its session into a [`RefreshState`], asks
//! [`RefreshPolicy::decide`], and writes what the decision says, on
//! condition that what it read still holds (see `rotate_refresh_token`);
//! the rule itself lives only here.
//!
//! ```text
//!   presented token ──unknown──────────────────────────────▶ Refuse
//!        │ spent?
//!        ├─ yes, less than `reuse_grace` ago ───────────────▶ Refuse (a lost race, not theft)
//!        ├─ yes, earlier ───────────────────────────────────▶ RevokeFamily (reuse)
//!        │ no
//!        ├─ session revoked ────────────────────────────────▶ Refuse
//!        ├─ session past its absolute end ──────────────────▶ Expired
//!        ├─ idle for `idle_timeout` (newest activity known) ▶ EndIdle
//!        └─ otherwise ──────────────────────────────────────▶ Rotate
//! ```

use chrono::{DateTime, Duration, Utc};

/// What the store read about a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshState {
    /// When the token was spent (rotated or revoked); `None` while live.
    pub spent_at: Option<DateTime<Utc>>,
    /// Whether its session has ended.
    pub session_ended: bool,
    /// The session's absolute end.
    pub session_expires_at: DateTime<Utc>,
    /// The session's last activity as the database knows it.
    pub last_activity_at: DateTime<Utc>,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Spend it and issue its successor.
    Rotate,
    /// Refuse it and change nothing.
    Refuse,
    /// Refuse it: its session reached its absolute end.
    Expired,
    /// Refuse it and end its session for idleness.
    EndIdle,
    /// A spent token presented again: end the session and every token of its family.
    RevokeFamily,
}

#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Sessions idle this long end.
    pub idle_timeout: Duration,
    /// A token spent less than this long ago is refused without revoking.
    pub reuse_grace: Duration,
}

impl RefreshPolicy {
    /// Decides at `now`, given activity known outside the database (`activity_hint`).
    pub fn decide(
        &self,
        state: &RefreshState,
        activity_hint: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> RefreshDecision {
        if let Some(spent_at) = state.spent_at {
            return if now - spent_at < self.reuse_grace {
                RefreshDecision::Refuse
            } else {
                RefreshDecision::RevokeFamily
            };
        }
        if state.session_ended {
            return RefreshDecision::Refuse;
        }
        if state.session_expires_at <= now {
            return RefreshDecision::Expired;
        }
        let last_activity =
            activity_hint.map_or(state.last_activity_at, |h| h.max(state.last_activity_at));
        if last_activity + self.idle_timeout <= now {
            return RefreshDecision::EndIdle;
        }
        RefreshDecision::Rotate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_clock::at;

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            idle_timeout: Duration::minutes(15),
            reuse_grace: Duration::seconds(10),
        }
    }

    fn live(last_activity: i64) -> RefreshState {
        RefreshState {
            spent_at: None,
            session_ended: false,
            session_expires_at: at(480),
            last_activity_at: at(last_activity),
        }
    }

    #[test]
    fn a_live_token_of_an_active_session_rotates() {
        assert_eq!(
            policy().decide(&live(0), None, at(14)),
            RefreshDecision::Rotate
        );
    }

    #[test]
    fn idle_sessions_end_unless_activity_is_known_elsewhere() {
        assert_eq!(
            policy().decide(&live(0), None, at(15)),
            RefreshDecision::EndIdle
        );
        assert_eq!(
            policy().decide(&live(0), Some(at(10)), at(15)),
            RefreshDecision::Rotate
        );
        // A hint older than the database's own activity changes nothing.
        assert_eq!(
            policy().decide(&live(5), Some(at(1)), at(19)),
            RefreshDecision::Rotate
        );
    }

    #[test]
    fn ended_sessions_refuse_and_old_ones_expire() {
        let ended = RefreshState {
            session_ended: true,
            ..live(0)
        };
        assert_eq!(
            policy().decide(&ended, None, at(1)),
            RefreshDecision::Refuse
        );
        assert_eq!(
            policy().decide(&live(479), None, at(480)),
            RefreshDecision::Expired
        );
    }

    #[test]
    fn spent_tokens_revoke_the_family_after_the_grace() {
        let spent = |m| RefreshState {
            spent_at: Some(at(m)),
            ..live(0)
        };
        let now = at(5);
        assert_eq!(
            policy().decide(&spent(5), None, now + Duration::seconds(9)),
            RefreshDecision::Refuse
        );
        assert_eq!(
            policy().decide(&spent(5), None, now + Duration::seconds(10)),
            RefreshDecision::RevokeFamily
        );
        // Reuse is judged before the session's state: an ended session's spent token still counts.
        let spent_ended = RefreshState {
            session_ended: true,
            ..spent(0)
        };
        assert_eq!(
            policy().decide(&spent_ended, None, at(30)),
            RefreshDecision::RevokeFamily
        );
    }
}
