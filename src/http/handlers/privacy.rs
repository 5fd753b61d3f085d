//! Consents, the data export and the erasure of an account (GDPR), and the
//! sign-in step that accepts new terms and privacy versions.

use actix_web::{web, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::consent::{ConsentType, Requested};
use crate::http::client::Client;
use crate::http::errors::{ApiError, Problem};
use crate::http::extract::Authenticated;
use crate::services::consents::{self, Acceptance, ConsentState};
use crate::services::privacy::{self, DataExport};
use crate::services::Services;

#[utoipa::path(
    get, path = "/api/v1/auth/me/consents", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest answer of each consent type, with its version and time, and the current version of each text", body = ConsentState),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn get_consents(
    svc: web::Data<Services>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(consents::current(&svc.account, &principal).await?))
}

/// One answer: grant or withdraw.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentAnswer {
    pub granted: bool,
    /// The version of the text the user was shown; when given it must be the
    /// current one. The version recorded is always the current one.
    #[serde(default)]
    pub version: Option<String>,
}

/// The answers to change; types left out are unchanged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentsUpdate {
    /// Cannot be withdrawn (only erasing the account ends it).
    #[serde(default)]
    pub terms: Option<ConsentAnswer>,
    /// Cannot be withdrawn (only erasing the account ends it).
    #[serde(default)]
    pub privacy: Option<ConsentAnswer>,
    #[serde(default)]
    pub marketing: Option<ConsentAnswer>,
    #[serde(default)]
    pub data_processing: Option<ConsentAnswer>,
}

#[utoipa::path(
    put, path = "/api/v1/auth/me/consents", tag = "me",
    security(("bearer" = [])),
    request_body = ConsentsUpdate,
    responses(
        (status = 200, description = "The new state; each change was appended to the history (repeating the current answer records nothing)", body = ConsentState),
        (status = 401, description = "Missing or invalid access token", body = Problem),
        (status = 422, description = "`withdrawal_requires_erasure` (terms or privacy withdrawn), or `validation_failed` (`version_mismatch`, unknown type)", body = Problem),
    )
)]
pub async fn put_consents(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<ConsentsUpdate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let requested: Vec<Requested> = [
        (ConsentType::Terms, body.terms),
        (ConsentType::Privacy, body.privacy),
        (ConsentType::Marketing, body.marketing),
        (ConsentType::DataProcessing, body.data_processing),
    ]
    .into_iter()
    .filter_map(|(t, answer)| {
        answer.map(|a| Requested {
            consent_type: t,
            granted: a.granted,
            version: a.version.map(|v| v.trim().to_string()),
        })
    })
    .collect();
    let state = consents::update(&svc.account, &principal, requested, &client).await?;
    Ok(HttpResponse::Ok().json(state))
}

#[derive(Deserialize, ToSchema)]
pub struct AcceptConsentsRequest {
    /// The token of the `403 consent_required` answer.
    pub consent_token: String,
    /// The terms version accepted: the `required.terms` of that answer.
    #[serde(default)]
    pub terms: Option<String>,
    /// The privacy version accepted: the `required.privacy` of that answer.
    #[serde(default)]
    pub privacy: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/auth/consents/accept", tag = "auth",
    request_body = AcceptConsentsRequest,
    responses(
        (status = 200, description = "Accepted and signed in (a token pair), or `{mfa_required, mfa_token, methods}` when a second factor is on", body = crate::services::sign_in::LoginOutcome),
        (status = 401, description = "`invalid_consent_token`: unknown, spent or expired", body = Problem),
        (status = 422, description = "A version that is not the current one, or a required one missing", body = Problem),
        (status = 429, description = "Rate limited (the OTP budget: a second step of signing in)", body = Problem),
    )
)]
pub async fn accept_consents(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<AcceptConsentsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let outcome = consents::accept(
        &svc.sign_in,
        Acceptance {
            consent_token: body.consent_token,
            terms: body.terms,
            privacy: body.privacy,
        },
        &client,
    )
    .await?;
    Ok(super::tokens(outcome))
}

#[utoipa::path(
    get, path = "/api/v1/auth/me/export", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Everything held about the user (GDPR Art. 15/20): profile, consents with their history, sessions, devices, second-factor settings (never a secret or hash), audit events, mail", body = DataExport),
        (status = 401, description = "Missing or invalid access token", body = Problem),
        (status = 429, description = "Rate limited", body = Problem),
    )
)]
pub async fn export(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let doc = privacy::export(&svc.account, &principal, &client).await?;
    Ok(super::private(doc))
}

#[derive(Deserialize, ToSchema)]
pub struct EraseRequest {
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// While a second factor is enrolled: a TOTP or recovery code (TOTP on), or
    /// a step-up code from `POST /me/2fa/email/code` (email codes on).
    #[serde(default)]
    pub code: Option<String>,
}

#[utoipa::path(
    delete, path = "/api/v1/auth/me", tag = "me",
    security(("bearer" = [])),
    request_body = EraseRequest,
    responses(
        (status = 204, description = "The account is erased (GDPR Art. 17): every session ended, personal data erased, the address free to register again; a farewell mail is sent"),
        (status = 401, description = "Wrong password (counts toward the login lockout), wrong code (counts toward the second-factor limit), or invalid access token", body = Problem),
        (status = 422, description = "`code_required`: a second factor is enrolled", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes", body = Problem),
    )
)]
pub async fn delete_me(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<EraseRequest>,
) -> Result<HttpResponse, ApiError> {
    privacy::erase(
        &svc.account,
        &principal,
        &body.password,
        body.code.as_deref(),
        &client,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
