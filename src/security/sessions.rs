//! Session liveness on every authenticated request, and revocation that takes
//! effect at once on every instance.
//!
//! The database holds the session (its absolute end, whether it was revoked,
//! its last activity). Checking it on every request would put a query on the
//! hot path, so:
//! - with Redis, one script call per request decides and records activity
//!   (`redis/session.lua`). Redis's copy of a session is built from the
//!   database row when absent and confirmed against the row again once it is
//!   a minute old (`RECHECK_MS`), so a revocation that never reached Redis
//!   still ends the session within a minute; an idle verdict is confirmed
//!   with the row too (it may hold activity seen while Redis was down);
//! - on the embedded single-node default, this process's map decides (it is
//!   the only instance, and revocations go through it);
//! - with PostgreSQL but no Redis (or while Redis is down), the database row
//!   is read on every request, which is slower but exact across instances
//!   up to the activity other instances have not flushed yet.
//!
//! Activity reaches the database in batches (`flush_activity`, every few
//! seconds), never as a write per request. A refresh is activity too: the
//! rotation writes it to the row, and [`SessionGuard::refreshed`] tells Redis
//! and the map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::redis::RedisStore;
use crate::storage::{DynStore, SessionRecord, StorageError};

/// Why a session no longer admits requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Revoked,
    Idle,
    Expired,
    Unknown,
}

