use base64::Engine as _;

use crate::on_both_backends;
use crate::support::{Backend, TestApp};

on_both_backends!(
    me_returns_the_profile_for_a_valid_token,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = app.signed_in().await;
        let res = app.me(&pair.access_token).await;
        assert_eq!(res.status, 200);
        let me = res.json();
        assert_eq!(me["email"], email.as_str());
        assert_eq!(me["email_verified"], true);
        assert_eq!(me["two_factor_enabled"], false);
        assert!(me["id"].is_string() && me["created_at"].is_string());
    }
);

on_both_backends!(
    me_refuses_missing_bad_and_expired_tokens,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (_, pair) = app.signed_in().await;
        let token = pair.access_token.clone();

        let missing = app.get("/api/v1/auth/me").await;
        assert_eq!(missing.status, 401);
        assert!(missing
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));

        let garbage = app.me("not.a.jwt").await;
        assert_eq!(garbage.status, 401);
        assert_eq!(
            garbage.header("www-authenticate").as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );

        // Tampered payload.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = serde_json::json!(uuid::Uuid::new_v4().to_string());
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(app.me(&forged).await.status, 401);

        // alg none.
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
            parts[1]
        );
        assert_eq!(app.me(&none).await.status, 401);

        // Query-string tokens are never read.
        let q = app
            .get(&format!("/api/v1/auth/me?access_token={token}"))
            .await;
        assert_eq!(q.status, 401);

        // Expired: the service clock moves past exp plus leeway.
        assert_eq!(app.me(&token).await.status, 200);
        app.services
            .clock
            .advance(std::time::Duration::from_secs(15 * 60 + 31));
        let expired = app.me(&token).await;
        assert_eq!(expired.status, 401);
        assert!(expired.json()["detail"]
            .as_str()
            .unwrap()
            .contains("expired"));
    }
);
