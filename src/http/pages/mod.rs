//! The pages that mailed links open: `GET /verify-email?token=` (a confirm
//! button) and `GET /reset-password?token=` (a new-password form), plus the
//! request form for a reset link that `GET /reset-password` shows without a
//! token. Plain HTML forms that POST back here; the handlers call the same
//! services as the JSON API and answer with a result page. No JavaScript, no
//! third-party assets, one inline stylesheet allowed by its hash.
//!
//! Opening a link changes nothing (mail scanners fetch links): only the POST
//! of the form spends a token. The POSTs are rate limited in the same
//! windows as the API routes they stand for. The token is in the URL, so
//! every page is `no-store` and sends no referrer. These pages are not part
//! of the JSON API and are not in `/openapi.json`.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::tokens;
use crate::domain::password::MIN_CHARS;
use crate::domain::FieldError;
use crate::http::client;
use crate::security::RateRoute;
use crate::services::{password_reset, verification, AuthError, Edge, ResetError, Services};

const LAYOUT: &str = include_str!("templates/layout.html");
/// The only style, inline; the CSP names its hash.
pub const STYLE: &str = include_str!("templates/style.css");
const VERIFY: &str = include_str!("templates/verify.html");
const VERIFIED: &str = include_str!("templates/verified.html");
const BAD_LINK: &str = include_str!("templates/bad_link.html");
const RESET: &str = include_str!("templates/reset.html");
const RESET_DONE: &str = include_str!("templates/reset_done.html");
const RESET_REQUEST: &str = include_str!("templates/reset_request.html");
const RESET_REQUESTED: &str = include_str!("templates/reset_requested.html");
const ERRORS: &str = include_str!("templates/errors.html");
const PROBLEM: &str = include_str!("templates/problem.html");

/// `default-src 'none'`: nothing loads but the hashed stylesheet; forms
/// post only to this origin; never framed.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'"
    )
});

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '{' => out.push_str("&#123;"),
            '}' => out.push_str("&#125;"),
            _ => out.push(c),
        }
    }
    out
}

/// Replaces each `{{name}}` of the template with its value, in one pass: a
/// value is never scanned for placeholders. Values are HTML already
/// (callers escape what they take from a request); unknown names stay.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            values
                .iter()
                .find(|(name, _)| *name == &after[..end])
                .map(|(_, value)| (end, *value))
        });
        match value {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A whole page with the headers every page carries.
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = fill(
        LAYOUT,
        &[("title", &escape(title)), ("style", STYLE), ("body", body)],
    );
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("X-Robots-Tag", "noindex"));
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        res.insert_header((header::CONTENT_SECURITY_POLICY, csp));
    }
    res.body(html)
}

/// The `errors` block of a form: the reasons, announced to screen readers.
fn errors_block(lead: &str, errors: &[FieldError]) -> String {
    let items: String = errors
        .iter()
        .map(|e| format!("<li>{}</li>\n", escape(&e.message)))
        .collect();
    fill(ERRORS, &[("lead", &escape(lead)), ("items", &items)])
}

#[derive(Deserialize, Default)]
pub struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// The token of a page URL; a query that does not parse counts as none.
fn query_token(req: &HttpRequest) -> Option<String> {
    web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .map(|t| t.trim().to_string())
}

const DAMAGED: &str = "This link is incomplete or damaged.";
const COPY_WHOLE: &str =
    "Open the link from the message again, or copy the whole address into your browser.";

