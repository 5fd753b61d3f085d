//! Consents: the state a user reads and changes (`/me/consents`), and the
//! sign-in step that waits for the current terms and privacy policy
//! (`403 consent_required`, then `POST /consents/accept`).
//!
//! Every change appends a statement (type, the current version, the answer,
//! time, IP address, user agent) to `consent_records`; nothing is updated.
//! The versions are configuration (`CONSENT_*_VERSION`); a version a client
//! names must be the current one. Terms and privacy end only with the account.

use uuid::Uuid;

use super::consent_book::history;
pub use super::consent_book::{
    gate, state_of, statements, ConsentBook, ConsentRequired, ConsentState, ConsentView,
    RequiredVersions, CHALLENGE_TTL,
};
use super::principal::{current_user, Principal};
use super::sign_in::{self, LoginOutcome};
use super::{Account, AuthError, SignIn};
use crate::auth::tokens;
use crate::domain::consent::{self, ConsentRefusal, ConsentType, Requested, Statement};
use crate::domain::{ClientContext, FieldError};
use crate::storage::{ConsentChange, NewConsent};

/// `GET /me/consents`.
pub async fn current(svc: &Account, principal: &Principal) -> Result<ConsentState, AuthError> {
    let user = current_user(&svc.store, principal).await?;
    Ok(state_of(
        svc.consents.versions(),
        &history(&svc.consents, user.id).await?,
    ))
}

/// Records each real change and audits it; the statements appended.
async fn record(
    svc: &ConsentBook,
    user_id: Uuid,
    changes: Vec<(ConsentType, String, bool)>,
    client: &ClientContext,
    challenge: Option<Uuid>,
) -> Result<Option<Vec<Statement>>, AuthError> {
    let now = svc.clock.now();
    let appended = svc
        .store
        .append_consents(ConsentChange {
            user_id,
            consents: changes
                .iter()
                .map(|(t, version, granted)| NewConsent {
                    consent_type: t.as_str(),
                    version: version.clone(),
                    consented: *granted,
                })
                .collect(),
            client: client.clone(),
            now,
            challenge,
        })
        .await?;
    if !appended {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (t, version, granted) in changes {
        svc.audit
            .record(
                "consent_changed",
                true,
                Some(user_id),
                client,
                serde_json::json!({"type": t.as_str(), "granted": granted, "version": version}),
            )
            .await;
        out.push(Statement {
            consent_type: t,
            version,
            granted,
            at: now,
        });
    }
    Ok(Some(out))
}

/// `PUT /me/consents`: grants or withdraws; only real changes are recorded.
pub async fn update(
    svc: &Account,
    principal: &Principal,
    requested: Vec<Requested>,
    client: &ClientContext,
) -> Result<ConsentState, AuthError> {
    let user = current_user(&svc.store, principal).await?;
    let mut history = history(&svc.consents, user.id).await?;
    let changes =
        consent::changes(&history, &requested, svc.consents.versions()).map_err(|refusal| {
            match refusal {
                ConsentRefusal::WithdrawalRequiresErasure(t) => {
                    AuthError::WithdrawalRequiresErasure(t.as_str())
                }
                ConsentRefusal::Invalid(errors) => AuthError::Validation(errors),
            }
        })?;
    if !changes.is_empty() {
        if let Some(mut appended) = record(&svc.consents, user.id, changes, client, None).await? {
            history.append(&mut appended);
        }
    }
    Ok(state_of(svc.consents.versions(), &history))
}

/// `POST /consents/accept`.
pub struct Acceptance {
    pub consent_token: String,
    pub terms: Option<String>,
    pub privacy: Option<String>,
}

/// Spends a consent token, records the acceptance of the current versions,
/// and continues the sign-in: the token pair, or the second-factor step.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn accept(
    svc: &SignIn,
    input: Acceptance,
    client: &ClientContext,
) -> Result<LoginOutcome, AuthError> {
    let token = input.consent_token.trim();
    if !tokens::well_formed(token) {
        return Err(AuthError::InvalidConsentToken);
    }
    let now = svc.clock.now();
    let challenge = svc
        .store
        .find_consent_challenge(&tokens::token_hash(token), now)
        .await?
        .ok_or(AuthError::InvalidConsentToken)?;
    let user = svc
        .store
        .find_user_by_id(challenge.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(AuthError::InvalidConsentToken)?;
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    let current = svc.consents.versions();
    let history = history(&svc.consents, user.id).await?;
    let missing = consent::missing_acceptances(&history, current);
    let mut errors = Vec::new();
    for (t, named) in [
        (ConsentType::Terms, &input.terms),
        (ConsentType::Privacy, &input.privacy),
    ] {
        let version = current.of(t);
        match named.as_deref().map(str::trim) {
            Some(v) if v == version => {}
            Some(_) => errors.push(FieldError::new(
                t.as_str(),
                "version_mismatch",
                format!("the current version is {version}"),
            )),
            None if missing.contains(&t) => errors.push(FieldError::new(
                t.as_str(),
                "required",
                format!("accept version {version}"),
            )),
            None => {}
        }
    }
    if !errors.is_empty() {
        return Err(AuthError::Validation(errors));
    }
    let changes: Vec<(ConsentType, String, bool)> = missing
        .iter()
        .map(|t| (*t, current.of(*t).to_string(), true))
        .collect();
    if record(&svc.consents, user.id, changes, client, Some(challenge.id))
        .await?
        .is_none()
    {
        return Err(AuthError::InvalidConsentToken);
    }
    sign_in::after_password(svc, &user, challenge.device_id, client, None).await
}
