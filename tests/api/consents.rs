//! Consents: the state per type, changes appended to the history (nothing
//! overwritten), terms and privacy that end only with the account, and the
//! sign-in step that waits for new versions (`consent_required` → accept).

use std::time::Duration;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{Backend, Deployment, Resp, TestApp, PASSWORD};

async fn put(app: &TestApp, token: &str, body: Value) -> Resp {
    app.with_token("PUT", "/api/v1/auth/me/consents", token, Some(body))
        .await
}

on_both_backends!(
    consents_are_read_changed_and_appended_to_the_history,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let token = &pair.access_token;
        let id = app.user_id(&email).await;

        let state = app
            .with_token("GET", "/api/v1/auth/me/consents", token, None)
            .await;
        assert_eq!(state.status, 200);
        let state = state.json();
        assert_eq!(state["terms"]["granted"], true);
        assert_eq!(state["terms"]["version"], "1.0");
        assert_eq!(state["terms"]["current_version"], "1.0");
        assert!(state["privacy"]["updated_at"].is_string());
        assert_eq!(state["marketing"]["granted"], false);
        assert_eq!(state["data_processing"]["granted"], false);
        assert!(state["data_processing"]["version"].is_null());

        // Grant two, then repeat: the repetition records nothing.
        let res = put(
            &app,
            token,
            json!({"marketing": {"granted": true}, "data_processing": {"granted": true, "version": "1.0"}}),
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["marketing"]["granted"], true);
        assert_eq!(res.json()["data_processing"]["version"], "1.0");
        let again = put(&app, token, json!({"marketing": {"granted": true}})).await;
        assert_eq!(again.status, 200);
        // Withdraw marketing.
        let res = put(&app, token, json!({"marketing": {"granted": false}})).await;
        assert_eq!(res.json()["marketing"]["granted"], false);
        let state = app
            .with_token("GET", "/api/v1/auth/me/consents", token, None)
            .await
            .json();
        assert_eq!(state["marketing"]["granted"], false);
        assert_eq!(state["data_processing"]["granted"], true);

        // Terms and privacy end only with the account; stale versions and
        // unknown types are refused. None of these writes anything.
        for kind in ["terms", "privacy"] {
            let res = put(&app, token, json!({kind: {"granted": false}})).await;
            assert_eq!(res.status, 422);
            assert_eq!(res.code(), "withdrawal_requires_erasure");
        }
        let res = put(
            &app,
            token,
            json!({"marketing": {"granted": true, "version": "0.9"}}),
        )
        .await;
        assert_eq!(res.status, 422);
        assert_eq!(res.problem().errors[0].code, "version_mismatch");
        assert_eq!(res.problem().errors[0].field, "marketing.version");
        let res = put(&app, token, json!({"cookies": {"granted": true}})).await;
        assert_eq!(res.status, 422);

        // The history: registration's two rows, then one per change, in order.
        let mut rows = app.probe().consents_for_user(id).await.unwrap();
        rows.reverse();
        let history: Vec<(String, bool)> = rows
            .iter()
            .map(|r| (r.consent_type.clone(), r.consented))
            .collect();
        assert_eq!(history.len(), 5, "{history:?}");
        let marketing: Vec<bool> = history
            .iter()
            .filter(|(t, _)| t == "marketing")
            .map(|(_, c)| *c)
            .collect();
        assert_eq!(marketing, [true, false]);
        assert!(rows
            .iter()
            .all(|r| r.ip_address == Some("127.0.0.1".parse().unwrap())));
        assert_eq!(
            app.probe()
                .count_audit("consent_changed", "success")
                .await
                .unwrap(),
            3
        );
        // Without a token: 401.
        assert_eq!(app.get("/api/v1/auth/me/consents").await.status, 401);
    }
);

async fn consent_required(app: &TestApp, email: &str) -> Value {
    let res = app.login(email, PASSWORD).await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(res.code(), "consent_required");
    res.json()
}

async fn accept(app: &TestApp, body: Value) -> Resp {
    app.post("/api/v1/auth/consents/accept", body).await
}

