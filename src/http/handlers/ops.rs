//! Operations: liveness, readiness, the JWKS and the OpenAPI document.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::StatusResponse;
use crate::http::errors::{ApiError, Problem};
use crate::services::Services;

#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "The process serves", body = StatusResponse)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(StatusResponse { status: "ok" })
}

#[utoipa::path(get, path = "/ready", tag = "ops",
    responses(
        (status = 200, description = "Database (and Redis where configured) answer", body = StatusResponse),
        (status = 503, description = "A dependency is down; the body names it", body = Problem),
    ))]
pub async fn ready(svc: web::Data<Services>) -> Result<HttpResponse, ApiError> {
    let down = svc.edge.down().await;
    if down.is_empty() {
        Ok(HttpResponse::Ok().json(StatusResponse { status: "ready" }))
    } else {
        Err(ApiError::NotReady(down))
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "ops",
    responses((status = 200, description = "RFC 7517 key set of every key that verifies live tokens", body = Object)))]
pub async fn jwks(svc: web::Data<Services>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(svc.edge.jwks())
}
