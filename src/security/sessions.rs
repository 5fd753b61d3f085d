//! Session liveness on every authenticated request, and revocation that takes
//! effect at once on every instance.
//!
//! The database holds the session (its absolute end, whether it was revoked,
//! its last activity). Checking it, or Redis, on every request would put a
//! round trip on the hot path, so each instance holds the liveness of the
//! sessions it serves in memory ([`SessionGuard`]'s sharded map):
//! - with Redis (and a database other than the embedded one), an entry is
//!   confirmed with one call of `redis/session.lua` (which records the
//!   activity and sends the session back to the database row once Redis's
//!   copy is a minute old, `RECHECK_MS`) and then decides requests alone for
//!   `SESSION_REVALIDATE_SECONDS`. Every revocation is written to Redis and
//!   published on `{prefix}:session-revocations`; each instance's subscriber
//!   marks the sessions revoked in its map at once and confirms it to the
//!   revoking instance, which answers once every subscriber that received the
//!   message has confirmed (at most [`REVOCATION_CONFIRM_WAIT`]). A lost message is bounded
//!   by the revalidation interval; while the subscription is down (and until
//!   it is back) no entry is trusted, so every request asks Redis (or, while
//!   Redis is down, reads the row). An idle verdict from memory is never
//!   final: Redis and the row are asked, since other instances' activity
//!   reaches them in batches;
//! - on the embedded single-node default, the map is authoritative (it is the
//!   only instance, and revocations go through it), loaded from the row on
//!   first use;
//! - with PostgreSQL but no Redis (or while Redis is down), the database row
//!   is read on every request, which is slower but exact across instances
//!   up to the activity other instances have not flushed yet.
//!
//! Activity decided in memory reaches Redis in batches every second
//! ([`SessionGuard::flush_shared`]) and the database every few seconds
//! ([`SessionGuard::flush_activity`]), never as a write per request. A
//! refresh is activity too: the rotation writes it to the row, and
//! [`SessionGuard::refreshed`] tells the map and the next Redis batch.
//!
//! Why a sharded map owned by the guard rather than the per-user actors of
//! `suma-auth-actors`: a check is a few field reads and one write under a
//! lock held for nanoseconds and never across an `.await`, whereas an actor
//! costs a mailbox send, a task wake-up and a reply channel per request, and
//! is reaped when idle (losing what it held). The subscriber marks a
//! revocation with one lock of one shard; 64 shards keep the HTTP workers
//! from contending.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::redis::RedisStore;
use crate::services::Clock;
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

/// What an instance holds about one session.
#[derive(Debug, Clone, Copy)]
struct Live {
    user_id: Uuid,
    expires_ms: i64,
    /// The newest activity this instance knows of.
    last_activity_ms: i64,
    revoked: bool,
    /// When Redis or the row last confirmed the entry (for a revoked entry:
    /// when it was marked). Service clock, ms.
    confirmed_ms: i64,
    /// The subscription the confirmation was made under (see [`Feed`]).
    epoch: u64,
}

/// One shard of the map. `generation` counts the revocations applied to
/// the shard: an entry read from Redis or the row is kept only if no
/// revocation reached the shard meanwhile (it could predate the read).
#[derive(Default)]
struct Shard {
    generation: u64,
    map: HashMap<Uuid, Live>,
}

const SHARDS: usize = 64;

struct LiveMap {
    shards: Box<[Mutex<Shard>]>,
}

impl LiveMap {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, id: &Uuid) -> MutexGuard<'_, Shard> {
        let i = id.as_bytes()[15] as usize % SHARDS;
        lock(&self.shards[i])
    }
}

/// The state of this instance's subscription to the revocation channel.
#[derive(Default)]
struct Feed {
    /// Bumped at each successful (re)subscription.
    epoch: AtomicU64,
    up: AtomicBool,
}

impl Feed {
    /// The subscription entries confirmed now are made under; 0 while none
    /// is up (such entries are never trusted).
    fn current(&self) -> u64 {
        if self.up.load(Ordering::SeqCst) {
            self.epoch.load(Ordering::SeqCst)
        } else {
            0
        }
    }
}

