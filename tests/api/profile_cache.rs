//! `GET /me` on PostgreSQL answers from a per-instance copy of the user that
//! every change to the row invalidates: the writer's own instance at once,
//! every other instance when the change notice (a `users` trigger and
//! `NOTIFY`) arrives.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::probe::Probe;
use crate::support::{redis_url, TestApp, TestFleet, TokenPair};

/// Two instances on one database and Redis, both listening for user changes.
async fn two_instances() -> TestFleet {
    let fleet = TestFleet::spawn_with(2, |setup| setup.env("REDIS_ENDPOINT", &redis_url())).await;
    let start = Instant::now();
    while !fleet
        .apps
        .iter()
        .all(|a| a.services.store.profile_cache_on())
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the instances did not start listening for user changes"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    fleet
}

async fn me(app: &TestApp, pair: &TokenPair) -> Value {
    let res = app.me(&pair.access_token).await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.json()
}

/// Runs SQL on the shared database as an operator would.
async fn sql(app: &TestApp, statements: &str) {
    let Probe::Postgres(url) = app.probe() else {
        unreachable!("a PostgreSQL instance")
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute(statements).await.unwrap();
}

/// A change made outside the instance (here by SQL; the same holds for
/// another instance or the operator CLI) reaches `/me` through the notice
/// alone: an entry is otherwise trusted for 5 s, and this waits at most 2 s.
/// The same change with triggers off (no notice) stays unseen, which shows
/// that the answer really comes from memory.
#[actix_web::test]
async fn a_change_elsewhere_reaches_me_through_the_notice() {
    let fleet = two_instances().await;
    let apps = &fleet.apps;
    let (email, pair) = apps[0].signed_in().await;
    let other = &apps[1];
    assert_eq!(me(other, &pair).await["email"], email.as_str());
    assert_eq!(me(other, &pair).await["first_name"], Value::Null);

    sql(
        other,
        &format!(
            "SET session_replication_role = replica; \
             UPDATE users SET first_name = 'Quiet' WHERE email = '{email}';"
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        me(other, &pair).await["first_name"],
        Value::Null,
        "without a notice the cached profile is still served"
    );

    sql(
        other,
        &format!("UPDATE users SET first_name = 'Noticed' WHERE email = '{email}';"),
    )
    .await;
    let start = Instant::now();
    loop {
        if me(other, &pair).await["first_name"] == "Noticed" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the change notice did not reach the other instance"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A change made through an instance is in that instance's next answer.
#[actix_web::test]
async fn the_writer_instance_answers_its_own_change_at_once() {
    let fleet = two_instances().await;
    let apps = &fleet.apps;
    let (_, pair) = apps[0].signed_in().await;
    for app in apps {
        assert_eq!(me(app, &pair).await["two_factor_enabled"], false);
    }
    apps[0].turn_on_email_codes(&pair.access_token).await;
    assert_eq!(me(&apps[0], &pair).await["two_factor_enabled"], true);
}
