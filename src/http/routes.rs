//! The route table: every route the server mounts, in two lists. The same
//! lists feed the router and [`MOUNTED`] (the JSON API, which tests compare
//! with the OpenAPI document, so an undocumented route cannot be mounted
//! unnoticed) and [`PAGES`] (the HTML pages that mailed links open, which are
//! not part of the API contract and not in `/openapi.json`).

use actix_web::web;

use super::handlers::{auth, me, ops};
use super::pages;

macro_rules! routes {
    ($(#[$doc:meta])* $configure:ident, $list:ident {
        $( $method:ident $path:literal => $handler:path ),* $(,)?
    }) => {
        fn $configure(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }

        $(#[$doc])*
        pub const $list: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];
    };
}

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_api(cfg);
    configure_pages(cfg);
}

routes! {
    /// (method, path) of every mounted API route, paths in actix syntax.
    configure_api, MOUNTED {
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
}

routes! {
    /// (method, path) of every HTML page and form target.
    configure_pages, PAGES {
        get "/verify-email" => pages::verify_form,
        post "/verify-email" => pages::verify,
        get "/reset-password" => pages::reset_form,
        post "/reset-password" => pages::reset,
        post "/reset-password/request" => pages::reset_request,
    }
}

/// The methods mounted on `path` (for 405 `Allow`), matching `{param}` segments.
pub fn methods_for(path: &str) -> Vec<&'static str> {
    MOUNTED
        .iter()
        .chain(PAGES)
        .filter(|(_, pattern)| actix_web::dev::ResourceDef::new(*pattern).is_match(path))
        .map(|(method, _)| *method)
        .collect()
}
