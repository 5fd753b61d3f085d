//! The pages mailed links open (`/verify-email`, `/reset-password`): opening
//! a link spends nothing, the form POST does what the API does, errors are
//! pages (422 with the policy's reasons), headers fit a URL that carries a
//! token, the POSTs share the API's rate-limit windows; and the mail files of
//! the embedded default carry whole links.

use awc::http::header;
use serde_json::json;

use crate::support::{Backend, Resp, TestApp, TestSetup, PASSWORD};

const NEW: &str = "a completely new passphrase";

/// A form POST as a browser sends it.
async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Resp {
    let mut res = app
        .client
        .post(app.url(path))
        .send_form(&fields)
        .await
        .expect("request");
    let body = res.body().await.expect("body").to_vec();
    Resp {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

fn html(res: &Resp) -> String {
    res.text()
}

/// Every page answer is HTML with headers for a URL that carries a token.
fn assert_page(res: &Resp, status: u16) {
    assert_eq!(res.status, status, "{}", html(res));
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        res.header("content-security-policy").as_deref(),
        Some(suma_auth::http::pages::CSP.as_str())
    );
    let csp = res.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none';"));
    assert!(csp.contains("form-action 'self'"));
    assert!(!csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        res.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
    let body = html(res);
    assert!(body.starts_with("<!doctype html>"));
    assert!(!body.contains("<script"), "{body}");
    assert!(!body.contains("{{"), "an unfilled placeholder: {body}");
    // Nothing from elsewhere: no absolute URL in a src or href.
    assert!(!body.contains("src="), "{body}");
    assert!(!body.contains("href=\"http"), "{body}");
}

/// Every form field has a label naming it.
fn assert_labelled(body: &str, id: &str) {
    assert!(
        body.contains(&format!("<label for=\"{id}\">")),
        "no label for {id}: {body}"
    );
    assert!(body.contains(&format!("id=\"{id}\"")), "{body}");
}

#[actix_web::test]
async fn the_verify_page_confirms_on_post_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = format!("page-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    let token = app.verification_token(&email, 1).await;

    // Opening the link (twice, as a mail scanner and then the person) changes nothing.
    for _ in 0..2 {
        let res = app.get(&format!("/verify-email?token={token}")).await;
        assert_page(&res, 200);
        let body = html(&res);
        assert!(body.contains("<form method=\"post\" action=\"verify-email\">"));
        assert!(body.contains(&format!(
            "<input type=\"hidden\" name=\"token\" value=\"{token}\">"
        )));
        assert!(body.contains("<button type=\"submit\">"));
    }
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "email_not_verified"
    );

    let res = form(&app, "/verify-email", &[("token", &token)]).await;
    assert_page(&res, 200);
    assert!(html(&res).contains("confirmed"));
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);

    // The token is spent: the page says so, as a page.
    let res = form(&app, "/verify-email", &[("token", &token)]).await;
    assert_page(&res, 400);
    assert!(html(&res).contains("invalid, already used or expired"));
}

#[actix_web::test]
async fn a_damaged_or_missing_link_is_a_page_not_a_form() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/verify-email",
        "/verify-email?token=",
        "/verify-email?token=short",
        "/reset-password?token=abc",
        "/verify-email?token=%ZZ",
    ] {
        let res = app.get(path).await;
        assert_page(&res, 400);
        assert!(html(&res).contains("incomplete or damaged"), "{path}");
        assert!(!html(&res).contains("<form"), "{path}");
    }
}

