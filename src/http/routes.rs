//! The route table: every route the server mounts, in one list. The same list
//! feeds the router and [`MOUNTED`], which tests compare with the OpenAPI
//! document, so an undocumented route cannot be mounted unnoticed.

use actix_web::web;

use super::handlers::{auth, me, ops};

macro_rules! routes {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// Mounts every route.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }

        /// (method, path) of every mounted route, paths in actix syntax.
        pub const MOUNTED: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];
    };
}

routes! {
    get "/health" => ops::health,
    get "/ready" => ops::ready,
    get "/.well-known/jwks.json" => ops::jwks,
    get "/openapi.json" => ops::openapi,
    post "/api/v1/auth/register" => auth::register,
    post "/api/v1/auth/verify-email" => auth::verify_email,
    post "/api/v1/auth/verify-email/resend" => auth::resend_verification,
    post "/api/v1/auth/login" => auth::login,
    get "/api/v1/auth/me" => me::get_me,
}

/// The methods mounted on `path` (for 405 `Allow`), matching `{param}` segments.
pub fn methods_for(path: &str) -> Vec<&'static str> {
    MOUNTED
        .iter()
        .filter(|(_, pattern)| actix_web::dev::ResourceDef::new(*pattern).is_match(path))
        .map(|(method, _)| *method)
        .collect()
}
