//! Rate limits stay fleet-wide without Redis: while the configured Redis is
//! unreachable (or when none is configured) instances sharing PostgreSQL
//! count in the database, so three instances allow what one would.

use serde_json::json;

use crate::support::redis_server::RedisServer;
use crate::support::{Backend, Resp, TestApp, TestFleet, TestSetup};

fn body() -> serde_json::Value {
    json!({"email": "someone@example.com", "password": "not the password"})
}

async fn three_instances(redis: Option<&str>) -> TestFleet {
    TestFleet::spawn_with(3, |setup| {
        let setup = setup.envs(&[
            ("RATE_LIMIT_LOGIN", "5"),
            ("MAX_LOGIN_ATTEMPTS", "1000"),
            ("TRUSTED_PROXIES", "127.0.0.0/8"),
        ]);
        match redis {
            Some(url) => setup.env("REDIS_ENDPOINT", url),
            None => setup,
        }
    })
    .await
}

/// Fifteen logins from one client, round-robin over the instances: exactly
/// the limit is allowed, and the refusals say when to come back.
async fn exactly_the_limit_across(apps: &[TestApp]) {
    let mut results: Vec<Resp> = Vec::new();
    for i in 0..15 {
        results.push(
            apps[i % apps.len()]
                .post("/api/v1/auth/login", body())
                .await,
        );
    }
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s != 429).count(),
        5,
        "{statuses:?}"
    );
    assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
    let limited = &results[5];
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(limited.header("ratelimit-remaining").as_deref(), Some("0"));

    // Another client, fifteen at once: the key's row lock queues them.
    let at_once = (0..15)
        .map(|i| apps[i % apps.len()].post_from("/api/v1/auth/login", "198.51.100.7", body()));
    let statuses: Vec<u16> = futures_util::future::join_all(at_once)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s != 429).count(),
        5,
        "{statuses:?}"
    );
}

#[actix_web::test]
async fn with_redis_down_the_login_limit_holds_across_three_instances() {
    let mut redis = RedisServer::start().await;
    let apps = three_instances(Some(&redis.url())).await;
    redis.kill();
    exactly_the_limit_across(&apps).await;
}

#[actix_web::test]
async fn without_redis_the_login_limit_holds_across_three_instances() {
    let apps = three_instances(None).await;
    exactly_the_limit_across(&apps).await;
}

/// The database's window slides like Redis's: a refused client gets its
/// place back a window after its oldest request, not at a fixed edge.
#[actix_web::test]
async fn the_database_window_slides() {
    let app = TestSetup::new(Backend::Postgres)
        .env("RATE_LIMIT_LOGIN", "2")
        .env("RATE_LIMIT_WINDOW_SECONDS", "10")
        .env("MAX_LOGIN_ATTEMPTS", "1000")
        .spawn()
        .await;
    let clock = app.services.clock.clone();
    let step = |ms: u64| clock.advance(std::time::Duration::from_millis(ms));
    let mut statuses = Vec::new();
    statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    step(5_000);
    statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    step(4_000);
    statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    // Ten seconds after the first request its place frees, not the second's.
    step(1_100);
    statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    step(5_000);
    statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    assert_eq!(statuses, vec![401, 401, 429, 401, 429, 401]);
}
