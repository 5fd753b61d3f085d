//! The same answer, after the same work, for known and unknown addresses:
//! `POST /password-reset` and `POST /verify-email/resend` answer before they
//! look the address up (the rest runs after the answer). A newer reset link
//! ends the earlier ones. One-time and recovery codes are stored as keyed
//! hashes, and codes stored by earlier releases as bare digests are
//! converted.

use std::sync::Arc;

use serde_json::json;
use suma_auth::auth::codes;
use tokio::sync::Semaphore;

use crate::on_both_backends;
use crate::second_factor_limits::{code_now, totp_user};
use crate::support::probe::Probe;
use crate::support::{Backend, TestApp, TestSetup, PASSWORD};

/// Runs one statement on the app's database (rows counted or changed).
async fn sql(app: &TestApp, statement: &str) -> i64 {
    match app.probe() {
        Probe::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            if statement.starts_with("SELECT") {
                client.query_one(statement, &[]).await.unwrap().get(0)
            } else {
                client.execute(statement, &[]).await.unwrap() as i64
            }
        }
        Probe::Sqlite(path) => {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            if statement.starts_with("SELECT") {
                c.query_row(statement, [], |r| r.get(0)).unwrap()
            } else {
                c.execute(statement, []).unwrap() as i64
            }
        }
    }
}

