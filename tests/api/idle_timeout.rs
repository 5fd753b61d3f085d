//! The idle timeout on every authenticated request, on every instance: an
//! access token whose session has been idle past `SESSION_TIMEOUT_MINUTES`
//! is refused although its `exp` is ahead; every authenticated request (on
//! any instance) and every refresh counts as activity.

use serde_json::json;

use crate::support::{advance, redis_url, Backend, Resp, TestApp, TestFleet, TestSetup, TokenPair};

/// Three instances on one PostgreSQL and one Redis: tokens live ten minutes,
/// sessions end after one idle minute.
async fn three_instances() -> TestFleet {
    TestFleet::spawn_with(3, |setup| {
        setup.env("REDIS_ENDPOINT", &redis_url()).envs(&[
            ("ACCESS_TOKEN_TTL_SECONDS", "600"),
            ("SESSION_TIMEOUT_MINUTES", "1"),
        ])
    })
    .await
}

async fn me(app: &TestApp, pair: &TokenPair) -> Resp {
    app.me(&pair.access_token).await
}

#[actix_web::test]
async fn an_idle_session_is_refused_on_every_instance_while_its_token_is_valid() {
    let apps = three_instances().await;
    let (_, pair) = apps[0].signed_in().await;
    assert_eq!(pair["expires_in"], 600);

    // 40 s apart, each request on another instance: only the activity the
    // previous instance saw keeps the session alive past the minute.
    for (i, app) in apps.iter().cycle().skip(1).take(4).enumerate() {
        advance(&apps, 40);
        let res = me(app, &pair).await;
        assert_eq!(res.status, 200, "request {i}: {}", res.text());
    }

    // A minute and a second without a request: refused on every instance,
    // though the token has more than five minutes left.
    advance(&apps, 61);
    for app in &apps {
        let res = me(app, &pair).await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(
            res.json()["detail"],
            "the session timed out after inactivity"
        );
    }
    // The refresh token of that session is refused too.
    let res = apps[1]
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": pair.refresh_token}),
        )
        .await;
    assert_eq!(res.status, 401);
}

/// Half an hour of use, a request every 45 s on a rotating instance,
/// refreshing (on the next instance) once the access token has expired: the
/// requests and the refreshes keep the one-minute idle timeout from ending it.
async fn steady_use_with_refreshes(apps: &[TestApp]) {
    let (_, mut pair) = apps[0].signed_in().await;
    let mut issued_at = 0;
    let mut refreshes = 0;
    for step in 1..=40usize {
        advance(apps, 45);
        let elapsed = step * 45;
        if elapsed - issued_at >= 600 {
            // The last request was 45 s ago, the next comes 45 s later: only
            // if the refresh counts as activity does the session live on.
            let res = apps[(step + 1) % apps.len()]
                .post(
                    "/api/v1/auth/refresh",
                    json!({"refresh_token": pair.refresh_token}),
                )
                .await;
            assert_eq!(res.status, 200, "refresh at {elapsed} s: {}", res.text());
            pair = res.token_pair();
            issued_at = elapsed;
            refreshes += 1;
            continue;
        }
        let res = me(&apps[step % apps.len()], &pair).await;
        assert_eq!(res.status, 200, "at {elapsed} s: {}", res.text());
    }
    assert!(refreshes >= 2, "{refreshes}");
}

#[actix_web::test]
async fn a_client_that_uses_its_token_and_refreshes_stays_signed_in() {
    let apps = three_instances().await;
    steady_use_with_refreshes(&apps).await;
}

// The same on one instance of each backend without Redis (the embedded
// default decides from its own map; PostgreSQL alone reads the row).
crate::on_both_backends!(
    a_client_that_uses_its_token_and_refreshes_stays_signed_in_without_redis,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("ACCESS_TOKEN_TTL_SECONDS", "600")
            .env("SESSION_TIMEOUT_MINUTES", "1")
            .spawn()
            .await;
        steady_use_with_refreshes(std::slice::from_ref(&app)).await;
    }
);

/// Redis's copy of a session in steady use never expires there, so it is
/// checked against the database every minute: a revocation that did not
/// reach Redis (here erased from it behind the server's back) still ends the
/// session, within a minute, on every instance.
#[actix_web::test]
async fn a_revocation_redis_missed_ends_the_session_within_a_minute() {
    let apps = three_instances().await;
    let (_, pair) = apps[0].signed_in().await;
    let (_, other) = apps[0].signed_in().await;
    assert_eq!(me(&apps[1], &pair).await.status, 200);
    // Logged out on instance 2; then Redis forgets the revocation.
    let res = apps[2]
        .send(
            apps[2]
                .client
                .post(apps[2].url("/api/v1/auth/logout"))
                .insert_header(("Authorization", format!("Bearer {}", &pair.access_token))),
            None,
        )
        .await;
    assert_eq!(res.status, 204);
    let key = format!(
        "{}:session:{{{}}}",
        apps[0].services.redis.as_ref().unwrap().prefix(),
        &pair.session_id
    );
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let removed: i64 = redis::cmd("HDEL")
        .arg(&key)
        .arg("rv")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the revocation was in Redis");
    // The client keeps using it (so it is not idle); within the minute
    // Redis's copy may still answer, past it the database decides on every
    // instance, while another session goes on.
    advance(&apps, 30);
    let _ = me(&apps[0], &pair).await;
    assert_eq!(me(&apps[0], &other).await.status, 200);
    advance(&apps, 31);
    for app in &apps {
        assert_eq!(me(app, &pair).await.status, 401);
    }
    assert_eq!(me(&apps[1], &other).await.status, 200);
}
