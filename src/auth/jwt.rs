//! Access tokens: RS256 JWTs with a `kid`, `typ: at+jwt` (RFC 9068).
//!
//! Signing uses the parsed aws-lc key pair held for the process lifetime (a
//! JWT library re-parsing the private key on every signature would cost more
//! than the signature). Verification goes through `jsonwebtoken` with a strict
//! [`Validation`]: RS256 only, known `kid`, `iss`, `aud`, `exp`, `nbf`. A
//! token verified once is remembered by the digest of its bytes
//! ([`super::verified`]), so its next presentations skip the RSA
//! verification; the times are checked on every presentation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{SigningKey, VerifyOnlyKey};
use super::verified::VerifiedTokens;

/// Leeway for clock skew between instances, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The claims of an access token (`docs/sessions.md`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Authentication methods, e.g. `["pwd"]`, `["pwd","otp"]`.
    pub amr: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm or type is not accepted")]
    WrongAlgorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
    #[error("signing failed")]
    Signing,
}

struct VerifyKey {
    decoding: DecodingKey,
    n: Vec<u8>,
    e: Vec<u8>,
}

/// A key that verifies access tokens, as `suma-auth admin keys list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: &'static str,
    /// The key that signs new tokens (the others only verify).
    pub signing: bool,
}

/// Signs and verifies access tokens. Cheap to clone.
#[derive(Clone)]
pub struct JwtService {
    inner: Arc<Inner>,
}

struct Inner {
    signing: SigningKey,
    /// Precomputed base64url of the signing key's JOSE header.
    header_b64: String,
    verify: HashMap<String, VerifyKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    rng: SystemRandom,
    /// Tokens whose signature was verified already ([`VerifiedTokens`]).
    verified: VerifiedTokens<AccessClaims>,
}

impl JwtService {
    pub fn new(signing: SigningKey, issuer: &str, audience: &str, ttl: Duration) -> Self {
        Self::with_keys(signing, Vec::new(), issuer, audience, ttl)
    }

