//! Redis: the shared hot state of every instance (lockout windows, rate
//! windows, session liveness) and the channel that tells every instance of a
//! session revocation. All key formats and TTLs live in this module.

pub mod keys;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb8::ManageConnection;
use bb8_redis::RedisConnectionManager;
use secrecy::ExposeSecret;

use crate::config::RedisConfig;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
}

const SESSION_SCRIPT: &str = include_str!("session.lua");

/// A pool of Redis connections. Cheap to clone.
/// The numbers of a call of the lockout script (see `lockout.lua`): the
/// time, the attempts a window allows and how long a lock lasts.
#[derive(Debug, Clone, Copy)]
pub struct LockoutArgs {
    pub now_ms: i64,
    pub max: u32,
    pub lockout_ms: i64,
}

/// Opens the pool's connections and decides on checkout whether one may be
/// used without a round trip: a connection that answered within
/// [`Self::FRESH`] is used as it is, an older one is sent a `PING` first
/// (Redis may have restarted while it sat idle; the `PING`'s failure drops
/// it and the pool opens another). A connection that fails a command is
/// never refreshed, and Redis is then left alone for longer than `FRESH`
/// (see [`RedisStore::mark_down`]), so every connection that was open when
/// it failed is `PING`ed before its next use.
struct Connections {
    /// Opens connections and `PING`s them.
    redis: RedisConnectionManager,
}

/// A pooled connection and when it last answered.
struct Connection {
    conn: redis::aio::MultiplexedConnection,
    answered_at: Instant,
}

impl Connections {
    /// How long after its last answer a connection is used without a `PING`:
    /// shorter than [`DOWN_MS`].
    const FRESH: Duration = Duration::from_millis(900);
}

