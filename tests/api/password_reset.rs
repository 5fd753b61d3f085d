//! Password reset: the same 202 for every email, a single-use one-hour link,
//! and a confirmation that ends every session and clears the lockout.

use std::time::Duration;

use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, PASSWORD};

const NEW: &str = "a completely new passphrase";

async fn reset_token(app: &TestApp, email: &str, n: usize) -> String {
    let mail = app.smtp().wait_for_nth(email, n).await;
    assert!(mail.subject().contains("Reset"), "{}", mail.subject());
    mail.token_after("http://app.test/reset-password?token=")
        .unwrap_or_else(|| panic!("no reset link in {}", mail.decoded()))
}

on_both_backends!(reset_flow_end_to_end, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let (email, pair) = app.signed_in().await;
    let known = app
        .post("/api/v1/auth/password-reset", json!({"email": email}))
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/password-reset",
            json!({"email": "nobody-at-all@example.com"}),
        )
        .await;
    assert_eq!(known.status, 202);
    assert_eq!(unknown.status, 202);
    assert_eq!(known.json(), unknown.json());
    let token = reset_token(&app, &email, 2).await;

    // A weak or reused password does not spend the token.
    let weak = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "new_password": "short"}),
        )
        .await;
    assert_eq!(weak.status, 422);
    let reused = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.problem().errors[0].code, "password_reused");

    let ok = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "new_password": NEW}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(app.me(&pair.access_token).await.status, 401);
    assert_eq!(app.login(&email, PASSWORD).await.status, 401);
    assert_eq!(app.login(&email, NEW).await.status, 200);
    let again = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "new_password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.code(), "invalid_token");
    let changed = app.smtp().wait_for_nth(&email, 3).await;
    assert!(changed.subject().contains("password was changed"));
    assert_eq!(
        app.probe()
            .count_audit("password_reset", "success")
            .await
            .unwrap(),
        1
    );
});

on_both_backends!(
    reset_tokens_expire_after_an_hour,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        app.post("/api/v1/auth/password-reset", json!({"email": email}))
            .await;
        let token = reset_token(&app, &email, 2).await;
        app.services.clock.advance(Duration::from_secs(3601));
        let res = app
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": token, "new_password": NEW}),
            )
            .await;
        assert_eq!(res.status, 400);
    }
);

#[actix_web::test]
async fn at_most_three_links_an_hour_and_a_reset_clears_the_lockout() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = app.verified_user().await;
    for _ in 0..5 {
        assert_eq!(
            app.post("/api/v1/auth/password-reset", json!({"email": email}))
                .await
                .status,
            202
        );
    }
    let token = reset_token(&app, &email, 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.smtp().count_to(&email),
        4,
        "verification + 3 reset links"
    );

    for _ in 0..6 {
        app.login(&email, "wrong password again").await;
    }
    assert_eq!(app.login(&email, PASSWORD).await.status, 423);
    let res = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": token, "new_password": NEW}),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.login(&email, NEW).await.status, 200);
    // An older link of the same user is spent too.
    let older = reset_token(&app, &email, 2).await;
    let res = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": older, "new_password": "one more new passphrase"}),
        )
        .await;
    assert_eq!(res.status, 400);
}
