//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers;

#[derive(OpenApi)]
#[openapi(
    info(title = "suma-auth", description = "User registration and authentication service of SUMA Finance"),
    paths(
        handlers::ops::health,
        handlers::ops::ready,
        handlers::ops::jwks,
        serve,
        handlers::auth::register,
        handlers::auth::verify_email,
        handlers::auth::resend_verification,
        handlers::auth::login,
        handlers::auth::otp_send,
        handlers::auth::otp_verify,
        handlers::auth::refresh,
        handlers::auth::logout,
        handlers::auth::logout_all,
        handlers::auth::change_password,
        handlers::auth::password_reset,
        handlers::auth::password_reset_confirm,
        handlers::me::get_me,
        handlers::me::list_sessions,
        handlers::me::list_audit,
        handlers::me::delete_session,
        handlers::devices::list_devices,
        handlers::devices::delete_device,
        handlers::me::enable_email_otp,
        handlers::me::email_step_up_code,
        handlers::me::totp_setup,
        handlers::me::totp_enable,
        handlers::me::regenerate_recovery_codes,
        handlers::me::disable_two_factor,
        handlers::privacy::accept_consents,
        handlers::privacy::get_consents,
        handlers::privacy::put_consents,
        handlers::privacy::export,
        handlers::privacy::delete_me,
    ),
    components(schemas(super::errors::Problem, crate::domain::FieldError, crate::services::second_factor::MfaRequired, crate::services::consents::RequiredVersions)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Identity and credentials"),
        (name = "me", description = "The signed-in user"),
        (name = "ops", description = "Operations"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document, with this build's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// `GET /openapi.json`: the document, served from where it is built.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "This API's OpenAPI 3.1 document")))]
pub async fn serve() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "public, max-age=300",
        ))
        .json(document())
}
