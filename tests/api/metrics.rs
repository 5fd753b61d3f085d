use std::time::Duration;

use crate::support::{Backend, TestSetup, PASSWORD};

#[actix_web::test]
async fn statsd_receives_endpoint_and_login_metrics() {
    let app = TestSetup::new(Backend::Sqlite).with_statsd().spawn().await;
    let statsd = app.statsd.clone().unwrap();
    let email = app.verified_user().await;
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    assert_eq!(app.login(&email, "wrong password again").await.status, 401);
    assert_eq!(app.get("/api/v1/nope").await.status, 404);

    let line = statsd
        .wait_for(
            "auth.endpoint.requests:1|c",
            &[
                "endpoint:/api/v1/auth/login",
                "env:test",
                "service:suma-auth",
                "version:",
            ],
        )
        .await;
    assert!(!line.contains('@'), "no emails in tags: {line}");
    statsd.wait_for("auth.login.success:1|c", &[]).await;
    statsd
        .wait_for("auth.login.failure:1|c", &["reason:invalid_credentials"])
        .await;
    statsd
        .wait_for(
            "auth.endpoint.errors:1|c",
            &[
                "endpoint:/api/v1/auth/login",
                "status:401",
                "status_class:4xx",
            ],
        )
        .await;
    statsd
        .wait_for(
            "auth.endpoint.errors:1|c",
            &["endpoint:unmatched", "status:404"],
        )
        .await;
    statsd
        .wait_for(
            "auth.endpoint.duration:",
            &["|d", "endpoint:/api/v1/auth/login"],
        )
        .await;
    for line in statsd.lines() {
        assert!(!line.contains(&email), "{line}");
    }
}

/// Datadog unified service tagging: `DD_SERVICE`, `DD_ENV`, `DD_VERSION`
/// become the tags of every metric.
#[actix_web::test]
async fn dd_variables_become_the_service_env_and_version_tags() {
    let app = TestSetup::new(Backend::Sqlite)
        .with_statsd()
        .env("DD_SERVICE", "auth-edge")
        .env("DD_ENV", "staging-eu")
        .env("DD_VERSION", "9.9.9")
        .spawn()
        .await;
    let statsd = app.statsd.clone().unwrap();
    assert_eq!(app.get("/health").await.status, 200);
    let line = statsd
        .wait_for("auth.endpoint.requests:1|c", &["endpoint:/health"])
        .await;
    for tag in ["service:auth-edge", "env:staging-eu", "version:9.9.9"] {
        assert!(line.contains(tag), "{tag} missing: {line}");
    }
    let gauge = statsd.wait_for("auth.actors.live:", &[]).await;
    assert!(gauge.contains("service:auth-edge"), "{gauge}");
}

/// Without DD_VERSION the version tag is the build's version and git sha.
#[actix_web::test]
async fn the_default_version_tag_carries_the_git_sha() {
    let app = TestSetup::new(Backend::Sqlite).with_statsd().spawn().await;
    let statsd = app.statsd.clone().unwrap();
    assert_eq!(app.get("/health").await.status, 200);
    let line = statsd
        .wait_for("auth.endpoint.requests:1|c", &["endpoint:/health"])
        .await;
    assert!(
        line.contains(&format!("version:{}", suma_auth::config::BUILD_VERSION)),
        "{line}"
    );
    assert!(suma_auth::config::BUILD_VERSION.contains('+'));
    // The latency distribution is tagged with the status class too.
    statsd
        .wait_for(
            "auth.endpoint.duration:",
            &["|d", "endpoint:/health", "method:GET", "status_class:2xx"],
        )
        .await;
}

/// The gauges the catalogue declares are sent: outbox, database pool,
/// dependencies, actors, hash pool — and refused hashes are counted.
#[actix_web::test]
async fn declared_gauges_and_hash_pool_rejections_are_sent() {
    let app = TestSetup::new(Backend::Postgres)
        .with_statsd()
        .env("REDIS_ENDPOINT", &crate::support::redis_url())
        .env("HASH_WORKERS", "1")
        .env("HASH_QUEUE", "0")
        .env("ARGON2_MEMORY_KIB", "65536")
        .env("ARGON2_ITERATIONS", "3")
        .spawn()
        .await;
    let statsd = app.statsd.clone().unwrap();
    for (name, tags) in [
        ("auth.mail.outbox.depth:", &[][..]),
        ("auth.mail.outbox.age:", &[]),
        ("auth.mail.outbox.dead:", &[]),
        ("auth.db.pool.connections:", &[]),
        ("auth.db.pool.idle:", &[]),
        ("auth.redis.pool.connections:", &[]),
        ("auth.redis.pool.idle:", &[]),
        ("auth.dependency.up:1|g", &["dependency:database"]),
        ("auth.dependency.up:1|g", &["dependency:redis"]),
        ("auth.hash_pool.in_flight:", &[]),
        ("auth.actors.live:", &[]),
        ("auth.actors.mailbox_rejections:", &[]),
    ] {
        let line = statsd.wait_for(name, tags).await;
        assert!(line.contains("|g"), "{line}");
    }
    let emails: Vec<String> = (0..12).map(|i| format!("flood{i}@example.com")).collect();
    let results =
        futures_util::future::join_all(emails.iter().map(|e| app.login(e, "whatever password")))
            .await;
    let busy = results.iter().filter(|r| r.status == 503).count() as u64;
    assert!(busy > 0);
    // Gauges and this counter are published every 10 s; a burst may straddle two.
    let counted = || -> u64 {
        statsd
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("auth.hash_pool.rejected:"))
            .filter_map(|l| l.split('|').next()?.parse::<u64>().ok())
            .sum()
    };
    statsd
        .wait_for_within("auth.hash_pool.rejected:", &["|c"], Duration::from_secs(15))
        .await;
    for _ in 0..120 {
        if counted() >= busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted(), busy);
}
