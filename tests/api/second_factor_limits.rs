//! Second factors limited per account, not per challenge: wrong codes count
//! across challenges and instances; past the window's limit (and the day's)
//! the code step answers 423 like a password lockout; challenges per account
//! are capped per hour.

use std::time::Duration;

use serde_json::json;
use suma_auth::auth::totp;

use crate::on_both_backends;
use crate::support::{redis_url, Backend, Resp, TestApp, TestFleet, TestSetup, PASSWORD};

/// A verified user with TOTP on (set up and confirmed on `app`): the email,
/// the secret and the recovery codes.
pub async fn totp_user(app: &TestApp) -> (String, Vec<u8>, Vec<String>) {
    let (email, pair) = app.signed_in().await;
    let (secret, recovery) = app.enroll_totp(&pair.access_token).await;
    (email, secret, recovery)
}

pub fn code_now(app: &TestApp, secret: &[u8]) -> String {
    app.totp_now(secret)
}

/// A six-digit code that is not the current one (nor its neighbours).
fn wrong_code(app: &TestApp, secret: &[u8]) -> String {
    let now = app.services.clock.unix();
    let near: Vec<String> = (-1..=1)
        .map(|d| format!("{:06}", totp::code_at(secret, totp::step_of(now) + d)))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", 111_111 + n))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn challenge(app: &TestApp, email: &str) -> String {
    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.mfa_token()
}

async fn verify(app: &TestApp, mfa_token: &str, code: &str) -> Resp {
    app.post(
        "/api/v1/auth/otp/verify",
        json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
}

fn retry_after(res: &Resp) -> u64 {
    res.header("retry-after").unwrap().parse().unwrap()
}

/// Audit rows saying the second factor locked.
async fn factor_locks(app: &TestApp, email: &str) -> usize {
    let user_id = app.user_id(email).await;
    app.probe()
        .audit_for_user(user_id, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event_type == "account_locked" && r.metadata["factor"] == "second_factor")
        .count()
}

#[actix_web::test]
async fn wrong_codes_count_per_account_across_challenges_and_three_instances() {
    let apps = TestFleet::spawn_with(3, |setup| {
        setup
            .env("REDIS_ENDPOINT", &redis_url())
            .env("MFA_CHALLENGES_PER_HOUR", "6")
            .with_statsd()
    })
    .await;
    let (email, secret, recovery) = totp_user(&apps[0]).await;
    for app in &apps[1..] {
        app.services.clock.advance(Duration::from_secs(30));
    }
    let wrong = wrong_code(&apps[0], &secret);

    // Five wrong codes spread over three challenges on three instances: no
    // challenge is used up (each allows five), yet the account is.
    let a = challenge(&apps[0], &email).await;
    let b = challenge(&apps[1], &email).await;
    let c = challenge(&apps[2], &email).await;
    for (app, token) in [(0, &a), (0, &a), (1, &b), (1, &b), (2, &c)] {
        let res = verify(&apps[app], token, &wrong).await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(res.code(), "invalid_code");
    }
    // The right code, on a challenge with four checks left: locked.
    let res = verify(&apps[2], &c, &code_now(&apps[2], &secret)).await;
    assert_eq!(res.status, 423, "{}", res.text());
    assert_eq!(res.code(), "account_locked");
    let retry = retry_after(&res);
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // A new challenge on any instance, any kind of code: locked.
    for (i, app) in apps.iter().enumerate() {
        let fresh = challenge(app, &email).await;
        let code = if i == 0 {
            recovery[0].clone()
        } else {
            code_now(app, &secret)
        };
        let res = verify(app, &fresh, &code).await;
        assert_eq!(res.status, 423, "instance {i}");
        assert!(res.header("retry-after").is_some());
    }

    // Said once: an audit row, the metric tagged with the factor, a mail.
    assert_eq!(factor_locks(&apps[0], &email).await, 1);
    let mut tagged = Vec::new();
    for _ in 0..100 {
        tagged = apps
            .iter()
            .flat_map(|a| a.statsd.as_ref().unwrap().lines())
            .filter(|l| {
                l.starts_with("auth.account_lockout:") && l.contains("factor:second_factor")
            })
            .collect();
        if !tagged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    // mails: verification, "turned on", then the lock
    let mail = apps.smtp.wait_for_nth(&email, 3).await;
    assert!(
        mail.subject().contains("Sign-in codes were locked"),
        "{}",
        mail.subject()
    );

    // Six challenges opened this hour (the cap here): the seventh is refused.
    let res = apps[1].login(&email, PASSWORD).await;
    assert_eq!(res.status, 429, "{}", res.text());
    assert!(res.header("retry-after").is_some());

    // After the lock (and the hour), the right code signs in again.
    for app in &apps {
        app.services.clock.advance(Duration::from_secs(60 * 60 + 1));
    }
    let fresh = challenge(&apps[1], &email).await;
    let res = verify(&apps[1], &fresh, &code_now(&apps[1], &secret)).await;
    assert_eq!(res.status, 200, "{}", res.text());
}

on_both_backends!(
    a_day_of_wrong_codes_locks_the_step_for_a_day,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("SECOND_FACTOR_MAX_FAILURES_PER_DAY", "7")
            .spawn()
            .await;
        let (email, secret, _) = totp_user(&app).await;
        let wrong = wrong_code(&app, &secret);
        let token = challenge(&app, &email).await;
        for _ in 0..5 {
            assert_eq!(verify(&app, &token, &wrong).await.code(), "invalid_code");
        }
        let locked = verify(
            &app,
            &challenge(&app, &email).await,
            &code_now(&app, &secret),
        )
        .await;
        assert_eq!(locked.status, 423);
        assert!(retry_after(&locked) <= 15 * 60);

        // The window's lock ends; the owner signs in (which does not reset the day).
        app.services.clock.advance(Duration::from_secs(15 * 60 + 1));
        let ok = verify(
            &app,
            &challenge(&app, &email).await,
            &code_now(&app, &secret),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.text());

        // Two more wrong codes make seven today: locked for the rest of the day.
        let token = challenge(&app, &email).await;
        let wrong = wrong_code(&app, &secret);
        for _ in 0..2 {
            assert_eq!(verify(&app, &token, &wrong).await.code(), "invalid_code");
        }
        app.services.clock.advance(Duration::from_secs(30));
        let res = verify(
            &app,
            &challenge(&app, &email).await,
            &code_now(&app, &secret),
        )
        .await;
        assert_eq!(res.status, 423, "{}", res.text());
        assert!(retry_after(&res) > 15 * 60, "{}", retry_after(&res));
        app.services.clock.advance(Duration::from_secs(16 * 60));
        let res = verify(
            &app,
            &challenge(&app, &email).await,
            &code_now(&app, &secret),
        )
        .await;
        assert_eq!(res.status, 423, "still locked after the window's length");
        assert_eq!(factor_locks(&app, &email).await, 2);
    }
);

on_both_backends!(
    challenges_per_account_are_capped_per_hour,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("MFA_CHALLENGES_PER_HOUR", "3")
            .spawn()
            .await;
        let (email, _secret, _) = totp_user(&app).await;
        for _ in 0..3 {
            challenge(&app, &email).await;
        }
        let res = app.login(&email, PASSWORD).await;
        assert_eq!(res.status, 429, "{}", res.text());
        assert_eq!(res.code(), "rate_limited");
        let retry = retry_after(&res);
        assert!(retry > 0 && retry <= 3600, "{retry}");
        // Another account is not affected.
        let (other, _, _) = totp_user(&app).await;
        challenge(&app, &other).await;
        app.services.clock.advance(Duration::from_secs(3601));
        challenge(&app, &email).await;
    }
);