impl ManageConnection for Connections {
    type Connection = Connection;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        let conn = self.redis.connect().await?;
        Ok(Connection {
            conn,
            answered_at: Instant::now(),
        })
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), redis::RedisError> {
        if conn.answered_at.elapsed() < Self::FRESH {
            return Ok(());
        }
        self.redis.is_valid(&mut conn.conn).await?;
        conn.answered_at = Instant::now();
        Ok(())
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

/// How long Redis is left alone after a failure, in milliseconds.
const DOWN_MS: i64 = 1000;

#[derive(Clone)]
pub struct RedisStore {
    pool: bb8::Pool<Connections>,
    /// Prefix of every key (tests give each run its own).
    prefix: String,
    /// After a failure, Redis is skipped until this time (unix ms) so that an
    /// outage costs one timeout per second, not one per request.
    down_until: Arc<AtomicI64>,
    lockout_script: Arc<redis::Script>,
    rate_script: Arc<redis::Script>,
    session_script: Arc<redis::Script>,
    /// For the connection that listens to the revocation channel (a
    /// subscribed connection cannot serve the pool's commands).
    client: redis::Client,
}

impl RedisStore {
    /// Builds the pool without connecting: Redis may be down at start, and
    /// the server must still start and answer (falling back) until it returns.
    pub fn new(config: &RedisConfig, prefix: &str) -> Result<Self, RedisError> {
        let url = match &config.auth_token {
            Some(token) => with_password(&config.endpoint, token.expose_secret()),
            None => config.endpoint.clone(),
        };
        let client = redis::Client::open(url.as_str())
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        let manager = Connections {
            redis: RedisConnectionManager::new(url)
                .map_err(|e| RedisError::Unavailable(e.to_string()))?,
        };
        let pool = bb8::Pool::builder()
            .max_size(16)
            .min_idle(Some(2))
            .connection_timeout(Duration::from_secs(1))
            // A multiplexed connection broken by an outage is not noticed by
            // the pool otherwise: the checkout asks `Connections`.
            .test_on_check_out(true)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            prefix: prefix.to_string(),
            down_until: Arc::new(AtomicI64::new(0)),
            lockout_script: Arc::new(redis::Script::new(include_str!("lockout.lua"))),
            rate_script: Arc::new(redis::Script::new(include_str!("rate.lua"))),
            session_script: Arc::new(redis::Script::new(SESSION_SCRIPT)),
            client,
        })
    }

    /// Milliseconds on this process's monotonic clock: the backoff after a
    /// failure is a span of real time, not a time of the service's clock
    /// (and must not move when the wall clock is set).
    fn now_ms() -> i64 {
        static START: std::sync::LazyLock<std::time::Instant> =
            std::sync::LazyLock::new(std::time::Instant::now);
        START.elapsed().as_millis() as i64
    }

    /// False while a recent failure says Redis is down.
    pub fn looks_up(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) <= Self::now_ms()
    }

    fn mark_down(&self, e: &dyn std::fmt::Display) {
        let previous = self
            .down_until
            .swap(Self::now_ms() + DOWN_MS, Ordering::Relaxed);
        if previous <= Self::now_ms() {
            tracing::warn!(error = %e, "redis unavailable; falling back for a second");
        }
    }

    /// Runs the lockout script: returns its two integers.
    pub async fn lockout(
        &self,
        account: &str,
        op: &str,
        args: LockoutArgs,
    ) -> Result<(i64, i64), RedisError> {
        self.lockout_call(account, op, args, 0).await
    }

    /// Writes a lock known to the database into Redis (after Redis lost it).
    pub async fn lockout_seed(
        &self,
        account: &str,
        args: LockoutArgs,
        until_ms: i64,
    ) -> Result<(i64, i64), RedisError> {
        self.lockout_call(account, "lock", args, until_ms).await
    }

    async fn lockout_call(
        &self,
        account: &str,
        op: &str,
        LockoutArgs {
            now_ms,
            max,
            lockout_ms,
        }: LockoutArgs,
        until_ms: i64,
    ) -> Result<(i64, i64), RedisError> {
        let key = keys::lockout(&self.prefix, account);
        let script = self.lockout_script.clone();
        let op = op.to_string();
        self.guarded(async move |conn| {
            script
                .key(key)
                .arg(op)
                .arg(now_ms)
                .arg(max)
                .arg(lockout_ms)
                .arg(until_ms)
                .invoke_async::<(i64, i64)>(conn)
                .await
        })
        .await
    }

    /// Runs the session script (see `session.lua`):
    /// `(code, last activity ms, absolute end ms)`.
    pub async fn session(
        &self,
        session_id: &str,
        op: &str,
        args: [i64; 6],
    ) -> Result<(i64, i64, i64), RedisError> {
        let key = keys::session(&self.prefix, session_id);
        let script = self.session_script.clone();
        self.guarded(async move |conn| {
            let mut call = script.key(key);
            call.arg(op);
            for a in args {
                call.arg(a);
            }
            call.invoke_async::<(i64, i64, i64)>(conn).await
        })
        .await
    }

    /// Marks sessions revoked (kept `ttl_ms`) and, when `message` is given,
    /// publishes it on the revocation channel: one round trip. Returns how
    /// many subscribers received the message (0 when none was sent).
    pub async fn revoke_sessions(
        &self,
        session_ids: &[String],
        ttl_ms: i64,
        message: Option<String>,
    ) -> Result<i64, RedisError> {
        let mut pipe = redis::pipe();
        for id in session_ids {
            let key = keys::session(&self.prefix, id);
            pipe.cmd("HSET").arg(&key).arg("rv").arg("1").ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
        }
        let Some(message) = message else {
            return self
                .guarded(async move |conn| pipe.query_async::<()>(conn).await)
                .await
                .map(|()| 0);
        };
        pipe.cmd("PUBLISH")
            .arg(keys::session_revocations(&self.prefix))
            .arg(message);
        self.guarded(async move |conn| pipe.query_async::<(i64,)>(conn).await)
            .await
            .map(|(received,)| received)
    }

    /// The name of the revocation channel (`{prefix}:session-revocations`).
    pub fn revocation_channel(&self) -> String {
        keys::session_revocations(&self.prefix)
    }

    /// Tells `instance` that its revocation message `seq` was applied here.
    pub async fn confirm_revocation(&self, instance: &str, seq: u64) -> Result<(), RedisError> {
        let channel = keys::session_revocation_acks(&self.prefix, instance);
        self.guarded(async move |conn| {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(seq)
                .query_async::<()>(conn)
                .await
        })
        .await
    }

    /// Writes activity seen in memory (`(session id, ms)`) with the session
    /// script's `bump`: one round trip for the batch.
    pub async fn session_activity(
        &self,
        activity: &[(String, i64)],
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<(), RedisError> {
        let mut pipe = redis::pipe();
        // Loaded with the batch, so that a restarted Redis knows it.
        pipe.cmd("SCRIPT").arg("LOAD").arg(SESSION_SCRIPT).ignore();
        for (id, at) in activity {
            pipe.cmd("EVALSHA")
                .arg(self.session_script.get_hash())
                .arg(1)
                .arg(keys::session(&self.prefix, id))
                .arg("bump")
                .arg(now_ms)
                .arg(0)
                .arg(ttl_ms)
                .arg(*at)
                .arg(0)
                .arg(0)
                .ignore();
        }
        self.guarded(async move |conn| pipe.query_async::<()>(conn).await)
            .await
    }

    /// A connection subscribed to the revocation channel
    /// (`{prefix}:session-revocations`) and to this instance's channel of
    /// confirmations (`{prefix}:session-revocation-acks:{instance}`).
    pub async fn revocation_feed(&self, instance: &str) -> Result<redis::aio::PubSub, RedisError> {
        let channel = keys::session_revocations(&self.prefix);
        let acks = keys::session_revocation_acks(&self.prefix, instance);
        let attempt = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&[channel, acks]).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(RedisError::Unavailable(e.to_string())),
            Err(_) => Err(RedisError::Unavailable("timed out".into())),
        }
    }

    /// Counts a request in its fixed window; returns the count including it.
    /// One request of `client` on `route` against the sliding window:
    /// `(admitted, requests in the window, oldest request time in ms)`.
    pub async fn rate_hit(
        &self,
        route: &str,
        client: &str,
        now_ms: i64,
        window_ms: i64,
        limit: u32,
    ) -> Result<(bool, i64, i64), RedisError> {
        let key = keys::rate(&self.prefix, route, client);
        let member = format!("{now_ms}-{}", uuid::Uuid::new_v4().simple());
        let script = self.rate_script.clone();
        self.guarded(async move |conn| {
            script
                .key(key)
                .arg(now_ms)
                .arg(window_ms)
                .arg(limit)
                .arg(member)
                .invoke_async::<(i64, i64, i64)>(conn)
                .await
        })
        .await
        .map(|(admitted, count, oldest)| (admitted == 1, count, oldest))
    }

    /// Runs `f` on a pooled connection unless Redis looks down; a failure or
    /// a very slow answer (over two seconds) marks it down for a second. The
    /// bounds are generous on purpose: a busy instance must not mistake its
    /// own load for an outage and split decisions between Redis and the database.
    async fn guarded<T>(
        &self,
        f: impl AsyncFnOnce(&mut redis::aio::MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, RedisError> {
        if !self.looks_up() {
            return Err(RedisError::Unavailable("recently failed".into()));
        }
        let attempt = async {
            let mut conn = self.connection().await?;
            let answer = f(&mut conn.conn)
                .await
                .map_err(|e| RedisError::Unavailable(e.to_string()))?;
            conn.answered_at = Instant::now();
            Ok(answer)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.mark_down(&e);
                Err(e)
            }
            Err(_) => {
                let e = RedisError::Unavailable("timed out".into());
                self.mark_down(&e);
                Err(e)
            }
        }
    }

    /// Open and idle connections of the pool, for the gauges.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn connection(&self) -> Result<bb8::PooledConnection<'_, Connections>, RedisError> {
        self.pool
            .get()
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))
    }

    /// True when Redis answers PING within a second.
    pub async fn ping(&self) -> bool {
        let attempt = async {
            let mut conn = self.connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn.conn)
                .await
                .ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), attempt).await,
            Ok(Some(_))
        )
    }
}

/// Puts an AUTH token into a redis URL (`redis://:token@host:port`).
fn with_password(endpoint: &str, token: &str) -> String {
    let encoded: String = token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://:{encoded}@{rest}"),
        None => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_encoded_into_the_endpoint() {
        assert_eq!(
            with_password("rediss://h:6379", "a/b c"),
            "rediss://:a%2Fb%20c@h:6379"
        );
    }
}
