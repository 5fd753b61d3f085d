//! `/api/v1/auth`: registration, email verification and login.

use actix_web::{web, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use super::StatusResponse;
use crate::http::client::Client;
use crate::http::errors::{ApiError, Problem};
use crate::http::extract::{Authenticated, OptionalJson};
use crate::services::login::{self, LoginInput, TokenPair};
use crate::services::registration::{self, Consents, Registration};
use crate::services::{mfa, password, password_reset, sessions, verification, Services};

#[derive(Deserialize, ToSchema)]
pub struct ConsentsRequest {
    pub terms: bool,
    pub privacy: bool,
    #[serde(default)]
    pub marketing: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "ana@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 12–128 characters; not a common password; not containing the email.
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub password: SecretString,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    pub consents: ConsentsRequest,
    /// Accepted for compatibility and ignored: the versions recorded are the
    /// service's current ones (`CONSENT_*_VERSION`).
    #[serde(default)]
    #[schema(deprecated)]
    pub consent_version: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 202, description = "Verification pending: the same answer for every address (a verified one is mailed a notice; an unverified one's pending registration is replaced and its earlier links voided). Once an address has had MAIL_PER_ADDRESS_PER_HOUR links and notices this hour, a registration for it does nothing, with the same answer", body = StatusResponse),
        (status = 422, description = "Invalid email, weak password or missing consent", body = Problem),
        (status = 429, description = "Rate limited", body = Problem),
        (status = 503, description = "Hashing pool full", body = Problem),
    )
)]
pub async fn register(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    registration::register(
        &svc.credentials,
        Registration {
            email: body.email,
            password: body.password,
            first_name: body.first_name,
            last_name: body.last_name,
            consents: Consents {
                terms: body.consents.terms,
                privacy: body.consents.privacy,
                marketing: body.consents.marketing,
            },
        },
        client,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(StatusResponse {
        status: "verification_pending",
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyEmailRequest {
    pub token: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/verify-email", tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "Email verified", body = StatusResponse),
        (status = 400, description = "Unknown, used or expired token", body = Problem),
    )
)]
pub async fn verify_email(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<VerifyEmailRequest>,
) -> Result<HttpResponse, ApiError> {
    verification::verify_email(&svc.credentials, &body.token, client).await?;
    Ok(HttpResponse::Ok().json(StatusResponse { status: "verified" }))
}

#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/verify-email/resend", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "A new link is sent if the account exists and is unverified and its address has had fewer than MAIL_PER_ADDRESS_PER_HOUR links and notices this hour (looked up after the answer: the same answer in the same time for every address)", body = StatusResponse),
        (status = 422, description = "Invalid email", body = Problem),
        (status = 429, description = "Rate limited", body = Problem),
        (status = 503, description = "Busy: too much work waiting on this instance (Retry-After), for every address alike", body = Problem),
    )
)]
pub async fn resend_verification(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    verification::resend(&svc.credentials, &body.email, client).await?;
    Ok(HttpResponse::Accepted().json(StatusResponse { status: "accepted" }))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    #[serde(default)]
    pub device_id: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in (a token pair), or `{mfa_required, mfa_token, methods}` when a second factor is on", body = crate::services::sign_in::LoginOutcome),
        (status = 401, description = "Invalid credentials (same for unknown email)", body = Problem),
        (status = 403, description = "Only after a correct password: `email_not_verified`, `account_disabled`, or `consent_required` with `consent_token` and `required: {terms, privacy}` (accept them at `/consents/accept`)", body = Problem),
        (status = 423, description = "Account locked: MAX_LOGIN_ATTEMPTS failed passwords in the window", body = Problem),
        (status = 429, description = "Rate limited, or (after a correct password) MFA_CHALLENGES_PER_HOUR sign-in challenges of the account this hour", body = Problem),
        (status = 503, description = "Busy: the hashing pool is full, or every attempt of the window is still being checked (retry after `Retry-After`)", body = Problem),
    )
)]
pub async fn login(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let pair = login::login(
        &svc.sign_in,
        LoginInput {
            email: body.email,
            password: body.password,
            device_id: body.device_id,
        },
        client,
    )
    .await?;
    Ok(super::tokens(pair))
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair; the presented refresh token is spent", body = TokenPair),
        (status = 401, description = "Unknown, spent (the session is then revoked) or expired refresh token", body = Problem),
    )
)]
pub async fn refresh(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let pair = sessions::refresh(&svc.sessions, &body.refresh_token, &client).await?;
    Ok(super::tokens(pair))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LogoutRequest {
    /// The refresh token of another of the caller's sessions, to end it too
    /// (another user's token is ignored).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    request_body(content = LogoutRequest, description = "Optional", content_type = "application/json"),
    responses(
        (status = 204, description = "The session, its refresh token and its access tokens stop working"),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn logout(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.unwrap_or_default();
    sessions::logout(
        &svc.sessions,
        &principal,
        body.refresh_token.as_deref(),
        &client,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v1/auth/logout-all", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the user ends"),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn logout_all(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    sessions::logout_all(&svc.sessions, &principal, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub new_password: SecretString,
    /// A code of a current second factor (TOTP or recovery code, or an
    /// emailed step-up code from `POST /me/2fa/email/code`); required while
    /// one is enrolled.
    #[serde(default)]
    pub code: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/auth/password/change", tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every other session ended"),
        (status = 401, description = "Wrong current password or second-factor code, or invalid access token", body = Problem),
        (status = 422, description = "Weak or recently used new password, or no `code` while a second factor is enrolled", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes", body = Problem),
    )
)]
pub async fn change_password(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    password::change_password(
        &svc.credentials,
        &principal,
        &body.current_password,
        body.code.as_deref(),
        &body.new_password,
        &client,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v1/auth/password-reset", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "A reset link is mailed if the account exists, ending the earlier ones (looked up after the answer: the same answer in the same time for every email)", body = StatusResponse),
        (status = 422, description = "Invalid email", body = Problem),
        (status = 429, description = "Rate limited", body = Problem),
        (status = 503, description = "Busy: too much work waiting on this instance (Retry-After), for every email alike", body = Problem),
    )
)]
pub async fn password_reset(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    password_reset::request(&svc.credentials, &body.email, &client).await?;
    Ok(HttpResponse::Accepted().json(StatusResponse { status: "accepted" }))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetConfirmRequest {
    pub token: String,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub new_password: SecretString,
}

#[utoipa::path(
    post, path = "/api/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ResetConfirmRequest,
    responses(
        (status = 200, description = "The password is set; every session of the user ended", body = StatusResponse),
        (status = 400, description = "Unknown, used or expired token", body = Problem),
        (status = 422, description = "Weak or recently used password", body = Problem),
    )
)]
pub async fn password_reset_confirm(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<ResetConfirmRequest>,
) -> Result<HttpResponse, ApiError> {
    password_reset::confirm(&svc.credentials, &body.token, &body.new_password, &client).await?;
    Ok(HttpResponse::Ok().json(StatusResponse {
        status: "password_reset",
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct MfaTokenRequest {
    pub mfa_token: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/otp/send", tag = "auth",
    request_body = MfaTokenRequest,
    responses(
        (status = 202, description = "A new email code was sent for this login challenge", body = StatusResponse),
        (status = 401, description = "Unknown, spent, expired or dead challenge", body = Problem),
        (status = 429, description = "Too many codes for this challenge, or rate limited", body = Problem),
    )
)]
pub async fn otp_send(
    svc: web::Data<Services>,
    body: web::Json<MfaTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    mfa::resend(&svc.sign_in, &body.mfa_token).await?;
    Ok(HttpResponse::Accepted().json(StatusResponse { status: "sent" }))
}

#[derive(Deserialize, ToSchema)]
pub struct OtpVerifyRequest {
    pub mfa_token: String,
    /// 6 digits (email or TOTP), or a recovery code.
    pub code: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/otp/verify", tag = "auth",
    request_body = OtpVerifyRequest,
    responses(
        (status = 200, description = "Signed in; tokens carry amr [pwd, otp]", body = TokenPair),
        (status = 401, description = "invalid_code, or invalid_mfa_token once the challenge is dead (5 wrong codes)", body = Problem),
        (status = 423, description = "account_locked: too many wrong codes for this account, across challenges (Retry-After)", body = Problem),
    )
)]
pub async fn otp_verify(
    svc: web::Data<Services>,
    Client(client): Client,
    body: web::Json<OtpVerifyRequest>,
) -> Result<HttpResponse, ApiError> {
    let pair = mfa::verify(&svc.sign_in, &body.mfa_token, &body.code, &client).await?;
    Ok(super::tokens(pair))
}
