use serde_json::json;

use crate::on_both_backends;
use crate::support::{Backend, TestApp, TestSetup, PASSWORD};

fn unique_email() -> String {
    format!("new-{}@example.com", uuid::Uuid::new_v4().simple())
}

on_both_backends!(
    register_accepts_and_mails_a_verification_link,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = unique_email();
        let res = app.register(&email, PASSWORD).await;
        assert_eq!(res.status, 202);
        assert_eq!(res.json(), json!({"status": "verification_pending"}));
        let mail = app.smtp().wait_for(&email).await;
        assert!(mail.subject().contains("Confirm"));
        assert!(mail
            .token_after("http://app.test/verify-email?token=")
            .is_some());
    }
);

on_both_backends!(
    registered_email_gets_the_same_answer_and_a_notice,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let first = app.register(&unique_email(), PASSWORD).await;
        let second = app
            .register(
                &format!("  {}  ", email.to_uppercase()),
                "another long passphrase",
            )
            .await;
        assert_eq!(first.status, 202);
        assert_eq!(second.status, 202);
        assert_eq!(first.json(), second.json());
        let notice = app.smtp().wait_for_nth(&email, 2).await;
        assert!(
            notice.subject().contains("tried to register"),
            "{}",
            notice.subject()
        );
        assert!(notice.token_after("verify-email?token=").is_none());
    }
);

on_both_backends!(
    weak_passwords_get_machine_readable_reasons,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let cases = [
            ("short", "too_short"),
            ("1q2w3e4r5t6y", "common_password"),
            ("my-secret-alice-99", "contains_email"),
        ];
        for (password, code) in cases {
            let res = app.register("alice@example.com", password).await;
            assert_eq!(res.status, 422, "{password}");
            let body = res.json();
            assert_eq!(body["code"], "validation_failed");
            let codes: Vec<&str> = body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["code"].as_str().unwrap())
                .collect();
            assert!(codes.contains(&code), "{password}: {codes:?}");
            assert_eq!(
                res.header("content-type").as_deref(),
                Some("application/problem+json")
            );
        }
        let long = "x".repeat(129);
        assert_eq!(
            app.register("bob@example.com", &long)
                .await
                .problem()
                .errors[0]
                .code,
            "too_long"
        );
    }
);

on_both_backends!(
    invalid_email_and_missing_consents_are_422,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let res = app.register("not-an-email", PASSWORD).await;
        assert_eq!(res.status, 422);
        assert_eq!(res.problem().errors[0].code, "invalid_email");
        let res = app
        .post(
            "/api/v1/auth/register",
            json!({"email": unique_email(), "password": PASSWORD, "consents": {"terms": true, "privacy": false}}),
        )
        .await;
        assert_eq!(res.status, 422);
        assert_eq!(res.problem().errors[0].field, "consents.privacy");
        assert_eq!(res.problem().errors[0].code, "consent_required");
    }
);

on_both_backends!(
    consents_are_recorded_with_the_configured_versions_ip_and_agent,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("CONSENT_TERMS_VERSION", "2026-01")
            .env("CONSENT_PRIVACY_VERSION", "p7")
            .env("CONSENT_MARKETING_VERSION", "m3")
            .spawn()
            .await;
        let email = unique_email();
        let res = app
            .send(
                app.client
                    .post(app.url("/api/v1/auth/register"))
                    .insert_header(("User-Agent", "consent-test/1.0")),
                Some(
                    // A version named by the client is not what is recorded.
                    json!({"email": email, "password": PASSWORD, "consent_version": "0.1",
                        "consents": {"terms": true, "privacy": true, "marketing": false}}),
                ),
            )
            .await;
        assert_eq!(res.status, 202);
        let user_id = app.user_id(&email).await;
        let consents = app.probe().consents_for_user(user_id).await.unwrap();
        let mut types: Vec<(String, bool)> = consents
            .iter()
            .map(|c| (c.consent_type.clone(), c.consented))
            .collect();
        types.sort();
        assert_eq!(
            types,
            vec![
                ("marketing".into(), false),
                ("privacy".into(), true),
                ("terms".into(), true)
            ]
        );
        let mut versions: Vec<(String, String)> = consents
            .iter()
            .map(|c| (c.consent_type.clone(), c.consent_version.clone()))
            .collect();
        versions.sort();
        assert_eq!(
            versions,
            vec![
                ("marketing".into(), "m3".into()),
                ("privacy".into(), "p7".into()),
                ("terms".into(), "2026-01".into())
            ]
        );
        assert!(consents
            .iter()
            .all(|c| c.user_agent.as_deref() == Some("consent-test/1.0")));
        assert!(consents
            .iter()
            .all(|c| c.ip_address == Some("127.0.0.1".parse().unwrap())));
    }
);

on_both_backends!(
    twenty_concurrent_registrations_create_one_account,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = unique_email();
        let attempts = (0..20).map(|_| app.register(&email, PASSWORD));
        let results = futures_util::future::join_all(attempts).await;
        assert!(results.iter().all(|r| r.status == 202));
        let count = app
            .probe()
            .count_audit("registration", "success")
            .await
            .unwrap();
        assert_eq!(count, 1);
        // The account is unverified, so each later registration replaced the
        // pending one: twenty links mailed, of which only the last stored works.
        for _ in 0..100 {
            if app.smtp().count_to(&email) == 20 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(app.smtp().count_to(&email), 20);
        let links: Vec<String> = app
            .smtp()
            .all()
            .iter()
            .filter_map(|m| m.token_after("http://app.test/verify-email?token="))
            .collect();
        assert_eq!(links.len(), 20);
        let mut verified = 0;
        for token in &links {
            let res = app
                .post("/api/v1/auth/verify-email", json!({"token": token}))
                .await;
            if res.status == 200 {
                verified += 1;
            }
        }
        assert_eq!(verified, 1);
    }
);
