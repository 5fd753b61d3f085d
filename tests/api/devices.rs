//! Devices seen at sign-in: the first sign-in of an account records its
//! device quietly; a device the account does not know is mailed to the
//! owner, audited (`new_device`), counted and listed; a forgotten device is
//! new again; devices are the owner's only; `NEW_DEVICE_STEP_UP` asks an
//! emailed code of unknown devices; the consent step records the device too;
//! the export holds devices and erasure deletes them.

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{Backend, Deployment, Resp, TestApp, TestSetup, PASSWORD};

const LAPTOP: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
/// The same browser a version later: the same device.
const LAPTOP_UPDATED: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0";
const PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const NEW_SIGN_IN: &str = "New sign-in to your SUMA account";

/// Signs in; asserts the token pair and returns its access token.
async fn signed_in_from(app: &TestApp, email: &str, agent: &str, device: &str) -> String {
    let res = app.login_from(email, agent, device).await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.token_pair().access_token
}

async fn devices(app: &TestApp, token: &str) -> Vec<Value> {
    let res = app
        .with_token("GET", "/api/v1/auth/me/devices", token, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.json().as_array().unwrap().clone()
}

async fn forget(app: &TestApp, token: &str, id: &str) -> Resp {
    app.with_token(
        "DELETE",
        &format!("/api/v1/auth/me/devices/{id}"),
        token,
        None,
    )
    .await
}

/// New-device mails queued for `email` (the outbox row is written with the
/// device, before the answer, so a count of 0 is final).
async fn new_device_mails(app: &TestApp, email: &str) -> usize {
    let tag = app.services.mailer.recipient_tag(email);
    app.probe()
        .mail_tagged(&tag)
        .await
        .iter()
        .filter(|(template, _)| template == "new_device")
        .count()
}

async fn new_device_audits(app: &TestApp) -> u64 {
    app.probe()
        .count_audit("new_device", "success")
        .await
        .unwrap()
}

on_both_backends!(
    the_first_sign_in_and_a_known_device_send_no_mail,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;

        let token = signed_in_from(&app, &email, LAPTOP, "laptop-1").await;
        assert_eq!(new_device_mails(&app, &email).await, 0);
        assert_eq!(new_device_audits(&app).await, 0);
        let listed = devices(&app, &token).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["user_agent"], LAPTOP);
        assert_eq!(listed[0]["ip_address"], "127.0.0.1");
        assert_eq!(listed[0]["current"], true);
        assert!(listed[0]["first_seen_at"].is_string());

        // The same device after a browser update: known, quiet, one row.
        let token = signed_in_from(&app, &email, LAPTOP_UPDATED, "laptop-1").await;
        assert_eq!(new_device_mails(&app, &email).await, 0);
        assert_eq!(new_device_audits(&app).await, 0);
        let listed = devices(&app, &token).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["user_agent"], LAPTOP_UPDATED);
        assert_eq!(listed[0]["current"], true);
    }
);

on_both_backends!(
    a_new_device_is_mailed_audited_counted_and_listed,
    |backend: Backend| async move {
        let app = TestSetup::new(backend).with_statsd().spawn().await;
        let email = app.verified_user().await;
        let laptop = signed_in_from(&app, &email, LAPTOP, "laptop-1").await;

        let phone = signed_in_from(&app, &email, PHONE, "phone-1").await;
        assert_eq!(new_device_mails(&app, &email).await, 1);
        let mail = app.smtp().wait_for_nth(&email, 2).await;
        assert_eq!(mail.subject(), NEW_SIGN_IN);
        let text = mail.decoded();
        assert!(text.contains("Chrome on Android"), "{text}");
        assert!(text.contains("IP address 127.0.0.1"), "{text}");
        assert!(text.contains("When: "), "{text}");
        assert_eq!(new_device_audits(&app).await, 1);
        app.statsd
            .as_ref()
            .unwrap()
            .wait_for("auth.login.new_device:1|c", &[])
            .await;

        let listed = devices(&app, &phone).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0]["user_agent"], LAPTOP);
        assert_eq!(listed[0]["current"], false);
        assert_eq!(listed[1]["user_agent"], PHONE);
        assert_eq!(listed[1]["current"], true);
        let from_laptop = devices(&app, &laptop).await;
        assert_eq!(from_laptop[0]["current"], true);
        assert_eq!(from_laptop[1]["current"], false);

        // Another device id with the same browser is another device.
        signed_in_from(&app, &email, LAPTOP, "laptop-2").await;
        assert_eq!(new_device_mails(&app, &email).await, 2);
    }
);

