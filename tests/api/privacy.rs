//! What is held about a person: the export (GDPR Art. 15/20), the erasure
//! (Art. 17) and the retention table the sweep enforces.

use std::time::Duration;

use awc::http::header;
use serde_json::{json, Value};
use suma_auth::jobs::sweep::sweep_once;

use crate::on_both_backends;
use crate::support::{redis_url, Backend, Resp, TestApp, TestFleet, TestSetup, PASSWORD};

async fn erase(app: &TestApp, token: &str, body: Value) -> Resp {
    app.with_token("DELETE", "/api/v1/auth/me", token, Some(body))
        .await
}

/// The code of the step after the last one used (each step is accepted once).
fn totp_code(app: &TestApp, secret: &[u8]) -> String {
    app.services.clock.advance(Duration::from_secs(30));
    app.totp_now(secret)
}

/// Every key of a JSON document, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

on_both_backends!(
    the_export_holds_everything_and_no_secret,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let token = &pair.access_token;
        let id = app.user_id(&email).await;
        let (secret, recovery) = app.enroll_totp(token).await;
        let consented = app
            .with_token(
                "PUT",
                "/api/v1/auth/me/consents",
                token,
                Some(json!({"marketing": {"granted": true}})),
            )
            .await;
        assert_eq!(consented.status, 200);
        // A second session from a phone, and a wrong password.
        let phone = app.login_from(&email, "phone/7", "phone-7").await.json();
        assert_eq!(phone["mfa_required"], true);
        let phone = app
            .post_as(
                "/api/v1/auth/otp/verify",
                "phone/7",
                json!({"mfa_token": phone["mfa_token"], "code": totp_code(&app, &secret)}),
            )
            .await
            .token_pair();
        assert_eq!(app.login(&email, "not the password").await.status, 401);

        let res = app
            .with_token("GET", "/api/v1/auth/me/export", token, None)
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
        let doc = res.json();
        assert_eq!(doc["format"], "suma-auth.export.v1");
        assert_eq!(doc["profile"]["id"], id.to_string());
        assert_eq!(doc["profile"]["email"], email.as_str());
        assert_eq!(doc["profile"]["email_verified"], true);
        assert_eq!(doc["consents"]["current"]["marketing"]["granted"], true);
        let history = doc["consents"]["history"].as_array().unwrap();
        assert_eq!(history.len(), 3);
        assert_eq!(history[2]["type"], "marketing");
        assert_eq!(history[0]["ip_address"], "127.0.0.1");
        let sessions = doc["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 2);
        let on_phone = sessions
            .iter()
            .find(|s| s["id"] == phone["session_id"])
            .unwrap();
        assert_eq!(on_phone["device_id"], "phone-7");
        assert_eq!(on_phone["user_agent"], "phone/7");
        assert_eq!(on_phone["amr"], json!(["pwd", "otp"]));
        assert!(doc["devices"].is_array());
        assert_eq!(doc["second_factor"]["methods"], json!(["totp"]));
        assert_eq!(doc["second_factor"]["recovery_codes_unused"], 10);
        assert_eq!(doc["credentials"]["previous_passwords_kept"], 1);
        assert_eq!(doc["credentials"]["failed_login_attempts"], 1);
        let events: Vec<&str> = doc["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        for expected in [
            "registration",
            "email_verification",
            "login",
            "two_factor_enabled",
            "consent_changed",
        ] {
            assert!(events.contains(&expected), "{expected} in {events:?}");
        }
        assert!(doc["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "login" && e["outcome"] == "failure"));
        let templates: Vec<&str> = doc["mail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["template"].as_str().unwrap())
            .collect();
        assert!(templates.contains(&"verification"), "{templates:?}");

        // No secret, code, token or hash, by value or by name.
        let body = res.text();
        let (password_hash, sealed, _, _) = {
            let (_, h, s, d) = app.probe().user_row(id).await.unwrap();
            (h, s.unwrap(), (), d)
        };
        let mut secrets = vec![
            PASSWORD.to_string(),
            password_hash,
            sealed,
            suma_auth::auth::totp::base32(&secret),
            pair.refresh_token.clone(),
            phone.refresh_token.clone(),
            phone.access_token.clone(),
        ];
        secrets.extend(recovery);
        for s in &secrets {
            assert!(!body.contains(s.as_str()), "the export holds a secret");
            assert!(!body.to_lowercase().contains(&s.to_lowercase()));
        }
        let mut names = Vec::new();
        keys(&doc, &mut names);
        for name in names {
            assert_ne!(name, "password");
            for word in ["hash", "secret", "sealed", "token"] {
                assert!(!name.contains(word), "key {name}");
            }
        }
        // Audited.
        assert_eq!(
            app.probe()
                .count_audit("data_export", "success")
                .await
                .unwrap(),
            1
        );
    }
);

#[actix_web::test]
async fn the_export_is_rate_limited() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_EXPORT", "2")
        .spawn()
        .await;
    let (_, pair) = app.signed_in().await;
    for _ in 0..2 {
        let res = app
            .with_token("GET", "/api/v1/auth/me/export", &pair.access_token, None)
            .await;
        assert_eq!(res.status, 200);
    }
    let res = app
        .with_token("GET", "/api/v1/auth/me/export", &pair.access_token, None)
        .await;
    assert_eq!(res.status, 429);
    assert_eq!(res.code(), "rate_limited");
    assert!(res.header("retry-after").is_some());
}

/// The client of the erasure test: a documentation address behind the
/// trusted proxy, and a user agent of its own.
const CLIENT_IP: &str = "203.0.113.77";

async fn from_client(
    app: &TestApp,
    agent: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = match method {
        "GET" => app.client.get(app.url(path)),
        "PUT" => app.client.put(app.url(path)),
        "DELETE" => app.client.delete(app.url(path)),
        _ => app.client.post(app.url(path)),
    }
    .insert_header(("X-Forwarded-For", CLIENT_IP))
    .insert_header(("User-Agent", agent));
    if let Some(t) = token {
        req = req.insert_header((header::AUTHORIZATION, format!("Bearer {t}")));
    }
    app.send(req, body).await
}

on_both_backends!(
    erasure_ends_every_session_and_leaves_no_personal_data,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("TRUSTED_PROXIES", "127.0.0.1/32")
            .spawn()
            .await;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let email = format!("erase-{tag}@example.com");
        let (first, last) = (
            format!("Ottoline{}", &tag[..8]),
            format!("Quennell{}", &tag[8..16]),
        );
        let agent = format!("gdpr-agent/{}", &tag[16..24]);
        let reg = from_client(
            &app,
            &agent,
            "POST",
            "/api/v1/auth/register",
            None,
            Some(
                json!({"email": email, "password": PASSWORD, "first_name": first, "last_name": last,
                "consents": {"terms": true, "privacy": true, "marketing": true}}),
            ),
        )
        .await;
        assert_eq!(reg.status, 202);
        let token = app.verification_token(&email, 1).await;
        let post = |path: &'static str, body: Value| {
            let (app, agent) = (&app, agent.clone());
            async move { from_client(app, &agent, "POST", path, None, Some(body)).await }
        };
        assert_eq!(
            post("/api/v1/auth/verify-email", json!({"token": token}))
                .await
                .status,
            200
        );
        // A failed sign-in (a lockout window keyed by the address), then two sessions.
        assert_eq!(
            post(
                "/api/v1/auth/login",
                json!({"email": email, "password": "not it at all"})
            )
            .await
            .status,
            401
        );
        let login = json!({"email": email, "password": PASSWORD, "device_id": "laptop"});
        let a = post("/api/v1/auth/login", login.clone()).await.token_pair();
        let b = post("/api/v1/auth/login", login).await.token_pair();
        let res = from_client(
            &app,
            &agent,
            "PUT",
            "/api/v1/auth/me/consents",
            Some(&a.access_token),
            Some(json!({"data_processing": {"granted": true}})),
        )
        .await;
        assert_eq!(res.status, 200);
        let res = from_client(
            &app,
            &agent,
            "GET",
            "/api/v1/auth/me/export",
            Some(&a.access_token),
            None,
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(
            post("/api/v1/auth/password-reset", json!({"email": email}))
                .await
                .status,
            202
        );
        app.smtp().wait_for_nth(&email, 2).await;
        // A mail waiting for a retry when the account is erased.
        let waiting = app
            .services
            .mailer
            .prepare(&suma_auth::mail::templates::password_changed(&email))
            .unwrap();
        app.services
            .store
            .enqueue_mail(waiting, chrono::Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap();
        let id = app.user_id(&email).await;
        let recipient = app.services.mailer.recipient_tag(&email);
        assert!(app.probe().mail_tagged(&recipient).await.len() >= 3);

        // The search can see them before: the address, both names, the IP
        // address and the user agent are each in several tables.
        let probe = app.probe();
        let needles = [
            email.clone(),
            first.clone(),
            last.clone(),
            CLIENT_IP.to_string(),
            agent.clone(),
        ];
        for needle in &needles {
            let hits = probe.find_everywhere(needle).await;
            assert!(!hits.is_empty(), "{needle} is held before the erasure");
        }
        assert!(probe.find_everywhere(CLIENT_IP).await.len() >= 4);

        // A wrong password erases nothing.
        let wrong = from_client(
            &app,
            &agent,
            "DELETE",
            "/api/v1/auth/me",
            Some(&a.access_token),
            Some(json!({"password": "not it at all"})),
        )
        .await;
        assert_eq!(wrong.status, 401);
        assert_eq!(app.me(&a.access_token).await.status, 200);

        let res = from_client(
            &app,
            &agent,
            "DELETE",
            "/api/v1/auth/me",
            Some(&a.access_token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(res.status, 204, "{}", res.text());

        // Every session and token ends at once.
        for pair in [&a, &b] {
            assert_eq!(app.me(&pair.access_token).await.status, 401);
            // A route that reads no user row: the session itself is refused.
            let sessions = app
                .get_with_token("/api/v1/auth/me/sessions", &pair.access_token)
                .await;
            assert_eq!(sessions.status, 401);
            let refreshed = app
                .post(
                    "/api/v1/auth/refresh",
                    json!({"refresh_token": &pair.refresh_token}),
                )
                .await;
            assert_eq!(refreshed.status, 401);
        }
        // The farewell is the one mail left for the address, and it is sent.
        let farewell = app.smtp().wait_for_nth(&email, 3).await;
        assert_eq!(farewell.subject(), "Your account was deleted");
        let left = app.probe().mail_tagged(&recipient).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].0, "account_erased");

        // Nothing personal anywhere, in every column of every table, but the
        // per-client rate windows: they hold the address (no account) for one
        // window, and the sweep prunes them once it has passed.
        for needle in &needles {
            let hits = probe.find_everywhere(needle).await;
            assert!(
                hits.iter()
                    .all(|h| needle == CLIENT_IP && h == "rate_windows.key"),
                "{needle} still held in {hits:?}"
            );
        }
        app.services.clock.advance(Duration::from_secs(301));
        sweep_once(&app.services).await;
        for needle in &needles {
            let hits = probe.find_everywhere(needle).await;
            assert!(hits.is_empty(), "{needle} still held in {hits:?}");
        }
        let (placeholder, password_hash, sealed, deleted) = probe.user_row(id).await.unwrap();
        assert!(deleted);
        assert!(placeholder.ends_with("@erased.invalid"), "{placeholder}");
        assert!(password_hash.is_empty() && sealed.is_none());
        for table in [
            "sessions",
            "refresh_tokens",
            "password_history",
            "email_verification_tokens",
            "password_reset_tokens",
        ] {
            assert_eq!(probe.count_of(table, "user_id", id).await, 0, "{table}");
        }
        // Audit and consent rows keep only the pseudonymous id.
        let audit = probe.audit_for_user(id, 1000).await.unwrap();
        assert!(audit.len() >= 8);
        assert!(audit
            .iter()
            .all(|r| r.ip_address.is_none() && r.user_agent.is_none()));
        assert!(audit.iter().any(|r| r.event_type == "account_erased"));
        let consents = probe.consents_for_user(id).await.unwrap();
        assert_eq!(consents.len(), 4);
        assert!(consents
            .iter()
            .all(|c| c.ip_address.is_none() && c.user_agent.is_none()));

        // The old password opens nothing; the address can register again, as a new account.
        assert_eq!(app.login(&email, PASSWORD).await.status, 401);
        assert_eq!(app.register(&email, PASSWORD).await.status, 202);
        let link = app.verification_token(&email, 4).await;
        assert_eq!(
            app.post("/api/v1/auth/verify-email", json!({"token": link}))
                .await
                .status,
            200
        );
        let again = app.login(&email, PASSWORD).await;
        assert_eq!(again.status, 200);
        assert_ne!(app.user_id(&email).await, id);
    }
);

on_both_backends!(
    erasure_needs_the_password_and_a_wrong_one_counts_toward_the_lockout,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let token = &pair.access_token;
        for _ in 0..5 {
            let res = erase(&app, token, json!({"password": "wrong password!"})).await;
            assert_eq!(res.status, 401);
            assert_eq!(res.code(), "invalid_credentials");
        }
        // Locked: even the right password waits, and so does sign-in.
        let locked = erase(&app, token, json!({"password": PASSWORD})).await;
        assert_eq!(locked.status, 423);
        assert_eq!(app.login(&email, PASSWORD).await.status, 423);
        assert_eq!(
            app.probe()
                .count_audit("account_erasure", "failure")
                .await
                .unwrap(),
            5
        );
        app.services.clock.advance(Duration::from_secs(15 * 60 + 1));
        let pair = app.login_pair(&email).await;
        let res = erase(&app, &pair.access_token, json!({"password": PASSWORD})).await;
        assert_eq!(res.status, 204);
        assert_eq!(
            app.probe()
                .count_audit("account_erased", "success")
                .await
                .unwrap(),
            1
        );
    }
);

on_both_backends!(
    erasure_with_a_second_factor_needs_it,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let token = &pair.access_token;
        let (secret, _) = app.enroll_totp(token).await;
        let missing = erase(&app, token, json!({"password": PASSWORD})).await;
        assert_eq!(missing.status, 422);
        assert_eq!(missing.problem().errors[0].field, "code");
        assert_eq!(missing.problem().errors[0].code, "code_required");
        let wrong = erase(&app, token, json!({"password": PASSWORD, "code": "000000"})).await;
        assert_eq!(wrong.status, 401);
        assert_eq!(wrong.code(), "invalid_code");
        assert_eq!(
            app.probe()
                .count_audit("account_erasure", "failure")
                .await
                .unwrap(),
            1
        );
        let ok = erase(
            &app,
            token,
            json!({"password": PASSWORD, "code": totp_code(&app, &secret)}),
        )
        .await;
        assert_eq!(ok.status, 204, "{}", ok.text());
        assert_eq!(app.login(&email, PASSWORD).await.status, 401);

        // Email codes: a step-up code mailed on request.
        let (email, pair) = app.signed_in().await;
        let token = &pair.access_token;
        app.turn_on_email_codes(token).await;
        let res = erase(&app, token, json!({"password": PASSWORD})).await;
        assert_eq!(res.status, 422);
        let sent = app
            .with_token(
                "POST",
                "/api/v1/auth/me/2fa/email/code",
                token,
                Some(json!({})),
            )
            .await;
        assert_eq!(sent.status, 202, "{}", sent.text());
        // mails: verification, "turned on" and the code, the last two in either order
        let code = app.smtp().wait_for_code(&email, 1).await;
        let ok = erase(&app, token, json!({"password": PASSWORD, "code": code})).await;
        assert_eq!(ok.status, 204, "{}", ok.text());
        assert_eq!(app.login(&email, PASSWORD).await.status, 401);
    }
);

