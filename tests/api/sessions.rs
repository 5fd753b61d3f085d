//! Sessions and tokens: rotation with reuse detection, logout everywhere,
//! session management, idle and absolute timeouts, password change.

use std::time::Duration;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{redis_url, Backend, TestApp, TestFleet, TestSetup, PASSWORD};

on_both_backends!(
    refresh_rotates_and_reuse_revokes_the_session,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, first) = app.signed_in().await;
        let res = app.refresh(&first.refresh_token).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
        let second = res.token_pair();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(second["session_id"], first["session_id"]);
        assert_eq!(app.me(&second.access_token).await.status, 200);

        // The spent token again: 401, and the whole session ends.
        let reuse = app.refresh(&first.refresh_token).await;
        assert_eq!(reuse.status, 401);
        assert_eq!(reuse.code(), "invalid_token");
        assert_eq!(app.refresh(&second.refresh_token).await.status, 401);
        assert_eq!(app.me(&second.access_token).await.status, 401);
        let mail = app.smtp().wait_for_nth(&email, 2).await;
        assert!(mail.subject().contains("ended"), "{}", mail.subject());
        assert_eq!(
            app.probe()
                .count_audit("refresh_token_reuse", "failure")
                .await
                .unwrap(),
            1
        );
        // Another login still works.
        assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    }
);

/// With one HTTP worker the embedded store commits a rotation on the
/// request's own thread when its writer is free: rotation, races and reuse
/// detection hold the same there.
#[actix_web::test]
async fn with_one_http_worker_rotation_races_and_reuse_hold() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("HTTP_WORKERS", "1")
        .spawn()
        .await;
    let (_, first) = app.signed_in().await;
    let second = app.refresh(&first.refresh_token).await;
    assert_eq!(second.status, 200);
    let third = app.refresh(&second.token_pair().refresh_token).await;
    assert_eq!(third.status, 200);
    let third = third.token_pair();
    assert_eq!(app.me(&third.access_token).await.status, 200);
    // A spent token again: the session ends.
    assert_eq!(app.refresh(&first.refresh_token).await.status, 401);
    assert_eq!(app.refresh(&third.refresh_token).await.status, 401);

    one_of_twenty_refreshes_wins(&app).await;
}

on_both_backends!(
    twenty_concurrent_refreshes_yield_one_success,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        one_of_twenty_refreshes_wins(&app).await;
    }
);

/// A new session's refresh token presented twenty times at once: one
/// refresh succeeds, every other is refused with 401.
async fn one_of_twenty_refreshes_wins(app: &TestApp) {
    let (_, pair) = app.signed_in().await;
    let token = pair.refresh_token.clone();
    let results = futures_util::future::join_all((0..20).map(|_| app.refresh(&token))).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        results.iter().all(|r| r.status == 200 || r.status == 401),
        "{:?}",
        results
            .iter()
            .map(|r| (r.status, String::from_utf8_lossy(&r.body)))
            .collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn concurrent_refreshes_over_three_instances_yield_one_success_and_logout_is_global() {
    let apps = TestFleet::spawn_with(3, |setup| setup.env("REDIS_ENDPOINT", &redis_url())).await;
    let (email, pair) = apps[0].signed_in().await;
    let token = pair.refresh_token.clone();
    let results =
        futures_util::future::join_all((0..21).map(|i| apps[i % 3].refresh(&token))).await;
    assert_eq!(results.iter().filter(|r| r.status == 200).count(), 1);

    // A fresh session, used on every instance, then logged out on one.
    let pair = apps[1].login_pair(&email).await;
    for app in &apps {
        assert_eq!(app.me(&pair.access_token).await.status, 200);
    }
    assert_eq!(
        apps[2]
            .with_token("POST", "/api/v1/auth/logout", &pair.access_token, None)
            .await
            .status,
        204
    );
    for app in &apps {
        assert_eq!(app.me(&pair.access_token).await.status, 401);
    }
    assert_eq!(apps[0].refresh(&pair.refresh_token).await.status, 401);
}

on_both_backends!(
    logout_all_and_session_management,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, a) = app.signed_in().await;
        let b = app
            .login_from(&email, "phone/2", "phone-1")
            .await
            .token_pair();
        let c = app.login_pair(&email).await;

        let list = app
            .get_with_token("/api/v1/auth/me/sessions", &a.access_token)
            .await;
        assert_eq!(list.status, 200);
        let list = list.json();
        let sessions = list.as_array().unwrap();
        assert_eq!(sessions.len(), 3);
        let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"], a["session_id"]);
        let phone = sessions
            .iter()
            .find(|s| s["id"] == b["session_id"])
            .unwrap();
        assert_eq!(phone["device_id"], "phone-1");
        assert_eq!(phone["user_agent"], "phone/2");
        assert_eq!(phone["ip_address"], "127.0.0.1");

        // End b from a.
        let path = format!("/api/v1/auth/me/sessions/{}", b.session_id);
        let del = app.with_token("DELETE", &path, &a.access_token, None).await;
        assert_eq!(del.status, 204);
        assert_eq!(app.me(&b.access_token).await.status, 401);
        let again = app.with_token("DELETE", &path, &a.access_token, None).await;
        assert_eq!(again.status, 404);
        let bogus = app
            .with_token(
                "DELETE",
                "/api/v1/auth/me/sessions/not-a-uuid",
                &a.access_token,
                None,
            )
            .await;
        assert_eq!(bogus.status, 404);

        // Someone else's session cannot be ended.
        let (_, other) = app.signed_in().await;
        let foreign = format!("/api/v1/auth/me/sessions/{}", other.session_id);
        let res = app
            .with_token("DELETE", &foreign, &a.access_token, None)
            .await;
        assert_eq!(res.status, 404);
        assert_eq!(app.me(&other.access_token).await.status, 200);

        // Logout-all ends a and c.
        assert_eq!(
            app.with_token("POST", "/api/v1/auth/logout-all", &c.access_token, None)
                .await
                .status,
            204
        );
        assert_eq!(app.me(&a.access_token).await.status, 401);
        assert_eq!(app.me(&c.access_token).await.status, 401);
        assert_eq!(app.refresh(&a.refresh_token).await.status, 401);
        assert_eq!(
            app.with_token("POST", "/api/v1/auth/logout", &a.access_token, None)
                .await
                .status,
            401
        );
    }
);

