//! Owns `MemoryBacking`: the reference implementation of `LockoutBacking`, a mutex-guarded
//! map of `LockoutState` applying the pure policy. One instance shared by several actor
//! systems behaves like several server instances sharing Redis; use it in tests and as the
//! model the Redis and database backings must match. (Single-node servers use
//! `Backing::Local` instead: this map is never reaped except by `record_success`.)

use std::collections::HashMap;
use std::future::ready;
use std::sync::{Mutex, PoisonError};

use super::{BackingFuture, LockoutBacking};
use crate::key::UserKey;
use crate::policy::lockout::{FailureOutcome, LockoutPolicy, LockoutState, ReserveOutcome};
use crate::time::Timestamp;

/// An in-process shared lockout store.
#[derive(Debug, Default)]
pub struct MemoryBacking {
    states: Mutex<HashMap<UserKey, LockoutState>>,
}

impl MemoryBacking {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the state held for `key`.
    pub fn state(&self, key: &str) -> Option<LockoutState> {
        self.with_states(|states| states.get(&UserKey::new(key)).cloned())
    }

    fn with_states<T>(&self, f: impl FnOnce(&mut HashMap<UserKey, LockoutState>) -> T) -> T {
        // the map stays consistent even if a holder panicked: every update is one call
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut states)
    }
}

impl LockoutBacking for MemoryBacking {
    fn reserve(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<ReserveOutcome> {
        let decided =
            self.with_states(|states| states.entry(key.clone()).or_default().reserve(&policy, now));
        Box::pin(ready(Ok(decided)))
    }

    fn record_failure(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<FailureOutcome> {
        let decided = self.with_states(|states| {
            states
                .entry(key.clone())
                .or_default()
                .record_failure(&policy, now)
        });
        Box::pin(ready(Ok(decided)))
    }

    fn record_success(&self, key: &UserKey) -> BackingFuture<()> {
        self.with_states(|states| states.remove(key));
        Box::pin(ready(Ok(())))
    }
}