#[actix_web::test]
async fn erasure_ends_the_sessions_on_every_instance_at_once() {
    let apps = TestFleet::spawn_with(3, |setup| setup.env("REDIS_ENDPOINT", &redis_url())).await;
    let (email, a) = apps[0].signed_in().await;
    let b = apps[1].login_pair(&email).await;
    // Both sessions are live, and known to Redis, on every instance.
    for app in &apps {
        for pair in [&a, &b] {
            assert_eq!(app.me(&pair.access_token).await.status, 200);
        }
    }
    assert_eq!(
        erase(&apps[2], &b.access_token, json!({"password": PASSWORD}))
            .await
            .status,
        204
    );
    for app in &apps {
        for pair in [&a, &b] {
            assert_eq!(app.me(&pair.access_token).await.status, 401);
            assert_eq!(
                app.get_with_token("/api/v1/auth/me/sessions", &pair.access_token)
                    .await
                    .status,
                401
            );
        }
    }
    for (i, pair) in [&a, &b].into_iter().enumerate() {
        let res = apps[i]
            .post(
                "/api/v1/auth/refresh",
                json!({"refresh_token": &pair.refresh_token}),
            )
            .await;
        assert_eq!(res.status, 401);
    }
}

on_both_backends!(
    the_sweep_enforces_the_retention_table,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (erased, pair) = app.signed_in().await;
        let erased_id = app.user_id(&erased).await;
        assert_eq!(
            erase(&app, &pair.access_token, json!({"password": PASSWORD}))
                .await
                .status,
            204
        );
        let (kept, _) = app.signed_in().await;
        let kept_id = app.user_id(&kept).await;
        let probe = app.probe();

        // Within the periods nothing of theirs goes.
        sweep_once(&app.services).await;
        assert!(probe.user_row(erased_id).await.is_some());
        assert_eq!(
            probe
                .count_of("consent_records", "user_id", erased_id)
                .await,
            2
        );
        assert!(!probe
            .audit_for_user(erased_id, 100)
            .await
            .unwrap()
            .is_empty());

        // Five years and a day on: the erased account and its consent history
        // go, and so do audit rows that old; the live account stays.
        app.services
            .clock
            .advance(Duration::from_secs((5 * 365 + 2) * 24 * 3600));
        assert!(sweep_once(&app.services).await > 0);
        assert!(probe.user_row(erased_id).await.is_none());
        assert_eq!(
            probe
                .count_of("consent_records", "user_id", erased_id)
                .await,
            0
        );
        assert!(probe
            .audit_for_user(erased_id, 100)
            .await
            .unwrap()
            .is_empty());
        assert!(probe.audit_for_user(kept_id, 100).await.unwrap().is_empty());
        assert!(probe.user_row(kept_id).await.is_some());
        assert_eq!(
            probe.count_of("consent_records", "user_id", kept_id).await,
            2
        );
    }
);

/// `docs/retention.md` is the table the code enforces, row for row.
#[test]
fn the_retention_document_lists_every_rule() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/retention.md"),
    )
    .unwrap();
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| ")).collect();
    for rule in suma_auth::domain::retention::RULES {
        assert!(
            rows.iter()
                .any(|r| r.contains(rule.data) && r.contains(rule.kept)),
            "docs/retention.md has no row for {:?} kept {:?}",
            rule.data,
            rule.kept
        );
    }
    // And no row the code does not know (header and rule lines aside).
    assert_eq!(rows.len(), suma_auth::domain::retention::RULES.len() + 1);
}
