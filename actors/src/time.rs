//! Owns `Timestamp`, the crate's only notion of wall-clock time: unix milliseconds passed
//! in by callers. Nothing here reads a clock (see `clock.rs` for the one place that does).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in wall-clock time, in milliseconds since the unix epoch.
///
/// Policies never read a clock: every decision takes a `Timestamp`, so tests drive
/// them with a manual clock and production passes the request's time once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The timestamp `ms` unix milliseconds.
    pub const fn from_unix_ms(ms: i64) -> Self {
        Self(ms)
    }

    /// Unix milliseconds.
    pub const fn as_unix_ms(self) -> i64 {
        self.0
    }

    /// Converts a `SystemTime` (times before 1970 clamp to the epoch).
    pub fn from_system_time(time: SystemTime) -> Self {
        let ms = time
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(ms)
    }

    /// This instant moved `ms` milliseconds later (saturating).
    pub const fn plus_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `self` until `later`, never negative.
    pub const fn ms_until(self, later: Timestamp) -> i64 {
        let d = later.0.saturating_sub(self.0);
        if d < 0 {
            0
        } else {
            d
        }
    }
}

/// Milliseconds in `d`, saturating at `i64::MAX`.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whole seconds for a `Retry-After` header: rounds up, so a client never retries early.
pub const fn retry_after_secs(ms: i64) -> u64 {
    if ms <= 0 {
        0
    } else {
        (ms as u64).div_ceil(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_until_is_never_negative() {
        assert_eq!(Timestamp(10).ms_until(Timestamp(25)), 15);
        assert_eq!(Timestamp(25).ms_until(Timestamp(10)), 0);
    }

    #[test]
    fn plus_ms_saturates() {
        assert_eq!(Timestamp(i64::MAX - 1).plus_ms(10), Timestamp(i64::MAX));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(0), 0);
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1000), 1);
        assert_eq!(retry_after_secs(1001), 2);
    }

    #[test]
    fn system_time_converts_to_unix_ms() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(Timestamp::from_system_time(t), Timestamp(1_700_000_000_123));
    }
}
