//! The route table: every route the server mounts, in two lists. The same
//! lists feed the router and [`MOUNTED`] (the JSON API, which tests compare
//! with the OpenAPI document, so an undocumented route cannot be mounted
//! unnoticed) and [`PAGES`] (the HTML pages that mailed links open, which are
//! not part of the API contract and not in `/openapi.json`).

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{guard, web};

use super::handlers::{auth, devices, me, ops, privacy};
use super::{middleware, openapi, pages};
use crate::security::RateRoute;

pub use super::middleware::MatchedRoute;

/// One declaration per route: method, path, optional `[rate class]`, handler.
/// It mounts the route (with the guard that records [`MatchedRoute`] and
/// applies the rate limit) and lists it for the OpenAPI and hostile-input tests.
macro_rules! rate_of {
    () => {
        None
    };
    ($rate:ident) => {
        Some(RateRoute::$rate)
    };
}

macro_rules! routes {
    ($(#[$doc:meta])* $configure:ident, $list:ident, $rates:ident {
        $( $method:ident $path:literal $([$rate:ident])? => $handler:path ),* $(,)?
    }) => {
        fn $configure(cfg: &mut web::ServiceConfig) {
            $(
                let matched = MatchedRoute {
                    pattern: $path,
                    rate: rate_of!($($rate)?),
                };
                cfg.service(
                    web::resource($path)
                        .guard(guard::Method(method(stringify!($method))))
                        .wrap(from_fn(move |req, next| middleware::route_guard(matched, req, next)))
                        .route(web::$method().to($handler)),
                );
            )*
        }

        $(#[$doc])*
        pub const $list: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];

        /// The rate class of each route of the list, in the same order.
        pub const $rates: &[Option<RateRoute>] = &[ $( rate_of!($($rate)?) ),* ];
    };
}

/// The method a declaration names (the declarations use actix's lowercase helpers).
fn method(name: &str) -> Method {
    match name {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        "patch" => Method::PATCH,
        "delete" => Method::DELETE,
        _ => Method::OPTIONS,
    }
}

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_api(cfg);
    configure_pages(cfg);
}

routes! {
    /// (method, path) of every mounted API route, paths in actix syntax.
    configure_api, MOUNTED, MOUNTED_RATES {
        get "/health" => ops::health,
        get "/ready" => ops::ready,
        get "/.well-known/jwks.json" => ops::jwks,
        get "/openapi.json" => openapi::serve,
        post "/api/v1/auth/register" [Register] => auth::register,
        post "/api/v1/auth/verify-email" => auth::verify_email,
        post "/api/v1/auth/verify-email/resend" [ResendVerification] => auth::resend_verification,
        post "/api/v1/auth/login" [Login] => auth::login,
        post "/api/v1/auth/otp/send" [Otp] => auth::otp_send,
        post "/api/v1/auth/otp/verify" [Otp] => auth::otp_verify,
        post "/api/v1/auth/refresh" => auth::refresh,
        post "/api/v1/auth/logout" => auth::logout,
        post "/api/v1/auth/logout-all" => auth::logout_all,
        post "/api/v1/auth/password/change" => auth::change_password,
        post "/api/v1/auth/password-reset" [PasswordReset] => auth::password_reset,
        post "/api/v1/auth/password-reset/confirm" [PasswordReset] => auth::password_reset_confirm,
        get "/api/v1/auth/me" => me::get_me,
        get "/api/v1/auth/me/sessions" => me::list_sessions,
        get "/api/v1/auth/me/audit" => me::list_audit,
        delete "/api/v1/auth/me/sessions/{id}" => me::delete_session,
        get "/api/v1/auth/me/devices" => devices::list_devices,
        delete "/api/v1/auth/me/devices/{id}" => devices::delete_device,
        post "/api/v1/auth/me/2fa/email" => me::enable_email_otp,
        post "/api/v1/auth/me/2fa/email/code" [Otp] => me::email_step_up_code,
        post "/api/v1/auth/me/2fa/totp/setup" => me::totp_setup,
        post "/api/v1/auth/me/2fa/totp/enable" => me::totp_enable,
        post "/api/v1/auth/me/2fa/recovery-codes" => me::regenerate_recovery_codes,
        post "/api/v1/auth/me/2fa/disable" => me::disable_two_factor,
        post "/api/v1/auth/consents/accept" [Otp] => privacy::accept_consents,
        get "/api/v1/auth/me/consents" => privacy::get_consents,
        put "/api/v1/auth/me/consents" => privacy::put_consents,
        get "/api/v1/auth/me/export" [Export] => privacy::export,
        delete "/api/v1/auth/me" => privacy::delete_me,
    }
}

routes! {
    /// (method, path) of every HTML page and form target.
    configure_pages, PAGES, PAGE_RATES {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_method_is_known_and_every_list_has_its_rates() {
        for (m, _) in MOUNTED.iter().chain(PAGES) {
            assert_ne!(method(m), Method::OPTIONS, "{m}");
        }
        assert_eq!(MOUNTED.len(), MOUNTED_RATES.len());
        assert_eq!(PAGES.len(), PAGE_RATES.len());
        let limited: Vec<_> = MOUNTED
            .iter()
            .zip(MOUNTED_RATES)
            .filter_map(|((_, p), r)| r.map(|r| (*p, r.name())))
            .collect();
        assert!(limited.contains(&("/api/v1/auth/login", "login")));
    }
}
