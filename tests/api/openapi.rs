//! `/openapi.json` against what the server answers: every status a route
//! gives to a bad request is listed on that route, with the media type it
//! is sent in, so that a client generated from the document (or a contract
//! tester) meets no answer the document does not name.

use std::collections::{BTreeMap, BTreeSet};

use awc::http::header;
use serde_json::{json, Value};

use crate::support::{Backend, Resp, TestApp, TestSetup};

/// The operation `method path` of the document.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method]
}

/// What is wrong with `res`, an answer of `method path`, if it is not listed
/// on that route by its own status (not only by `default`) and in the media
/// type it came in.
fn undocumented(doc: &Value, method: &str, path: &str, probe: &str, res: &Resp) -> Option<String> {
    let op = operation(doc, method, path);
    let status = res.status.to_string();
    let listed = &op["responses"][&status];
    if !listed.is_object() {
        return Some(format!(
            "{method} {path} ({probe}) answered {status} {}, which it does not list",
            String::from_utf8_lossy(&res.body)
        ));
    }
    if res.body.is_empty() {
        return None;
    }
    let media = res.header("content-type").unwrap_or_default();
    let media = media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !listed["content"][&media].is_object() {
        return Some(format!(
            "{method} {path} ({probe}) answered {status} in {media}; the document lists {}",
            listed["content"]
        ));
    }
    if res.status >= 400 && media != "application/problem+json" {
        return Some(format!(
            "{method} {path} ({probe}) answered {status} in {media}"
        ));
    }
    None
}

fn request(app: &TestApp, method: &str, url: &str) -> awc::ClientRequest {
    let url = app.url(url);
    match method {
        "get" => app.client.get(url),
        "post" => app.client.post(url),
        "put" => app.client.put(url),
        "delete" => app.client.delete(url),
        other => panic!("unexpected method {other}"),
    }
}

async fn send_raw(req: awc::ClientRequest, body: Vec<u8>) -> Resp {
    let mut res = req.send_body(body).await.expect("request");
    let body = res.body().limit(1 << 20).await.expect("body").to_vec();
    Resp {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

/// Bad requests to every route: no token, a forged token, and (signed in,
/// so that only the body can be wrong) a body that is not JSON, one too
/// large, one sent as text, one with a control character in a string, and
/// an array.
/// Each answer must be listed on its route, and each route must have been
/// seen giving the answers it can give before its handler runs.
#[actix_web::test]
async fn every_answer_to_a_bad_request_is_listed_on_its_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.get("/openapi.json").await.json();
    let email = app.verified_user().await;
    let mut seen: BTreeMap<(&str, &str), BTreeSet<u16>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (method, path) in suma_auth::http::routes::MOUNTED {
        let op = operation(&doc, method, path);
        let url = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let bearer = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let has_body = op["requestBody"].is_object();
        let mut answers = vec![(
            "no token",
            app.send(request(&app, method, &url), None).await,
        )];
        if bearer {
            let forged =
                request(&app, method, &url).insert_header((header::AUTHORIZATION, "Bearer a.b.c"));
            answers.push(("forged token", app.send(forged, None).await));
        }
        if has_body {
            // A fresh session per route: a body that went through would
            // not end the one the next route is probed with.
            let token = if bearer {
                Some(app.login_pair(&email).await.access_token)
            } else {
                None
            };
            let signed = |content_type: &str| {
                let req = request(&app, method, &url)
                    .insert_header((header::CONTENT_TYPE, content_type.to_string()));
                match &token {
                    Some(t) => req.insert_header((header::AUTHORIZATION, format!("Bearer {t}"))),
                    None => req,
                }
            };
            let too_large = serde_json::to_vec(&json!({
                "pad": "x".repeat(suma_auth::http::MAX_BODY_BYTES)
            }))
            .unwrap();
            let probes: [(&str, &str, Vec<u8>); 5] = [
                ("not JSON", "application/json", b"{".to_vec()),
                ("too large", "application/json", too_large),
                ("sent as text", "text/plain", b"{}".to_vec()),
                (
                    "a control character",
                    "application/json",
                    b"{\"a\":\"\\u0007\"}".to_vec(),
                ),
                ("an array", "application/json", b"[]".to_vec()),
            ];
            for (probe, content_type, body) in probes {
                answers.push((probe, send_raw(signed(content_type), body).await));
            }
        }
        for (probe, res) in &answers {
            wrong.extend(undocumented(&doc, method, path, probe, res));
            seen.entry((method, path)).or_default().insert(res.status);
        }
        let statuses = &seen[&(*method, *path)];
        let mut expected = Vec::new();
        if bearer {
            expected.push(401);
        }
        if has_body {
            expected.extend([400, 413, 415, 422]);
        }
        for status in expected {
            if !statuses.contains(&status) {
                wrong.push(format!(
                    "{method} {path} never answered {status}: {statuses:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every route of the route table that has a rate class lists the 429 it
/// answers once its budget is spent.
#[actix_web::test]
async fn every_rate_limited_route_lists_its_429() {
    let app = TestSetup::new(Backend::Sqlite)
        .envs(&[
            ("RATE_LIMIT_LOGIN", "1"),
            ("RATE_LIMIT_REGISTER", "1"),
            ("RATE_LIMIT_PASSWORD_RESET", "1"),
            ("RATE_LIMIT_OTP", "1"),
            ("RATE_LIMIT_EXPORT", "1"),
        ])
        .spawn()
        .await;
    let doc = app.get("/openapi.json").await.json();
    let routes = suma_auth::http::routes::MOUNTED
        .iter()
        .zip(suma_auth::http::routes::MOUNTED_RATES);
    let mut rated = 0;
    for ((method, path), rate) in routes {
        if rate.is_none() {
            continue;
        }
        rated += 1;
        let mut limited = None;
        for _ in 0..12 {
            let res = app.send(request(&app, method, path), None).await;
            if let Some(wrong) = undocumented(&doc, method, path, "repeated", &res) {
                panic!("{wrong}");
            }
            if res.status == 429 {
                limited = Some(res);
                break;
            }
        }
        assert!(limited.is_some(), "{method} {path} never answered 429");
    }
    assert!(rated >= 6, "{rated} rate-limited routes");
}

/// Logging out with a body that is not JSON is refused, and the session
/// stays: only a request with no body at all logs out without one.
#[actix_web::test]
async fn a_logout_with_a_malformed_body_is_refused_and_ends_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, pair) = app.signed_in().await;
    let logout = || {
        app.client
            .post(app.url("/api/v1/auth/logout"))
            .insert_header((
                header::AUTHORIZATION,
                format!("Bearer {}", pair.access_token),
            ))
    };
    let malformed = logout().insert_header((header::CONTENT_TYPE, "application/json"));
    let res = send_raw(malformed, b"{\"refresh_token\":".to_vec()).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code(), "malformed_json");
    assert_eq!(app.me(&pair.access_token).await.status, 200);

    let bare = logout();
    assert_eq!(app.send(bare, None).await.status, 204);
    assert_eq!(app.me(&pair.access_token).await.status, 401);
}
