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

use super::{AuthError, Services};
use crate::auth::tokens;
use crate::domain::ClientContext;
use crate::domain::{Email, FieldError, NewPassword, PasswordContext};
use crate::mail::templates;
use crate::storage::{CreateUserOutcome, NewConsent, NewUser};

/// The consent version recorded when the client does not name one.
pub const DEFAULT_CONSENT_VERSION: &str = "1.0";

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
    pub consent_version: Option<String>,
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
    svc: &Services,
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
    let version = input
        .consent_version
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_CONSENT_VERSION.to_string());
    if version.chars().count() > 20 || version.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "consent_version",
            "invalid",
            "use at most 20 printable characters",
        ));
    }
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return Err(AuthError::Validation(errors));
    };

    let password_hash = svc.hasher.hash(password.secret()).await?;
    let token = tokens::random_token();
    let now = svc.clock.now();
    let mut consents = vec![
        NewConsent {
            consent_type: "terms",
            version: version.clone(),
            consented: true,
        },
        NewConsent {
            consent_type: "privacy",
            version: version.clone(),
            consented: true,
        },
    ];
    if let Some(marketing) = input.consents.marketing {
        consents.push(NewConsent {
            consent_type: "marketing",
            version,
            consented: marketing,
        });
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
            + chrono::Duration::from_std(svc.config.security.verification_token_ttl)
                .unwrap_or(chrono::Duration::hours(24)),
        client: client.clone(),
        now,
        mail: Some(queued),
    };
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
            svc.audit(
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
