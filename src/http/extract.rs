//! Request extraction: the JSON body rules (64 KiB, `application/json`,
//! errors as problems) and the bearer-token principal.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::{web, FromRequest, HttpRequest};

use super::errors::ApiError;
use crate::domain::FieldError;
use crate::services::me::{authenticate, Principal};
use crate::services::{AuthError, Services};

/// JSON bodies: at most [`super::MAX_BODY_BYTES`], `application/json` only.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(super::MAX_BODY_BYTES)
        .content_type_required(true)
        .content_type(|mime| mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        .error_handler(|err, _req| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge(super::MAX_BODY_BYTES)
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => match e.classify() {
            serde_json::error::Category::Data => {
                ApiError::Auth(AuthError::Validation(vec![data_error(&e)]))
            }
            _ => ApiError::MalformedJson(format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )),
        },
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            ApiError::PayloadTooLarge(super::MAX_BODY_BYTES)
        }
        _ => ApiError::Http(actix_web::http::StatusCode::BAD_REQUEST),
    }
}

/// Describes a well-formed body of the wrong shape without echoing values
/// (which could be a password sent as the wrong type).
fn data_error(e: &serde_json::Error) -> FieldError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("body");
        return FieldError::new(field, "required", "this field is required");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant") {
        let _ = rest;
        return FieldError::new(
            "body",
            "invalid_value",
            "a field has a value that is not allowed",
        );
    }
    let expected = msg
        .split(", expected ")
        .nth(1)
        .map(|s| s.split(" at line ").next().unwrap_or(s).to_string());
    FieldError::new(
        "body",
        "invalid_type",
        match expected {
            Some(exp) => format!("a field has the wrong type (expected {exp})"),
            None => "a field has the wrong type".to_string(),
        },
    )
}

/// A request made with a valid access token of a live session.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let services = req.app_data::<web::Data<Services>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let services = services
                .ok_or_else(|| ApiError::from(AuthError::Internal("no services".into())))?;
            let token = token.ok_or(ApiError::MissingCredentials)?;
            let principal = authenticate(&services, &token)
                .await
                .map_err(ApiError::from)?;
            tracing::Span::current().record("user_id", tracing::field::display(principal.user_id));
            Ok(Authenticated(principal))
        })
    }
}

/// The token of an `Authorization: Bearer …` header. Tokens in query strings
/// are never looked at.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn type_errors_do_not_echo_values() {
        let e = serde_json::from_str::<std::collections::HashMap<String, String>>(
            r#"{"password": 123456789}"#,
        )
        .unwrap_err();
        let fe = data_error(&e);
        assert_eq!(fe.code, "invalid_type");
        assert!(!fe.message.contains("123456789"));
    }

    #[test]
    fn missing_fields_are_named() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            email: String,
        }
        let e = serde_json::from_str::<T>("{}").unwrap_err();
        let fe = data_error(&e);
        assert_eq!((fe.field.as_str(), fe.code.as_str()), ("email", "required"));
    }
}
