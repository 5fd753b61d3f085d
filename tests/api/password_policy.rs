//! The password policy through HTTP: guessable passwords of 12 or more
//! characters are refused with a machine-readable reason on every path that
//! sets a password (registration, change, reset), and the user's own names
//! reach the check on each of them.

use awc::http::header;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, Resp, TestApp, TokenPair, PASSWORD};

fn codes(res: &Resp) -> Vec<String> {
    res.problem().errors.into_iter().map(|e| e.code).collect()
}

fn assert_refused(res: &Resp, field: &str, code: &str, what: &str) {
    assert_eq!(res.status, 422, "{what}: {}", res.text());
    assert_eq!(res.json()["code"], "validation_failed", "{what}");
    assert_eq!(codes(res), vec![code.to_string()], "{what}");
    assert_eq!(res.problem().errors[0].field, field, "{what}");
}

async fn register_named(app: &TestApp, email: &str, password: &str) -> Resp {
    app.post(
        "/api/v1/auth/register",
        json!({"email": email, "password": password, "first_name": "Rosalind",
            "last_name": "Quimbleton", "consents": {"terms": true, "privacy": true}}),
    )
    .await
}

/// A verified, signed-in user named Rosalind Quimbleton; returns the email
/// and the token pair.
async fn named_user(app: &TestApp) -> (String, TokenPair) {
    let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(register_named(app, &email, PASSWORD).await.status, 202);
    let token = app.verification_token(&email, 1).await;
    let res = app
        .post("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_eq!(res.status, 200);
    let pair = app.login_pair(&email).await;
    (email, pair)
}

on_both_backends!(
    guessable_twelve_character_passwords_are_refused_at_registration,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let cases = [
            ("123456789012", "breached"),
            ("aaaaaaaaaaaa", "breached"),
            ("avadakedavra", "breached"),
            ("sumafinance2025", "too_weak"),
            ("SumaFinance!!", "too_weak"),
            ("SumaFinance2025!", "too_weak"),
            ("Password2025!", "too_weak"),
            ("1q2w3e4r5t6y", "common_password"),
            ("short", "too_short"),
        ];
        for (password, code) in cases {
            let email = format!("p-{}@example.com", uuid::Uuid::new_v4().simple());
            let res = app.register(&email, password).await;
            assert_refused(&res, "password", code, password);
            // The reason is readable by a person too, without the password.
            let message = res.problem().errors[0].message.clone();
            assert!(!message.is_empty() && !message.contains(password));
        }
        // The names sent with the registration reach the policy.
        let email = format!("p-{}@example.com", uuid::Uuid::new_v4().simple());
        let res = register_named(&app, &email, "rosalind keeps the keys!").await;
        assert_refused(&res, "password", "contains_personal_info", "first name");
        let res = register_named(&app, &email, "Quimbleton2025!").await;
        assert_refused(&res, "password", "contains_personal_info", "last name");
        // The same password without those names is fine, and so is the
        // strong passphrase of the README.
        let other = format!("p-{}@example.com", uuid::Uuid::new_v4().simple());
        assert_eq!(
            app.register(&other, "rosalind keeps the keys!")
                .await
                .status,
            202
        );
        assert_eq!(register_named(&app, &email, PASSWORD).await.status, 202);
    }
);

on_both_backends!(
    password_change_checks_strength_and_the_stored_names,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (_, pair) = named_user(&app).await;
        let access = pair.access_token.clone();
        let change = |new: &str| {
            let body = json!({"current_password": PASSWORD, "new_password": new});
            let req = app
                .client
                .post(app.url("/api/v1/auth/password/change"))
                .insert_header((header::AUTHORIZATION, format!("Bearer {access}")));
            app.send(req, Some(body))
        };
        let res = change("SumaFinance2025!").await;
        assert_refused(&res, "new_password", "too_weak", "service words");
        let res = change("123456789012").await;
        assert_refused(&res, "new_password", "breached", "breached");
        let res = change("Rosalind in the garden").await;
        assert_refused(&res, "new_password", "contains_personal_info", "name");
        let res = change("a brand new passphrase").await;
        assert_eq!(res.status, 204, "{}", res.text());
    }
);

on_both_backends!(
    password_reset_checks_strength_and_the_stored_names,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, _) = named_user(&app).await;
        let res = app
            .post("/api/v1/auth/password-reset", json!({"email": email}))
            .await;
        assert_eq!(res.status, 202);
        let mail = app.smtp().wait_for_nth(&email, 2).await;
        let token = mail
            .token_after("http://app.test/reset-password?token=")
            .unwrap();
        let confirm = |new: &str| {
            app.post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": token, "new_password": new}),
            )
        };
        let res = confirm("aaaaaaaaaaaa").await;
        assert_refused(&res, "new_password", "breached", "breached");
        let res = confirm("qwertyuiopasdf").await;
        assert_refused(&res, "new_password", "too_weak", "keyboard row");
        let res = confirm("quimbleton & rosalind").await;
        assert_refused(&res, "new_password", "contains_personal_info", "names");
        // A refused password does not spend the link.
        let res = confirm("a completely new passphrase").await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
);