/// Taken before Redis or the row is read: whether a revocation could have
/// been missed since.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    epoch: u64,
    generation: u64,
}

/// How many session checks each source decided since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionDecisions {
    /// This instance's map alone, without a round trip.
    pub memory: u64,
    /// Redis's answer (the session script).
    pub redis: u64,
    /// The database row.
    pub database: u64,
}

#[derive(Default)]
struct Decided {
    memory: AtomicU64,
    redis: AtomicU64,
    database: AtomicU64,
}

#[derive(Clone)]
pub struct SessionGuard {
    redis: Option<RedisStore>,
    store: DynStore,
    clock: Clock,
    idle_ms: i64,
    /// How long an entry decides alone before Redis is asked again.
    revalidate_ms: i64,
    /// Single-node mode: the map is authoritative once loaded.
    embedded: bool,
    live: Arc<LiveMap>,
    feed: Arc<Feed>,
    decided: Arc<Decided>,
    /// Revocations are published to the other instances (tests turn it off).
    publish: bool,
    /// The instances' confirmations of this instance's revocation messages.
    confirmations: Arc<Confirmations>,
    /// Holds the application of received revocation messages until a permit
    /// is added (tests of the wait for confirmations).
    hold_feed: Option<Arc<tokio::sync::Semaphore>>,
    /// Activity not yet written to the database.
    pending: Arc<Mutex<HashMap<Uuid, i64>>>,
    /// Activity decided in memory, not yet written to Redis.
    shared_pending: Arc<Mutex<HashMap<Uuid, i64>>>,
    /// How long Redis (and the map) keep a revocation: the access-token
    /// lifetime plus a minute.
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

/// The revocation messages this instance published, each waiting for the
/// subscribers that received it to confirm that they applied it.
///
/// Why wait: a message applied by another instance a few milliseconds after
/// the logout answered would let a request sent there right after the answer
/// through. Waiting (bounded by `wait`) makes the answer mean that every
/// subscribed instance refuses the session; an instance that does not confirm
/// in time (stalled, or its subscription lost meanwhile) is bounded by the
/// revalidation interval as before.
struct Confirmations {
    /// This process's name on the confirmation channel.
    instance: String,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, tokio::sync::watch::Sender<usize>>>,
    wait: Duration,
}

/// How long a revocation waits for the other instances' confirmations.
pub const REVOCATION_CONFIRM_WAIT: Duration = Duration::from_millis(500);

/// The first word of a revocation message that asks for a confirmation:
/// `ack=<instance>:<seq>`. Instances that do not know it skip it (it is not
/// a session id).
const ACK_WORD: &str = "ack=";

impl Confirmations {
    fn new(wait: Duration) -> Self {
        Self {
            instance: Uuid::new_v4().simple().to_string(),
            next: AtomicU64::new(1),
            waiting: Mutex::default(),
            wait,
        }
    }

    /// Registers a message about to be published; the registration ends
    /// when the returned [`Awaited`] is dropped (also when the request that
    /// waits is abandoned).
    fn expect(self: &Arc<Self>) -> Awaited {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, confirmed) = tokio::sync::watch::channel(0);
        lock(&self.waiting).insert(seq, tx);
        Awaited {
            book: self.clone(),
            seq,
            confirmed,
        }
    }

    fn confirmed(&self, seq: u64) {
        if let Some(tx) = lock(&self.waiting).get(&seq) {
            tx.send_modify(|n| *n += 1);
        }
    }
}

/// One published message's count of confirmations.
struct Awaited {
    book: Arc<Confirmations>,
    seq: u64,
    confirmed: tokio::sync::watch::Receiver<usize>,
}

impl Drop for Awaited {
    fn drop(&mut self) {
        lock(&self.book.waiting).remove(&self.seq);
    }
}

