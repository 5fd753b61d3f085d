//! The Redis pool's connections: checked out without a `PING` while they
//! keep answering, `PING`ed after a pause (so a restart while they sat idle
//! costs no failed command), and all of them checked after a failure.

use std::time::Duration;

use suma_auth::config::RedisConfig;
use suma_auth::redis::RedisStore;

use crate::support::redis_server::{Monitor, RedisServer};

fn store(redis: &RedisServer) -> RedisStore {
    let config = RedisConfig {
        endpoint: redis.url(),
        auth_token: None,
        key_prefix: "pool-test".into(),
    };
    RedisStore::new(&config, "pool-test").unwrap()
}

/// One command through the store: a rate window's hit.
async fn hit(store: &RedisStore) -> bool {
    store
        .rate_hit("route", "client", 1_000, 60_000, 1_000)
        .await
        .is_ok()
}

/// Commands one after another go to Redis alone: no `PING` before each.
#[actix_web::test]
async fn commands_in_a_row_send_no_ping() {
    let redis = RedisServer::start().await;
    let store = store(&redis);
    assert!(hit(&store).await);
    let mut monitor = Monitor::start(&redis.url()).await;
    for _ in 0..20 {
        assert!(hit(&store).await);
    }
    monitor.mark("end").await;
    let sent = |word: &str| monitor.count(|l| l.contains(word));
    assert_eq!(
        sent("\"EVALSHA\""),
        20,
        "{:#?}",
        monitor.lines.lock().unwrap()
    );
    assert_eq!(sent("\"PING\""), 0, "{:#?}", monitor.lines.lock().unwrap());
}

/// Redis restarted while the pool's connections sat idle: the next command
/// finds them dead by their `PING` and goes through a new connection.
#[actix_web::test]
async fn a_restart_while_idle_costs_no_command() {
    let mut redis = RedisServer::start().await;
    let store = store(&redis);
    assert!(hit(&store).await);
    redis.kill();
    redis.resume().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(hit(&store).await, "the command after the restart failed");
    assert!(store.looks_up());
}

/// Redis restarted just after commands on several connections: a command
/// may then fail on a connection that answered a moment ago (the service
/// falls back for a second), but once that second is over every connection
/// open at the restart has been checked, and commands go through again.
#[actix_web::test]
async fn after_a_restart_in_use_the_pool_heals_within_a_second() {
    let mut redis = RedisServer::start().await;
    let store = store(&redis);
    // Several connections in the pool, all of them answering just now.
    let together = futures_util::future::join_all((0..8).map(|_| hit(&store))).await;
    assert!(together.iter().all(|ok| *ok));
    redis.kill();
    redis.resume().await;
    for _ in 0..3 {
        if !hit(&store).await {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    for _ in 0..8 {
        assert!(
            hit(&store).await,
            "a connection open at the restart was used"
        );
    }
}
