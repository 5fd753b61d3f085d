//! Security state shared by every instance: the login lockout (through the
//! per-user actors of `suma-auth-actors`), the second-factor limit (the same
//! machinery under keys of its own) and per-IP rate limits.
//!
//! Decisions are taken atomically in Redis when it is configured and up; in
//! the database (row-locked) when it is not or while it is down — so N
//! instances enforce exactly the limits of one, and a restart forgets nothing.

pub mod factor_lockout;
pub mod lockout;
pub mod rate_limit;
pub mod sessions;

use chrono::{DateTime, TimeZone, Utc};
use suma_auth_actors::Timestamp;

pub use factor_lockout::{FactorCheck, FactorLockout};
pub use lockout::LockoutStore;
pub use rate_limit::{RateLimiter, RateRoute};
pub use sessions::{SessionDecisions, SessionEnd, SessionGuard};

/// The lockout key of a login attempt: the normalized email when it parses,
/// else the trimmed, lowercased input (bounded), so unknown and malformed
/// emails lock exactly like real ones.
pub fn account_key(email: &str) -> String {
    match crate::domain::Email::parse(email, "email") {
        Ok(e) => e.as_str().to_string(),
        Err(_) => email.trim().to_lowercase().chars().take(254).collect(),
    }
}

pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp(t.timestamp_millis())
}

pub fn from_timestamp(t: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.0).single().unwrap_or_default()
}
