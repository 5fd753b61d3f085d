//! The hourly cap on password-reset links, as a pure rule. The store locks the
//! account, reads when its earlier reset tokens were created and asks
//! [`under_hourly_cap`] before it stores another.

use chrono::{DateTime, Duration, Utc};

/// True when fewer than `max_per_hour` of `created` fall in the hour before `now`.
pub fn under_hourly_cap(created: &[DateTime<Utc>], now: DateTime<Utc>, max_per_hour: u32) -> bool {
    let since = now - Duration::hours(1);
    let recent = created.iter().filter(|t| **t > since).count();
    recent < max_per_hour as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_clock::at;

    #[test]
    fn counts_only_the_last_hour() {
        let created = [at(0), at(10), at(20)];
        assert!(!under_hourly_cap(&created, at(30), 3));
        assert!(under_hourly_cap(&created, at(30), 4));
        // An hour after the first one, it no longer counts.
        assert!(under_hourly_cap(&created, at(60), 3));
        assert!(under_hourly_cap(&[], at(0), 1));
        assert!(!under_hourly_cap(&[], at(0), 0));
    }
}
