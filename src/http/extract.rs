//! Request extraction: the JSON body rules (64 KiB, `application/json`,
//! errors as problems), the checks every request passes before routing
//! ([`edge_checks`]: header size, control characters in bodies) and the
//! bearer-token principal.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::mime;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;

use super::errors::ApiError;
use crate::domain::FieldError;
use crate::services::me::{authenticate, Principal};
use crate::services::{AuthError, Services};

/// JSON bodies: at most [`super::MAX_BODY_BYTES`], `application/json` only.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(super::MAX_BODY_BYTES)
        .content_type_required(true)
        .content_type(is_json)
        .error_handler(|err, _req| json_error(err).into())
}

fn is_json(mime: mime::Mime) -> bool {
    mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json")
}

/// The most header bytes a request may send (names, values and their
/// separators, as on the wire); more is refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The longest a client may take to send a body (the first 64 KiB of it)
/// once its headers have arrived; a body still incomplete then (a client
/// that declared more than it sends, or trickles it) is answered 408 and its
/// connection closed, instead of holding the request open for ever.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);

/// Checks every request passes before routing, so that no handler and no
/// store ever sees what they refuse (and a HEAD is routed as its GET):
///
/// - request headers over [`MAX_HEADER_BYTES`]: 431;
/// - a body (JSON, or an HTML page's form) not received whole within
///   [`BODY_DEADLINE`]: 408;
/// - a JSON body that is not an object (an array, a string, `null`): 422
///   `invalid_type`. Every body of this API is an object, and serde would
///   otherwise read an array as the fields of one, in order;
/// - a JSON body with a control character (Unicode `Cc`: NUL, the C0 and C1
///   controls, DEL) in any string, key or value, at any depth: 422
///   `invalid_characters`, naming the field. PostgreSQL refuses NUL in text,
///   and no field of this API is free text that could need a control.
///
/// A body that is too large or not well-formed is left for the extractor,
/// which answers it as before (413, 400). Form posts are read under the same
/// deadline but checked no further: the HTML pages answer bad input with a
/// page.
pub async fn edge_checks(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.method() == actix_web::http::Method::HEAD {
        // Every GET route answers HEAD too (RFC 9110 §9.3.2): routed as the
        // GET, whose body the HTTP layer then leaves out (it decided that
        // from the method the request arrived with).
        req.head_mut().method = actix_web::http::Method::GET;
    }
    if header_bytes(req.headers()) > MAX_HEADER_BYTES {
        return Ok(refuse(
            req,
            ApiError::Http(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        ));
    }
    let json = req.mime_type().ok().flatten().is_some_and(is_json);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let no_body = !chunked && declared.unwrap_or(0) == 0;
    if declared.is_some_and(|n| n > super::MAX_BODY_BYTES) || (!json && no_body) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    let mut complete = true;
    let mut failed = None;
    let read = async {
        while let Some(chunk) = payload.next().await {
            match chunk {
                Ok(chunk) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > super::MAX_BODY_BYTES {
                        complete = false;
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    };
    if tokio::time::timeout(BODY_DEADLINE, read).await.is_err() {
        let mut res = refuse(req, ApiError::Http(StatusCode::REQUEST_TIMEOUT));
        // The rest of the body is never read: the connection cannot be reused.
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(res);
    }
    if let Some(e) = failed {
        // Handed on as it came: the extractor reports it.
        let head = futures_util::stream::iter([Ok(body.freeze()), Err(e)]);
        req.set_payload(Payload::from(Box::pin(head.chain(payload)) as BodyStream));
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let body = body.freeze();
    if complete && !json {
        req.set_payload(Payload::from(body));
    } else if complete {
        let parsed = serde_json::from_slice::<serde_json::Value>(&body).ok();
        if parsed.as_ref().is_some_and(|v| !v.is_object()) {
            return Ok(refuse(
                req,
                ApiError::Auth(AuthError::Validation(vec![FieldError::new(
                    "body",
                    "invalid_type",
                    "the body must be a JSON object",
                )])),
            ));
        }
        if let Some(field) = parsed.and_then(|v| control_in_json(&v, "")) {
            return Ok(refuse(
                req,
                ApiError::Auth(AuthError::Validation(vec![FieldError::new(
                    &field,
                    "invalid_characters",
                    "control characters (such as NUL) are not allowed",
                )])),
            ));
        }
        req.set_payload(Payload::from(body));
    } else {
        let head = futures_util::stream::once(async move { Ok::<Bytes, PayloadError>(body) });
        req.set_payload(Payload::from(Box::pin(head.chain(payload)) as BodyStream));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// A request body as actix streams it.
type BodyStream = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>>;

fn refuse(req: ServiceRequest, error: ApiError) -> ServiceResponse<BoxBody> {
    let (http_req, _) = req.into_parts();
    ServiceResponse::new(http_req, actix_web::ResponseError::error_response(&error))
}

/// Header bytes as sent: `name: value\r\n` for each.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The path (`consents.terms`, `codes[2]`) of the first string or key with a
/// control character; a key that has one is shown with U+FFFD in its place.
fn control_in_json(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        let key: String = key
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        if path.is_empty() {
            key
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(s) if has_control(s) => Some(if path.is_empty() {
            "body".into()
        } else {
            path.into()
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            control_in_json(
                v,
                &format!("{}[{i}]", if path.is_empty() { "body" } else { path }),
            )
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let field = join(k);
            if has_control(k) {
                Some(field)
            } else {
                control_in_json(v, &field)
            }
        }),
        _ => None,
    }
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
            let principal = authenticate(&services.sessions, &token)
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

/// An optional JSON body. No body at all is `None`; a body that is sent must
/// pass the JSON body rules (400, 413, 415), as for `web::Json`. actix's own
/// `Option<web::Json<T>>` takes a malformed body for an absent one, so a
/// request whose body was meant to change what it does would go ahead without
/// it and answer as if it had been understood.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !has_body(req.headers()) {
            return Box::pin(std::future::ready(Ok(OptionalJson(None))));
        }
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move { Ok(OptionalJson(Some(json.await?.into_inner()))) })
    }
}

/// Whether a request sends a body: a chunked one, or a `Content-Length`
/// other than 0.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(length) => length.to_str().map_or(true, |n| n.trim() != "0"),
        None => false,
    }
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
    fn control_characters_are_found_with_their_path() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"email":"a@b.co","consents":{"terms":true,"version":"1\u0007"}}"#,
        )
        .unwrap();
        assert_eq!(control_in_json(&v, "").as_deref(), Some("consents.version"));
        let v: serde_json::Value = serde_json::from_str(r#"{"codes":["1","2\u0000"]}"#).unwrap();
        assert_eq!(control_in_json(&v, "").as_deref(), Some("codes[1]"));
        let v: serde_json::Value = serde_json::from_str(r#"["\u007f"]"#).unwrap();
        assert_eq!(control_in_json(&v, "").as_deref(), Some("body[0]"));
        let v: serde_json::Value = serde_json::from_str(r#"{"a\u0000":1}"#).unwrap();
        assert_eq!(control_in_json(&v, "").as_deref(), Some("a\u{fffd}"));
        // Format characters (a right-to-left mark) are not controls.
        let v: serde_json::Value = serde_json::from_str(r#"{"e":"\u202ex é"}"#).unwrap();
        assert_eq!(control_in_json(&v, ""), None);
    }

    #[test]
    fn header_bytes_count_names_values_and_separators() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, header::HeaderValue::from_static("example"));
        assert_eq!(header_bytes(&headers), "host: example\r\n".len());
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
