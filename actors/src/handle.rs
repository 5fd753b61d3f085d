//! Owns the caller-facing API of the per-user security actors: `SecurityActors::start`
//! and the cheap, cloneable `SecurityHandle`. Callers never see an actix `Addr`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::{Actor, Addr, Arbiter};

use crate::backing::Backing;
use crate::config::SecurityConfig;
use crate::error::{ActorError, StartError};
use crate::key::{shard_of, UserKey};
use crate::policy::lockout::{FailureOutcome, Reservation};
use crate::shard::messages::Route;
use crate::shard::Shard;
use crate::stats::{ActorStats, Counters};
use crate::time::Timestamp;
use crate::user::messages::{
    RecordLoginFailure, RecordLoginSuccess, Reply, ReserveLogin, UserRequest,
};
use crate::user::{UserActor, UserSettings};

/// Starts the per-user security actors.
pub struct SecurityActors;

impl SecurityActors {
    /// Starts `config.shards` registry shards on the current arbiter (call it inside the
    /// actix `System`, e.g. in `#[actix_web::main]` before building the server); user
    /// actors run on the same arbiter. Lockout decisions are made by `backing`.
    pub fn start(config: SecurityConfig, backing: Backing) -> Result<SecurityHandle, StartError> {
        config.validate()?;
        if Arbiter::try_current().is_none() {
            return Err(StartError::NoArbiter);
        }
        let counters = Arc::new(Counters::default());
        let settings = Arc::new(UserSettings {
            lockout: config.lockout,
            backing,
            idle_timeout: config.idle_timeout,
            backing_timeout: config.backing_timeout,
            pending_wait: config.pending_wait,
            pending_poll: config.pending_poll,
            max_pending: config.max_pending,
            user_mailbox: config.user_mailbox,
            counters: Arc::clone(&counters),
        });
        let shards = (0..config.shards)
            .map(|_| {
                let settings = Arc::clone(&settings);
                let capacity = config.shard_mailbox;
                // `create` sets the capacity before any sender can reach the mailbox
                Shard::create(move |ctx| {
                    ctx.set_mailbox_capacity(capacity);
                    Shard::new(settings, crate::shard::sweep_batch(capacity))
                })
            })
            .collect();
        Ok(SecurityHandle {
            inner: Arc::new(Inner {
                shards,
                counters,
                request_timeout: config.request_timeout,
                pending_wait: config.pending_wait,
            }),
        })
    }
}

/// The way into the per-user security actors. Clone freely (one `Arc`).
///
/// Every method answers `Err(ActorError::Overloaded)` at once when a mailbox is full
/// (answer 503 + `Retry-After`), and `Err(ActorError::Unavailable)` when the actors are
/// stopping or do not answer within `request_timeout` (`reserve_login`: plus
/// `pending_wait`).
#[derive(Clone)]
pub struct SecurityHandle {
    inner: Arc<Inner>,
}

impl fmt::Debug for SecurityHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityHandle")
            .field("shards", &self.inner.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

struct Inner {
    /// One shared sender per shard: once a shard's mailbox is over capacity, every caller
    /// is refused until it drains.
    shards: Box<[Addr<Shard>]>,
    counters: Arc<Counters>,
    request_timeout: Duration,
    pending_wait: Duration,
}

impl SecurityHandle {
    /// Reserves one password verification for `key` at `now`. Verify only on `Allowed`,
    /// then record the outcome. `Locked` means a real lockout: `max_attempts` failures.
    ///
    /// When every attempt of the window is held by verifications still in flight, the
    /// answer waits (up to `pending_wait`) for their outcome: a success reopens the
    /// window, a last failure locks it. If none comes in time the answer is
    /// `Err(ActorError::AttemptsInFlight)`: nothing was reserved; answer 503 +
    /// `Retry-After`, not "locked".
    pub async fn reserve_login(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Reservation, ActorError> {
        let limit = self.inner.request_timeout + self.inner.pending_wait;
        self.request_within(key, limit, |reply| ReserveLogin { now, reply })
            .await
    }

    /// Records that a reserved verification for `key` failed. `Locked` is returned once
    /// per lock: emit the lockout metric, audit event and mail on it.
    pub async fn record_login_failure(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<FailureOutcome, ActorError> {
        self.request(key, |reply| RecordLoginFailure { now, reply })
            .await
    }

    /// Records that a reserved verification for `key` succeeded (resets the window).
    pub async fn record_login_success(&self, key: &str) -> Result<(), ActorError> {
        self.request(key, |reply| RecordLoginSuccess { reply })
            .await
    }

    /// Live actors and rejection counters, for gauges published on a timer.
    pub fn stats(&self) -> ActorStats {
        self.inner.counters.snapshot()
    }

    async fn request<M, T>(&self, key: &str, make: impl Fn(Reply<T>) -> M) -> Result<T, ActorError>
    where
        M: UserRequest,
        UserActor: actix::Handler<M>,
    {
        self.request_within(key, self.inner.request_timeout, make)
            .await
    }

    async fn request_within<M, T>(
        &self,
        key: &str,
        limit: Duration,
        make: impl Fn(Reply<T>) -> M,
    ) -> Result<T, ActorError>
    where
        M: UserRequest,
        UserActor: actix::Handler<M>,
    {
        let shards = &self.inner.shards;
        let shard = shards
            .get(shard_of(key, shards.len()))
            .ok_or(ActorError::Unavailable)?;
        let key = UserKey::new(key);
        // A request routed to an actor that then stopped idle is dropped unprocessed and
        // its reply channel closes: sending it once more reaches a fresh actor.
        for _ in 0..2 {
            let (reply, answer) = Reply::channel();
            let route = Route {
                key: key.clone(),
                request: make(reply),
            };
            match shard.try_send(route) {
                Ok(()) => {}
                Err(SendError::Full(_)) => {
                    self.inner.counters.mailbox_rejected();
                    return Err(ActorError::Overloaded);
                }
                Err(SendError::Closed(_)) => return Err(ActorError::Unavailable),
            }
            match actix::clock::timeout(limit, answer).await {
                Ok(Ok(result)) => return result,
                Ok(Err(_dropped_unprocessed)) => continue,
                // no answer in time: it may still be processed, so never resend
                Err(_elapsed) => return Err(ActorError::Unavailable),
            }
        }
        Err(ActorError::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::future::Future;
    use std::task::{Context, Waker};

    use super::*;
    use crate::shard::messages::ForceIdleCheck;

    #[actix::test]
    async fn a_request_queued_behind_an_idle_notice_reaches_a_fresh_actor() {
        let config = SecurityConfig {
            shards: 1,
            ..SecurityConfig::default()
        };
        let handle = SecurityActors::start(config, Backing::Local).unwrap();
        handle.record_login_success("k").await.unwrap();
        assert_eq!(handle.stats().live_actors, 1);

        // the shard sends the idle notice, then routes the request to the same actor,
        // before the actor runs: it stops on the notice and drops the request
        let shard = handle.inner.shards[0].clone();
        shard.try_send(ForceIdleCheck(UserKey::new("k"))).unwrap();
        let mut request = Box::pin(handle.reserve_login("k", Timestamp(1)));
        let first_poll = request
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert!(first_poll.is_pending());

        assert_eq!(request.await, Ok(Reservation::Allowed { attempt: 1 }));
        assert_eq!(handle.stats().live_actors, 1);
    }
}
