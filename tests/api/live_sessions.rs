//! Session liveness held in memory on every instance (PostgreSQL + Redis,
//! three instances on one database and one Redis prefix): an authenticated
//! request is decided without a round trip, a revocation reaches every
//! instance through the revocation channel at once (the revoking request
//! answers once every instance confirmed it), a lost message is
//! bounded by `SESSION_REVALIDATE_SECONDS`, a lost subscription (a Redis
//! restart) makes every instance revalidate, and activity decided in memory
//! reaches Redis in batches.

use std::sync::Arc;
use std::time::Duration;

use crate::support::redis_server::{Monitor, RedisServer};
use crate::support::{redis_url, Resp, TestApp, TestFleet, TokenPair};

/// Three instances on one database and the Redis at `redis`, with `env`;
/// when `first_unpublished`, the first publishes no revocation (a lost
/// message). Returned once every instance listens to the revocation channel.
async fn three_instances(redis: &str, env: &[(&str, &str)], first_unpublished: bool) -> TestFleet {
    let apps = TestFleet::spawn_each(3, |i, setup| {
        let setup = setup.env("REDIS_ENDPOINT", redis).envs(env);
        if i == 0 && first_unpublished {
            setup.unpublished_revocations()
        } else {
            setup
        }
    })
    .await;
    subscribed(&apps).await;
    apps
}

/// Three instances whose sessions end after a minute idle, with access
/// tokens that outlive that and revalidation every minute: only activity
/// reaching Redis keeps a session alive on an instance that did not see it.
async fn idle_minute_fleet() -> TestFleet {
    three_instances(
        &redis_url(),
        &[
            ("SESSION_REVALIDATE_SECONDS", "60"),
            ("SESSION_TIMEOUT_MINUTES", "1"),
            ("ACCESS_TOKEN_TTL_SECONDS", "600"),
        ],
        false,
    )
    .await
}

/// Waits until every instance listens to the revocation channel.
async fn subscribed(apps: &[TestApp]) {
    for _ in 0..200 {
        if apps
            .iter()
            .all(|a| a.services.sessions.revocations_subscribed())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the instances did not subscribe to the revocation channel");
}

async fn me(app: &TestApp, pair: &TokenPair) -> Resp {
    app.me(&pair.access_token).await
}

/// The token is refused on `app` within `within` (real time).
async fn refused_within(app: &TestApp, pair: &TokenPair, within: Duration) {
    let start = std::time::Instant::now();
    loop {
        let res = me(app, pair).await;
        if res.status == 401 {
            return;
        }
        assert_eq!(res.status, 200, "{}", res.text());
        assert!(
            start.elapsed() < within,
            "a revoked session still admitted requests on {} after {within:?}",
            app.address
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn logout(app: &TestApp, pair: &TokenPair) {
    let res = app
        .with_token("POST", "/api/v1/auth/logout", &pair.access_token, None)
        .await;
    assert_eq!(res.status, 204, "{}", res.text());
}

/// With a minute of revalidation, only the revocation channel can end a
/// session on the other instances within the two seconds allowed here.
#[actix_web::test]
async fn a_revocation_on_one_instance_is_refused_on_the_others_at_once() {
    let apps = three_instances(&redis_url(), &[("SESSION_REVALIDATE_SECONDS", "60")], false).await;
    let (email, first) = apps[0].signed_in().await;
    let second = apps[0].login_pair(&email).await;
    let third = apps[0].login_pair(&email).await;
    // Every instance holds every session (the second request is decided in memory).
    for app in &apps {
        for pair in [&first, &second, &third] {
            for _ in 0..2 {
                assert_eq!(me(app, pair).await.status, 200);
            }
        }
    }

    // Logout on the first instance.
    logout(&apps[0], &first).await;
    for app in &apps {
        refused_within(app, &first, Duration::from_secs(2)).await;
    }

    // DELETE /me/sessions/{id} on the second instance.
    let path = format!("/api/v1/auth/me/sessions/{}", second.session_id);
    let res = apps[1]
        .with_token("DELETE", &path, &third.access_token, None)
        .await;
    assert_eq!(res.status, 204);
    for app in &apps {
        refused_within(app, &second, Duration::from_secs(2)).await;
    }

    // The user's other session goes on everywhere.
    for app in &apps {
        assert_eq!(me(app, &third).await.status, 200);
    }
}

/// Three instances with a minute of revalidation, each waiting `confirm`
/// for the others' confirmations; the third applies received revocation
/// messages only once `gate` has a permit.
async fn fleet_with_a_slow_third(
    gate: &Arc<tokio::sync::Semaphore>,
    confirm: Duration,
) -> TestFleet {
    let apps = TestFleet::spawn_each(3, |i, setup| {
        let setup = setup
            .env("REDIS_ENDPOINT", &redis_url())
            .env("SESSION_REVALIDATE_SECONDS", "60")
            .confirming_within(confirm);
        if i == 2 {
            setup.holding_revocations(gate)
        } else {
            setup
        }
    })
    .await;
    subscribed(&apps).await;
    apps
}

/// A logout answers only once every subscribed instance has applied its
/// message: the third instance holds the message, the logout waits for it,
/// and once it answers, the very next request on each instance is refused
/// (a minute of revalidation: only the message can end the session there).
#[actix_web::test]
async fn a_logout_answers_once_every_instance_refuses_the_session() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let apps = fleet_with_a_slow_third(&gate, Duration::from_secs(60)).await;
    let (_, pair) = apps[0].signed_in().await;
    for app in &apps {
        assert_eq!(me(app, &pair).await.status, 200);
        assert_eq!(me(app, &pair).await.status, 200);
    }

    let mut answer = std::pin::pin!(logout(&apps[0], &pair));
    tokio::select! {
        () = &mut answer => panic!("the logout answered before the third instance applied it"),
        () = tokio::time::sleep(Duration::from_millis(500)) => {}
    }
    assert_eq!(me(&apps[2], &pair).await.status, 200, "still held");
    gate.add_permits(1);
    answer.await;
    for app in &apps {
        let res = me(app, &pair).await;
        assert_eq!(res.status, 401, "{}: {}", app.address, res.text());
    }
}

/// An instance that never applies the message delays a logout by the
/// confirmation bound only; the others refuse the session at once.
#[actix_web::test]
async fn an_instance_that_never_confirms_delays_a_logout_only_by_the_bound() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let apps = fleet_with_a_slow_third(&gate, Duration::from_millis(300)).await;
    let (_, pair) = apps[0].signed_in().await;
    for app in &apps {
        assert_eq!(me(app, &pair).await.status, 200);
    }
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(20), logout(&apps[0], &pair))
        .await
        .expect("the logout answered");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the third instance"
    );
    for app in &apps[..2] {
        assert_eq!(me(app, &pair).await.status, 401);
    }
    assert_eq!(
        me(&apps[2], &pair).await.status,
        200,
        "the third has not applied it"
    );
}

