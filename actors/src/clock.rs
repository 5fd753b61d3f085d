//! Owns the crate's only clock reads. `actors/clippy.toml` bans `SystemTime::now` and
//! `Instant::now` everywhere else, so policy code can only ever see time passed in.

use actix::clock::Instant;
use std::time::SystemTime;

use crate::time::Timestamp;

/// The current wall-clock time, for callers that have no request time of their own.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock_now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Monotonic time for actor idle timers (never used for security decisions).
#[allow(clippy::disallowed_methods)]
pub(crate) fn monotonic_now() -> Instant {
    Instant::now()
}
