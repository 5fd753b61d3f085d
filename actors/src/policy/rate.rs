//! Owns the fixed-window rate counter (the semantics of Redis `INCR` + `PEXPIRE`): a
//! window opens at its first hit and admits `limit` hits until it ends. Time is passed in.
//!
//! ```text
//!            hit: count < limit -> Allowed{remaining}
//!            +----+
//!            |    v
//!   Idle --hit--> Open(window_start, count) --hit: count == limit--> Limited{retry_after}
//!    ^                 |                                                  |
//!    +-- now >= window_start + window_ms (next hit opens a new window) ---+
//! ```

use std::time::Duration;

use crate::time::{duration_ms, Timestamp};

/// A quota of `limit` hits per fixed window of `window_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u32,
    pub window_ms: i64,
}

impl RateWindow {
    /// `limit` hits per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window_ms: duration_ms(window),
        }
    }
}

/// The answer to "may this request proceed?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Proceed; `remaining` more hits fit, and the quota is whole again in `reset_ms`.
    Allowed { remaining: u32, reset_ms: i64 },
    /// Refuse (429); retry after `retry_after_ms`, the quota is whole again in `reset_ms`.
    Limited { retry_after_ms: i64, reset_ms: i64 },
}

impl RateDecision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// One key's counter state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateCounter {
    pub window_start: Option<Timestamp>,
    pub count: u32,
}

impl RateCounter {
    /// Counts one hit at `now` if the window has room.
    pub fn hit(&mut self, quota: &RateWindow, now: Timestamp) -> RateDecision {
        let start = match self.window_start {
            Some(start) if now < start.plus_ms(quota.window_ms) => start,
            _ => {
                self.count = 0;
                *self.window_start.insert(now)
            }
        };
        let reset_ms = now.ms_until(start.plus_ms(quota.window_ms));
        if self.count >= quota.limit {
            return RateDecision::Limited {
                retry_after_ms: reset_ms,
                reset_ms,
            };
        }
        self.count += 1;
        RateDecision::Allowed {
            remaining: quota.limit - self.count,
            reset_ms,
        }
    }

    /// Whether this counter can be forgotten at `now` (its window has ended).
    pub fn is_stale(&self, quota: &RateWindow, now: Timestamp) -> bool {
        self.window_start
            .is_none_or(|start| now >= start.plus_ms(quota.window_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + ms)
    }

    #[test]
    fn admits_limit_hits_per_window_then_limits() {
        let q = RateWindow::new(3, Duration::from_secs(300));
        let mut c = RateCounter::default();
        assert_eq!(
            c.hit(&q, t(0)),
            RateDecision::Allowed {
                remaining: 2,
                reset_ms: 300_000
            }
        );
        assert!(c.hit(&q, t(1000)).is_allowed());
        assert_eq!(
            c.hit(&q, t(2000)),
            RateDecision::Allowed {
                remaining: 0,
                reset_ms: 298_000
            }
        );
        assert_eq!(
            c.hit(&q, t(100_000)),
            RateDecision::Limited {
                retry_after_ms: 200_000,
                reset_ms: 200_000
            }
        );
        assert_eq!(c.count, 3, "limited hits are not counted");
    }

    #[test]
    fn a_new_window_opens_when_the_old_one_ends() {
        let q = RateWindow::new(1, Duration::from_secs(60));
        let mut c = RateCounter::default();
        assert!(c.hit(&q, t(0)).is_allowed());
        assert!(!c.hit(&q, t(59_999)).is_allowed());
        assert!(!c.is_stale(&q, t(59_999)));
        assert!(c.is_stale(&q, t(60_000)));
        assert_eq!(
            c.hit(&q, t(60_000)),
            RateDecision::Allowed {
                remaining: 0,
                reset_ms: 60_000
            }
        );
        assert_eq!(c.window_start, Some(t(60_000)));
    }

    #[test]
    fn a_zero_limit_refuses_everything() {
        let q = RateWindow::new(0, Duration::from_secs(60));
        let mut c = RateCounter::default();
        assert!(!c.hit(&q, t(0)).is_allowed());
    }
}
