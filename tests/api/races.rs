//! Single-use secrets presented many times at once, spread over three
//! instances on one PostgreSQL database and one Redis: a sign-in code, a
//! TOTP code, a recovery code, a reset link and a verification link each
//! work exactly once, and the hourly caps of sign-in challenges and of reset
//! links hold. And a sign-in meeting a disable of its account opens no
//! session.
//!
//! So that the requests meet at the row that records the use (and not one
//! after the other), the test holds that row locked while they arrive and
//! lets go once they wait for it.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{advance, password_opening, redis_url, Resp, TestFleet, PASSWORD};

/// Requests sent together, the `i`-th to instance `i % 3`.
const AT_ONCE: usize = 12;

/// Three instances; an account may open more challenges and fail more
/// sign-ins than by default, so that only single use limits what succeeds.
async fn fleet() -> TestFleet {
    fleet_with(&[("MFA_CHALLENGES_PER_HOUR", "100")]).await
}

async fn fleet_with(env: &[(&str, &str)]) -> TestFleet {
    TestFleet::spawn_with(3, |setup| {
        setup
            .env("REDIS_ENDPOINT", &redis_url())
            .env("MAX_LOGIN_ATTEMPTS", "100")
            .envs(env)
    })
    .await
}

/// `AT_ONCE` POSTs of `body(i)` to `path`, sent together while `lock` (a
/// `SELECT … FOR UPDATE` of the rows of `email`'s account `$1`, or its own
/// lock) is held; the lock is let go after `hold`, when they wait for it.
/// (Held much longer, second-factor checks past the five an account may have
/// in flight would be answered 503 busy.)
async fn at_once(
    apps: &TestFleet,
    (lock, hold): (&str, Duration),
    email: &str,
    path: &str,
    body: impl Fn(usize) -> Value,
) -> Vec<Resp> {
    let user = apps[0].user_id(email).await;
    let (db, conn) = tokio_postgres::connect(apps.db_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute("BEGIN").await.unwrap();
    let held = db.query(lock, &[&user]).await.unwrap();
    assert!(!held.is_empty(), "nothing to hold: {lock}");
    let requests = join_all((0..AT_ONCE).map(|i| apps[i % apps.len()].post(path, body(i))));
    let release = async {
        tokio::time::sleep(hold).await;
        db.batch_execute("ROLLBACK").await.unwrap();
    };
    let (answers, ()) = tokio::join!(requests, release);
    answers
}

fn successes(answers: &[Resp]) -> usize {
    answers.iter().filter(|r| r.status == 200).count()
}

/// One answer is a success; the others are refusals (4xx).
fn exactly_one_success(answers: &[Resp]) {
    refused_or_ok(answers);
    assert_eq!(successes(answers), 1);
}

/// `AT_ONCE` sign-in challenges of `email`'s account (TOTP), opened on the
/// instances in turn.
async fn challenges(apps: &TestFleet, email: &str) -> Vec<String> {
    let mut opened = Vec::new();
    for i in 0..AT_ONCE {
        opened.push(apps[i % apps.len()].mfa_token(email).await);
    }
    opened
}

/// Every answer is a success or a 4xx refusal: never a 5xx.
fn refused_or_ok(answers: &[Resp]) {
    for r in answers {
        assert!(
            r.status == 200 || (400..500).contains(&r.status),
            "{}: {}",
            r.status,
            r.text()
        );
    }
}

/// One emailed sign-in code, sent on one challenge twelve times at once:
/// one session.
#[actix_web::test]
async fn one_sign_in_code_opens_one_session() {
    let apps = fleet().await;
    let (email, pair) = apps[0].signed_in().await;
    apps[0].turn_on_email_codes(&pair.access_token).await;
    let mfa_token = apps[1].mfa_token(&email).await;
    let mail = apps[0].smtp().wait_for_nth(&email, 3).await;
    let code = mail.subject().rsplit(' ').next().unwrap().to_string();

    let lock = "SELECT 1 FROM mfa_challenges WHERE user_id = $1 FOR UPDATE";
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(1)),
        &email,
        "/api/v1/auth/otp/verify",
        |_| json!({"mfa_token": mfa_token, "code": code}),
    )
    .await;
    exactly_one_success(&answers);
}

