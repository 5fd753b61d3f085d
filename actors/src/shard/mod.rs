//! Owns `Shard`: one registry actor owning part of the user key space. It creates user
//! actors on demand, routes every request for its keys (so it knows when each was last
//! used), sweeps for idle ones on a timer, and forgets actors when they stop. Split into
//! lifecycle, handlers and messages.

mod handlers;
mod lifecycle;
pub(crate) mod messages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::clock::Instant;
use actix::{Actor, Addr, AsyncContext, Context, WeakAddr};

use crate::clock::monotonic_now;
use crate::key::UserKey;
use crate::user::messages::IdleCheck;
use crate::user::{UserActor, UserSettings};

/// A registry shard. User actors it creates run on its arbiter (thread).
pub(crate) struct Shard {
    users: HashMap<UserKey, Entry>,
    next_id: u64,
    settings: Arc<UserSettings>,
    /// This shard's own address, weak, handed to the actors it creates.
    me: Option<WeakAddr<Shard>>,
    /// Origin of `Entry::last_routed`.
    epoch: Instant,
    /// The idle actors a sweep under way has yet to notify: key and actor id.
    idle_queue: Vec<(UserKey, u64)>,
    /// How many of them it notifies at a time ([`sweep_batch`]).
    sweep_batch: usize,
}

/// At most how many idle notices a sweep sends before it lets the thread run the actors
/// they woke. Why: each notice queues its actor on the thread's run queue, which keeps
/// the capacity it once reached (notifying 125,000 idle actors at once left a megabyte
/// there for good, per shard), and each actor that stops sends its shard a notice,
/// which fills the shard's mailbox ahead of the requests.
const MAX_SWEEP_BATCH: usize = 512;

/// A sweep's batch for a shard whose mailbox holds `shard_mailbox` messages: at most
/// half of it, so that one batch's stop notices leave room for requests.
pub(crate) fn sweep_batch(shard_mailbox: usize) -> usize {
    (shard_mailbox / 2).clamp(1, MAX_SWEEP_BATCH)
}

struct Entry {
    /// The only sender to this actor: actix parks a sender once the mailbox is over
    /// capacity, so one sender bounds the queue at `user_mailbox + 1`.
    addr: Addr<UserActor>,
    id: u64,
    /// Milliseconds since `epoch` when a request was last routed here (or idle-checked).
    last_routed: u64,
}

impl Shard {
    pub(crate) fn new(settings: Arc<UserSettings>, sweep_batch: usize) -> Self {
        Self {
            users: HashMap::new(),
            next_id: 0,
            settings,
            me: None,
            epoch: monotonic_now(),
            idle_queue: Vec::new(),
            sweep_batch,
        }
    }

    fn now_ms(&self) -> u64 {
        let elapsed = monotonic_now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// How often to look for idle actors: an actor stops between one and one and a half
    /// idle timeouts after its last request.
    pub(crate) fn sweep_every(idle_timeout: Duration) -> Duration {
        (idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }

    /// The live actor for `key`, creating one when there is none or the known one has
    /// stopped (its address is disconnected) before its stop notice arrived.
    fn user(&mut self, key: &UserKey) -> Option<&Addr<UserActor>> {
        let now = self.now_ms();
        let live = match self.users.get_mut(key) {
            Some(entry) if entry.addr.connected() => {
                entry.last_routed = now;
                true
            }
            _ => false,
        };
        if !live {
            self.spawn_user(key.clone());
        }
        self.users.get(key).map(|e| &e.addr)
    }

    fn spawn_user(&mut self, key: UserKey) {
        let Some(me) = self.me.clone() else {
            return;
        };
        self.next_id += 1;
        let id = self.next_id;
        let actor = UserActor::new(key.clone(), id, me, Arc::clone(&self.settings));
        let capacity = self.settings.user_mailbox;
        // `create` sets the capacity before any sender can reach the mailbox
        let addr = UserActor::create(move |ctx| {
            ctx.set_mailbox_capacity(capacity);
            actor
        });
        let entry = Entry {
            addr,
            id,
            last_routed: self.now_ms(),
        };
        if self.users.insert(key, entry).is_none() {
            self.settings.counters.actor_started();
        }
    }

    fn idle_ms(&self) -> u64 {
        u64::try_from(self.settings.idle_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// Tells every actor that nothing was routed to for `idle_timeout` to stop if it can,
    /// a batch at a time.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if !self.idle_queue.is_empty() {
            // the last sweep is still under way
            return;
        }
        let (now, idle_ms) = (self.now_ms(), self.idle_ms());
        self.idle_queue = self
            .users
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last_routed) >= idle_ms)
            .map(|(key, e)| (key.clone(), e.id))
            .collect();
        self.notify_idle(ctx);
    }

    /// Sends the next batch of a sweep's idle notices, to the actors still idle, and
    /// comes back for the next once the thread has run the actors they woke.
    fn notify_idle(&mut self, ctx: &mut Context<Self>) {
        let (now, idle_ms) = (self.now_ms(), self.idle_ms());
        let from = self.idle_queue.len().saturating_sub(self.sweep_batch);
        for (key, id) in self.idle_queue.drain(from..) {
            let Some(entry) = self.users.get_mut(&key) else {
                continue;
            };
            if entry.id == id && now.saturating_sub(entry.last_routed) >= idle_ms {
                // a full mailbox means busy, not idle; an actor that must stay is asked
                // again one idle timeout later
                let _ = entry.addr.try_send(IdleCheck);
                entry.last_routed = now;
            }
        }
        if self.idle_queue.is_empty() {
            self.idle_queue = Vec::new();
        } else {
            // a timer, not a message to itself: the shard's mailbox is drained in the
            // same turn, before the woken actors run
            ctx.run_later(Duration::ZERO, |shard, ctx| shard.notify_idle(ctx));
        }
    }

    /// Forgets actor `id` of `key` if it is still the registered one.
    fn forget(&mut self, key: &UserKey, id: u64) {
        if self.users.get(key).is_some_and(|e| e.id == id) {
            self.users.remove(key);
            self.settings.counters.actor_removed();
            // give memory back after a mass reap (shrinks geometrically, so amortised)
            if self.users.capacity() > 64 && self.users.len() * 4 < self.users.capacity() {
                self.users.shrink_to_fit();
            }
        }
    }
}
