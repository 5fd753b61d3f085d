//! What the service keeps, and for how long: the retention table of
//! `docs/retention.md`, as the periods the expiry sweep (`jobs::sweep`)
//! enforces. A test checks that every rule below is a row of that document.

use chrono::{DateTime, Duration, Utc};

/// Five years (with one leap day): the record-keeping period of a financial
/// service (EU AML directive art. 40: five years after the relationship ends).
pub const FIVE_YEARS: Duration = Duration::days(5 * 365 + 1);

/// Audit rows are kept this long after their event, then deleted.
pub const AUDIT_EVENTS: Duration = FIVE_YEARS;

/// An erased account's remains (the row under its placeholder address, its
/// consent history without addresses or agents) are kept this long after the
/// erasure, then deleted.
pub const ERASED_ACCOUNTS: Duration = FIVE_YEARS;

/// Ended sessions (and their spent refresh tokens), used one-time tokens,
/// sent or dead mail and idle lockout windows are kept this long after they
/// end, then deleted.
pub const ENDED_RECORDS: Duration = Duration::days(1);

/// One row of the retention table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// What is kept (the first column of the table).
    pub data: &'static str,
    /// For how long (the second column).
    pub kept: &'static str,
}

/// Every row of `docs/retention.md`'s table, in its order.
pub const RULES: &[Rule] = &[
    Rule {
        data: "Profile: email, first and last name",
        kept: "while the account exists; erased at once by `DELETE /me`",
    },
    Rule {
        data: "Password hash, password history, TOTP secret, recovery codes",
        kept: "while the account exists; deleted at once by `DELETE /me`",
    },
    Rule {
        data: "Sessions and refresh tokens (device id, IP address, user agent)",
        kept: "until the session ends, plus 1 day; deleted at once by `DELETE /me`",
    },
    Rule {
        data: "Devices seen at sign-in (keyed fingerprint, user agent and IP address of the latest sign-in, first and last seen)",
        kept: "while the account exists, or until the owner forgets the device (`DELETE /me/devices/{id}`); deleted at once by `DELETE /me`",
    },
    Rule {
        data: "Verification and reset tokens, login and consent challenges",
        kept: "until used or expired, plus 1 day; deleted at once by `DELETE /me`",
    },
    Rule {
        data: "Lockout windows (keyed by the email address)",
        kept: "1 day after their last change; deleted at once by `DELETE /me`",
    },
    Rule {
        data: "Rate-limit windows (client IP address or IPv6 network, per route)",
        kept: "one window (`RATE_LIMIT_WINDOW_SECONDS`) after the client's last request; linked to no account",
    },
    Rule {
        data: "Mail outbox",
        kept: "pending mail until sent (payload cleared when sent; a dead mail keeps its sealed payload so that `suma-auth admin outbox retry-dead` can queue it again), then 1 day; mail queued to an erased account is deleted at once",
    },
    Rule {
        data: "Consent history (type, version, answer, time, IP address, user agent)",
        kept: "while the account exists; after erasure without IP address and user agent, 5 years",
    },
    Rule {
        data: "Audit trail (event, outcome, time, user id, IP address, user agent)",
        kept: "5 years after the event; after erasure of the account only the pseudonymous user id remains",
    },
    Rule {
        data: "Erased account (id, placeholder address, creation and erasure times)",
        kept: "5 years after the erasure, then deleted with its consent history",
    },
];

/// The cut-off times of one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// The sweep's time (the audit prune's own row is written at it).
    pub now: DateTime<Utc>,
    /// Consent challenges that expired before this go.
    pub expired_before: DateTime<Utc>,
    /// Audit rows older than this go.
    pub audit_before: DateTime<Utc>,
    /// Accounts erased before this go (with their consent history).
    pub erased_before: DateTime<Utc>,
}

impl Cutoffs {
    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            now,
            expired_before: now,
            audit_before: now - AUDIT_EVENTS,
            erased_before: now - ERASED_ACCOUNTS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_lie_five_years_back() {
        let now = DateTime::<Utc>::default() + Duration::days(10_000);
        let c = Cutoffs::at(now);
        assert_eq!((now - c.audit_before).num_days(), 1826);
        assert_eq!(c.audit_before, c.erased_before);
    }
}