/// One TOTP code, presented on twelve challenges at once: one session (a
/// code is spent on its first use, on every instance).
#[actix_web::test]
async fn one_totp_code_opens_one_session() {
    let apps = fleet().await;
    let (email, pair) = apps[0].signed_in().await;
    let (secret, _) = apps[0].enroll_totp(&pair.access_token).await;
    // `enroll_totp` moved the first instance's clock a step on: the others too.
    advance(&apps[1..], 30);
    let challenges = challenges(&apps, &email).await;
    let code = apps[0].totp_now(&secret);
    assert!(apps.iter().all(|a| a.totp_now(&secret) == code));

    let lock = "SELECT 1 FROM users WHERE id = $1 FOR UPDATE";
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(1)),
        &email,
        "/api/v1/auth/otp/verify",
        |i| json!({"mfa_token": challenges[i], "code": code}),
    )
    .await;
    exactly_one_success(&answers);
}

/// One recovery code, presented on twelve challenges at once: one session.
#[actix_web::test]
async fn one_recovery_code_opens_one_session() {
    let apps = fleet().await;
    let (email, pair) = apps[0].signed_in().await;
    let (_, recovery) = apps[0].enroll_totp(&pair.access_token).await;
    let challenges = challenges(&apps, &email).await;

    let lock = "SELECT 1 FROM recovery_codes WHERE user_id = $1 FOR UPDATE";
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(1)),
        &email,
        "/api/v1/auth/otp/verify",
        |i| json!({"mfa_token": challenges[i], "code": recovery[0]}),
    )
    .await;
    exactly_one_success(&answers);
}

/// One reset link, confirmed twelve times at once with twelve different
/// passwords: one is set, and it is the one the successful answer chose.
#[actix_web::test]
async fn one_reset_link_sets_one_password() {
    let apps = fleet().await;
    let (email, _) = apps[0].signed_in().await;
    let asked = apps[2]
        .post("/api/v1/auth/password-reset", json!({"email": email}))
        .await;
    assert_eq!(asked.status, 202);
    let mail = apps[0].smtp().wait_for_nth(&email, 2).await;
    let token = mail
        .token_after("http://app.test/reset-password?token=")
        .unwrap_or_else(|| panic!("no reset link in {}", mail.decoded()));
    let password = |i: usize| format!("a new passphrase, number {i}");

    let lock = "SELECT 1 FROM password_reset_tokens WHERE user_id = $1 FOR UPDATE";
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(1)),
        &email,
        "/api/v1/auth/password-reset/confirm",
        |i| json!({"token": token, "new_password": password(i)}),
    )
    .await;
    exactly_one_success(&answers);
    let chosen = answers.iter().position(|r| r.status == 200).unwrap();
    for i in 0..AT_ONCE {
        let res = apps[i % 3].login(&email, &password(i)).await;
        let expected = if i == chosen { 200 } else { 401 };
        assert_eq!(res.status, expected, "password {i}: {}", res.text());
    }
}

/// One verification link, followed twelve times at once: one 200, the
/// others 400 `invalid_token`.
#[actix_web::test]
async fn one_verification_link_verifies_once() {
    let apps = fleet().await;
    let email = format!("race-{}@example.com", Uuid::new_v4().simple());
    assert_eq!(apps[1].register(&email, PASSWORD).await.status, 202);
    let token = apps[0].verification_token(&email, 1).await;
    let lock = "SELECT 1 FROM email_verification_tokens WHERE user_id = $1 FOR UPDATE";
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(1)),
        &email,
        "/api/v1/auth/verify-email",
        |_| json!({"token": token}),
    )
    .await;
    exactly_one_success(&answers);
    assert!(answers
        .iter()
        .filter(|r| r.status != 200)
        .all(|r| r.status == 400 && r.code() == "invalid_token"));
}

