//! HTTP hygiene: every error is problem+json with a stable code, never a 5xx
//! for bad input; request ids; security headers.

use awc::http::header;
use serde_json::json;

use crate::support::{Backend, TestApp};

async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await
}

fn assert_problem(res: &crate::support::Resp, status: u16, code: &str) {
    assert_eq!(res.status, status, "body: {}", res.text());
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    // A problem body has a string `title` (else it does not parse).
    let body = res.problem();
    assert_eq!(body.code, code);
    assert_eq!(body.status, status);
    assert_eq!(
        body.type_,
        format!("https://docs.suma.finance/errors/{code}")
    );
    let id = res.header("x-request-id").unwrap();
    assert_eq!(body.request_id, Some(id));
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
    assert_eq!(res.problem().errors[0].field, "password");
    assert_eq!(res.problem().errors[0].code, "required");
    let res = app.post("/api/v1/auth/register", json!([1, 2, 3])).await;
    assert_problem(&res, 422, "validation_failed");
}

/// A body that is not a JSON object is refused, even one that serde would
/// read as a struct's fields in order: a sign-in sent as
/// `[email, password]` does not sign in.
#[actix_web::test]
async fn a_body_that_is_not_an_object_is_422() {
    let app = app().await;
    let email = app.verified_user().await;
    let res = app
        .post(
            "/api/v1/auth/login",
            json!([email, crate::support::PASSWORD]),
        )
        .await;
    assert_problem(&res, 422, "validation_failed");
    assert_eq!(res.problem().errors[0].field, "body");
    assert_eq!(res.problem().errors[0].code, "invalid_type");
    for body in [json!(null), json!("x"), json!(7)] {
        let res = app.post("/api/v1/auth/refresh", body).await;
        assert_problem(&res, 422, "validation_failed");
    }
    assert_eq!(
        app.login(&email, crate::support::PASSWORD).await.status,
        200
    );
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
    assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD"));
}

/// Every GET route answers HEAD as it answers GET, without the body; a
/// route without GET answers HEAD 405.
#[actix_web::test]
async fn head_answers_as_get_without_a_body() {
    let app = app().await;
    for path in [
        "/health",
        "/ready",
        "/.well-known/jwks.json",
        "/openapi.json",
    ] {
        let get = app.get(path).await;
        let head = app.send(app.client.head(app.url(path)), None).await;
        assert_eq!((head.status, get.status), (200, 200), "{path}");
        assert!(head.body.is_empty(), "{path}: a body was sent");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
    }
    let (_, token) = app.signed_in().await;
    let head = app
        .send(
            app.client
                .head(app.url("/api/v1/auth/me"))
                .bearer_auth(&token.access_token),
            None,
        )
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let res = app
        .send(app.client.head(app.url("/api/v1/auth/login")), None)
        .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow").as_deref(), Some("POST"));
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
        // A control character is refused before the token is looked at.
        let expected = if s.chars().any(char::is_control) {
            422
        } else {
            400
        };
        assert_eq!(res.status, expected, "{s:?}");
    }
}

/// Every mounted route, with and without a valid token, fed hostile bodies:
/// never a 5xx, always problem+json on errors.
#[actix_web::test]
async fn every_route_survives_hostile_bodies() {
    let app = app().await;
    let (_, pair) = app.signed_in().await;
    let token = pair.access_token.clone();
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

/// A sample value of an OpenAPI schema: every property present, strings "x".
fn sample(doc: &serde_json::Value, schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return sample(doc, &doc["components"]["schemas"][name]);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) = schema[key]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["type"] != "null").or_else(|| a.first()))
        {
            return sample(doc, first);
        }
    }
    let ty = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    match ty.as_str() {
        Some("object") | None if schema["properties"].is_object() => Value::Object(
            schema["properties"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), sample(doc, v)))
                .collect(),
        ),
        Some("string") => json!("x"),
        Some("boolean") => json!(true),
        Some("integer") | Some("number") => json!(1),
        Some("array") => json!([sample(doc, &schema["items"])]),
        _ => json!({}),
    }
}

