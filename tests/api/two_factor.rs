//! Second factors: email one-time codes and TOTP with recovery codes.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use suma_auth::auth::totp;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, TestSetup, PASSWORD};

fn amr(pair: &Value) -> Value {
    let t = pair["access_token"].as_str().unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&claims).unwrap()["amr"].clone()
}

async fn code_from_mail(app: &TestApp, email: &str, n: usize) -> String {
    let mail = app.smtp().wait_for_nth(email, n).await;
    assert!(
        mail.subject().contains("sign-in code"),
        "{}",
        mail.subject()
    );
    let subject = mail.subject();
    subject.rsplit(' ').next().unwrap().to_string()
}

on_both_backends!(email_otp_login_end_to_end, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let (email, pair) = app.signed_in().await;
    let token = pair.access_token.clone();
    assert_eq!(
        app.post_bearer(
            "/api/v1/auth/me/2fa/email",
            &token,
            json!({"password": PASSWORD})
        )
        .await
        .status,
        204
    );
    let me = app.me(&token).await.json();
    assert_eq!(me["two_factor_enabled"], true);
    assert_eq!(me["two_factor_methods"], json!(["email_otp"]));
    // mail 2: the "turned on" notice
    app.smtp().wait_for_nth(&email, 2).await;

    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status, 200);
    let challenge = res.json();
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["methods"], json!(["email_otp"]));
    assert!(challenge.get("access_token").is_none());
    let mfa_token = challenge["mfa_token"].as_str().unwrap().to_string();
    let code = code_from_mail(&app, &email, 3).await;
    assert_eq!(code.len(), 6);

    let wrong = app
        .post(
            "/api/v1/auth/otp/verify",
            json!({"mfa_token": mfa_token, "code": "000000"}),
        )
        .await;
    let wrong = if code == "000000" {
        app.post(
            "/api/v1/auth/otp/verify",
            json!({"mfa_token": mfa_token, "code": "111111"}),
        )
        .await
    } else {
        wrong
    };
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "invalid_code");
    let ok = app
        .post(
            "/api/v1/auth/otp/verify",
            json!({"mfa_token": mfa_token, "code": code}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let pair = ok.token_pair();
    assert_eq!(amr(&pair.json), json!(["pwd", "otp"]));
    assert_eq!(app.me(&pair.access_token).await.status, 200);
    // Single use.
    let again = app
        .post(
            "/api/v1/auth/otp/verify",
            json!({"mfa_token": mfa_token, "code": code}),
        )
        .await;
    assert_eq!(again.code(), "invalid_mfa_token");
});

on_both_backends!(
    five_wrong_codes_kill_the_challenge_and_codes_expire,
    |backend: Backend| async move {
        // Per challenge; the account's own limit (tests/api/second_factor_limits.rs) is set apart.
        let app = TestSetup::new(backend)
            .env("SECOND_FACTOR_MAX_ATTEMPTS", "10")
            .spawn()
            .await;
        let (email, pair) = app.signed_in().await;
        app.post_bearer(
            "/api/v1/auth/me/2fa/email",
            &pair.access_token,
            json!({"password": PASSWORD}),
        )
        .await;
        let mfa_token = app.mfa_token(&email).await;
        let code = code_from_mail(&app, &email, 3).await;
        let wrong = if code == "123456" { "654321" } else { "123456" };
        for _ in 0..5 {
            let res = app
                .post(
                    "/api/v1/auth/otp/verify",
                    json!({"mfa_token": mfa_token, "code": wrong}),
                )
                .await;
            assert_eq!(res.code(), "invalid_code");
        }
        let dead = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa_token, "code": code}),
            )
            .await;
        assert_eq!(dead.status, 401);
        assert_eq!(dead.code(), "invalid_mfa_token");

        // A new challenge; its code expires after OTP_EXPIRY_MINUTES.
        let mfa_token = app.mfa_token(&email).await;
        let code = code_from_mail(&app, &email, 4).await;
        app.services.clock.advance(Duration::from_secs(5 * 60 + 1));
        let expired = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa_token, "code": code}),
            )
            .await;
        assert_eq!(expired.status, 401);
    }
);