on_both_backends!(
    logout_with_the_refresh_token_ends_that_session,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (_, pair) = app.signed_in().await;
        let res = app
            .with_token(
                "POST",
                "/api/v1/auth/logout",
                &pair.access_token,
                Some(json!({"refresh_token": &pair.refresh_token})),
            )
            .await;
        assert_eq!(res.status, 204);
        assert_eq!(app.me(&pair.access_token).await.status, 401);
        assert_eq!(app.refresh(&pair.refresh_token).await.status, 401);
    }
);

on_both_backends!(
    idle_sessions_end_and_activity_keeps_them,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (_, pair) = app.signed_in().await;
        let clock = app.services.clock.clone();
        // Activity every 10 minutes keeps a session with a 15-minute idle timeout.
        clock.advance(Duration::from_secs(10 * 60));
        assert_eq!(app.me(&pair.access_token).await.status, 200);
        clock.advance(Duration::from_secs(4 * 60));
        let res = app.refresh(&pair.refresh_token).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let pair = res.token_pair();
        clock.advance(Duration::from_secs(10 * 60));
        assert_eq!(app.me(&pair.access_token).await.status, 200);
        // 15 minutes without activity end it, for both tokens.
        clock.advance(Duration::from_secs(15 * 60));
        let res = app.me(&pair.access_token).await;
        assert_eq!(res.status, 401);
        assert_eq!(app.refresh(&pair.refresh_token).await.status, 401);
    }
);

// Only the per-request session check can end this session: its access token
// lives an hour, far beyond the five-minute idle timeout, and no refresh runs.
on_both_backends!(
    idle_sessions_end_while_their_access_token_is_valid,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("ACCESS_TOKEN_TTL_SECONDS", "3600")
            .env("SESSION_TIMEOUT_MINUTES", "5")
            .spawn()
            .await;
        idle_check(&app).await;
    }
);

#[actix_web::test]
async fn idle_sessions_end_while_their_access_token_is_valid_with_redis() {
    let app = TestSetup::new(Backend::Postgres)
        .env("REDIS_ENDPOINT", &redis_url())
        .env("ACCESS_TOKEN_TTL_SECONDS", "3600")
        .env("SESSION_TIMEOUT_MINUTES", "5")
        .spawn()
        .await;
    idle_check(&app).await;
}