#[actix_web::test]
async fn the_reset_page_shows_the_policy_reasons_then_sets_the_password() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = app.verified_user().await;
    let res = app
        .post("/api/v1/auth/password-reset", json!({"email": email}))
        .await;
    assert_eq!(res.status, 202);
    let mail = app.smtp().wait_for_nth(&email, 2).await;
    let token = mail
        .token_after("http://app.test/reset-password?token=")
        .expect("a reset link");

    let res = app.get(&format!("/reset-password?token={token}")).await;
    assert_page(&res, 200);
    let body = html(&res);
    assert_labelled(&body, "new_password");
    assert!(body.contains("type=\"password\" autocomplete=\"new-password\""));
    assert!(body.contains(&format!("value=\"{token}\"")));
    assert!(!body.contains("aria-invalid=\"true\""));

    // A common password: 422, the form again with the policy's reason,
    // announced, tied to the field, and the token still usable.
    let res = form(
        &app,
        "/reset-password",
        &[("token", &token), ("new_password", "q1w2e3r4t5y6")],
    )
    .await;
    assert_page(&res, 422);
    let body = html(&res);
    assert!(body.contains("role=\"alert\""), "{body}");
    assert!(
        body.contains("<li>this password is too common; choose another</li>"),
        "{body}"
    );
    assert!(body.contains("aria-invalid=\"true\""));
    assert!(body.contains("aria-describedby=\"errors password-help\""));
    assert!(body.contains(&format!("value=\"{token}\"")));
    assert!(
        !body.contains("q1w2e3r4t5y6"),
        "the password is never echoed"
    );

    // No password at all is a reason too, not a crash.
    let res = form(&app, "/reset-password", &[("token", &token)]).await;
    assert_page(&res, 422);

    let res = form(
        &app,
        "/reset-password",
        &[("token", &token), ("new_password", NEW)],
    )
    .await;
    assert_page(&res, 200);
    assert!(html(&res).contains("Your password was changed"));
    assert_eq!(app.login(&email, PASSWORD).await.status, 401);
    assert_eq!(app.login(&email, NEW).await.status, 200);

    // Spent: the answer offers a new link.
    let res = form(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("new_password", "yet another passphrase"),
        ],
    )
    .await;
    assert_page(&res, 400);
    assert!(html(&res).contains("action=\"reset-password/request\""));
}

#[actix_web::test]
async fn the_reset_request_page_mails_a_link() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = app.verified_user().await;
    let res = app.get("/reset-password").await;
    assert_page(&res, 200);
    let body = html(&res);
    assert_labelled(&body, "email");
    assert!(body.contains("action=\"reset-password/request\""));

    let res = form(
        &app,
        "/reset-password/request",
        &[("email", "not an email")],
    )
    .await;
    assert_page(&res, 422);
    let body = html(&res);
    assert!(body.contains("role=\"alert\""));
    assert!(body.contains("value=\"not an email\""));
    // Re-rendered at /reset-password/request: the action resolves to itself.
    assert!(body.contains("action=\"request\""), "{body}");

    let known = form(&app, "/reset-password/request", &[("email", &email)]).await;
    let unknown = form(
        &app,
        "/reset-password/request",
        &[("email", "nobody-here@example.com")],
    )
    .await;
    assert_page(&known, 200);
    assert_page(&unknown, 200);
    assert_eq!(
        known.body, unknown.body,
        "the same answer for every address"
    );
    let mail = app.smtp().wait_for_nth(&email, 2).await;
    assert!(mail
        .token_after("http://app.test/reset-password?token=")
        .is_some());
}

#[actix_web::test]
async fn page_posts_count_in_the_api_rate_limit_window() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_PASSWORD_RESET", "3")
        .spawn()
        .await;
    let someone = json!({"email": "someone@example.com"});
    assert_eq!(
        app.post("/api/v1/auth/password-reset", someone.clone())
            .await
            .status,
        202
    );
    let res = form(
        &app,
        "/reset-password/request",
        &[("email", "someone@example.com")],
    )
    .await;
    assert_page(&res, 200);
    let res = form(
        &app,
        "/reset-password",
        &[("token", &"x".repeat(43)), ("new_password", NEW)],
    )
    .await;
    assert_page(&res, 400);
    // The fourth in the window, by either door, is refused.
    let res = form(
        &app,
        "/reset-password/request",
        &[("email", "someone@example.com")],
    )
    .await;
    assert_page(&res, 429);
    assert!(res.header("retry-after").is_some());
    assert!(html(&res).contains("Too many attempts"));
    let res = form(
        &app,
        "/reset-password",
        &[("token", &"x".repeat(43)), ("new_password", NEW)],
    )
    .await;
    assert_page(&res, 429);
    let res = app.post("/api/v1/auth/password-reset", someone).await;
    assert_eq!(res.status, 429);
}

