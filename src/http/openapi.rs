//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::errors::PROBLEM_JSON;
use super::{handlers, routes};

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
    modifiers(&BearerAuth, &ErrorAnswers),
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

/// The error answers, written once for the whole document rather than on
/// each handler, so that a new route cannot leave them out:
/// - every error is `application/problem+json` (handlers name the body,
///   `Problem`, and this names its media type);
/// - the answers given before a handler runs are listed on every route they
///   can come from: 400, 408, 413, 415 and 422 (not an object, or a control
///   character) for a JSON body, 401 for a bearer token, 429 for a route
///   the route table gives a rate class;
/// - `default` says that any other error (a 503 while a dependency is down)
///   has the same shape.
struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let methods = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, op) in methods {
                if let Some(op) = op.as_mut() {
                    let rated = routes::MOUNTED
                        .iter()
                        .zip(routes::MOUNTED_RATES)
                        .any(|((m, p), rate)| *m == method && p == path && rate.is_some());
                    error_answers(op, rated);
                }
            }
        }
    }
}

fn error_answers(op: &mut Operation, rated: bool) {
    let answers = &mut op.responses.responses;
    for (status, answer) in answers.iter_mut() {
        let error = status == "default" || status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(answer)) = (error, answer) {
            if let Some(content) = answer.content.shift_remove("application/json") {
                answer.content.insert(PROBLEM_JSON.to_string(), content);
            }
        }
    }
    let mut add = |status: &str, description: &str| {
        answers
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem(description)));
    };
    if op.request_body.is_some() {
        add("400", "`malformed_json`: the body is not well-formed JSON");
        add(
            "408",
            &format!(
                "`request_timeout`: the body did not arrive whole within {} seconds",
                super::extract::BODY_DEADLINE.as_secs()
            ),
        );
        add(
            "413",
            &format!(
                "`payload_too_large`: the body is larger than {} bytes",
                super::MAX_BODY_BYTES
            ),
        );
        add(
            "415",
            "`unsupported_media_type`: a body sent without `Content-Type: application/json`",
        );
        add(
            "422",
            "`validation_failed`: a body that is not a JSON object, or with a control character in a string",
        );
    }
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            "401",
            "Missing, invalid or expired access token, or an ended session",
        );
    }
    if rated {
        add("429", "Rate limited: retry after `Retry-After` seconds");
    }
    add(
        "default",
        "Any other error, in the same shape (e.g. 503 while a dependency is unavailable)",
    );
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem")))),
        )
        .build()
}

/// The document, with this build's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// `GET /openapi.json`: the document, served from where it is built.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    responses((status = 200, description = "This API's OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "public, max-age=300",
        ))
        .json(document())
}

#[cfg(test)]
mod tests {
    use crate::domain::password::{MAX_CHARS, MIN_CHARS};

    /// The lengths written in the annotations are the policy's own.
    #[test]
    fn new_passwords_are_documented_with_the_policys_lengths() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (schema, field) in [
            ("RegisterRequest", "password"),
            ("ChangePasswordRequest", "new_password"),
            ("ResetConfirmRequest", "new_password"),
        ] {
            let property = &schemas[schema]["properties"][field];
            assert_eq!(property["minLength"], MIN_CHARS, "{schema}.{field}");
            assert_eq!(property["maxLength"], MAX_CHARS, "{schema}.{field}");
        }
    }
}
