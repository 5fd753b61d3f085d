//! Use cases: registration, email verification, login, the signed-in user.
//! Services speak in domain terms and [`AuthError`]; HTTP is not their concern.

pub mod admin;
pub mod audit;
pub mod audit_writer;
pub mod background;
pub mod consents;
pub mod credentials;
pub mod devices;
pub mod error;
pub mod factor_check;
pub mod login;
pub mod me;
pub mod mfa;
pub mod password_reset;
pub mod privacy;
pub mod reauth;
pub mod registration;
pub mod second_factor;
pub mod sessions;
pub mod sign_in;
pub mod tokens;
pub mod verification;

use std::sync::Arc;

pub use crate::clock::{self, Clock};
pub use error::{AuthError, RefreshError};

use crate::auth::hashing::PasswordHasher;
use crate::auth::jwt::JwtService;
use crate::config::Config;
use crate::domain::ClientContext;
use crate::mail::Mailer;
use crate::redis::RedisStore;
use crate::security::{FactorLockout, RateLimiter, SessionGuard};
use crate::storage::{AuditEvent, DynStore};
use crate::telemetry::metrics::Metrics;

/// Everything the use cases need, built once at start and shared by every
/// HTTP worker. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: DynStore,
    pub hasher: PasswordHasher,
    pub jwt: JwtService,
    pub mailer: Mailer,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Shared hot state, when `REDIS_ENDPOINT` is configured.
    pub redis: Option<RedisStore>,
    /// The per-user actors (lockout, OTP challenges).
    pub actors: suma_auth_actors::SecurityHandle,
    pub rate_limiter: RateLimiter,
    /// Session liveness and revocation on every instance.
    pub sessions: SessionGuard,
    /// Wrong second-factor codes per account, on every instance.
    pub factor_lockout: FactorLockout,
    /// Work done after the answer (see [`background`]).
    pub background: background::Background,
    /// This instance's audit writer (group commit, see [`audit_writer`]).
    pub audit_writer: audit_writer::AuditWriter,
}

impl Services {
    /// Writes an audit row and returns once it is committed (through this
    /// instance's audit writer, in a transaction with the other rows queued
    /// at the time); a failure is logged, never shown to the client (the
    /// action it records has already happened).
    pub async fn audit(
        &self,
        event_type: &'static str,
        success: bool,
        user_id: Option<uuid::Uuid>,
        client: &ClientContext,
        metadata: serde_json::Value,
    ) {
        let event = AuditEvent {
            user_id,
            event_type,
            success,
            client: client.clone(),
            metadata,
            at: self.clock.now(),
        };
        if let Err(e) = self.audit_writer.append(event).await {
            tracing::error!(event_type, error = %e, "audit row not written");
        }
    }
}
