//! Per-IP rate limits: global across instances with Redis, per instance
//! without; forwarded headers only from trusted proxies.

use serde_json::json;

use crate::support::{redis_url, Backend, SmtpSink, TestApp, TestDatabase, TestSetup};

fn body() -> serde_json::Value {
    json!({"email": "someone@example.com", "password": "not the password"})
}

#[actix_web::test]
async fn the_login_limit_holds_globally_across_three_instances() {
    let db = TestDatabase::create().await;
    let smtp = SmtpSink::start().await;
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            TestSetup::new(Backend::Postgres)
                .sharing(&db.url, &prefix, &smtp)
                .env("REDIS_ENDPOINT", &redis_url())
                .env("RATE_LIMIT_LOGIN", "5")
                .env("MAX_LOGIN_ATTEMPTS", "1000")
                .spawn()
                .await,
        );
    }
    let mut statuses = Vec::new();
    for i in 0..15 {
        statuses.push(apps[i % 3].post("/api/v1/auth/login", body()).await);
    }
    let allowed = statuses.iter().filter(|r| r.status != 429).count();
    assert_eq!(
        allowed,
        5,
        "{:?}",
        statuses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let limited = statuses.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(
        limited.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry));
    assert_eq!(limited.header("ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(limited.header("ratelimit-remaining").as_deref(), Some("0"));
    assert!(limited.header("ratelimit-reset").is_some());
    // Other routes have their own budget.
    assert_ne!(apps[0].get("/health").await.status, 429);
}

#[actix_web::test]
async fn without_redis_the_in_memory_limiter_decides() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_REGISTER", "3")
        .spawn()
        .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let res = app
            .post(
                "/api/v1/auth/register",
                json!({"email": format!("r{i}@example.com"), "password": "correct horse battery staple",
                       "consents": {"terms": true, "privacy": true}}),
            )
            .await;
        statuses.push(res.status);
    }
    assert_eq!(statuses, vec![202, 202, 202, 429, 429]);
}

#[actix_web::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_LOGIN", "2")
        .spawn()
        .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            app.post_from("/api/v1/auth/login", &format!("203.0.113.{i}"), body())
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![401, 401, 429, 429]);
}

#[actix_web::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_LOGIN", "2")
        .env("TRUSTED_PROXIES", "127.0.0.0/8")
        .spawn()
        .await;
    // Two clients behind the proxy each get their own budget.
    for client in ["198.51.100.1", "198.51.100.2"] {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(
                app.post_from("/api/v1/auth/login", &format!("10.9.9.9, {client}"), body())
                    .await
                    .status,
            );
        }
        assert_eq!(statuses, vec![401, 401, 429], "{client}");
    }
}

#[actix_web::test]
async fn rate_limited_answers_are_the_same_for_everyone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // The default test limit is high; make sure ordinary use is not limited.
    for _ in 0..10 {
        assert_ne!(app.post("/api/v1/auth/login", body()).await.status, 429);
    }
}
