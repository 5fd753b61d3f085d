//! Revocation touches only the caller's own sessions: another user's session
//! id or refresh token in a caller's hands changes nothing at all — no spent
//! token, hence no false reuse alarm and no killed session for its owner.

use std::time::Duration;

use awc::http::header;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{Backend, Resp, TestApp, TestSetup};

async fn with_bearer(
    app: &TestApp,
    req: awc::ClientRequest,
    token: &str,
    body: Option<Value>,
) -> Resp {
    app.send(
        req.insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
        body,
    )
    .await
}

/// Waits until the outbox has nothing left to send, so that a mail that was
/// going to be sent has been.
async fn outbox_drained(app: &TestApp) {
    for _ in 0..100 {
        let stats = app
            .services
            .store
            .outbox_stats(app.services.clock.now())
            .await
            .unwrap();
        if stats.pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox did not drain");
}

on_both_backends!(
    another_users_session_id_or_refresh_token_revokes_nothing,
    |backend: Backend| async move {
        let app = TestSetup::new(backend).with_statsd().spawn().await;
        let (victim_email, victim) = app.signed_in().await;
        let (_, attacker) = app.signed_in().await;

        // The victim's session id, ended from the attacker's account: 404, no effect.
        let path = format!("/api/v1/auth/me/sessions/{}", victim.session_id);
        let res = with_bearer(
            &app,
            app.client.delete(app.url(&path)),
            &attacker.access_token,
            None,
        )
        .await;
        assert_eq!(res.status, 404);

        // The victim's refresh token, logged out with the attacker's token: the
        // attacker's own session ends, the victim's stays as it was.
        let res = with_bearer(
            &app,
            app.client.post(app.url("/api/v1/auth/logout")),
            &attacker.access_token,
            Some(json!({"refresh_token": &victim.refresh_token})),
        )
        .await;
        assert_eq!(res.status, 204);
        assert_eq!(app.me(&attacker.access_token).await.status, 401);

        // The victim's tokens still work: the access token, and the refresh
        // token, which rotates as if nothing had happened.
        assert_eq!(app.me(&victim.access_token).await.status, 200);
        let res = app
            .post(
                "/api/v1/auth/refresh",
                json!({"refresh_token": &victim.refresh_token}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let next = res.token_pair();
        assert_eq!(next["session_id"], victim["session_id"]);
        assert_eq!(app.me(&next.access_token).await.status, 200);

        // No reuse alarm: no audit row, no metric, no mail (only the verification mail).
        assert_eq!(
            app.probe()
                .count_audit("refresh_token_reuse", "failure")
                .await
                .unwrap(),
            0
        );
        let statsd = app.statsd.clone().unwrap();
        statsd
            .wait_for("auth.token.refresh:", &["outcome:rotated"])
            .await;
        assert!(
            !statsd
                .lines()
                .iter()
                .any(|l| l.starts_with("auth.refresh_token_reuse:")),
            "{:#?}",
            statsd.lines()
        );
        outbox_drained(&app).await;
        assert_eq!(app.smtp().count_to(&victim_email), 1);
    }
);

// A caller's own session, ended by id or through its refresh token, still ends.
on_both_backends!(
    own_sessions_are_revoked_by_id_and_by_refresh_token,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, a) = app.signed_in().await;
        let b = app.login_pair(&email).await;
        let c = app.login_pair(&email).await;
        let path = format!("/api/v1/auth/me/sessions/{}", b.session_id);
        let res = with_bearer(
            &app,
            app.client.delete(app.url(&path)),
            &a.access_token,
            None,
        )
        .await;
        assert_eq!(res.status, 204);
        let res = with_bearer(
            &app,
            app.client.post(app.url("/api/v1/auth/logout")),
            &a.access_token,
            Some(json!({"refresh_token": &c.refresh_token})),
        )
        .await;
        assert_eq!(res.status, 204);
        for pair in [&a, &b, &c] {
            assert_eq!(app.me(&pair.access_token).await.status, 401);
            let res = app
                .post(
                    "/api/v1/auth/refresh",
                    json!({"refresh_token": &pair.refresh_token}),
                )
                .await;
            assert_eq!(res.status, 401);
        }
    }
);