/// `GET /verify-email?token=`: the confirm button. Opening it spends nothing.
pub async fn verify_form(req: HttpRequest) -> HttpResponse {
    match query_token(&req) {
        Some(token) if tokens::well_formed(&token) => page(
            StatusCode::OK,
            "Confirm your email address",
            &fill(VERIFY, &[("token", &escape(&token))]),
        ),
        _ => bad_link("Confirm your email address", DAMAGED, COPY_WHOLE),
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
}

/// `POST /verify-email` (the form): spends the token, as `POST
/// /api/v1/auth/verify-email` does, and says what happened.
pub async fn verify(
    req: HttpRequest,
    svc: web::Data<Services>,
    form: web::Form<VerifyForm>,
) -> HttpResponse {
    let client = client::context(&req);
    match verification::verify_email(&svc.credentials, &form.token, client).await {
        Ok(()) => page(StatusCode::OK, "Email address confirmed", VERIFIED),
        Err(AuthError::InvalidToken) => bad_link(
            "Confirm your email address",
            "This link is invalid, already used or expired.",
            "If your address is not confirmed yet, ask the app for a new confirmation message.",
        ),
        Err(e) => failure(e),
    }
}

/// `GET /reset-password?token=`: the new-password form; without a token,
/// the form that asks for a reset link.
pub async fn reset_form(req: HttpRequest) -> HttpResponse {
    match query_token(&req) {
        Some(token) if tokens::well_formed(&token) => reset_page(StatusCode::OK, &token, &[]),
        Some(_) => bad_link("Choose a new password", DAMAGED, COPY_WHOLE),
        None => request_page(
            StatusCode::OK,
            "reset-password/request",
            "Enter the email address of your account: we will mail you a link to choose a new password.",
            "",
            &[],
        ),
    }
}

fn reset_page(status: StatusCode, token: &str, errors: &[FieldError]) -> HttpResponse {
    let (block, described_by, invalid) = if errors.is_empty() {
        (String::new(), "password-help", "")
    } else {
        (
            errors_block("This password cannot be used:", errors),
            "errors password-help",
            " aria-invalid=\"true\"",
        )
    };
    page(
        status,
        "Choose a new password",
        &fill(
            RESET,
            &[
                ("errors", &block),
                ("token", &escape(token)),
                ("min", &MIN_CHARS.to_string()),
                ("described_by", described_by),
                ("invalid", invalid),
            ],
        ),
    )
}

fn request_page(
    status: StatusCode,
    action: &str,
    intro: &str,
    email: &str,
    errors: &[FieldError],
) -> HttpResponse {
    let (block, described_by, invalid) = if errors.is_empty() {
        (String::new(), "", "")
    } else {
        (
            errors_block("Check the address:", errors),
            "errors",
            " aria-invalid=\"true\"",
        )
    };
    let mut body = fill(
        RESET_REQUEST,
        &[
            ("intro", &escape(intro)),
            ("errors", &block),
            ("action", action),
            ("email", &escape(email)),
            ("described_by", described_by),
            ("invalid", invalid),
        ],
    );
    if described_by.is_empty() {
        body = body.replace(" aria-describedby=\"\"", "");
    }
    page(status, "Reset your password", &body)
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: Option<SecretString>,
}

/// `POST /reset-password` (the form): sets the password as `POST
/// /api/v1/auth/password-reset/confirm` does; on a refused password the
/// form comes back with the policy's reasons (422).
pub async fn reset(
    req: HttpRequest,
    svc: web::Data<Services>,
    form: web::Form<ResetForm>,
) -> HttpResponse {
    let client = client::context(&req);
    if let Some(refused) = rate_limited(&svc.edge, &client, RateRoute::PasswordReset).await {
        return refused;
    }
    let form = form.into_inner();
    let password = form
        .new_password
        .unwrap_or_else(|| SecretString::from(String::new()));
    match password_reset::confirm(&svc.credentials, &form.token, &password, &client).await {
        Ok(()) => page(StatusCode::OK, "Password changed", RESET_DONE),
        Err(ResetError::PasswordRefused(errors)) => {
            reset_page(StatusCode::UNPROCESSABLE_ENTITY, form.token.trim(), &errors)
        }
        Err(ResetError::InvalidLink) => request_page(
            StatusCode::BAD_REQUEST,
            "reset-password/request",
            "This link is invalid, already used or expired. Enter your email address to get a new one.",
            "",
            &[],
        ),
        Err(ResetError::Other(e)) => failure(e),
    }
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    email: String,
}

/// `POST /reset-password/request` (the form): mails a reset link as `POST
/// /api/v1/auth/password-reset` does, with the same answer for every address.
pub async fn reset_request(
    req: HttpRequest,
    svc: web::Data<Services>,
    form: web::Form<RequestForm>,
) -> HttpResponse {
    let client = client::context(&req);
    if let Some(refused) = rate_limited(&svc.edge, &client, RateRoute::PasswordReset).await {
        return refused;
    }
    match password_reset::request(&svc.credentials, &form.email, &client).await {
        Ok(()) => page(StatusCode::OK, "Check your mail", RESET_REQUESTED),
        Err(AuthError::Validation(errors)) => request_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request",
            "Enter the email address of your account: we will mail you a link to choose a new password.",
            &form.email,
            &errors,
        ),
        Err(e) => failure(e),
    }
}

fn bad_link(title: &str, why: &str, next: &str) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        title,
        &fill(BAD_LINK, &[("why", &escape(why)), ("next", &escape(next))]),
    )
}

/// The shared per-IP window of the API route this form stands for: a
/// refusal is a page with `Retry-After`.
async fn rate_limited(
    edge: &Edge,
    client: &crate::storage::ClientContext,
    route: RateRoute,
) -> Option<HttpResponse> {
    let verdict = edge.rate_check(route, client.ip).await;
    if verdict.allowed {
        return None;
    }
    let wait = verdict.retry_after.as_secs().max(1);
    let minutes = wait.div_ceil(60);
    let mut res = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        &fill(
            PROBLEM,
            &[(
                "message",
                &escape(&format!(
                    "Too many attempts from your network. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                )),
            )],
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(res)
}

/// Any other failure: a page without details (they are logged).
fn failure(e: AuthError) -> HttpResponse {
    let (status, retry_after, message) = match &e {
        AuthError::RateLimited { retry_after, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            Some(*retry_after),
            "Too many attempts. Try again later.",
        ),
        AuthError::Busy { retry_after } => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(*retry_after),
            "The service is busy. Try again in a moment.",
        ),
        AuthError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(std::time::Duration::from_secs(5)),
            "The service is unavailable. Try again in a moment.",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Something went wrong on our side. Try again later.",
        ),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "page request failed");
    }
    let mut res = page(
        status,
        "Something went wrong",
        &fill(PROBLEM, &[("message", &escape(message))]),
    );
    if let Some(wait) = retry_after {
        let secs = wait.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_escape() {
        assert_eq!(
            fill("<p>{{a}}</p>{{b}}", &[("a", &escape("<x\"'&>")), ("b", "")]),
            "<p>&lt;x&quot;&#39;&amp;&gt;</p>"
        );
    }

    #[test]
    fn values_are_not_scanned_for_placeholders() {
        assert_eq!(
            fill("{{a}}|{{b}}|{{c", &[("a", "{{b}}"), ("b", "B")]),
            "{{b}}|B|{{c"
        );
        assert_eq!(escape("{{x}}"), "&#123;&#123;x&#125;&#125;");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let body = fill(VERIFY, &[("token", "t")]);
        let html = fill(LAYOUT, &[("title", "T"), ("style", STYLE), ("body", &body)]);
        assert!(!html.contains("{{"), "{html}");
    }

    #[test]
    fn the_csp_hash_is_the_style_s() {
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(CSP.contains(&format!("style-src 'sha256-{hash}'")));
        assert!(CSP.starts_with("default-src 'none';"));
        assert!(!CSP.contains("unsafe"));
    }
}
