//! No account pre-hijacking: registering someone else's address first gains
//! nothing. A later registration of an address whose account is unverified
//! replaces the pending password and names and voids the earlier links;
//! whoever proves the mailbox chooses the password. Accounts left unverified
//! are deleted by the sweep.

use std::time::Duration;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{Backend, Resp, TestApp, TestSetup, PASSWORD};

const ATTACKER_PASSWORD: &str = "grey otters juggle at midnight";

fn unique_email() -> String {
    format!("victim-{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn register_named(app: &TestApp, email: &str, password: &str, first_name: &str) -> Resp {
    app.post(
        "/api/v1/auth/register",
        json!({"email": email, "password": password, "first_name": first_name,
               "consents": {"terms": true, "privacy": true}}),
    )
    .await
}

async fn verify(app: &TestApp, token: &str) -> Resp {
    app.post("/api/v1/auth/verify-email", json!({"token": token}))
        .await
}

/// The body of an answer without what differs per request.
fn answer(res: &Resp) -> (u16, Value) {
    (res.status, res.json())
}

on_both_backends!(
    a_later_registration_replaces_an_unverified_one,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = unique_email();
        // The attacker registers the victim's address first.
        let first = register_named(&app, &email, ATTACKER_PASSWORD, "Mallory").await;
        assert_eq!(first.status, 202);
        let attacker_link = app.verification_token(&email, 1).await;

        // The owner registers: the same answer, and a fresh link.
        let second = register_named(&app, &email, PASSWORD, "Alice").await;
        assert_eq!(answer(&second), answer(&first));
        let owner_link = app.verification_token(&email, 2).await;
        assert_ne!(owner_link, attacker_link);

        // The earlier link is void; the owner's verifies.
        let res = verify(&app, &attacker_link).await;
        assert_eq!(res.status, 400, "{}", res.text());
        assert_eq!(verify(&app, &owner_link).await.status, 200);

        // The attacker's password opens nothing; the owner's does, with
        // the owner's names.
        let res = app.login(&email, ATTACKER_PASSWORD).await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_credentials");
        let res = app.login(&email, PASSWORD).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let token = res.token_pair().access_token;
        let me = app.me(&token).await.json();
        assert_eq!(me["first_name"], "Alice");
        assert_eq!(
            app.probe()
                .count_audit("registration_replaced", "success")
                .await
                .unwrap(),
            1
        );

        // Once verified, a registration changes nothing and gets the same answer.
        let third = register_named(&app, &email, ATTACKER_PASSWORD, "Mallory").await;
        assert_eq!(answer(&third), answer(&first));
        let notice = app.smtp().wait_for_nth(&email, 3).await;
        assert!(
            notice.subject().contains("tried to register"),
            "{}",
            notice.subject()
        );
        assert_eq!(app.login(&email, ATTACKER_PASSWORD).await.status, 401);
        assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    }
);

// An account still unverified past `UNVERIFIED_ACCOUNT_MAX_AGE_DAYS` (7 by
// default) is deleted by the sweep, with its links; a verified one of the
// same age and a younger unverified one stay.
on_both_backends!(
    the_sweep_deletes_accounts_left_unverified,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let clock = app.services.clock.clone();
        let stale = unique_email();
        assert_eq!(app.register(&stale, PASSWORD).await.status, 202);
        let stale_link = app.verification_token(&stale, 1).await;
        let verified = app.verified_user().await;
        clock.advance(Duration::from_secs(6 * 86_400));
        let young = unique_email();
        assert_eq!(app.register(&young, PASSWORD).await.status, 202);

        // Six days: nothing is old enough.
        suma_auth::jobs::sweep::sweep_once(&app.services).await;
        assert_eq!(
            app.login(&stale, PASSWORD).await.code(),
            "email_not_verified"
        );

        clock.advance(Duration::from_secs(86_400 + 1));
        suma_auth::jobs::sweep::sweep_once(&app.services).await;
        // The stale account is gone: no such account, a void link.
        let res = app.login(&stale, PASSWORD).await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_credentials");
        assert_eq!(verify(&app, &stale_link).await.status, 400);
        // The others stay.
        assert_eq!(app.login(&verified, PASSWORD).await.status, 200);
        assert_eq!(
            app.login(&young, PASSWORD).await.code(),
            "email_not_verified"
        );
        // The address can be registered afresh.
        assert_eq!(app.register(&stale, PASSWORD).await.status, 202);
        let link = app.verification_token(&stale, 2).await;
        assert_eq!(verify(&app, &link).await.status, 200);
        assert_eq!(app.login(&stale, PASSWORD).await.status, 200);
    }
);

/// The age is configurable, and counts from the latest registration.
#[actix_web::test]
async fn the_unverified_age_is_configurable_and_counts_from_the_latest_registration() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", "2")
        .spawn()
        .await;
    let clock = app.services.clock.clone();
    let email = unique_email();
    assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    clock.advance(Duration::from_secs(86_400 + 3600));
    // Registered again a day later: its age starts over.
    assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    clock.advance(Duration::from_secs(86_400));
    suma_auth::jobs::sweep::sweep_once(&app.services).await;
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "email_not_verified"
    );
    clock.advance(Duration::from_secs(86_400));
    suma_auth::jobs::sweep::sweep_once(&app.services).await;
    assert_eq!(
        app.login(&email, PASSWORD).await.code(),
        "invalid_credentials"
    );
}