#[actix_web::test]
async fn resending_codes_is_limited() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (email, pair) = app.signed_in().await;
    app.post_bearer(
        "/api/v1/auth/me/2fa/email",
        &pair.access_token,
        json!({"password": PASSWORD}),
    )
    .await;
    let mfa_token = app.mfa_token(&email).await;
    let first = code_from_mail(&app, &email, 3).await;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                app.post("/api/v1/auth/otp/send", json!({"mfa_token": mfa_token}))
                    .await
                    .status,
            );
        }
        v
    };
    assert_eq!(statuses, vec![202, 202, 429]);
    let latest = code_from_mail(&app, &email, 5).await;
    if latest != first {
        let stale = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa_token, "code": first}),
            )
            .await;
        assert_eq!(
            stale.code(),
            "invalid_code",
            "a resent code replaces the previous one"
        );
    }
    assert_eq!(
        app.post(
            "/api/v1/auth/otp/verify",
            json!({"mfa_token": mfa_token, "code": latest})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.post("/api/v1/auth/otp/send", json!({"mfa_token": "nonsense"}))
            .await
            .code(),
        "invalid_mfa_token"
    );
}

on_both_backends!(
    totp_with_recovery_codes_and_replay_protection,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let token = pair.access_token.clone();
        let setup = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/setup",
                &token,
                json!({"password": PASSWORD}),
            )
            .await
            .json();
        let secret = totp::from_base32(setup["secret"].as_str().unwrap()).unwrap();
        assert!(setup["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/SUMA%20Finance:"));
        let now = || app.services.clock.unix();
        let code = |t: i64| format!("{:06}", totp::code_at(&secret, totp::step_of(t)));

        let bad = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/enable",
                &token,
                json!({"password": PASSWORD, "code": "12345"}),
            )
            .await;
        assert_eq!(bad.status, 422);
        let enabled = app
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/enable",
                &token,
                json!({"password": PASSWORD, "code": code(now())}),
            )
            .await;
        assert_eq!(enabled.status, 200, "{}", enabled.text());
        let recovery: Vec<String> = enabled.recovery_codes();
        assert_eq!(recovery.len(), 10);

        // Login: TOTP offered; the code used at enable time is refused (replay); the next step's works.
        let challenge = app.login(&email, PASSWORD).await.json();
        assert_eq!(challenge["methods"], json!(["totp"]));
        let mfa = challenge["mfa_token"].as_str().unwrap().to_string();
        let replay = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": code(now())}),
            )
            .await;
        assert_eq!(replay.code(), "invalid_code");
        app.services.clock.advance(Duration::from_secs(30));
        let ok = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": code(now())}),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(amr(&ok.json()), json!(["pwd", "otp"]));

        // Recovery codes: single use.
        let mfa = app.mfa_token(&email).await;
        assert_eq!(
            app.post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": recovery[0]})
            )
            .await
            .status,
            200
        );
        let mfa = app.mfa_token(&email).await;
        assert_eq!(
            app.post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": recovery[0]})
            )
            .await
            .code(),
            "invalid_code"
        );
        assert_eq!(
            app.post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": recovery[1]})
            )
            .await
            .status,
            200
        );

        // Both factors: TOTP first (a change needs the password and a current code).
        app.services.clock.advance(Duration::from_secs(30));
        assert_eq!(
            app.post_bearer(
                "/api/v1/auth/me/2fa/email",
                &token,
                json!({"password": PASSWORD, "code": code(now())})
            )
            .await
            .status,
            204
        );
        assert_eq!(
            app.login(&email, PASSWORD).await.json()["methods"],
            json!(["totp", "email_otp"])
        );

        // Disabling needs the password and a current code.
        assert_eq!(
            app.post_bearer(
                "/api/v1/auth/me/2fa/disable",
                &token,
                json!({"password": "wrong password!", "code": recovery[2]})
            )
            .await
            .status,
            401
        );
        assert_eq!(
            app.post_bearer(
                "/api/v1/auth/me/2fa/disable",
                &token,
                json!({"password": PASSWORD, "code": recovery[2]})
            )
            .await
            .status,
            204
        );
        let plain = app.login_pair(&email).await;
        assert!(plain["access_token"].is_string());
        assert_eq!(amr(&plain.json), json!(["pwd"]));
    }
);
