//! Registration: one answer for new and already-registered emails.
//!
//! The password is hashed in both cases so that both take the same time; the
//! owner of a verified address gets a notice instead of a second account. A
//! registration for an address whose account is still unverified replaces
//! its pending registration (password, names, consents) and voids its
//! earlier verification links: whoever proves the mailbox chooses the
//! password. Every case answers alike (202).
//! Twenty concurrent registrations of one email create one account: the
//! database's unique email decides, inside the creating transaction.

use secrecy::SecretString;
use uuid::Uuid;

use super::background::Background;
use super::credentials::PasswordCheck;
use super::reauth::Reauth;
use super::{Audit, AuthError, Parts};
use crate::auth::hashing::PasswordHasher;
use crate::auth::tokens;
use crate::clock::Clock;
use crate::domain::consent::ConsentType;
use crate::domain::consent::ConsentVersions;
use crate::domain::ClientContext;
use crate::domain::{Email, FieldError, NewPassword, PasswordContext};
use crate::mail::templates;
use crate::mail::Mailer;
use crate::security::{RateLimiter, SessionGuard};
use crate::storage::DynStore;
use crate::storage::{CreateUserOutcome, NewConsent, NewUser};
use crate::telemetry::metrics::Metrics;

/// The credentials area: registration, email verification, password reset
/// and password change. Cheap to clone.
#[derive(Clone)]
pub struct Credentials {
    pub(super) store: DynStore,
    pub(super) hasher: PasswordHasher,
    pub(super) mailer: Mailer,
    pub(super) metrics: Metrics,
    pub(super) clock: Clock,
    pub(super) audit: Audit,
    pub(super) background: Background,
    /// Ends the other sessions of a new password on every instance.
    pub(super) sessions: SessionGuard,
    pub(super) passwords: PasswordCheck,
    /// The fresh proof of a password change (password, plus a current
    /// second factor's code while one is enrolled).
    pub(super) reauth: Reauth,
    pub(super) consent_versions: ConsentVersions,
    pub(super) verification_ttl: std::time::Duration,
    /// The hourly cap on unasked-for mail per address.
    pub(super) rate_limiter: RateLimiter,
}

impl Credentials {
    pub fn new(parts: &Parts, passwords: PasswordCheck, reauth: Reauth) -> Self {
        Self {
            store: parts.store.clone(),
            hasher: parts.hasher.clone(),
            mailer: parts.mailer.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            background: parts.background.clone(),
            sessions: parts.sessions.clone(),
            passwords,
            reauth,
            consent_versions: parts.config.consents.clone(),
            verification_ttl: parts.config.security.verification_token_ttl,
            rate_limiter: parts.rate_limiter.clone(),
        }
    }
}

pub struct Consents {
    pub terms: bool,
    pub privacy: bool,
    pub marketing: Option<bool>,
}

pub struct Registration {
    pub email: String,
    pub password: SecretString,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub consents: Consents,
}

fn optional_name(
    value: Option<String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())?;
    if value.chars().count() > 100 {
        errors.push(FieldError::new(
            field,
            "too_long",
            "use at most 100 characters",
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "invalid_characters",
            "control characters are not allowed",
        ));
    }
    Some(value)
}

enum Outcome {
    Created,
    Replaced(Uuid),
    Existing,
}

#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn register(
    svc: &Credentials,
    input: Registration,
    client: ClientContext,
) -> Result<(), AuthError> {
    let mut errors = Vec::new();
    let email = Email::parse(&input.email, "email")
        .map_err(|e| errors.push(e))
        .ok();
    let mut name_errors = Vec::new();
    let first_name = optional_name(input.first_name, "first_name", &mut name_errors);
    let last_name = optional_name(input.last_name, "last_name", &mut name_errors);
    let context = PasswordContext::new(email.as_ref(), first_name.as_deref(), last_name.as_deref());
    let password = NewPassword::parse(&input.password, &context, "password")
        .map_err(|mut e| errors.append(&mut e))
        .ok();
    errors.append(&mut name_errors);
    if !input.consents.terms {
        errors.push(FieldError::new(
            "consents.terms",
            "consent_required",
            "the terms of service must be accepted",
        ));
    }
    if !input.consents.privacy {
        errors.push(FieldError::new(
            "consents.privacy",
            "consent_required",
            "the privacy policy must be accepted",
        ));
    }
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return Err(AuthError::Validation(errors));
    };

    let password_hash = svc.hasher.hash(password.secret()).await?;
    let token = tokens::random_token();
    let now = svc.clock.now();
    // The versions are the service's current ones, never the client's word.
    let current = &svc.consent_versions;
    let statement = |t: ConsentType, consented: bool| NewConsent {
        consent_type: t.as_str(),
        version: current.of(t).to_string(),
        consented,
    };
    let mut consents = vec![
        statement(ConsentType::Terms, true),
        statement(ConsentType::Privacy, true),
    ];
    if let Some(marketing) = input.consents.marketing {
        consents.push(statement(ConsentType::Marketing, marketing));
    }
    let user_id = Uuid::new_v4();
    let mail = templates::verification(email.as_str(), svc.mailer.public_url(), &token);
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let new_user = NewUser {
        id: user_id,
        email: email.clone(),
        password_hash,
        first_name,
        last_name,
        consents,
        verification_token_hash: tokens::token_hash(&token),
        verification_expires_at: now
            + chrono::Duration::from_std(svc.verification_ttl)
                .unwrap_or(chrono::Duration::hours(24)),
        client: client.clone(),
        now,
        mail: Some(queued),
    };
    // Every registration mails the address (a link, or a notice to its
    // owner): past the address's hourly cap nothing is done, and the answer
    // is the same.
    if !svc
        .rate_limiter
        .admit_mail_to(&email, now.timestamp_millis())
        .await
    {
        tracing::info!("registration not processed: its address had its mail for this hour");
        svc.metrics.mail_withheld("register");
        return Ok(());
    }
    let outcome = match svc.store.create_user(new_user.clone()).await? {
        CreateUserOutcome::Created => Outcome::Created,
        // An unverified account: this registration replaces its pending one
        // (nothing the earlier registrant chose survives, and its links die),
        // so whoever proves the mailbox chooses the password.
        CreateUserOutcome::EmailTaken => match svc.store.replace_unverified_user(new_user).await? {
            Some(id) => Outcome::Replaced(id),
            None => Outcome::Existing,
        },
    };
    match outcome {
        Outcome::Created => {
            tracing::Span::current().record("user_id", tracing::field::display(user_id));
            tracing::info!("account registered");
            svc.metrics.registration("created");
            svc.mailer.queued(mail.template);
        }
        Outcome::Replaced(id) => {
            tracing::Span::current().record("user_id", tracing::field::display(id));
            tracing::info!("pending registration of an unverified account replaced");
            svc.metrics.registration("replaced");
            svc.mailer.queued(mail.template);
        }
        Outcome::Existing => {
            tracing::info!("registration for an existing address; notice sent");
            svc.metrics.registration("existing");
            let existing = svc.store.find_user_by_email(&email).await?;
            svc.audit
                .record(
                    "registration_duplicate",
                    false,
                    existing.map(|u| u.id),
                    &client,
                    serde_json::json!({}),
                )
                .await;
            svc.mailer
                .dispatch(templates::already_registered(
                    email.as_str(),
                    svc.mailer.public_url(),
                ))
                .await;
        }
    }
    Ok(())
}
