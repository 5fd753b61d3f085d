//! Users by id, for the hot `GET /me` path. The embedded store is the only
//! writer of its file (one instance), so clearing the cache around every
//! write that may change a user keeps it exact: a generation counter is
//! bumped before and after such a write, and a read fills the cache only when
//! no write began or ended while it ran.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::UserRecord;

/// Users kept at most (the cache is cleared when full).
const CAPACITY: usize = 10_000;

#[derive(Clone, Default)]
pub(super) struct UserCache {
    users: Arc<Mutex<HashMap<Uuid, UserRecord>>>,
    generation: Arc<AtomicU64>,
}

impl UserCache {
    pub(super) fn get(&self, id: Uuid) -> Option<UserRecord> {
        self.users.lock().ok().and_then(|u| u.get(&id).cloned())
    }

    /// The generation to hand back to [`fill`](Self::fill) after a read.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Remembers a user read while the generation was `before`, unless a
    /// write began or ended since.
    pub(super) fn fill(&self, before: u64, record: &UserRecord) {
        if let Ok(mut users) = self.users.lock() {
            if self.generation() == before {
                if users.len() >= CAPACITY {
                    users.clear();
                }
                users.insert(record.id, record.clone());
            }
        }
    }

    /// Called before and after every write that may change a user.
    pub(super) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut users) = self.users.lock() {
            users.clear();
        }
    }
}
