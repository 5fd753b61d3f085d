use serde_json::json;

use crate::on_both_backends;
use crate::support::smtp::Received;
use crate::support::{Backend, TestApp, TestSetup, PASSWORD};

on_both_backends!(
    the_mailed_link_verifies_once,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = format!("v-{}@example.com", uuid::Uuid::new_v4().simple());
        app.register(&email, PASSWORD).await;
        let token = app.verification_token(&email, 1).await;
        let res = app
            .post("/api/v1/auth/verify-email", json!({"token": token}))
            .await;
        assert_eq!(res.status, 200);
        assert_eq!(res.json(), json!({"status": "verified"}));
        let again = app
            .post("/api/v1/auth/verify-email", json!({"token": token}))
            .await;
        assert_eq!(again.status, 400);
        assert_eq!(again.code(), "invalid_token");
    }
);

on_both_backends!(
    unknown_and_garbage_tokens_are_invalid,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        for token in ["", "abc", &"A".repeat(43), "'; DROP TABLE users; --"] {
            let res = app
                .post("/api/v1/auth/verify-email", json!({"token": token}))
                .await;
            assert_eq!(res.status, 400, "{token}");
            assert_eq!(res.code(), "invalid_token");
        }
    }
);

on_both_backends!(tokens_expire_after_a_day, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let email = format!("exp-{}@example.com", uuid::Uuid::new_v4().simple());
    app.register(&email, PASSWORD).await;
    let token = app.verification_token(&email, 1).await;
    app.services
        .clock
        .advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let res = app
        .post("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_eq!(res.status, 400);
});

on_both_backends!(
    resend_sends_a_new_link_and_says_202_for_anyone,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = format!("r-{}@example.com", uuid::Uuid::new_v4().simple());
        app.register(&email, PASSWORD).await;
        app.smtp().wait_for(&email).await;
        let res = app
            .post("/api/v1/auth/verify-email/resend", json!({"email": email}))
            .await;
        assert_eq!(res.status, 202);
        let second = app.verification_token(&email, 2).await;
        let unknown = app
            .post(
                "/api/v1/auth/verify-email/resend",
                json!({"email": "nobody@example.com"}),
            )
            .await;
        assert_eq!(unknown.status, 202);
        assert_eq!(unknown.json(), res.json());
        assert_eq!(
            app.post("/api/v1/auth/verify-email", json!({"token": second}))
                .await
                .status,
            200
        );
        // Verified accounts get no more links.
        app.post("/api/v1/auth/verify-email/resend", json!({"email": email}))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(app.smtp().count_to(&email), 2);
    }
);

#[actix_web::test]
async fn without_smtp_mail_lands_as_eml_files_with_the_link() {
    let app = TestSetup::new(Backend::Sqlite).without_smtp().spawn().await;
    let email = format!("file-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    let dir = app._data_dir.0.join("mail");
    let mut found = None;
    for _ in 0..100 {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "eml") {
                    found = Some(std::fs::read_to_string(entry.path()).unwrap());
                }
            }
        }
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let raw = found.expect("an .eml file in DATA_DIR/mail");
    let mail = Received {
        to: vec![email.clone()],
        raw,
    };
    let token = mail.token_after("verify-email?token=").expect("link");
    let res = app
        .post("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
}
