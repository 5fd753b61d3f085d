//! Per-client-IP, per-route rate limits (the deployment's WAF plan: login 5,
//! register 3, password-reset 3, otp 5 per 5 minutes by default).
//!
//! With Redis a fixed window counted there is the global truth, so three
//! instances allow what one would. Without Redis, or while it is down, the
//! in-memory governor limiter of the actors crate decides for this instance.

use std::time::Duration;

use suma_auth_actors::{RateDecision, RateLimits, RateQuota, StartError};

use crate::config::RateLimits as RateConfig;
use crate::redis::RedisStore;

/// The rate-limited routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateRoute {
    Login,
    Register,
    ResendVerification,
    PasswordReset,
    Otp,
}

impl RateRoute {
    pub fn name(self) -> &'static str {
        match self {
            RateRoute::Login => "login",
            RateRoute::Register => "register",
            RateRoute::ResendVerification => "verify_resend",
            RateRoute::PasswordReset => "password_reset",
            RateRoute::Otp => "otp",
        }
    }

    const ALL: [RateRoute; 5] = [
        RateRoute::Login,
        RateRoute::Register,
        RateRoute::ResendVerification,
        RateRoute::PasswordReset,
        RateRoute::Otp,
    ];

    /// The route a request path pattern belongs to, if limited.
    pub fn for_pattern(pattern: &str) -> Option<RateRoute> {
        match pattern {
            "/api/v1/auth/login" => Some(RateRoute::Login),
            "/api/v1/auth/register" => Some(RateRoute::Register),
            "/api/v1/auth/verify-email/resend" => Some(RateRoute::ResendVerification),
            "/api/v1/auth/password-reset" | "/api/v1/auth/password-reset/confirm" => {
                Some(RateRoute::PasswordReset)
            }
            "/api/v1/auth/otp/send" | "/api/v1/auth/otp/verify" => Some(RateRoute::Otp),
            _ => None,
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateVerdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the window resets.
    pub reset: Duration,
    /// When refused: how long to wait.
    pub retry_after: Duration,
}

#[derive(Clone)]
pub struct RateLimiter {
    local: RateLimits,
    redis: Option<RedisStore>,
    config: RateConfig,
}

impl RateLimiter {
    /// Starts the in-memory limiters (pruned every minute). Call inside the actix system.
    pub fn start(config: RateConfig, redis: Option<RedisStore>) -> Result<Self, StartError> {
        let quotas: Vec<(&str, RateQuota)> = RateRoute::ALL
            .iter()
            .map(|r| {
                (
                    r.name(),
                    RateQuota::new(Self::limit_of(&config, *r), config.window),
                )
            })
            .collect();
        let local = RateLimits::start(quotas, Duration::from_secs(60))?;
        Ok(Self {
            local,
            redis,
            config,
        })
    }

    fn limit_of(config: &RateConfig, route: RateRoute) -> u32 {
        match route {
            RateRoute::Login => config.login,
            RateRoute::Register | RateRoute::ResendVerification => config.register,
            RateRoute::PasswordReset => config.password_reset,
            RateRoute::Otp => config.otp,
        }
    }

    /// Counts one request of `ip` on `route` and decides.
    pub async fn check(&self, route: RateRoute, ip: &str, now_ms: i64) -> RateVerdict {
        let limit = Self::limit_of(&self.config, route);
        let window_ms = self.config.window.as_millis().max(1) as i64;
        if let Some(redis) = &self.redis {
            let index = now_ms.div_euclid(window_ms);
            if let Ok(count) = redis.rate_hit(route.name(), ip, index, window_ms).await {
                let reset = Duration::from_millis(((index + 1) * window_ms - now_ms).max(0) as u64);
                let allowed = count <= i64::from(limit);
                return RateVerdict {
                    allowed,
                    limit,
                    remaining: (i64::from(limit) - count).max(0) as u32,
                    reset,
                    retry_after: if allowed { Duration::ZERO } else { reset },
                };
            }
        }
        match self.local.check(route.name(), ip) {
            RateDecision::Allowed {
                remaining,
                reset_ms,
            } => RateVerdict {
                allowed: true,
                limit,
                remaining,
                reset: Duration::from_millis(reset_ms.max(0) as u64),
                retry_after: Duration::ZERO,
            },
            RateDecision::Limited {
                retry_after_ms,
                reset_ms,
            } => RateVerdict {
                allowed: false,
                limit,
                remaining: 0,
                reset: Duration::from_millis(reset_ms.max(0) as u64),
                retry_after: Duration::from_millis(retry_after_ms.max(0) as u64),
            },
        }
    }
}
