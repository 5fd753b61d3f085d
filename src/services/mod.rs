//! Use cases: registration, email verification, login, the signed-in user.
//! Services speak in domain terms and [`AuthError`] (or a use case's own
//! error, such as [`RefreshError`]); HTTP is not their concern.
//!
//! [`Parts`] is what start-up builds (the store, the hashing pool, the keys,
//! the mailer, …). Use cases never take it: [`Services::new`] builds once,
//! from those parts, one area per group of use cases, each holding only the
//! dependencies its use cases call (see `docs/architecture.md`, "Areas"):
//!
//! | area | use cases |
//! |---|---|
//! | [`Credentials`] | registration, email verification, password reset and change |
//! | [`SignIn`] | login, consent acceptance, the code step (`/otp/*`) |
//! | [`Sessions`] | bearer authentication, refresh, logout, the session list |
//! | [`Factors`] | the signed-in user's second factors |
//! | [`Account`] | profile, consents, devices, own audit rows, export, erasure |
//! | [`Admin`] | the operator commands (`suma-auth admin`) |
//! | [`Edge`] | the HTTP edge: readiness, the key set, per-IP rate limits |
//!
//! The protocols several areas share are small parts of their own, cloned
//! into the areas that call them: [`Audit`] (write an audit row),
//! [`credentials::PasswordCheck`], [`factor_check::CodeCheck`],
//! [`tokens::SessionOpener`] (issue a token pair), [`second_factor::Challenges`],
//! [`devices::Devices`], [`consent_book::ConsentBook`], [`reauth::Reauth`] and
//! [`erasure::Eraser`].

pub mod admin;
pub mod audit;
pub mod audit_writer;
pub mod background;
pub mod consent_book;
pub mod consents;
pub mod credentials;
pub mod devices;
pub mod edge;
pub mod erasure;
pub mod error;
pub mod factor_check;
pub mod login;
pub mod me;
pub mod mfa;
pub mod password;
pub mod password_reset;
pub mod principal;
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
pub use admin::Admin;
pub use edge::Edge;
pub use error::{AuthError, CodeError, LoginError, RefreshError, ResetError};
pub use me::Account;
pub use mfa::Factors;
pub use registration::Credentials;
pub use sessions::Sessions;
pub use sign_in::SignIn;

use crate::auth::hashing::PasswordHasher;
use crate::auth::jwt::JwtService;
use crate::config::Config;
use crate::domain::ClientContext;
use crate::mail::Mailer;
use crate::redis::RedisStore;
use crate::security::{FactorLockout, RateLimiter, SessionGuard};
use crate::storage::{AuditEvent, DynStore};
use crate::telemetry::metrics::Metrics;

/// What start-up builds and the areas are made from; also what the
/// periodic jobs, the gauges and the tests hold. Cheap to clone. Use cases
/// never take it: they take their area.
#[derive(Clone)]
pub struct Parts {
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

impl Parts {
    /// The audit protocol over this instance's writer.
    pub fn audit(&self) -> Audit {
        Audit {
            writer: self.audit_writer.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// Writes audit rows: the one protocol every area that records an event
/// shares. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    writer: audit_writer::AuditWriter,
    clock: Clock,
}

impl Audit {
    /// Writes an audit row and returns once it is committed (through this
    /// instance's audit writer, in a transaction with the other rows queued
    /// at the time); a failure is logged, never shown to the client (the
    /// action it records has already happened).
    pub async fn record(
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
        if let Err(e) = self.writer.append(event).await {
            tracing::error!(event_type, error = %e, "audit row not written");
        }
    }
}

/// The areas of use cases, built once at start and shared by every HTTP
/// worker. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub credentials: Credentials,
    pub sign_in: SignIn,
    pub sessions: Sessions,
    pub factors: Factors,
    pub account: Account,
    pub admin: Admin,
    pub edge: Edge,
}

impl Services {
    /// Builds every area from the parts; the shared protocols are built once
    /// and cloned into the areas that call them.
    pub fn new(parts: &Parts) -> Self {
        let passwords = credentials::PasswordCheck::new(parts);
        let codes = factor_check::CodeCheck::new(parts);
        let challenges = second_factor::Challenges::new(parts);
        let devices = devices::Devices::new(parts);
        let consents = consent_book::ConsentBook::new(parts);
        let reauth = reauth::Reauth::new(parts, passwords.clone(), codes.clone());
        let eraser = erasure::Eraser::new(parts);
        Self {
            credentials: Credentials::new(parts, passwords.clone(), reauth.clone()),
            sign_in: SignIn::new(
                parts,
                passwords.clone(),
                codes.clone(),
                challenges.clone(),
                devices.clone(),
                consents.clone(),
            ),
            sessions: Sessions::new(parts),
            factors: Factors::new(parts, passwords, codes, challenges, reauth.clone()),
            account: Account::new(parts, consents, devices, reauth, eraser.clone()),
            admin: Admin::new(parts, eraser),
            edge: Edge::new(parts),
        }
    }
}
