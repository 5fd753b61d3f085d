//! HTTP hygiene: every error is problem+json with a stable code, never a 5xx
//! for bad input; request ids; security headers.

use awc::http::header;
use serde_json::json;

use crate::support::{Backend, TestApp};

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await
}

fn assert_problem(res: &crate::support::Resp, status: u16, code: &str) {
    assert_eq!(
        res.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&res.body)
    );
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let body = res.json();
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status);
    assert_eq!(
        body["type"],
        format!("https://docs.suma.finance/errors/{code}")
    );
    assert!(body["title"].is_string());
    let id = res.header("x-request-id").unwrap();
    assert_eq!(body["request_id"], id.as_str());
}

#[actix_web::test]
async fn malformed_json_is_400() {
    let app = app().await;
    let res = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .insert_header((header::CONTENT_TYPE, "application/json")),
            None,
        )
        .await;
    assert_problem(&res, 400, "malformed_json");
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .send_body("{\"email\": ")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
}

#[actix_web::test]
async fn wrong_types_and_missing_fields_are_422() {
    let app = app().await;
    let res = app
        .post(
            "/api/v1/auth/login",
            json!({"email": 42, "password": ["x"]}),
        )
        .await;
    assert_problem(&res, 422, "validation_failed");
    let res = app
        .post("/api/v1/auth/login", json!({"email": "a@example.com"}))
        .await;
    assert_problem(&res, 422, "validation_failed");
    assert_eq!(res.json()["errors"][0]["field"], "password");
    assert_eq!(res.json()["errors"][0]["code"], "required");
    let res = app.post("/api/v1/auth/register", json!([1, 2, 3])).await;
    assert_problem(&res, 422, "validation_failed");
}

#[actix_web::test]
async fn wrong_content_type_is_415() {
    let app = app().await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .insert_header((header::CONTENT_TYPE, "text/plain"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let res = app
        .send(app.client.post(app.url("/api/v1/auth/login")), None)
        .await;
    assert_problem(&res, 415, "unsupported_media_type");
}

#[actix_web::test]
async fn bodies_over_64_kib_are_413() {
    let app = app().await;
    let big = json!({"email": "a@example.com", "password": "x".repeat(70 * 1024)});
    let res = app.post("/api/v1/auth/login", big).await;
    assert_problem(&res, 413, "payload_too_large");
}

#[actix_web::test]
async fn unknown_routes_and_methods() {
    let app = app().await;
    assert_problem(&app.get("/api/v1/nope").await, 404, "not_found");
    let res = app.get("/api/v1/auth/login").await;
    assert_problem(&res, 405, "method_not_allowed");
    assert_eq!(res.header("allow").as_deref(), Some("POST"));
    let res = app.send(app.client.delete(app.url("/health")), None).await;
    assert_problem(&res, 405, "method_not_allowed");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let app = app().await;
    let res = app
        .send(
            app.client
                .get(app.url("/health"))
                .insert_header(("X-Request-Id", "trace-abc.123")),
            None,
        )
        .await;
    assert_eq!(res.header("x-request-id").as_deref(), Some("trace-abc.123"));
    let res = app
        .send(
            app.client
                .get(app.url("/health"))
                .insert_header(("X-Request-Id", "bad id with spaces")),
            None,
        )
        .await;
    let id = res.header("x-request-id").unwrap();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36);
}

#[actix_web::test]
async fn security_headers_are_set() {
    let app = app().await;
    let res = app.get("/health").await;
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(res.header("content-security-policy").is_some());
    assert!(res.header("strict-transport-security").is_some());
}

#[actix_web::test]
async fn hostile_strings_never_cause_a_5xx() {
    let app = app().await;
    let hostile = [
        "\u{0000}",
        "\u{202e}evil@example.com",
        "a@b.c\u{0000}",
        &"é".repeat(300),
        "\"'><script>",
        "a@[127.0.0.1]",
        "%00",
        "a@xn--80ak6aa92e.com",
    ];
    for s in hostile {
        for path in [
            "/api/v1/auth/login",
            "/api/v1/auth/register",
            "/api/v1/auth/verify-email/resend",
        ] {
            let res = app
                .post(path, json!({"email": s, "password": s, "token": s, "consents": {"terms": true, "privacy": true}}))
                .await;
            assert!(res.status < 500, "{path} {s:?} -> {}", res.status);
        }
        let res = app
            .post("/api/v1/auth/verify-email", json!({"token": s}))
            .await;
        assert_eq!(res.status, 400);
    }
}

/// Every mounted route, with and without a valid token, fed hostile bodies:
/// never a 5xx, always problem+json on errors.
#[actix_web::test]
async fn every_route_survives_hostile_bodies() {
    let app = app().await;
    let (_, pair) = app.signed_in().await;
    let token = pair["access_token"].as_str().unwrap().to_string();
    let bodies: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("null"),
        Some("[]"),
        Some("{}"),
        Some("{\"email\":null,\"password\":{},\"token\":[1],\"code\":1e309,\"mfa_token\":\"\\u0000\"}"),
        Some("{\"refresh_token\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"new_password\":\"x\",\"current_password\":\"y\"}"),
        Some("{\"email\":\"a@b.co\",\"password\":\"\",\"consents\":{\"terms\":\"yes\"}}"),
        Some("\u{feff}{}"),
        Some("{\"a\":"),
    ];
    for (method, path) in suma_auth::http::routes::MOUNTED {
        let path = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        for bearer in [None, Some(token.as_str()), Some("garbage")] {
            for body in &bodies {
                let mut req = match *method {
                    "get" => app.client.get(app.url(&path)),
                    "post" => app.client.post(app.url(&path)),
                    "delete" => app.client.delete(app.url(&path)),
                    "put" => app.client.put(app.url(&path)),
                    other => panic!("unexpected method {other}"),
                };
                if let Some(t) = bearer {
                    req = req.insert_header((header::AUTHORIZATION, format!("Bearer {t}")));
                }
                let mut res = match body {
                    Some(b) => {
                        req.insert_header((header::CONTENT_TYPE, "application/json"))
                            .send_body(b.to_string())
                            .await
                    }
                    None => req.send().await,
                }
                .unwrap();
                let status = res.status().as_u16();
                let ct = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = res.body().await;
                assert!(status < 500, "{method} {path} {body:?} -> {status}");
                if status >= 400 {
                    assert_eq!(ct, "application/problem+json", "{method} {path} {body:?}");
                }
            }
        }
    }
}
