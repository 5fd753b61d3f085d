//! Owns the in-process request rate limiter: one governor keyed limiter per route, keyed
//! by client IP, with quotas fixed at start and a periodic prune of idle keys.
//!
//! governor implements GCRA: a route quota of `limit` per `window` allows a burst of
//! `limit` and then one request every `window / limit`. It is thread-safe, so this is a
//! plain handle (no mailbox on the request path); only the prune runs on a timer.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::clock::interval;
use actix::Arbiter;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::time::MissedTickBehavior;

use crate::error::StartError;

/// The answer to "may this request proceed?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Proceed; `remaining` more hits fit, and the quota is whole again in `reset_ms`.
    Allowed { remaining: u32, reset_ms: i64 },
    /// Refuse (429); retry after `retry_after_ms`, the quota is whole again in `reset_ms`.
    Limited { retry_after_ms: i64, reset_ms: i64 },
}

impl RateDecision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// A route's quota: `limit` requests per `window` per client IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    pub limit: u32,
    pub window: Duration,
}

impl RateQuota {
    /// `limit` requests per `window`.
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
}

type Limiter<C> = RateLimiter<String, DashMapStateStore<String>, C, StateInformationMiddleware>;

struct Route<C: Clock> {
    limiter: Limiter<C>,
    burst: u32,
    period_ms: i64,
}

struct Inner<C: Clock> {
    routes: HashMap<Box<str>, Route<C>>,
}

/// Per-route, per-IP rate limits. Clone freely (one `Arc`).
pub struct RateLimits<C: Clock = DefaultClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for RateLimits<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes: Vec<_> = self.inner.routes.keys().collect();
        routes.sort();
        f.debug_struct("RateLimits")
            .field("routes", &routes)
            .finish()
    }
}

impl RateLimits<DefaultClock> {
    /// Limiters for `quotas` (route name, quota), pruned every `prune_every` by a task on
    /// the current arbiter (call inside the actix `System`). The task ends when the last
    /// handle is dropped.
    pub fn start<'a>(
        quotas: impl IntoIterator<Item = (&'a str, RateQuota)>,
        prune_every: Duration,
    ) -> Result<Self, StartError> {
        if prune_every.is_zero() {
            return Err(StartError::InvalidConfig("prune interval must be positive"));
        }
        let arbiter = Arbiter::try_current().ok_or(StartError::NoArbiter)?;
        let limits = Self::with_clock(quotas, DefaultClock::default())?;
        arbiter.spawn(prune_periodically(
            Arc::downgrade(&limits.inner),
            prune_every,
        ));
        Ok(limits)
    }
}

async fn prune_periodically<C>(inner: Weak<Inner<C>>, every: Duration)
where
    C: Clock + Send + Sync + 'static,
{
    let mut ticks = interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            break;
        };
        inner.prune();
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limiters for `quotas` reading time from `clock`, without a prune timer (call
    /// [`prune`](Self::prune) yourself). Tests pass governor's `FakeRelativeClock`.
    pub fn with_clock<'a>(
        quotas: impl IntoIterator<Item = (&'a str, RateQuota)>,
        clock: C,
    ) -> Result<Self, StartError> {
        let mut routes = HashMap::new();
        for (name, quota) in quotas {
            routes.insert(Box::from(name), Route::new(quota, clock.clone())?);
        }
        Ok(Self {
            inner: Arc::new(Inner { routes }),
        })
    }

    /// Counts one request of `ip` on `route`. A route without a configured quota is not
    /// limited (and logged): configure every limited route at start.
    pub fn check(&self, route: &str, ip: &str) -> RateDecision {
        match self.inner.routes.get(route) {
            Some(limits) => limits.check(ip),
            None => {
                tracing::warn!(route, "no rate quota configured for route; not limiting");
                RateDecision::Allowed {
                    remaining: u32::MAX,
                    reset_ms: 0,
                }
            }
        }
    }

    /// Forgets keys whose state is indistinguishable from a fresh one, and frees memory.
    pub fn prune(&self) {
        self.inner.prune();
    }

    /// Keys currently tracked over all routes (a gauge).
    pub fn tracked_keys(&self) -> usize {
        self.inner.routes.values().map(|r| r.limiter.len()).sum()
    }
}