/// The paths (`consents.terms`, `codes[0]`) of every string in a sample.
fn string_paths(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(_) => out.push(path.to_string()),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_paths(v, &p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let base = if path.is_empty() { "body" } else { path };
                string_paths(v, &format!("{base}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Real values for the fields a signed-in user sends, so that without the
/// check a control character would travel as far as it can (a session row,
/// a lookup by email).
fn fill(value: &mut serde_json::Value, known: &[(&str, String)]) {
    if let Some(map) = value.as_object_mut() {
        for (k, v) in map.iter_mut() {
            match known.iter().find(|(name, _)| name == k) {
                Some((_, real)) if v.is_string() => *v = json!(real),
                _ => fill(v, known),
            }
        }
    }
}

/// Puts `control` in the middle of the string at `path`.
fn set_path(value: &mut serde_json::Value, path: &str, control: &str) {
    let mut at = value;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if key != "body" {
            at = &mut at[key];
        }
        if let Some(i) = index {
            at = &mut at[i];
        }
    }
    let current = at.as_str().unwrap_or("x").to_string();
    let middle = current.char_indices().nth(current.chars().count() / 2);
    let (head, tail) = current.split_at(middle.map_or(current.len(), |(i, _)| i));
    *at = json!(format!("{head}{control}{tail}"));
}

/// Every string field of every mounted route's body (as the OpenAPI document
/// describes it), and every page form field, with a control character in it:
/// a 422 that names the field, never a 500 — on PostgreSQL, which refuses NUL
/// in text, and on SQLite.
async fn control_characters_in_any_field_are_422(backend: crate::support::Backend) {
    let app = TestApp::spawn(backend).await;
    let (email, pair) = app.signed_in().await;
    let token = pair.access_token.clone();
    let known = [
        ("email", email.clone()),
        ("password", crate::support::PASSWORD.to_string()),
        ("current_password", crate::support::PASSWORD.to_string()),
        ("new_password", "a brand new passphrase".to_string()),
        ("refresh_token", pair.refresh_token.clone()),
        ("device_id", "phone-1".to_string()),
    ];
    let doc = app.get("/openapi.json").await.json();
    let controls = ["\u{0}", "\u{7}", "\u{1b}", "\u{7f}", "\u{85}", "\n"];
    let mut checked = 0;
    for (method, path) in suma_auth::http::routes::MOUNTED {
        let op = &doc["paths"][*path][*method];
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        let mut base = if schema.is_null() {
            json!({"note": "x"})
        } else {
            sample(&doc, schema)
        };
        fill(&mut base, &known);
        let mut fields = Vec::new();
        string_paths(&base, "", &mut fields);
        assert!(!fields.is_empty(), "{method} {path}: no string field");
        let url = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        for field in &fields {
            for (n, control) in controls.iter().enumerate() {
                // Every control on the first field, NUL on the others.
                if n > 0 && field != &fields[0] {
                    continue;
                }
                let mut body = base.clone();
                set_path(&mut body, field, control);
                let req = match *method {
                    "get" => app.client.get(app.url(&url)),
                    "post" => app.client.post(app.url(&url)),
                    "put" => app.client.put(app.url(&url)),
                    "delete" => app.client.delete(app.url(&url)),
                    other => panic!("unexpected method {other}"),
                }
                .insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
                let res = app.send(req, Some(body.clone())).await;
                let what = format!("{method} {path} {field} {control:?}");
                assert_problem(&res, 422, "validation_failed");
                assert_eq!(res.problem().errors[0].code, "invalid_characters", "{what}");
                assert_eq!(res.problem().errors[0].field, field.as_str(), "{what}");
                checked += 1;
            }
        }
        // A control character in a key is refused too.
        let req = app.client.post(app.url(&url));
        let res = app.send(req, Some(json!({"e\u{0}mail": "x"}))).await;
        assert_eq!(res.status, 422, "{method} {path} key");
    }
    // Form posts belong to the HTML pages, which answer bad input with a
    // page: never a 5xx there either, on either store.
    for (method, path) in suma_auth::http::routes::PAGES {
        if *method != "post" {
            continue;
        }
        for field in ["token", "new_password", "email"] {
            for control in ["%00", "%07", "%7F", "%C2%85"] {
                let mut res = app
                    .client
                    .post(app.url(path))
                    .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                    .send_body(format!("{field}=a{control}b"))
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let _ = res.body().await;
                assert!(status < 500, "{path} {field} {control} -> {status}");
            }
        }
    }
    assert!(checked > 100, "{checked}");
    // Bodies without controls (a right-to-left mark is not one) still pass.
    let res = app
        .post(
            "/api/v1/auth/login",
            json!({"email": "\u{202e}x@example.com", "password": "x"}),
        )
        .await;
    assert!(res.status != 422 && res.status < 500, "{}", res.status);
}

crate::on_both_backends!(
    control_characters_in_any_string_field_are_422,
    |backend: crate::support::Backend| async move {
        super::control_characters_in_any_field_are_422(backend).await;
    }
);

/// Request headers over 16 KiB, in one header or in many: 431 problem+json.
#[actix_web::test]
async fn request_headers_over_16_kib_are_431() {
    let app = app().await;
    let send = |headers: Vec<(String, String)>| {
        let mut req = app.client.get(app.url("/health"));
        for (name, value) in headers {
            req = req.insert_header((name, value));
        }
        app.send(req, None)
    };
    // Just under the limit, with the client's own few headers: fine.
    let res = send(vec![("x-filler".into(), "a".repeat(15 * 1024))]).await;
    assert_eq!(res.status, 200);
    // One header over it.
    let res = send(vec![("cookie".into(), "a".repeat(17 * 1024))]).await;
    assert_problem(&res, 431, "headers_too_large");
    // Many small headers over it.
    let many = (0..40)
        .map(|i| (format!("x-filler-{i}"), "b".repeat(512)))
        .collect();
    let res = send(many).await;
    assert_problem(&res, 431, "headers_too_large");
    // On an API route as on the probes.
    let res = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .insert_header(("x-filler", "c".repeat(20 * 1024))),
            Some(json!({"email": "a@example.com", "password": "x"})),
        )
        .await;
    assert_problem(&res, 431, "headers_too_large");
}

/// A body that never arrives whole (more declared than sent), JSON or a
/// page's form, is answered 408 problem+json once `BODY_DEADLINE` has
/// passed, and the connection is closed, instead of waiting for the rest for
/// ever (or, for the form, until the request deadline's 503).
#[actix_web::test]
async fn a_body_that_never_arrives_whole_is_408() {
    let app = app().await;
    let addr = app.address.trim_start_matches("http://").to_string();
    // A JSON body, and an HTML page's form, each declaring more than it sends.
    let (json, form) = tokio::join!(
        answer_to_partial_body(
            &addr,
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{\"email\":\"a@example.com\"",
        ),
        answer_to_partial_body(
            &addr,
            "POST /reset-password/request HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 100\r\n\r\nemail=a%40example.com",
        ),
    );
    for answer in [json, form] {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    }
    // The document lists it on the route.
    let doc = app.get("/openapi.json").await.json();
    let listed = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"]["408"];
    assert!(
        listed["content"]["application/problem+json"].is_object(),
        "{listed}"
    );
}

/// Sends `head` (headers and the start of a body) and reads the answer until
/// the server closes the connection.
async fn answer_to_partial_body(addr: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let limit = suma_auth::http::extract::BODY_DEADLINE + std::time::Duration::from_secs(20);
    let mut answer = Vec::new();
    tokio::time::timeout(limit, conn.read_to_end(&mut answer))
        .await
        .expect("an answer, and the connection closed, within the deadline")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}