/// A received revocation message: the instance and sequence number to
/// confirm to (when it asks), and the sessions.
fn parse_revocation(payload: &str) -> (Option<(&str, u64)>, Vec<Uuid>) {
    let mut ack = None;
    let mut ids = Vec::new();
    for word in payload.split_whitespace() {
        if let Some(rest) = word.strip_prefix(ACK_WORD) {
            ack = rest
                .split_once(':')
                .and_then(|(instance, seq)| Some((instance, seq.parse().ok()?)));
        } else if let Ok(id) = Uuid::parse_str(word) {
            ids.push(id);
        }
    }
    (ack, ids)
}

/// The subscription is pinged this often (a silent partition ends it).
const FEED_PING: Duration = Duration::from_secs(1);
/// Reconnection delays of the subscription: doubling from the first to the last.
const FEED_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn merge(map: &mut HashMap<Uuid, i64>, id: Uuid, at: i64) {
    let entry = map.entry(id).or_insert(at);
    *entry = (*entry).max(at);
}

impl SessionGuard {
    pub fn new(
        redis: Option<RedisStore>,
        store: DynStore,
        idle: Duration,
        embedded: bool,
        access_ttl: Duration,
        revalidate: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            redis,
            clock,
            idle_ms: idle.as_millis() as i64,
            revalidate_ms: revalidate.as_millis() as i64,
            embedded,
            live: Arc::new(LiveMap::new()),
            feed: Arc::default(),
            decided: Arc::default(),
            publish: true,
            confirmations: Arc::new(Confirmations::new(REVOCATION_CONFIRM_WAIT)),
            hold_feed: None,
            pending: Arc::default(),
            shared_pending: Arc::default(),
            revoke_ttl_ms: (access_ttl.as_millis() as i64 + 60_000).max(REDIS_TTL_MS),
            external_seen: Arc::new(AtomicU64::new(store.external_writes())),
            store,
        }
    }

    /// Writes revocations to Redis without publishing them (tests show what
    /// the revalidation interval bounds when a message is lost).
    pub fn without_publishing(mut self) -> Self {
        self.publish = false;
        self
    }

    /// Waits at most `wait` for the other instances to confirm a revocation
    /// (tests lengthen it; see [`Confirmations`]).
    pub fn confirming_within(mut self, wait: Duration) -> Self {
        self.confirmations = Arc::new(Confirmations::new(wait));
        self
    }

    /// Applies received revocation messages only once `gate` has a permit
    /// (tests of an instance that is slow to apply them).
    pub fn holding_feed(mut self, gate: Arc<tokio::sync::Semaphore>) -> Self {
        self.hold_feed = Some(gate);
        self
    }

    /// Whether the map decides alone, before revalidation is due: with Redis
    /// on a shared database (the embedded map is authoritative anyway).
    fn shared(&self) -> Option<&RedisStore> {
        self.redis.as_ref().filter(|_| !self.embedded)
    }

    /// The newest activity known outside the database row (which other
    /// instances update in batches): this instance's unflushed activity and
    /// map, and Redis's copy.
    pub async fn last_activity(&self, session_id: Uuid) -> Option<DateTime<Utc>> {
        let pending = lock(&self.pending).get(&session_id).copied();
        let local = self
            .live
            .shard(&session_id)
            .map
            .get(&session_id)
            .filter(|e| !e.revoked)
            .map(|e| e.last_activity_ms);
        let shared = match self.redis.as_ref().filter(|r| r.looks_up()) {
            Some(redis) => match redis.session(&session_id.to_string(), "peek", [0; 6]).await {
                Ok((1, la, _)) => Some(la),
                _ => None,
            },
            None => None,
        };
        pending.max(local).max(shared).map(time)
    }

    /// Records a refresh as activity where requests are judged: this
    /// instance's map at once, Redis with the next batch of activity (the
    /// rotation already wrote it to the row, which an idle verdict always
    /// consults, so no round trip is spent on it here).
    pub fn refreshed(&self, session: &SessionRecord, now: DateTime<Utc>) {
        let now_ms = ms(now);
        if let Some(e) = self.live.shard(&session.id).map.get_mut(&session.id) {
            e.last_activity_ms = e.last_activity_ms.max(now_ms);
        }
        if self.shared().is_some() {
            merge(&mut lock(&self.shared_pending), session.id, now_ms);
        }
    }

    /// Activity for the database's next batch.
    fn touch(&self, session_id: Uuid, now_ms: i64) {
        merge(&mut lock(&self.pending), session_id, now_ms);
    }

    fn stamp(&self, session_id: Uuid) -> Stamp {
        // The generation first: a subscription lost after it shows in the epoch.
        let generation = self.live.shard(&session_id).generation;
        Stamp {
            epoch: self.feed.current(),
            generation,
        }
    }

    /// Keeps what Redis or the row just confirmed, unless a revocation may
    /// have been missed since `stamp` (then the next request asks again).
    /// A revoked entry stays revoked.
    fn remember(&self, session_id: Uuid, fresh: Live, stamp: Stamp) {
        let mut shard = self.live.shard(&session_id);
        if shard.generation != stamp.generation
            || (!self.embedded && (stamp.epoch == 0 || stamp.epoch != self.feed.current()))
        {
            return;
        }
        match shard.map.get_mut(&session_id) {
            Some(old) if old.revoked => {}
            Some(old) => {
                let la = old.last_activity_ms.max(fresh.last_activity_ms);
                *old = Live {
                    last_activity_ms: la,
                    epoch: stamp.epoch,
                    ..fresh
                };
            }
            None => {
                shard.map.insert(
                    session_id,
                    Live {
                        epoch: stamp.epoch,
                        ..fresh
                    },
                );
            }
        }
    }

    /// Drops every entry of the map (each is loaded again from its row; one
    /// being loaded now is dropped by `remember`).
    fn forget_all(&self) {
        for shard in self.live.shards.iter() {
            let mut shard = lock(shard);
            shard.generation += 1;
            shard.map.clear();
        }
    }

    /// Marks sessions revoked in the map (those it holds: one it loads later
    /// sees the revocation in Redis or the row, and one being loaded now is
    /// dropped by `remember`).
    fn mark_revoked(&self, session_ids: &[Uuid], now_ms: i64) {
        for id in session_ids {
            let mut shard = self.live.shard(id);
            shard.generation += 1;
            if let Some(e) = shard.map.get_mut(id) {
                e.revoked = true;
                e.confirmed_ms = now_ms;
            }
        }
    }

    /// A revocation learnt from Redis or the row, kept so that a revoked
    /// token presented again costs no round trip.
    fn remember_revoked(&self, session_id: Uuid, now_ms: i64) {
        let mut shard = self.live.shard(&session_id);
        let e = shard.map.entry(session_id).or_insert(Live {
            user_id: Uuid::nil(),
            expires_ms: 0,
            last_activity_ms: 0,
            revoked: true,
            confirmed_ms: now_ms,
            epoch: 0,
        });
        if !e.revoked {
            e.revoked = true;
            e.confirmed_ms = now_ms;
        }
    }

    /// The map's verdict: `None` when it cannot decide alone (no entry, an
    /// entry due for revalidation or confirmed under a lost subscription, or
    /// idle by this instance's account while other instances may have seen
    /// activity). A live verdict records the activity.
    fn decide_in_memory(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now_ms: i64,
    ) -> Option<Result<(), SessionEnd>> {
        let mut shard = self.live.shard(&session_id);
        let e = shard.map.get_mut(&session_id)?;
        if e.revoked || e.user_id != user_id {
            return Some(Err(SessionEnd::Revoked));
        }
        if now_ms >= e.expires_ms {
            return Some(Err(SessionEnd::Expired));
        }
        if !self.embedded {
            let current = e.epoch != 0 && e.epoch == self.feed.current();
            if !current || now_ms - e.confirmed_ms >= self.revalidate_ms {
                return None;
            }
        }
        if now_ms - e.last_activity_ms >= self.idle_ms {
            return if self.embedded {
                Some(Err(SessionEnd::Idle))
            } else {
                None
            };
        }
        e.last_activity_ms = e.last_activity_ms.max(now_ms);
        drop(shard);
        self.touch(session_id, now_ms);
        if self.shared().is_some() {
            merge(&mut lock(&self.shared_pending), session_id, now_ms);
        }
        Some(Ok(()))
    }

    /// Checks that a session admits a request from `user_id` now, and records the activity.
    pub async fn check(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Result<(), SessionEnd>, StorageError> {
        let now_ms = ms(now);
        if self.embedded {
            // Another process (an operator command) wrote to the database:
            // the map is rebuilt from the rows it committed.
            let external = self.store.external_writes();
            if self.external_seen.swap(external, Ordering::SeqCst) != external {
                self.forget_all();
            }
        }
        if self.embedded || self.shared().is_some() {
            if let Some(verdict) = self.decide_in_memory(session_id, user_id, now_ms) {
                Self::count(&self.decided.memory);
                return Ok(verdict);
            }
        }
        let stamp = self.stamp(session_id);
        if let Some(redis) = self.shared().filter(|r| r.looks_up()) {
            let sid = session_id.to_string();
            let touch = [now_ms, self.idle_ms, REDIS_TTL_MS, 0, 0, RECHECK_MS];
            if let Ok((code, redis_la, redis_ex)) = redis.session(&sid, "touch", touch).await {
                if matches!(code, 1 | -1 | -3) {
                    Self::count(&self.decided.redis);
                }
                match code {
                    1 => {
                        self.touch(session_id, now_ms);
                        let fresh = Live {
                            user_id,
                            expires_ms: if redis_ex > 0 { redis_ex } else { i64::MAX },
                            last_activity_ms: redis_la.max(now_ms),
                            revoked: false,
                            confirmed_ms: now_ms,
                            epoch: 0,
                        };
                        self.remember(session_id, fresh, stamp);
                        return Ok(Ok(()));
                    }
                    -1 => {
                        self.remember_revoked(session_id, now_ms);
                        return Ok(Err(SessionEnd::Revoked));
                    }
                    -3 => return Ok(Err(SessionEnd::Expired)),
                    _ => {}
                }
                // Unknown to Redis, due for a check, or idle by Redis's
                // account: the row decides, with the activity Redis knows.
                Self::count(&self.decided.database);
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
                        if let Ok((-1, _, _)) = redis.session(&sid, "seed", seed).await {
                            // Revoked while the row was read.
                            verdict = Err(SessionEnd::Revoked);
                            self.remember_revoked(session_id, now_ms);
                        } else {
                            self.touch(session_id, now_ms);
                            let fresh = Live {
                                user_id: row.user_id,
                                expires_ms: ms(row.expires_at),
                                last_activity_ms: la,
                                revoked: false,
                                confirmed_ms: now_ms,
                                epoch: 0,
                            };
                            self.remember(session_id, fresh, stamp);
                        }
                    }
                    (Err(_), Some(row)) if row.invalidated_at.is_some() => {
                        if code != 0 {
                            // Redis held a live copy of an ended session: a
                            // revocation that did not reach it. It learns it now.
                            let revoke = [now_ms, self.idle_ms, self.revoke_ttl_ms, 0, 0, 0];
                            let _ = redis.session(&sid, "revoke", revoke).await;
                        }
                        self.remember_revoked(session_id, now_ms);
                    }
                    _ => {}
                }
                return Ok(verdict);
            }
        }
        Self::count(&self.decided.database);
        if self.embedded {
            let Some(row) = self.store.find_session(session_id).await? else {
                return Ok(Err(SessionEnd::Unknown));
            };
            // Activity not flushed yet (the map was dropped) is newer than the row's.
            let pending = lock(&self.pending).get(&session_id).copied().unwrap_or(0);
            let fresh = Live {
                user_id: row.user_id,
                expires_ms: ms(row.expires_at),
                last_activity_ms: ms(row.last_activity_at).max(pending),
                revoked: row.invalidated_at.is_some(),
                confirmed_ms: now_ms,
                epoch: 0,
            };
            self.remember(session_id, fresh, stamp);
            let verdict = self.judge_live(&fresh, user_id, now_ms);
            if verdict.is_ok() {
                if let Some(e) = self.live.shard(&session_id).map.get_mut(&session_id) {
                    e.last_activity_ms = e.last_activity_ms.max(now_ms);
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
        let pending = lock(&self.pending).get(&row.id).copied().unwrap_or(0);
        self.judge_live(
            &Live {
                user_id: row.user_id,
                expires_ms: ms(row.expires_at),
                last_activity_ms: ms(row.last_activity_at).max(pending).max(known_ms),
                revoked: row.invalidated_at.is_some(),
                confirmed_ms: now_ms,
                epoch: 0,
            },
            user_id,
            now_ms,
        )
    }

    fn judge_live(&self, c: &Live, user_id: Uuid, now_ms: i64) -> Result<(), SessionEnd> {
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

    /// Ends every live session of `by.owner` but `keep`: the database
    /// records it, then [`Self::revoked`] makes them fail everywhere. Returns
    /// the sessions that ended.
    pub async fn end_user_sessions(
        &self,
        keep: Option<Uuid>,
        by: crate::storage::Revocation,
    ) -> Result<Vec<Uuid>, StorageError> {
        let at = by.at;
        let ended = self.store.revoke_user_sessions(keep, by).await?;
        self.revoked(&ended, at).await;
        Ok(ended)
    }

    /// Makes revoked sessions fail at once here and, through Redis (the
    /// session's copy there and a message on the revocation channel),
    /// everywhere. Call after the database has recorded the revocation.
    pub async fn revoked(&self, session_ids: &[Uuid], now: DateTime<Utc>) {
        if session_ids.is_empty() {
            return;
        }
        self.mark_revoked(session_ids, ms(now));
        {
            let mut pending = lock(&self.pending);
            let mut shared = lock(&self.shared_pending);
            for id in session_ids {
                pending.remove(id);
                shared.remove(id);
            }
        }
        if let Some(redis) = &self.redis {
            let ids: Vec<String> = session_ids.iter().map(Uuid::to_string).collect();
            for chunk in ids.chunks(1000) {
                self.revoke_shared(redis, chunk).await;
            }
        }
    }

    /// Writes one batch of revocations to Redis and publishes it; with other
    /// instances (a shared database), waits for every subscriber that received
    /// the message to confirm it applied it ([`Confirmations`]).
    async fn revoke_shared(&self, redis: &RedisStore, ids: &[String]) {
        // Confirmations arrive on this instance's subscription: while it is
        // down, waiting for them would only cost the whole wait.
        let confirm = self.publish && self.shared().is_some() && self.revocations_subscribed();
        let mut expected = confirm.then(|| self.confirmations.expect());
        let message = self.publish.then(|| {
            let mut message = String::new();
            if let Some(awaited) = &expected {
                let instance = &self.confirmations.instance;
                message = format!("{ACK_WORD}{instance}:{} ", awaited.seq);
            }
            message + &ids.join(" ")
        });
        let written = redis
            .revoke_sessions(ids, self.revoke_ttl_ms, message)
            .await;
        match (written, expected.as_mut()) {
            (Err(e), _) => {
                // The database already says revoked. Other instances
                // whose subscription is up trust their map until their
                // revalidation, then Redis's copy until it is checked
                // against the row (within a minute).
                tracing::warn!(error = %e, "session revocation not written to redis");
            }
            (Ok(received), Some(awaited)) => {
                let wanted = usize::try_from(received).unwrap_or(0);
                let wait = self.confirmations.wait;
                let all = tokio::time::timeout(wait, awaited.confirmed.wait_for(|n| *n >= wanted))
                    .await
                    .is_ok_and(|r| r.is_ok());
                if !all {
                    let got = *awaited.confirmed.borrow();
                    tracing::warn!(
                        received,
                        confirmed = got,
                        "not every instance confirmed a session revocation in time; the others end it within SESSION_REVALIDATE_SECONDS"
                    );
                }
            }
            (Ok(_), None) => {}
        }
    }

    /// The checks decided by each source since start.
    pub fn decisions(&self) -> SessionDecisions {
        SessionDecisions {
            memory: self.decided.memory.load(Ordering::Relaxed),
            redis: self.decided.redis.load(Ordering::Relaxed),
            database: self.decided.database.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this instance is subscribed to the revocation channel now.
    pub fn revocations_subscribed(&self) -> bool {
        self.feed.up.load(Ordering::SeqCst)
    }

    /// Subscribes to the revocation channel and keeps the subscription up
    /// (reconnecting with backoff) for as long as the process runs. Until
    /// it is first up, and whenever it is down, no entry is trusted.
    pub fn spawn_feed(&self) {
        let Some(redis) = self.shared().cloned() else {
            return;
        };
        let guard = self.clone();
        tokio::spawn(async move { guard.listen(redis).await });
    }

    async fn listen(self, redis: RedisStore) {
        let mut backoff = FEED_BACKOFF.0;
        let mut lost = false;
        loop {
            match redis.revocation_feed(&self.confirmations.instance).await {
                Ok(pubsub) => {
                    self.feed.epoch.fetch_add(1, Ordering::SeqCst);
                    self.feed.up.store(true, Ordering::SeqCst);
                    if lost {
                        tracing::info!("session revocation channel subscribed again");
                    }
                    backoff = FEED_BACKOFF.0;
                    self.follow(pubsub, &redis).await;
                    self.feed.up.store(false, Ordering::SeqCst);
                    tracing::warn!(
                        "session revocation channel lost; every session is revalidated on its next use until it is back"
                    );
                    lost = true;
                }
                Err(e) => {
                    if !lost {
                        tracing::warn!(error = %e, "cannot subscribe to the session revocation channel; retrying");
                        lost = true;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(FEED_BACKOFF.1);
        }
    }

    /// Applies messages until the connection ends or stops answering pings.
    async fn follow(&self, pubsub: redis::aio::PubSub, redis: &RedisStore) {
        let revocations = redis.revocation_channel();
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + FEED_PING, FEED_PING);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => {
                        let payload: String = msg.get_payload().unwrap_or_default();
                        if msg.get_channel_name() != revocations {
                            // This instance's confirmation channel.
                            if let Ok(seq) = payload.parse() {
                                self.confirmations.confirmed(seq);
                            }
                            continue;
                        }
                        if let Some(gate) = &self.hold_feed {
                            let _held = gate.acquire().await;
                        }
                        let (ack, ids) = parse_revocation(&payload);
                        self.mark_revoked(&ids, self.clock.now_ms());
                        if let Some((instance, seq)) = ack {
                            // Off the feed's loop: the next message need not
                            // wait for this round trip.
                            let (redis, instance) = (redis.clone(), instance.to_string());
                            tokio::spawn(async move {
                                if let Err(e) = redis.confirm_revocation(&instance, seq).await {
                                    tracing::debug!(error = %e, "revocation not confirmed");
                                }
                            });
                        }
                    }
                    None => return,
                },
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(
                        Duration::from_secs(2),
                        sink.ping::<redis::Value>(),
                    )
                    .await;
                    if !matches!(answered, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    /// Writes the activity decided in memory to Redis (one round trip),
    /// where other instances' revalidations and idle checks see it.
    pub async fn flush_shared(&self, now: DateTime<Utc>) {
        let Some(redis) = self.shared() else {
            return;
        };
        // `take`, not `drain`: a burst's capacity is not kept for good.
        let batch: Vec<(String, i64)> = std::mem::take(&mut *lock(&self.shared_pending))
            .into_iter()
            .map(|(id, at)| (id.to_string(), at))
            .collect();
        for chunk in batch.chunks(1000) {
            if let Err(e) = redis.session_activity(chunk, ms(now), REDIS_TTL_MS).await {
                tracing::debug!(error = %e, sessions = chunk.len(), "session activity not written to redis; will retry");
                let mut shared = lock(&self.shared_pending);
                for (id, at) in chunk {
                    if let Ok(id) = Uuid::parse_str(id) {
                        merge(&mut shared, id, *at);
                    }
                }
            }
        }
    }

    /// Writes pending activity to the database, and forgets from the map
    /// sessions idle past their timeout or past their end, and revocations
    /// older than the access-token lifetime.
    pub async fn flush_activity(&self, now: DateTime<Utc>) {
        // `take`, not `drain`: a burst's capacity is not kept for good.
        let batch: Vec<(Uuid, DateTime<Utc>)> = std::mem::take(&mut *lock(&self.pending))
            .into_iter()
            .map(|(id, at)| (id, time(at)))
            .collect();
        if !batch.is_empty() {
            for chunk in batch.chunks(1000) {
                if let Err(e) = self.store.touch_sessions(chunk).await {
                    tracing::warn!(error = %e, sessions = chunk.len(), "session activity not flushed; will retry");
                    let mut pending = lock(&self.pending);
                    for (id, at) in chunk {
                        merge(&mut pending, *id, ms(*at));
                    }
                }
            }
        }
        let now_ms = ms(now);
        let (idle, revoke_ttl) = (self.idle_ms, self.revoke_ttl_ms);
        for shard in self.live.shards.iter() {
            let map = &mut lock(shard).map;
            map.retain(|_, e| {
                if e.revoked {
                    now_ms - e.confirmed_ms < revoke_ttl
                } else {
                    now_ms - e.last_activity_ms < idle && now_ms < e.expires_ms
                }
            });
            // gives memory back once a burst of sessions has ended (shrinking only
            // below a quarter, so it is amortised)
            if map.capacity() > 64 && map.len() * 4 < map.capacity() {
                map.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::SqliteStore;

    fn capacity(guard: &SessionGuard) -> usize {
        guard
            .live
            .shards
            .iter()
            .map(|s| lock(s).map.capacity())
            .sum()
    }

    /// A wait for confirmations that ends (answered, timed out, or its
    /// request abandoned) leaves no registration behind; confirmations of a
    /// live one are counted.
    #[test]
    fn a_wait_for_confirmations_leaves_nothing_behind() {
        let book = Arc::new(Confirmations::new(REVOCATION_CONFIRM_WAIT));
        let awaited = book.expect();
        book.confirmed(awaited.seq);
        book.confirmed(awaited.seq + 1);
        assert_eq!(*awaited.confirmed.borrow(), 1);
        drop(awaited);
        assert!(lock(&book.waiting).is_empty());
    }

    /// Messages that ask for a confirmation name the instance and sequence;
    /// older messages (ids alone) still revoke, and a malformed word is skipped.
    #[test]
    fn revocation_messages_read_with_and_without_a_confirmation() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let message = format!("ack=abc123:42 {a} {b}");
        let (ack, ids) = parse_revocation(&message);
        assert_eq!(ack, Some(("abc123", 42)));
        assert_eq!(ids, vec![a, b]);
        let message = format!("{a} not-an-id");
        let (ack, ids) = parse_revocation(&message);
        assert_eq!(ack, None);
        assert_eq!(ids, vec![a]);
        assert_eq!(parse_revocation("ack=abc:x").0, None);
    }

    /// Once a burst of sessions has been forgotten, the map gives back the room
    /// it grew to hold them.
    #[tokio::test]
    async fn the_map_shrinks_once_a_burst_of_sessions_is_forgotten() {
        let dir = std::env::temp_dir().join(format!("sessions-{}", Uuid::new_v4().simple()));
        let store = SqliteStore::open(&dir.join("t.db")).unwrap();
        let minute = Duration::from_secs(60);
        let guard = SessionGuard::new(
            None,
            Arc::new(store),
            minute,
            true,
            minute,
            minute,
            Clock::default(),
        );
        let now = Utc::now();
        for _ in 0..20_000 {
            guard.remember_revoked(Uuid::new_v4(), ms(now));
        }
        assert!(capacity(&guard) >= 20_000);
        guard.flush_activity(now + chrono::Duration::days(1)).await;
        assert!(capacity(&guard) < 64 * 64, "{}", capacity(&guard));
        let _ = std::fs::remove_dir_all(dir);
    }
}