/// While the revoking instance's own subscription is down, the confirmations
/// (which arrive on it) cannot reach it: it publishes and answers without
/// waiting, and an instance that received the message applies it at once.
#[actix_web::test]
async fn a_revocation_made_without_a_subscription_does_not_wait_for_confirmations() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let apps = TestFleet::spawn_each(3, |i, setup| {
        let setup = setup
            .env("REDIS_ENDPOINT", &redis_url())
            .env("SESSION_REVALIDATE_SECONDS", "60")
            .confirming_within(Duration::from_secs(60));
        match i {
            0 => setup.without_revocation_feed(),
            2 => setup.holding_revocations(&gate),
            _ => setup,
        }
    })
    .await;
    subscribed(&apps[1..]).await;
    assert!(!apps[0].services.sessions.revocations_subscribed());
    let (_, pair) = apps[0].signed_in().await;
    for app in &apps {
        assert_eq!(me(app, &pair).await.status, 200);
    }
    tokio::time::timeout(Duration::from_secs(10), logout(&apps[0], &pair))
        .await
        .expect("the logout answered without waiting the minute for confirmations");
    for app in &apps[..2] {
        let res = me(app, &pair).await;
        assert_eq!(res.status, 401, "{}: {}", app.address, res.text());
    }
    assert_eq!(me(&apps[2], &pair).await.status, 200, "still held");
}

/// A revocation whose message never arrives (the first instance publishes
/// none) is still written to Redis: the other instances decide from memory
/// until their entry is `SESSION_REVALIDATE_SECONDS` old, then ask Redis.
#[actix_web::test]
async fn without_the_message_a_revoked_session_ends_within_the_revalidation_interval() {
    let apps = three_instances(&redis_url(), &[("SESSION_REVALIDATE_SECONDS", "30")], true).await;
    let (_, pair) = apps[0].signed_in().await;
    for app in &apps[1..] {
        assert_eq!(me(app, &pair).await.status, 200);
    }
    logout(&apps[0], &pair).await;
    assert_eq!(me(&apps[0], &pair).await.status, 401);
    // The message was lost: the others still decide from memory...
    for app in &apps[1..] {
        assert_eq!(me(app, &pair).await.status, 200);
    }
    // ...until the interval has passed since they last asked Redis.
    apps.advance(30);
    for app in &apps[1..] {
        let res = me(app, &pair).await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(res.json()["detail"], "the session has ended");
    }
}

/// Redis killed, a session revoked meanwhile (only the database learns it),
/// Redis restarted empty: no instance admits the session, neither while the
/// subscription is lost nor after it is back, though none has reached its
/// (minute-long) revalidation interval; another session goes on.
#[actix_web::test]
async fn a_redis_restart_leaves_no_revoked_session_usable() {
    let mut redis = RedisServer::start().await;
    let apps = three_instances(&redis.url(), &[("SESSION_REVALIDATE_SECONDS", "60")], false).await;
    let (email, pair) = apps[0].signed_in().await;
    let other = apps[0].login_pair(&email).await;
    for app in &apps {
        for p in [&pair, &other] {
            assert_eq!(me(app, p).await.status, 200);
            assert_eq!(me(app, p).await.status, 200);
        }
    }

    redis.kill();
    logout(&apps[0], &pair).await;
    for app in &apps {
        refused_within(app, &pair, Duration::from_secs(5)).await;
        assert_eq!(me(app, &other).await.status, 200);
    }

    redis.resume().await;
    subscribed(&apps).await;
    for app in &apps {
        let res = me(app, &pair).await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(me(app, &other).await.status, 200);
    }

    // Published again once Redis is back.
    logout(&apps[1], &other).await;
    for app in &apps {
        refused_within(app, &other, Duration::from_secs(2)).await;
    }
}

