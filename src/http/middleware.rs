//! The middleware: [`observe`], which every request passes (request id, a
//! tracing span, problem+json for every error including the framework's own
//! 404/405/413, security headers, the endpoint metrics), and [`route_guard`],
//! which wraps each declared route after routing (the matched route, its
//! rate limit and the request deadline).

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use tracing::Instrument;

use super::errors::{ApiError, PROBLEM_JSON};
use super::request_id;
use crate::security::RateRoute;
use crate::services::Services;

/// What the router knows of the route a request matched: its pattern (the
/// `endpoint` of metrics and logs) and its rate class. Every per-route
/// decision is taken on this, after routing — never on the raw path, which
/// another spelling (`logi%6E`) would slip past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedRoute {
    pub pattern: &'static str,
    pub rate: Option<RateRoute>,
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = request_id::accept(
        req.headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let method = req.method().as_str().to_string();
    let metrics = req
        .app_data::<web::Data<Services>>()
        .map(|s| s.edge.metrics().clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        endpoint = tracing::field::Empty,
        status = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let res = request_id::scope(id.clone(), next.call(req).instrument(span.clone())).await?;
    let mut res = res.map_into_boxed_body();
    // The route the router matched (recorded by `route_guard`), not the raw path.
    let endpoint = res
        .request()
        .extensions()
        .get::<MatchedRoute>()
        .map_or("unmatched", |m| m.pattern);

    // Framework-made errors (unknown route, 405, oversized body…) become
    // problem+json too, with the same request id. The HTML pages answer
    // their errors as pages.
    let status = res.status();
    let content_type = res.headers().get(header::CONTENT_TYPE);
    let is_problem =
        content_type.is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let is_page = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem && !is_page {
        let allow = res.headers().get(header::ALLOW).cloned();
        let error = match (status.as_u16(), allow) {
            (404, _) => ApiError::NotFound,
            (405, Some(allow)) => ApiError::MethodNotAllowed {
                allow: allow.to_str().unwrap_or_default().to_string(),
            },
            (413, _) => ApiError::PayloadTooLarge(super::MAX_BODY_BYTES),
            (415, _) => ApiError::UnsupportedMediaType,
            _ => ApiError::Http(status),
        };
        let (http_req, _) = res.into_parts();
        res = ServiceResponse::new(http_req, error.to_response(&id));
    }

    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static(request_id::HEADER), v);
    }
    // A response that sets one of these (a page's own CSP) keeps it.
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }

    let status = res.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics.endpoint(endpoint, &method, status, elapsed);
    }
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request done"
            );
        }
    });
    Ok(res)
}

/// Headers for an API that serves JSON only and is never framed.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
];

/// The longest a declared route may take before it answers 503 with
/// `Retry-After`. Every dependency has a bound of its own (a pooled
/// connection 1 s, a Redis call 1–2 s, a user actor 5 s, the hashing queue
/// its depth), but a database that accepts connections and then stops
/// answering (a frozen host, a black-holed network) would hold a request on
/// a statement already sent for ever; this bounds it. Above the actors' 5 s,
/// so that their own answer comes first; below the 10 s a client commonly
/// waits.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(8);

/// Wraps every declared route, so it runs after routing whatever spelling of
/// the path reached it: records the [`MatchedRoute`] (for the metrics and
/// logs of [`observe`]), applies the route's per-IP rate limit (refused
/// requests get 429 problem+json with `Retry-After` and `RateLimit-*`
/// headers) and holds the request to [`REQUEST_DEADLINE`].
pub async fn route_guard(
    matched: MatchedRoute,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    req.extensions_mut().insert(matched);
    tracing::Span::current().record("endpoint", matched.pattern);
    // Past the deadline the request's future is dropped (a statement already
    // sent completes or rolls back on the server by itself; a refresh's
    // rotation and a sign-in's opening check the deadline before they
    // commit, see `clock::commit_by`).
    let http_req = req.request().clone();
    let ends = std::time::Instant::now() + REQUEST_DEADLINE;
    let serving = crate::clock::serving_until(ends, guarded(matched, req, next));
    match tokio::time::timeout(REQUEST_DEADLINE, serving).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(
                deadline_ms = REQUEST_DEADLINE.as_millis() as u64,
                "request abandoned at its deadline"
            );
            let error = ApiError::Auth(crate::services::AuthError::Unavailable(
                "the request did not finish within its deadline".into(),
            ));
            Ok(ServiceResponse::new(
                http_req,
                error.to_response(&request_id::current()),
            ))
        }
    }
}

/// The rate limit, then the handler.
async fn guarded(
    matched: MatchedRoute,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let (Some(route), Some(services)) =
        (matched.rate, req.app_data::<web::Data<Services>>().cloned())
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let client = super::client::context(req.request());
    let verdict = services.edge.rate_check(route, client.ip).await;
    if !verdict.allowed {
        let error = ApiError::Auth(crate::services::AuthError::RateLimited {
            limit: verdict.limit,
            remaining: 0,
            reset: verdict.reset,
            retry_after: verdict.retry_after,
        });
        let (http_req, _) = req.into_parts();
        return Ok(ServiceResponse::new(
            http_req,
            error.to_response(&request_id::current()),
        ));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", verdict.limit.to_string()),
        ("ratelimit-remaining", verdict.remaining.to_string()),
        (
            "ratelimit-reset",
            verdict.reset.as_secs().max(1).to_string(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    Ok(res)
}