on_both_backends!(
    a_forgotten_device_is_new_again,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let laptop = signed_in_from(&app, &email, LAPTOP, "laptop-1").await;
        signed_in_from(&app, &email, PHONE, "phone-1").await;
        assert_eq!(new_device_mails(&app, &email).await, 1);

        let listed = devices(&app, &laptop).await;
        let phone_id = listed[1]["id"].as_str().unwrap().to_string();
        let res = forget(&app, &laptop, &phone_id).await;
        assert_eq!(res.status, 204, "{}", res.text());
        let listed = devices(&app, &laptop).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["user_agent"], LAPTOP);
        assert_eq!(forget(&app, &laptop, &phone_id).await.status, 404);

        // The phone is unknown again: its next sign-in is mailed again.
        signed_in_from(&app, &email, PHONE, "phone-1").await;
        assert_eq!(new_device_mails(&app, &email).await, 2);
        assert_eq!(new_device_audits(&app).await, 2);

        // Forgetting every device: the account has signed in before, so the
        // next sign-in is mailed too.
        for d in devices(&app, &laptop).await {
            let id = d["id"].as_str().unwrap().to_string();
            assert_eq!(forget(&app, &laptop, &id).await.status, 204);
        }
        assert!(devices(&app, &laptop).await.is_empty());
        signed_in_from(&app, &email, LAPTOP, "laptop-1").await;
        assert_eq!(new_device_mails(&app, &email).await, 3);
    }
);

on_both_backends!(
    another_users_device_is_not_found_and_stays,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let alice = app.verified_user().await;
        let bob = app.verified_user().await;
        let alice_token = signed_in_from(&app, &alice, LAPTOP, "laptop-a").await;
        let bob_token = signed_in_from(&app, &bob, LAPTOP, "laptop-a").await;

        let alices = devices(&app, &alice_token).await;
        assert_eq!(alices.len(), 1);
        let alices_id = alices[0]["id"].as_str().unwrap().to_string();
        let bobs = devices(&app, &bob_token).await;
        assert_eq!(bobs.len(), 1);
        assert_ne!(bobs[0]["id"], alices[0]["id"]);

        let res = forget(&app, &bob_token, &alices_id).await;
        assert_eq!(res.status, 404);
        assert_eq!(res.code(), "not_found");
        assert_eq!(devices(&app, &alice_token).await, alices);
        assert_eq!(devices(&app, &bob_token).await.len(), 1);
        assert_eq!(forget(&app, &bob_token, "not-a-uuid").await.status, 404);
        assert_eq!(
            app.send(
                app.client
                    .delete(app.url(&format!("/api/v1/auth/me/devices/{alices_id}"))),
                None
            )
            .await
            .status,
            401
        );
    }
);