    /// One key signs; it and every `verify_only` key verify (key rotation).
    pub fn with_keys(
        signing: SigningKey,
        verify_only: Vec<VerifyOnlyKey>,
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> Self {
        let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": signing.kid});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        let mut verify = HashMap::new();
        verify.insert(
            signing.kid.clone(),
            VerifyKey {
                decoding: DecodingKey::from_rsa_raw_components(&signing.n, &signing.e),
                n: signing.n.clone(),
                e: signing.e.clone(),
            },
        );
        for key in verify_only {
            verify.entry(key.kid).or_insert(VerifyKey {
                decoding: DecodingKey::from_rsa_raw_components(&key.n, &key.e),
                n: key.n,
                e: key.e,
            });
        }
        let mut validation = Validation::new(Algorithm::RS256);
        // Times are checked against the service clock in `verify`, so that
        // expiry is testable without sleeping; presence is still required here.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        Self {
            inner: Arc::new(Inner {
                signing,
                header_b64,
                verify,
                validation,
                issuer: issuer.to_string(),
                audience: audience.to_string(),
                ttl,
                rng: SystemRandom::new(),
                verified: VerifiedTokens::default(),
            }),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    pub fn signing_kid(&self) -> &str {
        &self.inner.signing.kid
    }

    /// Issues an access token for a session; returns the token and its claims.
    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        amr: &[&str],
        now: i64,
    ) -> Result<(String, AccessClaims), TokenError> {
        let claims = AccessClaims {
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            jti: Uuid::new_v4().to_string(),
            iat: now,
            nbf: now,
            exp: now + self.inner.ttl.as_secs() as i64,
            amr: amr.iter().map(|s| s.to_string()).collect(),
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| TokenError::Signing)?;
        let mut message = String::with_capacity(800);
        message.push_str(&self.inner.header_b64);
        message.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut message);
        let key = &self.inner.signing.pair;
        let mut signature = vec![0u8; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &self.inner.rng,
            message.as_bytes(),
            &mut signature,
        )
        .map_err(|_| TokenError::Signing)?;
        message.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut message);
        Ok((message, claims))
    }

    /// Verifies signature, algorithm, type, key id, issuer, audience, and the
    /// times against `now` (unix seconds) with a small leeway.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Malformed);
        }
        let key = VerifiedTokens::<AccessClaims>::key(token);
        let claims = match self.inner.verified.get(&key) {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signed(token)?;
                self.inner.verified.insert(key, &claims);
                claims
            }
        };
        let leeway = LEEWAY_SECS as i64;
        if claims.exp + leeway <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf - leeway > now || claims.iat - leeway > now {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// Header, key id, signature, issuer and audience: what depends on the
    /// token's bytes alone, not on the time.
    fn verify_signed(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 || header.typ.as_deref() != Some("at+jwt") {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.inner.verify.get(&kid).ok_or(TokenError::UnknownKey)?;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.inner.validation)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                })?;
        Ok(data.claims)
    }

    /// Every key that verifies live tokens, by kid: public facts only.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let mut keys: Vec<KeyInfo> = self
            .inner
            .verify
            .keys()
            .map(|kid| KeyInfo {
                kid: kid.clone(),
                algorithm: "RS256",
                signing: *kid == self.inner.signing.kid,
            })
            .collect();
        keys.sort_by(|a, b| b.signing.cmp(&a.signing).then(a.kid.cmp(&b.kid)));
        keys
    }

    /// The JWK Set (RFC 7517) of every key that verifies live tokens.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<_> = self
            .inner
            .verify
            .iter()
            .map(|(kid, key)| {
                serde_json::json!({
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": kid,
                    "n": URL_SAFE_NO_PAD.encode(&key.n),
                    "e": URL_SAFE_NO_PAD.encode(&key.e),
                })
            })
            .collect();
        keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::auth::keys::{generate_pem, parse_private_pem};

    fn service() -> JwtService {
        let (pem, _) = generate_pem().unwrap();
        let key = parse_private_pem(&pem, "X").unwrap();
        JwtService::new(key, "https://issuer", "aud", Duration::from_secs(900))
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    /// `token` with its `sub` changed and its signature kept.
    fn for_someone_else(token: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = serde_json::json!("someone-else");
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts.join(".")
    }

    #[test]
    fn issued_tokens_verify() {
        let jwt = service();
        let (uid, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, claims) = jwt.issue(uid, sid, &["pwd"], now()).unwrap();
        let back = jwt.verify(&token, now()).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.sub, uid.to_string());
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(jwt.signing_kid()));
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_fail() {
        let jwt = service();
        let (old, _) = jwt
            .issue(Uuid::new_v4(), Uuid::new_v4(), &["pwd"], now() - 3600)
            .unwrap();
        assert_eq!(jwt.verify(&old, now()), Err(TokenError::Expired));

        let (token, _) = jwt
            .issue(Uuid::new_v4(), Uuid::new_v4(), &["pwd"], now())
            .unwrap();
        assert_eq!(
            jwt.verify(&for_someone_else(&token), now()),
            Err(TokenError::Invalid)
        );

        let other = service();
        let (foreign, _) = other
            .issue(Uuid::new_v4(), Uuid::new_v4(), &["pwd"], now())
            .unwrap();
        assert_eq!(jwt.verify(&foreign, now()), Err(TokenError::UnknownKey));
    }

    /// The second presentation answers from the remembered verification,
    /// and still ends at `exp`.
    #[test]
    fn a_remembered_token_still_expires() {
        let jwt = service();
        let issued_at = now();
        let (token, claims) = jwt
            .issue(Uuid::new_v4(), Uuid::new_v4(), &["pwd"], issued_at)
            .unwrap();
        assert_eq!(jwt.verify(&token, issued_at).unwrap(), claims);
        assert_eq!(jwt.inner.verified.len(), 1);
        assert_eq!(jwt.verify(&token, issued_at + 60).unwrap(), claims);
        assert_eq!(jwt.inner.verified.len(), 1);
        let after = claims.exp + LEEWAY_SECS as i64;
        assert_eq!(jwt.verify(&token, after), Err(TokenError::Expired));
        assert_eq!(
            jwt.verify(&token, claims.iat - LEEWAY_SECS as i64 - 1),
            Err(TokenError::Invalid)
        );
    }

    /// Only the very bytes verified are remembered: the same signature under
    /// other claims, or a longer token, is verified afresh and refused.
    #[test]
    fn a_remembered_signature_does_not_cover_other_claims() {
        let jwt = service();
        let (token, _) = jwt
            .issue(Uuid::new_v4(), Uuid::new_v4(), &["pwd"], now())
            .unwrap();
        jwt.verify(&token, now()).unwrap();
        assert_eq!(
            jwt.verify(&for_someone_else(&token), now()),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            jwt.verify(&format!("{token}A"), now()),
            Err(TokenError::Invalid)
        );
        assert_eq!(jwt.inner.verified.len(), 1);
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let jwt = service();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
        let body = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        assert!(jwt
            .verify(&format!("{none_header}.{body}."), now())
            .is_err());
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                alg: Algorithm::HS256,
                typ: Some("at+jwt".into()),
                kid: Some(jwt.signing_kid().into()),
                ..Default::default()
            },
            &serde_json::json!({"sub": "x"}),
            &jsonwebtoken::EncodingKey::from_secret(b"public key bytes"),
        )
        .unwrap();
        assert_eq!(jwt.verify(&hs, now()), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn jwks_lists_the_signing_key() {
        let jwt = service();
        let jwks = jwt.jwks();
        assert_eq!(jwks["keys"][0]["kid"], jwt.signing_kid());
        assert_eq!(jwks["keys"][0]["e"], "AQAB");
    }
}