impl SessionEnd {
    pub fn describe(self) -> &'static str {
        match self {
            SessionEnd::Revoked => "the session has ended",
            SessionEnd::Idle => "the session timed out after inactivity",
            SessionEnd::Expired => "the session reached its maximum lifetime",
            SessionEnd::Unknown => "the session does not exist",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    user_id: Uuid,
    expires_ms: i64,
    last_activity_ms: i64,
    revoked: bool,
}

#[derive(Clone)]
pub struct SessionGuard {
    redis: Option<RedisStore>,
    store: DynStore,
    idle_ms: i64,
    /// Single-node mode: this map is authoritative once loaded.
    embedded: bool,
    local: Arc<Mutex<HashMap<Uuid, Cached>>>,
    /// Activity not yet written to the database.
    pending: Arc<Mutex<HashMap<Uuid, i64>>>,
    /// How long Redis keeps a revocation: the access-token lifetime.
    revoke_ttl_ms: i64,
    /// The store's count of writes made by another process, when the map was
    /// last trusted (embedded: the operator commands end sessions too).
    external_seen: Arc<AtomicU64>,
}

/// Redis keeps a session a minute after its last use (each use renews it).
const REDIS_TTL_MS: i64 = 60_000;

/// Redis's copy of a session is checked against the database row once it is
/// this old, however often the session is used.
const RECHECK_MS: i64 = 60_000;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

impl SessionGuard {
    pub fn new(
        redis: Option<RedisStore>,
        store: DynStore,
        idle: Duration,
        embedded: bool,
        access_ttl: Duration,
    ) -> Self {
        Self {
            redis,
            idle_ms: idle.as_millis() as i64,
            embedded,
            local: Arc::default(),
            pending: Arc::default(),
            revoke_ttl_ms: (access_ttl.as_millis() as i64 + 60_000).max(REDIS_TTL_MS),
            external_seen: Arc::new(AtomicU64::new(store.external_writes())),
            store,
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The newest activity known outside the database row (which other
    /// instances update in batches): this instance's unflushed activity and
    /// map, and Redis's copy.
    pub async fn last_activity(&self, session_id: Uuid) -> Option<DateTime<Utc>> {
        let pending = Self::lock(&self.pending).get(&session_id).copied();
        let local = Self::lock(&self.local)
            .get(&session_id)
            .map(|c| c.last_activity_ms);
        let shared = match self.redis.as_ref().filter(|r| r.looks_up()) {
            Some(redis) => match redis.session(&session_id.to_string(), "peek", [0; 6]).await {
                Ok((1, la)) => Some(la),
                _ => None,
            },
            None => None,
        };
        pending.max(local).max(shared).map(time)
    }

    /// Records a refresh as activity where requests are judged (the rotation
    /// wrote it to the row under lock, so Redis may take it as confirmed).
    pub async fn refreshed(&self, session: &SessionRecord, now: DateTime<Utc>) {
        let now_ms = ms(now);
        if let Some(c) = Self::lock(&self.local).get_mut(&session.id) {
            c.last_activity_ms = c.last_activity_ms.max(now_ms);
        }
        if let Some(redis) = self.redis.as_ref().filter(|r| r.looks_up()) {
            let seed = [
                now_ms,
                self.idle_ms,
                REDIS_TTL_MS,
                now_ms,
                ms(session.expires_at),
                0,
            ];
            if let Err(e) = redis.session(&session.id.to_string(), "seed", seed).await {
                tracing::warn!(error = %e, "session refresh not written to redis");
            }
        }
    }

    fn touch(&self, session_id: Uuid, now_ms: i64) {
        let mut pending = Self::lock(&self.pending);
        let entry = pending.entry(session_id).or_insert(now_ms);
        *entry = (*entry).max(now_ms);
    }

    /// Checks that a session admits a request from `user_id` now, and records the activity.
    pub async fn check(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Result<(), SessionEnd>, StorageError> {
        let now_ms = ms(now);
        if let Some(redis) = self.redis.as_ref().filter(|r| r.looks_up()) {
            let sid = session_id.to_string();
            let touch = [now_ms, self.idle_ms, REDIS_TTL_MS, 0, 0, RECHECK_MS];
            if let Ok((code, redis_la)) = redis.session(&sid, "touch", touch).await {
                match code {
                    1 => {
                        self.touch(session_id, now_ms);
                        return Ok(Ok(()));
                    }
                    -1 => return Ok(Err(SessionEnd::Revoked)),
                    -3 => return Ok(Err(SessionEnd::Expired)),
                    _ => {}
                }
                // Unknown to Redis, due for a check, or idle by Redis's
                // account: the row decides, with the activity Redis knows.
                let row = self.store.find_session(session_id).await?;
                let mut verdict = self.judge(row.as_ref(), user_id, now_ms, redis_la);
                match (verdict, &row) {
                    (Ok(()), Some(row)) => {
                        let la = ms(row.last_activity_at).max(redis_la).max(now_ms);
                        let seed = [
                            now_ms,
                            self.idle_ms,
                            REDIS_TTL_MS,
                            la,
                            ms(row.expires_at),
                            0,
                        ];
                        if let Ok((-1, _)) = redis.session(&sid, "seed", seed).await {
                            // Revoked while the row was read.
                            verdict = Err(SessionEnd::Revoked);
                        } else {
                            self.touch(session_id, now_ms);
                        }
                    }
                    (Err(_), Some(row)) if row.invalidated_at.is_some() && code != 0 => {
                        // Redis held a live copy of an ended session: a
                        // revocation that did not reach it. It learns it now.
                        let revoke = [now_ms, self.idle_ms, self.revoke_ttl_ms, 0, 0, 0];
                        let _ = redis.session(&sid, "revoke", revoke).await;
                    }
                    _ => {}
                }
                return Ok(verdict);
            }
        }
        if self.embedded {
            // Another process (an operator command) wrote to the database:
            // the map is rebuilt from the rows it committed.
            let external = self.store.external_writes();
            if self.external_seen.swap(external, Ordering::SeqCst) != external {
                Self::lock(&self.local).clear();
            }
            let cached = Self::lock(&self.local).get(&session_id).copied();
            let cached = match cached {
                Some(c) => c,
                None => {
                    let Some(row) = self.store.find_session(session_id).await? else {
                        return Ok(Err(SessionEnd::Unknown));
                    };
                    // Activity not flushed yet is newer than the row's.
                    let pending = Self::lock(&self.pending).get(&session_id).copied();
                    let c = Cached {
                        user_id: row.user_id,
                        expires_ms: ms(row.expires_at),
                        last_activity_ms: ms(row.last_activity_at).max(pending.unwrap_or(0)),
                        revoked: row.invalidated_at.is_some(),
                    };
                    Self::lock(&self.local).insert(session_id, c);
                    c
                }
            };
            let verdict = self.judge_cached(&cached, user_id, now_ms);
            if verdict.is_ok() {
                if let Some(c) = Self::lock(&self.local).get_mut(&session_id) {
                    c.last_activity_ms = c.last_activity_ms.max(now_ms);
                }
                self.touch(session_id, now_ms);
            }
            return Ok(verdict);
        }
        let row = self.store.find_session(session_id).await?;
        let verdict = self.judge(row.as_ref(), user_id, now_ms, 0);
        if verdict.is_ok() {
            self.touch(session_id, now_ms);
        }
        Ok(verdict)
    }

    /// Judges the row with the newest activity known: the row's, this
    /// instance's unflushed activity, and `known_ms` (Redis's).
    fn judge(
        &self,
        row: Option<&SessionRecord>,
        user_id: Uuid,
        now_ms: i64,
        known_ms: i64,
    ) -> Result<(), SessionEnd> {
        let Some(row) = row else {
            return Err(SessionEnd::Unknown);
        };
        let pending = Self::lock(&self.pending).get(&row.id).copied().unwrap_or(0);
        self.judge_cached(
            &Cached {
                user_id: row.user_id,
                expires_ms: ms(row.expires_at),
                last_activity_ms: ms(row.last_activity_at).max(pending).max(known_ms),
                revoked: row.invalidated_at.is_some(),
            },
            user_id,
            now_ms,
        )
    }

    fn judge_cached(&self, c: &Cached, user_id: Uuid, now_ms: i64) -> Result<(), SessionEnd> {
        if c.user_id != user_id || c.revoked {
            Err(SessionEnd::Revoked)
        } else if now_ms >= c.expires_ms {
            Err(SessionEnd::Expired)
        } else if now_ms - c.last_activity_ms >= self.idle_ms {
            Err(SessionEnd::Idle)
        } else {
            Ok(())
        }
    }

    /// Makes revoked sessions fail at once here and, through Redis, everywhere.
    /// Call after the database has recorded the revocation.
    pub async fn revoked(&self, session_ids: &[Uuid], now: DateTime<Utc>) {
        {
            let mut local = Self::lock(&self.local);
            let mut pending = Self::lock(&self.pending);
            for id in session_ids {
                if let Some(c) = local.get_mut(id) {
                    c.revoked = true;
                }
                pending.remove(id);
            }
        }
        if let Some(redis) = &self.redis {
            for id in session_ids {
                if let Err(e) = redis
                    .session(
                        &id.to_string(),
                        "revoke",
                        [ms(now), self.idle_ms, self.revoke_ttl_ms, 0, 0, 0],
                    )
                    .await
                {
                    // The database already says revoked; Redis's copy, live
                    // while in use, is checked against it within a minute.
                    tracing::warn!(error = %e, "session revocation not written to redis");
                }
            }
        }
    }

    /// Writes pending activity to the database, and forgets sessions idle
    /// past their timeout from the local map.
    pub async fn flush_activity(&self, now: DateTime<Utc>) {
        let batch: Vec<(Uuid, DateTime<Utc>)> = {
            let mut pending = Self::lock(&self.pending);
            pending.drain().map(|(id, at)| (id, time(at))).collect()
        };
        if !batch.is_empty() {
            for chunk in batch.chunks(1000) {
                if let Err(e) = self.store.touch_sessions(chunk).await {
                    tracing::warn!(error = %e, sessions = chunk.len(), "session activity not flushed; will retry");
                    let mut pending = Self::lock(&self.pending);
                    for (id, at) in chunk {
                        let entry = pending.entry(*id).or_insert(ms(*at));
                        *entry = (*entry).max(ms(*at));
                    }
                }
            }
        }
        let now_ms = ms(now);
        let idle = self.idle_ms;
        Self::lock(&self.local).retain(|_, c| {
            !c.revoked && now_ms - c.last_activity_ms < idle && now_ms < c.expires_ms
        });
    }
}
