//! `/api/v1/auth/me`: the signed-in user.

use actix_web::{web, HttpResponse};

use uuid::Uuid;

use crate::http::client::Client;
use crate::http::errors::{ApiError, Problem};
use crate::http::extract::Authenticated;
use crate::services::me::{self, Profile};
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
