//! The failed-login counters kept on the user row for readers
//! (`failed_login_attempts`, `locked_until`, `is_locked`). They mirror the
//! lockout decisions of the actors crate, which stay authoritative; this rule
//! only merges a reported decision into the row. Failures of one window may be
//! reported in any order by several instances: while a lock holds, the count
//! never goes down.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginCounters {
    pub failed_attempts: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl LoginCounters {
    /// The row after a failure reported with `failed_attempts` failures in its
    /// window (and the lock it caused, if any), at `now`.
    pub fn after_failure(self, reported: LoginCounters, now: DateTime<Utc>) -> LoginCounters {
        let lock_holds = self.locked_until.is_some_and(|until| until > now);
        LoginCounters {
            failed_attempts: if lock_holds {
                self.failed_attempts.max(reported.failed_attempts)
            } else {
                reported.failed_attempts
            },
            locked_until: reported.locked_until.or(self.locked_until),
        }
    }

    /// `is_locked` as stored: a lock in force at `now`.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_clock::at;

    fn counted(n: u32) -> LoginCounters {
        LoginCounters {
            failed_attempts: n,
            locked_until: None,
        }
    }

    #[test]
    fn without_a_lock_the_report_wins() {
        let row = counted(4).after_failure(counted(1), at(0));
        assert_eq!(row, counted(1));
        assert!(!row.is_locked(at(0)));
    }

    #[test]
    fn while_locked_the_count_never_goes_down() {
        let locked = LoginCounters {
            failed_attempts: 5,
            locked_until: Some(at(15)),
        };
        let row = counted(0).after_failure(locked, at(0));
        assert_eq!(row, locked);
        assert!(row.is_locked(at(14)));
        // A late report of an earlier failure keeps the lock and the count.
        assert_eq!(row.after_failure(counted(3), at(1)), locked);
        // Once the lock has ended, a new window counts afresh.
        assert_eq!(
            row.after_failure(counted(1), at(16)),
            LoginCounters {
                failed_attempts: 1,
                locked_until: Some(at(15)),
            }
        );
    }
}
