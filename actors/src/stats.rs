//! Owns the actor counters shared by shards and handles, and the `ActorStats` snapshot
//! callers publish as gauges on a timer.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the actor system's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActorStats {
    /// User actors currently registered in the shards.
    pub live_actors: u64,
    /// Requests refused because a mailbox was full (answered `Overloaded`), since start.
    pub mailbox_rejections: u64,
    /// Backing calls that failed or timed out and were decided locally, since start.
    pub backing_failures: u64,
    /// Reservations that waited for verifications in flight, since start.
    pub pending_waits: u64,
    /// Of those, the ones answered `AttemptsInFlight` (the wait ended undecided, or too
    /// many were waiting), since start.
    pub pending_refusals: u64,
}

/// Counters updated by shards, actors and handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    live_actors: AtomicU64,
    mailbox_rejections: AtomicU64,
    backing_failures: AtomicU64,
    pending_waits: AtomicU64,
    pending_refusals: AtomicU64,
}

impl Counters {
    pub(crate) fn actor_started(&self) {
        self.live_actors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn actor_removed(&self) {
        self.live_actors.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn mailbox_rejected(&self) {
        self.mailbox_rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn backing_failed(&self) {
        self.backing_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pending_waited(&self) {
        self.pending_waits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pending_refused(&self) {
        self.pending_refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ActorStats {
        ActorStats {
            live_actors: self.live_actors.load(Ordering::Relaxed),
            mailbox_rejections: self.mailbox_rejections.load(Ordering::Relaxed),
            backing_failures: self.backing_failures.load(Ordering::Relaxed),
            pending_waits: self.pending_waits.load(Ordering::Relaxed),
            pending_refusals: self.pending_refusals.load(Ordering::Relaxed),
        }
    }
}
