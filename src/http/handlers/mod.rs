//! Route handlers: parse the request, call one service, shape the response.

pub mod auth;
pub mod devices;
pub mod me;
pub mod ops;
pub mod privacy;

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
