use base64::Engine as _;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, PASSWORD};

on_both_backends!(
    login_returns_the_token_pair,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let res = app.login(&email, PASSWORD).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
        let pair = res.token_pair();
        assert_eq!(pair["token_type"], "Bearer");
        assert_eq!(pair["expires_in"], 900);
        assert_eq!(pair["refresh_expires_in"], 28800);
        assert_eq!(pair.refresh_token.len(), 43);
        let session_id = &pair.session_id;

        let token = &pair.access_token;
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "at+jwt");
        let jwks = app.get("/.well-known/jwks.json").await.json();
        assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sid"], session_id.as_str());
        assert_eq!(claims["amr"], json!(["pwd"]));
        assert_eq!(claims["iss"], "http://app.test");
        assert_eq!(claims["aud"], "suma-finance");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );
        assert!(claims["jti"].is_string() && claims["sub"].is_string());
    }
);

on_both_backends!(
    wrong_password_and_unknown_email_look_the_same,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let wrong = app.login(&email, "not the right password").await;
        let unknown = app
            .login("nobody-here@example.com", "not the right password")
            .await;
        let malformed = app.login("not an email", "not the right password").await;
        for res in [&wrong, &unknown, &malformed] {
            assert_eq!(res.status, 401);
            assert_eq!(res.code(), "invalid_credentials");
        }
        let strip = |v: serde_json::Value| {
            let mut v = v;
            v.as_object_mut().unwrap().remove("request_id");
            v
        };
        assert_eq!(strip(wrong.json()), strip(unknown.json()));
    }
);

on_both_backends!(
    unverified_account_is_403_only_with_the_right_password,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = format!("unv-{}@example.com", uuid::Uuid::new_v4().simple());
        app.register(&email, PASSWORD).await;
        let right = app.login(&email, PASSWORD).await;
        assert_eq!(right.status, 403);
        assert_eq!(right.code(), "email_not_verified");
        let wrong = app.login(&email, "definitely the wrong one").await;
        assert_eq!(wrong.status, 401);
    }
);

on_both_backends!(login_email_is_normalized, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let email = app.verified_user().await;
    let res = app
        .login(&format!("  {}  ", email.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(res.status, 200);
});

on_both_backends!(
    every_login_is_audited_without_secrets,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        app.login(&email, "wrong password here").await;
        let ok = app.login_pair(&email).await;
        let user_id = app.user_id(&email).await;
        let rows = app.probe().audit_for_user(user_id, 50).await.unwrap();
        let logins: Vec<_> = rows.iter().filter(|r| r.event_type == "login").collect();
        assert_eq!(logins.len(), 2);
        assert!(logins.iter().any(|r| r.event_status == "failure"));
        assert!(logins.iter().any(|r| r.event_status == "success"));
        assert!(logins.iter().all(|r| r.ip_address.is_some()));
        assert!(rows.iter().any(|r| r.event_type == "registration"));
        assert!(rows.iter().any(|r| r.event_type == "email_verification"));
        let dump = format!("{rows:?}");
        assert!(!dump.contains(PASSWORD));
        assert!(!dump.contains(&ok.refresh_token));
        assert!(!dump.contains(&ok.access_token));
    }
);

#[actix_web::test]
async fn a_full_hashing_pool_answers_503_with_retry_after() {
    let app = crate::support::TestSetup::new(Backend::Sqlite)
        .env("HASH_WORKERS", "1")
        .env("HASH_QUEUE", "0")
        .env("ARGON2_MEMORY_KIB", "65536")
        .env("ARGON2_ITERATIONS", "3")
        .spawn()
        .await;
    let emails: Vec<String> = (0..12).map(|i| format!("flood{i}@example.com")).collect();
    let attempts = emails.iter().map(|e| app.login(e, "whatever password"));
    let results = futures_util::future::join_all(attempts).await;
    let busy: Vec<_> = results.iter().filter(|r| r.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "statuses: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &busy {
        assert_eq!(r.code(), "service_busy");
        assert!(r.header("retry-after").is_some());
    }
    assert!(results.iter().all(|r| r.status == 503 || r.status == 401));
}
