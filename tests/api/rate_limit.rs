//! Per-IP rate limits: global across instances with Redis, per instance
//! without; forwarded headers only from trusted proxies.

use serde_json::json;

use crate::support::{redis_url, Backend, TestApp, TestFleet, TestSetup};

fn body() -> serde_json::Value {
    json!({"email": "someone@example.com", "password": "not the password"})
}

#[actix_web::test]
async fn the_login_limit_holds_globally_across_three_instances() {
    let apps = TestFleet::spawn_with(3, |setup| {
        setup
            .env("REDIS_ENDPOINT", &redis_url())
            .envs(&[("RATE_LIMIT_LOGIN", "5"), ("MAX_LOGIN_ATTEMPTS", "1000")])
    })
    .await;
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

/// The path with one character of its last segment percent-encoded (`logi%6E`):
/// the router decodes it and reaches the same handler.
fn encoded_spelling(path: &str) -> String {
    let (head, last) = path.rsplit_once('/').unwrap();
    let mut chars: Vec<char> = last.chars().collect();
    let c = chars.pop().unwrap();
    let rest: String = chars.into_iter().collect();
    format!("{head}/{rest}%{:02X}", c as u32)
}

/// Every route declared with a rate class keeps its limit whatever the spelling
/// of its path: the limit is taken on the route the router matched.
#[actix_web::test]
async fn every_limited_route_keeps_its_limit_under_any_spelling() {
    use suma_auth::http::routes::{MOUNTED, MOUNTED_RATES};
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_LOGIN", "2")
        .env("RATE_LIMIT_REGISTER", "2")
        .env("RATE_LIMIT_PASSWORD_RESET", "2")
        .env("RATE_LIMIT_OTP", "2")
        .env("RATE_LIMIT_EXPORT", "2")
        .with_statsd()
        .spawn()
        .await;
    let limited: Vec<_> = MOUNTED
        .iter()
        .zip(MOUNTED_RATES)
        .filter_map(|((m, p), r)| r.map(|r| (*m, *p, r)))
        .collect();
    assert!(limited.len() >= 7, "{limited:?}");
    // Routes that share a class share one window: count per class.
    let mut used: std::collections::HashMap<&str, u32> = Default::default();
    let call = |method: &str, path: &str| {
        let req = match method {
            "get" => app.client.get(app.url(path)),
            "post" => app.client.post(app.url(path)),
            other => panic!("unexpected method {other}"),
        };
        app.send(req, Some(json!({})))
    };
    for (method, path, class) in &limited {
        let spelled = encoded_spelling(path);
        let n = used.entry(class.name()).or_default();
        let mut statuses = Vec::new();
        while *n < 2 {
            let r = call(method, &spelled).await;
            assert_ne!(r.status, 404, "{spelled} must reach its handler");
            statuses.push(r.status);
            *n += 1;
        }
        let r = call(method, &spelled).await;
        assert_eq!(r.status, 429, "{spelled} after {statuses:?}");
        // The plain spelling is refused too: one window per route class.
        assert_eq!(call(method, path).await.status, 429, "{path}");
    }
    // Metrics name the matched route, not "unmatched".
    let statsd = app.statsd.clone().unwrap();
    statsd
        .wait_for(
            "auth.endpoint.requests:",
            &["endpoint:/api/v1/auth/login", "status:429"],
        )
        .await;
    // Other spellings (case, doubled or trailing slashes) reach no handler at all.
    for path in [
        "/API/v1/auth/login",
        "//api/v1/auth/login",
        "/api/v1//auth/login",
        "/api/v1/auth/login/",
    ] {
        assert_eq!(app.post(path, body()).await.status, 404, "{path}");
    }
}

/// IPv6 clients are limited per /64: rotating addresses inside one network
/// shares one budget; another network has its own.
#[actix_web::test]
async fn ipv6_clients_are_limited_per_network() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("RATE_LIMIT_LOGIN", "2")
        .env("TRUSTED_PROXIES", "127.0.0.0/8")
        .spawn()
        .await;
    let mut statuses = Vec::new();
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
        statuses.push(
            app.post_from("/api/v1/auth/login", host, body())
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![401, 401, 429]);
    let other = app
        .post_from("/api/v1/auth/login", "2001:db8:1:3::1", body())
        .await;
    assert_eq!(other.status, 401);
}

/// With Redis the window slides: two requests at the end of one window and
/// two just after its edge would all pass a fixed window; here the second
/// pair is refused until the first pair is a window old.
#[actix_web::test]
async fn no_window_edge_lets_twice_the_limit_through() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("REDIS_ENDPOINT", &redis_url())
        .env("RATE_LIMIT_LOGIN", "2")
        .env("RATE_LIMIT_WINDOW_SECONDS", "10")
        .spawn()
        .await;
    let clock = app.services.clock.clone();
    // Move to 9.5 s into a 10 s fixed window.
    let into = clock.now_ms().rem_euclid(10_000);
    clock.advance(std::time::Duration::from_millis(
        (19_500 - into) as u64 % 10_000,
    ));
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    }
    clock.advance(std::time::Duration::from_millis(1_000));
    for _ in 0..2 {
        statuses.push(app.post("/api/v1/auth/login", body()).await.status);
    }
    assert_eq!(statuses, vec![401, 401, 429, 429]);
    let refused = app.post("/api/v1/auth/login", body()).await;
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((8..=10).contains(&retry), "{retry}");
    // A window after the first pair, the budget is back.
    clock.advance(std::time::Duration::from_millis(9_100));
    assert_eq!(app.post("/api/v1/auth/login", body()).await.status, 401);
}
