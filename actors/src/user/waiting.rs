//! Owns `Waiting`: one user's reservations that found every attempt of the window held
//! by verifications in flight, oldest first, with the timer that asks for them again.
//! Bounded by `max_pending`; each waits at most `pending_wait`.

use std::collections::VecDeque;
use std::fmt;

use actix::clock::Instant;
use actix::SpawnHandle;

use super::messages::Reply;
use crate::policy::lockout::Reservation;
use crate::time::Timestamp;

/// One reservation request, waiting or about to be decided.
pub(super) struct Waiter {
    /// The time the request was made at: every retry decides at this time.
    pub(super) now: Timestamp,
    /// When it stops waiting; `None` until it first waits.
    pub(super) deadline: Option<Instant>,
    pub(super) reply: Reply<Reservation>,
}

impl Waiter {
    pub(super) fn new(now: Timestamp, reply: Reply<Reservation>) -> Self {
        Self {
            now,
            deadline: None,
            reply,
        }
    }
}

/// The waiting reservations of one user and the timer that retries the oldest.
#[derive(Default)]
pub(super) struct Waiting {
    queue: VecDeque<Waiter>,
    pub(super) timer: Option<SpawnHandle>,
}

impl Waiting {
    /// No reservation waits and no timer runs.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.timer.is_none()
    }

    pub(super) fn has_waiters(&self) -> bool {
        !self.queue.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn push_back(&mut self, waiter: Waiter) {
        self.queue.push_back(waiter);
    }

    /// Puts back the oldest after a retry that left it pending.
    pub(super) fn push_front(&mut self, waiter: Waiter) {
        self.queue.push_front(waiter);
    }

    pub(super) fn pop_front(&mut self) -> Option<Waiter> {
        self.queue.pop_front()
    }

    /// Removes the oldest waiter if its deadline is not after `now`. Every waiter waits
    /// the same time and the queue is in arrival order, so the overdue ones come first.
    pub(super) fn pop_overdue(&mut self, now: Instant) -> Option<Waiter> {
        let overdue = self
            .queue
            .front()
            .is_some_and(|w| w.deadline.is_some_and(|d| d <= now));
        if overdue {
            self.queue.pop_front()
        } else {
            None
        }
    }
}

impl fmt::Debug for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting")
            .field("waiters", &self.queue.len())
            .field("timer", &self.timer.is_some())
            .finish()
    }
}
