//! Owns `SecurityConfig`: shard count, mailbox capacities, idle timeout and the time
//! budgets of the per-user actors, with defaults and validation.

use std::time::Duration;

use crate::error::StartError;
use crate::policy::lockout::LockoutPolicy;

/// How the per-user security actors are laid out and how long they wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    /// The lockout window every user actor applies.
    pub lockout: LockoutPolicy,
    /// Registry shards (each an actor owning part of the key space). Default: cores × 4.
    pub shards: usize,
    /// Mailbox capacity of one user actor (default 64). When full, requests for that
    /// user answer `Overloaded` instead of queueing without bound.
    pub user_mailbox: usize,
    /// Mailbox capacity of one shard (default 1024): all requests pass through a shard.
    pub shard_mailbox: usize,
    /// A user actor no request reached for this long is told so by its shard's sweep
    /// (every half timeout) and stops itself, unless it still holds state that exists
    /// nowhere else (a lock or open window in local mode, a waiting reservation).
    pub idle_timeout: Duration,
    /// How long a handle waits for an actor's answer before `Unavailable`.
    pub request_timeout: Duration,
    /// How long an actor waits for the shared backing before deciding locally.
    pub backing_timeout: Duration,
    /// How long a reservation that finds every attempt of the window held by
    /// verifications in flight waits for their outcome (a success reopens the window)
    /// before the caller gets `AttemptsInFlight` (default 2 s; zero: never wait).
    pub pending_wait: Duration,
    /// How often a waiting reservation asks the shared backing again, to see outcomes
    /// recorded by other instances (default 25 ms). Outcomes recorded by this instance
    /// retry it at once.
    pub pending_poll: Duration,
    /// Reservations waiting per user (default 64); one more is answered
    /// `AttemptsInFlight` at once. With the mailbox, this bounds what one user holds.
    pub max_pending: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            lockout: LockoutPolicy::default(),
            shards: cores * 4,
            user_mailbox: 64,
            shard_mailbox: 1024,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(2),
            backing_timeout: Duration::from_millis(250),
            pending_wait: Duration::from_secs(2),
            pending_poll: Duration::from_millis(25),
            max_pending: 64,
        }
    }
}

impl SecurityConfig {
    /// Refuses values that would disable a bound or divide by zero.
    pub fn validate(&self) -> Result<(), StartError> {
        // a capacity of 0 means "unbounded" to actix: never allow it
        let checks = [
            (self.shards == 0, "shards must be at least 1"),
            (self.user_mailbox == 0, "user_mailbox must be at least 1"),
            (self.shard_mailbox == 0, "shard_mailbox must be at least 1"),
            (self.idle_timeout.is_zero(), "idle_timeout must be positive"),
            (
                self.request_timeout.is_zero(),
                "request_timeout must be positive",
            ),
            (
                self.backing_timeout.is_zero(),
                "backing_timeout must be positive",
            ),
            (self.lockout.lockout_ms <= 0, "lockout must be positive"),
            (self.pending_poll.is_zero(), "pending_poll must be positive"),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(StartError::InvalidConfig(why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SecurityConfig::default().validate(), Ok(()));
        assert!(SecurityConfig::default().shards >= 4);
    }

    #[test]
    fn an_unbounded_mailbox_is_refused() {
        let config = SecurityConfig {
            user_mailbox: 0,
            ..SecurityConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(StartError::InvalidConfig(_))
        ));
    }
}