/// Twelve correct sign-ins of one account with TOTP at once, three
/// challenges an hour allowed: three are opened, the others refused 429.
#[actix_web::test]
async fn the_hourly_challenge_cap_holds_for_sign_ins_at_once() {
    let apps = fleet_with(&[("MFA_CHALLENGES_PER_HOUR", "3")]).await;
    let (email, pair) = apps[0].signed_in().await;
    apps[0].enroll_totp(&pair.access_token).await;
    let lock = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))";
    // Twelve passwords are hashed before the challenges: a longer hold.
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(3)),
        &email,
        "/api/v1/auth/login",
        |_| json!({"email": email, "password": PASSWORD}),
    )
    .await;
    refused_or_ok(&answers);
    let opened = answers
        .iter()
        .filter(|r| r.status == 200 && r.json()["mfa_required"] == true)
        .count();
    assert_eq!(opened, 3);
    assert_eq!(
        answers.iter().filter(|r| r.status == 429).count(),
        AT_ONCE - 3
    );
}

/// Twelve requests for a reset link of one account at once: three links an
/// hour, so three are stored (each request is looked at after its answer,
/// and audited with whether it mailed a link).
#[actix_web::test]
async fn the_hourly_cap_of_reset_links_holds_for_requests_at_once() {
    let apps = fleet().await;
    let (email, _) = apps[0].signed_in().await;
    let lock = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))";
    let answers = at_once(
        &apps,
        (lock, Duration::from_secs(1)),
        &email,
        "/api/v1/auth/password-reset",
        |_| json!({"email": email}),
    )
    .await;
    assert!(answers.iter().all(|r| r.status == 202));
    let probe = apps[0].probe();
    let mut counted = (0, 0);
    for _ in 0..200 {
        counted = (
            probe
                .count_audit("password_reset_requested", "success")
                .await
                .unwrap(),
            probe
                .count_audit("password_reset_requested", "failure")
                .await
                .unwrap(),
        );
        if counted.0 + counted.1 == AT_ONCE as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted, (3, AT_ONCE as u64 - 3), "(mailed, not mailed)");
}

/// A session opened while a disable of the account is being committed:
/// the opening waits for the account's row and then sees it disabled. No
/// session is opened, though the disable (here a bare flag, without the
/// ending of sessions that follows it in the service) never sees it.
#[actix_web::test]
async fn a_session_opening_meets_an_uncommitted_disable_and_opens_nothing() {
    use suma_auth::services::tokens::{open_session, SessionOpener};
    use suma_auth::services::AuthError;

    let apps = fleet().await;
    let email = apps[0].verified_user().await;
    let app = &apps[1];
    let read = app.user_record(&email).await;
    let (db, conn) = tokio_postgres::connect(apps.db_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute("BEGIN").await.unwrap();
    let disabled = db
        .execute(
            "UPDATE users SET is_active = false WHERE id = $1",
            &[&read.id],
        )
        .await
        .unwrap();
    assert_eq!(disabled, 1);

    let opener = SessionOpener::new(&app.services);
    let user = read.clone();
    let mut opening = tokio::spawn(async move {
        let client = suma_auth::domain::ClientContext::default();
        open_session(&opener, &user, &client, password_opening()).await
    });
    let waited = tokio::time::timeout(Duration::from_millis(500), &mut opening).await;
    assert!(
        waited.is_err(),
        "the opening did not wait for the account's row"
    );
    db.batch_execute("COMMIT").await.unwrap();
    let opened = opening.await.unwrap();
    assert!(
        matches!(opened, Err(AuthError::AccountDisabled)),
        "{opened:?}"
    );
    let now = app.services.clock.now();
    let sessions = app.services.store.list_sessions(read.id, now).await;
    assert!(sessions.unwrap().is_empty());
}