/// Thirty `GET /me` on three instances that already hold the session: not
/// one asks Redis about it (no `touch`, `seed` or `peek` of the session
/// script on its key, and every check counted as decided in memory); the
/// activity reaches Redis in a batch (`bump`).
#[actix_web::test]
async fn get_me_on_the_common_path_does_not_call_redis() {
    let redis = RedisServer::start().await;
    let apps = three_instances(&redis.url(), &[("SESSION_REVALIDATE_SECONDS", "60")], false).await;
    let (_, pair) = apps[0].signed_in().await;
    for app in &apps {
        assert_eq!(me(app, &pair).await.status, 200);
    }
    let key = format!("session:{{{}}}", pair.session_id);
    let mut monitor = Monitor::start(&redis.url()).await;
    let before: Vec<_> = apps
        .iter()
        .map(|a| a.services.sessions.decisions())
        .collect();
    for _ in 0..10 {
        for app in &apps {
            assert_eq!(me(app, &pair).await.status, 200);
        }
    }
    // Each instance decided its ten requests from memory alone.
    for (app, before) in apps.iter().zip(before) {
        let after = app.services.sessions.decisions();
        assert_eq!(after.memory - before.memory, 10, "{before:?} {after:?}");
        assert_eq!(
            (after.redis, after.database),
            (before.redis, before.database)
        );
    }
    monitor.mark("end").await;
    let asked = monitor.count(|l| {
        l.contains(&key)
            && (l.contains("\"touch\"") || l.contains("\"seed\"") || l.contains("\"peek\""))
    });
    assert_eq!(asked, 0, "{:#?}", monitor.lines.lock().unwrap());
    // The activity reaches Redis in a batch.
    monitor
        .wait_for(|l| l.contains(&key) && l.contains("\"bump\""))
        .await;
}

/// The last activity Redis's copy of a session holds, once it reaches `at`
/// (ms) or after about five seconds of asking.
async fn redis_activity_reaches(app: &TestApp, session_id: &str, at: i64) -> i64 {
    let key = format!(
        "{}:session:{{{}}}",
        app.services.redis.as_ref().unwrap().prefix(),
        session_id
    );
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut seen = 0;
    for _ in 0..250 {
        let la: Option<i64> = redis::cmd("HGET")
            .arg(&key)
            .arg("la")
            .query_async(&mut conn)
            .await
            .unwrap();
        seen = la.unwrap_or(0);
        if seen >= at {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// A refresh is activity: the instance that rotated the token sends it to
/// Redis with its next batch (there is no Redis call on the refresh itself),
/// where the other instances' revalidations see it.
#[actix_web::test]
async fn a_refresh_reaches_redis_with_the_next_batch() {
    let apps = idle_minute_fleet().await;
    let (_, pair) = apps[0].signed_in().await;
    // Redis holds the session once another instance has asked for it.
    assert_eq!(me(&apps[1], &pair).await.status, 200);
    apps.advance(30);
    let last = apps[2].services.clock.now_ms();
    let res = apps[2].refresh(&pair.refresh_token).await;
    assert_eq!(res.status, 200, "{}", res.text());

    let seen = redis_activity_reaches(&apps[2], &pair.session_id, last).await;
    assert!(
        seen >= last,
        "redis holds {seen}, the refresh was at {last}"
    );
}

/// Activity one instance decides in memory reaches Redis within the batch
/// interval, so an instance that never saw the session finds it alive where
/// Redis's copy alone (last confirmed before) would call it idle.
#[actix_web::test]
async fn activity_decided_in_memory_reaches_the_other_instances() {
    let apps = idle_minute_fleet().await;
    let (_, pair) = apps[0].signed_in().await;
    assert_eq!(me(&apps[1], &pair).await.status, 200);
    apps.advance(30);
    assert_eq!(me(&apps[1], &pair).await.status, 200);
    apps.advance(25);
    let last = apps[1].services.clock.now_ms();
    assert_eq!(me(&apps[1], &pair).await.status, 200);

    // Redis's copy learns the last request (decided in memory) from the batch.
    let seen = redis_activity_reaches(&apps[1], &pair.session_id, last).await;
    assert!(
        seen >= last,
        "redis holds {seen}, the last request was at {last}"
    );

    // 50 s after that request (105 s after the first): alive on the third instance.
    apps.advance(50);
    let res = me(&apps[2], &pair).await;
    assert_eq!(res.status, 200, "{}", res.text());
}
