//! Signing keys: rotation from key A to key B without a failed request, and
//! refusal of every token not signed RS256 by a known key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::support::{Backend, TestApp, TestFleet, TokenPair};

fn public_of(private_pem: &str) -> String {
    suma_auth::auth::keys::public_pem_of(private_pem).unwrap()
}

/// One more instance of `fleet`, signing with `signing` and also verifying
/// with the public keys `verify_only`.
async fn instance(fleet: &mut TestFleet, signing: &str, verify_only: Option<&str>) -> TestApp {
    fleet
        .instance(|setup| {
            let setup = setup.env("JWT_PRIVATE_KEY", signing);
            match verify_only {
                Some(extra) => setup.env("JWT_ADDITIONAL_PUBLIC_KEYS", extra),
                None => setup,
            }
        })
        .await
}

#[actix_web::test]
async fn keys_rotate_from_a_to_b_under_traffic_without_a_failed_request() {
    let (key_a, _) = suma_auth::auth::keys::generate_pem().unwrap();
    let (key_b, _) = suma_auth::auth::keys::generate_pem().unwrap();
    let (pub_a, pub_b) = (public_of(&key_a), public_of(&key_b));
    let mut fleet = TestFleet::empty().await;

    // Step 0: the fleet signs with A.
    let x1 = instance(&mut fleet, &key_a, None).await;
    let email = x1.verified_user().await;
    let token_a = x1.login_pair(&email).await;
    // Step 1: B is published (verify-only) before anyone signs with it.
    let x2 = instance(&mut fleet, &key_a, Some(&pub_b)).await;
    x1.stop().await;
    // Step 2: B signs; A still verifies tokens issued before the switch.
    let x3 = instance(&mut fleet, &key_b, Some(&pub_a)).await;
    let token_b = x3.login_pair(&email).await;
    let kid = |t: &TokenPair| {
        let header = t.access_token.split('.').next().unwrap().to_string();
        serde_json::from_slice::<serde_json::Value>(&URL_SAFE_NO_PAD.decode(header).unwrap())
            .unwrap()["kid"]
            .clone()
    };
    assert_ne!(kid(&token_a), kid(&token_b));

    // Traffic over the mixed fleet (x2 and x3 live together): no failure.
    let live = [&x2, &x3];
    let tokens = [&token_a, &token_b];
    let requests = (0..120).map(|i| {
        let app = live[i % 2];
        let token = tokens[(i / 2) % 2].access_token.clone();
        async move { app.me(&token).await.status }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // A session opened under A refreshes on a B instance, and the B token works on x2.
    let refreshed = x3.refresh(&token_a.refresh_token).await.token_pair();
    assert_eq!(kid(&refreshed), kid(&token_b));
    assert_eq!(x2.me(&refreshed.access_token).await.status, 200);
    for app in live {
        let jwks = app.get("/.well-known/jwks.json").await.json();
        let kids: Vec<_> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect();
        assert!(kids.contains(&kid(&token_a)) && kids.contains(&kid(&token_b)));
    }

    // Step 3, after the access-token lifetime: A is retired.
    x2.stop().await;
    let x4 = instance(&mut fleet, &key_b, None).await;
    assert_eq!(x4.me(&token_a.access_token).await.status, 401);
    assert_eq!(x4.me(&refreshed.access_token).await.status, 200);
    assert_eq!(
        x4.get("/.well-known/jwks.json").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[actix_web::test]
async fn only_rs256_tokens_from_known_keys_are_accepted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, pair) = app.signed_in().await;
    let token = &pair.access_token;
    let parts: Vec<&str> = token.split('.').collect();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();
    let public_pem =
        suma_auth::auth::keys::public_pem_of(app.env.get("JWT_PRIVATE_KEY").unwrap()).unwrap();

    let mut forged = Vec::new();
    // HS256 "signed" with the public key (algorithm confusion).
    for (alg, key) in [
        (
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
        ),
        (
            jsonwebtoken::Algorithm::HS512,
            jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
        ),
    ] {
        let header = jsonwebtoken::Header {
            alg,
            kid: Some(kid.clone()),
            typ: Some("at+jwt".into()),
            ..Default::default()
        };
        forged.push(jsonwebtoken::encode(&header, &claims, &key).unwrap());
    }
    // PS256 and RS256 with a key the server does not know, under its kid and under a new one.
    let (other, _) = suma_auth::auth::keys::generate_pem().unwrap();
    for (alg, k) in [
        (jsonwebtoken::Algorithm::PS256, kid.clone()),
        (jsonwebtoken::Algorithm::RS256, kid.clone()),
        (jsonwebtoken::Algorithm::RS256, "unknown".to_string()),
    ] {
        let header = jsonwebtoken::Header {
            alg,
            kid: Some(k),
            typ: Some("at+jwt".into()),
            ..Default::default()
        };
        forged.push(
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_rsa_pem(other.as_bytes()).unwrap(),
            )
            .unwrap(),
        );
    }
    // alg none, missing kid, wrong typ.
    forged.push(format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        parts[1]
    ));
    forged.push(format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"at+jwt"}"#),
        parts[1],
        parts[2]
    ));
    forged.push(format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#)),
        parts[1],
        parts[2]
    ));
    for (i, t) in forged.iter().enumerate() {
        let res = app.me(t).await;
        assert_eq!(res.status, 401, "forgery #{i} accepted");
        assert_eq!(
            res.header("www-authenticate").as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
    }
    assert_eq!(app.me(token).await.status, 200);
}
