//! Route handlers: parse the request, call one service, shape the response.

pub mod auth;
pub mod devices;
pub mod me;
pub mod ops;
pub mod privacy;

use actix_web::http::header;
use actix_web::HttpResponse;
use serde::Serialize;
use uuid::Uuid;

use crate::http::errors::ApiError;

/// `{"status": "..."}` bodies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusResponse {
    pub status: &'static str,
}

/// The id of a `/me/…/{id}` path: anything not a UUID names nothing of the
/// caller's, so it is a 404 like an id of someone else's.
fn own_id(path: String) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&path).map_err(|_| ApiError::NotFound)
}

/// `204` when the caller's own item was removed, else `404`.
fn removed(done: bool) -> Result<HttpResponse, ApiError> {
    if done {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `200` with a body no cache may keep (a secret, codes, a data export).
fn private(body: impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `200` with a token pair or the step that leads to one: `no-store`, and
/// `Pragma: no-cache` for HTTP/1.0 caches (RFC 6749 §5.1).
fn tokens(body: impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}
