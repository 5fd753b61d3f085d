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
    post "/api/v1/auth/otp/send" => auth::otp_send,
    post "/api/v1/auth/otp/verify" => auth::otp_verify,
    post "/api/v1/auth/refresh" => auth::refresh,
    post "/api/v1/auth/logout" => auth::logout,
    post "/api/v1/auth/logout-all" => auth::logout_all,
    post "/api/v1/auth/password/change" => auth::change_password,
    post "/api/v1/auth/password-reset" => auth::password_reset,
    post "/api/v1/auth/password-reset/confirm" => auth::password_reset_confirm,
    get "/api/v1/auth/me" => me::get_me,
    get "/api/v1/auth/me/sessions" => me::list_sessions,
    delete "/api/v1/auth/me/sessions/{id}" => me::delete_session,
    post "/api/v1/auth/me/2fa/email" => me::enable_email_otp,
    post "/api/v1/auth/me/2fa/totp/setup" => me::totp_setup,
    post "/api/v1/auth/me/2fa/totp/enable" => me::totp_enable,
    post "/api/v1/auth/me/2fa/disable" => me::disable_two_factor,
}

/// The methods mounted on `path` (for 405 `Allow`), matching `{param}` segments.
pub fn methods_for(path: &str) -> Vec<&'static str> {
    MOUNTED
        .iter()
        .filter(|(_, pattern)| actix_web::dev::ResourceDef::new(*pattern).is_match(path))
        .map(|(method, _)| *method)
        .collect()
}
