//! Sessions and tokens: rotation with reuse detection, logout everywhere,
//! session management, idle and absolute timeouts, password change.

use std::time::Duration;

use awc::http::header;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{redis_url, Backend, SmtpSink, TestApp, TestDatabase, TestSetup, PASSWORD};

fn access(pair: &Value) -> &str {
    pair["access_token"].as_str().unwrap()
}

fn refresh_token(pair: &Value) -> &str {
    pair["refresh_token"].as_str().unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> crate::support::Resp {
    app.post("/api/v1/auth/refresh", json!({"refresh_token": token}))
        .await
}

async fn post_bearer(
    app: &TestApp,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> crate::support::Resp {
    app.send(
        app.client
            .post(app.url(path))
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
        body,
    )
    .await
}

on_both_backends!(
    refresh_rotates_and_reuse_revokes_the_session,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, first) = app.signed_in().await;
        let res = refresh(&app, refresh_token(&first)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
        let second = res.json();
        assert_ne!(refresh_token(&second), refresh_token(&first));
        assert_eq!(second["session_id"], first["session_id"]);
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&second))
                .await
                .status,
            200
        );

        // The spent token again: 401, and the whole session ends.
        let reuse = refresh(&app, refresh_token(&first)).await;
        assert_eq!(reuse.status, 401);
        assert_eq!(reuse.code(), "invalid_token");
        assert_eq!(refresh(&app, refresh_token(&second)).await.status, 401);
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&second))
                .await
                .status,
            401
        );
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

on_both_backends!(
    twenty_concurrent_refreshes_yield_one_success,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (_, pair) = app.signed_in().await;
        let token = refresh_token(&pair).to_string();
        let results = futures_util::future::join_all((0..20).map(|_| refresh(&app, &token))).await;
        let ok = results.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            1,
            "{:?}",
            results.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        assert!(results.iter().all(|r| r.status == 200 || r.status == 401));
    }
);

#[actix_web::test]
async fn concurrent_refreshes_over_three_instances_yield_one_success_and_logout_is_global() {
    let db = TestDatabase::create().await;
    let smtp = SmtpSink::start().await;
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(
            TestSetup::new(Backend::Postgres)
                .sharing(&db.url, &prefix, &smtp)
                .env("REDIS_ENDPOINT", &redis_url())
                .spawn()
                .await,
        );
    }
    let (email, pair) = apps[0].signed_in().await;
    let token = refresh_token(&pair).to_string();
    let results =
        futures_util::future::join_all((0..21).map(|i| refresh(&apps[i % 3], &token))).await;
    assert_eq!(results.iter().filter(|r| r.status == 200).count(), 1);

    // A fresh session, used on every instance, then logged out on one.
    let pair = apps[1].login(&email, PASSWORD).await.json();
    for app in &apps {
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&pair))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        post_bearer(&apps[2], "/api/v1/auth/logout", access(&pair), None)
            .await
            .status,
        204
    );
    for app in &apps {
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&pair))
                .await
                .status,
            401
        );
    }
    assert_eq!(refresh(&apps[0], refresh_token(&pair)).await.status, 401);
}

