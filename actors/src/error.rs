//! Owns the crate's error types: `ActorError` (what callers of the handles see),
//! `BackingError` (what a shared lockout backing reports) and `StartError`.

use std::error::Error as StdError;

/// Why an actor could not answer. Map `Overloaded` and `AttemptsInFlight` to
/// 503 + `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    /// The user's (or its shard's) mailbox is full; nothing was done.
    #[error("actor mailbox is full")]
    Overloaded,
    /// The actor system is stopping or did not answer in time.
    #[error("actor system unavailable")]
    Unavailable,
    /// Every login attempt of the account's window is held by a verification still in
    /// flight, and none settled within `pending_wait`: nothing was reserved, the account
    /// is not locked. Map to 503 + `Retry-After`, never to "locked".
    #[error("every login attempt is in flight")]
    AttemptsInFlight,
}

/// A shared lockout backing (Redis, database) failed; the actor decides locally instead.
#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    /// The backing did not answer within the configured `backing_timeout`.
    #[error("lockout backing timed out")]
    Timeout,
    /// The backing answered with an error.
    #[error("lockout backing failed")]
    Failed(#[source] Box<dyn StdError + Send + Sync + 'static>),
}

impl BackingError {
    /// Wraps any error of a backing implementation.
    pub fn failed(source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        Self::Failed(source.into())
    }
}

/// Why the actors could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `start` was called outside an actix `System` (no current arbiter).
    #[error("actors must be started inside an actix System")]
    NoArbiter,
    /// A configuration value is out of range.
    #[error("invalid actor configuration: {0}")]
    InvalidConfig(&'static str),
}
