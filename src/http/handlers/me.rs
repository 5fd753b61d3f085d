//! `/api/v1/auth/me`: the signed-in user.

use actix_web::{web, HttpResponse};

use crate::http::errors::{ApiError, Problem};
use crate::http::extract::Authenticated;
use crate::services::me::{self, Profile};
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
