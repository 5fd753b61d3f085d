//! `/api/v1/auth/me`: the signed-in user.

use actix_web::{web, HttpResponse};

use uuid::Uuid;

use crate::http::client::Client;
use crate::http::errors::{ApiError, Problem};
use crate::http::extract::Authenticated;
use crate::services::me::{self, Profile};
use crate::services::mfa::{self, RecoveryCodes, TotpSetup};
use crate::services::sessions::{self, SessionView};
use crate::services::Services;

#[utoipa::path(
    get, path = "/api/v1/auth/me", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = Profile),
        (status = 401, description = "Missing, invalid or expired token, or ended session", body = Problem),
    )
)]
pub async fn get_me(
    svc: web::Data<Services>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let profile = me::profile(&svc, &principal).await?;
    Ok(HttpResponse::Ok().json(profile))
}

#[utoipa::path(
    get, path = "/api/v1/auth/me/sessions", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions, newest first; `current` marks this one", body = [SessionView]),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn list_sessions(
    svc: web::Data<Services>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(sessions::list(&svc, &principal).await?))
}

#[utoipa::path(
    delete, path = "/api/v1/auth/me/sessions/{id}", tag = "me",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session to end")),
    responses(
        (status = 204, description = "The session ended"),
        (status = 404, description = "No such live session of this user", body = Problem),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn delete_session(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path.into_inner()).map_err(|_| ApiError::NotFound)?;
    if sessions::revoke(&svc, &principal, id, &client).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/email", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Email one-time codes are on"),
        (status = 403, description = "The email is not verified", body = Problem),
    )
)]
pub async fn enable_email_otp(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    mfa::enable_email(&svc, &principal, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/totp/setup", tag = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "A new secret, active once confirmed with a code", body = TotpSetup))
)]
pub async fn totp_setup(
    svc: web::Data<Services>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(mfa::totp_setup(&svc, &principal).await?))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct CodeRequest {
    pub code: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/totp/enable", tag = "me",
    security(("bearer" = [])),
    request_body = CodeRequest,
    responses(
        (status = 200, description = "TOTP is on; ten single-use recovery codes, shown once", body = RecoveryCodes),
        (status = 422, description = "Wrong code, or no setup", body = Problem),
    )
)]
pub async fn totp_enable(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(mfa::totp_enable(&svc, &principal, &body.code, &client).await?))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct PasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub password: secrecy::SecretString,
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/disable", tag = "me",
    security(("bearer" = [])),
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Every second factor is off; recovery codes are forgotten"),
        (status = 401, description = "Wrong password", body = Problem),
    )
)]
pub async fn disable_two_factor(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    mfa::disable(&svc, &principal, &body.password, &client).await?;
    Ok(HttpResponse::NoContent().finish())
}
