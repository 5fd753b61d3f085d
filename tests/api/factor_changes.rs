//! Factor changes need a fresh proof: the password, and a current second
//! factor's code while one is on, within the request. Each change mails the
//! owner, writes an audit row and ends the user's other sessions.

use std::time::Duration;

use serde_json::{json, Value};
use suma_auth::auth::totp;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, PASSWORD};

async fn subject(app: &TestApp, email: &str, n: usize) -> String {
    app.smtp().wait_for_nth(email, n).await.subject()
}

async fn successes(app: &TestApp, email: &str, event: &str) -> Vec<Value> {
    let user_id = app.user_id(email).await;
    app.probe()
        .audit_for_user(user_id, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event_type == event && r.event_status == "success")
        .map(|r| r.metadata)
        .collect()
}

fn totp_code(app: &TestApp, secret: &[u8]) -> String {
    format!(
        "{:06}",
        totp::code_at(secret, totp::step_of(app.services.clock.unix()))
    )
}

on_both_backends!(
    factor_changes_need_a_fresh_proof_and_end_the_other_sessions,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let me = &pair.access_token;
        let other = app.login_pair(&email).await.access_token;

        // An access token alone changes nothing; a wrong password neither.
        let res = app
            .post_bearer("/api/v1/auth/me/2fa/email", me, json!({}))
            .await;
        assert_eq!(res.status, 422, "{}", res.text());
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/email",
                me,
                json!({"password": "wrong password, again"}),
            )
            .await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_credentials");
        let res = app
            .post_bearer("/api/v1/auth/me/2fa/totp/setup", me, json!({}))
            .await;
        assert_eq!(res.status, 422);

        // The password turns email codes on: the owner is told, the other session ends.
        app.turn_on_email_codes(me).await;
        assert!(subject(&app, &email, 2).await.contains("turned on"));
        assert_eq!(app.me(&other).await.status, 401);
        assert_eq!(app.me(me).await.status, 200);
        let rows = successes(&app, &email, "two_factor_enabled").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["sessions_ended"], 1);

        // A session opened with the emailed code (the first code mailed).
        let mfa = app.mfa_token(&email).await;
        let code = app.smtp().wait_for_code(&email, 1).await;
        let third = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": code}),
            )
            .await;
        assert_eq!(third.status, 200);
        let third = third.token_pair().access_token;

        // With email codes on, a change needs one too: asked for, mailed (the second code).
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/setup",
                me,
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status, 422);
        assert_eq!(res.problem().errors[0].code, "code_required");
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/setup",
                me,
                json!({"password": PASSWORD, "code": "000000"}),
            )
            .await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_code");
        let res = app
            .post_bearer("/api/v1/auth/me/2fa/email/code", me, json!({}))
            .await;
        assert_eq!(res.status, 202, "{}", res.text());
        let step_up = app.smtp().wait_for_code(&email, 2).await;
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/setup",
                me,
                json!({"password": PASSWORD, "code": step_up}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let secret = totp::from_base32(res.json()["secret"].as_str().unwrap()).unwrap();
        // A step-up code is spent once used.
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/setup",
                me,
                json!({"password": PASSWORD, "code": step_up}),
            )
            .await;
        assert_eq!(res.status, 401);

        // Confirming the app needs the password too (mail 5), and ends the third session.
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/enable",
                me,
                json!({"code": totp_code(&app, &secret)}),
            )
            .await;
        assert_eq!(res.status, 422);
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/enable",
                me,
                json!({"password": PASSWORD, "code": totp_code(&app, &secret)}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let first_codes = res.json()["recovery_codes"].clone();
        assert!(subject(&app, &email, 5).await.contains("turned on"));
        assert_eq!(app.me(&third).await.status, 401);

        // New recovery codes: password and a TOTP code (mail 6); the old ones stop working.
        let fourth = {
            let mfa = app.mfa_token(&email).await;
            let res = app
                .post(
                    "/api/v1/auth/otp/verify",
                    json!({"mfa_token": mfa, "code": first_codes[0]}),
                )
                .await;
            assert_eq!(res.status, 200);
            res.token_pair().access_token
        };
        app.services.clock.advance(Duration::from_secs(30));
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/recovery-codes",
                me,
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status, 422);
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/recovery-codes",
                me,
                json!({"password": PASSWORD, "code": totp_code(&app, &secret)}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let codes = res.json()["recovery_codes"].clone();
        assert_eq!(codes.as_array().unwrap().len(), 10);
        assert!(subject(&app, &email, 6).await.contains("changed"));
        assert_eq!(app.me(&fourth).await.status, 401);
        let mfa = app.mfa_token(&email).await;
        let old = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": first_codes[1]}),
            )
            .await;
        assert_eq!(old.code(), "invalid_code");
        assert_eq!(
            successes(&app, &email, "recovery_codes_regenerated")
                .await
                .len(),
            1
        );

        // Turning everything off: the password and a current code (mail 7).
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/disable",
                me,
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status, 422);
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/disable",
                me,
                json!({"password": PASSWORD, "code": codes[0]}),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.text());
        assert!(subject(&app, &email, 7).await.contains("changed"));
        assert_eq!(
            successes(&app, &email, "two_factor_disabled").await.len(),
            1
        );
        let me_now = app.me(me).await.json();
        assert_eq!(me_now["two_factor_enabled"], false);
    }
);

on_both_backends!(
    a_wrong_password_in_a_factor_change_counts_toward_the_lockout,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let me = &pair.access_token;
        for _ in 0..5 {
            let res = app
                .post_bearer(
                    "/api/v1/auth/me/2fa/email",
                    me,
                    json!({"password": "wrong password, again"}),
                )
                .await;
            assert_eq!(res.status, 401);
        }
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/email",
                me,
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status, 423, "{}", res.text());
        assert!(res.header("retry-after").is_some());
        assert_eq!(app.login(&email, PASSWORD).await.status, 423);
    }
);

on_both_backends!(
    a_password_change_needs_the_current_second_factor_too,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let me = &pair.access_token;
        let (secret, _) = app.enroll_totp(me).await;
        let new = "a brand new passphrase for this account";
        let change = |code: Option<&str>| {
            let mut body = json!({"current_password": PASSWORD, "new_password": new});
            if let Some(code) = code {
                body["code"] = json!(code);
            }
            body
        };
        let path = "/api/v1/auth/password/change";

        // The password alone changes nothing while TOTP is on.
        let res = app.post_bearer(path, me, change(None)).await;
        assert_eq!(res.status, 422, "{}", res.text());
        assert_eq!(res.problem().errors[0].code, "code_required");
        let res = app.post_bearer(path, me, change(Some("000000"))).await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(res.code(), "invalid_code");
        assert_eq!(app.login(&email, new).await.status, 401);
        assert_eq!(app.login(&email, PASSWORD).await.status, 200);

        // With a current code it changes.
        let code = totp_code(&app, &secret);
        let res = app.post_bearer(path, me, change(Some(&code))).await;
        assert_eq!(res.status, 204, "{}", res.text());
        assert_eq!(app.login(&email, PASSWORD).await.status, 401);
        let res = app.login(&email, new).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["mfa_required"], true);
    }
);
