//! Users by id, for the hot `GET /me` path, kept exact by invalidation.
//!
//! A generation counter is bumped before and after every write that may
//! change a user; a read fills the cache only when no write began or ended
//! while it ran, so a row read before a write committed is never kept.
//!
//! - The embedded store is the only writer of its file (one instance), so
//!   clearing around its own writes is enough.
//! - On PostgreSQL, other instances (and the operator CLI) write too: each
//!   change to a `users` row is announced by a trigger (`NOTIFY`), and every
//!   instance forgets that user when the notice arrives
//!   ([`crate::storage::postgres`]); the cache is used only while the
//!   notices are being received, and an entry is kept at most `max_age`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::UserRecord;

/// Users kept at most (the cache is cleared when full).
const CAPACITY: usize = 10_000;

#[derive(Clone)]
pub(crate) struct UserCache {
    inner: Arc<Inner>,
}

struct Inner {
    users: Mutex<HashMap<Uuid, (UserRecord, Instant)>>,
    generation: AtomicU64,
    /// False while the cache may miss changes (PostgreSQL: no listener).
    enabled: AtomicBool,
    max_age: Option<Duration>,
}

impl Default for UserCache {
    /// Always on, entries kept until invalidated (the embedded store).
    fn default() -> Self {
        Self::new(true, None)
    }
}

impl UserCache {
    pub(crate) fn new(enabled: bool, max_age: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(Inner {
                users: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
                enabled: AtomicBool::new(enabled),
                max_age,
            }),
        }
    }

    pub(crate) fn get(&self, id: Uuid) -> Option<UserRecord> {
        if !self.inner.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let users = self.inner.users.lock().ok()?;
        let (record, at) = users.get(&id)?;
        match self.inner.max_age {
            Some(max) if at.elapsed() >= max => None,
            _ => Some(record.clone()),
        }
    }

    /// The generation to hand back to [`fill`](Self::fill) after a read.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Remembers a user read while the generation was `before`, unless a
    /// write began or ended since (or the cache is off).
    pub(crate) fn fill(&self, before: u64, record: &UserRecord) {
        if !self.inner.enabled.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut users) = self.inner.users.lock() {
            if self.generation() == before {
                if users.len() >= CAPACITY {
                    users.clear();
                }
                users.insert(record.id, (record.clone(), Instant::now()));
            }
        }
    }

    /// Called before and after every write that may change a user.
    pub(crate) fn invalidate(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut users) = self.inner.users.lock() {
            users.clear();
        }
    }

    /// Held across a write that may change a user: the cache is cleared
    /// when it begins and again when the guard drops (after the commit), so
    /// the writer's own next read is exact without waiting for a notice.
    pub(crate) fn changing(&self) -> Changing {
        self.invalidate();
        Changing(self.clone(), None)
    }

    /// [`changing`](Self::changing) for a write of one known user: only that
    /// user is forgotten, so a sign-in does not empty the whole cache.
    pub(crate) fn changing_user(&self, id: Uuid) -> Changing {
        self.forget(id);
        Changing(self.clone(), Some(id))
    }

    /// One user changed elsewhere: forget it (and refuse reads in flight).
    pub(crate) fn forget(&self, id: Uuid) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut users) = self.inner.users.lock() {
            users.remove(&id);
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::SeqCst)
    }

    /// Turns the cache on or off; either way it starts empty.
    pub(crate) fn set_enabled(&self, on: bool) {
        self.invalidate();
        self.inner.enabled.store(on, Ordering::SeqCst);
        self.invalidate();
    }

    /// True once every holder but the caller has gone (the store was dropped).
    pub(crate) fn orphaned(&self) -> bool {
        Arc::strong_count(&self.inner) <= 1
    }
}

/// See [`UserCache::changing`] and [`UserCache::changing_user`].
pub(crate) struct Changing(UserCache, Option<Uuid>);

impl Drop for Changing {
    fn drop(&mut self) {
        match self.1 {
            Some(id) => self.0.forget(id),
            None => self.0.invalidate(),
        }
    }
}
