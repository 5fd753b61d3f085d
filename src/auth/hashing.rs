//! Argon2id password hashing on a bounded pool off the async workers.
//!
//! Hashing is deliberately slow (~15 ms and 19 MiB per hash), so it never runs
//! on an HTTP worker: jobs go to the blocking pool, at most `workers` at once.
//! At most `queue` more may wait; beyond that the pool answers
//! [`HashError::Busy`] (HTTP 503 + `Retry-After`) instead of queueing without
//! bound, which would only turn overload into timeouts for everyone.

use std::sync::Arc;
use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::config::HashingConfig;
use crate::domain::password::normalize;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password hashing pool is full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash uses weaker parameters than configured: rehash now.
    pub needs_rehash: bool,
}

/// The hashing pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// Admission: running + waiting jobs.
    admission: Arc<Semaphore>,
    /// Jobs running at once.
    running: Arc<Semaphore>,
    /// A hash of a random password with the configured parameters, verified
    /// against when the email is unknown so that both paths cost the same.
    dummy_hash: String,
    /// workers + queue, the admission semaphore's size.
    capacity: usize,
}

impl PasswordHasher {
    pub fn new(config: &HashingConfig) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let dummy_secret = crate::auth::tokens::random_token();
        let dummy_hash = hash_blocking(&params, dummy_secret.as_bytes())?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                admission: Arc::new(Semaphore::new(config.workers + config.queue)),
                running: Arc::new(Semaphore::new(config.workers)),
                dummy_hash,
                capacity: config.workers + config.queue,
            }),
        })
    }

    /// Hashes a new password (NFKC-normalized) into a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let password = normalize(password);
        let params = self.inner.params.clone();
        self.run(move || hash_blocking(&params, password.expose_secret().as_bytes()))
            .await?
    }

    /// Verifies a password against a stored PHC string, or against the dummy
    /// hash when there is none (unknown email), which never matches.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        let password = normalize(password);
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let params = self.inner.params.clone();
        let verified = self
            .run(move || verify_blocking(&params, password.expose_secret().as_bytes(), &phc))
            .await??;
        Ok(Verified {
            matches: known && verified.matches,
            needs_rehash: known && verified.needs_rehash,
        })
    }

    async fn run<T, F>(&self, job: F) -> Result<T, HashError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Ok(_admitted) = self.inner.admission.clone().try_acquire_owned() else {
            return Err(HashError::Busy);
        };
        let queued = Instant::now();
        let _running = self
            .inner
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal("hashing pool closed".into()))?;
        let waited = queued.elapsed();
        if waited.as_millis() > 500 {
            tracing::warn!(
                waited_ms = waited.as_millis() as u64,
                "password hashing queue is long"
            );
        }
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(job))
            .await
            .map_err(|e| HashError::Internal(e.to_string()))
    }

    /// Jobs waiting or running now (for the pool gauge).
    pub fn in_flight(&self) -> usize {
        self.inner
            .capacity
            .saturating_sub(self.inner.admission.available_permits())
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, HashError> {
    argon2(params)
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

fn verify_blocking(params: &Params, password: &[u8], phc: &str) -> Result<Verified, HashError> {
    let parsed =
        PasswordHash::new(phc).map_err(|e| HashError::Internal(format!("stored hash: {e}")))?;
    let matches = argon2(params).verify_password(password, &parsed).is_ok();
    let needs_rehash = match Params::try_from(&parsed) {
        Ok(stored) => {
            parsed.algorithm.as_str() != "argon2id"
                || stored.m_cost() < params.m_cost()
                || stored.t_cost() < params.t_cost()
                || stored.p_cost() < params.p_cost()
        }
        Err(_) => true,
    };
    Ok(Verified {
        matches,
        needs_rehash,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn small() -> HashingConfig {
        HashingConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            workers: 1,
            queue: 0,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_never_matches() {
        let hasher = PasswordHasher::new(&small()).unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        let phc = hasher.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hasher.verify(&pw, Some(phc.clone())).await.unwrap().matches);
        let wrong = SecretString::from("wrong horse battery".to_string());
        assert!(!hasher.verify(&wrong, Some(phc)).await.unwrap().matches);
        assert!(!hasher.verify(&pw, None).await.unwrap().matches);
    }

    #[tokio::test]
    async fn weaker_stored_parameters_ask_for_a_rehash() {
        let weak = PasswordHasher::new(&small()).unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        let phc = weak.hash(&pw).await.unwrap();
        let strong = PasswordHasher::new(&HashingConfig {
            memory_kib: 128,
            ..small()
        })
        .unwrap();
        let v = strong.verify(&pw, Some(phc)).await.unwrap();
        assert!(v.matches && v.needs_rehash);
    }
}
