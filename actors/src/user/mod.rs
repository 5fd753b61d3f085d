//! Owns `UserActor`: one account's hot security state (lockout window,
//! reservations waiting for verifications in flight), serialising that
//! account's operations. Created on demand by its shard, stopped when idle. Split into
//! state (pure), waiting, lifecycle, handlers and messages.

mod handlers;
mod lifecycle;
pub(crate) mod messages;
mod state;
mod waiting;

use std::sync::Arc;
use std::time::Duration;

use actix::WeakAddr;

use crate::backing::Backing;
use crate::key::UserKey;
use crate::policy::lockout::LockoutPolicy;
use crate::shard::Shard;
use crate::stats::Counters;

use state::UserState;

/// What every user actor of one actor system shares (one `Arc` per actor).
#[derive(Debug)]
pub(crate) struct UserSettings {
    pub(crate) lockout: LockoutPolicy,
    pub(crate) backing: Backing,
    pub(crate) idle_timeout: Duration,
    pub(crate) backing_timeout: Duration,
    pub(crate) pending_wait: Duration,
    pub(crate) pending_poll: Duration,
    pub(crate) max_pending: usize,
    pub(crate) user_mailbox: usize,
    pub(crate) counters: Arc<Counters>,
}

/// One account's actor, kept small (48 bytes, plus its state only while it has some:
/// the lockout mirror, reservations waiting for verifications in flight):
/// an idle actor, with actix's context, task and mailbox, stays under 1 KiB.
pub(crate) struct UserActor {
    key: UserKey,
    /// Distinguishes this actor from a later one for the same key in the shard map.
    id: u64,
    shard: WeakAddr<Shard>,
    settings: Arc<UserSettings>,
    /// `None` while the state is empty (the common idle case): no allocation.
    state: Option<Box<UserState>>,
}

impl UserActor {
    pub(crate) fn new(
        key: UserKey,
        id: u64,
        shard: WeakAddr<Shard>,
        settings: Arc<UserSettings>,
    ) -> Self {
        Self {
            key,
            id,
            shard,
            settings,
            state: None,
        }
    }

    fn state_mut(&mut self) -> &mut UserState {
        self.state.get_or_insert_with(Box::default)
    }

    /// Frees the state once it holds nothing.
    fn settle(&mut self) {
        if self.state.as_ref().is_some_and(|s| s.is_empty()) {
            self.state = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_user_actor_stays_small() {
        // actix's context adds ~340 bytes; tokio's task cell is 128-byte aligned, so the
        // actor must stay small for the whole task to fit in 512 bytes
        assert!(std::mem::size_of::<UserActor>() <= 64);
        let task =
            std::mem::size_of::<actix::dev::ContextFut<UserActor, actix::Context<UserActor>>>();
        assert!(task <= 400, "ContextFut is {task} bytes");
    }
}
