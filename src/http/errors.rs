//! Every error the API returns, as RFC 9457 problem details with a stable
//! `code`, mapped from [`AuthError`] and HTTP-level failures in one place.
//! 5xx bodies are opaque; their cause is logged once with the request id.

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::request_id;
use crate::domain::FieldError;
use crate::services::consents::RequiredVersions;
use crate::services::{AuthError, CodeError, LoginError, RefreshError, ResetError};

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://docs.suma.finance/errors/";

/// The problem body (RFC 9457) with this API's extensions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable error code.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub request_id: String,
    /// Field errors of a 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// `consent_required`: the single-use token for `POST /consents/accept`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_token: Option<String>,
    /// `consent_required`: the versions to accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<RequiredVersions>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("no bearer token")]
    MissingCredentials,
    #[error("not ready: {0:?}")]
    NotReady(Vec<String>),
    /// Any other HTTP-level refusal, by status.
    #[error("http error {0}")]
    Http(StatusCode),
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            // A refresh token is a credential: 401, alike for every refusal.
            RefreshError::Invalid | RefreshError::Reused | RefreshError::Expired => {
                ApiError::Auth(AuthError::Unauthorized("the refresh token is invalid"))
            }
            RefreshError::Other(e) => ApiError::Auth(e),
        }
    }
}

/// The per-use-case errors answer as the [`AuthError`] each refusal
/// stands for (same status, code and headers).
macro_rules! answered_as_auth_error {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                ApiError::Auth(AuthError::from(e))
            }
        }
    )*};
}

answered_as_auth_error!(LoginError, ResetError, CodeError);

impl ApiError {
    /// (status, code, title, detail)
    fn parts(&self) -> (StatusCode, &'static str, &'static str, Option<String>) {
        use AuthError as A;
        match self {
            ApiError::Auth(a) => match a {
                A::Validation(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "Validation failed",
                    Some("one or more fields are invalid".into()),
                ),
                A::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "Invalid credentials",
                    Some("the email or password is incorrect".into()),
                ),
                A::EmailNotVerified => (
                    StatusCode::FORBIDDEN,
                    "email_not_verified",
                    "Email not verified",
                    Some("confirm your email address first; a new link can be requested".into()),
                ),
                A::AccountDisabled => (
                    StatusCode::FORBIDDEN,
                    "account_disabled",
                    "Account disabled",
                    None,
                ),
                A::AccountLocked { .. } => (
                    StatusCode::LOCKED,
                    "account_locked",
                    "Account locked",
                    Some("too many failed sign-in attempts; try again later".into()),
                ),
                A::InvalidToken => (
                    StatusCode::BAD_REQUEST,
                    "invalid_token",
                    "Invalid token",
                    Some("the token is unknown, already used or expired".into()),
                ),
                A::InvalidMfaToken => (StatusCode::UNAUTHORIZED, "invalid_mfa_token", "Invalid MFA token", Some("the login challenge is unknown, spent, expired or has had too many wrong codes; sign in again".into())),
                A::InvalidCode => (StatusCode::UNAUTHORIZED, "invalid_code", "Invalid code", Some("the code is wrong or expired".into())),
                A::Unauthorized(why) => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "Unauthorized",
                    Some((*why).to_string()),
                ),
                A::ConsentRequired(_) => (
                    StatusCode::FORBIDDEN,
                    "consent_required",
                    "Consent required",
                    Some("accept the current terms of service and privacy policy: POST /api/v1/auth/consents/accept with consent_token and the versions in required".into()),
                ),
                A::InvalidConsentToken => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_consent_token",
                    "Invalid consent token",
                    Some("the consent token is unknown, already used or expired; sign in again".into()),
                ),
                A::WithdrawalRequiresErasure(kind) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "withdrawal_requires_erasure",
                    "Consent cannot be withdrawn",
                    Some(format!("{kind} consent is the basis of the account and ends only with it: delete the account instead (DELETE /api/v1/auth/me)")),
                ),
                A::RateLimited { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Too many requests",
                    Some("slow down and retry after the indicated time".into()),
                ),
                A::Busy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_busy",
                    "Service busy",
                    Some("the server is at capacity; retry shortly".into()),
                ),
                A::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "Service unavailable",
                    None,
                ),
                A::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal error",
                    None,
                ),
            },
            ApiError::MalformedJson(why) => (
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "Malformed JSON",
                Some(why.clone()),
            ),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                Some(format!("request bodies are limited to {limit} bytes")),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                Some("send Content-Type: application/json".into()),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found", None),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                None,
            ),
            ApiError::MissingCredentials => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                Some("send Authorization: Bearer <access token>".into()),
            ),
            ApiError::NotReady(down) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "Not ready",
                Some(format!("unavailable: {}", down.join(", "))),
            ),
            ApiError::Http(status) => (
                *status,
                http_code(*status),
                status.canonical_reason().unwrap_or("Error"),
                None,
            ),
        }
    }

    /// Builds the problem response with a given request id.
    pub fn to_response(&self, request_id: &str) -> HttpResponse {
        let (status, code, title, detail) = self.parts();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        }
        let errors = match self {
            ApiError::Auth(AuthError::Validation(errors)) => Some(errors.clone()),
            _ => None,
        };
        let (consent_token, required) = match self {
            ApiError::Auth(AuthError::ConsentRequired(c)) => {
                (Some(c.consent_token.clone()), Some(c.required.clone()))
            }
            _ => (None, None),
        };
        let problem = Problem {
            type_: format!("{TYPE_BASE}{code}"),
            title: title.to_string(),
            status: status.as_u16(),
            code: code.to_string(),
            detail,
            request_id: request_id.to_string(),
            errors,
            consent_token,
            required,
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            ApiError::Auth(AuthError::AccountLocked { retry_after })
            | ApiError::Auth(AuthError::Busy { retry_after }) => {
                res.insert_header((header::RETRY_AFTER, secs(*retry_after)));
            }
            ApiError::Auth(AuthError::Unavailable(_)) | ApiError::NotReady(_) => {
                res.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::Auth(AuthError::RateLimited {
                limit,
                remaining,
                reset,
                retry_after,
            }) => {
                res.insert_header((header::RETRY_AFTER, secs(*retry_after)));
                res.insert_header(("RateLimit-Limit", limit.to_string()));
                res.insert_header(("RateLimit-Remaining", remaining.to_string()));
                res.insert_header(("RateLimit-Reset", secs(*reset)));
            }
            ApiError::Auth(AuthError::Unauthorized(_)) => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                ));
            }
            ApiError::MissingCredentials => {
                res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    res.insert_header((header::ALLOW, v));
                }
            }
            _ => {}
        }
        // Serializing this struct cannot fail; fall back to an empty object.
        res.body(serde_json::to_string(&problem).unwrap_or_else(|_| "{}".into()))
    }
}