on_both_backends!(
    logout_all_and_session_management,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, a) = app.signed_in().await;
        let b = app
            .send(
                app.client
                    .post(app.url("/api/v1/auth/login"))
                    .insert_header(("User-Agent", "phone/2")),
                Some(json!({"email": email, "password": PASSWORD, "device_id": "phone-1"})),
            )
            .await
            .json();
        let c = app.login(&email, PASSWORD).await.json();

        let list = app
            .get_with_token("/api/v1/auth/me/sessions", access(&a))
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
        let path = format!(
            "/api/v1/auth/me/sessions/{}",
            b["session_id"].as_str().unwrap()
        );
        let del = app
            .send(
                app.client
                    .delete(app.url(&path))
                    .insert_header((header::AUTHORIZATION, format!("Bearer {}", access(&a)))),
                None,
            )
            .await;
        assert_eq!(del.status, 204);
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&b))
                .await
                .status,
            401
        );
        let again = app
            .send(
                app.client
                    .delete(app.url(&path))
                    .insert_header((header::AUTHORIZATION, format!("Bearer {}", access(&a)))),
                None,
            )
            .await;
        assert_eq!(again.status, 404);
        let bogus = app
            .send(
                app.client
                    .delete(app.url("/api/v1/auth/me/sessions/not-a-uuid"))
                    .insert_header((header::AUTHORIZATION, format!("Bearer {}", access(&a)))),
                None,
            )
            .await;
        assert_eq!(bogus.status, 404);

        // Someone else's session cannot be ended.
        let (_, other) = app.signed_in().await;
        let foreign = format!(
            "/api/v1/auth/me/sessions/{}",
            other["session_id"].as_str().unwrap()
        );
        let res = app
            .send(
                app.client
                    .delete(app.url(&foreign))
                    .insert_header((header::AUTHORIZATION, format!("Bearer {}", access(&a)))),
                None,
            )
            .await;
        assert_eq!(res.status, 404);
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&other))
                .await
                .status,
            200
        );

        // Logout-all ends a and c.
        assert_eq!(
            post_bearer(&app, "/api/v1/auth/logout-all", access(&c), None)
                .await
                .status,
            204
        );
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&a))
                .await
                .status,
            401
        );
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&c))
                .await
                .status,
            401
        );
        assert_eq!(refresh(&app, refresh_token(&a)).await.status, 401);
        assert_eq!(
            post_bearer(&app, "/api/v1/auth/logout", access(&a), None)
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
        let res = post_bearer(
            &app,
            "/api/v1/auth/logout",
            access(&pair),
            Some(json!({"refresh_token": refresh_token(&pair)})),
        )
        .await;
        assert_eq!(res.status, 204);
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&pair))
                .await
                .status,
            401
        );
        assert_eq!(refresh(&app, refresh_token(&pair)).await.status, 401);
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
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&pair))
                .await
                .status,
            200
        );
        clock.advance(Duration::from_secs(4 * 60));
        let res = refresh(&app, refresh_token(&pair)).await;
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
        let pair = res.json();
        clock.advance(Duration::from_secs(10 * 60));
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&pair))
                .await
                .status,
            200
        );
        // 15 minutes without activity end it, for both tokens.
        clock.advance(Duration::from_secs(15 * 60));
        let res = app.get_with_token("/api/v1/auth/me", access(&pair)).await;
        assert_eq!(res.status, 401);
        assert_eq!(refresh(&app, refresh_token(&pair)).await.status, 401);
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
        let res = app.get_with_token("/api/v1/auth/me", access(&pair)).await;
        assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    }
    // ...five minutes without one end it, though the token has 48 minutes left.
    clock.advance(Duration::from_secs(5 * 60));
    let res = app.get_with_token("/api/v1/auth/me", access(&pair)).await;
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
            let res = refresh(&app, refresh_token(&pair)).await;
            assert_eq!(res.status, 200);
            pair = res.json();
        }
        clock.advance(Duration::from_secs(10 * 60 + 1));
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&pair))
                .await
                .status,
            401
        );
        assert_eq!(refresh(&app, refresh_token(&pair)).await.status, 401);
    }
);

on_both_backends!(
    password_change_rules_and_effects,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, a) = app.signed_in().await;
        let b = app.login(&email, PASSWORD).await.json();
        let change =
            |current: &str, new: &str| json!({"current_password": current, "new_password": new});

        let res = post_bearer(
            &app,
            "/api/v1/auth/password/change",
            access(&a),
            Some(change("wrong current pass", "a brand new passphrase")),
        )
        .await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_credentials");
        let res = post_bearer(
            &app,
            "/api/v1/auth/password/change",
            access(&a),
            Some(change(PASSWORD, "short")),
        )
        .await;
        assert_eq!(res.status, 422);
        let res = post_bearer(
            &app,
            "/api/v1/auth/password/change",
            access(&a),
            Some(change(PASSWORD, PASSWORD)),
        )
        .await;
        assert_eq!(res.status, 422);
        assert_eq!(res.json()["errors"][0]["code"], "password_reused");

        let res = post_bearer(
            &app,
            "/api/v1/auth/password/change",
            access(&a),
            Some(change(PASSWORD, "a brand new passphrase")),
        )
        .await;
        assert_eq!(res.status, 204, "{}", String::from_utf8_lossy(&res.body));
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&a))
                .await
                .status,
            200,
            "the current session continues"
        );
        assert_eq!(
            app.get_with_token("/api/v1/auth/me", access(&b))
                .await
                .status,
            401,
            "other sessions end"
        );
        assert_eq!(app.login(&email, PASSWORD).await.status, 401);
        assert_eq!(
            app.login(&email, "a brand new passphrase").await.status,
            200
        );
        // Back to the old one: refused (history).
        let res = post_bearer(
            &app,
            "/api/v1/auth/password/change",
            access(&a),
            Some(change("a brand new passphrase", PASSWORD)),
        )
        .await;
        assert_eq!(res.json()["errors"][0]["code"], "password_reused");
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
            post_bearer(
                &app,
                "/api/v1/auth/password/change",
                access(&pair),
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
    let sid = uuid::Uuid::parse_str(pair["session_id"].as_str().unwrap()).unwrap();
    assert!(app
        .services
        .store
        .find_session(sid)
        .await
        .unwrap()
        .is_none());
    assert_eq!(suma_auth::jobs::sweep::sweep_once(&app.services).await, 0);
}