#[actix_web::test]
async fn pages_survive_hostile_input_and_never_reflect_it_raw() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let hostile = [
        "\"><script>alert(1)</script>",
        "\u{0000}",
        "'; DROP TABLE users; --",
        &"é".repeat(300),
        "{{token}}",
        "%00",
    ];
    for s in hostile {
        let encoded: String = url_encode(s);
        for path in ["/verify-email", "/reset-password"] {
            let res = app.get(&format!("{path}?token={encoded}")).await;
            assert!(res.status < 500, "{path} {s:?}");
            assert!(!html(&res).contains("<script>alert"), "{path} {s:?}");
        }
        for (path, fields) in [
            ("/verify-email", vec![("token", s)]),
            ("/reset-password", vec![("token", s), ("new_password", s)]),
            ("/reset-password/request", vec![("email", s)]),
        ] {
            let res = form(&app, path, &fields).await;
            assert!(res.status < 500, "{path} {s:?} -> {}", res.status);
            assert!(!html(&res).contains("<script>alert"), "{path} {s:?}");
            if res.status >= 400 {
                assert_page(&res, res.status);
            }
        }
    }
    // Bodies that are not forms: refused as problem+json, never a 5xx.
    for (method, path) in suma_auth::http::routes::PAGES {
        for body in ["", "{\"token\":1}", "token=%ZZ&&=", "\u{feff}"] {
            for ct in [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
            ] {
                let req = match *method {
                    "get" => app.client.get(app.url(path)),
                    _ => app.client.post(app.url(path)),
                };
                let mut res = req
                    .insert_header((header::CONTENT_TYPE, ct))
                    .send_body(body.to_string())
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let ct_out = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = res.body().await;
                assert!(status < 500, "{method} {path} {ct} {body:?} -> {status}");
                if status >= 400 {
                    assert!(
                        ct_out == "application/problem+json"
                            || ct_out == "text/html; charset=utf-8",
                        "{method} {path} {ct} {body:?}: {ct_out}"
                    );
                }
            }
        }
    }
}

/// Percent-encodes every byte but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The pages are deliberately outside the API contract: mounted, answering,
/// with `Allow` on other methods, and absent from `/openapi.json`.
#[actix_web::test]
async fn pages_are_mounted_but_not_in_the_openapi_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.get("/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in suma_auth::http::routes::PAGES {
        assert!(!paths.contains_key(*path), "{path} is in openapi.json");
        let req = match *method {
            "get" => app.client.get(app.url(path)),
            _ => app.client.post(app.url(path)),
        };
        let res = app.send(req, None).await;
        assert_ne!(res.status, 404, "{method} {path}");
        assert_ne!(res.status, 405, "{method} {path}");
    }
    let res = app
        .send(app.client.delete(app.url("/reset-password")), None)
        .await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD, POST"));
}

/// The mail files of the embedded default: `grep -o 'token=[A-Za-z0-9_-]*'`
/// finds the whole token in the `.eml` and in the readable `.txt` beside it,
/// and following the link's page verifies the address.
#[actix_web::test]
async fn mail_files_carry_whole_links_a_shell_can_grep() {
    let app = TestSetup::new(Backend::Sqlite)
        .without_smtp()
        .env(
            "PUBLIC_URL",
            "https://accounts.example-bank.com/a/long/base/path",
        )
        .spawn()
        .await;
    let email = format!("grep-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    let dir = app._data_dir.0.join("mail");
    let mut txt = None;
    for _ in 0..200 {
        txt = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "txt"))
        });
        if txt.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let txt = txt.expect("a .txt in DATA_DIR/mail");
    let eml = txt.with_extension("eml");
    assert!(eml.exists(), "the .eml beside {}", txt.display());

    let grep = |file: &std::path::Path| -> Vec<String> {
        let out = std::process::Command::new("grep")
            .args(["-o", "token=[A-Za-z0-9_-]*"])
            .arg(file)
            .output()
            .expect("grep");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("token=").to_string())
            .collect()
    };
    let in_txt = grep(&txt);
    let in_eml = grep(&eml);
    assert_eq!(in_txt.len(), 1, "{in_txt:?}");
    let token = &in_txt[0];
    assert_eq!(token.len(), 43, "{token}");
    // The text part and the HTML part (link and visible address): all whole.
    assert_eq!(in_eml, vec![token.clone(); 3]);

    let text = std::fs::read_to_string(&txt).unwrap();
    assert!(text.starts_with(&format!(
        "To: {email}\nSubject: Confirm your email address\n\n"
    )));
    let link =
        format!("https://accounts.example-bank.com/a/long/base/path/verify-email?token={token}");
    assert!(text.lines().any(|l| l == link), "{text}");

    let raw = std::fs::read_to_string(&eml).unwrap();
    assert!(!raw.contains("quoted-printable"), "{raw}");
    assert!(raw.contains("MIME-Version: 1.0"));
    for line in raw.split("\r\n") {
        assert!(line.len() <= 998);
    }

    let res = form(&app, "/verify-email", &[("token", token)]).await;
    assert_page(&res, 200);
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
}