impl<C: Clock> Inner<C> {
    fn prune(&self) {
        for route in self.routes.values() {
            route.limiter.retain_recent();
            route.limiter.shrink_to_fit();
        }
    }
}

impl<C: Clock> Route<C> {
    fn new(quota: RateQuota, clock: C) -> Result<Self, StartError> {
        let burst = NonZeroU32::new(quota.limit)
            .ok_or(StartError::InvalidConfig("rate limit must be at least 1"))?;
        let period = quota.window / quota.limit;
        let gcra = Quota::with_period(period)
            .ok_or(StartError::InvalidConfig(
                "rate window too short for its limit",
            ))?
            .allow_burst(burst);
        let limiter: Limiter<C> = RateLimiter::<_, _, _, NoOpMiddleware<C::Instant>>::new(
            gcra,
            DashMapStateStore::default(),
            clock,
        )
        .with_middleware::<StateInformationMiddleware>();
        Ok(Self {
            limiter,
            burst: quota.limit,
            period_ms: ceil_ms(period),
        })
    }

    fn check(&self, ip: &str) -> RateDecision {
        let full_in = |missing: u32| i64::from(missing).saturating_mul(self.period_ms);
        match self.limiter.check_key(&ip.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                RateDecision::Allowed {
                    remaining,
                    reset_ms: full_in(self.burst.saturating_sub(remaining)),
                }
            }
            Err(not_until) => {
                let now = self.limiter.clock().now();
                let retry_after_ms = ceil_ms(not_until.wait_time_from(now)).max(1);
                RateDecision::Limited {
                    retry_after_ms,
                    reset_ms: retry_after_ms.saturating_add(full_in(self.burst - 1)),
                }
            }
        }
    }
}

/// Milliseconds in `d`, rounded up (a client told to wait must not retry early).
fn ceil_ms(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(clock: &FakeRelativeClock) -> RateLimits<FakeRelativeClock> {
        RateLimits::with_clock(
            [
                ("login", RateQuota::new(5, Duration::from_secs(300))),
                ("register", RateQuota::new(3, Duration::from_secs(300))),
            ],
            clock.clone(),
        )
        .unwrap()
    }

    #[test]
    fn allows_the_burst_then_limits_with_retry_after() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        for n in (0..5).rev() {
            assert!(matches!(
                l.check("login", "10.0.0.1"),
                RateDecision::Allowed { remaining, .. } if remaining == n
            ));
        }
        assert_eq!(
            l.check("login", "10.0.0.1"),
            RateDecision::Limited {
                retry_after_ms: 60_000,
                reset_ms: 300_000
            }
        );
        clock.advance(Duration::from_secs(59));
        assert!(matches!(
            l.check("login", "10.0.0.1"),
            RateDecision::Limited {
                retry_after_ms: 1_000,
                ..
            }
        ));
        clock.advance(Duration::from_secs(1));
        assert!(l.check("login", "10.0.0.1").is_allowed());
    }

    #[test]
    fn routes_and_ips_are_limited_independently() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        for _ in 0..3 {
            assert!(l.check("register", "10.0.0.1").is_allowed());
        }
        assert!(!l.check("register", "10.0.0.1").is_allowed());
        assert!(l.check("register", "10.0.0.2").is_allowed());
        assert!(l.check("login", "10.0.0.1").is_allowed());
    }

    #[test]
    fn unconfigured_routes_are_not_limited() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        for _ in 0..100 {
            assert!(l.check("health", "10.0.0.1").is_allowed());
        }
    }

    #[test]
    fn prune_forgets_keys_once_their_quota_is_whole_again() {
        let clock = FakeRelativeClock::default();
        let l = limits(&clock);
        l.check("login", "10.0.0.1");
        l.check("register", "10.0.0.2");
        assert_eq!(l.tracked_keys(), 2);
        l.prune();
        assert_eq!(l.tracked_keys(), 2, "recent keys are kept");
        clock.advance(Duration::from_secs(301));
        l.prune();
        assert_eq!(l.tracked_keys(), 0);
    }

    #[test]
    fn a_zero_limit_is_refused_at_start() {
        let result = RateLimits::with_clock(
            [("login", RateQuota::new(0, Duration::from_secs(1)))],
            FakeRelativeClock::default(),
        );
        assert!(matches!(result, Err(StartError::InvalidConfig(_))));
    }
}