/// Whole seconds, rounded up, at least 1.
fn secs(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1).to_string()
}

/// A stable code for an HTTP status without a more specific cause.
pub fn http_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        500 => "internal_error",
        503 => "service_unavailable",
        _ => "http_error",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response(&request_id::current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::consents::ConsentRequired;

    /// Status, every header and the body of a problem answer.
    async fn answer(e: ApiError) -> (StatusCode, Vec<(String, String)>, String) {
        let res = e.to_response("req-1");
        let status = res.status();
        let mut headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
            .collect();
        headers.sort();
        let body = actix_web::body::to_bytes(res.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        (status, headers, body)
    }

    fn consent() -> ConsentRequired {
        ConsentRequired {
            consent_token: "t".into(),
            required: RequiredVersions {
                terms: "2".into(),
                privacy: "3".into(),
            },
        }
    }

    #[actix_rt::test]
    async fn use_case_errors_answer_as_the_auth_error_they_stand_for() {
        let wait = Duration::from_millis(1500);
        let field = || vec![FieldError::new("new_password", "too_short", "longer")];
        let pairs: Vec<(ApiError, ApiError)> = vec![
            (
                LoginError::InvalidCredentials.into(),
                AuthError::InvalidCredentials.into(),
            ),
            (
                LoginError::EmailNotVerified.into(),
                AuthError::EmailNotVerified.into(),
            ),
            (
                LoginError::AccountDisabled.into(),
                AuthError::AccountDisabled.into(),
            ),
            (
                LoginError::Locked { retry_after: wait }.into(),
                AuthError::AccountLocked { retry_after: wait }.into(),
            ),
            (
                LoginError::ConsentRequired(consent()).into(),
                AuthError::ConsentRequired(consent()).into(),
            ),
            (
                LoginError::Other(AuthError::Busy { retry_after: wait }).into(),
                AuthError::Busy { retry_after: wait }.into(),
            ),
            (
                ResetError::InvalidLink.into(),
                AuthError::InvalidToken.into(),
            ),
            (
                ResetError::PasswordRefused(field()).into(),
                AuthError::Validation(field()).into(),
            ),
            (
                CodeError::InvalidChallenge.into(),
                AuthError::InvalidMfaToken.into(),
            ),
            (CodeError::WrongCode.into(), AuthError::InvalidCode.into()),
            (
                CodeError::Locked { retry_after: wait }.into(),
                AuthError::AccountLocked { retry_after: wait }.into(),
            ),
            (
                RefreshError::Reused.into(),
                AuthError::Unauthorized("the refresh token is invalid").into(),
            ),
        ];
        for (typed, plain) in pairs {
            let label = format!("{typed:?}");
            assert_eq!(answer(typed).await, answer(plain).await, "{label}");
        }
    }
}