async fn idle_check(app: &TestApp) {
    let (_, pair) = app.signed_in().await;
    let clock = app.services.clock.clone();
    // Requests four minutes apart keep it alive...
    for _ in 0..3 {
        clock.advance(Duration::from_secs(4 * 60));
        let res = app.me(&pair.access_token).await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    // ...five minutes without one end it, though the token has 48 minutes left.
    clock.advance(Duration::from_secs(5 * 60));
    let res = app.me(&pair.access_token).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.json()["detail"],
        "the session timed out after inactivity"
    );
}

on_both_backends!(
    sessions_end_at_their_absolute_timeout,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("SESSION_ABSOLUTE_TIMEOUT_HOURS", "1")
            .spawn()
            .await;
        let (_, mut pair) = app.signed_in().await;
        assert_eq!(pair["refresh_expires_in"], 3600);
        let clock = app.services.clock.clone();
        for _ in 0..5 {
            clock.advance(Duration::from_secs(10 * 60));
            let res = app.refresh(&pair.refresh_token).await;
            assert_eq!(res.status, 200);
            pair = res.token_pair();
        }
        clock.advance(Duration::from_secs(10 * 60 + 1));
        assert_eq!(app.me(&pair.access_token).await.status, 401);
        assert_eq!(app.refresh(&pair.refresh_token).await.status, 401);
    }
);

on_both_backends!(
    password_change_rules_and_effects,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, a) = app.signed_in().await;
        let b = app.login_pair(&email).await;
        let change =
            |current: &str, new: &str| json!({"current_password": current, "new_password": new});

        let res = app
            .with_token(
                "POST",
                "/api/v1/auth/password/change",
                &a.access_token,
                Some(change("wrong current pass", "a brand new passphrase")),
            )
            .await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_credentials");
        let res = app
            .with_token(
                "POST",
                "/api/v1/auth/password/change",
                &a.access_token,
                Some(change(PASSWORD, "short")),
            )
            .await;
        assert_eq!(res.status, 422);
        let res = app
            .with_token(
                "POST",
                "/api/v1/auth/password/change",
                &a.access_token,
                Some(change(PASSWORD, PASSWORD)),
            )
            .await;
        assert_eq!(res.status, 422);
        assert_eq!(res.problem().errors[0].code, "password_reused");

        let res = app
            .with_token(
                "POST",
                "/api/v1/auth/password/change",
                &a.access_token,
                Some(change(PASSWORD, "a brand new passphrase")),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.text());
        assert_eq!(
            app.me(&a.access_token).await.status,
            200,
            "the current session continues"
        );
        assert_eq!(
            app.me(&b.access_token).await.status,
            401,
            "other sessions end"
        );
        assert_eq!(app.login(&email, PASSWORD).await.status, 401);
        assert_eq!(
            app.login(&email, "a brand new passphrase").await.status,
            200
        );
        // Back to the old one: refused (history).
        let res = app
            .with_token(
                "POST",
                "/api/v1/auth/password/change",
                &a.access_token,
                Some(change("a brand new passphrase", PASSWORD)),
            )
            .await;
        assert_eq!(res.problem().errors[0].code, "password_reused");
        let changed = app.smtp().wait_for_nth(&email, 2).await;
        assert!(changed.subject().contains("password was changed"));
    }
);

#[actix_web::test]
async fn wrong_current_passwords_count_toward_the_lockout() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (email, pair) = app.signed_in().await;
    let body =
        json!({"current_password": "not my password", "new_password": "a brand new passphrase"});
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.with_token(
                "POST",
                "/api/v1/auth/password/change",
                &pair.access_token,
                Some(body.clone()),
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 423]);
    assert_eq!(app.login(&email, PASSWORD).await.status, 423);
}

#[actix_web::test]
async fn the_sweep_prunes_expired_sessions() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("SESSION_ABSOLUTE_TIMEOUT_HOURS", "1")
        .spawn()
        .await;
    let (_, pair) = app.signed_in().await;
    app.services.clock.advance(Duration::from_secs(2 * 3600));
    let deleted = suma_auth::jobs::sweep::sweep_once(&app.services).await;
    assert!(deleted >= 2, "session and refresh token: {deleted}");
    let sid = uuid::Uuid::parse_str(&pair.session_id).unwrap();
    assert!(app
        .services
        .store
        .find_session(sid)
        .await
        .unwrap()
        .is_none());
    assert_eq!(suma_auth::jobs::sweep::sweep_once(&app.services).await, 0);
}
