//! The hourly cap on mail one address receives unasked
//! (`MAIL_PER_ADDRESS_PER_HOUR`): verification links and notices of a
//! registration for a taken address, whichever clients ask, from whichever
//! addresses, through whichever instance.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{redis_url, Backend, TestApp, TestFleet, TestSetup, PASSWORD};

const CAP: usize = 3;

fn registration(email: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "consents": {"terms": true, "privacy": true}})
}

/// One instance whose addresses are mailed at most [`CAP`] times an hour.
async fn capped(backend: Backend) -> TestApp {
    TestSetup::new(backend)
        .env("MAIL_PER_ADDRESS_PER_HOUR", &CAP.to_string())
        .with_statsd()
        .spawn()
        .await
}

/// Waits until `email` has received `n` mails, then a little longer so that
/// one more (which must not come) would have arrived.
async fn settled_count(app: &TestApp, email: &str, n: usize) -> usize {
    for _ in 0..100 {
        if app.smtp().count_to(email) >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.smtp().count_to(email)
}

#[actix_web::test]
async fn registrations_for_a_taken_address_mail_its_owner_up_to_the_cap_from_any_client() {
    let apps = TestFleet::spawn_with(3, |setup| {
        setup.env("REDIS_ENDPOINT", &redis_url()).envs(&[
            ("MAIL_PER_ADDRESS_PER_HOUR", "3"),
            ("TRUSTED_PROXIES", "127.0.0.0/8"),
        ])
    })
    .await;
    // The owner's own registration mailed the first of the hour's three.
    let email = apps[0].verified_user().await;
    for i in 0..6 {
        let from = format!("203.0.113.{}", i + 1);
        let res = apps[i % 3]
            .post_from("/api/v1/auth/register", &from, registration(&email))
            .await;
        assert_eq!(res.status, 202, "the answer never changes");
        assert_eq!(res.json(), json!({"status": "verification_pending"}));
    }
    assert_eq!(settled_count(&apps[0], &email, CAP).await, CAP);
    let notices = apps
        .smtp
        .all()
        .iter()
        .filter(|m| m.to.contains(&email) && m.token_after("verify-email?token=").is_none())
        .count();
    assert_eq!(notices, CAP - 1, "the link, then two notices");
    // The window is keyed by a digest: no key of it holds the address.
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*mail_to_address*", apps.prefix))
        .query(&mut redis)
        .unwrap();
    assert!(!keys.is_empty(), "no mail window in Redis");
    assert!(keys.iter().all(|k| !k.contains(&email)), "{keys:?}");

    // An hour later the address is mailed again.
    apps.advance(3601);
    apps[1]
        .post_from(
            "/api/v1/auth/register",
            "198.51.100.7",
            registration(&email),
        )
        .await;
    assert_eq!(settled_count(&apps[0], &email, CAP + 1).await, CAP + 1);
}

#[actix_web::test]
async fn registrations_of_one_new_address_at_once_on_three_instances_mail_it_the_cap() {
    let apps = TestFleet::spawn_with(3, |setup| {
        setup
            .env("REDIS_ENDPOINT", &redis_url())
            .env("MAIL_PER_ADDRESS_PER_HOUR", "3")
    })
    .await;
    let email = format!("at-once-{}@example.com", uuid::Uuid::new_v4().simple());
    let answers =
        join_all((0..12).map(|i| apps[i % 3].post("/api/v1/auth/register", registration(&email))))
            .await;
    assert!(answers.iter().all(|r| r.status == 202));
    assert_eq!(settled_count(&apps[0], &email, CAP).await, CAP);
    // One of the links mailed is the live one: the account can be verified.
    let mut verified = 0;
    for mail in apps.smtp.all().iter().filter(|m| m.to.contains(&email)) {
        let token = mail.token_after("verify-email?token=").expect("a link");
        let res = apps[0]
            .post("/api/v1/auth/verify-email", json!({"token": token}))
            .await;
        verified += usize::from(res.status == 200);
    }
    assert_eq!(verified, 1);
}

on_both_backends!(
    resends_mail_an_unverified_address_up_to_the_cap,
    |backend: Backend| async move {
        let app = capped(backend).await;
        let email = format!("resend-{}@example.com", uuid::Uuid::new_v4().simple());
        assert_eq!(app.register(&email, PASSWORD).await.status, 202);
        app.smtp().wait_for(&email).await;
        for _ in 0..5 {
            let res = app
                .post("/api/v1/auth/verify-email/resend", json!({"email": email}))
                .await;
            assert_eq!(res.status, 202);
        }
        assert_eq!(settled_count(&app, &email, CAP).await, CAP);
        let statsd = app.statsd.clone().unwrap();
        statsd
            .wait_for("auth.mail.withheld:", &["route:verify_resend"])
            .await;
        // A registration for the address is withheld too.
        assert_eq!(app.register(&email, PASSWORD).await.status, 202);
        statsd
            .wait_for("auth.mail.withheld:", &["route:register"])
            .await;
        assert_eq!(settled_count(&app, &email, CAP).await, CAP);
        let token = app.verification_token(&email, CAP).await;
        if backend == Backend::Sqlite {
            // The embedded default counts in memory on the real clock.
            let res = app
                .post("/api/v1/auth/verify-email", json!({"token": token}))
                .await;
            assert_eq!(res.status, 200, "the newest link mailed works");
            return;
        }
        // The database's window follows the service's clock: an hour later
        // the address is mailed again.
        app.services.clock.advance(Duration::from_secs(3601));
        let res = app
            .post("/api/v1/auth/verify-email/resend", json!({"email": email}))
            .await;
        assert_eq!(res.status, 202);
        assert_eq!(settled_count(&app, &email, CAP + 1).await, CAP + 1);
        let newest = app.verification_token(&email, CAP + 1).await;
        assert_ne!(token, newest);
        let res = app
            .post("/api/v1/auth/verify-email", json!({"token": newest}))
            .await;
        assert_eq!(res.status, 200);
    }
);

on_both_backends!(
    resends_for_an_address_that_gets_no_mail_use_none_of_its_cap,
    |backend: Backend| async move {
        let app = capped(backend).await;
        // Verified: a resend mails nothing, so it counts for nothing.
        let email = app.verified_user().await;
        for _ in 0..5 {
            app.post("/api/v1/auth/verify-email/resend", json!({"email": email}))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The hour's other two mails are still the owner's.
        for _ in 0..2 {
            assert_eq!(app.register(&email, PASSWORD).await.status, 202);
        }
        assert_eq!(settled_count(&app, &email, CAP).await, CAP);
    }
);
