//! Per-client-IP, per-route rate limits (the deployment's WAF plan: login 5,
//! register 3, password-reset 3, otp 5 per 5 minutes by default).
//!
//! With Redis a sliding-window log kept there is the global truth, so three
//! instances allow what one would, and no window edge lets twice the limit
//! through. While Redis is unreachable (or when none is configured) a shared
//! database keeps the same log (`RateStore::rate_hit`, PostgreSQL), so the
//! limits stay fleet-wide rather than one quota per instance. The embedded
//! single-instance default, or a database that does not answer either, falls
//! to the in-memory governor limiter of the actors crate. IPv6 clients are
//! limited per network (a /64 by default), not per address.
//!
//! The same windows also cap the mail one address receives unasked
//! ([`RateLimiter::admit_mail_to`]): per-IP limits alone let a client with
//! many addresses fill a stranger's mailbox with verification links and
//! registration notices.

use std::net::IpAddr;
use std::time::Duration;

use suma_auth_actors::{RateDecision, RateLimits, RateQuota, StartError};

use crate::config::RateLimits as RateConfig;
use crate::domain::rate_window::{SlidingWindow, WindowHit};
use crate::domain::Email;
use crate::redis::RedisStore;
use crate::storage::{DynStore, StorageError};

/// The rate-limited routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateRoute {
    Login,
    Register,
    ResendVerification,
    PasswordReset,
    Otp,
    /// `GET /me/export`: a whole account's data, costly to assemble.
    Export,
}

impl RateRoute {
    pub fn name(self) -> &'static str {
        match self {
            RateRoute::Login => "login",
            RateRoute::Register => "register",
            RateRoute::ResendVerification => "verify_resend",
            RateRoute::PasswordReset => "password_reset",
            RateRoute::Otp => "otp",
            RateRoute::Export => "export",
        }
    }

    const ALL: [RateRoute; 6] = [
        RateRoute::Login,
        RateRoute::Register,
        RateRoute::ResendVerification,
        RateRoute::PasswordReset,
        RateRoute::Otp,
        RateRoute::Export,
    ];
}

/// The window name of the mail cap per address (beside the routes' names).
const MAIL_TO_ADDRESS: &str = "mail_to_address";

/// The span of the mail cap per address.
const MAIL_CAP_WINDOW: Duration = Duration::from_secs(3600);