/// (hash, keyed) of a user's recovery codes.
async fn recovery_rows(app: &TestApp, user_id: uuid::Uuid) -> Vec<(String, bool)> {
    match app.probe() {
        Probe::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query(
                    "SELECT code_hash, keyed FROM recovery_codes WHERE user_id = $1",
                    &[&user_id],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
        Probe::Sqlite(path) => {
            let c = rusqlite::Connection::open(path).unwrap();
            let mut stmt = c
                .prepare("SELECT code_hash, keyed FROM recovery_codes WHERE user_id = ?1")
                .unwrap();
            stmt.query_map([user_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        }
    }
}

on_both_backends!(
    reset_and_resend_answer_before_any_account_work,
    |backend: Backend| async move {
        let gate = Arc::new(Semaphore::new(0));
        let app = TestSetup::new(backend).holding(&gate).spawn().await;
        let known = app.verified_user().await;
        let pending = format!("pending-{}@example.com", uuid::Uuid::new_v4().simple());
        assert_eq!(app.register(&pending, PASSWORD).await.status, 202);
        app.smtp().wait_for_nth(&pending, 1).await;
        let nobody = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
        let before = (
            sql(&app, "SELECT COUNT(*) FROM password_reset_tokens").await,
            sql(&app, "SELECT COUNT(*) FROM email_verification_tokens").await,
            sql(&app, "SELECT COUNT(*) FROM mail_outbox").await,
        );
        let background = &app.services.background;
        assert_eq!(background.waiting(), 0);

        // Each answer leaves exactly one task, known address or not.
        let mut answers = Vec::new();
        for (n, (path, email)) in [
            ("/api/v1/auth/password-reset", &known),
            ("/api/v1/auth/password-reset", &nobody),
            ("/api/v1/auth/verify-email/resend", &pending),
            ("/api/v1/auth/verify-email/resend", &nobody),
        ]
        .into_iter()
        .enumerate()
        {
            let res = app.post(path, json!({"email": email})).await;
            assert_eq!(res.status, 202, "{path}");
            assert_eq!(background.waiting(), n + 1, "{path} for {email}");
            answers.push(res.json());
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[2], answers[3]);

        // Nothing that depends on the account happened before the answers.
        let after = (
            sql(&app, "SELECT COUNT(*) FROM password_reset_tokens").await,
            sql(&app, "SELECT COUNT(*) FROM email_verification_tokens").await,
            sql(&app, "SELECT COUNT(*) FROM mail_outbox").await,
        );
        assert_eq!(before, after);

        // Released, the work is done: a reset link and a new verification link.
        gate.add_permits(1);
        let reset = app.smtp().wait_for_nth(&known, 2).await;
        assert!(reset.subject().contains("Reset"), "{}", reset.subject());
        app.verification_token(&pending, 2).await;
        assert_eq!(app.smtp().count_to(&nobody), 0);
        assert_eq!(background.waiting(), 0);
    }
);

on_both_backends!(
    a_new_reset_link_ends_the_earlier_ones,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let mut tokens = Vec::new();
        for n in 2..=3 {
            let res = app
                .post("/api/v1/auth/password-reset", json!({"email": email}))
                .await;
            assert_eq!(res.status, 202);
            let mail = app.smtp().wait_for_nth(&email, n).await;
            tokens.push(
                mail.token_after("http://app.test/reset-password?token=")
                    .unwrap(),
            );
        }
        let stale = app
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": tokens[0], "new_password": "an entirely fresh passphrase"}),
            )
            .await;
        assert_eq!(stale.status, 400, "{}", stale.text());
        let ok = app
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": tokens[1], "new_password": "an entirely fresh passphrase"}),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
);

on_both_backends!(
    codes_at_rest_are_keyed_hashes_and_earlier_digests_are_converted,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let sealer = app.services.mailer.sealer();
        let (email, secret, recovery) = totp_user(&app).await;
        let id = app.user_id(&email).await;
        let scope = id.to_string();

        // Recovery codes: keyed, never the bare digest.
        let rows = recovery_rows(&app, id).await;
        assert_eq!(rows.len(), 10);
        for code in &recovery {
            let normalized = codes::normalize_recovery(code);
            let keyed = codes::keyed_hash(sealer, &scope, &normalized);
            let bare = codes::legacy_hash(&scope, &normalized);
            assert!(rows.contains(&(keyed, true)), "{rows:?}");
            assert!(!rows.iter().any(|(h, _)| *h == bare));
        }

        // Emailed codes: keyed too.
        app.services
            .clock
            .advance(std::time::Duration::from_secs(30));
        let pair = {
            let mfa = app.mfa_token(&email).await;
            app.post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": mfa, "code": code_now(&app, &secret)}),
            )
            .await
            .token_pair()
        };
        app.services
            .clock
            .advance(std::time::Duration::from_secs(30));
        let token = &pair.access_token;
        let res = app
            .send(
                app.client
                    .post(app.url("/api/v1/auth/me/2fa/email"))
                    .insert_header(("Authorization", format!("Bearer {token}"))),
                Some(json!({"password": PASSWORD, "code": code_now(&app, &secret)})),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.text());
        let mfa = app.mfa_token(&email).await;
        let res = app
            .post("/api/v1/auth/otp/send", json!({"mfa_token": mfa}))
            .await;
        assert_eq!(res.status, 202);
        // mails: verification, TOTP on, email codes on and the code (the last
        // ones in any order); only a sign-in code mail answers here
        let code = app.smtp().wait_for_code(&email, 1).await;
        let challenge_hash = format!(
            "SELECT COUNT(*) FROM mfa_challenges WHERE user_id = '{id}' AND otp_code_hash IS NOT NULL"
        );
        assert_eq!(sql(&app, &challenge_hash).await, 1);
        let stored = app
            .services
            .store
            .find_mfa_challenge(
                &suma_auth::auth::tokens::token_hash(&mfa),
                suma_auth::storage::LiveChallenge {
                    now: app.services.clock.now(),
                    max_attempts: 5,
                },
            )
            .await
            .unwrap()
            .unwrap();
        let scope_otp = stored.id.to_string();
        assert_eq!(
            stored.otp_code_hash.as_deref(),
            Some(codes::keyed_hash(sealer, &scope_otp, &code).as_str())
        );
        assert_ne!(
            stored.otp_code_hash.as_deref(),
            Some(codes::legacy_hash(&scope_otp, &code).as_str())
        );

        // Rows an earlier release wrote (bare digests): accepted until converted, then converted.
        let insert = |code: &str| {
            let hash = codes::legacy_hash(&scope, code);
            match backend {
                Backend::Postgres => format!(
                    "INSERT INTO recovery_codes (id, user_id, code_hash, keyed, created_at) VALUES ('{}', '{id}', '{hash}', FALSE, NOW())",
                    uuid::Uuid::new_v4()
                ),
                Backend::Sqlite => format!(
                    "INSERT INTO recovery_codes (id, user_id, code_hash, keyed, created_at) VALUES ('{}', '{id}', '{hash}', 0, 0)",
                    uuid::Uuid::new_v4()
                ),
            }
        };
        sql(&app, &insert("legacy0001")).await;
        sql(&app, &insert("legacy0002")).await;
        let sign_in = |code: &'static str| {
            let app = &app;
            let email = email.clone();
            async move {
                let mfa = app.mfa_token(&email).await;
                app.post(
                    "/api/v1/auth/otp/verify",
                    json!({"mfa_token": mfa, "code": code}),
                )
                .await
                .status
            }
        };
        assert_eq!(sign_in("legac-y0001").await, 200);
        suma_auth::jobs::sweep::sweep_once(&app.services).await;
        let rows = recovery_rows(&app, id).await;
        let converted = codes::keyed_hash(sealer, &scope, "legacy0002");
        assert!(rows.contains(&(converted, true)), "{rows:?}");
        assert!(rows.iter().all(|(_, keyed)| *keyed));
        assert_eq!(sign_in("LEGACY-0002").await, 200);
    }
);