on_both_backends!(
    wrong_codes_of_a_fresh_proof_count_toward_the_same_limit,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, secret, _) = totp_user(&app).await;
        let pair = {
            let token = challenge(&app, &email).await;
            let res = verify(&app, &token, &code_now(&app, &secret)).await;
            assert_eq!(res.status, 200);
            res.token_pair()
        };
        let access = pair.access_token.clone();
        let wrong = wrong_code(&app, &secret);
        // Three wrong codes at sign-in, two in changes: five for the account.
        let token = challenge(&app, &email).await;
        for _ in 0..3 {
            assert_eq!(verify(&app, &token, &wrong).await.code(), "invalid_code");
        }
        for _ in 0..2 {
            let res = app
                .post_bearer(
                    "/api/v1/auth/me/2fa/recovery-codes",
                    &access,
                    json!({"password": PASSWORD, "code": wrong}),
                )
                .await;
            assert_eq!(res.status, 401, "{}", res.text());
            assert_eq!(res.code(), "invalid_code");
        }
        app.services.clock.advance(Duration::from_secs(30));
        let res = app
            .post_bearer(
                "/api/v1/auth/me/2fa/disable",
                &access,
                json!({"password": PASSWORD, "code": code_now(&app, &secret)}),
            )
            .await;
        assert_eq!(res.status, 423, "{}", res.text());
        let res = verify(&app, &token, &code_now(&app, &secret)).await;
        assert_eq!(res.status, 423);
    }
);
