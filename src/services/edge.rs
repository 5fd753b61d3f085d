//! The HTTP edge: what the server answers before (or beside) any use case —
//! readiness, the public key set, and the per-IP rate limits of the API
//! routes and of the pages that stand for them.

use std::net::IpAddr;
use std::time::Duration;

use super::Parts;
use crate::auth::jwt::JwtService;
use crate::clock::Clock;
use crate::redis::RedisStore;
use crate::security::rate_limit::RateVerdict;
use crate::security::{RateLimiter, RateRoute};
use crate::storage::DynStore;
use crate::telemetry::metrics::Metrics;

/// The edge area. Cheap to clone.
#[derive(Clone)]
pub struct Edge {
    store: DynStore,
    redis: Option<RedisStore>,
    jwt: JwtService,
    rate_limiter: RateLimiter,
    metrics: Metrics,
    clock: Clock,
}

impl Edge {
    pub fn new(parts: &Parts) -> Self {
        Self {
            store: parts.store.clone(),
            redis: parts.redis.clone(),
            jwt: parts.jwt.clone(),
            rate_limiter: parts.rate_limiter.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
        }
    }

    /// The dependencies that do not answer (the database within two
    /// seconds; Redis where configured); empty when ready.
    pub async fn down(&self) -> Vec<String> {
        let mut down = Vec::new();
        let db = tokio::time::timeout(Duration::from_secs(2), self.store.ping()).await;
        if !matches!(db, Ok(Ok(()))) {
            down.push("database".to_string());
        }
        if let Some(redis) = &self.redis {
            if !redis.ping().await {
                down.push("redis".to_string());
            }
        }
        down
    }

    /// RFC 7517 key set of every key that verifies live tokens.
    pub fn jwks(&self) -> serde_json::Value {
        self.jwt.jwks()
    }

    /// Counts a request of `route` from `ip` in its window; a refusal is
    /// counted in the metrics.
    pub async fn rate_check(&self, route: RateRoute, ip: Option<IpAddr>) -> RateVerdict {
        let verdict = self
            .rate_limiter
            .check(route, ip, self.clock.now_ms())
            .await;
        if !verdict.allowed {
            self.metrics.rate_limited(route.name());
        }
        verdict
    }

    /// The metrics every request is observed into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
