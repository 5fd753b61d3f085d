//! The HTTP edge: routes, handlers, extraction, errors and the middleware.
//! Handlers parse and shape; the work happens in `services`.

pub mod client;
pub mod errors;
pub mod extract;
pub mod handlers;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod probe;
pub mod request_id;
pub mod routes;

use actix_web::{web, HttpRequest};

use errors::ApiError;

/// The largest request body accepted (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Unknown routes: 404, or 405 with `Allow` when the path exists with other methods.
pub async fn fallback(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    let methods = routes::methods_for(req.path());
    Err(if methods.is_empty() {
        ApiError::NotFound
    } else {
        ApiError::MethodNotAllowed {
            allow: methods
                .iter()
                .flat_map(|m| match *m {
                    "get" => vec!["GET", "HEAD"],
                    m => vec![m],
                })
                .map(|m| m.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(", "),
        }
    })
}

/// Configures the whole application on an `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}
