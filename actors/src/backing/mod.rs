//! Owns the lockout backing contract: where lockout decisions are made when several
//! server instances must agree (Redis, a database). Actors are caches and serialisers,
//! never the only copy: with a shared backing every decision is the backing's, and the
//! actor mirrors it; if the backing fails, the actor decides from its mirror instead.

mod memory;

pub use memory::MemoryBacking;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::BackingError;
use crate::key::UserKey;
use crate::policy::lockout::{FailureOutcome, LockoutPolicy, ReserveOutcome};
use crate::time::Timestamp;

/// A backing call in flight. `'static`: implementations clone what they need
/// (a pool handle, the key) before returning.
pub type BackingFuture<T> = Pin<Box<dyn Future<Output = Result<T, BackingError>> + Send>>;

/// Decides lockout transitions atomically in a store shared by all instances.
///
/// Implementations must apply exactly the transitions of
/// [`LockoutState`](crate::policy::lockout::LockoutState) (`reserve`, `record_failure`,
/// `record_success`), atomically per key (a Lua script, a row lock). The actor calls at
/// most one method per key at a time on this instance.
pub trait LockoutBacking: Send + Sync + 'static {
    /// `LockoutState::reserve` on the shared state of `key` (`Pending` changes nothing).
    fn reserve(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<ReserveOutcome>;

    /// `LockoutState::record_failure` on the shared state of `key`.
    fn record_failure(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<FailureOutcome>;

    /// `LockoutState::record_success` on the shared state of `key`.
    fn record_success(&self, key: &UserKey) -> BackingFuture<()>;
}

/// Where lockout decisions are made.
#[derive(Clone, Default)]
pub enum Backing {
    /// In the user actor, from its own state (single-node mode: the actor is kept alive
    /// while it holds a lock or an open window, so reaping never forgets one).
    #[default]
    Local,
    /// In a shared store; the actor mirrors each decision and falls back to its mirror
    /// when the store fails or is slower than `backing_timeout`.
    Shared(Arc<dyn LockoutBacking>),
}

impl Backing {
    /// Decisions made by `backing`, shared by every instance.
    pub fn shared(backing: impl LockoutBacking) -> Self {
        Self::Shared(Arc::new(backing))
    }

    pub(crate) fn shared_store(&self) -> Option<&Arc<dyn LockoutBacking>> {
        match self {
            Self::Local => None,
            Self::Shared(store) => Some(store),
        }
    }
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("Backing::Local"),
            Self::Shared(_) => f.write_str("Backing::Shared(..)"),
        }
    }
}
