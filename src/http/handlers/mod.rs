//! Route handlers: parse the request, call one service, shape the response.

pub mod auth;
pub mod devices;
pub mod me;
pub mod ops;
pub mod privacy;

use serde::Serialize;

/// `{"status": "..."}` bodies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusResponse {
    pub status: &'static str,
}
