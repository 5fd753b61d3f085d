//! `/api/v1/auth/me`: the signed-in user.

use actix_web::{web, HttpRequest, HttpResponse};

use super::StatusResponse;
use crate::domain::FieldError;
use crate::http::client::Client;
use crate::http::errors::{ApiError, Problem};
use crate::http::extract::Authenticated;
use crate::services::audit::{self, AuditPage};
use crate::services::me::{self, Profile};
use crate::services::mfa::{self, RecoveryCodes, TotpSetup};
use crate::services::reauth::Proof;
use crate::services::sessions::{self, SessionView};
use crate::services::{AuthError, Services};

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
    let profile = me::profile(&svc.account, &principal).await?;
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
    Ok(HttpResponse::Ok().json(sessions::list(&svc.sessions, &principal).await?))
}

#[utoipa::path(
    get, path = "/api/v1/auth/me/audit", tag = "me",
    security(("bearer" = [])),
    params(
        ("before" = Option<String>, Query, description = "A cursor: the `next` of the previous page; events older than it"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Events per page, 1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, description = "The user's own security events, newest first, and the cursor of the next page", body = AuditPage),
        (status = 401, description = "Missing or invalid access token", body = Problem),
        (status = 422, description = "`validation_failed`: `limit` out of range or `before` not a cursor", body = Problem),
    )
)]
pub async fn list_audit(
    svc: web::Data<Services>,
    req: HttpRequest,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| {
            AuthError::Validation(vec![FieldError::new(
                "query",
                "invalid",
                "the query string is malformed",
            )])
        })?;
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let page = audit::own_events(&svc.account, &principal, param("before"), param("limit")).await?;
    Ok(HttpResponse::Ok().json(page))
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
    let id = super::own_id(path.into_inner())?;
    super::removed(sessions::revoke(&svc.sessions, &principal, id, &client).await?)
}

/// The fresh proof a change of second factors carries.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct FactorProofRequest {
    /// The account's password (a wrong one counts toward the lockout).
    #[schema(value_type = String, format = Password)]
    pub password: secrecy::SecretString,
    /// While a second factor is on: a TOTP code, a recovery code, or the
    /// code mailed by `POST /me/2fa/email/code`.
    #[serde(default)]
    pub code: Option<String>,
}

impl FactorProofRequest {
    fn proof(&self) -> Proof<'_> {
        Proof {
            password: &self.password,
            code: self.code.as_deref(),
        }
    }
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/email", tag = "me",
    security(("bearer" = [])),
    request_body = FactorProofRequest,
    responses(
        (status = 204, description = "Email one-time codes are on; the owner is mailed and the other sessions ended"),
        (status = 401, description = "Wrong password (invalid_credentials) or wrong code (invalid_code)", body = Problem),
        (status = 403, description = "The email is not verified", body = Problem),
        (status = 422, description = "A code of a current second factor is required", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes (Retry-After)", body = Problem),
    )
)]
pub async fn enable_email_otp(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<FactorProofRequest>,
) -> Result<HttpResponse, ApiError> {
    mfa::enable_email(&svc.factors, &principal, body.proof(), &client).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/email/code", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A code was mailed to the owner, for the `code` of a change while email codes are on", body = StatusResponse),
        (status = 422, description = "Email codes are off for this account", body = Problem),
        (status = 429, description = "Too many codes or sign-in challenges this hour, or rate limited", body = Problem),
    )
)]
pub async fn email_step_up_code(
    svc: web::Data<Services>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    mfa::send_step_up(&svc.factors, &principal).await?;
    Ok(HttpResponse::Accepted().json(StatusResponse { status: "sent" }))
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/totp/setup", tag = "me",
    security(("bearer" = [])),
    request_body = FactorProofRequest,
    responses(
        (status = 200, description = "A new secret, active once confirmed with a code", body = TotpSetup),
        (status = 401, description = "Wrong password (invalid_credentials) or wrong code (invalid_code)", body = Problem),
        (status = 422, description = "A code of a current second factor is required", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes (Retry-After)", body = Problem),
    )
)]
pub async fn totp_setup(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<FactorProofRequest>,
) -> Result<HttpResponse, ApiError> {
    let setup = mfa::totp_setup(&svc.factors, &principal, body.proof(), &client).await?;
    Ok(super::private(setup))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct TotpEnableRequest {
    /// The account's password (a wrong one counts toward the lockout).
    #[schema(value_type = String, format = Password)]
    pub password: secrecy::SecretString,
    /// A code of the new authenticator (a wrong one counts toward the
    /// second-factor limit).
    pub code: String,
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/totp/enable", tag = "me",
    security(("bearer" = [])),
    request_body = TotpEnableRequest,
    responses(
        (status = 200, description = "TOTP is on (or replaced the earlier app); ten single-use recovery codes, shown once; the owner is mailed and the other sessions ended", body = RecoveryCodes),
        (status = 401, description = "Wrong password", body = Problem),
        (status = 422, description = "Wrong code, or no setup", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes (Retry-After)", body = Problem),
    )
)]
pub async fn totp_enable(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<TotpEnableRequest>,
) -> Result<HttpResponse, ApiError> {
    let codes = mfa::totp_enable(
        &svc.factors,
        &principal,
        &body.password,
        &body.code,
        &client,
    )
    .await?;
    Ok(super::private(codes))
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/recovery-codes", tag = "me",
    security(("bearer" = [])),
    request_body = FactorProofRequest,
    responses(
        (status = 200, description = "Ten new single-use recovery codes, shown once; the earlier ones stop working; the owner is mailed and the other sessions ended", body = RecoveryCodes),
        (status = 401, description = "Wrong password (invalid_credentials) or wrong code (invalid_code)", body = Problem),
        (status = 422, description = "TOTP is off, or the code is missing", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes (Retry-After)", body = Problem),
    )
)]
pub async fn regenerate_recovery_codes(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<FactorProofRequest>,
) -> Result<HttpResponse, ApiError> {
    let codes =
        mfa::regenerate_recovery_codes(&svc.factors, &principal, body.proof(), &client).await?;
    Ok(super::private(codes))
}

#[utoipa::path(
    post, path = "/api/v1/auth/me/2fa/disable", tag = "me",
    security(("bearer" = [])),
    request_body = FactorProofRequest,
    responses(
        (status = 204, description = "Every second factor is off; recovery codes are forgotten; the owner is mailed and the other sessions ended"),
        (status = 401, description = "Wrong password (invalid_credentials) or wrong code (invalid_code)", body = Problem),
        (status = 422, description = "A code of a current second factor is required", body = Problem),
        (status = 423, description = "Locked after repeated wrong passwords or codes (Retry-After)", body = Problem),
    )
)]
pub async fn disable_two_factor(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    body: web::Json<FactorProofRequest>,
) -> Result<HttpResponse, ApiError> {
    mfa::disable(&svc.factors, &principal, body.proof(), &client).await?;
    Ok(HttpResponse::NoContent().finish())
}
