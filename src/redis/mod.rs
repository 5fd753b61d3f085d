//! Redis: the shared hot state of every instance (lockout windows, rate
//! windows, session liveness). All key formats and TTLs live in this module.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use secrecy::ExposeSecret;

use crate::config::RedisConfig;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
}

/// A pool of Redis connections. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    pool: bb8::Pool<RedisConnectionManager>,
    /// Prefix of every key (tests give each run its own).
    prefix: String,
}

impl RedisStore {
    /// Builds the pool without connecting: Redis may be down at start, and
    /// the server must still start and answer (falling back) until it returns.
    pub fn new(config: &RedisConfig, prefix: &str) -> Result<Self, RedisError> {
        let url = match &config.auth_token {
            Some(token) => with_password(&config.endpoint, token.expose_secret()),
            None => config.endpoint.clone(),
        };
        let manager =
            RedisConnectionManager::new(url).map_err(|e| RedisError::Unavailable(e.to_string()))?;
        let pool = bb8::Pool::builder()
            .max_size(16)
            .connection_timeout(Duration::from_millis(500))
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub async fn connection(
        &self,
    ) -> Result<bb8::PooledConnection<'_, RedisConnectionManager>, RedisError> {
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
                .query_async::<String>(&mut *conn)
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