on_both_backends!(
    new_terms_are_accepted_before_sign_in,
    |backend: Backend| async move {
        let deployment = Deployment::new(backend).await;
        let first = deployment.spawn(&[]).await;
        let email = first.verified_user().await;
        assert_eq!(first.login(&email, PASSWORD).await.status, 200);
        first.stop().await;
        drop(first);

        // A release with new terms.
        let app = deployment.spawn(&[("CONSENT_TERMS_VERSION", "2.0")]).await;
        let id = app.user_id(&email).await;
        // Only after a correct password.
        assert_eq!(app.login(&email, "wrong password!").await.status, 401);
        let body = consent_required(&app, &email).await;
        assert_eq!(body["required"], json!({"terms": "2.0", "privacy": "1.0"}));
        let token = body["consent_token"].as_str().unwrap().to_string();
        assert_eq!(token.len(), 43);
        // Stored hashed: the token itself is nowhere in the database.
        assert_eq!(
            app.probe().find_everywhere(&token).await,
            Vec::<String>::new()
        );

        // The old version, or none, is not an acceptance; the token survives both.
        let stale = accept(
            &app,
            json!({"consent_token": token, "terms": "1.0", "privacy": "1.0"}),
        )
        .await;
        assert_eq!(stale.status, 422);
        assert_eq!(stale.problem().errors[0].code, "version_mismatch");
        let missing = accept(&app, json!({"consent_token": token})).await;
        assert_eq!(missing.status, 422);
        assert_eq!(missing.problem().errors[0].field, "terms");
        assert_eq!(missing.problem().errors[0].code, "required");

        let ok = accept(
            &app,
            json!({"consent_token": token, "terms": "2.0", "privacy": "1.0"}),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.header("cache-control").as_deref(), Some("no-store"));
        let pair = ok.token_pair();
        assert_eq!(app.me(&pair.access_token).await.status, 200);
        // Single use.
        let again = accept(&app, json!({"consent_token": token, "terms": "2.0"})).await;
        assert_eq!(again.status, 401);
        assert_eq!(again.code(), "invalid_consent_token");
        assert_eq!(
            accept(&app, json!({"consent_token": "x".repeat(43)}))
                .await
                .code(),
            "invalid_consent_token"
        );

        // Recorded: both terms versions kept, privacy not asked again.
        let rows = app.probe().consents_for_user(id).await.unwrap();
        let mut terms: Vec<String> = rows
            .iter()
            .filter(|r| r.consent_type == "terms")
            .map(|r| r.consent_version.clone())
            .collect();
        terms.sort();
        assert_eq!(terms, ["1.0", "2.0"]);
        assert_eq!(
            rows.iter().filter(|r| r.consent_type == "privacy").count(),
            1
        );
        let state = app
            .with_token("GET", "/api/v1/auth/me/consents", &pair.access_token, None)
            .await
            .json();
        assert_eq!(state["terms"]["version"], "2.0");
        assert_eq!(state["terms"]["current_version"], "2.0");

        // The next sign-in goes straight through.
        assert_eq!(app.login(&email, PASSWORD).await.status, 200);
        app.stop().await;
        drop(app);

        // Another release: a token left unused past its lifetime is dead.
        let app = deployment
            .spawn(&[
                ("CONSENT_TERMS_VERSION", "2.0"),
                ("CONSENT_PRIVACY_VERSION", "3"),
            ])
            .await;
        let body = consent_required(&app, &email).await;
        assert_eq!(body["required"], json!({"terms": "2.0", "privacy": "3"}));
        app.services.clock.advance(Duration::from_secs(16 * 60));
        let late = accept(
            &app,
            json!({"consent_token": body["consent_token"], "terms": "2.0", "privacy": "3"}),
        )
        .await;
        assert_eq!(late.code(), "invalid_consent_token");
    }
);

on_both_backends!(
    accepting_new_terms_leads_to_the_second_factor,
    |backend: Backend| async move {
        let deployment = Deployment::new(backend).await;
        let first = deployment.spawn(&[]).await;
        let (email, pair) = first.signed_in().await;
        first.turn_on_email_codes(&pair.access_token).await;
        // mail 2: the "turned on" notice
        deployment.smtp.wait_for_nth(&email, 2).await;
        first.stop().await;
        drop(first);

        let app = deployment
            .spawn(&[("CONSENT_PRIVACY_VERSION", "2.0")])
            .await;
        let body = consent_required(&app, &email).await;
        let ok = accept(
            &app,
            json!({"consent_token": body["consent_token"], "terms": "1.0", "privacy": "2.0"}),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let step = ok.json();
        assert_eq!(step["mfa_required"], true);
        assert_eq!(step["methods"], json!(["email_otp"]));
        assert!(step.get("access_token").is_none());
        let mail = deployment.smtp.wait_for_nth(&email, 3).await;
        let code = mail.subject().rsplit(' ').next().unwrap().to_string();
        let pair = app
            .post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": step["mfa_token"], "code": code}),
            )
            .await;
        assert_eq!(pair.status, 200, "{}", pair.text());
        assert_eq!(app.me(&pair.token_pair().access_token).await.status, 200);
    }
);