/// The key a client is limited under: its IPv4 address, or the IPv6 network
/// of `ipv6_prefix` bits it belongs to — one host holds a whole /64, so per
/// address it could rotate through 2^64 fresh quotas.
pub fn client_key(ip: Option<IpAddr>, ipv6_prefix: u8) -> String {
    match ip {
        None => "unknown".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => ipnet::Ipv6Net::new(v6, ipv6_prefix.min(128))
                .map(|net| net.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        },
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

impl RateVerdict {
    /// The verdict of a sliding-window log (Redis's or the database's).
    fn of_window(
        admitted: bool,
        limit: u32,
        count: i64,
        oldest_ms: i64,
        window_ms: i64,
        now_ms: i64,
    ) -> Self {
        // The oldest request leaving the window frees the next place.
        let reset = Duration::from_millis((oldest_ms + window_ms - now_ms).max(0) as u64);
        RateVerdict {
            allowed: admitted,
            limit,
            remaining: (i64::from(limit) - count).max(0) as u32,
            reset,
            retry_after: if admitted { Duration::ZERO } else { reset },
        }
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    local: RateLimits,
    redis: Option<RedisStore>,
    /// The system of record; keeps the windows when it is shared (PostgreSQL).
    store: DynStore,
    /// Until when the database is not asked: a second after it was found
    /// unavailable, so that while it is down a request that counts in two
    /// windows (its route's, then its address's mail) waits for it once.
    store_rests_until: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    config: RateConfig,
}

/// How long the limiter leaves an unavailable database alone.
const STORE_REST: Duration = Duration::from_secs(1);

impl RateLimiter {
    /// Starts the in-memory limiters (pruned every minute). Call inside the actix system.
    pub fn start(
        config: RateConfig,
        redis: Option<RedisStore>,
        store: DynStore,
    ) -> Result<Self, StartError> {
        let mut quotas: Vec<(&str, RateQuota)> = RateRoute::ALL
            .iter()
            .map(|r| {
                (
                    r.name(),
                    RateQuota::new(Self::limit_of(&config, *r), config.window),
                )
            })
            .collect();
        quotas.push((
            MAIL_TO_ADDRESS,
            RateQuota::new(config.mail_per_address, MAIL_CAP_WINDOW),
        ));
        let local = RateLimits::start(quotas, Duration::from_secs(60))?;
        Ok(Self {
            local,
            redis,
            store,
            store_rests_until: Default::default(),
            config,
        })
    }

    fn limit_of(config: &RateConfig, route: RateRoute) -> u32 {
        match route {
            RateRoute::Login => config.login,
            RateRoute::Register | RateRoute::ResendVerification => config.register,
            RateRoute::PasswordReset => config.password_reset,
            RateRoute::Otp => config.otp,
            RateRoute::Export => config.export,
        }
    }

    /// Counts one request of the client at `ip` on `route` and decides.
    pub async fn check(&self, route: RateRoute, ip: Option<IpAddr>, now_ms: i64) -> RateVerdict {
        let key = client_key(ip, self.config.ipv6_prefix);
        let limit = Self::limit_of(&self.config, route);
        self.decide(route.name(), &key, limit, self.config.window, now_ms)
            .await
    }

    /// Counts one mail to `address` that no signed-in user asked for (a
    /// verification link, a notice of a registration for a taken address)
    /// and says whether it may go: at most `MAIL_PER_ADDRESS_PER_HOUR` in any
    /// hour, whichever clients ask, from wherever, through whichever
    /// instance. Only a mail about to be sent is counted, so asking for an
    /// address that gets no mail uses up nothing of its owner's.
    pub async fn admit_mail_to(&self, address: &Email, now_ms: i64) -> bool {
        // Keyed by a digest: the windows hold no address in clear.
        let key = crate::auth::tokens::token_hash(address.as_str());
        let limit = self.config.mail_per_address;
        self.decide(MAIL_TO_ADDRESS, &key, limit, MAIL_CAP_WINDOW, now_ms)
            .await
            .allowed
    }

    /// One hit of `key` in the window `name` (`limit` per `window`): in
    /// Redis, else the shared database, else this process's memory.
    async fn decide(
        &self,
        name: &str,
        key: &str,
        limit: u32,
        window: Duration,
        now_ms: i64,
    ) -> RateVerdict {
        let window_ms = window.as_millis().max(1) as i64;
        if let Some(redis) = &self.redis {
            if let Ok((allowed, count, oldest_ms)) =
                redis.rate_hit(name, key, now_ms, window_ms, limit).await
            {
                return RateVerdict::of_window(allowed, limit, count, oldest_ms, window_ms, now_ms);
            }
        }
        // No Redis to ask: a shared database keeps the limit fleet-wide.
        let window = SlidingWindow { limit, window_ms };
        let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        let resting = self
            .store_rests_until
            .lock()
            .map(|until| until.is_some_and(|t| std::time::Instant::now() < t))
            .unwrap_or(false);
        let hit = if resting {
            Ok(None)
        } else {
            self.store
                .rate_hit(&format!("{name}:{key}"), window, now)
                .await
        };
        if let Err(StorageError::Unavailable(_)) = &hit {
            if let Ok(mut until) = self.store_rests_until.lock() {
                *until = Some(std::time::Instant::now() + STORE_REST);
            }
        }
        match hit {
            Ok(Some(WindowHit {
                admitted,
                count,
                oldest_ms,
                ..
            })) => {
                return RateVerdict::of_window(
                    admitted,
                    limit,
                    i64::from(count),
                    oldest_ms,
                    window_ms,
                    now_ms,
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, route = name, "rate window not counted in the database; this instance decides alone");
            }
        }
        match self.local.check(name, key) {
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