on_both_backends!(
    new_device_step_up_asks_a_mailed_code_of_unknown_devices_only,
    |backend: Backend| async move {
        let app = TestSetup::new(backend)
            .env("NEW_DEVICE_STEP_UP", "true")
            .spawn()
            .await;
        let email = app.verified_user().await;
        // The account's first sign-in, then the same device: no code asked.
        let laptop = signed_in_from(&app, &email, LAPTOP, "laptop-1").await;
        signed_in_from(&app, &email, LAPTOP, "laptop-1").await;

        // An unknown device: the emailed-code step, nothing recorded yet.
        let res = app.login_from(&email, PHONE, "phone-1").await;
        assert_eq!(res.status, 200);
        let step = res.json();
        assert_eq!(step["mfa_required"], true, "{step}");
        assert_eq!(step["methods"], json!(["email_otp"]));
        assert!(step.get("access_token").is_none());
        assert_eq!(devices(&app, &laptop).await.len(), 1);
        assert_eq!(new_device_mails(&app, &email).await, 0);
        let mail = app.smtp().wait_for_nth(&email, 2).await;
        assert!(
            mail.subject().contains("sign-in code"),
            "{}",
            mail.subject()
        );
        let code = mail.subject().rsplit(' ').next().unwrap().to_string();

        let ok = app
            .post_as(
                "/api/v1/auth/otp/verify",
                PHONE,
                json!({"mfa_token": step["mfa_token"], "code": code}),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let phone = ok.token_pair().access_token;
        let listed = devices(&app, &phone).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[1]["current"], true);
        assert_eq!(new_device_mails(&app, &email).await, 1);

        // Known now: straight to tokens.
        signed_in_from(&app, &email, PHONE, "phone-1").await;
    }
);

on_both_backends!(
    accepting_new_terms_records_the_device,
    |backend: Backend| async move {
        let deployment = Deployment::new(backend).await;
        let first = deployment.spawn(&[]).await;
        let email = first.verified_user().await;
        signed_in_from(&first, &email, LAPTOP, "laptop-1").await;
        first.stop().await;
        drop(first);

        let app = deployment.spawn(&[("CONSENT_TERMS_VERSION", "2.0")]).await;
        let res = app.login_from(&email, PHONE, "phone-1").await;
        assert_eq!(res.status, 403, "{}", res.text());
        assert_eq!(res.code(), "consent_required");
        let token = res.json()["consent_token"].as_str().unwrap().to_string();
        let ok = app
            .post_as(
                "/api/v1/auth/consents/accept",
                PHONE,
                json!({"consent_token": token, "terms": "2.0", "privacy": "1.0"}),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let phone = ok.token_pair().access_token;
        let listed = devices(&app, &phone).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[1]["user_agent"], PHONE);
        assert_eq!(listed[1]["current"], true);
        assert_eq!(new_device_mails(&app, &email).await, 1);
    }
);

on_both_backends!(
    the_export_holds_devices_and_erasure_deletes_them,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let token = signed_in_from(&app, &email, LAPTOP, "laptop-1").await;
        let id: uuid::Uuid = app.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();

        let export = app
            .with_token("GET", "/api/v1/auth/me/export", &token, None)
            .await;
        assert_eq!(export.status, 200);
        let exported = export.json()["devices"].as_array().unwrap().clone();
        assert_eq!(exported.len(), 1, "{exported:?}");
        assert_eq!(exported[0]["user_agent"], LAPTOP);
        assert_eq!(exported[0]["ip_address"], "127.0.0.1");
        assert!(exported[0]["first_seen_at"].is_string());
        assert_eq!(
            app.probe()
                .count_of("device_fingerprints", "user_id", id)
                .await,
            1
        );

        let res = app
            .with_token(
                "DELETE",
                "/api/v1/auth/me",
                &token,
                Some(json!({"password": PASSWORD})),
            )
            .await;
        assert_eq!(res.status, 204, "{}", res.text());
        assert_eq!(
            app.probe()
                .count_of("device_fingerprints", "user_id", id)
                .await,
            0
        );
    }
);

on_both_backends!(
    concurrent_sign_ins_from_one_new_device_record_and_mail_it_once,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let email = app.verified_user().await;
        let laptop = signed_in_from(&app, &email, LAPTOP, "laptop-1").await;

        let logins = (0..4).map(|_| app.login_from(&email, PHONE, "phone-1"));
        for res in futures_util::future::join_all(logins).await {
            assert_eq!(res.status, 200, "{}", res.text());
        }
        assert_eq!(devices(&app, &laptop).await.len(), 2);
        assert_eq!(new_device_mails(&app, &email).await, 1);
        assert_eq!(new_device_audits(&app).await, 1);
    }
);
