//! The lockout backing of the user actors: Redis first (one Lua script per
//! transition), the database when Redis is absent or down. Both apply the
//! actors crate's `LockoutState` transitions, atomically per account.

use std::sync::{Arc, Mutex};

use suma_auth_actors::{
    BackingError, BackingFuture, FailureOutcome, LockoutBacking, LockoutPolicy, LockoutState,
    ReserveOutcome, Timestamp, UserKey,
};

use super::{from_timestamp, to_timestamp};
use crate::redis::RedisStore;
use crate::storage::{DynStore, LockoutRecord, LockoutUpdate};

#[derive(Clone)]
pub struct LockoutStore {
    redis: Option<RedisStore>,
    store: DynStore,
}

#[derive(Clone, Copy)]
enum Op {
    Reserve,
    Failure,
    Success,
}

/// What a transition decided, whichever store took it.
#[derive(Clone, Copy)]
enum Decision {
    Reserved(ReserveOutcome),
    Failed(FailureOutcome),
    Done,
}

impl LockoutStore {
    pub fn new(redis: Option<RedisStore>, store: DynStore) -> Self {
        Self { redis, store }
    }

    async fn apply(
        self,
        key: UserKey,
        op: Op,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<Decision, BackingError> {
        if let Some(redis) = &self.redis {
            match self.apply_redis(redis, &key, op, policy, now).await {
                Ok(decision) => {
                    self.mirror(&key, decision, policy, now).await;
                    return Ok(decision);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lockout falls back to the database")
                }
            }
        }
        self.apply_db(&key, op, policy, now).await
    }

    /// Copies the rare, decisive transitions Redis took (a lock, a reset) into
    /// the database, so a lock outlives the loss of Redis. Counting stays in
    /// Redis alone: the database is written once per lock, not once per
    /// attempt, and a reset writes only a window the database holds (most
    /// sign-ins have nothing there to reset).
    async fn mirror(
        &self,
        key: &UserKey,
        decision: Decision,
        policy: LockoutPolicy,
        now: Timestamp,
    ) {
        let at = from_timestamp(now);
        if matches!(decision, Decision::Done) {
            if let Err(e) = self.store.reset_lockout(key.as_str(), at).await {
                tracing::warn!(error = %e, "lockout reset not mirrored to the database");
            }
            return;
        }
        let transition: crate::storage::LockoutTransition = match decision {
            Decision::Failed(FailureOutcome::Locked { until }) => {
                Box::new(move |r: LockoutRecord| LockoutRecord {
                    attempts: policy.max_attempts,
                    failures: policy.max_attempts,
                    window_started_at: r.window_started_at.or(Some(from_timestamp(now))),
                    locked_until: Some(from_timestamp(until)),
                })
            }
            _ => return,
        };
        if let Err(e) = self
            .store
            .update_lockout(key.as_str(), LockoutUpdate::new(at, transition))
            .await
        {
            tracing::warn!(error = %e, "lockout not mirrored to the database");
        }
    }

    async fn apply_redis(
        &self,
        redis: &RedisStore,
        key: &UserKey,
        op: Op,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<Decision, crate::redis::RedisError> {
        let name = match op {
            Op::Reserve => "reserve",
            Op::Failure => "failure",
            Op::Success => "success",
        };
        let args = crate::redis::LockoutArgs {
            now_ms: now.0,
            max: policy.max_attempts,
            lockout_ms: policy.lockout_ms,
        };
        let (flag, value) = redis.lockout(key.as_str(), name, args).await?;
        // A fresh window in Redis may mean Redis lost its data: a lock the
        // database still holds wins, and Redis learns it back.
        if matches!(op, Op::Reserve) && flag == 1 && value == 1 {
            if let Ok(Some(record)) = self.store.load_lockout(key.as_str()).await {
                if let Some(until) = record.locked_until.map(to_timestamp).filter(|u| *u > now) {
                    let (_, retry) = redis.lockout_seed(key.as_str(), args, until.0).await?;
                    return Ok(Decision::Reserved(ReserveOutcome::Locked {
                        retry_after_ms: retry,
                    }));
                }
            }
        }
        Ok(match op {
            Op::Reserve if flag == 1 => Decision::Reserved(ReserveOutcome::Allowed {
                attempt: value.max(0) as u32,
            }),
            Op::Reserve if flag == 2 => Decision::Reserved(ReserveOutcome::Pending),
            Op::Reserve => Decision::Reserved(ReserveOutcome::Locked {
                retry_after_ms: value,
            }),
            Op::Failure if flag == 1 => Decision::Failed(FailureOutcome::Locked {
                until: Timestamp(value),
            }),
            Op::Failure => Decision::Failed(FailureOutcome::Counted {
                failures: value.max(0) as u32,
            }),
            Op::Success => Decision::Done,
        })
    }

    async fn apply_db(
        &self,
        key: &UserKey,
        op: Op,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> Result<Decision, BackingError> {
        let decided = Arc::new(Mutex::new(Decision::Done));
        let slot = decided.clone();
        self.store
            .update_lockout(
                key.as_str(),
                LockoutUpdate::new(
                    from_timestamp(now),
                    Box::new(move |record| {
                        let mut state = to_state(&record);
                        let decision = match op {
                            Op::Reserve => Decision::Reserved(state.reserve(&policy, now)),
                            Op::Failure => Decision::Failed(state.record_failure(&policy, now)),
                            Op::Success => {
                                state.record_success();
                                Decision::Done
                            }
                        };
                        if let Ok(mut slot) = slot.lock() {
                            *slot = decision;
                        }
                        to_record(&state)
                    }),
                ),
            )
            .await
            .map_err(BackingError::failed)?;
        let decision = decided
            .lock()
            .map(|d| *d)
            .map_err(|_| BackingError::failed(std::io::Error::other("poisoned")))?;
        Ok(decision)
    }
}

fn to_state(r: &LockoutRecord) -> LockoutState {
    LockoutState {
        attempts: r.attempts,
        failures: r.failures,
        window_started: r.window_started_at.map(to_timestamp),
        locked_until: r.locked_until.map(to_timestamp),
    }
}

fn to_record(s: &LockoutState) -> LockoutRecord {
    LockoutRecord {
        attempts: s.attempts,
        failures: s.failures,
        window_started_at: s.window_started.map(from_timestamp),
        locked_until: s.locked_until.map(from_timestamp),
    }
}

fn unexpected() -> BackingError {
    BackingError::failed(std::io::Error::other("unexpected lockout decision"))
}

impl LockoutBacking for LockoutStore {
    fn reserve(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<ReserveOutcome> {
        let (this, key) = (self.clone(), key.clone());
        Box::pin(async move {
            match this.apply(key, Op::Reserve, policy, now).await? {
                Decision::Reserved(r) => Ok(r),
                _ => Err(unexpected()),
            }
        })
    }

    fn record_failure(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<FailureOutcome> {
        let (this, key) = (self.clone(), key.clone());
        Box::pin(async move {
            match this.apply(key, Op::Failure, policy, now).await? {
                Decision::Failed(f) => Ok(f),
                _ => Err(unexpected()),
            }
        })
    }

    fn record_success(&self, key: &UserKey) -> BackingFuture<()> {
        let (this, key) = (self.clone(), key.clone());
        Box::pin(async move {
            this.apply(key, Op::Success, LockoutPolicy::default(), Timestamp(0))
                .await?;
            Ok(())
        })
    }
}
